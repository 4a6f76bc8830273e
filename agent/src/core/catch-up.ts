/**
 * Catching up from a peer while standing (sections 7 and 9).
 *
 * A voter refuses a candidate that lacks transactions it holds. When the
 * node holding them will not stand itself (its pre_failover hook refused its
 * promotion, it is not promotable, excluded, or inside the anti-flap block),
 * no candidate could win: healthy replicas, and no primary. So a node that
 * stands for a failover also fetches what it lacks: it replicates from the
 * holder (auto-position; the holder's binlog has what it applied) until
 * nothing is missing, and its pre-votes succeed from then on. It does not
 * wait for that to stand: where the holder's vote is not needed, or the
 * holder cannot be reached, the election goes on as before. Nothing
 * acknowledged is lost and nothing foreign comes in:
 * - only from a holder that is fenced (read-only, so it adds nothing), and
 *   not the failed primary;
 * - only transactions of the primary lineage that the holder received from
 *   others: its own (an old primary's commits that no one acknowledged, or
 *   errant ones) stay out;
 * - only from a holder that holds everything this node holds: one history,
 *   the holder ahead on it. A node with commits the holder lacks (the last
 *   ACTIVE primary's cut-off commits, which errantOf counts as lineage while
 *   its successor never became ACTIVE) would otherwise end with two histories
 *   merged, in an order no other node applied them in;
 * - only once this node's own relay log is applied, so that the repoint
 *   (which may discard the relay log) costs it nothing it held.
 */
import { knownPrimary } from "./cluster-view.ts"
import { isDataNode } from "./config.ts"
import { currentLineage, electionTrigger } from "./election.ts"
import {
  formatGtidSet,
  type GtidSet,
  isEmpty,
  isSubset,
  restrictToUuids,
  subtract,
  uuidsOf,
} from "./gtid.ts"
import { event, isInFlight, issueMysql, type Outputs } from "./outputs.ts"
import { atLeastAsComplete } from "./ranking.ts"
import { fencedQuietly } from "./replication.ts"
import type { AgentState } from "./types.ts"

/** A live peer holding lineage transactions this node lacks, and what they are. */
export interface CatchUp {
  readonly holder: string
  readonly missing: GtidSet
}

/**
 * The peer to catch up from while standing, or null when this node lacks
 * nothing a live peer holds (or no holder is safe to replicate from).
 * `lost`: the primary that failed (its own unreplicated commits were never
 * acknowledged; a returning old primary follows section 10).
 */
export const catchUpFrom = (
  s: AgentState,
  lost: string | null,
  lineage: ReadonlySet<string>,
): CatchUp | null => {
  if (!isDataNode(s.config, s.self) || lineage.size === 0) return null
  const mine = s.local.received
  let best: CatchUp | null = null
  let bestReceived: GtidSet | null = null
  for (const m of s.config.members) {
    if (m.kind !== "data" || m.name === s.self || m.name === lost) continue
    const v = s.peers.get(m.name)
    if (v === undefined || s.now - v.lastHeardAt >= s.config.timings.leaseDurationMs) continue
    if (!v.mysqlUp || v.writable || v.errant || v.role === "DIVERGED" || v.serverUuid === null)
      continue
    const extra = subtract(v.received, mine)
    if (isEmpty(restrictToUuids(extra, lineage)) || !isSubset(mine, v.received)) continue
    // Auto-position sends everything the holder has that this node lacks: all of it must be
    // lineage, and none the holder's own.
    const uuids = [...uuidsOf(extra)]
    if (uuids.includes(v.serverUuid) || !uuids.every((u) => lineage.has(u))) continue
    // The most complete holder; between equals, the first member.
    if (bestReceived !== null && atLeastAsComplete(bestReceived, v.received, lineage)) continue
    best = { holder: m.name, missing: extra }
    bestReceived = v.received
  }
  return best
}

/**
 * While this node would stand for a failover (electionTrigger: the primary
 * lost, no lease promised, no better rival), it replicates from a holder of
 * what it lacks. Not while it promised its vote (and so its data) to a
 * candidate: what it fetched then, that candidate might lack.
 */
export const guardCatchUp = (s: AgentState, out: Outputs): AgentState => {
  // At rest (a follower of an active primary, or the primary) this costs nothing.
  if (s.role._tag !== "Follower" || s.role.leaderActive || s.pendingVote !== null) return s
  const trigger = electionTrigger(s)
  if (!trigger.ok || trigger.kind !== "election") return s
  const c = catchUpFrom(s, knownPrimary(s), currentLineage(s))
  return c === null ? s : catchUp(s, out, c)
}

/**
 * Replicates from the holder until nothing is missing: repoints once the own
 * relay log is applied, restarts a stopped channel, and otherwise waits (an
 * error on the channel is shown by eligibility, and keeps the node from standing).
 */
const catchUp = (s: AgentState, out: Outputs, c: CatchUp): AgentState => {
  const probe = s.local.up ? s.local.probe : null
  if (probe === null || !fencedQuietly(s, probe) || isInFlight(s, "Replication")) return s
  const replica = probe.replica
  if (replica?.source === c.holder) {
    if (replica.ioRunning || replica.ioConnecting === true || replica.lastError !== null) return s
    return issueMysql(s, out, { _tag: "StartReplica" }, { _tag: "Replication" })[0]
  }
  if (replica !== null && !isSubset(replica.retrieved, probe.executed)) return s
  event(
    out,
    "info",
    "catch-up",
    `replicating from ${c.holder} to fetch ${formatGtidSet(c.missing)}, which it holds and this node lacks (voters refuse a candidate without them)`,
  )
  const [next] = issueMysql(
    s,
    out,
    { _tag: "ReplicateFrom", source: c.holder },
    { _tag: "Replication" },
  )
  return { ...next, catchingUpFrom: c.holder }
}
