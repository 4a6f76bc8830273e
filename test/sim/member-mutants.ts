/**
 * Deliberate bugs in membership changes (core/members.ts), made by wrapping
 * the real reducer as test/sim/mutations.ts does (production code untouched),
 * each caught by a scenario of its own (test/sim/members.test.ts).
 */
import { step } from "../../agent/src/core/reducer.ts"
import type { Reducer } from "./world.ts"

/**
 * A primary that takes a removed member for gone as soon as it proposed the
 * removal: the strict wait count drops to what the new list alone needs,
 * although the removed member's mysqld may still acknowledge (scenario 41:
 * its acknowledgement alone then completes a commit no member holds).
 */
export const removedLeftAtOnce: Reducer = (s, i) => {
  const r = step(s, i)
  if ((r.state.removedNotLeft ?? []).length === 0) return r
  return { state: { ...r.state, removedNotLeft: [] }, outputs: r.outputs }
}

export const memberMutants: ReadonlyArray<{
  readonly name: string
  readonly reducer: Reducer
  readonly scenario: string
  readonly failure: string
}> = [
  {
    name: "removed-member-left-at-once",
    reducer: removedLeftAtOnce,
    scenario: "41-members-remove-still-acking.txt",
    failure: "I3",
  },
]
