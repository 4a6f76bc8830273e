/**
 * on_failure_detected (operations.md, Hooks): once per failure of a primary,
 * on every agent that sees it (hook-events.ts) and on the winner of a forced
 * election (promotion.ts).
 */
import { event, type Outputs, runHook } from "./outputs.ts"
import type { AgentState } from "./types.ts"

/** One failure of one primary: its name and the record that made it primary. */
export const failureKey = (s: AgentState, primary: string): string =>
  `${primary}@${s.hard.record.term}.${s.hard.record.seq}`

/** Runs on_failure_detected once per failure of `primary`. */
export const noteFailure = (
  s: AgentState,
  out: Outputs,
  primary: string,
  reason: string,
): AgentState => {
  const key = failureKey(s, primary)
  if (s.failureSeen === key) return s
  event(out, "warn", "primary-failure-detected", `${primary}: ${reason}`)
  const [next] = runHook(
    s,
    out,
    "on_failure_detected",
    { MHA_OLD_PRIMARY: primary, MHA_REASON: reason },
    { _tag: "Hook" },
  )
  return { ...next, failureSeen: key }
}
