/**
 * Terms (section 4): any message with a higher term makes the receiver adopt
 * it, durably, and step down if it led.
 */
import { selfFence } from "./fencing.ts"
import { event, type Outputs, persist } from "./outputs.ts"
import { becomeFollower, following, withLeader } from "./roles.ts"
import type { AgentState } from "./types.ts"

/** Back to follower in the current term; a leader fences itself first. */
export const stepDown = (s: AgentState, out: Outputs, reason: string): AgentState => {
  let next = s
  if (s.role._tag === "Leader") next = selfFence(s, out, `stepping down: ${reason}`)
  if (s.role._tag !== "Follower") event(out, "info", "step-down", reason)
  return becomeFollower(
    next,
    s.role._tag === "Leader" ? { leader: null, leaderActive: false } : following(s),
  )
}

/** Adopts a higher term: forgets the vote, persists, steps down. */
export const adoptTerm = (
  s: AgentState,
  out: Outputs,
  term: number,
  reason: string,
): AgentState => {
  if (term <= s.hard.term) return s
  // Persist first, so a vote that follows is not held up behind the fencing of a hung mysqld.
  const adopted: AgentState = { ...s, hard: { ...s.hard, term, votedFor: null } }
  persist(adopted, out)
  const down = stepDown(adopted, out, `term ${term} seen (${reason})`)
  return withLeader(down, null, false)
}
