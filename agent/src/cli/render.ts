// The human form of each reply: status line and member table, the topology
// tree, the errant listing, the history table and dry-run steps.
import type { ControlReply, HistoryEntry, StatusView } from "../../../shared/control.ts"
import { duration, gtidSubtract, lag, lastHeard, shortGtidSet, table, time } from "./format.ts"

type Member = StatusView["members"][number]

const HEALTHY = new Set(["OK", "INFO"])
const UNHEALTHY_ROLES = new Set(["FAIL", "DIVERGED", "UNKNOWN"])

/** The primary as this agent knows it: the leader, else a member that says it is ACTIVE. */
export const primaryOf = (s: StatusView): string | null =>
  s.leader ?? s.members.find((m) => m.role === "ACTIVE")?.name ?? null

/** `OK`, `DEGRADED` (a member unhealthy or not in its place), `WRITES BLOCKED` or `NO PRIMARY`. */
export const clusterHealth = (s: StatusView): string => {
  if (s.leader === null || !s.leaderActive) return "NO PRIMARY"
  if (s.writesBlocked !== undefined) return "WRITES BLOCKED"
  // Writes go on, but without a replica's acknowledgement: a failover may lose them.
  if (s.semiSyncFallback !== undefined) return "DEGRADED"
  const data = s.members.filter((m) => m.kind !== "witness")
  const bad = data.some((m) => !HEALTHY.has(m.health) || UNHEALTHY_ROLES.has(m.role))
  return bad ? "DEGRADED" : "OK"
}

/** `mha-agent status`: one line for the cluster, one for this node, then the members. */
export const renderStatus = (s: StatusView): string => {
  const data = s.members.filter((m) => m.kind !== "witness")
  const healthy = data.filter((m) => HEALTHY.has(m.health)).length
  const primary =
    s.leader === null
      ? "primary none"
      : `primary ${s.leader}${s.leaderActive ? " (ACTIVE)" : " (not active)"}`
  const head = [
    `${s.cluster}: ${clusterHealth(s)}`,
    primary,
    `term ${s.term}`,
    `${healthy}/${data.length} nodes healthy`,
    s.paused ? "PAUSED" : "not paused",
    s.excluded.length > 0 ? `excluded ${s.excluded.join(", ")}` : "none excluded",
  ].join(", ")
  const rows = [
    ["NODE", "KIND", "ROLE", "HEALTH", "LAG", "SOURCE", "LAST HEARD", "ERRANT"],
    ...s.members.map((m) => [
      m.name,
      m.kind,
      m.role,
      m.health,
      lag(m.lagSeconds),
      m.source ?? "-",
      lastHeard(m.lastHeardMs, m.name === s.node),
      m.errant === "" ? "-" : "yes",
    ]),
  ]
  const missing = s.missingPrivileges ?? []
  const privileges =
    missing.length === 0
      ? []
      : [
          `this node's agent lacks MySQL privileges ${missing.join(", ")}: it will not stand for election until they are granted`,
        ]
  const replication =
    s.replicationError === undefined ? [] : [`this node's replication: ${s.replicationError}`]
  const lagSource = s.lagSource === undefined ? [] : [`this node's lag: from ${s.lagSource}`]
  const blocked =
    s.writesBlocked === undefined ? [] : [`primary ${s.leader ?? "?"}: ${s.writesBlocked}`]
  const fallback =
    s.semiSyncFallback === undefined ? [] : [`primary ${s.leader ?? "?"}: ${s.semiSyncFallback}`]
  return [
    head,
    ...blocked,
    ...fallback,
    `this node: ${s.node} (${s.role}); ${s.electionStatus}`,
    ...privileges,
    ...replication,
    ...lagSource,
    "",
    ...table(rows),
  ].join("\n")
}

/** Members as a forest: the primary first, each node under the member it replicates from. */
const forest = (s: StatusView): Array<{ member: Member; depth: number; prefix: string }> => {
  const names = new Set(s.members.map((m) => m.name))
  const primary = primaryOf(s)
  const parentOf = (m: Member): string | null =>
    m.name !== primary && m.source !== null && m.source !== m.name && names.has(m.source)
      ? m.source
      : null
  const children = new Map<string, Member[]>()
  for (const m of s.members) {
    const p = parentOf(m)
    if (p !== null) children.set(p, [...(children.get(p) ?? []), m])
  }
  const roots = s.members
    .filter((m) => parentOf(m) === null)
    .sort((a, b) => Number(b.name === primary) - Number(a.name === primary))
  const out: Array<{ member: Member; depth: number; prefix: string }> = []
  const seen = new Set<string>()
  const walk = (m: Member, depth: number, lead: string, last: boolean) => {
    if (seen.has(m.name)) return
    seen.add(m.name)
    out.push({ member: m, depth, prefix: depth === 0 ? "" : `${lead}${last ? "└─ " : "├─ "}` })
    const kids = (children.get(m.name) ?? []).filter((k) => !seen.has(k.name))
    const next = depth === 0 ? "" : `${lead}${last ? "   " : "│  "}`
    kids.forEach((k, i) => walk(k, depth + 1, next, i === kids.length - 1))
  }
  for (const r of roots) walk(r, 0, "", true)
  // A replication loop has no root: show its members at the top level.
  for (const m of s.members) walk(m, 0, "", true)
  return out
}

/** `mha-agent topology`: the replication tree with state, health, lag, GTIDs, errant flag. */
export const renderTopology = (s: StatusView): string => {
  const primary = primaryOf(s)
  const rows = [
    ["NODE", "ROLE", "HEALTH", "LAG", "GTID EXECUTED", "ERRANT", "LAST HEARD"],
    ...forest(s).map(({ member: m, prefix }) => [
      `${prefix}${m.name}`,
      m.kind === "witness" ? "witness" : m.role,
      m.health,
      m.name === primary ? "-" : lag(m.lagSeconds),
      m.kind === "witness" ? "-" : shortGtidSet(m.executed),
      m.errant === "" ? "-" : "ERRANT",
      lastHeard(m.lastHeardMs, m.name === s.node),
    ]),
  ]
  const head = `${s.cluster}: term ${s.term}, primary ${primary ?? "none"}${s.paused ? ", PAUSED" : ""} (as ${s.node} sees it)`
  return [head, ...table(rows)].join("\n")
}

/**
 * The errant GTIDs of each member: its own agent reports the set; for a peer
 * it reports only a flag, and the set is what the peer executed beyond the primary.
 */
export const errantOf = (s: StatusView): Array<{ name: string; gtids: string }> => {
  const primary = s.members.find((m) => m.name === primaryOf(s))
  return s.members
    .filter((m) => m.errant !== "")
    .map((m) => {
      if (m.name === s.node || m.errant !== "yes") return { name: m.name, gtids: m.errant }
      const set = primary === undefined ? undefined : gtidSubtract(m.executed, primary.executed)
      return {
        name: m.name,
        gtids:
          set === undefined || set === ""
            ? `(run 'mha-agent errant-gtid' on ${m.name} for the set)`
            : set,
      }
    })
}

export const renderErrant = (s: StatusView): string => {
  const errant = errantOf(s)
  if (errant.length === 0) return `no errant transactions (as ${s.node} sees the cluster)`
  return [
    ...table([["NODE", "ERRANT GTIDS"], ...errant.map((e) => [e.name, e.gtids])]),
    "",
    "'mha-agent errant-gtid --fix --dry-run' shows how they would be fixed.",
  ].join("\n")
}

/** `mha-agent history`: oldest first, newest last. */
export const renderHistory = (entries: ReadonlyArray<HistoryEntry>): string => {
  if (entries.length === 0) return "no failovers or switchovers recorded"
  const sorted = [...entries].sort(
    (a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0) || a.term - b.term,
  )
  return table([
    ["TIME", "KIND", "TERM", "OLD -> NEW", "DURATION", "REASON"],
    ...sorted.map((e) => [
      time(e.at),
      e.kind,
      String(e.term),
      `${e.oldPrimary ?? "-"} -> ${e.newPrimary}`,
      e.durationMs === null ? "-" : duration(e.durationMs),
      e.reason,
    ]),
  ]).join("\n")
}

/** `--dry-run`: the reply's message (its first line), then every step numbered. */
export const renderSteps = (reply: ControlReply): string => {
  if (reply.steps === undefined) return reply.message
  const width = String(reply.steps.length).length
  return [
    reply.message.split("\n")[0] ?? "",
    ...reply.steps.map((step, i) => `${String(i + 1).padStart(width)}. ${step}`),
  ].join("\n")
}
