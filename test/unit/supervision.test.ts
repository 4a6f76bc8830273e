import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect, Exit, Fiber } from "effect"
import {
  backoffMs,
  ChildEscalated,
  type RestartPolicy,
  type SupervisionEvent,
  supervise,
} from "../../agent/src/daemon/supervision.ts"

const fast: RestartPolicy = {
  maxRestarts: 3,
  windowMs: 10_000,
  initialBackoffMs: 1,
  maxBackoffMs: 4,
}

const recorder = () => {
  const events: SupervisionEvent[] = []
  return { events, onEvent: (e: SupervisionEvent) => Effect.sync(() => void events.push(e)) }
}

test("a child that dies is restarted, and the supervisor keeps running", async () => {
  let runs = 0
  const { events, onEvent } = recorder()
  const child = Effect.suspend(() => {
    runs++
    return runs <= 2 ? Effect.die(new Error(`injected defect ${runs}`)) : Effect.never
  })
  const result = await Effect.runPromise(
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(supervise("prober", child, { policy: fast, onEvent }))
      yield* Effect.sleep(100)
      const stillRunning = fiber.pollUnsafe() === undefined
      yield* Fiber.interrupt(fiber)
      return stillRunning
    }),
  )
  assert.equal(result, true)
  assert.equal(runs, 3)
  assert.deepEqual(
    events.map((e) => e._tag),
    ["ChildCrashed", "ChildCrashed"],
  )
  assert.match(events[0]?._tag === "ChildCrashed" ? events[0].cause : "", /injected defect 1/)
})

test("typed failures and returns are restarted too", async () => {
  let runs = 0
  const { events, onEvent } = recorder()
  const child = Effect.suspend(() => {
    runs++
    if (runs === 1) return Effect.fail("typed failure")
    if (runs === 2) return Effect.void
    return Effect.never
  })
  await Effect.runPromise(
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(supervise("mesh", child, { policy: fast, onEvent }))
      yield* Effect.sleep(50)
      yield* Fiber.interrupt(fiber)
    }),
  )
  assert.deepEqual(
    events.map((e) => e._tag),
    ["ChildCrashed", "ChildReturned"],
  )
})

test("too many restarts within the window escalate with ChildEscalated", async () => {
  let runs = 0
  const { events, onEvent } = recorder()
  const child = Effect.suspend(() => {
    runs++
    return Effect.die(new Error("always broken"))
  })
  const exit = await Effect.runPromise(
    Effect.exit(supervise("executor", child, { policy: fast, onEvent })),
  )
  assert.equal(Exit.isFailure(exit), true)
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  assert.ok(error && error._tag === "Fail" && error.error instanceof ChildEscalated)
  assert.equal(runs, fast.maxRestarts + 1, "the first run and maxRestarts restarts")
  assert.equal(events.at(-1)?._tag, "ChildEscalated")
  assert.match(
    String((error as { error: ChildEscalated }).error.message),
    /executor was restarted 3 times/,
  )
})

test("restarts older than the window do not count", async () => {
  let runs = 0
  const policy: RestartPolicy = {
    maxRestarts: 2,
    windowMs: 30,
    initialBackoffMs: 40,
    maxBackoffMs: 40,
  }
  const child = Effect.suspend(() => {
    runs++
    return runs <= 6 ? Effect.die(new Error("slow crash")) : Effect.never
  })
  await Effect.runPromise(
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(
        supervise("vip", child, { policy, onEvent: () => Effect.void }),
      )
      yield* Effect.sleep(600)
      assert.equal(fiber.pollUnsafe(), undefined, "still supervising")
      yield* Fiber.interrupt(fiber)
    }),
  )
  assert.equal(runs, 7)
})

test("interruption is not restarted", async () => {
  let runs = 0
  const child = Effect.suspend(() => {
    runs++
    return Effect.never
  })
  await Effect.runPromise(
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(supervise("hooks", child, { policy: fast }))
      yield* Effect.sleep(20)
      yield* Fiber.interrupt(fiber)
      yield* Effect.sleep(20)
    }),
  )
  assert.equal(runs, 1)
})

test("backoff doubles and is capped", () => {
  const p: RestartPolicy = {
    maxRestarts: 10,
    windowMs: 1000,
    initialBackoffMs: 100,
    maxBackoffMs: 500,
  }
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((n) => backoffMs(p, n)),
    [100, 200, 400, 500, 500],
  )
})
