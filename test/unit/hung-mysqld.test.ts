// A hung local mysqld (issue 10 item 5): it accepts TCP and answers nothing.
// The core counts a probe still unanswered at the next probe tick as a miss
// (ProbeLate) instead of sending another behind it, so a hung server reaches
// FAIL in about fail_after probe intervals; and its restart kills it first
// (KillMysqld, then RestartMysqld), never waiting behind the stopped process.
import assert from "node:assert/strict"
import { type AddressInfo, createServer, type Socket } from "node:net"
import { test } from "node:test"
import { Effect, Redacted } from "effect"
import { makeMysqlProber } from "../../agent/src/adapters/mysql-prober.ts"
import { defaultHealthThresholds } from "../../agent/src/core/health.ts"
import { step } from "../../agent/src/core/reducer.ts"
import { roleName } from "../../agent/src/core/roles.ts"
import type { AgentState, Input, LocalProbeResult, Output } from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"
import { answering } from "../support/probe-answer.ts"

const TICK_MS = 50

/** db1, the primary of a healthy simulated cluster, with the shipped health defaults (fail_after 4). */
const primary = (): AgentState => {
  const r = runScenario("cluster data=3 seed=11\nrun 6s\nexpect primary db1")
  assert.ok(r.ok, r.failures.join("\n"))
  const s = r.world!.node("db1").state
  assert.equal(roleName(s), "leader")
  assert.equal(s.local.up, true)
  return {
    ...s,
    config: {
      ...s.config,
      timings: { ...s.config.timings, restartTimeoutMs: 30_000, probeTimeoutMs: 2_000 },
      health: defaultHealthThresholds,
    },
  }
}

/** Feeds inputs to the reducer (peers answer nothing: the lease is not what is tested here). */
class Driver {
  s: AgentState
  readonly out: Array<{ at: number; o: Output }> = []

  constructor(s: AgentState) {
    // The probe the simulator had in flight is answered: start from a quiet state.
    this.s = { ...s, local: { ...s.local, probeSentAt: null }, nextProbeAt: s.now + 1 }
  }

  feed(input: Input): this {
    const r = step(this.s, input)
    this.s = r.state
    for (const o of r.outputs) this.out.push({ at: input.now, o })
    return this
  }

  /** Ticks for `ms`, answering no probe. */
  idle(ms: number): this {
    const end = this.s.now + ms
    while (this.s.now + TICK_MS <= end) {
      this.feed({ _tag: "Tick", now: this.s.now + TICK_MS, random: 0.5 })
    }
    return this
  }

  probed(result: LocalProbeResult): this {
    return this.feed({ _tag: "LocalProbed", ...answering(this.s), now: this.s.now + 1, result })
  }

  tags(tag: Output["_tag"]): Array<{ at: number; o: Output }> {
    return this.out.filter((x) => x.o._tag === tag)
  }
}

const up = (s: AgentState): LocalProbeResult => ({ _tag: "Up", mysql: s.local.probe! })

test("a probe still unanswered at the next tick counts as late: no probe queues behind it, FAIL after fail_after intervals", () => {
  const d = new Driver(primary())
  const start = d.s.now
  const answeredAt = d.s.local.lastProbeAt
  const interval = d.s.config.timings.probeIntervalMs
  d.idle(interval / 2)
  assert.equal(d.tags("ProbeLocal").length, 1, "the first probe went out")
  assert.equal(d.s.local.health.level, "OK")
  d.idle(interval)
  assert.equal(d.tags("ProbeLocal").length, 1, "no second probe behind the unanswered one")
  assert.equal(d.s.local.health.consecutiveFailures, 1, "the unanswered probe is a miss")
  assert.equal(d.s.local.up, true, "one late probe is a warning, not a dead server")
  assert.equal(d.s.local.lastProbeAt, answeredAt, "a late probe is no answer")
  // fail_after (4) intervals without an answer: FAIL, mysqld taken as down and hung.
  d.idle(3 * interval)
  assert.equal(d.s.local.health.level, "FAIL")
  assert.equal(d.s.local.up, false)
  assert.equal(d.s.local.hung, true)
  const failedAt = d.out.find((x) => x.o._tag === "Event" && x.o.event === "mysqld-failed")?.at
  assert.ok(
    failedAt !== undefined && failedAt - start <= 5 * interval,
    `FAIL at +${failedAt! - start} ms`,
  )
  // The restart of a hung server kills it first, in the same step, before the restart.
  const kill = d.tags("KillMysqld")
  const restart = d.tags("RestartMysqld")
  assert.equal(kill.length, 1, "kill_command runs")
  assert.equal(restart.length, 1)
  assert.equal(kill[0]!.at, restart[0]!.at)
  assert.ok(d.out.indexOf(kill[0]!) < d.out.indexOf(restart[0]!), "killed before the restart")
  assert.equal(roleName(d.s), "leader", "the primary keeps its role during the bounded restart")
})

test("a probe lost by the driver is sent again after probe timeout + interval", () => {
  const d = new Driver(primary())
  const t = d.s.config.timings
  d.idle(t.probeIntervalMs / 2)
  assert.equal(d.tags("ProbeLocal").length, 1)
  d.idle(t.probeTimeoutMs! + t.probeIntervalMs)
  assert.equal(d.tags("ProbeLocal").length, 2, "a new probe once the old one is presumed lost")
})

test("a late probe that fails is one more miss (one per interval without an answer); a late probe that answers counts as good", () => {
  const d = new Driver(primary())
  const interval = d.s.config.timings.probeIntervalMs
  d.idle(interval / 2 + interval) // sent, then late once
  assert.equal(d.s.local.health.consecutiveFailures, 1)
  d.probed({ _tag: "Down", reason: "the probe did not finish within 2000 ms", hung: true })
  assert.equal(d.s.local.health.consecutiveFailures, 2, "late at one tick, failed by the next")
  assert.equal(d.s.local.up, false, "it failed: down")
  assert.equal(d.s.local.probeSentAt, null)
  // A slow probe that answers after one late tick: INFO for a while, then good again.
  const e = new Driver(primary())
  e.idle(interval / 2 + interval)
  assert.equal(e.s.local.health.level, "INFO")
  e.probed(up(e.s))
  assert.equal(e.s.local.health.consecutiveFailures, 0)
  assert.equal(e.s.local.up, true)
  assert.equal(e.s.local.hung, false)
  assert.equal(e.tags("KillMysqld").length, 0)
})

test("a refused mysqld (not hung) is restarted without a kill", () => {
  const d = new Driver(primary())
  const interval = d.s.config.timings.probeIntervalMs
  for (let i = 0; i < 4; i++) {
    d.idle(interval / 2)
    d.probed({ _tag: "Down", reason: "connect ECONNREFUSED", hung: false })
    d.idle(interval / 2)
  }
  assert.equal(d.s.local.health.level, "FAIL")
  assert.equal(d.s.local.hung, false)
  assert.equal(d.tags("RestartMysqld").length, 1)
  assert.equal(d.tags("KillMysqld").length, 0, "a dead server needs no kill")
})

test("probes that time out (hung: true) make the restart kill first too", () => {
  const d = new Driver(primary())
  const interval = d.s.config.timings.probeIntervalMs
  for (let i = 0; i < 4; i++) {
    d.idle(interval / 2)
    d.probed({ _tag: "Down", reason: "connect ETIMEDOUT", hung: true })
    d.idle(interval / 2)
  }
  assert.equal(d.s.local.health.level, "FAIL")
  assert.equal(d.tags("KillMysqld").length, 1)
  assert.equal(d.tags("RestartMysqld").length, 1)
})

// The prober (adapter): a server that accepts TCP and never sends its greeting.
test("the prober: probes queued behind one stuck on a hung server fail at their own deadline", async () => {
  const sockets: Array<Socket> = []
  const server = createServer((s) => {
    sockets.push(s) // accepted, never answered
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as AddressInfo).port
  const connectTimeoutMs = 300
  const queryTimeoutMs = 300
  const deadline = connectTimeoutMs + queryTimeoutMs
  try {
    const results = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const prober = yield* makeMysqlProber({
            local: { host: "127.0.0.1", port },
            settings: {
              user: "monitor",
              password: Redacted.make("x"),
              connectTimeoutMs,
              queryTimeoutMs,
            },
          })
          const start = performance.now()
          // Five probes at once: before the fix each waited for the lock outside its timeout (~1.5 s for the last).
          return yield* Effect.all(
            Array.from({ length: 5 }, () =>
              prober.probeLocal.pipe(
                Effect.flip,
                Effect.map((e) => ({ kind: e.kind, ms: performance.now() - start })),
              ),
            ),
            { concurrency: "unbounded" },
          )
        }),
      ),
    )
    for (const r of results) assert.equal(r.kind, "timeout", "a hung server is a timeout")
    const slowest = Math.max(...results.map((r) => r.ms))
    assert.ok(
      slowest < deadline + 350,
      `every probe failed by its deadline: ${slowest.toFixed(0)} ms`,
    )
  } finally {
    for (const s of sockets) s.destroy()
    await new Promise<void>((r) => server.close(() => r()))
  }
})
