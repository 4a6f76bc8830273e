/**
 * The primary's lease and the followers' promises (section 5).
 *
 * The leader's lease runs from the *send* time of the last heartbeat round a
 * quorum acknowledged, for `lease * (1 - drift margin)` of its own monotonic
 * clock. A follower that acknowledges at its local time `a` promises not to
 * vote for anyone else until `a + lease`: the follower's promise always
 * outlives the leader's belief, as long as clocks drift less than the margin.
 */
import { type ClusterConfig, quorum } from "./config.ts"
import type { AgentState, LeaderLease, LeasePromise, LeaseRound } from "./types.ts"

export const noLease: LeaderLease = { rounds: new Map(), validUntil: 0, fencedAt: null }

export const leaseLength = (config: ClusterConfig): number =>
  config.timings.leaseDurationMs * (1 - config.timings.driftMargin)

export const leaseValid = (s: AgentState, now: number = s.now): boolean =>
  s.role._tag === "Leader" && now < s.role.lease.validUntil

/** Remaining lease of this leader in ms, 0 when none. */
export const leaseRemaining = (s: AgentState): number =>
  s.role._tag === "Leader" ? Math.max(0, s.role.lease.validUntil - s.now) : 0

/** Records that heartbeat round `round` was sent at `now`. Keeps a few recent rounds only. */
export const roundSent = (lease: LeaderLease, round: number, now: number): LeaderLease => {
  const rounds = new Map(lease.rounds)
  rounds.set(round, { sentAt: now, acks: new Set() })
  for (const r of rounds.keys()) if (r < round - 16) rounds.delete(r)
  return { ...lease, rounds }
}

/** Counts an acknowledgement; extends the lease when the round reaches a quorum (self included). */
export const roundAcked = (
  lease: LeaderLease,
  config: ClusterConfig,
  round: number,
  from: string,
): LeaderLease => {
  const r = lease.rounds.get(round)
  if (r === undefined || r.acks.has(from)) return lease
  const acks = new Set(r.acks)
  acks.add(from)
  // Only members count (a removed member may still answer until it learns it was removed).
  const counted = config.members.filter((m) => acks.has(m.name)).length
  if (counted + 1 < quorum(config)) {
    const rounds = new Map(lease.rounds)
    rounds.set(round, { sentAt: r.sentAt, acks })
    return { ...lease, rounds }
  }
  // This round and every older one were sent no later: none of them can extend
  // the lease further, so they are forgotten (their late acknowledgements are
  // then ignored), and the leader keeps a round or two at rest, not seventeen.
  const rounds = new Map<number, LeaseRound>()
  for (const [n, kept] of lease.rounds) if (n > round) rounds.set(n, kept)
  return {
    ...lease,
    rounds,
    validUntil: Math.max(lease.validUntil, r.sentAt + leaseLength(config)),
  }
}

export const promiseTo = (
  config: ClusterConfig,
  leader: string,
  term: number,
  now: number,
): LeasePromise => ({ leader, term, until: now + config.timings.leaseDurationMs })

/** The follower still promised its vote away to a live leader. */
export const inLease = (s: AgentState): boolean =>
  s.promise !== null &&
  s.now < s.promise.until &&
  !(s.resignedTerm >= s.promise.term && s.resignedTerm > 0)
