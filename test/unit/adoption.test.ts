// Adopting a running replication set (core/adoption.ts, protocol.md section
// 16): the split-brain guard leaves a writable source alone while the cluster
// has never recorded a primary, this node may be the first one, and no other
// node is writable or leads; replicas name their source by Source_UUID when
// Source_Host is not the config's address.
import assert from "node:assert/strict"
import { test } from "node:test"
import { adoptionEnds, recogniseSource } from "../../agent/src/core/adoption.ts"
import { decideVote } from "../../agent/src/core/election.ts"
import { guardWritability } from "../../agent/src/core/fencing.ts"
import { formatGtidSet, unsafeParseGtidSet } from "../../agent/src/core/gtid.ts"
import type { Outputs } from "../../agent/src/core/outputs.ts"
import { initialState } from "../../agent/src/core/reducer.ts"
import { resign } from "../../agent/src/core/resignation.ts"
import type { AgentState, Election, MysqlProbe, PeerView } from "../../agent/src/core/types.ts"
import { promotingLeader } from "../support/leader-states.ts"
import { config3, standbyState, UUID1 } from "./daemon-states.ts"

const NOW = 50_000

const replicaPeer = (over: Partial<PeerView> = {}): PeerView => {
  const v = standbyState().peers.get("db3") as PeerView
  return { ...v, lastHeardAt: NOW - 100, term: 0, leader: null, active: false, ...over }
}

/** db1 at its agent's first start: a source taking writes, replicas db2 and db3. */
const source = (over: Partial<AgentState> = {}): AgentState => {
  const s = initialState(config3, "db1")
  const probe: MysqlProbe = {
    serverUuid: UUID1,
    readOnly: false,
    superReadOnly: false,
    executed: unsafeParseGtidSet(`${UUID1}:1-100`),
    replica: null,
    semiSyncSourceOn: false,
    semiSyncReplicaOn: false,
    semiSyncWaiters: 0,
  }
  return {
    ...s,
    started: true,
    now: NOW,
    local: { ...s.local, probe, up: true, lastProbeAt: NOW - 100 },
    peers: new Map([
      ["db2", replicaPeer()],
      ["db3", replicaPeer()],
    ]),
    ...over,
  }
}

const fences = (s: AgentState): boolean => {
  const out: Outputs = []
  guardWritability(s, out)
  return out.some((o) => o._tag === "Mysql" && o.action._tag === "Fence")
}

test("a running source is adopted, not fenced, at its agent's first start", () => {
  assert.equal(adoptionEnds(source()), null)
  assert.equal(fences(source()), false)
  // Alone (no peer heard yet): the same.
  assert.equal(fences(source({ peers: new Map() })), false)
  // Standing for term 1 (its own bootstrap): still not fenced.
  const standing: Election = {
    kind: "bootstrap",
    phase: "vote",
    term: 1,
    granted: new Set(["db1"]),
    records: [],
    deadline: NOW + 1000,
    resentAt: null,
    triggeredAt: NOW,
    reason: "bootstrap",
  }
  assert.equal(
    fences(
      source({
        role: { _tag: "Candidate", election: standing },
        hard: { ...source().hard, term: 1, votedFor: "db1" },
      }),
    ),
    false,
  )
})

test("the guard fences as before once adoption does not apply", () => {
  const s = source()
  const cases: Array<[string, AgentState, RegExp]> = [
    [
      "another node writable",
      source({ peers: new Map([["db2", replicaPeer({ writable: true })]]) }),
      /db2 is writable too/,
    ],
    [
      "another node leads",
      source({ role: { _tag: "Follower", leader: "db2", leaderActive: false } }),
      /db2 leads/,
    ],
    [
      "a peer follows another leader",
      source({ peers: new Map([["db3", replicaPeer({ leader: "db2", term: 1 })]]) }),
      /db3 follows db2/,
    ],
    [
      "a primary was recorded",
      source({
        hard: { ...s.hard, term: 1, record: { ...s.hard.record, term: 1, seq: 1, primary: "db2" } },
      }),
      /recorded in term 1/,
    ],
    [
      "initial_primary names another",
      source({ config: { ...config3, initialPrimary: "db2" } }),
      /initial_primary is db2/,
    ],
    [
      "failover_before_healthy",
      source({ config: { ...config3, failoverBeforeHealthy: true } }),
      /failover_before_healthy/,
    ],
  ]
  for (const [what, state, why] of cases) {
    assert.match(adoptionEnds(state) ?? "", why, what)
    assert.equal(fences(state), true, what)
  }
  // initial_primary naming this node itself: adopted.
  assert.equal(fences(source({ config: { ...config3, initialPrimary: "db1" } })), false)
})

test("a replica's Source_Host in another form is recognised by Source_UUID", () => {
  const s = standbyState()
  const db1 = s.peers.get("db1") as PeerView
  const withUuid: AgentState = {
    ...s,
    peers: new Map([...s.peers, ["db1", { ...db1, serverUuid: UUID1 }]]),
  }
  const probe = s.local.probe as MysqlProbe
  const replica = probe.replica!
  const seen = (source: string, sourceUuid?: string) =>
    recogniseSource(withUuid, {
      ...probe,
      replica: { ...replica, source, ...(sourceUuid === undefined ? {} : { sourceUuid }) },
    }).replica?.source
  assert.equal(seen("db1.example.com:3306", UUID1), "db1")
  assert.equal(seen("::ffff:10.0.0.11:3306", UUID1), "db1")
  // Unknown UUID, or not connected yet (no UUID): left as it is.
  assert.equal(
    seen("db1.example.com:3306", "bbbbbbbb-71ca-11e1-9e33-c80aa9429562"),
    "db1.example.com:3306",
  )
  assert.equal(seen("db1.example.com:3306"), "db1.example.com:3306")
  // A member name stays.
  assert.equal(seen("db3", UUID1), "db3")
})

test("a replica votes for the source being adopted though the source's report lags behind what it received", () => {
  // db2 received db1's transactions 1-105; db1's last probe (in its request) says 1-100.
  const s = initialState(config3, "db2")
  const received = unsafeParseGtidSet(`${UUID1}:1-105`)
  const voter: AgentState = {
    ...s,
    started: true,
    now: NOW,
    local: {
      ...s.local,
      up: true,
      lastProbeAt: NOW - 100,
      received,
      probe: {
        serverUuid: "bbbbbbbb-71ca-11e1-9e33-c80aa9429562",
        readOnly: true,
        superReadOnly: true,
        executed: received,
        replica: {
          source: "db1",
          ioRunning: true,
          sqlRunning: true,
          retrieved: received,
          lagSeconds: 0,
          lastError: null,
        },
        semiSyncSourceOn: false,
        semiSyncReplicaOn: true,
        semiSyncWaiters: 0,
      },
    },
    peers: new Map([["db1", replicaPeer({ source: null, writable: true, serverUuid: UUID1 })]]),
  }
  const data = (uuid: string, set: string) => ({
    serverUuid: uuid,
    received: set,
    backlog: 0,
    errant: "",
    replicationError: null,
  })
  const lagging = data(UUID1, formatGtidSet(unsafeParseGtidSet(`${UUID1}:1-100`)))
  assert.deepEqual(decideVote(voter, "db1", "bootstrap", lagging), { ok: true })
  // Transactions of another server that the candidate lacks still refuse the vote.
  const other = "cccccccc-71ca-11e1-9e33-c80aa9429562"
  const withOther: AgentState = {
    ...voter,
    local: { ...voter.local, received: unsafeParseGtidSet(`${UUID1}:1-105,${other}:1-2`) },
  }
  assert.match(decideVote(withOther, "db1", "bootstrap", lagging).ok ? "" : "refused", /refused/)
})

test("its own first promotion keeps the source writable; an abort before the record is committed does not fence it", () => {
  const base = source()
  const promoting = (recordTerm: number): AgentState => ({
    ...base,
    hard: {
      ...base.hard,
      term: 1,
      votedFor: "db1",
      record:
        recordTerm === 0
          ? base.hard.record
          : { ...base.hard.record, term: 1, seq: 1, primary: "db1", lastActive: null },
    },
    role: promotingLeader({
      term: 1,
      kind: "bootstrap",
      step: recordTerm === 0 ? "commit-record" : "semi-sync",
      freshFrom: null,
      oldPrimary: null,
      waitingFor: null,
      stepDeadline: NOW + 1000,
      startedAt: NOW,
      triggeredAt: NOW,
      reason: "bootstrap",
    }),
  })
  assert.equal(fences(promoting(0)), false)
  assert.equal(fences(promoting(1)), false, "the record names it, the promotion goes on")
  const fenceIn = (s: AgentState) => {
    const out: Outputs = []
    resign(s, out, "promotion aborted: test")
    return out.some((o) => o._tag === "Mysql" && o.action._tag === "Fence")
  }
  assert.equal(fenceIn(promoting(0)), false, "no quorum recorded it: nobody else can win")
  // Once a quorum recorded it as the primary, an abort fences as before: another node may
  // then be elected, and could not fence it if it were cut off.
  assert.equal(fenceIn(promoting(1)), true)
})
