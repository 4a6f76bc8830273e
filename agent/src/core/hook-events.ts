/**
 * Hooks that follow what an agent observes rather than one routine
 * (operations.md, Hooks): `on_failure_detected` (the primary's failure, first
 * seen), `on_role_change` (this node's role state changed) and the lag pair
 * `on_lag_threshold_exceeded` / `on_lag_recovered` (once per crossing of the
 * health lag threshold, with hysteresis). Each runs without blocking anything.
 */
import { aliveWindow, knownPrimary, primaryLostByQuorum } from "./cluster-view.ts"
import { isDataNode } from "./config.ts"
import { failureKey, noteFailure } from "./failure-detected.ts"
import { reportedLag } from "./lag-heartbeat.ts"
import { inLease } from "./lease.ts"
import { event, type Outputs, runHook } from "./outputs.ts"
import { activeLeaderOf, leaderActiveOf, leaderOf } from "./roles.ts"
import { nodeRole } from "./status.ts"
import type { AgentState } from "./types.ts"

/**
 * The primary is lost as section 6 judges it: it resigned, or no lease is
 * promised any more and its mysqld is unreachable (or fenced) from here and
 * from a quorum.
 */
export const watchPrimaryFailure = (s: AgentState, out: Outputs): AgentState => {
  if (s.role._tag === "Leader" || !s.started) return s
  const primary = knownPrimary(s)
  if (primary === null || primary === s.self || !isDataNode(s.config, primary)) return s
  if (s.failureSeen === failureKey(s, primary)) return s
  // A winner still promoting is read-only on purpose until it announces: no failure while
  // its agent is heard (if it aborts it resigns, and that is reported below).
  const winner = s.peers.get(primary)
  if (
    leaderOf(s) === primary &&
    !leaderActiveOf(s) &&
    winner !== undefined &&
    s.now - winner.lastHeardAt < aliveWindow(s.config)
  )
    return s
  const resigned = s.resignedTerm > 0 && s.resignedTerm >= s.hard.term && leaderOf(s) === null
  if (resigned) return noteFailure(s, out, primary, `${primary} resigned term ${s.resignedTerm}`)
  if (inLease(s)) return s
  if (!primaryLostByQuorum(s, primary).lost) return s
  return noteFailure(
    s,
    out,
    primary,
    `${primary}'s mysqld is unreachable or fenced, confirmed by a quorum, and no lease holds`,
  )
}

/** Runs on_role_change when this node's role state (ACTIVE, STANDBY, ...) changes. */
export const watchRole = (s: AgentState, out: Outputs): AgentState => {
  if (!isDataNode(s.config, s.self) || s.local.lastProbeAt === null) return s
  const role = nodeRole(s)
  const active = activeLeaderOf(s)
  const seen = s.roleSeen
  if (seen === null) return { ...s, roleSeen: { role, primary: active, former: null } }
  const primary = active ?? seen.primary
  const former = active !== null && active !== seen.primary ? seen.primary : seen.former
  if (role === seen.role) {
    return primary === seen.primary && former === seen.former
      ? s
      : { ...s, roleSeen: { role, primary, former } }
  }
  const reason = `${seen.role} -> ${role}`
  event(out, "info", "role-change", reason)
  const [next] = runHook(
    s,
    out,
    "on_role_change",
    {
      MHA_OLD_PRIMARY: (active === null ? seen.primary : former) ?? "",
      MHA_NEW_PRIMARY: active ?? "",
      MHA_OLD_ROLE: seen.role,
      MHA_NEW_ROLE: role,
      MHA_REASON: reason,
    },
    { _tag: "Hook" },
  )
  return { ...next, roleSeen: { role, primary, former } }
}

/**
 * After each good local probe of a replica: lag at or above the health lag
 * threshold (`lagWarnSeconds`, where a node stops counting as healthy) runs
 * on_lag_threshold_exceeded once; on_lag_recovered runs once the lag has been
 * below the INFO band (the threshold itself when there is no such band) for
 * `successesToRecover` probes in a row. An unknown lag changes nothing.
 */
export const watchLag = (s: AgentState, out: Outputs): AgentState => {
  const p = s.local.up ? s.local.probe : null
  const lag = reportedLag(s, p).seconds
  if (p === null || lag === null || Number.isNaN(lag) || s.role._tag === "Leader") return s
  const h = s.config.health
  const threshold = h.lagWarnSeconds
  const l = s.local.lag
  const source = p.replica?.source ?? ""
  if (!l.exceeded) {
    if (lag < threshold) return s
    event(out, "warn", "lag-threshold-exceeded", `replication lag ${lag} s >= ${threshold} s`)
    const [next] = runHook(
      s,
      out,
      "on_lag_threshold_exceeded",
      {
        MHA_LAG_SECONDS: `${lag}`,
        MHA_NEW_PRIMARY: source,
        MHA_REASON: `replication lag ${lag} s >= ${threshold} s`,
      },
      { _tag: "Hook" },
    )
    return { ...next, local: { ...next.local, lag: { exceeded: true, belowStreak: 0 } } }
  }
  const recoverBelow = Math.min(h.lagInfoSeconds, threshold)
  if (lag >= recoverBelow) {
    return l.belowStreak === 0 ? s : { ...s, local: { ...s.local, lag: { ...l, belowStreak: 0 } } }
  }
  const streak = l.belowStreak + 1
  if (streak < h.successesToRecover) {
    return { ...s, local: { ...s.local, lag: { exceeded: true, belowStreak: streak } } }
  }
  event(out, "info", "lag-recovered", `replication lag ${lag} s < ${recoverBelow} s`)
  const [next] = runHook(
    s,
    out,
    "on_lag_recovered",
    {
      MHA_LAG_SECONDS: `${lag}`,
      MHA_NEW_PRIMARY: source,
      MHA_REASON: `replication lag ${lag} s < ${recoverBelow} s for ${streak} probes`,
    },
    { _tag: "Hook" },
  )
  return { ...next, local: { ...next.local, lag: { exceeded: false, belowStreak: 0 } } }
}
