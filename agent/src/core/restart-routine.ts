/**
 * The local restart routine (section 12).
 *
 * - A failed local mysqld is restarted through the service manager, with
 *   bounded attempts and a deadline.
 * - On the primary the lease keeps being renewed meanwhile (the agent is
 *   alive), so a crash that a restart fixes causes no failover; if the
 *   restarts fail or time out, the primary fences itself and resigns.
 * - On a replica there is no restart while an election runs or the primary
 *   is lost: relay_log_recovery would throw away relay logs that may hold the
 *   only copy of acknowledged transactions. A winner whose promotion has not
 *   made it writable yet is such a replica: it aborts and resigns instead.
 */
import { inLease } from "./lease.ts"
import { event, type Outputs } from "./outputs.ts"
import { abortPromotion } from "./promotion.ts"
import { resign } from "./resignation.ts"
import type { AgentState, RestartRoutine } from "./types.ts"

export const idleRestart: RestartRoutine = {
  attempts: 0,
  inFlight: false,
  deadline: null,
  gaveUp: false,
}

const replicaMayRestart = (s: AgentState): string | null => {
  if (s.election !== null) return "an election is running"
  if (s.leader === null || !s.leaderActive || !inLease(s)) return "the primary is lost"
  return null
}

export const restartTimers = (s: AgentState, out: Outputs): AgentState => {
  if (s.local.up) {
    return s.restart === idleRestart ? s : { ...s, restart: idleRestart }
  }
  if (s.local.health.level !== "FAIL" || s.hard.record.paused) return s
  // CLONE restarts mysqld itself (through the service manager): no second restart meanwhile.
  if (s.clone?.phase === "cloning") return s
  const r = s.restart
  // A winner that is not writable yet is still a replica: its relay logs may hold the only copy
  // of acknowledged transactions and a restart (relay_log_recovery) drops them. It gives up the
  // term instead of restarting mysqld under its own promotion (section 9: abort, never promote
  // with data it may have lost).
  if (s.role === "leader" && s.promotion !== null && s.promotion.step !== "done") {
    return abortPromotion(s, out, `mysqld failed during the promotion (step ${s.promotion.step})`)
  }
  const isPrimary = s.role === "leader"
  if (isPrimary && r.deadline !== null && s.now >= r.deadline) {
    return {
      ...resign(s, out, "mysqld could not be restarted in time"),
      restart: { ...r, gaveUp: true },
    }
  }
  // A restart reported success: wait for the probe that shows it before another attempt.
  if (r.inFlight || r.gaveUp || s.awaitingProbe.has("restart")) return s
  if (r.attempts >= s.config.timings.restartAttempts) {
    if (isPrimary) {
      return { ...resign(s, out, "mysqld restarts failed"), restart: { ...r, gaveUp: true } }
    }
    return s
  }
  if (!isPrimary) {
    const why = replicaMayRestart(s)
    if (why !== null) {
      if (r.attempts === 0 && r.deadline === null) {
        event(out, "warn", "restart-held", `not restarting mysqld: ${why}`)
      }
      return { ...s, restart: { ...r, deadline: r.deadline ?? -1 } }
    }
  }
  const attempt = r.attempts + 1
  out.push({ _tag: "RestartMysqld", attempt })
  event(out, "warn", "restart-mysqld", `attempt ${attempt} of ${s.config.timings.restartAttempts}`)
  return {
    ...s,
    restart: {
      attempts: attempt,
      inFlight: true,
      deadline:
        r.deadline === null || r.deadline < 0
          ? s.now + s.config.timings.restartTimeoutMs
          : r.deadline,
      gaveUp: false,
    },
  }
}

export const onRestartDone = (s: AgentState, out: Outputs, ok: boolean): AgentState => {
  const restart = { ...s.restart, inFlight: false }
  if (!ok) {
    event(out, "error", "restart-failed", `attempt ${s.restart.attempts}`)
    return { ...s, restart }
  }
  // The service manager says mysqld is back: look at once, and restart no more
  // until that probe has answered (a second restart would kill the first).
  out.push({ _tag: "ProbeLocal" })
  const awaitingProbe = new Set(s.awaitingProbe)
  awaitingProbe.add("restart")
  return { ...s, restart, awaitingProbe }
}
