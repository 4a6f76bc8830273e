/**
 * Role changes (issue 11 item 6; etcd-io/raft's becomeFollower, becomeCandidate
 * and becomeLeader, each calling reset). The role is a tagged union
 * (RoleState in types.ts) and these are the only constructors of its
 * variants: what the role entered does not carry is left behind by its type.
 *
 * - follower: a believed leader; no election, promotion, switchover or lease;
 * - pre-candidate: its election, still following its leader (its term is unchanged);
 * - candidate: its election, following nobody;
 * - leader: its own leader, a lease and its promotion (begun by promotion.ts
 *   `beginPromotion`), a switchover when one runs.
 *
 * The callers add what their own transition means (a resignation's term, a
 * new leader's announcement); nothing else writes `role`. The accessors below
 * serve readers that do not decide per role.
 */
import { noLease } from "./lease.ts"
import type {
  AgentState,
  Election,
  Leader,
  LeaderLease,
  Promotion,
  RoleName,
  Switchover,
} from "./types.ts"

/** Back to follower; `leader` is whom it follows now (null: nobody, or still unknown). */
export const becomeFollower = (
  s: AgentState,
  leader: { readonly leader: string | null; readonly leaderActive: boolean },
): AgentState => ({
  ...s,
  role: { _tag: "Follower", leader: leader.leader, leaderActive: leader.leaderActive },
})

/** Asks whether peers would elect it (section 6); its term does not change yet. */
export const becomePreCandidate = (s: AgentState, election: Election): AgentState => ({
  ...s,
  role: {
    _tag: "PreCandidate",
    leader: leaderOf(s),
    leaderActive: leaderActiveOf(s),
    election,
  },
  electionDueAt: null,
})

/** Stands for `election.term`, with its own vote (persisted by the caller before any request leaves). */
export const becomeCandidate = (s: AgentState, election: Election): AgentState => ({
  ...s,
  role: { _tag: "Candidate", election },
  hard: { ...s.hard, term: election.term, votedFor: s.self },
  electionDueAt: null,
})

/** Won its term: leads it; beginPromotion makes it the primary. */
export const becomeLeader = (s: AgentState): AgentState => ({
  ...s,
  role: {
    _tag: "Leader",
    leaderActive: leaderActiveOf(s),
    lease: noLease,
    promotion: null,
    switchover: null,
  },
})

/** Whom it follows now, as becomeFollower takes it: staying with the leader it believes in. */
export const following = (
  s: AgentState,
): { readonly leader: string | null; readonly leaderActive: boolean } => ({
  leader: leaderOf(s),
  leaderActive: leaderActiveOf(s),
})

/** The role's name as status, logs and operators see it. */
export const roleName = (s: AgentState): RoleName => {
  const r = s.role
  switch (r._tag) {
    case "Follower":
      return "follower"
    case "PreCandidate":
      return "pre-candidate"
    case "Candidate":
      return "candidate"
    case "Leader":
      return "leader"
    default:
      return absurd(r)
  }
}

/** The leader of `hard.term` this agent believes in: itself as leader, nobody as candidate. */
/** The leader whose promotion is done: the only node that takes operator record changes. */
export const isActivePrimary = (s: AgentState): boolean =>
  s.role._tag === "Leader" && s.role.promotion?.step === "done"

/** Why this node cannot take an operator's record change now, or null when it is the ACTIVE primary. */
export const notActivePrimaryWhy = (s: AgentState): string | null =>
  isActivePrimary(s)
    ? null
    : s.role._tag === "Leader"
      ? `${s.self} is still being promoted for term ${s.hard.term}; retry`
      : `not the primary; ask ${leaderOf(s) ?? "the primary (none known)"}`

export const leaderOf = (s: AgentState): string | null => {
  const r = s.role
  switch (r._tag) {
    case "Follower":
    case "PreCandidate":
      return r.leader
    case "Candidate":
      return null
    case "Leader":
      return s.self
    default:
      return absurd(r)
  }
}

/** The believed leader announced that its promotion finished (as leader: its own did). */
export const leaderActiveOf = (s: AgentState): boolean => {
  const r = s.role
  switch (r._tag) {
    case "Follower":
    case "PreCandidate":
    case "Leader":
      return r.leaderActive
    case "Candidate":
      return false
    default:
      return absurd(r)
  }
}

/** The believed leader once it announced that its promotion finished (as leader: itself, once ACTIVE). */
export const activeLeaderOf = (s: AgentState): string | null =>
  leaderActiveOf(s) ? leaderOf(s) : null

/** The election a (pre-)candidate runs; null in the other roles. */
export const electionOf = (s: AgentState): Election | null =>
  s.role._tag === "PreCandidate" || s.role._tag === "Candidate" ? s.role.election : null

/** The leader's promotion; null in the other roles. */
export const promotionOf = (s: AgentState): Promotion | null =>
  s.role._tag === "Leader" ? s.role.promotion : null

/** The leader's running switchover; null in the other roles. */
export const switchoverOf = (s: AgentState): Switchover | null =>
  s.role._tag === "Leader" ? s.role.switchover : null

/** The leader's lease; none in the other roles. */
export const leaseOf = (s: AgentState): LeaderLease =>
  s.role._tag === "Leader" ? s.role.lease : noLease

/** Changes what the leader carries; any other role is returned as it is (it carries none of it). */
export const asLeader = (
  s: AgentState,
  change: (r: Leader) => Partial<Omit<Leader, "_tag">>,
): AgentState => (s.role._tag === "Leader" ? { ...s, role: { ...s.role, ...change(s.role) } } : s)

/** The leader's switchover replaced (null: ended); other roles run none and stay as they are. */
export const withSwitchover = (s: AgentState, switchover: Switchover | null): AgentState =>
  asLeader(s, () => ({ switchover }))

/** The election of a (pre-)candidate replaced; other roles have none and stay as they are. */
export const withElection = (s: AgentState, election: Election): AgentState =>
  s.role._tag === "PreCandidate" || s.role._tag === "Candidate"
    ? { ...s, role: { ...s.role, election } }
    : s

/**
 * The believed leader changed in the current term: a follower or a pre-candidate
 * takes it; a candidate follows nobody and a leader itself, so neither changes.
 */
export const withLeader = (
  s: AgentState,
  leader: string | null,
  leaderActive: boolean,
): AgentState =>
  s.role._tag === "Follower" || s.role._tag === "PreCandidate"
    ? { ...s, role: { ...s.role, leader, leaderActive } }
    : s

function absurd(value: never): never {
  throw new Error(`unexpected role ${JSON.stringify(value)}`)
}
