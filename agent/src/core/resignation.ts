/**
 * Resigning (sections 6 and 12): a primary that cannot go on fences itself
 * and then tells everyone, so that replicas elect at once without waiting for
 * its lease to run out. The Resign message is emitted after the fence
 * outputs, and the driver executes outputs in order.
 */
import { adoptionEnds } from "./adoption.ts"
import { selfFence } from "./fencing.ts"
import { broadcast, event, type Outputs } from "./outputs.ts"
import { becomeFollower, leaderOf, promotionOf, withLeader } from "./roles.ts"
import type { AgentState } from "./types.ts"
import { mysqldRefuses } from "./vip-handover.ts"

/**
 * `preferred`: the member the operator asked for (issue 17 item 2). Between
 * the fence and the Resign, every peer gets a TransferLeadership naming it:
 * it stands at once (a transfer vote), and voters grant it without waiting
 * out the lease; the others wait for it as in a switchover.
 */
export const resign = (
  s: AgentState,
  out: Outputs,
  reason: string,
  preferred?: string,
): AgentState => {
  // A source being adopted whose first promotion aborted before a quorum recorded it as the
  // primary was writable before and nobody else can win meanwhile: it stays so (adoption.ts).
  const adopted =
    promotionOf(s)?.kind === "bootstrap" && s.hard.record.term === 0 && adoptionEnds(s) === null
  // A mysqld that refuses connections takes no write: the VIP stays until the next primary
  // has it, so clients get a reset and retry at once instead of a dropped SYN (vip-handover.ts).
  const fenced = adopted ? s : selfFence(s, out, `resigning: ${reason}`, mysqldRefuses(s))
  if (preferred !== undefined)
    broadcast(fenced, out, {
      _tag: "TransferLeadership",
      from: s.self,
      term: s.hard.term,
      to: preferred,
      reason,
    })
  broadcast(fenced, out, { _tag: "Resign", from: s.self, term: s.hard.term, reason })
  event(out, "warn", "resigned", `term ${s.hard.term}: ${reason}`)
  return {
    ...becomeFollower(fenced, { leader: null, leaderActive: false }),
    promise: null,
    resignedTerm: s.hard.term,
    // Its fence may still be pending (and mysqld writable): the "restarted recorded primary
    // reclaims" rule must not make it stand again before its own Resign has left.
    reclaimTried: true,
  }
}

/** A peer's resignation: the leader of this term is gone, no lease to wait for. */
export const onResign = (
  s: AgentState,
  out: Outputs,
  from: string,
  term: number,
  reason: string,
) => {
  if (term !== s.hard.term) return s
  const leader = leaderOf(s)
  if (leader !== null && leader !== from) return s
  event(out, "warn", "primary-resigned", `${from} resigned term ${term}: ${reason}`)
  return {
    ...withLeader(s, null, false),
    // Probe the local mysqld now and tell the peers at once (heartbeatAfterResign): the
    // election that follows ranks on what each replica received, and a view up to a probe
    // plus a heartbeat interval old made the first pre-votes refuse each other (issue 13).
    nextProbeAt: s.now,
    freshViewWanted: true,
    promise: s.promise?.leader === from ? null : s.promise,
    resignedTerm: term,
  }
}

/**
 * After a resignation, the first local probe's result goes to the peers in a
 * heartbeat at once, not at the next heartbeat tick.
 */
export const heartbeatAfterResign = (s: AgentState): AgentState =>
  s.freshViewWanted === true
    ? { ...s, freshViewWanted: false, nextHeartbeatAt: Math.min(s.nextHeartbeatAt, s.now) }
    : s
