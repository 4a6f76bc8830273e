/**
 * Issue 13 (planned switchover, write block per leg): once fenced, the
 * primary asks the target's mysqld to answer when it has executed
 * everything the primary executed (WaitForExecutedAt), and transfers on that
 * answer instead of waiting for the target's next probe and heartbeat (up to
 * a second). The heartbeat still counts when the wait fails; a late answer
 * after a rollback is never a transfer. The target stands only on a probe of
 * its own taken after the transfer arrived, so its vote request carries the
 * data the primary saw. On the real reducer, from a simulated running cluster.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { type GtidSet, sidsOf, singleton } from "../../agent/src/core/gtid.ts"
import { leaderOf, leaseOf, roleName, switchoverOf } from "../../agent/src/core/roles.ts"
import type { AgentState, Input, Output } from "../../agent/src/core/types.ts"
import { dataMembers, World } from "../sim/world.ts"
import { primaryAndTarget } from "../support/leader-states.ts"
import { answering } from "../support/probe-answer.ts"
// Each hard state written at once, as the executor reports it (core/durability.ts).
import { stepWritten as step } from "../support/written-step.ts"

const world = (): World => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  return w
}

const sidOf = (s: AgentState): string => sidsOf(s.local.probe!.executed)[0]!

/** db1 executed 1..n; db2 executed and received 1..targetN, heard now. */
const at = (s: AgentState, now: number, n: number, targetN: number): AgentState =>
  primaryAndTarget(s, now, n, { executed: targetN, received: targetN })

const run = (s: AgentState, input: Input) => step(s, input)

const mysqlDone = (s: AgentState, id: number, ok: boolean, now: number) =>
  run(s, {
    _tag: "MysqlDone",
    now,
    incarnation: s.bootId,
    id,
    ok,
    error: ok ? null : "not executed on db2 within 4000 ms",
  })

const probed = (s: AgentState, now: number, executed: GtidSet, superReadOnly: boolean) =>
  run(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now,
    result: {
      _tag: "Up",
      mysql: { ...s.local.probe!, executed, superReadOnly, readOnly: superReadOnly },
    },
  })

const transfers = (outputs: ReadonlyArray<Output>): boolean =>
  outputs.some((o) => o._tag === "Send" && o.message._tag === "TransferLeadership")

/** db1 asked for a switchover to db2 (caught up) and fenced: the catch-up phase, probe pending. */
const fenced = (w: World, n: number) => {
  const s0 = w.node("db1").state
  const t0 = s0.now + 10
  let r = run(at(s0, t0, n, n), {
    _tag: "Operator",
    now: t0,
    requestId: 7,
    request: { _tag: "Switchover", to: "db2", dryRun: false, drainTimeoutMs: null },
  })
  const hook = r.outputs.find((o) => o._tag === "RunHook")
  assert.ok(hook?._tag === "RunHook" && hook.hook === "pre_switchover")
  r = run(r.state, {
    _tag: "HookDone",
    now: t0 + 5,
    incarnation: r.state.bootId,
    id: hook.id,
    exitCode: 0,
  })
  const fence = r.outputs.find((o) => o._tag === "Mysql" && o.action._tag === "Fence")
  assert.ok(fence?._tag === "Mysql")
  r = mysqlDone(r.state, fence.id, true, t0 + 20)
  assert.equal(switchoverOf(r.state)?.phase, "catch-up")
  assert.ok(
    r.outputs.some((o) => o._tag === "ProbeLocal"),
    "the fenced set is read at once",
  )
  return { s: r.state, t0 }
}

/** The fresh probe after the fence: db1 executed 1..n; returns the WaitForExecutedAt asked. */
const askTarget = (s: AgentState, now: number, n: number) => {
  const r = probed(s, now, singleton(sidOf(s), 1, n), true)
  const wait = r.outputs.find((o) => o._tag === "Mysql" && o.action._tag === "WaitForExecutedAt")
  assert.ok(wait?._tag === "Mysql" && wait.action._tag === "WaitForExecutedAt")
  return { r, wait, action: wait.action }
}

test("after the fence the target's mysqld is asked for the fenced set; its answer transfers at once", () => {
  const w = world()
  const { s, t0 } = fenced(w, 100)
  const { r, wait, action } = askTarget(s, t0 + 25, 103)
  assert.equal(action.target, "db2")
  assert.deepEqual(action.gtids, singleton(sidOf(s), 1, 103))
  assert.ok(action.timeoutMs > 0 && action.timeoutMs <= s.config.timings.switchoverTimeoutMs)
  assert.equal(transfers(r.outputs), false, "db2's heartbeat still shows 1..100: no transfer yet")
  // db2's mysqld answers: executed. No heartbeat of db2 in between.
  const done = mysqlDone(r.state, wait.id, true, t0 + 30)
  assert.equal(transfers(done.outputs), true)
  assert.equal(switchoverOf(done.state)?.phase, "transferring")
  assert.equal(leaseOf(done.state).validUntil, 0, "the lease is given up with the consent")
  const ev = done.outputs.find((o) => o._tag === "Event" && o.event === "transfer")
  assert.ok(ev?._tag === "Event")
  assert.match(ev.reason, /db2 executed .*:1-103/)
})

test("a failed wait on the target's mysqld proves nothing: the heartbeat that shows the set transfers", () => {
  const w = world()
  const { s, t0 } = fenced(w, 100)
  const { r, wait } = askTarget(s, t0 + 25, 103)
  const failed = mysqlDone(r.state, wait.id, false, t0 + 30)
  assert.equal(transfers(failed.outputs), false)
  assert.equal(switchoverOf(failed.state)?.phase, "catch-up")
  assert.ok(failed.outputs.some((o) => o._tag === "Event" && o.event === "mysql-action-failed"))
  // db2's heartbeat lacks 103: nothing; then one that has it.
  const short = step(at(failed.state, t0 + 200, 103, 102), {
    _tag: "Tick",
    now: t0 + 200,
    random: 0.5,
  })
  assert.equal(transfers(short.outputs), false)
  const caught = step(at(short.state, t0 + 400, 103, 103), {
    _tag: "Tick",
    now: t0 + 400,
    random: 0.5,
  })
  assert.equal(transfers(caught.outputs), true)
})

test("a target of an older release (no standsOnOwnProbe): its mysqld is not asked, its heartbeat showing the set transfers", () => {
  // It stands on the data it last probed; transferring before its heartbeat shows the set
  // gets it refused by the voters ("lacks transactions"), as seen in a rolling upgrade.
  const older = (s: AgentState): AgentState => {
    const v = s.peers.get("db2")!
    return { ...s, peers: new Map(s.peers).set("db2", { ...v, standsOnOwnProbe: false }) }
  }
  const w = world()
  const { s, t0 } = fenced(w, 100)
  const r = probed(older(s), t0 + 25, singleton(sidOf(s), 1, 103), true)
  assert.ok(
    !r.outputs.some((o) => o._tag === "Mysql" && o.action._tag === "WaitForExecutedAt"),
    "no wait on an older target's mysqld",
  )
  assert.equal(transfers(r.outputs), false)
  const short = step(older(at(r.state, t0 + 200, 103, 102)), {
    _tag: "Tick",
    now: t0 + 200,
    random: 0.5,
  })
  assert.equal(transfers(short.outputs), false)
  const caught = step(older(at(short.state, t0 + 400, 103, 103)), {
    _tag: "Tick",
    now: t0 + 400,
    random: 0.5,
  })
  assert.equal(transfers(caught.outputs), true)
})

test("a late answer of the target's mysqld after the rollback is no transfer", () => {
  const w = world()
  const { s, t0 } = fenced(w, 100)
  const { r, wait } = askTarget(s, t0 + 25, 103)
  const deadline = switchoverOf(r.state)!.deadline
  const rolled = step(at(r.state, deadline + 1, 103, 101), {
    _tag: "Tick",
    now: deadline + 1,
    random: 0.5,
  })
  assert.equal(switchoverOf(rolled.state), null)
  assert.ok(rolled.outputs.some((o) => o._tag === "Event" && o.event === "switchover-rollback"))
  const late = mysqlDone(rolled.state, wait.id, true, deadline + 5)
  assert.equal(transfers(late.outputs), false)
  assert.equal(switchoverOf(late.state), null)
})

test("the target stands on a probe taken after the transfer arrived, not on the one before", () => {
  const w = world()
  const s0 = w.node("db2").state
  assert.equal(leaderOf(s0), "db1")
  const sid = sidOf(s0)
  const now = s0.now + 10
  // A periodic probe is in flight when the transfer arrives: its answer (older data) comes first.
  const inFlight: AgentState = { ...s0, now, local: { ...s0.local, probeSentAt: now - 2 } }
  let r = run(inFlight, {
    _tag: "PeerReceived",
    now,
    from: "db1",
    message: { _tag: "TransferLeadership", from: "db1", term: s0.hard.term, to: "db2" },
  })
  assert.ok(r.outputs.some((o) => o._tag === "ProbeLocal"))
  const voteRequests = (outputs: ReadonlyArray<Output>) =>
    outputs.flatMap((o) =>
      o._tag === "Send" && o.message._tag === "VoteRequest" ? [o.message] : [],
    )
  assert.equal(voteRequests(r.outputs).length, 0, "no vote before a fresh probe")
  const probeOf = (n: number) => ({
    ...s0.local.probe!,
    executed: singleton(sid, 1, n),
    replica: { ...s0.local.probe!.replica!, retrieved: singleton(sid, 1, n) },
  })
  // The periodic probe was sent before the transfer's own (numbered one before it).
  const transferProbe = answering(r.state)
  r = run(r.state, {
    _tag: "LocalProbed",
    ...transferProbe,
    probe: transferProbe.probe - 1,
    now: now + 2,
    result: { _tag: "Up", mysql: probeOf(100) },
  })
  assert.equal(voteRequests(r.outputs).length, 0, "the answer of the probe sent before")
  r = run(r.state, {
    _tag: "LocalProbed",
    ...answering(r.state),
    now: now + 5,
    result: { _tag: "Up", mysql: probeOf(103) },
  })
  const requests = voteRequests(r.outputs)
  assert.ok(requests.length > 0, "stands once its own probe is in")
  assert.equal(requests[0]?.kind, "transfer")
  assert.match(requests[0]?.data.received ?? "", /:1-103$/)
  assert.equal(roleName(r.state), "candidate")
})

test("a forced failover to this node (TransferLeadership, then the leader's Resign): it still stands once its probe is in", () => {
  // disk-full-primary in CI: db3 waited out its forced-failover timer instead, and lost.
  const w = world()
  const s0 = w.node("db2").state
  const now = s0.now + 10
  let r = run(s0, {
    _tag: "PeerReceived",
    now,
    from: "db1",
    message: {
      _tag: "TransferLeadership",
      from: "db1",
      term: s0.hard.term,
      to: "db2",
      reason: "operator forced a failover to db2",
    },
  })
  r = run(r.state, {
    _tag: "PeerReceived",
    now: now + 1,
    from: "db1",
    message: {
      _tag: "Resign",
      from: "db1",
      term: s0.hard.term,
      reason: "operator forced a failover to db2",
    },
  })
  assert.equal(leaderOf(r.state), null, "the leader resigned")
  r = run(r.state, {
    _tag: "LocalProbed",
    ...answering(r.state),
    now: now + 5,
    result: { _tag: "Up", mysql: s0.local.probe! },
  })
  const stood = r.outputs.some((o) => o._tag === "Send" && o.message._tag === "VoteRequest")
  assert.ok(stood, "it stands for the transfer")
  assert.equal(roleName(r.state), "candidate")
})

test("no probe answer within rpc_timeout: the target stands on what it has", () => {
  const w = world()
  const s0 = w.node("db2").state
  const now = s0.now + 10
  let r = run(s0, {
    _tag: "PeerReceived",
    now,
    from: "db1",
    message: { _tag: "TransferLeadership", from: "db1", term: s0.hard.term, to: "db2" },
  })
  assert.equal(roleName(r.state), "follower")
  r = step(r.state, { _tag: "Tick", now: now + s0.config.timings.rpcTimeoutMs, random: 0.5 })
  assert.equal(roleName(r.state), "candidate")
})
