/**
 * Role changes (issue 11 item 6; etcd-io/raft's becomeFollower, becomeCandidate
 * and becomeLeader, each calling reset). Every change of `role` goes through
 * one of these, and each clears what the role it enters does not carry:
 *
 * - follower: no election, no promotion, no switchover, no lease;
 * - pre-candidate and candidate: an election of their own, no believed leader
 *   once the vote starts;
 * - leader: its own leader, no election (the promotion is begun by
 *   promotion.ts `beginPromotion`).
 *
 * The callers add what their own transition means (a resignation's term, a
 * new leader's announcement); nothing else writes `role`.
 */
import { noLease } from "./lease.ts"
import type { AgentState, Election } from "./types.ts"

/** Back to follower; `leader` is whom it follows now (null: nobody, or still unknown). */
export const becomeFollower = (
  s: AgentState,
  leader: { readonly leader: string | null; readonly leaderActive: boolean },
): AgentState => ({
  ...s,
  role: "follower",
  leader: leader.leader,
  leaderActive: leader.leaderActive,
  election: null,
  promotion: null,
  switchover: null,
  lease: noLease,
})

/** Asks whether peers would elect it (section 6); its term does not change yet. */
export const becomePreCandidate = (s: AgentState, election: Election): AgentState => ({
  ...s,
  role: "pre-candidate",
  election,
  electionDueAt: null,
})

/** Stands for `election.term`, with its own vote (persisted by the caller before any request leaves). */
export const becomeCandidate = (s: AgentState, election: Election): AgentState => ({
  ...s,
  role: "candidate",
  leader: null,
  leaderActive: false,
  hard: { ...s.hard, term: election.term, votedFor: s.self },
  election,
  electionDueAt: null,
})

/** Won its term: leads it; beginPromotion makes it the primary. */
export const becomeLeader = (s: AgentState): AgentState => ({
  ...s,
  role: "leader",
  leader: s.self,
  election: null,
})
