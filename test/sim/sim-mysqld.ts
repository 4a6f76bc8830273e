/**
 * A simulated mysqld: GTID executed set and binlog, a replica's IO thread
 * (relay log, retrieved set) and SQL thread, semi-sync acknowledgements,
 * super_read_only, crashes and hangs. Enough of MySQL's behaviour to judge
 * the agents, nothing more; and where the order of the agent's side effects
 * matters, MySQL's behaviour as the lab asserts it on MySQL 9.7:
 *
 * - a commit under semi-sync (rpl_semi_sync_source_enabled ON) waits for
 *   rpl_semi_sync_source_wait_for_replica_count acknowledgements; turning
 *   semi-sync off as a source releases every waiter and its client gets OK
 *   (test/lab/semisync-behaviour.test.ts "super_read_only = ON pends behind a
 *   waiting commit and reverts at its timeout; disabling semi-sync gives the
 *   waiter OK"); the waiters are counted (Rpl_semi_sync_source_wait_sessions)
 *   ("while a fence pends behind a waiter: ... the waiter is counted");
 * - `SET GLOBAL super_read_only = ON` pends behind a waiting commit: meanwhile
 *   super_read_only reads ON and read_only OFF, and new writes wait behind it;
 *   it completes once no commit waits; aborted (a timeout kills its
 *   connection) it puts the old value back (the same two tests);
 * - KILL of a waiting session: its client gets an error at once and never OK,
 *   the transaction stays in the binlog ("KILL CONNECTION of a waiting
 *   session ..."); a SYSTEM_USER session cannot be killed by the agent
 *   ("... the agent may not KILL a SYSTEM_USER session"; test/lab/demotion.test.ts
 *   runs its application user so);
 * - kill -9 while a commit waits: the client gets an error, the restarted
 *   server holds the transaction and is read-only ("kill -9 of mysqld while a
 *   commit waits ...");
 * - relay_log_recovery=ON discards received but unapplied transactions at
 *   every start (test/lab/relay-log.test.ts "relay_log_recovery=OFF keeps a
 *   killed replica's relay log, ON discards it");
 * - a hung mysqld (SIGSTOP) accepts connections and never answers, a stopped
 *   one refuses them (test/lab/hung-mysqld.test.ts reads the greeting of both):
 *   the world's adapters answer a query on a hung server with a timeout, on a
 *   stopped one with "connection refused";
 * - lowering rpl_semi_sync_source_wait_for_replica_count releases the waiters
 *   that have as many acknowledgements as the new count: their clients get OK,
 *   as when semi-sync is turned off; lowering rpl_semi_sync_source_timeout
 *   releases nobody already waiting (test/lab/semisync-behaviour.test.ts
 *   "lowering rpl_semi_sync_source_wait_for_replica_count releases a waiting
 *   commit with OK; lowering rpl_semi_sync_source_timeout does not");
 * - a relay-log disk that is full: the IO thread, once it has a transaction
 *   to write, waits for disk space (Replica_IO_State "Waiting for disk
 *   space"): it writes and acknowledges nothing, and a commit that only it
 *   could acknowledge waits until the disk is freed; Seconds_Behind_Source
 *   stays 0 meanwhile (the applier has caught up with the relay log, however
 *   far behind the source it is); `STOP REPLICA [IO_THREAD]` (and so RESET
 *   REPLICA ALL and a repoint) waits with the IO thread until the disk is
 *   freed, when the IO thread writes (and acknowledges) what it held and, if a
 *   STOP waits, stops (test/lab/relay-log.test.ts "a replica whose relay log
 *   disk is full: ...": the commit waits and gets OK once the disk is freed;
 *   Seconds_Behind_Source 0 while it waits; the voter's freeze does not
 *   finish, "could not stop replication in time"; that the IO thread stops
 *   once the disk is freed is not asserted). MySQL retries the write every
 *   60 s (on the lab the commit got OK 52 s after the disk was freed): the
 *   simulated IO thread resumes at once;
 * - CLONE INSTANCE: the recipient's data is replaced by the donor's and
 *   mysqld restarts (through its service manager) with it, keeping its
 *   server_uuid, fenced (super_read_only from my.cnf), replication not
 *   configured (test/lab/mysql-adapters.test.ts "clone re-seeds a detached
 *   replica from a donor").
 *
 * Not modelled: lag beyond the relay log; the semi-sync timeout itself (a
 * waiter released with OK once rpl_semi_sync_source_timeout passes, and the
 * fallback to asynchronous commits: every simulated run is strict, where the
 * agent sets the timeout to a year; no lab test asserts how a lowered timeout
 * treats later commits: on the lab the next commit still waited 10 s behind
 * the old waiter); a SHOW REPLICA
 * STATUS that blocks behind a hanging STOP REPLICA (seen on the lab, not
 * asserted); a clone copies the donor's binlog too (MySQL's does not: a
 * replica of the recipient then fetches what it lacks elsewhere).
 */
import {
  addTransaction,
  contains,
  emptyGtidSet,
  type GtidSet,
  isSubset,
  nextGno,
  subtract,
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
  /** Made by a SYSTEM_USER application user: the agent may not KILL its session. */
  readonly systemUser: boolean
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
  /** rpl_semi_sync_source_enabled: commits wait for acknowledgements. */
  semiSyncSourceEnabled = false
  semiSyncWaitCount = 1
  /** Commits waiting for acknowledgements (their clients wait for OK). */
  pending: Array<PendingWrite> = []
  /** A `SET GLOBAL super_read_only = ON` that waits behind `pending`. */
  fencePending = false
  /** Called with true when a pending fence completes, false when it is aborted or mysqld dies. */
  private fenceWaiters: Array<(done: boolean) => void> = []
  /** The application's writes come from a SYSTEM_USER user (KILL denied to the agent). */
  systemUserClients = false
  /** When this process started (world ms): every boot is a new process. */
  bootedAt = 0
  /** Bumped on every crash: replicas reconnect. */
  incarnation = 0
  /** The relay log's disk has no room left (it stays full across restarts: it is the disk). */
  relayDiskFull = false
  /** The IO thread holds a transaction it cannot write: Replica_IO_State "Waiting for disk space". */
  ioWaitingForDisk = false
  /** STOP REPLICA statements waiting for the IO thread (called with false when mysqld dies). */
  private ioStopWaiters: Array<(stopped: boolean) => void> = []

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

  /**
   * Commits waiting for acknowledgements: in the binlog (`executed` here) and
   * owned by their sessions (@@gtid_owned), not yet in @@gtid_executed
   * (test/lab/semisync-behaviour.test.ts "kill -9 ... its GTID is owned, not
   * executed"); crash recovery commits them.
   */
  get committing(): GtidSet {
    return this.pending.reduce((set, p) => addTransaction(set, this.uuid, p.gno), emptyGtidSet)
  }

  /** @@gtid_executed as a client reads it: the binlog less the commits in flight. */
  get gtidExecuted(): GtidSet {
    return this.pending.length === 0 ? this.executed : subtract(this.executed, this.committing)
  }

  /** `clients`: semi-sync replicas connected now (the world knows the network). */
  probe(clients = 0): MysqlProbe {
    return {
      serverUuid: this.uuid,
      readOnly: this.readOnly,
      superReadOnly: this.superReadOnly,
      executed: this.gtidExecuted,
      ...(this.pending.length === 0 ? {} : { committing: this.committing }),
      replica:
        this.source === null
          ? null
          : {
              source: this.source,
              ioRunning: this.ioRunning,
              ioStatus: this.ioWaitingForDisk ? "Waiting for disk space" : "",
              sqlRunning: this.sqlRunning,
              retrieved: this.retrieved,
              lagSeconds: this.relay.length > 0 ? 0.1 : 0,
              lastError: this.lastError,
            },
      relayLogRecovery: true,
      semiSyncSourceOn: this.semiSyncSourceEnabled,
      semiSyncSourceEnabled: this.semiSyncSourceEnabled,
      semiSyncReplicaOn: true,
      semiSyncWaiters: this.semiSyncSourceEnabled ? this.pending.length : 0,
      semiSyncClients: clients,
      semiSyncWaitCount: this.semiSyncWaitCount,
    }
  }

  /**
   * A client transaction on this server (must be writable): in the binlog at
   * once; under semi-sync its client waits (`pending`), else it has OK now.
   */
  commit(writeId: number, now: number): PendingWrite {
    const gno = nextGno(this.executed, this.uuid)
    this.appendToBinlog({ sid: this.uuid, gno, at: now, writeId })
    const p: PendingWrite = {
      writeId,
      gno,
      acks: new Set(),
      systemUser: this.systemUserClients,
    }
    if (this.semiSyncSourceEnabled) this.pending.push(p)
    return p
  }

  /** The waiters that got their acknowledgements (or were released, killed, lost) are gone. */
  setPending(keep: Array<PendingWrite>): void {
    this.pending = keep
    if (this.fencePending && keep.length === 0) this.settleFence(true)
  }

  private settleFence(done: boolean): void {
    this.fencePending = false
    if (done) this.readOnly = true
    const waiters = this.fenceWaiters
    this.fenceWaiters = []
    for (const w of waiters) w(done)
  }

  /**
   * `SET GLOBAL super_read_only = ON`: done at once (true), or pending behind
   * waiting commits (false): super_read_only reads ON, read_only OFF, and
   * `onDone` is called when it completes or is aborted.
   */
  requestFence(onDone: (done: boolean) => void): boolean {
    this.superReadOnly = true
    if (this.pending.length === 0 && !this.fencePending) {
      this.readOnly = true
      return true
    }
    this.fencePending = true
    this.fenceWaiters.push(onDone)
    return false
  }

  /** The pending SET was aborted (its connection killed at a timeout): MySQL puts the old value back. */
  abortFence(): void {
    if (!this.fencePending) return
    this.superReadOnly = false
    this.settleFence(false)
  }

  /**
   * rpl_semi_sync_source_enabled and the wait count (the timeout releases
   * nobody waiting): turning it off releases every waiter, lowering the count
   * those that have enough acknowledgements; returned, their clients get OK.
   */
  setSemiSyncSource(enabled: boolean, waitCount: number): Array<PendingWrite> {
    this.semiSyncSourceEnabled = enabled
    this.semiSyncWaitCount = waitCount
    const released = enabled ? this.pending.filter((p) => p.acks.size >= waitCount) : this.pending
    if (released.length > 0) this.setPending(this.pending.filter((p) => !released.includes(p)))
    return released
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
    if (this.fencePending) this.settleFence(false)
    this.ioWaitingForDisk = false
    this.settleIoStop(false)
    return lost
  }

  /**
   * rpl_semi_sync_source_enabled after a start: what my.cnf says. ON by
   * default here. OFF is what the lab's my.cnf gives (a runtime SET GLOBAL is
   * lost at restart), and then a primary whose mysqld restarted under its
   * lease is made writable without semi-sync (the core re-enables it only when
   * it promotes): seed 48 loses acknowledged writes so (simulator.test.ts).
   */
  semiSyncSourceAtBoot = true

  /**
   * Boot: super_read_only from my.cnf, relay_log_recovery drops unapplied
   * relay logs, semi-sync as a source from my.cnf.
   */
  boot(now: number): void {
    this.bootedAt = now
    this.up = true
    this.superReadOnly = true
    this.readOnly = true
    this.semiSyncSourceEnabled = this.semiSyncSourceAtBoot
    this.ioRunning = false
    this.sqlRunning = false
    this.relay = []
    this.retrieved = this.executed
    this.ioBacklog = []
    this.ioSourceIncarnation = -1
  }

  /** KILL of every client session the agent may kill: their clients get an error. */
  killSessions(): Array<PendingWrite> {
    const killed = this.pending.filter((p) => !p.systemUser)
    if (killed.length > 0) this.setPending(this.pending.filter((p) => p.systemUser))
    return killed
  }

  makeWritable(): void {
    if (this.fencePending) this.settleFence(false)
    this.superReadOnly = false
    this.readOnly = false
  }

  stopIo(): void {
    this.ioRunning = false
  }

  /**
   * STOP REPLICA's wait for the IO thread: stopped now (true), or, while the
   * IO thread waits for disk space, once the disk is freed (`onStopped`).
   */
  requestIoStop(onStopped: (stopped: boolean) => void): boolean {
    if (!this.ioWaitingForDisk) {
      this.ioRunning = false
      return true
    }
    this.ioStopWaiters.push(onStopped)
    return false
  }

  /** Whether a STOP REPLICA waits for the IO thread (its kill flag is set). */
  get ioStopRequested(): boolean {
    return this.ioStopWaiters.length > 0
  }

  /** The disk has room again: the IO thread wrote what it held (the world did); a STOP takes effect. */
  diskFreed(): void {
    this.relayDiskFull = false
    this.ioWaitingForDisk = false
    if (this.ioStopRequested) {
      this.ioRunning = false
      this.settleIoStop(true)
    }
  }

  private settleIoStop(stopped: boolean): void {
    const waiters = this.ioStopWaiters
    this.ioStopWaiters = []
    for (const w of waiters) w(stopped)
  }

  /** A CLONE INSTANCE finished copying `donor`: this server holds the donor's data (restart follows). */
  cloneFrom(donor: SimMysqld): void {
    this.executed = donor.executed
    this.log = [...donor.log]
    this.source = null
    this.ioRunning = false
    this.sqlRunning = false
    this.relay = []
    this.retrieved = emptyGtidSet
    this.lastError = null
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
