/**
 * Issue 16 item 2: actions must not outlive the decision that started them.
 * A switchover with --drain-timeout issues, in one batch, "VIP off, drain,
 * fence, kill sessions"; the batch runs in the background, and the drain may
 * outlast the switchover (a rollback at switchover_timeout). The core then
 * withdraws what the switchover issued, and the executor asks the core
 * before each side effect: a rolled-back switchover never fences anyone.
 * The drain's deadline is on the monotonic clock: a wall clock stepped back
 * does not stretch it. Core part on the real reducer (from db1 of a
 * simulated running cluster); daemon part with the real executor and a
 * recording stand-in for MySQL.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect } from "effect"
import pino from "pino"
import type { MysqlActions } from "../../agent/src/adapters/mysql-actuator.ts"
import { mayBeWritable } from "../../agent/src/core/fencing.ts"
import { step } from "../../agent/src/core/reducer.ts"
import { becomeFollower, following, leaseOf, switchoverOf } from "../../agent/src/core/roles.ts"
import { stillWanted } from "../../agent/src/core/supersession.ts"
import type { AgentState, Output } from "../../agent/src/core/types.ts"
import {
  type ExecutorServices,
  makeExecutor,
  type PendingInput,
} from "../../agent/src/daemon/executor.ts"
import { dataMembers, World } from "../sim/world.ts"
import { primaryAndTarget } from "../support/leader-states.ts"

const running = (): AgentState => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  return w.node("db1").state
}

/** db1 and db2 both executed 1..n (db2 caught up, heard now), db1's lease valid. */
const caughtUp = (s: AgentState, now: number, n: number): AgentState =>
  primaryAndTarget(s, now, n, { executed: n, received: n })

const label = (o: Output): string =>
  o._tag === "Vip" ? `vip ${o.op}` : o._tag === "Mysql" ? o.action._tag : o._tag

/** The switchover's write-block batch: the outputs of pre_switchover's completion. */
const fencingBatch = () => {
  const s0 = running()
  const t0 = s0.now + 10
  const r = step(caughtUp(s0, t0, 500), {
    _tag: "Operator",
    now: t0,
    requestId: 7,
    request: { _tag: "Switchover", to: "db2", dryRun: false, drainTimeoutMs: 5_000 },
  })
  assert.equal(switchoverOf(r.state)?.phase, "pre-hook")
  const hook = r.outputs.find((o) => o._tag === "RunHook")
  assert.ok(hook?._tag === "RunHook" && hook.hook === "pre_switchover")
  const done = step(r.state, {
    _tag: "HookDone",
    now: t0 + 10,
    incarnation: r.state.bootId,
    id: hook.id,
    exitCode: 0,
  })
  const batch = done.outputs.filter((o) => o._tag === "Vip" || o._tag === "Mysql")
  assert.deepEqual(batch.map(label), ["vip remove", "DrainSessions", "Fence", "KillSessions"])
  return { state: done.state, batch, t0 }
}

test("a rolled-back switchover withdraws its drain, fence and kill: none of them is performed afterwards", () => {
  const { state, batch, t0 } = fencingBatch()
  const incarnation = state.bootId
  // While the switchover runs, every action of the batch is wanted.
  for (const o of batch) assert.equal(stillWanted(state, o, incarnation), true, label(o))
  // The drain outlasts switchover_timeout (a wall clock stepped back, or a slow server): rollback.
  const deadline = t0 + 10 + state.config.timings.switchoverTimeoutMs + 5_000
  const r = step(caughtUp(state, deadline + 1, 500), {
    _tag: "Tick",
    now: deadline + 1,
    random: 0.5,
  })
  assert.equal(switchoverOf(r.state), null)
  const rollback = r.outputs.find((o) => o._tag === "OperatorReply")
  assert.ok(rollback?._tag === "OperatorReply")
  assert.match(rollback.message, /^switchover rolled back: the fence did not finish/)
  assert.ok(mayBeWritable(r.state), "the primary is the writable primary again")
  assert.equal(
    r.outputs.some((o) => o._tag === "Mysql" && o.action._tag === "Fence"),
    false,
    "the rollback itself fences nothing",
  )
  // The batch is still running in the background: what is left of it is no longer wanted.
  for (const o of batch.filter((o) => o._tag === "Mysql")) {
    assert.equal(stillWanted(r.state, o, incarnation), false, `${label(o)} after the rollback`)
  }
  // The drain ends late and reports: nothing follows from it.
  const drain = batch.find((o) => o._tag === "Mysql" && o.action._tag === "DrainSessions")
  assert.ok(drain?._tag === "Mysql")
  // (The lease is renewed by heartbeat rounds this test does not run.)
  const late = step(caughtUp(r.state, deadline + 25_000, 500), {
    _tag: "MysqlDone",
    now: deadline + 25_000,
    incarnation,
    id: drain.id,
    ok: true,
    error: null,
  })
  assert.deepEqual(
    late.outputs.filter((o) => o._tag === "Mysql" && o.action._tag !== "MakeWritable"),
    [],
  )
  assert.ok(mayBeWritable(late.state))
})

test("a switchover that goes on keeps its fence wanted after the drain; another run's actions are never wanted", () => {
  const { state, batch } = fencingBatch()
  const drain = batch.find((o) => o._tag === "Mysql" && o.action._tag === "DrainSessions")
  const fence = batch.find((o) => o._tag === "Mysql" && o.action._tag === "Fence")
  assert.ok(drain?._tag === "Mysql" && fence?._tag === "Mysql")
  const drained = step(state, {
    _tag: "MysqlDone",
    now: state.now + 5_000,
    incarnation: state.bootId,
    id: drain.id,
    ok: true,
    error: null,
  })
  assert.equal(switchoverOf(drained.state)?.phase, "fencing")
  assert.equal(stillWanted(drained.state, fence, state.bootId), true)
  // A batch of an earlier run of the decision loop: its ids may name this run's actions.
  assert.equal(stillWanted(drained.state, fence, "an-earlier-run"), false)
  // Outputs without a withdrawable decision always run.
  assert.equal(stillWanted(drained.state, { _tag: "Vip", op: "remove" }, "an-earlier-run"), true)
})

// ---- daemon: the real executor ------------------------------------------------------------

const log = pino({ level: "silent" })

/** The executor with a MySQL stand-in whose sessions stay busy; records the side effects. */
const executorWithBusySessions = () => {
  const done: string[] = []
  const local = {
    busyClientSessions: () => Effect.succeed(3),
    fence: Effect.sync(() => void done.push("fence")),
    fenceLeftPending: () => Effect.sync(() => void done.push("fence")),
    killClientSessions: () => Effect.sync(() => void done.push("kill-sessions")),
  } as unknown as MysqlActions
  const completions: PendingInput[] = []
  const executor = makeExecutor({
    config: () => ({ mysql: { monitor: { user: "mha" } }, timings: { fence_timeout: 5_000 } }),
    log,
    enqueue: (input: PendingInput) => void completions.push(input),
    mysql: { local, at: () => local },
  } as unknown as ExecutorServices)
  return { executor, done, completions }
}

const switchoverBatch = (drainMs: number): Output[] => [
  { _tag: "Mysql", id: 1, action: { _tag: "DrainSessions", timeoutMs: drainMs } },
  { _tag: "Mysql", id: 2, action: { _tag: "Fence", until: "abort" } },
  { _tag: "Mysql", id: 3, action: { _tag: "KillSessions" } },
]

test("executor: once the core withdraws the batch, the running drain stops and the fence and kill are never performed", async () => {
  const { executor, done } = executorWithBusySessions()
  let withdrawn = false
  setTimeout(() => {
    withdrawn = true
  }, 300)
  const started = performance.now()
  await Effect.runPromise(executor.execute(switchoverBatch(5_000), "run-1", () => !withdrawn))
  const took = performance.now() - started
  assert.deepEqual(done, [], "no fence, no kill")
  assert.ok(took < 1_500, `the drain stopped waiting once withdrawn (${Math.round(took)} ms)`)
})

test("executor: a wall clock stepped back 30 s during the drain does not stretch it (monotonic deadline)", async () => {
  const { executor, done } = executorWithBusySessions()
  const realNow = Date.now
  const stepBack = setTimeout(() => {
    Date.now = () => realNow() - 30_000
  }, 200)
  try {
    const started = performance.now()
    await Effect.runPromise(executor.execute(switchoverBatch(1_000), "run-1", () => true))
    const took = performance.now() - started
    assert.ok(
      took >= 1_000 && took < 3_000,
      `the 1 s drain took ${Math.round(took)} ms (a wall-clock deadline: 31 s)`,
    )
    // The switchover still wants them: the fence and the kill follow the drain.
    assert.deepEqual(done, ["fence", "kill-sessions"])
  } finally {
    clearTimeout(stepBack)
    Date.now = realNow
  }
})

test("an unfence is re-checked against what the node is now: not once its lease is gone or its promotion is over", () => {
  const s = caughtUp(running(), 7_000, 500)
  const id = s.nextId
  const issued: AgentState = {
    ...s,
    nextId: id + 1,
    inFlight: new Map(s.inFlight).set(id, { _tag: "MakeWritable" }),
  }
  const unfence: Output = { _tag: "Mysql", id, action: { _tag: "MakeWritable" } }
  assert.ok(mayBeWritable(issued))
  assert.equal(stillWanted(issued, unfence, issued.bootId), true)
  // The lease ran out before its turn (no quorum renewed it): not performed.
  const expired: AgentState = { ...issued, now: leaseOf(issued).validUntil + 1 }
  assert.equal(mayBeWritable(expired), false)
  assert.equal(stillWanted(expired, unfence, issued.bootId), false)
  // A promotion's unfence: only while that promotion runs.
  const promoting: AgentState = {
    ...issued,
    inFlight: new Map(s.inFlight).set(id, { _tag: "Promotion", term: s.hard.term }),
  }
  assert.equal(stillWanted(promoting, unfence, issued.bootId), true)
  assert.equal(
    stillWanted(becomeFollower(promoting, following(promoting)), unfence, issued.bootId),
    false,
  )
})
