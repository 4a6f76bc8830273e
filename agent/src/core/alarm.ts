/**
 * A condition seen on the local probe that the operator must hear about once
 * it lasted a grace period (a short gap after a promotion or a replica
 * restart is normal), and hear again once when it ends: "writes are blocked"
 * (writes-blocked.ts), "semi-sync fell back to asynchronous"
 * (semi-sync-fallback.ts). The caller says what the condition is now and
 * what reporting its start and its end means (event, hook); this keeps the
 * timing alike for all of them.
 */
import type { AgentState } from "./types.ts"

/** What every tracked condition carries besides its own details. */
export interface Tracked {
  /** Local time it was first seen, in this stretch. */
  readonly since: number
  /** Its start was reported (the grace period passed). */
  readonly reported: boolean
}

/**
 * One step of a tracked condition: `now` is its details at this probe (null
 * when it does not hold), `prev` what was tracked so far. Returns the state
 * (after `start` or `end` ran, if either did) and what to track next.
 */
export const trackAlarm = <D extends object>(
  s: AgentState,
  now: D | null,
  prev: (D & Tracked) | null,
  graceMs: number,
  report: {
    readonly start: (s: AgentState, current: D & Tracked) => AgentState
    readonly end: (s: AgentState, last: D & Tracked) => AgentState
  },
): [AgentState, (D & Tracked) | null] => {
  if (now === null) {
    if (prev === null || !prev.reported) return [s, null]
    return [report.end(s, prev), null]
  }
  const since = prev?.since ?? s.now
  const current: D & Tracked = { ...now, since, reported: prev?.reported ?? false }
  if (current.reported || s.now - since < graceMs) return [s, current]
  const reported: D & Tracked = { ...current, reported: true }
  return [report.start(s, reported), reported]
}
