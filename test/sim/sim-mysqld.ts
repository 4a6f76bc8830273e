/**
 * A simulated mysqld: GTID executed set and binlog, a replica's IO thread
 * (relay log, retrieved set) and SQL thread, semi-sync acknowledgements,
 * super_read_only, crashes and hangs. Enough of MySQL's behaviour to judge
 * the agents, nothing more.
 */
import {
  addTransaction,
  contains,
  emptyGtidSet,
  type GtidSet,
  isSubset,
  nextGno,
  union,
} from "../../agent/src/core/gtid.ts"
import type { MysqlProbe } from "../../agent/src/core/types.ts"

export interface Trx {
  readonly sid: string
  readonly gno: number
  /** Real time the transaction entered this server's binlog or relay log. */
  readonly at: number
  /** Client write id, or -1 for an errant/empty transaction. */
  readonly writeId: number
}

export interface PendingWrite {
  readonly writeId: number
  readonly gno: number
  readonly acks: Set<string>
}

export class SimMysqld {
  readonly name: string
  readonly uuid: string
  up = true
  hung = false
  /** The SQL thread makes no progress (a huge transaction, a lock): relay logs pile up. */
  applyStalled = false
  /** The agent's user lacks SYSTEM_VARIABLES_ADMIN: SET GLOBAL of semi-sync variables is refused. */
  systemVariablesDenied = false
  superReadOnly = true
  readOnly = true
  executed: GtidSet = emptyGtidSet
  /** The binlog in commit order (log_replica_updates on). */
  log: Array<Trx> = []
  // Replica side
  source: string | null = null
  ioRunning = false
  sqlRunning = false
  lastError: string | null = null
  retrieved: GtidSet = emptyGtidSet
  relay: Array<Trx> = []
  /** Transactions the source still has to send since the IO thread connected. */
  ioBacklog: Array<Trx> = []
  /** Position in the source's binlog after the connect-time backlog. */
  ioCursor = 0
  ioSourceIncarnation = -1
  // Source side
  semiSyncWaitCount = 1
  pending: Array<PendingWrite> = []
  /** Bumped on every crash: replicas reconnect. */
  incarnation = 0

  constructor(name: string, uuid: string) {
    this.name = name
    this.uuid = uuid
  }

  get writable(): boolean {
    return this.up && !this.superReadOnly && !this.readOnly
  }

  get received(): GtidSet {
    return union(this.executed, this.retrieved)
  }

  /** `clients`: semi-sync replicas connected now (the world knows the network). */
  probe(clients = 0): MysqlProbe {
    return {
      serverUuid: this.uuid,
      readOnly: this.readOnly,
      superReadOnly: this.superReadOnly,
      executed: this.executed,
      replica:
        this.source === null
          ? null
          : {
              source: this.source,
              ioRunning: this.ioRunning,
              sqlRunning: this.sqlRunning,
              retrieved: this.retrieved,
              lagSeconds: this.relay.length > 0 ? 0.1 : 0,
              lastError: this.lastError,
            },
      semiSyncSourceOn: true,
      semiSyncReplicaOn: true,
      semiSyncWaiters: 0,
      semiSyncClients: clients,
      semiSyncWaitCount: this.semiSyncWaitCount,
    }
  }

  /** A client transaction on this server (must be writable). */
  commit(writeId: number, now: number): PendingWrite {
    const gno = nextGno(this.executed, this.uuid)
    this.appendToBinlog({ sid: this.uuid, gno, at: now, writeId })
    const p: PendingWrite = { writeId, gno, acks: new Set() }
    this.pending.push(p)
    return p
  }

  /** An errant transaction made by hand on a replica (bypassing super_read_only). */
  commitErrant(now: number): void {
    const gno = nextGno(this.executed, this.uuid)
    this.appendToBinlog({ sid: this.uuid, gno, at: now, writeId: -1 })
  }

  injectEmpty(gtids: GtidSet, now: number): void {
    for (const [sid, ivs] of gtids.sids) {
      for (const iv of ivs) {
        for (let g = iv.start; g <= iv.end; g++) {
          if (!contains(this.executed, sid, g)) {
            this.appendToBinlog({ sid, gno: g, at: now, writeId: -1 })
          }
        }
      }
    }
  }

  appendToBinlog(t: Trx): void {
    this.executed = addTransaction(this.executed, t.sid, t.gno)
    this.log.push(t)
  }

  /** Crash (kill -9): sessions die with their pending acks; relay logs are recovered at restart. */
  crash(): Array<PendingWrite> {
    this.up = false
    this.hung = false
    this.incarnation++
    const lost = this.pending
    this.pending = []
    return lost
  }

  /** Boot: super_read_only from my.cnf, relay_log_recovery drops unapplied relay logs. */
  boot(): void {
    this.up = true
    this.superReadOnly = true
    this.readOnly = true
    this.ioRunning = false
    this.sqlRunning = false
    this.relay = []
    this.retrieved = this.executed
    this.ioBacklog = []
    this.ioSourceIncarnation = -1
  }

  fence(): Array<PendingWrite> {
    this.superReadOnly = true
    this.readOnly = true
    return this.killSessions()
  }

  killSessions(): Array<PendingWrite> {
    const lost = this.pending
    this.pending = []
    return lost
  }

  makeWritable(): void {
    this.superReadOnly = false
    this.readOnly = false
  }

  stopIo(): void {
    this.ioRunning = false
  }

  resetReplicaAll(): void {
    this.ioRunning = false
    this.sqlRunning = false
    this.source = null
    this.relay = []
    this.retrieved = emptyGtidSet
    this.lastError = null
  }

  replicateFrom(source: string): void {
    this.source = source
    this.lastError = null
    this.ioRunning = true
    this.sqlRunning = true
    this.ioSourceIncarnation = -1 // reconnect with auto-position
  }

  startReplica(): void {
    if (this.source === null) return
    this.ioRunning = true
    this.sqlRunning = true
  }

  /** Whether every received transaction is applied. */
  relayApplied(): boolean {
    return this.relay.length === 0 && isSubset(this.retrieved, this.executed)
  }
}
