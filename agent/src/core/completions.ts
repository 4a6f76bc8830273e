/**
 * Completions of actions with an id (MysqlDone, HookDone): each goes back to
 * the routine named by the purpose it was issued for (ActionPurpose, matched
 * exhaustively here: a new purpose does not compile until it is handled).
 * The reducer has already dropped completions of an earlier incarnation.
 */
import { onCloneResult } from "./clone.ts"
import { onVoteFrozen } from "./election.ts"
import { onFenceFailed } from "./fencing.ts"
import { probeLocal } from "./local-probes.ts"
import { completeAction, event, type Outputs } from "./outputs.ts"
import { onPromotionResult } from "./promotion.ts"
import { onSwitchoverCaughtUp, onSwitchoverResult } from "./switchover.ts"
import type { ActionPurpose, AgentState } from "./types.ts"

/** The purpose as the log says it (mysql-action-failed). */
export const purposeLabel = (p: ActionPurpose): string => {
  switch (p._tag) {
    case "Promotion":
      return "promotion"
    case "Revoke":
      return "revoke"
    case "VoteFreeze":
      return "vote-freeze"
    case "Switchover":
      return "switchover"
    case "DrainSessions":
      return "drain-sessions"
    case "SwitchoverKillSessions":
      return "switchover-kill-sessions"
    case "SwitchoverCatchUp":
      return "switchover-catch-up"
    case "Fence":
      return "fence"
    case "KillSessions":
      return "kill-sessions"
    case "MakeWritable":
      return "make-writable"
    case "SemiSyncSource":
      return "semi-sync-source"
    case "Replication":
      return "replication"
    case "SemiSync":
      return "semi-sync"
    case "CloneFence":
      return "clone-fence"
    case "CloneReset":
      return "clone-reset"
    case "Clone":
      return "clone"
    case "FixErrant":
      return "fix-errant"
    case "Hook":
      return "hook"
    default:
      return absurd(p)
  }
}

/** A MySQL action finished: its routine learns the result; others only log a failure. */
export const onMysqlDone = (
  state: AgentState,
  out: Outputs,
  id: number,
  ok: boolean,
  error: string | null,
): AgentState => {
  const [s, purpose] = completeAction(state, id)
  // Unknown id: withdrawn (revokeActions), or the routine ended; nothing waits for it.
  if (purpose === undefined) return s
  const failed = (): void => {
    if (!ok)
      event(out, "warn", "mysql-action-failed", `${purposeLabel(purpose)}: ${error ?? "error"}`)
  }
  switch (purpose._tag) {
    case "Promotion":
      return onPromotionResult(s, out, id, ok, error)
    case "Switchover":
      return onSwitchoverResult(s, out, id, ok)
    case "SwitchoverCatchUp":
      return onSwitchoverCaughtUp(s, out, id, ok, error)
    case "VoteFreeze":
      return onVoteFrozen(s, out)
    case "Clone":
      return onCloneResult(s, out, ok, error)
    case "Fence":
      // A fence that did not complete in time escalates (fencing.ts).
      failed()
      return ok ? s : onFenceFailed(s, out, error)
    case "MakeWritable":
      // The primary writable again (after a restart of its mysqld): its role reads ACTIVE,
      // and /primary answers 200, once a probe shows it; probe now, not an interval later.
      failed()
      return ok ? probeLocal(s, out) : s
    case "Revoke":
    case "DrainSessions":
    case "SwitchoverKillSessions":
    case "KillSessions":
    case "SemiSyncSource":
    case "Replication":
    case "SemiSync":
    case "CloneFence":
    case "CloneReset":
    case "FixErrant":
    case "Hook":
      // Fire and forget: the next probe shows the effect (awaitingProbe), a failure is logged.
      failed()
      return s
    default:
      return absurd(purpose)
  }
}

/** A hook finished: the promotion and the switchover wait for theirs; the others only ran. */
export const onHookDone = (
  state: AgentState,
  out: Outputs,
  id: number,
  exitCode: number,
): AgentState => {
  const [s, purpose] = completeAction(state, id)
  if (purpose === undefined) return s
  const ok = exitCode === 0
  switch (purpose._tag) {
    case "Promotion":
      return onPromotionResult(s, out, id, ok, `exit ${exitCode}`)
    case "Switchover":
      return onSwitchoverResult(s, out, id, ok)
    case "Hook":
    case "Revoke":
    case "VoteFreeze":
    case "DrainSessions":
    case "SwitchoverKillSessions":
    case "SwitchoverCatchUp":
    case "Fence":
    case "KillSessions":
    case "MakeWritable":
    case "SemiSyncSource":
    case "Replication":
    case "SemiSync":
    case "CloneFence":
    case "CloneReset":
    case "Clone":
    case "FixErrant":
      return s
    default:
      return absurd(purpose)
  }
}

function absurd(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`)
}
