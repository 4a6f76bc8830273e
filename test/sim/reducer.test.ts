/**
 * Protocol rules checked on the real reducer, one input at a time, from
 * states taken out of a running simulation.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { formatGtidSet, singleton, union } from "../../agent/src/core/gtid.ts"
import { leaseValid } from "../../agent/src/core/lease.ts"
import { initialState } from "../../agent/src/core/reducer.ts"
import { leaderOf, leaseOf, promotionOf, roleName } from "../../agent/src/core/roles.ts"
import type { AgentState, Input, Output } from "../../agent/src/core/types.ts"
// Each hard state written at once, as the executor reports it (core/durability.ts).
import { promotingLeader } from "../support/leader-states.ts"
import { answering } from "../support/probe-answer.ts"
import { stepWritten as step } from "../support/written-step.ts"
import { dataMembers, makeConfig, simTimings, World } from "./world.ts"

/** A healthy 3-node cluster, 6 s in: db1 primary, db2 and db3 replicas. */
const running = (): World => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  return w
}

const voteResponses = (outputs: ReadonlyArray<Output>) =>
  outputs.flatMap((o) =>
    o._tag === "Send" && o.message._tag === "VoteResponse" ? [o.message] : [],
  )

const at = (s: AgentState, dt: number): number => s.now + dt

const voteRequest = (s: AgentState, from: string, term: number, received: string): Input => ({
  _tag: "PeerReceived",
  now: at(s, 1),
  from,
  message: {
    _tag: "VoteRequest",
    from,
    term,
    kind: "election",
    data: { serverUuid: "", received, backlog: 0, errant: "", replicationError: null },
  },
})

/** Feeds a vote request and whatever the freeze needs (IO stop done, fresh probe). */
const vote = (s: AgentState, input: Input): { state: AgentState; outputs: Array<Output> } => {
  let r = step(s, input)
  const outputs = [...r.outputs]
  const freeze = r.outputs.find((o) => o._tag === "Mysql" && o.action._tag === "StopReplicaIo")
  if (freeze !== undefined && freeze._tag === "Mysql") {
    r = step(r.state, {
      _tag: "MysqlDone",
      now: at(r.state, 2),
      incarnation: r.state.bootId,
      id: freeze.id,
      ok: true,
      error: null,
    })
    outputs.push(...r.outputs)
    const probe = r.state.local.probe!
    r = step(r.state, {
      _tag: "LocalProbed",
      ...answering(r.state),
      now: at(r.state, 3),
      result: {
        _tag: "Up",
        mysql: { ...probe, replica: probe.replica && { ...probe.replica, ioRunning: false } },
      },
    })
    outputs.push(...r.outputs)
  }
  return { state: r.state, outputs }
}

test("nothing happens before Start", () => {
  const s = initialState(makeConfig(dataMembers(3)), "db1")
  const r = step(s, { _tag: "Tick", now: 100, random: 0.5 })
  assert.equal(r.outputs.length, 0)
  assert.equal(r.state, s)
})

test("a follower in lease refuses to vote for anyone but its leader (section 5)", () => {
  const w = running()
  const s = w.node("db2").state
  assert.equal(leaderOf(s), "db1")
  const received = formatGtidSet(s.local.received)
  const r = vote(s, voteRequest(s, "db3", s.hard.term + 1, received))
  const [response] = voteResponses(r.outputs)
  assert.equal(response?.granted, false)
  assert.match(response?.reason ?? "", /in lease of db1/)
})

test("a vote is persisted before it is sent, and never given twice in a term (section 4)", () => {
  const w = running()
  // As if db3's lease promise had run out. (db3 ranks below db2: it may vote for it.)
  let s = w.node("db3").state
  s = { ...s, promise: null }
  const term = s.hard.term + 1
  const received = formatGtidSet(s.local.received)
  const first = vote(s, voteRequest(s, "db2", term, received))
  const persistAt = first.outputs.findIndex(
    (o) => o._tag === "PersistHardState" && o.hard.votedFor === "db2",
  )
  const sendAt = first.outputs.findIndex(
    (o) => o._tag === "Send" && o.message._tag === "VoteResponse",
  )
  assert.ok(
    persistAt >= 0 && sendAt > persistAt,
    "PersistHardState(votedFor=db2) comes before the vote",
  )
  assert.equal(voteResponses(first.outputs)[0]?.granted, true)
  const second = vote(first.state, voteRequest(first.state, "db1", term, received))
  const [again] = voteResponses(second.outputs)
  assert.equal(again?.granted, false)
  assert.match(again?.reason ?? "", /already voted for db2/)
})

test("a voter refuses a candidate that lacks transactions it has (section 7)", () => {
  const w = running()
  let s = w.node("db3").state
  s = { ...s, promise: null }
  const uuid = w.node("db1").mysqld!.uuid
  const mine = s.local.received
  // The candidate claims one transaction less of the primary's than this voter has.
  const last = mine.sids.get(uuid)!.at(-1)!.end
  const lacking = formatGtidSet(
    union(singleton(uuid, 1, last - 1), singleton("00000000-0000-4000-8000-00000000dead", 1, 500)),
  )
  const r = vote(s, voteRequest(s, "db2", s.hard.term + 1, lacking))
  const [response] = voteResponses(r.outputs)
  assert.equal(response?.granted, false)
  assert.match(response?.reason ?? "", /lacks transactions/)
})

test("a primary whose lease expires fences itself: VIP, super_read_only, kill, in that order (section 5)", () => {
  const w = running()
  const s = w.node("db1").state
  assert.ok(leaseValid(s))
  const r = step(s, { _tag: "Tick", now: leaseOf(s).validUntil + 1, random: 0.5 })
  const order = r.outputs.flatMap((o) =>
    o._tag === "Vip" ? [`vip-${o.op}`] : o._tag === "Mysql" ? [o.action._tag] : [],
  )
  const vip = order.indexOf("vip-remove")
  const fence = order.indexOf("Fence")
  const kill = order.indexOf("KillSessions")
  assert.ok(vip >= 0 && fence > vip && kill > fence, order.join(","))
  assert.ok(!leaseValid(r.state))
})

test("a primary that cannot restart its mysqld fences, then resigns (sections 6, 12)", () => {
  const w = running()
  w.killMysqld("db1", true)
  w.runUntil(w.now + 9000)
  assert.ok(w.node("db1").trace.some((l) => l.includes("resigned")))
  assert.ok(w.primary() === "db2" || w.primary() === "db3")
})

test("a witness never stands and holds no VIP (section 1)", () => {
  const w = new World({ seed: 5, members: dataMembers(2, 1) })
  w.runUntil(5000)
  w.fault("isolate db1")
  w.net.isolate("db1", w.names, ["agent", "mysql"])
  w.runUntil(25_000)
  assert.equal(w.primary(), "db2")
  const witness = w.node("w1").state
  assert.equal(roleName(witness), "follower")
  assert.equal(witness.hard.term, w.node("db2").state.hard.term)
})

test("a cluster that never had a primary is not failed over (section 16)", () => {
  const w = new World({ seed: 6, members: dataMembers(3), initialSource: null })
  w.runUntil(10_000)
  assert.equal(w.primary(), null)
  for (const name of ["db1", "db2", "db3"]) assert.equal(w.node(name).state.hard.term, 0)
})

/** db3 of a running cluster as if db1's lease were over, inside the anti-flap block of the failover that made db1 primary. */
const insideBlock = (): { w: World; s: AgentState } => {
  const w = running()
  const s0 = w.node("db3").state
  const record = { ...s0.hard.record, lastFailoverTerm: s0.hard.term, recoveryAcked: false }
  const s: AgentState = {
    ...s0,
    promise: null,
    hard: { ...s0.hard, record },
    recoveryBlock: { term: s0.hard.term, until: s0.now + 600_000 },
  }
  assert.equal(record.primary, "db1")
  return { w, s }
}

test("inside the anti-flap block a voter refuses any node but the last primary (section 10)", () => {
  const { s } = insideBlock()
  const received = formatGtidSet(s.local.received)
  const r = vote(s, voteRequest(s, "db2", s.hard.term + 1, received))
  const [response] = voteResponses(r.outputs)
  assert.equal(response?.granted, false)
  assert.match(response?.reason ?? "", /anti-flap block after the failover of term \d+: only db1/)
})

test("inside the anti-flap block the last primary may take the role back, with all the voter's data (section 10)", () => {
  const { w, s } = insideBlock()
  const received = formatGtidSet(s.local.received)
  const granted = vote(s, voteRequest(s, "db1", s.hard.term + 1, received))
  assert.equal(voteResponses(granted.outputs)[0]?.granted, true)
  // The completeness check still applies: not if it lacks one transaction this voter has.
  const uuid = w.node("db1").mysqld!.uuid
  const last = s.local.received.sids.get(uuid)!.at(-1)!.end
  const lacking = formatGtidSet(singleton(uuid, 1, last - 1))
  const refused = vote(s, voteRequest(s, "db1", s.hard.term + 1, lacking))
  const [response] = voteResponses(refused.outputs)
  assert.equal(response?.granted, false)
  assert.match(response?.reason ?? "", /lacks transactions/)
})

test("inside the anti-flap block a rival the block stops never ranks better than the last primary (section 10)", () => {
  const { w, s } = insideBlock()
  // db2 holds one transaction more than db1 (db1's commit in flight reached it, say).
  const uuid = w.node("db1").mysqld!.uuid
  const extra = singleton(uuid, s.local.received.sids.get(uuid)!.at(-1)!.end + 1)
  const db2 = s.peers.get("db2")!
  const withRival: AgentState = {
    ...s,
    peers: new Map(s.peers).set("db2", {
      ...db2,
      received: union(s.local.received, extra),
      lastHeardAt: s.now,
    }),
  }
  const received = formatGtidSet(s.local.received)
  // Outside the block db2 would rank better; inside it db2 cannot take the role.
  const outside: AgentState = { ...withRival, recoveryBlock: null }
  const refused = voteResponses(
    vote(outside, voteRequest(outside, "db1", s.hard.term + 1, received)).outputs,
  )[0]
  assert.equal(refused?.granted, false, JSON.stringify(refused))
  assert.match(refused?.reason ?? "", /db2 ranks better/)
  const granted = voteResponses(
    vote(withRival, voteRequest(withRival, "db1", s.hard.term + 1, received)).outputs,
  )[0]
  assert.equal(granted?.granted, true, granted?.reason)
})

test("a commit waiting for its acknowledgement (gtid_owned) counts in the node's data, not in gtid_executed; one stuck before (no waiter) does not (section 7)", () => {
  const w = running()
  const s = w.node("db1").state
  const probe = s.local.probe!
  const uuid = w.node("db1").mysqld!.uuid
  const waiting = singleton(uuid, probe.executed.sids.get(uuid)!.at(-1)!.end + 1)
  const probed = (semiSyncWaiters: number) =>
    step(s, {
      _tag: "LocalProbed",
      ...answering(s),
      now: at(s, 1),
      result: { _tag: "Up", mysql: { ...probe, committing: waiting, semiSyncWaiters } },
    }).state
  const r = probed(1)
  assert.equal(formatGtidSet(r.local.received), formatGtidSet(union(probe.executed, waiting)))
  assert.equal(r.local.executedText, formatGtidSet(probe.executed))
  // A full binlog disk: the commit owns its GTID but no commit waits for an acknowledgement.
  assert.equal(formatGtidSet(probed(0).local.received), formatGtidSet(probe.executed))
})

test("a promotion that aborts before its node is writable records no failover; one that makes it writable does (section 10)", () => {
  const w = new World({
    seed: 4,
    members: dataMembers(3),
    config: { timings: { ...simTimings, recoveryBlockPeriodMs: 600_000 } },
  })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  // Neither replica may set semi-sync: every promotion aborts after the record naming it is committed.
  for (const n of ["db2", "db3"]) w.node(n).mysqld!.systemVariablesDenied = true
  w.killMysqld("db1", true)
  w.runUntil(w.now + 15_000)
  assert.equal(w.primary(), null)
  const aborted = w.highestRecord()
  assert.ok(
    aborted.primary === "db2" || aborted.primary === "db3",
    `record names ${aborted.primary}`,
  )
  assert.equal(aborted.lastFailoverTerm, 0, "no failover recorded, so no anti-flap block")
  assert.equal(aborted.lastActive, "db1", "the last primary is still db1")
  for (const n of ["db2", "db3"]) w.node(n).mysqld!.systemVariablesDenied = false
  w.runUntil(w.now + 10_000)
  const primary = w.primary()
  assert.ok(primary === "db2" || primary === "db3")
  w.runUntil(w.now + 2000)
  const done = w.highestRecord()
  assert.equal(done.lastFailoverTerm, w.node(primary).state.hard.term, "this failover is recorded")
  assert.equal(done.recoveryAcked, false)
})

test("a winner whose mysqld fails before its promotion made it writable resigns instead of restarting it (sections 9, 12)", () => {
  const w = running()
  const s0 = w.node("db2").state
  // db2 won term T+1 and waits for its relay log; its mysqld is now down (health FAIL).
  const s: AgentState = {
    ...s0,
    hard: { ...s0.hard, term: s0.hard.term + 1, votedFor: "db2" },
    role: promotingLeader({
      term: s0.hard.term + 1,
      kind: "election",
      step: "apply-relay-log",
      oldPrimary: "db1",
      freshFrom: null,
      waitingFor: 99,
      stepDeadline: s0.now + 10_000,
      startedAt: s0.now,
      triggeredAt: s0.now,
      reason: "test",
    }),
    local: { ...s0.local, up: false, health: { ...s0.local.health, level: "FAIL" } },
  }
  const r = step(s, { _tag: "Tick", now: at(s, 10), random: 0.5 })
  assert.ok(!r.outputs.some((o) => o._tag === "RestartMysqld"), "no restart under its promotion")
  assert.ok(
    r.outputs.some((o) => o._tag === "Event" && o.event === "promotion-aborted"),
    "the promotion is aborted",
  )
  assert.equal(roleName(r.state), "follower")
  assert.equal(promotionOf(r.state), null)
})
