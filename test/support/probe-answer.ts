import type { AgentState } from "../../agent/src/core/types.ts"

/**
 * The fields that make a LocalProbed input the answer to the newest local
 * probe `s` asked for, in its own run (core/local-probes.ts).
 */
export const answering = (
  s: AgentState,
): { readonly incarnation: string; readonly probe: number } => ({
  incarnation: s.bootId,
  probe: s.probes.next - 1,
})
