/**
 * The local mysqld as probed (section 2): health ladder, GTID summary and
 * errant transactions (section 10).
 */
import { recogniseSource } from "./adoption.ts"
import { isDataNode } from "./config.ts"
import { initialCredentials } from "./credentials.ts"
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
import { initialHealth, isAtLeast, type ProbeOutcome, stepHealth } from "./health.ts"
import { probeLocal } from "./local-probes.ts"
import { probesOwnMysqld } from "./members.ts"
import { event, type Outputs } from "./outputs.ts"
import { initialPrivileges, recheckPrivileges } from "./privileges.ts"
import { restartedBetween, sameProcess, shouldRecord } from "./relay-intact.ts"
import { activeLeaderOf } from "./roles.ts"
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
  keptCheck: null,
  relayIntact: { recorded: null, atStart: null },
  outage: null,
  stall: null,
  mark: null,
  freezeStuck: false,
  diverged: false,
  rejoinForced: false,
  rejoinRequested: false,
  credentials: initialCredentials,
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
 *
 * A successor that never became ACTIVE is no successor: the record names the
 * winner of an election before it is writable and keeps naming it when its
 * promotion aborts (`primary` differs from `lastActive`). Such a winner wrote
 * nothing, so the history still ends with the last ACTIVE primary, and that
 * primary's own commits beyond the winner's base (those it wrote while cut
 * off, which no one acknowledged and no one else holds) are of the lineage,
 * not errant: otherwise the last primary, the only node holding them, could
 * never stand again (section 10: it may reclaim the role). Only while no
 * primary is known ACTIVE: once one is, it is the reference as before, and
 * the old primary's commits it lacks are errant (DIVERGED).
 */
export const errantOf = (
  s: AgentState,
  probe: Pick<MysqlProbe, "executed" | "serverUuid">,
): GtidSet => {
  const record = s.hard.record
  if (s.role._tag === "Leader" || record.term === 0) return emptyGtidSet
  let extra = subtract(probe.executed, parseOrEmpty(record.base))
  const active = activeLeaderOf(s)
  const leader = active === null ? undefined : s.peers.get(active)
  if (leader !== undefined) extra = subtract(extra, leader.executed)
  const primaryUuids = new Set([record.primaryUuid, leader?.serverUuid])
  if (active === null) primaryUuids.add(lastActiveUuid(s, probe.serverUuid))
  const others = new Set([...uuidsOf(extra)].filter((u) => !primaryUuids.has(u)))
  return restrictToUuids(extra, others)
}

/**
 * The server_uuid of the last ACTIVE primary when the record names another
 * node that never became ACTIVE (its promotion aborted or has not finished);
 * null otherwise, or when unknown.
 */
const lastActiveUuid = (s: AgentState, ownUuid: string): string | null => {
  const record = s.hard.record
  const last = record.lastActive
  if (last === null || last === record.primary) return null
  const uuid = last === s.self ? ownUuid : (s.peers.get(last)?.serverUuid ?? null)
  // Only a uuid of the lineage: a re-seeded server's new uuid never wrote as primary.
  return uuid !== null && record.lineage.includes(uuid) ? uuid : null
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
  if (!probesOwnMysqld(s)) return s
  const sentAt = s.local.probeSentAt
  let next = s
  if (sentAt !== null) {
    const t = s.config.timings
    const waited = s.now - sentAt
    next = missed(s, out, { _tag: "ProbeLate" }, `no answer to the probe for ${waited} ms`, true)
    if (waited < (t.probeTimeoutMs ?? defaultProbeTimeoutMs) + t.probeIntervalMs) return next
  }
  return probeLocal({ ...next, local: { ...next.local, probeSentAt: s.now } }, out)
}

export const onLocalProbed = (
  s: AgentState,
  out: Outputs,
  result: LocalProbeResult,
): AgentState => {
  if (!probesOwnMysqld(s)) return s
  // Any answer is fresh news of mysqld: the next tick probes again.
  const answered: AgentState = { ...s, local: { ...s.local, probeSentAt: null } }
  switch (result._tag) {
    case "Down": {
      // Refused on the local socket or port: no mysqld listens, FAIL at once (a timeout still
      // climbs the ladder: a slow server is not a dead one).
      const outcome: ProbeOutcome = isRefusal(result.reason, result.hung)
        ? { _tag: "ProbeRefused", reason: result.reason }
        : { _tag: "ProbeFailed", reason: result.reason }
      const next = missed(answered, out, outcome, result.reason, result.hung)
      // Probes start failing: is it a privilege the probe needs (then mysqld is not down)?
      return s.local.up ? recheckPrivileges(next) : next
    }
    case "Up":
      // mysqld answers again (started, restarted): its grants are checked again.
      return withProbe(
        s.local.up ? answered : recheckPrivileges(answered),
        out,
        recogniseSource(s, result.mysql),
      )
    default:
      return absurd(result)
  }
}

/** The connection was refused: nothing listens on the local socket or port. */
const isRefusal = (reason: string, hung: boolean): boolean =>
  !hung && /\b(ECONNREFUSED|ENOENT)\b/.test(reason)

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
  // A late probe is no answer: the time of the last answer stays, and below FAIL it is still up.
  if (s.local.up && outcome._tag === "ProbeLate" && health.level !== "FAIL") {
    return { ...s, local: { ...s.local, hung, health } }
  }
  const relayHeld = s.local.up && holdsRelay(s, s.local.probe)
  // With relay_log_recovery OFF the relay log survives a mysqld crash: check it on return.
  const keeps = s.local.probe?.relayLogRecovery === false
  const startsResync = relayHeld && !keeps
  const resyncNeeded = s.local.resyncNeeded || startsResync
  const keptCheck = relayHeld && keeps ? (s.local.keptCheck ?? s.local.received) : s.local.keptCheck
  const uptime = s.local.up ? s.local.probe?.uptimeSeconds : undefined
  const outage =
    s.local.outage ??
    (uptime === undefined || s.local.lastProbeAt === null
      ? null
      : {
          lastUpAt: s.local.lastProbeAt,
          uptimeSeconds: uptime,
          resyncBefore: s.local.resyncNeeded,
        })
  // The primary's gtid_executed must be one observed after this: it then holds what we lost.
  const resyncSince = startsResync ? s.now + s.config.timings.probeIntervalMs : s.local.resyncSince
  return {
    ...s,
    local: {
      ...s.local,
      up: false,
      hung,
      // The connection was refused: no mysqld listens there, so none can hold a waiting commit.
      refused: isRefusal(reason, hung),
      health,
      lastProbeAt: outcome._tag === "ProbeLate" ? s.local.lastProbeAt : s.now,
      resyncNeeded,
      resyncSince,
      keptCheck,
      outage,
      mark: null,
    },
  }
}

/**
 * Only a replica that was receiving, or held received transactions not yet
 * applied (its IO thread stopped by a vote freeze, say), may have lost relay
 * logs when its mysqld restarted.
 */
const holdsRelay = (s: AgentState, probe: MysqlProbe | null): boolean => {
  const replica = probe?.replica ?? null
  // A winner whose promotion has not made it writable is still a replica (restart-routine.ts).
  const stillReplica =
    s.role._tag !== "Leader" || (s.role.promotion !== null && s.role.promotion.step !== "done")
  return (
    replica !== null &&
    stillReplica &&
    (replica.ioRunning || !isSubset(replica.retrieved, probe!.executed))
  )
}

/**
 * Replicating from the active primary and holding everything it reported in
 * a heartbeat sent after the resync began (an older report could predate
 * what the restart dropped).
 */
const caughtUp = (
  s: AgentState,
  probe: MysqlProbe,
  received: GtidSet,
  since: number = s.local.resyncSince,
): boolean => {
  const leader = activeLeaderOf(s)
  if (leader === null) return false
  const view = s.peers.get(leader)
  const r = probe.replica
  return (
    view !== undefined &&
    view.lastHeardAt >= since &&
    r !== null &&
    r.source === leader &&
    r.ioRunning &&
    isSubset(view.executed, received)
  )
}

/** What stops replication from making progress, as the probe shows it; null when nothing. */
export const stallOf = (probe: MysqlProbe): string | null => {
  const status = probe.replica?.ioStatus ?? ""
  // MySQL waits (and retries) while the relay log cannot be written; STOP REPLICA waits with it.
  if (/disk space/i.test(status)) return `replication IO thread stuck: ${status}`
  return null
}

/** The active primary's gtid_executed as last heard, null when there is none to compare with. */
const primaryExecuted = (s: AgentState): GtidSet | null => {
  const leader = activeLeaderOf(s)
  if (leader === null || leader === s.self) return null
  return s.peers.get(leader)?.executed ?? null
}

/**
 * The GTID lag: a mark of the primary's gtid_executed is kept until this
 * node has executed all of it; its age is how far behind the node really
 * is, whatever Seconds_Behind_Source says (0 while the IO thread is stuck).
 */
const nextMark = (
  s: AgentState,
  probe: MysqlProbe,
): { readonly mark: LocalNode["mark"]; readonly lagSeconds: number | null } => {
  const primary = primaryExecuted(s)
  if (primary === null || probe.replica === null) return { mark: null, lagSeconds: null }
  const mark = s.local.mark
  if (mark === null || isSubset(mark.set, probe.executed)) {
    return { mark: { set: primary, at: s.now }, lagSeconds: 0 }
  }
  return { mark, lagSeconds: (s.now - mark.at) / 1000 }
}

const withProbe = (s: AgentState, out: Outputs, probe: MysqlProbe): AgentState => {
  const { mark, lagSeconds: gtidLag } = nextMark(s, probe)
  const reported = probe.replica?.lagSeconds ?? null
  const lagSeconds =
    gtidLag === null ? reported : reported === null ? gtidLag : Math.max(gtidLag, reported)
  const stall = stallOf(probe)
  const stepped = stepHealth(s.config.health, s.local.health, { _tag: "ProbeOk", lagSeconds })
  // A stalled IO thread is CRITICAL at once, and stays so while it lasts.
  const health =
    stall === null || isAtLeast(stepped.level, "CRITICAL")
      ? stepped
      : { ...stepped, level: "CRITICAL" as const, recoveryStreak: 0 }
  if (stall !== null && s.local.stall === null) event(out, "error", "replication-stalled", stall)
  if (stall === null && s.local.stall !== null)
    event(out, "info", "replication-resumed", "the replication IO thread is no longer stuck")
  const retrieved = probe.replica?.retrieved ?? emptyGtidSet
  const before = s.local.probe
  const sameExecuted = before !== null && before.executed === probe.executed
  const sameRetrieved = before?.replica?.retrieved === probe.replica?.retrieved
  const executedText = sameExecuted ? s.local.executedText : formatGtidSet(probe.executed)
  const retrievedText = sameRetrieved ? s.local.retrievedText : formatGtidSet(retrieved)
  // Commits in flight on this server count while some wait for their semi-sync acknowledgement:
  // those passed the binlog's sync, and a replica may hold them already. One stuck before it
  // (a full binlog disk: none waits for an acknowledgement) may never reach the binlog.
  const committing = probe.semiSyncWaiters > 0 ? (probe.committing ?? emptyGtidSet) : emptyGtidSet
  const sameCommitting = (before?.committing ?? emptyGtidSet) === committing
  const received =
    sameExecuted && sameRetrieved && sameCommitting && s.local.up
      ? s.local.received
      : union(union(probe.executed, retrieved), committing)
  const errant = errantOf(s, probe)
  if (isEmpty(s.local.errant) && !isEmpty(errant)) {
    event(out, "warn", "errant-transactions", formatGtidSet(errant))
  }
  // errant-gtid --fix gave the primary those GTIDs: the node is a subset again and may rejoin.
  const diverged = s.local.diverged && !isEmpty(errant)
  if (s.local.diverged && !diverged)
    event(out, "info", "converged", "no errant transactions left: rejoining")
  // Answering again without having restarted (its uptime ran on): nothing was lost.
  const outage = s.local.outage
  const ranOn =
    outage !== null &&
    probe.uptimeSeconds !== undefined &&
    probe.uptimeSeconds + 2 >= outage.uptimeSeconds + (s.now - outage.lastUpAt) / 1000
  if (ranOn && s.local.resyncNeeded && !outage.resyncBefore)
    event(
      out,
      "info",
      "no-restart",
      "mysqld answers again without having restarted: its relay log is intact",
    )
  // The agent started and its mysqld is still the process an earlier run recorded as
  // holding all it received: the relay log is intact (relay-intact.ts).
  const atStart = s.local.relayIntact.atStart
  const intact =
    atStart !== null &&
    probe.started !== undefined &&
    sameProcess(atStart, probe.started) &&
    s.local.resyncNeeded
  if (intact) {
    event(
      out,
      "info",
      "relay-log-intact",
      "mysqld is the process this agent recorded before it restarted: its relay log is intact, no resync",
    )
  }
  // It restarted between two probes that both answered (its start moved): as after an outage.
  const unseen = s.local.up && restartedBetween(before?.started, probe.started)
  const heldBefore = unseen && holdsRelay(s, before)
  const unseenResync = heldBefore && before?.relayLogRecovery !== false
  if (unseen) {
    event(
      out,
      "warn",
      "mysqld-restarted",
      `mysqld restarted between two probes${unseenResync ? ": its relay logs may have lost received transactions" : ""}`,
    )
  }
  const resyncBefore = ranOn
    ? outage.resyncBefore
    : (s.local.resyncNeeded && !intact) || unseenResync
  // The relay log should have survived the crash (relay_log_recovery OFF): did it?
  const check = ranOn ? null : heldBefore && !unseenResync ? s.local.received : s.local.keptCheck
  const lost = check !== null && !isSubset(check, received)
  // Only a primary's report heard after this counts: an older one may predate the loss.
  const resyncSince = lost || unseenResync ? s.now + 1 : s.local.resyncSince
  if (lost) {
    event(
      out,
      "warn",
      "relay-log-lost",
      `mysqld came back without ${formatGtidSet(subtract(check, received))} it had received`,
    )
  }
  const resyncNeeded = (resyncBefore || lost) && !caughtUp(s, probe, received, resyncSince)
  // Record this process once it is known to hold all it received, for the next agent start.
  const recorded = s.local.relayIntact.recorded
  const record =
    isDataNode(s.config, s.self) &&
    !resyncNeeded &&
    shouldRecord(recorded, probe.started, probe.uptimeSeconds)
  if (record) out.push({ _tag: "RecordRelayIntact", started: probe.started })
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
      resyncNeeded,
      relayIntact: {
        recorded: record && probe.started !== undefined ? probe.started : recorded,
        atStart: null,
      },
      outage: null,
      resyncSince,
      keptCheck: null,
      stall,
      mark,
      freezeStuck: s.local.freezeStuck && probe.replica?.ioRunning === true,
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
