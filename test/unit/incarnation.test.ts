/**
 * Completions carry the incarnation (the bootId of the decision loop's run)
 * that issued them. When the daemon's decision loop restarts, action ids
 * start at 1 again while the old run's actions and hooks still finish and
 * their MysqlDone / HookDone still reach the inbox: the core must not take
 * them for this run's actions of the same id.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { step } from "../../agent/src/core/reducer.ts"
import type { AgentState, Input, Output } from "../../agent/src/core/types.ts"
import { dataMembers, World } from "../sim/world.ts"
import { answering } from "../support/probe-answer.ts"

const running = (): World => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  return w
}

const run = (s: AgentState, input: Input): { s: AgentState; out: ReadonlyArray<Output> } => {
  const r = step(s, input)
  return { s: r.state, out: r.outputs }
}

test("after a restart of the decision loop, an old run's MysqlDone with a reused id does not complete the new run's action", () => {
  const w = running()
  const old = w.node("db3").state
  let now = old.now + 10
  const next = () => {
    now += 100
    return now
  }
  // The decision loop restarts from the hard state: a new run, ids from 1 again.
  const restarted = run(old, {
    _tag: "Start",
    now,
    hard: old.hard,
    bootId: "db3-restarted",
    random: 0.5,
  }).s
  assert.notEqual(restarted.bootId, old.bootId)
  // Its peers' heartbeats since the restart (as the old run had them).
  let s: AgentState = { ...restarted, peers: old.peers }
  // Let it see its mysqld again, then re-seed it: the CLONE is a long action of the new run.
  const probe = old.local.probe
  assert.ok(probe !== null)
  for (let i = 0; i < 3; i++)
    s = run(s, {
      _tag: "LocalProbed",
      ...answering(s),
      now: next(),
      result: { _tag: "Up", mysql: probe },
    }).s
  const asked = run(s, {
    _tag: "Operator",
    now: next(),
    requestId: 7,
    request: { _tag: "Clone", recipient: "db3", donor: "db2" },
  })
  const clone = asked.out.find((o) => o._tag === "Mysql" && o.action._tag === "Clone")
  assert.ok(clone !== undefined && clone._tag === "Mysql", JSON.stringify(asked.out))
  s = asked.s
  // A MysqlDone of the old run with the same id (an old action that just finished).
  const stale = run(s, {
    _tag: "MysqlDone",
    now: next(),
    incarnation: old.bootId,
    id: clone.id,
    ok: true,
    error: null,
  })
  assert.equal(
    stale.out.find((o) => o._tag === "OperatorReply"),
    undefined,
    "the old run's completion does not answer the clone",
  )
  assert.equal(stale.s.inFlight.get(clone.id)?._tag, "Clone", "the CLONE is still in flight")
  assert.equal(stale.s.clone?.phase, "cloning")
  // The new run's own completion does.
  const done = run(stale.s, {
    _tag: "MysqlDone",
    now: next(),
    incarnation: s.bootId,
    id: clone.id,
    ok: true,
    error: null,
  })
  const reply = done.out.find((o) => o._tag === "OperatorReply")
  assert.ok(reply?._tag === "OperatorReply" && reply.ok, JSON.stringify(done.out))
})

test("a HookDone of another incarnation does not let a switchover's pre_switchover hook pass", () => {
  const w = running()
  const s1 = w.node("db1").state
  // db2 heard just now with everything db1 executed: the switchover needs no converging.
  const db2 = s1.peers.get("db2")!
  const executed = s1.local.probe!.executed
  const s: typeof s1 = {
    ...s1,
    peers: new Map(s1.peers).set("db2", {
      ...db2,
      executed,
      received: executed,
      lastHeardAt: s1.now,
    }),
  }
  const r1 = step(s, {
    _tag: "Operator",
    now: s.now + 1,
    requestId: 5,
    request: { _tag: "Switchover", to: "db2", dryRun: false, drainTimeoutMs: 0 },
  })
  // An idle cluster converges at once: pre_switchover runs at the request or the next tick.
  const tick = step(r1.state, { _tag: "Tick", now: s.now + 2, random: 0.5 })
  const hook = [...r1.outputs, ...tick.outputs].find((o) => o._tag === "RunHook")
  assert.ok(hook !== undefined && hook._tag === "RunHook" && hook.hook === "pre_switchover")
  const asked = r1.outputs.includes(hook) ? r1.state : tick.state
  const fenceOf = (outputs: ReadonlyArray<Output>) =>
    outputs.some((o) => o._tag === "Mysql" && o.action._tag === "Fence")
  const stale = step(asked, {
    _tag: "HookDone",
    now: s.now + 3,
    incarnation: "db1-an-earlier-run",
    id: hook.id,
    exitCode: 0,
  })
  assert.equal(fenceOf(stale.outputs), false, "no fence on another run's hook result")
  assert.equal(stale.state.inFlight.has(hook.id), true)
  const own = step(stale.state, {
    _tag: "HookDone",
    now: s.now + 4,
    incarnation: s.bootId,
    id: hook.id,
    exitCode: 0,
  })
  assert.equal(fenceOf(own.outputs), true, "its own hook result goes on to the fence")
})
