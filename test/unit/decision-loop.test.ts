// The decision loop's direct path (issue 12): ticks and peer messages are
// stepped at once in the caller's turn, in arrival order with queued inputs,
// and a step that only advanced the clock is published as unchanged.
import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect, Fiber, Option, Queue } from "effect"
import pino from "pino"
import type { AgentState, Input, Output } from "../../agent/src/core/types.ts"
import {
  type Alarm,
  type DirectStep,
  deliverInput,
  runAlarm,
  runDecisionLoop,
} from "../../agent/src/daemon/decision-loop.ts"
import type { PendingInput } from "../../agent/src/daemon/executor.ts"
import { dataMembers, makeConfig } from "../sim/world.ts"

const tick: PendingInput = (now) => ({ _tag: "Tick", now, random: 0.5 })

const start = async (injectDefectAt?: number) => {
  const inbox = Effect.runSync(Queue.unbounded<PendingInput>())
  const direct: DirectStep = { current: null }
  const published: Array<{ state: AgentState; changed: boolean }> = []
  const executed: Array<ReadonlyArray<Output>> = []
  const seen: Array<Input["_tag"]> = []
  const fiber = Effect.runFork(
    runDecisionLoop({
      self: "db1",
      clusterConfig: () => makeConfig(dataMembers(3)),
      inbox,
      direct,
      hardState: { path: "-", load: Effect.succeed(Option.none()), save: () => Effect.void },
      execute: (outputs) => Effect.sync(() => void executed.push(outputs)),
      publish: (state, changed) => void published.push({ state, changed }),
      log: pino({ level: "silent" }),
      ...(injectDefectAt === undefined ? {} : { injectDefectAt }),
    }),
  )
  for (let i = 0; i < 100 && direct.current === null; i++)
    await new Promise((r) => setTimeout(r, 5))
  assert.ok(direct.current !== null, "the running loop takes direct inputs")
  const deliver = (p: PendingInput) =>
    deliverInput(direct, inbox, (now) => {
      const input = p(now)
      seen.push(input._tag)
      return input
    })
  return { inbox, direct, published, executed, seen, fiber, deliver }
}

test("a tick is stepped before deliverInput returns; a tick with nothing due is published as unchanged", async () => {
  const l = await start()
  try {
    const before = l.published.length
    // A second later by the core's clock: probes and heartbeats are due.
    l.deliver((now) => ({ _tag: "Tick", now: now + 1000, random: 0.5 }))
    assert.equal(l.published.length, before + 1, "stepped in the caller's turn")
    assert.equal(l.published.at(-1)?.changed, true)
    l.deliver((now) => ({ _tag: "Tick", now: now + 1001, random: 0.5 })) // nothing due yet
    assert.equal(l.published.length, before + 2)
    assert.equal(l.published.at(-1)?.changed, false, "only the clock advanced")
  } finally {
    await Effect.runPromise(Fiber.interrupt(l.fiber))
  }
  assert.equal(l.direct.current, null, "a stopped loop takes no direct input")
})

test("inputs already in the inbox are stepped first: a direct input queues behind them", async () => {
  const l = await start()
  try {
    Queue.offerUnsafe(l.inbox, (now) => {
      l.seen.push("Reconfigure")
      return tick(now)
    })
    l.deliver(tick)
    assert.deepEqual(l.seen, [], "nothing stepped yet: the inbox was not empty")
    for (let i = 0; i < 100 && l.seen.length < 2; i++) await new Promise((r) => setTimeout(r, 5))
    assert.deepEqual(l.seen, ["Reconfigure", "Tick"], "in arrival order")
    l.deliver(tick)
    assert.equal(l.seen.length, 3, "the inbox drained: direct again")
  } finally {
    await Effect.runPromise(Fiber.interrupt(l.fiber))
  }
})

test("a defect in a direct step ends this run of the loop, for its supervisor to restart", async () => {
  const l = await start(2) // step 1 is Start; step 2 is the first tick
  l.deliver(tick)
  assert.equal(l.direct.current, null, "no direct input after the defect")
  const exit = await Effect.runPromise(Fiber.await(l.fiber))
  assert.equal(exit._tag, "Failure")
  assert.match(String(JSON.stringify(exit.cause)) + String(exit), /injected defect in step 2/)
})

test("the alarm ticks when the deadline asked for is due, and at the latest every maxSleepMs", async () => {
  const got: Array<number> = []
  /** How late each wake-up came (the event-loop delay metric). */
  const late: Array<number> = []
  const alarm: Alarm = { current: null }
  const t0 = performance.now()
  const fiber = Effect.runFork(
    runAlarm(
      () => void got.push(performance.now() - t0),
      alarm,
      200,
      10,
      (ms) => late.push(ms),
    ),
  )
  await new Promise((r) => setTimeout(r, 40))
  assert.equal(got.length, 1, "the first tick comes firstAfterMs after the start")
  // Nobody asks: the next one after maxSleepMs only.
  await new Promise((r) => setTimeout(r, 100))
  assert.equal(got.length, 1, "no tick before maxSleepMs without a deadline")
  // A deadline 20 ms ahead replaces the pending 200 ms timer; a later one does not delay it.
  alarm.current?.(performance.now() + 20)
  alarm.current?.(performance.now() + 150)
  await new Promise((r) => setTimeout(r, 60))
  assert.equal(got.length, 2, `the asked deadline was kept: ${got.map(Math.round).join(", ")}`)
  await Effect.runPromise(Fiber.interrupt(fiber))
  assert.equal(alarm.current, null, "the alarm leaves with its fiber")
  await new Promise((r) => setTimeout(r, 250))
  assert.equal(got.length, 2, "no tick after the interrupt")
  assert.equal(late.length, 2, "each wake-up tells how late it came")
  assert.ok(
    late.every((ms) => ms > -2 && ms < 1_000),
    `lateness ${late.map((x) => x.toFixed(1)).join(", ")} ms`,
  )
})
