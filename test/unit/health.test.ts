import assert from "node:assert/strict"
import { describe, test } from "node:test"
import fc from "fast-check"
import {
  defaultHealthThresholds,
  type HealthLevel,
  type HealthState,
  type HealthThresholds,
  healthLevels,
  healthRank,
  initialHealth,
  isAtLeast,
  isHealthLevel,
  isRoleState,
  levelForFailures,
  levelForLag,
  type ProbeOutcome,
  probeFailed,
  probeLate,
  probeOk,
  roleStates,
  runHealth,
  stepHealth,
  validateHealthThresholds,
  worseHealth,
} from "../../agent/src/core/health.ts"

const t: HealthThresholds = {
  failuresToInfo: 1,
  failuresToWarn: 2,
  failuresToCritical: 4,
  failuresToFail: 6,
  successesToRecover: 3,
  lagInfoSeconds: 5,
  lagWarnSeconds: 30,
  lagCriticalSeconds: 120,
}

const ok = probeOk()
const fail = probeFailed("connect ECONNREFUSED")
const repeat = (o: ProbeOutcome, times: number): ProbeOutcome[] =>
  Array.from({ length: times }, () => o)

/** The level after each outcome, starting from `state`. */
function trace(state: HealthState, outcomes: ReadonlyArray<ProbeOutcome>): HealthLevel[] {
  const levels: HealthLevel[] = []
  let s = state
  for (const o of outcomes) {
    s = stepHealth(t, s, o)
    levels.push(s.level)
  }
  return levels
}

const healthy: HealthState = runHealth(t, initialHealth, repeat(ok, 3))

describe("health ladder", () => {
  test("a node starts not OK and becomes OK after successesToRecover good probes", () => {
    assert.equal(initialHealth.level, "INFO")
    assert.deepEqual(trace(initialHealth, repeat(ok, 3)), ["INFO", "INFO", "OK"])
    assert.deepEqual(healthy, {
      level: "OK",
      consecutiveFailures: 0,
      consecutiveSuccesses: 3,
      recoveryStreak: 0,
    })
  })

  test("consecutive failures climb the ladder at once: INFO, WARN, CRITICAL, FAIL", () => {
    assert.deepEqual(trace(healthy, repeat(fail, 7)), [
      "INFO",
      "WARN",
      "WARN",
      "CRITICAL",
      "CRITICAL",
      "FAIL",
      "FAIL",
    ])
    const s = runHealth(t, healthy, repeat(fail, 7))
    assert.equal(s.consecutiveFailures, 7)
    assert.equal(s.consecutiveSuccesses, 0)
  })

  test("late probes count like failed ones", () => {
    assert.deepEqual(trace(healthy, [probeLate, fail, probeLate, fail, probeLate, probeLate]), [
      "INFO",
      "WARN",
      "WARN",
      "CRITICAL",
      "CRITICAL",
      "FAIL",
    ])
  })

  test("recovery steps down one level per successesToRecover good probes", () => {
    const failed = runHealth(t, healthy, repeat(fail, 6))
    assert.equal(failed.level, "FAIL")
    assert.deepEqual(trace(failed, repeat(ok, 12)), [
      ...["FAIL", "FAIL", "CRITICAL"],
      ...["CRITICAL", "CRITICAL", "WARN"],
      ...["WARN", "WARN", "INFO"],
      ...["INFO", "INFO", "OK"],
    ])
  })

  test("a miss during recovery restarts the recovery streak", () => {
    const critical = runHealth(t, healthy, repeat(fail, 4))
    assert.equal(critical.level, "CRITICAL")
    // Two good, one miss, three good: only the last three count.
    const levels = trace(critical, [ok, ok, fail, ok, ok, ok])
    assert.deepEqual(levels, ["CRITICAL", "CRITICAL", "CRITICAL", "CRITICAL", "CRITICAL", "WARN"])
  })

  test("flapping probes do not flap the level", () => {
    const flapping = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? fail : ok))
    const levels = trace(healthy, flapping)
    // It climbs to INFO at the first miss and stays there: never back to OK.
    assert.deepEqual(new Set(levels), new Set(["INFO"]))
    // good, good, bad: still never recovers (successesToRecover = 3).
    const twoUpOneDown = Array.from({ length: 60 }, (_, i) => (i % 3 === 2 ? fail : ok))
    const after = trace(runHealth(t, healthy, repeat(fail, 2)), twoUpOneDown)
    assert.ok(!after.includes("OK"), "never OK while it keeps missing")
    let changes = 0
    for (let i = 1; i < after.length; i++) if (after[i] !== after[i - 1]) changes++
    assert.ok(changes <= 1, `level changed ${changes} times`)
  })

  test("lag maps to INFO, WARN, CRITICAL and never FAIL", () => {
    assert.equal(levelForLag(t, null), "OK")
    assert.equal(levelForLag(t, 0), "OK")
    assert.equal(levelForLag(t, 4.9), "OK")
    assert.equal(levelForLag(t, 5), "INFO")
    assert.equal(levelForLag(t, 30), "WARN")
    assert.equal(levelForLag(t, 119), "WARN")
    assert.equal(levelForLag(t, 120), "CRITICAL")
    assert.equal(levelForLag(t, 1e9), "CRITICAL")
    assert.equal(levelForLag(t, Number.POSITIVE_INFINITY), "CRITICAL")
    assert.equal(levelForLag(t, -3), "OK")
    assert.equal(levelForLag(t, Number.NaN), "OK")
  })

  test("rising lag climbs at once; falling lag recovers with hysteresis", () => {
    const levels = trace(healthy, [
      probeOk(10),
      probeOk(200),
      probeOk(200),
      ...repeat(probeOk(0), 9),
    ])
    assert.deepEqual(levels, [
      "INFO",
      "CRITICAL",
      "CRITICAL",
      ...["CRITICAL", "CRITICAL", "WARN"],
      ...["WARN", "WARN", "INFO"],
      ...["INFO", "INFO", "OK"],
    ])
  })

  test("recovery never goes below what the latest probe shows", () => {
    const critical = runHealth(t, healthy, [probeOk(500)])
    assert.equal(critical.level, "CRITICAL")
    // Lag drops to the WARN band and stays there: CRITICAL -> WARN, and no further.
    assert.deepEqual(trace(critical, repeat(probeOk(40), 9)), [
      ...["CRITICAL", "CRITICAL", "WARN"],
      ...["WARN", "WARN", "WARN"],
      ...["WARN", "WARN", "WARN"],
    ])
    const s = runHealth(t, critical, repeat(probeOk(40), 9))
    assert.equal(s.recoveryStreak, 0, "probes at the current level are no recovery progress")
    assert.equal(s.consecutiveSuccesses, 3 + 1 + 9)
  })

  test("lag alone never makes FAIL, however long it lasts", () => {
    assert.equal(runHealth(t, healthy, repeat(probeOk(1e6), 100)).level, "CRITICAL")
  })

  test("failures on top of lag: the worse of the two", () => {
    const lagging = runHealth(t, healthy, [probeOk(40)])
    assert.equal(lagging.level, "WARN")
    assert.deepEqual(trace(lagging, repeat(fail, 6)), [
      "WARN",
      "WARN",
      "WARN",
      "CRITICAL",
      "CRITICAL",
      "FAIL",
    ])
  })

  test("failuresToInfo > 1 tolerates a single miss", () => {
    const lenient = { ...t, failuresToInfo: 2, failuresToWarn: 3 }
    let s = runHealth(lenient, initialHealth, repeat(ok, 3))
    assert.equal(s.level, "OK")
    s = runHealth(lenient, s, [fail, ok, fail, ok, fail, ok])
    assert.equal(s.level, "OK")
    assert.equal(runHealth(lenient, s, [fail, fail]).level, "INFO")
    assert.equal(runHealth(lenient, s, [fail, fail, fail]).level, "WARN")
  })

  test("default thresholds follow the config defaults", () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((f) => levelForFailures(defaultHealthThresholds, f)),
      ["INFO", "WARN", "CRITICAL", "FAIL"],
    )
    assert.deepEqual(
      [0, 5, 10, 60].map((lag) => levelForLag(defaultHealthThresholds, lag)),
      ["OK", "INFO", "WARN", "CRITICAL"],
    )
  })

  test("successesToRecover = 1 recovers one level per good probe", () => {
    const fast = { ...t, successesToRecover: 1 }
    const failed = runHealth(fast, healthy, repeat(fail, 6))
    const levels: HealthLevel[] = []
    let s = failed
    for (let i = 0; i < 5; i++) {
      s = stepHealth(fast, s, ok)
      levels.push(s.level)
    }
    assert.deepEqual(levels, ["CRITICAL", "WARN", "INFO", "OK", "OK"])
  })
})

describe("health properties", () => {
  const outcomeArb: fc.Arbitrary<ProbeOutcome> = fc.oneof(
    fc.constant(probeOk()),
    fc.integer({ min: 0, max: 300 }).map((lag) => probeOk(lag)),
    fc.constant(probeFailed("timeout")),
    fc.constant(probeLate),
  )

  test("a miss never improves the level; a failure streak reaches its level", () => {
    fc.assert(
      fc.property(fc.array(outcomeArb, { maxLength: 40 }), (outcomes) => {
        let s = initialHealth
        for (const o of outcomes) {
          const next = stepHealth(t, s, o)
          if (o._tag !== "ProbeOk") {
            assert.ok(healthRank(next.level) >= healthRank(s.level))
            assert.ok(isAtLeast(next.level, levelForFailures(t, next.consecutiveFailures)))
            assert.equal(next.consecutiveSuccesses, 0)
          } else {
            assert.equal(next.consecutiveFailures, 0)
            // A good probe moves down at most one level, and never below what it shows.
            assert.ok(healthRank(next.level) >= healthRank(s.level) - 1)
            assert.ok(isAtLeast(next.level, levelForLag(t, o.lagSeconds)))
          }
          assert.ok(next.recoveryStreak < t.successesToRecover)
          s = next
        }
      }),
    )
  })

  test("after enough clean probes any state is OK; lag never yields FAIL from below", () => {
    fc.assert(
      fc.property(fc.array(outcomeArb, { maxLength: 40 }), (outcomes) => {
        const s = runHealth(t, initialHealth, outcomes)
        const clean = runHealth(t, s, repeat(ok, 4 * t.successesToRecover))
        assert.equal(clean.level, "OK")
        const lagOnly = runHealth(
          t,
          healthy,
          outcomes.filter((o) => o._tag === "ProbeOk"),
        )
        assert.notEqual(lagOnly.level, "FAIL")
      }),
    )
  })

  test("a level goes down only after successesToRecover good probes in a row", () => {
    fc.assert(
      fc.property(fc.array(outcomeArb, { maxLength: 60 }), (outcomes) => {
        let s = initialHealth
        let goodRun = 0
        for (const o of outcomes) {
          const next = stepHealth(t, s, o)
          goodRun = o._tag === "ProbeOk" ? goodRun + 1 : 0
          if (healthRank(next.level) < healthRank(s.level)) {
            assert.ok(goodRun >= t.successesToRecover)
          }
          s = next
        }
      }),
    )
  })
})

describe("levels, roles and thresholds", () => {
  test("ranks and comparisons", () => {
    assert.deepEqual(healthLevels.map(healthRank), [0, 1, 2, 3, 4])
    assert.equal(worseHealth("WARN", "INFO"), "WARN")
    assert.equal(worseHealth("OK", "FAIL"), "FAIL")
    assert.ok(isAtLeast("CRITICAL", "WARN"))
    assert.ok(!isAtLeast("INFO", "WARN"))
    assert.ok(isHealthLevel("CRITICAL"))
    assert.ok(!isHealthLevel("DEAD"))
    assert.ok(isRoleState("DIVERGED"))
    assert.ok(!isRoleState("PRIMARY"))
    assert.deepEqual(roleStates, ["ACTIVE", "STANDBY", "FENCED", "DIVERGED", "FAIL", "UNKNOWN"])
  })

  test("failure streak levels", () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 100].map((f) => levelForFailures(t, f)),
      ["OK", "INFO", "WARN", "WARN", "CRITICAL", "CRITICAL", "FAIL", "FAIL"],
    )
  })

  test("default thresholds are valid; bad ones are reported", () => {
    assert.deepEqual(validateHealthThresholds(defaultHealthThresholds), [])
    assert.deepEqual(validateHealthThresholds(t), [])
    const problems = validateHealthThresholds({
      ...t,
      failuresToWarn: 5,
      failuresToCritical: 3,
      successesToRecover: 0,
      lagWarnSeconds: -1,
    })
    assert.equal(problems.length, 4, problems.join("; "))
    assert.ok(problems.some((p) => p.includes("successesToRecover")))
    assert.ok(problems.some((p) => p.includes("failuresToWarn <= failuresToCritical")))
    assert.equal(validateHealthThresholds({ ...t, failuresToInfo: 3 }).length, 1)
  })

  test("stepHealth is pure: inputs are not modified", () => {
    const before = { ...healthy }
    stepHealth(t, healthy, fail)
    assert.deepEqual(healthy, before)
    assert.ok(Object.isFrozen(initialHealth))
  })
})
