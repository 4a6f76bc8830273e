/**
 * The health ladder of a node (pure): `OK -> INFO -> WARN -> CRITICAL -> FAIL`,
 * moved by probe outcomes with hysteresis (protocol.md section 2), and the
 * role states a node can be in.
 *
 * Rules of `stepHealth`:
 * - A failed or late probe extends the failure streak. The streak maps to a
 *   level (`failuresToInfo` misses: INFO, `failuresToWarn`: WARN,
 *   `failuresToCritical`: CRITICAL, `failuresToFail`: FAIL) and the level
 *   rises to it at once.
 *   A late probe (no answer yet when the next one is due) counts as a miss:
 *   a hung mysqld must not look healthy. `localProbeDue` (local-node.ts)
 *   produces it at each probe tick that finds the last probe unanswered, and
 *   sends no other probe behind it. A probe that hit its timeout is reported
 *   by the prober as `ProbeFailed`, a miss too: one miss per probe interval
 *   without an answer.
 * - A refused connection (`ProbeRefused`: nothing listens on the local
 *   socket or port) is certain: FAIL at once, the streak counted as full.
 * - A good probe ends the failure streak. Its lag maps to a level (below
 *   `lagInfoSeconds`: OK, then INFO, WARN, CRITICAL; lag alone never gives
 *   FAIL: a lagging server is alive). If that is worse than the current
 *   level, the level rises to it at once.
 * - Coming back down is slow: only after `successesToRecover` consecutive good
 *   probes, each better than the current level, does the level step down ONE
 *   level (never below what the latest probe shows); the next step needs a
 *   fresh streak. So CRITICAL -> OK takes 3 * successesToRecover good probes,
 *   and a flapping server (good, bad, good, bad) never climbs down.
 * - Before any probe a node is not OK: `initialHealth` is INFO, so a fresh
 *   node is OK only after `successesToRecover` good probes, and its first
 *   failed probes climb the ladder as usual. (Whether a node has been
 *   observed at all is the role state `UNKNOWN`, not a health level.)
 */

export type HealthLevel = "OK" | "INFO" | "WARN" | "CRITICAL" | "FAIL"

/** The ladder from best to worst. */
export const healthLevels: ReadonlyArray<HealthLevel> = ["OK", "INFO", "WARN", "CRITICAL", "FAIL"]

/**
 * - `ACTIVE`: the writable primary that holds the lease.
 * - `STANDBY`: a healthy replica of the active primary.
 * - `FENCED`: made read-only (and without the VIP) by itself or by a new primary.
 * - `DIVERGED`: has errant transactions; must not rejoin by itself.
 * - `FAIL`: its mysqld is down or unusable.
 * - `UNKNOWN`: not observed yet; nothing is assumed.
 */
export type RoleState = "ACTIVE" | "STANDBY" | "FENCED" | "DIVERGED" | "FAIL" | "UNKNOWN"

export const roleStates: ReadonlyArray<RoleState> = [
  "ACTIVE",
  "STANDBY",
  "FENCED",
  "DIVERGED",
  "FAIL",
  "UNKNOWN",
]

export function isHealthLevel(value: unknown): value is HealthLevel {
  return typeof value === "string" && (healthLevels as ReadonlyArray<string>).includes(value)
}

export function isRoleState(value: unknown): value is RoleState {
  return typeof value === "string" && (roleStates as ReadonlyArray<string>).includes(value)
}

/** 0 for OK up to 4 for FAIL. */
export function healthRank(level: HealthLevel): number {
  switch (level) {
    case "OK":
      return 0
    case "INFO":
      return 1
    case "WARN":
      return 2
    case "CRITICAL":
      return 3
    case "FAIL":
      return 4
    default:
      return absurd(level)
  }
}

function levelOfRank(rank: number): HealthLevel {
  return healthLevels[Math.max(0, Math.min(healthLevels.length - 1, rank))]!
}

/** The worse of two levels. */
export function worseHealth(a: HealthLevel, b: HealthLevel): HealthLevel {
  return healthRank(a) >= healthRank(b) ? a : b
}

/** True when `level` is at least as bad as `threshold`. */
export function isAtLeast(level: HealthLevel, threshold: HealthLevel): boolean {
  return healthRank(level) >= healthRank(threshold)
}

/**
 * Mirrors the `health` section of the config (shared/config.ts: `info_after`,
 * `warn_after`, `critical_after`, `fail_after`, `recover_after`, `lag_warn`,
 * `lag_critical`); lags here are in seconds, as MySQL reports them. A config
 * with no INFO lag band can set `lagInfoSeconds = lagWarnSeconds`.
 */
export interface HealthThresholds {
  /** Consecutive failed or late probes that make the level INFO. */
  readonly failuresToInfo: number
  /** Consecutive failed or late probes that make the level WARN. */
  readonly failuresToWarn: number
  /** Consecutive failed or late probes that make the level CRITICAL. */
  readonly failuresToCritical: number
  /** Consecutive failed or late probes that make the level FAIL. */
  readonly failuresToFail: number
  /** Consecutive good probes needed to step down one level. */
  readonly successesToRecover: number
  /** Replication lag (seconds) from which a good probe shows INFO. */
  readonly lagInfoSeconds: number
  /** Replication lag (seconds) from which a good probe shows WARN. */
  readonly lagWarnSeconds: number
  /** Replication lag (seconds) from which a good probe shows CRITICAL. */
  readonly lagCriticalSeconds: number
}

/**
 * The config defaults (shared/config.ts). With the default 500 ms probe
 * interval: INFO at the first miss, WARN after 1 s of misses, CRITICAL after
 * 1.5 s, FAIL after 2 s (well inside the 4 s lease); one level down per 1.5 s
 * of good probes. Lag: INFO from 5 s, WARN from 10 s, CRITICAL from 60 s.
 */
export const defaultHealthThresholds: HealthThresholds = Object.freeze({
  failuresToInfo: 1,
  failuresToWarn: 2,
  failuresToCritical: 3,
  failuresToFail: 4,
  successesToRecover: 3,
  lagInfoSeconds: 5,
  lagWarnSeconds: 10,
  lagCriticalSeconds: 60,
})

/** What is wrong with `t`, one message per problem; empty when it is usable. */
export function validateHealthThresholds(t: HealthThresholds): ReadonlyArray<string> {
  const problems: string[] = []
  const positiveInteger = (name: keyof HealthThresholds): void => {
    const v = t[name]
    if (!Number.isInteger(v) || v < 1) problems.push(`${name} must be an integer >= 1, got ${v}`)
  }
  positiveInteger("failuresToInfo")
  positiveInteger("failuresToWarn")
  positiveInteger("failuresToCritical")
  positiveInteger("failuresToFail")
  positiveInteger("successesToRecover")
  if (
    !(
      t.failuresToInfo <= t.failuresToWarn &&
      t.failuresToWarn <= t.failuresToCritical &&
      t.failuresToCritical <= t.failuresToFail
    )
  ) {
    problems.push(
      "failuresToInfo <= failuresToWarn <= failuresToCritical <= failuresToFail must hold",
    )
  }
  for (const name of ["lagInfoSeconds", "lagWarnSeconds", "lagCriticalSeconds"] as const) {
    const v = t[name]
    if (!Number.isFinite(v) || v < 0) problems.push(`${name} must be a number >= 0, got ${v}`)
  }
  if (!(t.lagInfoSeconds <= t.lagWarnSeconds && t.lagWarnSeconds <= t.lagCriticalSeconds)) {
    problems.push("lagInfoSeconds <= lagWarnSeconds <= lagCriticalSeconds must hold")
  }
  return problems
}

export interface HealthState {
  readonly level: HealthLevel
  /** Failed or late probes in a row (0 after a good probe). */
  readonly consecutiveFailures: number
  /** Good probes in a row, whatever their lag (0 after a miss). */
  readonly consecutiveSuccesses: number
  /**
   * Good probes in a row that were better than the current level: the
   * recovery streak. Reaching `successesToRecover` steps the level down one
   * notch and restarts the streak at 0.
   */
  readonly recoveryStreak: number
}

/** Before any probe: not OK (INFO), no streaks. */
export const initialHealth: HealthState = Object.freeze({
  level: "INFO",
  consecutiveFailures: 0,
  consecutiveSuccesses: 0,
  recoveryStreak: 0,
})

export type ProbeOutcome =
  /** The probe answered in time. `lagSeconds`: replication lag, `null` when there is none to speak of (a primary) or it is unknown. */
  | { readonly _tag: "ProbeOk"; readonly lagSeconds: number | null }
  /** Connect or query failed, or the probe hit its timeout. */
  | { readonly _tag: "ProbeFailed"; readonly reason: string }
  /** No answer yet when the next probe was due. */
  | { readonly _tag: "ProbeLate" }
  /**
   * The local socket or port refused the connection (ECONNREFUSED, ENOENT):
   * no mysqld listens there. That is certain, not a guess from silence: FAIL
   * at once (issue 13), where a timeout or a late probe climbs the ladder.
   */
  | { readonly _tag: "ProbeRefused"; readonly reason: string }

export const probeOk = (lagSeconds: number | null = null): ProbeOutcome => ({
  _tag: "ProbeOk",
  lagSeconds,
})
export const probeFailed = (reason: string): ProbeOutcome => ({ _tag: "ProbeFailed", reason })
export const probeLate: ProbeOutcome = Object.freeze({ _tag: "ProbeLate" })

/** The level a failure streak of `failures` calls for (OK for 0). */
export function levelForFailures(t: HealthThresholds, failures: number): HealthLevel {
  if (failures >= t.failuresToFail) return "FAIL"
  if (failures >= t.failuresToCritical) return "CRITICAL"
  if (failures >= t.failuresToWarn) return "WARN"
  return failures >= t.failuresToInfo ? "INFO" : "OK"
}

/**
 * The level a good probe with this lag calls for: never FAIL. A null or NaN
 * lag counts as no lag (broken replication is judged elsewhere, not here);
 * a negative lag (clock skew) as 0.
 */
export function levelForLag(t: HealthThresholds, lagSeconds: number | null): HealthLevel {
  if (lagSeconds === null || Number.isNaN(lagSeconds)) return "OK"
  if (lagSeconds >= t.lagCriticalSeconds) return "CRITICAL"
  if (lagSeconds >= t.lagWarnSeconds) return "WARN"
  if (lagSeconds >= t.lagInfoSeconds) return "INFO"
  return "OK"
}

/** The next health state after one probe outcome. */
export function stepHealth(
  thresholds: HealthThresholds,
  state: HealthState,
  outcome: ProbeOutcome,
): HealthState {
  switch (outcome._tag) {
    case "ProbeFailed":
    case "ProbeLate":
      return onMiss(thresholds, state)
    case "ProbeRefused":
      return {
        level: "FAIL",
        consecutiveFailures: Math.max(state.consecutiveFailures + 1, thresholds.failuresToFail),
        consecutiveSuccesses: 0,
        recoveryStreak: 0,
      }
    case "ProbeOk":
      return onGood(thresholds, state, levelForLag(thresholds, outcome.lagSeconds))
    default:
      return absurd(outcome)
  }
}

function onMiss(t: HealthThresholds, state: HealthState): HealthState {
  const failures = state.consecutiveFailures + 1
  return {
    level: worseHealth(state.level, levelForFailures(t, failures)),
    consecutiveFailures: failures,
    consecutiveSuccesses: 0,
    recoveryStreak: 0,
  }
}

function onGood(t: HealthThresholds, state: HealthState, shown: HealthLevel): HealthState {
  const successes = state.consecutiveSuccesses + 1
  const current = healthRank(state.level)
  const target = healthRank(shown)
  if (target >= current) {
    // As bad or worse than now: climb at once, no recovery progress.
    return {
      level: levelOfRank(target),
      consecutiveFailures: 0,
      consecutiveSuccesses: successes,
      recoveryStreak: 0,
    }
  }
  const streak = state.recoveryStreak + 1
  if (streak >= t.successesToRecover) {
    return {
      level: levelOfRank(Math.max(target, current - 1)),
      consecutiveFailures: 0,
      consecutiveSuccesses: successes,
      recoveryStreak: 0,
    }
  }
  return {
    level: state.level,
    consecutiveFailures: 0,
    consecutiveSuccesses: successes,
    recoveryStreak: streak,
  }
}

/** Folds `stepHealth` over a sequence of outcomes. */
export function runHealth(
  thresholds: HealthThresholds,
  state: HealthState,
  outcomes: Iterable<ProbeOutcome>,
): HealthState {
  let s = state
  for (const o of outcomes) s = stepHealth(thresholds, s, o)
  return s
}

function absurd(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`)
}
