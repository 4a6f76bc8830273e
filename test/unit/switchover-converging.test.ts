/**
 * Issue 10 item 6: a switchover waits unfenced (writable, VIP held) until the
 * target could apply what it lacks within the block budget, estimated from
 * its apply rate between heartbeats; only then does it run pre_switchover and
 * fence. If it never gets there within switchover_timeout it refuses, having
 * blocked no write, and says why. On the real reducer, starting from db1 of
 * a simulated running cluster; the target's heartbeats are written into the
 * state by hand so that its progress is exactly what each test needs.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { mayBeWritable } from "../../agent/src/core/fencing.ts"
import { step } from "../../agent/src/core/reducer.ts"
import { roleName, switchoverOf } from "../../agent/src/core/roles.ts"
import { nodeRole } from "../../agent/src/core/status.ts"
import { applyEstimateMs, blockBudgetMs, switchoverPlan } from "../../agent/src/core/switchover.ts"
import type { AgentState, Output } from "../../agent/src/core/types.ts"
import { dataMembers, World } from "../sim/world.ts"
import { primaryAndTarget } from "../support/leader-states.ts"

const running = (): AgentState => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  return w.node("db1").state
}

/** db1 executed 1..primaryN; db2 executed 1..executedN and received 1..receivedN, heard now. */
const at = primaryAndTarget

const tick = (s: AgentState) => step(s, { _tag: "Tick", now: s.now, random: 0.5 })

const fences = (outputs: ReadonlyArray<Output>): boolean =>
  outputs.some(
    (o) =>
      (o._tag === "Vip" && o.op === "remove") ||
      (o._tag === "Mysql" && (o.action._tag === "Fence" || o.action._tag === "KillSessions")) ||
      (o._tag === "RunHook" && o.hook === "pre_switchover"),
  )

const request = (s: AgentState) =>
  step(s, {
    _tag: "Operator",
    now: s.now,
    requestId: 7,
    request: { _tag: "Switchover", to: "db2", dryRun: false, drainTimeoutMs: null },
  })

test("the apply estimate: nothing to apply is 0 ms; a backlog with no known rate is unbounded", () => {
  assert.equal(applyEstimateMs(0, null), 0)
  assert.equal(applyEstimateMs(10, null), Number.POSITIVE_INFINITY)
  assert.equal(applyEstimateMs(10, 0), Number.POSITIVE_INFINITY)
  assert.equal(applyEstimateMs(900, 1.8), 500) // 900 transactions at 1800/s
})

test("a switchover waits unfenced while the target is behind, then fences once its apply estimate is within budget", () => {
  const s0 = running()
  const t0 = s0.now + 10
  // db2: 4,000 received but not executed, applying 400 per 500 ms (800/s): 5 s of work.
  let r = request(at(s0, t0, 10_000, { executed: 6_000, received: 10_000 }))
  let s = r.state
  assert.equal(switchoverOf(s)?.phase, "converging")
  assert.equal(fences(r.outputs), false, "no fence at the request")
  let executed = 6_000
  let primary = 10_000
  for (let i = 1; i <= 4; i++) {
    executed += 400
    primary += 300 // writes go on meanwhile
    r = tick(at(s, t0 + i * 500, primary, { executed, received: primary }))
    s = r.state
    assert.equal(switchoverOf(s)?.phase, "converging", `still converging after ${i * 500} ms`)
    assert.equal(fences(r.outputs), false, `no fence after ${i * 500} ms`)
    assert.ok(mayBeWritable(s), "writable while converging")
    assert.equal(nodeRole(s), "ACTIVE")
  }
  // The lock is gone: db2 applies 3,400 in 500 ms (6800/s) and has 200 left: about 29 ms.
  executed = primary - 200
  r = tick(at(s, t0 + 2_500, primary, { executed, received: primary }))
  assert.equal(switchoverOf(r.state)?.phase, "pre-hook")
  const hook = r.outputs.find((o) => o._tag === "RunHook")
  assert.ok(hook?._tag === "RunHook" && hook.hook === "pre_switchover")
  const converged = r.outputs.find((o) => o._tag === "Event" && o.event === "switchover-converged")
  assert.ok(converged?._tag === "Event", "a log event says it converged")
  assert.match(
    converged.reason,
    /200 received transaction\(s\) to apply .* applying 6800\/s: about 29 ms/,
  )
  // Still writable during pre_switchover; the fence follows the hook.
  assert.ok(mayBeWritable(r.state))
  const done = step(r.state, {
    _tag: "HookDone",
    now: t0 + 2_510,
    incarnation: r.state.bootId,
    id: hook.id,
    exitCode: 0,
  })
  const order = done.outputs.flatMap((o) =>
    o._tag === "Vip" ? [`vip ${o.op}`] : o._tag === "Mysql" ? [o.action._tag] : [],
  )
  // Make-before-break (issue 13): the VIP stays on the fenced node until the target announced
  // itself, announced no more (a pending gratuitous ARP would pull clients back).
  assert.deepEqual(order.slice(0, 3), ["vip quiet", "Fence", "KillSessions"])
  assert.ok(!order.includes("vip remove"))
  assert.equal(switchoverOf(done.state)?.phase, "fencing")
  assert.equal(mayBeWritable(done.state), false)
})

test("a target that never gets close enough: refused at switchover_timeout, never fenced, and it says why", () => {
  const s0 = running()
  const t0 = s0.now + 10
  const timeout = s0.config.timings.switchoverTimeoutMs
  let r = request(at(s0, t0, 10_000, { executed: 6_000, received: 10_000 }))
  let s = r.state
  const all: Output[] = [...r.outputs]
  let executed = 6_000
  let primary = 10_000
  for (let t = 500; t <= timeout; t += 500) {
    executed += 300 // slower than the writes: the backlog grows
    primary += 400
    r = tick(at(s, t0 + t, primary, { executed, received: primary }))
    all.push(...r.outputs)
    s = r.state
  }
  assert.equal(switchoverOf(s), null)
  assert.equal(fences(all), false, "never fenced, no pre_switchover")
  assert.ok(mayBeWritable(s), "still the writable primary")
  const reply = all.find((o) => o._tag === "OperatorReply")
  assert.ok(reply?._tag === "OperatorReply")
  assert.equal(reply.ok, false)
  assert.match(
    reply.message,
    /^switchover refused: db2 did not get close enough within switchover_timeout/,
  )
  assert.match(reply.message, /4600 received transaction\(s\) to apply .* applying 600\/s/)
  assert.match(reply.message, /writes were never blocked/)
  const ev = all.find((o) => o._tag === "Event" && o.event === "switchover-refused")
  assert.ok(ev?._tag === "Event" && ev.level === "warn")
  assert.equal(
    all.some((o) => o._tag === "Event" && o.event === "switchover-rollback"),
    false,
  )
})

test("a stalled applier (no progress between heartbeats) is refused, never fenced", () => {
  const s0 = running()
  const t0 = s0.now + 10
  let r = request(at(s0, t0, 1_000, { executed: 990, received: 1_000 }))
  let s = r.state
  const all: Output[] = [...r.outputs]
  for (let t = 500; t <= s0.config.timings.switchoverTimeoutMs; t += 500) {
    r = tick(at(s, t0 + t, 1_000, { executed: 990, received: 1_000 }))
    all.push(...r.outputs)
    s = r.state
  }
  assert.equal(fences(all), false)
  const reply = all.find((o) => o._tag === "OperatorReply")
  assert.ok(reply?._tag === "OperatorReply" && !reply.ok)
  assert.match(
    reply.message,
    /10 received transaction\(s\) to apply .* applying 0\/s: about an unbounded time/,
  )
})

test("a target whose receiver falls behind is not close enough, however fast it applies", () => {
  const s0 = running()
  const t0 = s0.now + 10
  // Nothing in its relay log, but 5,000 of the primary's transactions not received.
  let r = request(at(s0, t0, 10_000, { executed: 5_000, received: 5_000 }))
  let s = r.state
  r = tick(at(s, t0 + 500, 10_100, { executed: 5_100, received: 5_100 }))
  s = r.state
  assert.equal(switchoverOf(s)?.phase, "converging")
  assert.equal(fences(r.outputs), false)
})

test("a caught-up target on an idle cluster: the switchover goes straight to pre_switchover", () => {
  const s0 = running()
  const r = request(at(s0, s0.now + 10, 500, { executed: 500, received: 500 }))
  assert.equal(switchoverOf(r.state)?.phase, "pre-hook")
})

test("switchover --dry-run describes the unfenced wait, the budget and how far the target is", () => {
  const s0 = at(running(), 7000, 10_000, { executed: 6_000, received: 9_000 })
  const plan = switchoverPlan(s0, "db2", null)
  const text = plan.steps.join("\n")
  assert.equal(plan.ok, true, text)
  assert.equal(blockBudgetMs(s0), Math.min(500, s0.config.timings.switchoverTimeoutMs / 2))
  assert.match(
    text,
    /check note: db2 has 3000 received transaction\(s\) still to apply and 1000 of db1's not yet received/,
  )
  assert.match(text, /step 1: converge, unfenced \(db1 stays writable with the VIP\)/)
  assert.match(
    text,
    /else refuse and say how far behind it is \(no write blocked, nothing to roll back\)/,
  )
  assert.match(text, /step 2: run pre_switchover/)
  assert.match(text, /step 3: the write block starts: db1 keeps the VIP, fenced, until db2/)
  assert.match(
    switchoverPlan(s0, "db2", 2000).steps.join("\n"),
    /step 3: remove the VIP from db1 \(the write block starts\)/,
  )
})

test("the agent stopping: a refused switchover fences and resigns instead of leaving a writable primary without agent", () => {
  const s0 = running()
  const t0 = s0.now + 10
  let r = step(at(s0, t0, 1_000, { executed: 990, received: 1_000 }), {
    _tag: "Operator",
    now: t0,
    requestId: 9,
    request: { _tag: "Shutdown" },
  })
  let s = r.state
  assert.equal(switchoverOf(s)?.phase, "converging")
  assert.equal(switchoverOf(s)?.resignIfRefused, true)
  const all: Output[] = []
  for (let t = 500; t <= s0.config.timings.switchoverTimeoutMs; t += 500) {
    r = tick(at(s, t0 + t, 1_000, { executed: 990, received: 1_000 }))
    all.push(...r.outputs)
    s = r.state
  }
  assert.equal(roleName(s), "follower")
  assert.ok(all.some((o) => o._tag === "Event" && o.event === "resigned"))
  const reply = all.find((o) => o._tag === "OperatorReply")
  assert.ok(reply?._tag === "OperatorReply")
  assert.match(reply.message, /refused .*: fencing and resigning before shutdown/)
})
