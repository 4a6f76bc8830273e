/**
 * Replication lag from a heartbeat table (`lag.source: heartbeat_table`,
 * pt-heartbeat style; operations.md). Seconds_Behind_Source lies when the IO
 * thread receives nothing (a full relay-log disk: it reads 0, however far
 * behind; test/lab/relay-log.test.ts): a row the primary's agent updates
 * every second, read on a replica against its own mysqld's clock, keeps
 * counting.
 *
 * Writing: the decision of WHEN is here (the adapter only runs the SQL).
 * Only while this node may be writable (fencing.ts mayBeWritable: ACTIVE)
 * and its mysqld was last probed writable (never on a fenced or read-only
 * server; the agent never lifts super_read_only for it), at most once a
 * second, and not while commits already wait for a semi-sync
 * acknowledgement (the row would be one more waiting commit).
 *
 * Reading: the reported lag (status, `/replica?max_lag`, metrics, the lag
 * hooks) is the age of the row the current primary wrote in the current
 * primary's term. Until one is seen (just enabled, a new primary whose row
 * has not arrived yet) it falls back to Seconds_Behind_Source and says so.
 * The health ladder, and through it who counts as a rival in an election,
 * keeps its own GTID-based lag (local-node.ts): votes never depend on the
 * clocks of two servers agreeing.
 */
import { isDataNode } from "./config.ts"
import { mayBeWritable } from "./fencing.ts"
import type { Outputs } from "./outputs.ts"
import { activeLeaderOf } from "./roles.ts"
import type { AgentState, LagHeartbeatRow, MysqlProbe } from "./types.ts"

/** One row a second: the resolution of the lag it gives. */
export const LAG_HEARTBEAT_INTERVAL_MS = 1_000

/** Emits WriteLagHeartbeat when this primary's next heartbeat row is due. */
export const lagHeartbeatDue = (s: AgentState, out: Outputs): AgentState => {
  if (s.config.lagHeartbeat !== true || !isDataNode(s.config, s.self)) return s
  const last = s.lagHeartbeatAt ?? null
  const p = s.local.up ? s.local.probe : null
  const writable = p !== null && !p.readOnly && !p.superReadOnly
  if (!mayBeWritable(s) || !writable || p.semiSyncWaiters > 0) {
    // The next primary term starts with a row at once.
    return last === null ? s : { ...s, lagHeartbeatAt: null }
  }
  if (last !== null && s.now - last < LAG_HEARTBEAT_INTERVAL_MS) return s
  out.push({ _tag: "WriteLagHeartbeat", term: s.hard.term })
  return { ...s, lagHeartbeatAt: s.now }
}

/** Where a reported lag comes from. */
export type LagSourceUsed =
  | { readonly _tag: "SecondsBehindSource" }
  | { readonly _tag: "HeartbeatTable"; readonly primary: string }
  /** The heartbeat table is configured but holds no row of the current primary's term yet. */
  | { readonly _tag: "NoHeartbeat"; readonly primary: string | null }

export interface ReportedLag {
  /** Seconds, null when unknown or not a replica. */
  readonly seconds: number | null
  readonly source: LagSourceUsed
}

/** The primary whose row counts: the active leader, else the record's primary. */
const currentPrimary = (s: AgentState): { name: string; term: number } | null => {
  const leader = activeLeaderOf(s)
  if (leader !== null && leader !== s.self) return { name: leader, term: s.hard.term }
  const r = s.hard.record
  return r.primary === null || r.primary === s.self ? null : { name: r.primary, term: r.term }
}

/**
 * The row of `primary` written in `term` or later; an older one (the same
 * member primary in an earlier term) is stale by however long it was not.
 */
export const heartbeatOf = (
  rows: ReadonlyArray<LagHeartbeatRow> | undefined,
  primary: string,
  term: number,
): LagHeartbeatRow | undefined =>
  rows?.find((r) => r.member === primary && r.term >= term && Number.isFinite(r.ageSeconds))

/** A negative age is the two servers' clocks disagreeing: the row is fresh, the lag 0. */
const roundAge = (seconds: number): number => Math.max(0, Math.round(seconds * 1000) / 1000)

/** The lag this node reports for its replica (null when it is not one). */
export const reportedLag = (s: AgentState, probe: MysqlProbe | null): ReportedLag => {
  const sbs = probe?.replica?.lagSeconds ?? null
  if (s.config.lagHeartbeat !== true || probe?.replica == null)
    return { seconds: sbs, source: { _tag: "SecondsBehindSource" } }
  const primary = currentPrimary(s)
  const row =
    primary === null ? undefined : heartbeatOf(probe.heartbeats, primary.name, primary.term)
  if (primary === null || row === undefined)
    return { seconds: sbs, source: { _tag: "NoHeartbeat", primary: primary?.name ?? null } }
  return {
    seconds: roundAge(row.ageSeconds),
    source: { _tag: "HeartbeatTable", primary: primary.name },
  }
}

/** The local node's reported lag (status, HTTP, metrics, hooks). */
export const localReportedLag = (s: AgentState): ReportedLag =>
  reportedLag(s, s.local.up ? s.local.probe : null)

/** For status and logs: `heartbeat_table`, `seconds_behind_source`, or the fallback and why. */
export const describeLagSource = (source: LagSourceUsed): string => {
  switch (source._tag) {
    case "SecondsBehindSource":
      return "seconds_behind_source"
    case "HeartbeatTable":
      return "heartbeat_table"
    case "NoHeartbeat":
      return `seconds_behind_source (no heartbeat row of ${source.primary ?? "the primary"} in its term yet)`
  }
}
