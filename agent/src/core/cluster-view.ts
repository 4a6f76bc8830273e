/**
 * The cluster as this agent sees it through heartbeats (section 3), with
 * indirect evidence: a peer we cannot hear but that others heard recently is
 * *suspected*, not failed (as in SWIM).
 */
import type { HeartbeatMessage } from "../../../shared/peer-messages.ts"
import { type ClusterConfig, quorum } from "./config.ts"
import { emptyGtidSet, type GtidSet, parseGtidSet, union } from "./gtid.ts"
import { leaderOf } from "./roles.ts"
import type { AgentState, PeerView } from "./types.ts"

export type PeerLiveness = "alive" | "suspected" | "failed"

/** A peer is alive while its heartbeats arrive within two intervals plus an RPC timeout. */
export const aliveWindow = (config: ClusterConfig): number =>
  config.timings.heartbeatIntervalMs * 2 + config.timings.rpcTimeoutMs

const parseOr = (text: string, previousText: string, previous: GtidSet): GtidSet => {
  if (text === previousText) return previous
  const parsed = parseGtidSet(text)
  // A malformed set from a peer is treated as unknown data: empty.
  return parsed._tag === "Ok" ? parsed.set : emptyGtidSet
}

/** Merges a heartbeat into the view of its sender. */
export const mergeHeartbeat = (
  s: AgentState,
  hb: HeartbeatMessage,
  now: number,
): ReadonlyMap<string, PeerView> => {
  const before = s.peers.get(hb.from)
  const o = hb.observation
  const executed = o
    ? parseOr(o.executed, before?.executedText ?? "", before?.executed ?? emptyGtidSet)
    : (before?.executed ?? emptyGtidSet)
  const unchanged =
    before !== undefined &&
    o !== null &&
    o.executed === before.executedText &&
    o.retrieved === before.retrievedText
  const received = o
    ? unchanged
      ? before.received
      : union(executed, parseOr(o.retrieved, "", emptyGtidSet))
    : (before?.received ?? emptyGtidSet)
  const heardOthersAt = new Map<string, number>()
  for (const h of hb.heardFrom) heardOthersAt.set(h.name, now - h.agoMs)
  const view: PeerView = {
    lastHeardAt: now,
    term: hb.term,
    leader: hb.leader,
    active: hb.active,
    role: o?.role ?? null,
    mysqlUp: o?.mysqlUp ?? false,
    serverUuid: o?.serverUuid ?? null,
    writable: o?.writable ?? false,
    executed,
    received,
    source: o?.source ?? null,
    replicating: (o?.ioRunning ?? false) && (o?.sqlRunning ?? false),
    replicationError: o?.replicationError ?? null,
    backlog: o?.backlog ?? 0,
    lagSeconds: o?.lagSeconds ?? null,
    errant: o !== null && o.errant !== "",
    eligible: o?.eligible ?? false,
    healthy: o?.mysqlUp === true && (o.health === "OK" || o.health === "INFO"),
    probedPrimary: hb.probedPrimary,
    primaryReachable: hb.primaryReachable,
    primaryFenced: hb.primaryFenced,
    heardOthersAt,
    // Only after it stopped leading: a leader's agent may restart and reopen its mysqld.
    quietSince: hb.leader !== hb.from && o?.quiet === true ? (before?.quietSince ?? now) : null,
    executedText: o?.executed ?? before?.executedText ?? "",
    retrievedText: o?.retrieved ?? before?.retrievedText ?? "",
    writesBlocked: o?.writesBlocked ?? null,
    semiSyncFallback: o?.semiSyncFallback ?? null,
    standsOnOwnProbe: hb.standsOnOwnProbe === true,
    // The version of the record the peer holds (a 1.4 sender that sends its record
    // states that record's version too). Only a stated version counts: an agent
    // older than 1.4 sends its record but no version, and those of 1.0 and 1.1
    // cannot decode a heartbeat without the record: they keep getting it (heartbeat.ts).
    recordVersion: hb.recordVersion ?? null,
  }
  const peers = new Map(s.peers)
  peers.set(hb.from, view)
  return peers
}

export const livenessOf = (s: AgentState, name: string): PeerLiveness => {
  const window = aliveWindow(s.config)
  const direct = s.peers.get(name)
  if (direct !== undefined && s.now - direct.lastHeardAt < window) return "alive"
  for (const [other, view] of s.peers) {
    if (other === name || s.now - view.lastHeardAt >= window) continue
    const at = view.heardOthersAt.get(name)
    if (at !== undefined && s.now - at < s.config.timings.leaseDurationMs) return "suspected"
  }
  return "failed"
}

/** The member whose mysqld is (or was last) the primary. */
export const knownPrimary = (s: AgentState): string | null => leaderOf(s) ?? s.hard.record.primary

/**
 * Section 6 rule 2, second half: the primary's mysqld is unreachable from
 * this host and from a quorum (by their heartbeats), or it is reachable but
 * verified fenced. Returns why not when it does not hold.
 */
export const primaryLostByQuorum = (
  s: AgentState,
  primary: string,
): { readonly lost: true } | { readonly lost: false; readonly why: string } => {
  const mine = s.primaryProbe
  const fresh = 2 * s.config.timings.probeIntervalMs + s.config.timings.rpcTimeoutMs
  if (mine === null || mine.target !== primary || s.now - mine.at > fresh) {
    return { lost: false, why: `no fresh probe of ${primary}'s mysqld from here` }
  }
  if (mine.reachable && !mine.fenced) {
    return { lost: false, why: `${primary}'s mysqld answers and is writable from here` }
  }
  let votes = 1
  const window = aliveWindow(s.config)
  for (const [name, v] of s.peers) {
    if (s.now - v.lastHeardAt >= window) continue
    if (name === primary) {
      // The primary's own agent restarted and reports its mysqld down or read-only.
      if (v.leader !== name && (!v.mysqlUp || !v.writable)) votes++
      continue
    }
    if (v.probedPrimary !== primary) continue
    if (v.primaryReachable === false || v.primaryFenced === true) votes++
  }
  if (votes >= quorum(s.config)) return { lost: true }
  return {
    lost: false,
    why: `only ${votes} of ${quorum(s.config)} members needed confirm ${primary}'s mysqld is unreachable or fenced`,
  }
}
