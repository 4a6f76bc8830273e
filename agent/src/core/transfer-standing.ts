/**
 * The target's side of a planned switchover (section 13): the primary,
 * fenced, saw this node's mysqld execute everything it had (switchover.ts)
 * and consents to hand over. The vote request must carry this node's data as
 * it is now, at least that set: the voters refuse a candidate that lacks
 * what they hold. The primary may have learned it from this node's mysqld
 * directly, before this agent's own probe saw it, so the candidate probes
 * first and stands on the answer to a probe sent after the transfer arrived
 * (known by its number: local-probes.ts). If no answer comes within rpc_timeout it stands on what it
 * has; voters that find it short refuse and the replicas elect as after a
 * failed transfer.
 */
import type { PeerMessage } from "../../../shared/peer-messages.ts"
import { isDataNode } from "./config.ts"
import { startVote } from "./election.ts"
import { answeredSince, nextProbe, probeLocal } from "./local-probes.ts"
import { event, type Outputs } from "./outputs.ts"
import { privilegeBlocker } from "./privileges.ts"
import { leaderOf } from "./roles.ts"
import type { AgentState, TransferStanding } from "./types.ts"

type TransferLeadershipMessage = Extract<PeerMessage, { readonly _tag: "TransferLeadership" }>

export const onTransferLeadership = (
  s: AgentState,
  out: Outputs,
  m: TransferLeadershipMessage,
): AgentState => {
  if (m.term !== s.hard.term || leaderOf(s) !== m.from) return s
  const next: AgentState = { ...s, transferConsent: { to: m.to, term: m.term } }
  if (m.to !== s.self || !isDataNode(s.config, s.self) || s.role._tag !== "Follower") return next
  const lacking = privilegeBlocker(next)
  if (lacking !== null) {
    // The primary saw this node eligible a moment ago; it no longer is: the switchover times out.
    event(out, "warn", "transfer-refused", `not standing for ${m.from}'s handover: ${lacking}`)
    return next
  }
  const standing: TransferStanding = {
    from: m.from,
    term: m.term,
    reason: m.reason ?? `switchover from ${m.from}`,
    triggeredAt: s.now - (m.sinceRequestMs ?? 0),
    freshFrom: nextProbe(next),
    deadline: s.now + s.config.timings.rpcTimeoutMs,
  }
  return probeLocal({ ...next, transferStanding: standing }, out)
}

/** A probe answered: stand once the one asked for is in. */
export const onTransferProbe = (s: AgentState, out: Outputs): AgentState => {
  const t = s.transferStanding ?? null
  if (t === null || !answeredSince(s, t.freshFrom)) return s
  return stand(s, out, t)
}

/** No fresh probe within rpc_timeout: stand on what this node has. */
export const transferStandingTimer = (s: AgentState, out: Outputs): AgentState => {
  const t = s.transferStanding ?? null
  if (t === null || s.now < t.deadline) return s
  return stand(s, out, t)
}

const stand = (s: AgentState, out: Outputs, t: TransferStanding): AgentState => {
  const next: AgentState = { ...s, transferStanding: null }
  // The transfer is void if the term moved on, another leader spoke, or this node stands
  // already. The consenting leader's resignation right after it (an operator's forced
  // failover to this node: TransferLeadership, then Resign) voids nothing.
  const resigned = leaderOf(next) === null && next.resignedTerm === t.term
  if (
    next.hard.term !== t.term ||
    (leaderOf(next) !== t.from && !resigned) ||
    next.role._tag !== "Follower"
  )
    return next
  return startVote(next, out, "transfer", { triggeredAt: t.triggeredAt, reason: t.reason })
}
