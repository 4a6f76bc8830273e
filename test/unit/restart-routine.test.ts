// The restart routine of protocol.md section 12 (core/restart-routine.ts),
// driven the way the reducer drives it: each local probe result, then the
// routine's timers, then restart completions. A crash loop is a sequence of
// probes: down until FAIL, back for a probe or two, down again...
// Issue 18: the routine used to count a restart as successful on the first
// good probe, so a crash loop reset its attempts and deadline for ever and
// the primary never resigned.
import assert from "node:assert/strict"
import { test } from "node:test"
import { selfEligible } from "../../agent/src/core/election.ts"
import { defaultHealthThresholds } from "../../agent/src/core/health.ts"
import { onLocalProbed } from "../../agent/src/core/local-node.ts"
import type { Outputs } from "../../agent/src/core/outputs.ts"
import { crashLoopWhy, onRestartDone, restartTimers } from "../../agent/src/core/restart-routine.ts"
import { roleName } from "../../agent/src/core/roles.ts"
import type { AgentState, MysqlProbe, Output } from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"

const PROBE_MS = 500

/** The nodes of a healthy 3-node simulated cluster: db1 primary, db2 and db3 replicas. */
const cluster = (): { primary: AgentState; replica: AgentState; upProbe: MysqlProbe } => {
  const r = runScenario("cluster data=3 seed=11\nrun 6s\nexpect primary db1")
  assert.ok(r.ok, r.failures.join("\n"))
  // The shipped defaults (shared/config.ts); the simulator restarts faster (restart_timeout 3 s)
  // and fails sooner (fail_after 3).
  const timings = { ...r.world!.node("db1").state.config.timings, restartTimeoutMs: 30_000 }
  const withDefaults = (s: AgentState): AgentState => ({
    ...s,
    config: { ...s.config, timings, health: defaultHealthThresholds },
  })
  const primary = withDefaults(r.world!.node("db1").state)
  assert.equal(roleName(primary), "leader")
  const replica = withDefaults(r.world!.node("db2").state)
  assert.ok(primary.local.probe !== null && replica.local.probe !== null)
  return { primary, replica, upProbe: primary.local.probe }
}

/** Runs probes through the routine; collects every output. */
class Driver {
  s: AgentState
  readonly out: Outputs = []
  private readonly probe: MysqlProbe

  constructor(s: AgentState) {
    this.s = s
    this.probe = s.local.probe!
  }

  /** One probe PROBE_MS after the last, then the routine's timers (as afterInput runs them). */
  tick(up: boolean, times = 1, reason = "connect ECONNREFUSED"): this {
    for (let i = 0; i < times; i++) {
      const s: AgentState = { ...this.s, now: this.s.now + PROBE_MS, awaitingProbe: new Map() }
      const probed = onLocalProbed(
        s,
        this.out,
        up ? { _tag: "Up", mysql: this.probe } : { _tag: "Down", reason, hung: false },
      )
      this.s = restartTimers(probed, this.out)
    }
    return this
  }

  /** The service manager's answer to the restart in flight, `afterMs` after the last probe. */
  restartDone(ok = true, afterMs = 0): this {
    this.s = onRestartDone({ ...this.s, now: this.s.now + afterMs }, this.out, ok)
    return this
  }

  /** mysqld down until FAIL, then the agent's restart brings it back for `upProbes` probes. */
  crash(upProbes: number): this {
    this.tick(false, 4)
    if (this.s.restart.inFlight) this.restartDone()
    return this.tick(true, upProbes)
  }

  count(pred: (o: Output) => boolean): number {
    return this.out.filter(pred).length
  }

  get restarts(): number {
    return this.count((o) => o._tag === "RestartMysqld")
  }

  get resigned(): boolean {
    return this.count((o) => o._tag === "Send" && o.message._tag === "Resign") > 0
  }

  events(name: string): number {
    return this.count((o) => o._tag === "Event" && o.event === name)
  }
}

test("a single crash that a restart fixes: no resignation; the restart counts once mysqld stayed up", () => {
  const { primary } = cluster()
  const d = new Driver(primary).crash(2)
  assert.equal(d.restarts, 1)
  assert.equal(d.s.restart.running, true, "two good probes are not yet a successful restart")
  const stableProbes = primary.config.timings.restartStableMs / PROBE_MS
  d.tick(true, stableProbes)
  assert.equal(d.events("restart-succeeded"), 1)
  assert.equal(d.s.restart.running, false)
  assert.equal(d.s.restart.attempts, 0, "the next failure starts a fresh run")
  assert.equal(d.s.restart.failures.length, 1, "the failure is remembered for the window")
  assert.equal(d.resigned, false)
  assert.equal(roleName(d.s), "leader")
})

test("crash loop on the primary: mysqld back for a probe or two each time: it resigns at the third failure", () => {
  const { primary } = cluster()
  const d = new Driver(primary)
  d.crash(2)
  assert.equal(d.restarts, 1)
  d.crash(2)
  assert.equal(d.restarts, 2, "the second failure in the run is restarted")
  assert.equal(d.resigned, false)
  // The old routine reset attempts here, on the first good probe, and restarted for ever.
  assert.equal(d.s.restart.attempts, 2)
  d.tick(false, 1)
  assert.equal(d.resigned, true, "the third failure within restart_window is a crash loop")
  assert.equal(d.events("crash-loop"), 1)
  assert.equal(d.restarts, 2, "no third restart")
  assert.equal(roleName(d.s), "follower")
  assert.equal(d.s.restart.gaveUp, true)
  const fence = d.out.findIndex((o) => o._tag === "Mysql" && o.action._tag === "Fence")
  const resign = d.out.findIndex((o) => o._tag === "Send" && o.message._tag === "Resign")
  assert.ok(fence >= 0 && fence < resign, "fenced before the resignation is sent")
})

test("a crash loop the service manager restarts (no restart by the agent): the failures still count", () => {
  const { primary } = cluster()
  const d = new Driver(primary)
  // Down only 3 probes (INFO..CRITICAL, never FAIL) at first: not a failure yet (timeouts:
  // a refused connection would be FAIL at once).
  d.tick(false, 3, "connect ETIMEDOUT").tick(true, 1)
  assert.equal(d.s.restart.running, false)
  assert.equal(d.restarts, 0)
  d.tick(false, 4) // FAIL: failure 1, restart issued
  assert.equal(d.restarts, 1)
  // The service manager brings it back before the agent's restart answers.
  d.tick(true, 1).tick(false, 1) // failure 2 (health is still FAIL: at once)
  d.tick(true, 1).tick(false, 1) // failure 3
  assert.equal(d.resigned, true)
  assert.equal(d.restarts, 1, "while the first restart is in flight, no second one")
})

test("crashes further apart than restart_window never add up to a crash loop", () => {
  const { primary } = cluster()
  const t = primary.config.timings
  const d = new Driver(primary)
  for (let i = 0; i < 5; i++) {
    d.crash(t.restartStableMs / PROBE_MS + 1)
    assert.equal(d.s.restart.running, false)
    d.tick(true, t.restartWindowMs / PROBE_MS)
  }
  assert.equal(d.resigned, false)
  assert.equal(d.restarts, 5)
})

test("crashes each after a stable period, but within restart_window: the third one resigns", () => {
  const { primary } = cluster()
  const t = primary.config.timings
  const d = new Driver(primary)
  d.crash(t.restartStableMs / PROBE_MS + 1)
  d.crash(t.restartStableMs / PROBE_MS + 1)
  assert.equal(d.events("restart-succeeded"), 2)
  assert.equal(d.resigned, false)
  d.tick(false, 4)
  assert.equal(d.resigned, true)
  assert.equal(d.restarts, 2)
})

test("the run's deadline spans the loop: down after restart_timeout without a stable period resigns", () => {
  const { primary } = cluster()
  const t = primary.config.timings
  // One failure allowed per window here, so only the deadline can end the run.
  const s: AgentState = {
    ...primary,
    config: { ...primary.config, timings: { ...t, restartAttempts: 100 } },
  }
  const d = new Driver(s)
  const probesToDeadline = d.s.config.timings.restartTimeoutMs / PROBE_MS
  // Up 5 probes (2.5 s, under the 10 s stable period), down 4: never stable.
  while (!d.resigned && d.restarts < 50) d.crash(5)
  assert.equal(d.resigned, true)
  assert.ok(
    d.s.now - primary.now <= (probesToDeadline + 2 * 9) * PROBE_MS,
    "within restart_timeout plus a cycle of the loop",
  )
})

test("a crash-looping replica gives up restarting and does not stand until it stays up", () => {
  const { replica } = cluster()
  assert.equal(selfEligible(replica).ok, true)
  const d = new Driver(replica)
  d.crash(1).crash(1).tick(false, 1)
  assert.equal(d.s.restart.gaveUp, true)
  assert.equal(d.events("crash-loop"), 1)
  const restarts = d.restarts
  d.tick(false, 10)
  assert.equal(d.restarts, restarts, "no more restarts by the agent")
  d.tick(true, 2)
  const verdict = selfEligible(d.s)
  assert.equal(verdict.ok, false, "back, but not yet stable: does not stand")
  assert.match(verdict.ok ? "" : verdict.why, /gave up restarting/)
  d.tick(true, replica.config.timings.restartStableMs / PROBE_MS)
  // (It may still wait to catch up with the primary: its relay logs may be gone.)
  assert.equal(crashLoopWhy(d.s), null, "stable again: the crash loop no longer holds it back")
  // Still within the window: the next failure gives up at once, without a restart.
  d.tick(false, 4)
  assert.equal(d.s.restart.gaveUp, true)
  assert.equal(d.restarts, restarts)
})

// Issue 13: a refused connection on the local socket or port is certain; a
// restart command that fails at once cannot do better on a retry.
test("a refused local connection is FAIL at once: the restart is issued at the first refused probe", () => {
  const { primary } = cluster()
  const d = new Driver(primary).tick(false, 1)
  assert.equal(d.s.local.health.level, "FAIL")
  assert.equal(d.events("mysqld-failed"), 1)
  assert.equal(d.restarts, 1)
})

test("a probe timeout still climbs the ladder: no FAIL before four misses", () => {
  const { primary } = cluster()
  const d = new Driver(primary).tick(false, 3, "the probe did not finish within 2000 ms")
  assert.equal(d.s.local.health.level, "CRITICAL")
  assert.equal(d.restarts, 0)
  d.tick(false, 1, "the probe did not finish within 2000 ms")
  assert.equal(d.s.local.health.level, "FAIL")
})

test("the primary's restart command fails at once: it resigns at once, no second attempt", () => {
  const { primary } = cluster()
  const d = new Driver(primary).tick(false, 1).restartDone(false, 80)
  assert.equal(d.restarts, 1)
  assert.equal(d.resigned, true)
  assert.equal(d.s.restart.gaveUp, true)
  assert.equal(roleName(d.s), "follower")
  d.tick(false, 4)
  assert.equal(d.restarts, 1, "no restart after giving up")
})

test("the primary's restart command fails slowly (a start that ran): retried as before", () => {
  const { primary } = cluster()
  const d = new Driver(primary).tick(false, 1).restartDone(false, 3000)
  assert.equal(d.resigned, false)
  d.tick(false, 1)
  assert.equal(d.restarts, 2, "a second attempt")
  d.restartDone(false, 3000).tick(false, 1)
  assert.equal(d.resigned, true, "the attempts are spent")
})

test("a replica's restart command fails at once: it keeps its attempts", () => {
  const { replica } = cluster()
  const d = new Driver(replica).tick(false, 1)
  assert.equal(d.restarts, 1)
  d.restartDone(false, 80).tick(false, 1)
  assert.equal(d.s.restart.gaveUp, false)
  assert.equal(d.restarts, 2)
})
