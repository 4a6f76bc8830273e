// Core states as the daemon's HTTP endpoints and metrics see them: an ACTIVE
// primary, a STANDBY replica, a FAIL node, built from the reducer's initial
// state (no simulator), for test/unit/metrics.test.ts and http.test.ts.
import type { ClusterConfig } from "../../agent/src/core/config.ts"
import { defaultTimings } from "../../agent/src/core/config.ts"
import { emptyGtidSet, unsafeParseGtidSet } from "../../agent/src/core/gtid.ts"
import { defaultHealthThresholds } from "../../agent/src/core/health.ts"
import { initialState } from "../../agent/src/core/reducer.ts"
import type { AgentState, MysqlProbe, PeerView } from "../../agent/src/core/types.ts"

export const UUID1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"

export const config3: ClusterConfig = {
  members: ["db1", "db2", "db3"].map((name, i) => ({
    name,
    priority: 100 - i,
    promotable: true,
    kind: "data" as const,
  })),
  timings: defaultTimings,
  health: defaultHealthThresholds,
  semiSync: "strict",
  autoRejoin: true,
  failback: false,
  initialPrimary: null,
  failoverBeforeHealthy: false,
  allowErrantPromotion: false,
  fenceCommand: null,
}

const NOW = 100_000

const peer = (over: Partial<PeerView> = {}): PeerView => ({
  lastHeardAt: NOW - 200,
  term: 3,
  leader: "db1",
  active: true,
  role: "STANDBY",
  mysqlUp: true,
  serverUuid: null,
  writable: false,
  executed: emptyGtidSet,
  received: emptyGtidSet,
  source: "db1",
  replicating: true,
  replicationError: null,
  backlog: 2,
  lagSeconds: 1,
  errant: false,
  healthy: true,
  eligible: true,
  probedPrimary: null,
  primaryReachable: null,
  primaryFenced: null,
  heardOthersAt: new Map(),
  executedText: "",
  retrievedText: "",
  ...over,
})

const probe = (over: Partial<MysqlProbe> = {}): MysqlProbe => ({
  serverUuid: UUID1,
  readOnly: false,
  superReadOnly: false,
  executed: unsafeParseGtidSet(`${UUID1}:1-100`),
  replica: null,
  semiSyncSourceOn: true,
  semiSyncReplicaOn: true,
  semiSyncWaiters: 0,
  ...over,
})

const base = (self: string): AgentState => {
  const s = initialState(config3, self)
  return {
    ...s,
    started: true,
    now: NOW,
    hard: { ...s.hard, term: 3, record: { ...s.hard.record, term: 3, seq: 1, primary: "db1" } },
  }
}

/** db1: the leader of term 3, promoted, inside its lease, writable, holding the VIP. */
export const activeState = (): AgentState => {
  const s = base("db1")
  return {
    ...s,
    local: {
      ...s.local,
      probe: probe(),
      up: true,
      lastProbeAt: NOW - 100,
      health: { ...s.local.health, level: "OK" },
      vip: { held: true, pending: null },
    },
    role: {
      _tag: "Leader",
      leaderActive: true,
      lease: { rounds: new Map(), validUntil: NOW + 3_000, fencedAt: null },
      switchover: null,
      promotion: {
        term: 3,
        kind: "election",
        step: "done",
        freshFrom: null,
        oldPrimary: null,
        waitingFor: null,
        stepDeadline: 0,
        startedAt: NOW - 5_000,
        triggeredAt: NOW - 6_000,
        reason: "test",
      },
    },
    peers: new Map([
      ["db2", peer()],
      ["db3", peer({ lastHeardAt: NOW - 60_000, healthy: false, role: "FAIL", mysqlUp: false })],
    ]),
  }
}

/** db2: a replica of db1 with both threads running, `lagSeconds` behind. */
export const standbyState = (lagSeconds: number | null = 1): AgentState => {
  const s = base("db2")
  return {
    ...s,
    role: { _tag: "Follower", leader: "db1", leaderActive: true },
    local: {
      ...s.local,
      probe: probe({
        readOnly: true,
        superReadOnly: true,
        semiSyncSourceOn: false,
        semiSyncReplicaOn: true,
        semiSyncWaiters: 0,
        replica: {
          source: "db1",
          ioRunning: true,
          sqlRunning: true,
          retrieved: unsafeParseGtidSet(`${UUID1}:1-103`),
          lagSeconds,
          lastError: null,
        },
      }),
      up: true,
      lastProbeAt: NOW - 100,
      health: { ...s.local.health, level: "OK" },
      vip: { held: false, pending: null },
      errant: unsafeParseGtidSet("aaaaaaaa-71ca-11e1-9e33-c80aa9429562:1-3"),
    },
    promise: { leader: "db1", term: 3, until: NOW + 3_500 },
    peers: new Map([
      ["db1", peer({ role: "ACTIVE", writable: true, source: null, replicating: false })],
      ["db3", peer()],
    ]),
  }
}

/** db3: its mysqld is down. */
export const failState = (): AgentState => {
  const s = base("db3")
  return {
    ...s,
    role: { _tag: "Follower", leader: "db1", leaderActive: true },
    local: {
      ...s.local,
      up: false,
      lastProbeAt: NOW - 100,
      health: { ...s.local.health, level: "FAIL", consecutiveFailures: 5 },
    },
  }
}

/** A node that has not probed its mysqld nor heard a leader yet. */
export const freshState = (): AgentState => ({ ...initialState(config3, "db3"), started: true })
