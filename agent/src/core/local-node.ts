/**
 * The local mysqld as probed (section 2): health ladder, GTID summary and
 * errant transactions (section 10).
 */
import { isDataNode } from "./config.ts"
import {
  emptyGtidSet,
  formatGtidSet,
  type GtidSet,
  isEmpty,
  isSubset,
  parseGtidSet,
  restrictToUuids,
  subtract,
  union,
  uuidsOf,
} from "./gtid.ts"
import { initialHealth, stepHealth } from "./health.ts"
import { event, type Outputs } from "./outputs.ts"
import { initialPrivileges, recheckPrivileges } from "./privileges.ts"
import type { AgentState, LocalNode, LocalProbeResult, MysqlProbe } from "./types.ts"

export const initialLocal: LocalNode = {
  probe: null,
  up: false,
  health: initialHealth,
  lastProbeAt: null,
  received: emptyGtidSet,
  executedText: "",
  retrievedText: "",
  errant: emptyGtidSet,
  resyncNeeded: false,
  resyncSince: 0,
  diverged: false,
  rejoinForced: false,
  rejoinRequested: false,
  revokedTerm: 0,
  vip: { held: "unknown", pending: null },
  lag: { exceeded: false, belowStreak: 0 },
  privileges: initialPrivileges,
}

/**
 * Errant transactions (section 10): what this node executed beyond the
 * record primary's gtid_executed at its promotion (`record.base`), beyond
 * what the active primary has now, and other than the primary's own GTIDs
 * (it may simply be ahead of its last heartbeat). This also catches what an
 * old primary committed that its successor never received.
 */
export const errantOf = (s: AgentState, executed: GtidSet): GtidSet => {
  const record = s.hard.record
  if (s.role === "leader" || record.term === 0) return emptyGtidSet
  let extra = subtract(executed, parseOrEmpty(record.base))
  const leader = s.leader !== null && s.leaderActive ? s.peers.get(s.leader) : undefined
  if (leader !== undefined) extra = subtract(extra, leader.executed)
  const primaryUuids = new Set([record.primaryUuid, leader?.serverUuid])
  const others = new Set([...uuidsOf(extra)].filter((u) => !primaryUuids.has(u)))
  return restrictToUuids(extra, others)
}

const parseOrEmpty = (text: string): GtidSet => {
  const parsed = parseGtidSet(text)
  return parsed._tag === "Ok" ? parsed.set : emptyGtidSet
}

export const onLocalProbed = (
  s: AgentState,
  out: Outputs,
  result: LocalProbeResult,
): AgentState => {
  if (!isDataNode(s.config, s.self)) return s
  switch (result._tag) {
    case "Down": {
      const health = stepHealth(s.config.health, s.local.health, {
        _tag: "ProbeFailed",
        reason: result.reason,
      })
      if (health.level === "FAIL" && s.local.health.level !== "FAIL") {
        event(out, "error", "mysqld-failed", result.reason)
      }
      // Only a replica that was receiving when it went down may have lost relay logs.
      const wasReceiving = s.local.up && s.local.probe?.replica?.ioRunning === true
      const startsResync = wasReceiving && s.role !== "leader"
      const resyncNeeded = s.local.resyncNeeded || startsResync
      // The primary's gtid_executed must be one observed after this: it then holds what we lost.
      const resyncSince = startsResync
        ? s.now + s.config.timings.probeIntervalMs
        : s.local.resyncSince
      const next: AgentState = {
        ...s,
        local: { ...s.local, up: false, health, lastProbeAt: s.now, resyncNeeded, resyncSince },
      }
      // Probes start failing: is it a privilege the probe needs (then mysqld is not down)?
      return s.local.up ? recheckPrivileges(next) : next
    }
    case "Up":
      // mysqld answers again (started, restarted): its grants are checked again.
      return withProbe(s.local.up ? s : recheckPrivileges(s), out, result.mysql)
    default:
      return absurd(result)
  }
}

/**
 * Replicating from the active primary and holding everything it reported in
 * a heartbeat sent after the resync began (an older report could predate
 * what the restart dropped).
 */
const caughtUp = (s: AgentState, probe: MysqlProbe, received: GtidSet): boolean => {
  if (s.leader === null || !s.leaderActive) return false
  const view = s.peers.get(s.leader)
  const r = probe.replica
  return (
    view !== undefined &&
    view.lastHeardAt >= s.local.resyncSince &&
    r !== null &&
    r.source === s.leader &&
    r.ioRunning &&
    isSubset(view.executed, received)
  )
}

const withProbe = (s: AgentState, out: Outputs, probe: MysqlProbe): AgentState => {
  const health = stepHealth(s.config.health, s.local.health, {
    _tag: "ProbeOk",
    lagSeconds: probe.replica?.lagSeconds ?? null,
  })
  const retrieved = probe.replica?.retrieved ?? emptyGtidSet
  const before = s.local.probe
  const sameExecuted = before !== null && before.executed === probe.executed
  const sameRetrieved = before?.replica?.retrieved === probe.replica?.retrieved
  const executedText = sameExecuted ? s.local.executedText : formatGtidSet(probe.executed)
  const retrievedText = sameRetrieved ? s.local.retrievedText : formatGtidSet(retrieved)
  const received =
    sameExecuted && sameRetrieved && s.local.up
      ? s.local.received
      : union(probe.executed, retrieved)
  const errant = errantOf(s, probe.executed)
  if (isEmpty(s.local.errant) && !isEmpty(errant)) {
    event(out, "warn", "errant-transactions", formatGtidSet(errant))
  }
  // errant-gtid --fix gave the primary those GTIDs: the node is a subset again and may rejoin.
  const diverged = s.local.diverged && !isEmpty(errant)
  if (s.local.diverged && !diverged)
    event(out, "info", "converged", "no errant transactions left: rejoining")
  return {
    ...s,
    local: {
      ...s.local,
      probe,
      up: true,
      health,
      lastProbeAt: s.now,
      received,
      resyncNeeded: s.local.resyncNeeded && !caughtUp(s, probe, received),
      executedText,
      retrievedText,
      errant,
      diverged,
    },
  }
}

function absurd(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`)
}
