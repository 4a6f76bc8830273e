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
import { initialHealth, type ProbeOutcome, stepHealth } from "./health.ts"
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
  probeSentAt: null,
  hung: false,
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

/** Default of `Timings.probeTimeoutMs` (the config's default connect + query timeouts). */
export const defaultProbeTimeoutMs = 2_000

/**
 * A local probe is due (every probe interval). A hung mysqld answers no
 * probe, and a probe sent behind an unanswered one would only wait for it:
 * so while the last periodic probe is unanswered, each due tick counts a
 * miss (ProbeLate) instead of sending another. Its failure, when it comes,
 * counts too: one miss per probe interval without an answer, as for a
 * server that refuses at once, so a hung server reaches FAIL in about
 * `failuresToFail` probe intervals. A probe unanswered for longer than the
 * driver lets one run (plus an interval) is presumed lost and sent again.
 */
export const localProbeDue = (s: AgentState, out: Outputs): AgentState => {
  if (!isDataNode(s.config, s.self)) return s
  const sentAt = s.local.probeSentAt
  let next = s
  if (sentAt !== null) {
    const t = s.config.timings
    const waited = s.now - sentAt
    next = missed(s, out, { _tag: "ProbeLate" }, `no answer to the probe for ${waited} ms`, true)
    if (waited < (t.probeTimeoutMs ?? defaultProbeTimeoutMs) + t.probeIntervalMs) return next
  }
  out.push({ _tag: "ProbeLocal" })
  return { ...next, local: { ...next.local, probeSentAt: s.now } }
}

export const onLocalProbed = (
  s: AgentState,
  out: Outputs,
  result: LocalProbeResult,
): AgentState => {
  if (!isDataNode(s.config, s.self)) return s
  // Any answer is fresh news of mysqld: the next tick probes again.
  const answered: AgentState = { ...s, local: { ...s.local, probeSentAt: null } }
  switch (result._tag) {
    case "Down": {
      const next = missed(
        answered,
        out,
        { _tag: "ProbeFailed", reason: result.reason },
        result.reason,
        result.hung,
      )
      // Probes start failing: is it a privilege the probe needs (then mysqld is not down)?
      return s.local.up ? recheckPrivileges(next) : next
    }
    case "Up":
      // mysqld answers again (started, restarted): its grants are checked again.
      return withProbe(s.local.up ? answered : recheckPrivileges(answered), out, result.mysql)
    default:
      return absurd(result)
  }
}

/**
 * One missed probe: failed (mysqld is down from now on) or late (down only
 * once the ladder reaches FAIL: a probe slow for an interval is a warning,
 * not a dead server).
 */
const missed = (
  s: AgentState,
  out: Outputs,
  outcome: ProbeOutcome,
  reason: string,
  hung: boolean,
): AgentState => {
  const health = stepHealth(s.config.health, s.local.health, outcome)
  if (health.level === "FAIL" && s.local.health.level !== "FAIL") {
    event(out, "error", "mysqld-failed", hung ? `${reason} (hung)` : reason)
  }
  const up = s.local.up && outcome._tag === "ProbeLate" && health.level !== "FAIL"
  // Only a replica that was receiving when it went down may have lost relay logs.
  const wasReceiving = s.local.up && !up && s.local.probe?.replica?.ioRunning === true
  const startsResync = wasReceiving && s.role !== "leader"
  const resyncNeeded = s.local.resyncNeeded || startsResync
  // The primary's gtid_executed must be one observed after this: it then holds what we lost.
  const resyncSince = startsResync ? s.now + s.config.timings.probeIntervalMs : s.local.resyncSince
  return {
    ...s,
    local: {
      ...s.local,
      up,
      hung,
      health,
      // A late probe is no answer: the time of the last answer stays.
      lastProbeAt: outcome._tag === "ProbeLate" ? s.local.lastProbeAt : s.now,
      resyncNeeded,
      resyncSince,
    },
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
      hung: false,
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
