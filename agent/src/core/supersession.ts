/**
 * Actions that outlive the decision that started them (issue 16 item 2). A
 * step's outputs run in order in the background, and one of them may take
 * seconds (a drain, a fence behind a lock): by the time the next one is
 * due, the core may have undone the decision (a switchover rolled back, a
 * routine ended, the decision loop restarted). Before each side effect the
 * executor asks the core whether it still wants it; the core answers from
 * its current state, so a withdrawn action is never performed.
 */
import { mayBeWritable } from "./fencing.ts"
import type { ActionPurpose, AgentState, Output } from "./types.ts"

/**
 * Making the server writable is re-checked against what the node is now, not
 * what it was when the step issued it: the guard's unfence only while the
 * node may still be writable (leader of its term, in lease, not fenced by a
 * switchover); a promotion's only while that promotion still runs.
 */
const mayStillUnfence = (s: AgentState, purpose: ActionPurpose | undefined): boolean =>
  purpose?._tag === "Promotion"
    ? s.role._tag === "Leader" && s.role.promotion !== null
    : mayBeWritable(s)

/**
 * May the executor still perform `output`, issued by the run `incarnation`
 * of the decision loop? An action with an id (Mysql, RunHook) belongs to the
 * routine that issued it: wanted while this run still counts it in flight.
 * Ids are per run: an action of another run is never this run's. Making
 * the server writable must moreover still be allowed now. Other
 * outputs (persists, messages, VIP moves, probes) carry no decision that a
 * later step withdraws; they always run.
 */
export const stillWanted = (s: AgentState, output: Output, incarnation: string): boolean => {
  switch (output._tag) {
    case "Mysql":
      if (incarnation !== s.bootId || !s.inFlight.has(output.id)) return false
      return output.action._tag !== "MakeWritable" || mayStillUnfence(s, s.inFlight.get(output.id))
    case "RunHook":
      return incarnation === s.bootId && s.inFlight.has(output.id)
    case "WriteLagHeartbeat":
      // Only while it may be writable: never on a node fenced since the step.
      return mayBeWritable(s)
    case "PersistHardState":
    case "Send":
    case "Halt":
    case "Vip":
    case "PublishPrimary":
    case "WithdrawPrimary":
    case "RecordRelayIntact":
    case "RestartMysqld":
    case "KillMysqld":
    case "ProbeLocal":
    case "ProbePrimary":
    case "CheckPrivileges":
    case "Event":
    case "OperatorReply":
      return true
    default: {
      const unhandled: never = output
      return unhandled
    }
  }
}

/**
 * Withdraws the in-flight actions issued for `purposes`: those not started
 * yet are never performed (stillWanted), and a late completion of one that
 * was running is ignored like any unknown id.
 */
export const revokeActions = (
  s: AgentState,
  purposes: ReadonlySet<ActionPurpose["_tag"]>,
): AgentState => {
  let inFlight: Map<number, ActionPurpose> | null = null
  for (const [id, purpose] of s.inFlight) {
    if (!purposes.has(purpose._tag)) continue
    inFlight ??= new Map(s.inFlight)
    inFlight.delete(id)
  }
  return inFlight === null ? s : { ...s, inFlight }
}
