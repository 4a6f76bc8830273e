/**
 * The local restart routine (section 12).
 *
 * - A failed local mysqld (health FAIL, down) is restarted through the
 *   service manager, with bounded attempts and a deadline. A hung one (its
 *   probes got no answer in time) is killed first (`KillMysqld`, the
 *   service's kill_command): a graceful stop of a stopped or wedged process
 *   waits until it runs again, and a restart behind it cost 29 s (issue 10).
 * - A restart succeeds only once mysqld has answered every probe for
 *   `restart_stable_period`: a server that comes back and dies again before
 *   that is the same run (attempts and deadline carry on), and each time it
 *   goes down again after being back is one more failure. Judging success on
 *   the first good probe let a crash loop reset the bounds for ever.
 * - More than `restart_attempts` failures within `restart_window` is a crash
 *   loop, whoever restarted mysqld (this agent or the service manager).
 * - On the primary the lease keeps being renewed meanwhile (the agent is
 *   alive), so a crash that a restart fixes causes no failover; if the
 *   restarts fail, time out or the server crash-loops, the primary fences
 *   itself and resigns. A restart command that fails at once
 *   (`immediateRestartFailureMs`) ends the primary's attempts there: a retry
 *   meets the same cause, and the wait is write downtime.
 * - A node that gave up stands for no election (and says so in heartbeats,
 *   so it is no switchover or failback target) until its run ends: a
 *   crash-looping node must not take the role back while it keeps crashing.
 * - On a replica there is no restart while an election runs or the primary
 *   is lost: relay_log_recovery would throw away relay logs that may hold the
 *   only copy of acknowledged transactions. A winner whose promotion has not
 *   made it writable yet is such a replica: it aborts and resigns instead.
 */
import type { Timings } from "./config.ts"
import { inLease } from "./lease.ts"
import { awaitProbe, probeLocal } from "./local-probes.ts"
import { removedSelf } from "./members.ts"
import { event, type Outputs } from "./outputs.ts"
import { probeDenied } from "./privileges.ts"
import { abortPromotion } from "./promotion.ts"
import { resign } from "./resignation.ts"
import { activeLeaderOf, electionOf } from "./roles.ts"
import type { AgentState, RestartRoutine } from "./types.ts"

/**
 * A restart command that fails within this long never got as far as starting
 * a mysqld (InnoDB start-up alone takes longer): the cause is one a retry
 * meets again.
 */
export const immediateRestartFailureMs = 1000

export const idleRestart: RestartRoutine = {
  attempts: 0,
  inFlight: false,
  deadline: null,
  gaveUp: false,
  running: false,
  upSince: null,
  back: false,
  failures: [],
}

/** Failures of mysqld within the window ending now. */
export const failuresInWindow = (
  now: number,
  t: Pick<Timings, "restartWindowMs">,
  failures: ReadonlyArray<number>,
): number => failures.filter((at) => now - at < t.restartWindowMs).length

/** Why this node must not stand for election because of its mysqld's restarts, or null. */
export const crashLoopWhy = (s: AgentState): string | null => {
  const r = s.restart
  if (!r.running || !r.gaveUp) return null
  const n = failuresInWindow(s.now, s.config.timings, r.failures)
  return `its mysqld gave up restarting (${n} failures within restart_window): not standing until it stays up for ${s.config.timings.restartStableMs} ms`
}

const replicaMayRestart = (s: AgentState): string | null => {
  if (electionOf(s) !== null) return "an election is running"
  if (activeLeaderOf(s) === null || !inLease(s)) return "the primary is lost"
  return null
}

const withRoutine = (s: AgentState, r: RestartRoutine): AgentState =>
  r === s.restart ? s : { ...s, restart: r }

const giveUp = (s: AgentState, out: Outputs, r: RestartRoutine, why: string): AgentState => {
  if (s.role._tag === "Leader") return { ...resign(s, out, why), restart: { ...r, gaveUp: true } }
  return { ...s, restart: { ...r, gaveUp: true } }
}

export const restartTimers = (s: AgentState, out: Outputs): AgentState =>
  s.local.up ? whileUp(s, out) : whileDown(s, out)

/** mysqld answers: the run ends once it has answered every probe for the stable period. */
const whileUp = (s: AgentState, out: Outputs): AgentState => {
  const r = s.restart
  if (!r.running) return s
  // A late probe (hung server) is a miss too: the stable period starts again.
  if (s.local.health.consecutiveFailures > 0) return withRoutine(s, { ...r, upSince: null })
  if (r.upSince === null) return { ...s, restart: { ...r, upSince: s.now, back: true } }
  const stable = s.config.timings.restartStableMs
  if (s.now - r.upSince < stable) return s
  event(
    out,
    "info",
    "restart-succeeded",
    `mysqld stayed up for ${stable} ms after ${r.attempts} restart(s) by this agent`,
  )
  return { ...s, restart: { ...idleRestart, failures: r.failures } }
}

const whileDown = (s: AgentState, out: Outputs): AgentState => {
  let r = s.restart
  // Any missed probe starts the stable period again.
  if (r.upSince !== null) r = { ...r, upSince: null }
  // CLONE restarts mysqld itself (through the service manager): no second restart meanwhile.
  // A member removed from the list leaves its mysqld to the operator (members.ts).
  if (
    s.local.health.level !== "FAIL" ||
    s.hard.record.paused ||
    s.clone?.phase === "cloning" ||
    removedSelf(s)
  ) {
    return withRoutine(s, r)
  }
  // A winner that is not writable yet is still a replica: its relay logs may hold the only copy
  // of acknowledged transactions and a restart (relay_log_recovery) drops them. It gives up the
  // term instead of restarting mysqld under its own promotion (section 9: abort, never promote
  // with data it may have lost).
  if (s.role._tag === "Leader" && s.role.promotion !== null && s.role.promotion.step !== "done") {
    return abortPromotion(
      withRoutine(s, r),
      out,
      `mysqld failed during the promotion (step ${s.role.promotion.step})`,
    )
  }
  const t = s.config.timings
  const isPrimary = s.role._tag === "Leader"
  if (!r.running || r.back) {
    // A failure: the first of a run, or mysqld died again before it stayed up long enough.
    const failures = [...r.failures, s.now].slice(-(t.restartAttempts + 1))
    r = { ...r, running: true, back: false, failures }
    const n = failuresInWindow(s.now, t, failures)
    // (Only the last restartAttempts + 1 failures are kept: enough to tell the bound is passed.)
    if (n > 1 && !r.gaveUp) {
      event(out, "warn", "mysqld-failed-again", `failure ${n} within restart_window`)
    }
    if (n > t.restartAttempts && !r.gaveUp) {
      const why = `mysqld failed ${n} times within ${t.restartWindowMs} ms (restart_window): crash loop`
      event(
        out,
        "error",
        "crash-loop",
        `${why}; no more restarts by this agent and no standing for election until it stays up for ${t.restartStableMs} ms`,
      )
      return giveUp(s, out, r, why)
    }
  }
  if (isPrimary && r.deadline !== null && s.now >= r.deadline) {
    return giveUp(s, out, r, "mysqld could not be restarted in time")
  }
  // A restart reported success: wait for the probe that shows it before another attempt.
  if (r.inFlight || r.gaveUp || s.awaitingProbe.has("Restart")) return withRoutine(s, r)
  if (r.attempts >= t.restartAttempts) {
    return isPrimary ? giveUp(s, out, r, "mysqld restarts failed") : withRoutine(s, r)
  }
  if (!isPrimary) {
    // A restart would only throw away relay logs: mysqld runs, the probe is denied.
    const denied = probeDenied(s)
    const why = denied
      ? `the probe fails for lack of ${denied.privilege}, not because mysqld is down`
      : replicaMayRestart(s)
    if (why !== null) {
      if (r.attempts === 0 && r.deadline === null) {
        event(out, "warn", "restart-held", `not restarting mysqld: ${why}`)
      }
      return { ...s, restart: { ...r, deadline: r.deadline ?? -1 } }
    }
  }
  const attempt = r.attempts + 1
  if (s.local.hung) {
    // A hung mysqld (no answer in time) would not act on a graceful stop until it
    // runs again: the restart would wait behind it. Kill it first (its clients get
    // an error, never OK); the restart then starts it afresh.
    out.push({
      _tag: "KillMysqld",
      reason: `mysqld does not answer probes (hung): killing it before restart attempt ${attempt}`,
    })
  }
  out.push({ _tag: "RestartMysqld", attempt })
  event(
    out,
    "warn",
    "restart-mysqld",
    `attempt ${attempt} of ${t.restartAttempts}${s.local.hung ? " (hung: killed first)" : ""}`,
  )
  return {
    ...s,
    restart: {
      ...r,
      attempts: attempt,
      inFlight: true,
      issuedAt: s.now,
      deadline: r.deadline === null || r.deadline < 0 ? s.now + t.restartTimeoutMs : r.deadline,
    },
  }
}

export const onRestartDone = (s: AgentState, out: Outputs, ok: boolean): AgentState => {
  const restart = { ...s.restart, inFlight: false }
  if (!ok) {
    const tookMs = s.restart.issuedAt === undefined ? null : s.now - s.restart.issuedAt
    event(
      out,
      "error",
      "restart-failed",
      `attempt ${s.restart.attempts}${tookMs === null ? "" : ` (after ${tookMs} ms)`}`,
    )
    // On the primary every moment without mysqld is write downtime: a restart command that
    // fails before it can have started a mysqld (a masked unit, a bad config, a disabled
    // service) would fail the same way again, so the primary gives up at once instead of
    // waiting out the remaining attempts. A slower failure (a start that ran and failed) is
    // retried as before, and so is every failure on a replica.
    if (
      s.role._tag === "Leader" &&
      (s.role.promotion === null || s.role.promotion.step === "done") &&
      tookMs !== null &&
      tookMs < immediateRestartFailureMs &&
      !restart.gaveUp
    ) {
      return giveUp(
        { ...s, restart },
        out,
        restart,
        `mysqld restart command failed at once (after ${tookMs} ms): a retry cannot do better`,
      )
    }
    return { ...s, restart }
  }
  // The service manager says mysqld is back: look at once, and restart no more
  // until that probe has answered (a second restart would kill the first).
  return probeLocal(awaitProbe({ ...s, restart }, "Restart"), out)
}
