import { step } from "../../agent/src/core/reducer.ts"
import type { AgentState, Input, Output } from "../../agent/src/core/types.ts"

/**
 * `step`, then, as the executor does when the write succeeds at once, the
 * report that the step's hard state is on disk (core/durability.ts): the
 * messages it held leave, appended to the step's outputs. For tests of the
 * rules behind the seam; tests of the seam itself use `step`.
 */
export const stepWritten = (
  s: AgentState,
  input: Input,
): { readonly state: AgentState; readonly outputs: ReadonlyArray<Output> } => {
  const r = step(s, input)
  const seqs = r.outputs.flatMap((o) => (o._tag === "PersistHardState" ? [o.seq] : []))
  if (seqs.length === 0) return r
  const written = step(r.state, {
    _tag: "Persisted",
    now: r.state.now,
    incarnation: r.state.bootId,
    seq: Math.max(...seqs),
  })
  return { state: written.state, outputs: [...r.outputs, ...written.outputs] }
}
