/**
 * How this node describes itself: the role state of section 2, and the
 * observation summary its heartbeats carry (section 3).
 */
import type { NodeRole, Observation } from "../../../shared/peer-messages.ts"
import { isDataNode } from "./config.ts"
import { backlogOf, selfEligible } from "./election.ts"
import { mayBeWritable } from "./fencing.ts"
import { formatGtidSet } from "./gtid.ts"
import { reportedLag } from "./lag-heartbeat.ts"
import { probesOwnMysqld } from "./members.ts"
import { leaderActiveOf, leaderOf } from "./roles.ts"
import { describeSemiSyncFallback, reportedSemiSyncFallback } from "./semi-sync-fallback.ts"
import type { AgentState } from "./types.ts"
import { describeWritesBlocked, reportedWritesBlocked } from "./writes-blocked.ts"

/**
 * The primary's "writes are blocked" report as this node knows it: its own
 * when it is the primary, else what the leader's last heartbeat said.
 */
export const clusterWritesBlocked = (s: AgentState): string | null => {
  const own = reportedWritesBlocked(s)
  if (own !== null) return describeWritesBlocked(own)
  const leader = leaderOf(s)
  if (leader === null || leader === s.self) return null
  const v = s.peers.get(leader)
  return v?.writesBlocked ?? null
}

/** The primary's "semi-sync fell back" report as this node knows it (as clusterWritesBlocked). */
export const clusterSemiSyncFallback = (s: AgentState): string | null => {
  const own = reportedSemiSyncFallback(s)
  if (own !== null) return describeSemiSyncFallback(own)
  const leader = leaderOf(s)
  if (leader === null || leader === s.self) return null
  return s.peers.get(leader)?.semiSyncFallback ?? null
}

export const nodeRole = (s: AgentState): NodeRole => {
  if (!isDataNode(s.config, s.self)) return "UNKNOWN"
  if (s.local.lastProbeAt === null) return "UNKNOWN"
  if (s.local.diverged) return "DIVERGED"
  const p = s.local.probe
  if (!s.local.up || p === null || s.local.health.level === "FAIL") return "FAIL"
  if (mayBeWritable(s) && !p.superReadOnly) return "ACTIVE"
  if (
    p.replica !== null &&
    leaderActiveOf(s) &&
    p.replica.source === leaderOf(s) &&
    p.replica.ioRunning &&
    p.replica.sqlRunning
  ) {
    return "STANDBY"
  }
  if (p.superReadOnly) return "FENCED"
  return "UNKNOWN"
}

export const observation = (s: AgentState): Observation | null => {
  if (!probesOwnMysqld(s) || s.local.lastProbeAt === null) return null
  const p = s.local.up ? s.local.probe : null
  const blocked = reportedWritesBlocked(s)
  const fallback = reportedSemiSyncFallback(s)
  return {
    role: nodeRole(s),
    health: s.local.health.level,
    mysqlUp: p !== null,
    serverUuid: s.local.probe?.serverUuid ?? null,
    writable: p !== null && !p.superReadOnly && !p.readOnly,
    superReadOnly: p?.superReadOnly ?? true,
    executed: s.local.executedText,
    retrieved: s.local.retrievedText,
    source: p?.replica?.source ?? null,
    ioRunning: p?.replica?.ioRunning ?? false,
    sqlRunning: p?.replica?.sqlRunning ?? false,
    replicationError: p?.replica?.lastError ?? null,
    backlog: backlogOf(s),
    lagSeconds: reportedLag(s, p).seconds,
    errant: formatGtidSet(s.local.errant),
    eligible: selfEligible(s).ok,
    // Down only counts when refused: a hung server, or one that refuses the agent's
    // user (too many connections), may still hold commits that wait.
    quiet:
      p === null
        ? s.local.refused === true
        : p.readOnly && p.superReadOnly && p.semiSyncWaiters === 0,
    ...(blocked === null ? {} : { writesBlocked: describeWritesBlocked(blocked) }),
    ...(fallback === null ? {} : { semiSyncFallback: describeSemiSyncFallback(fallback) }),
  }
}
