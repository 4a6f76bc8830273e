/**
 * Adopting a running replication set (protocol.md section 16, issue 14): a
 * source that takes writes and replicas that replicate from it, before any
 * agent ran. The source has no lease and no term, but no node has either:
 * in a cluster where no primary was ever committed, nobody can be writable
 * by the agents' doing. Fencing the source at its agent's start (the
 * split-brain guard's rule for a writable node without the lease) would stop
 * every write until a quorum of agents runs and elects it again; so its
 * writable mysqld is left alone while this node may still become the first
 * primary and no other node is writable or leads. Once it wins term 1 (the
 * natural first primary: every replica replicates from it) the ordinary
 * rules hold.
 *
 * Who else could become writable meanwhile? Only the winner of an election.
 * Before a primary is recorded that is a bootstrap, whose winner is the
 * configured initial_primary (then this rule does not apply to any other
 * node) or the one node the others replicate from (which is this one while
 * it replicates from nobody); a writable voter refuses every vote (section 7).
 * With failover_before_healthy the config allows ordinary elections before a
 * primary was recorded, so the guard fences as before.
 */
import type { VoteKind } from "../../../shared/peer-messages.ts"
import { aliveWindow } from "./cluster-view.ts"
import { isDataNode } from "./config.ts"
import { type GtidSet, restrictToUuids } from "./gtid.ts"
import { leaderOf, promotionOf } from "./roles.ts"
import type { AgentState, MysqlProbe } from "./types.ts"

/** Why this node's writable mysqld must be fenced although nobody holds a lease, or null (adopt it). */
export const adoptionEnds = (s: AgentState): string | null => {
  const c = s.config
  if (!isDataNode(c, s.self)) return "not a data node"
  if (c.failoverBeforeHealthy) return "failover_before_healthy allows other elections"
  if (c.initialPrimary !== null && c.initialPrimary !== s.self)
    return `initial_primary is ${c.initialPrimary}`
  const r = s.hard.record
  // Its own first promotion: the record names it from commit-record on, before it is done.
  const p = promotionOf(s)
  const ownFirstPromotion =
    s.role._tag === "Leader" &&
    p !== null &&
    p.term === s.hard.term &&
    p.kind === "bootstrap" &&
    r.primary === s.self &&
    r.lastActive === null
  if (r.term > 0 && !ownFirstPromotion) return `a primary was recorded in term ${r.term}`
  if (leaderOf(s) !== null && leaderOf(s) !== s.self)
    return `${leaderOf(s)} leads term ${s.hard.term}`
  for (const [name, v] of s.peers) {
    // Any report, however old: a writable peer is a split brain of the operator's making.
    if (v.writable) return `${name} is writable too`
    if (v.leader !== null && v.leader !== s.self && s.now - v.lastHeardAt < aliveWindow(c))
      return `${name} follows ${v.leader}`
  }
  return null
}

/**
 * The member a replica's source is, when Source_Host names it otherwise than
 * the config does (a host name, another address form): the member whose
 * server_uuid is the replica's Source_UUID. Unchanged when the source is a
 * member already or unknown.
 */
export const recogniseSource = (s: AgentState, probe: MysqlProbe): MysqlProbe => {
  const replica = probe.replica
  const uuid = replica?.sourceUuid
  if (replica === null || uuid === undefined || uuid === "") return probe
  if (s.config.members.some((m) => m.name === replica.source)) return probe
  for (const [name, v] of s.peers) {
    if (v.serverUuid === uuid && isDataNode(s.config, name))
      return { ...probe, replica: { ...replica, source: name } }
  }
  return probe
}

/**
 * What a voter compares with a bootstrap candidate's data (section 7): its
 * own received set without the candidate's own transactions. A source being
 * adopted goes on committing while it stands, so its report (its last probe)
 * lags behind what its replicas already received from it; those transactions
 * are in its binary log all the same (it executed them). Other kinds compare
 * whole sets.
 */
export const comparedWithCandidate = (
  voterReceived: GtidSet,
  kind: VoteKind,
  candidateUuid: string,
): GtidSet =>
  kind !== "bootstrap" || candidateUuid === "" || !voterReceived.sids.has(candidateUuid)
    ? voterReceived
    : restrictToUuids(
        voterReceived,
        new Set([...voterReceived.sids.keys()].filter((u) => u !== candidateUuid)),
      )
