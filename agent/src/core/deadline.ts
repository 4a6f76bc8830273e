/**
 * When the core next needs to hear that time passed (issue 12): the daemon
 * sleeps until this deadline instead of ticking twenty times a second.
 *
 * A Tick before the deadline must change nothing but the clock (no output,
 * no other field): the simulator checks that for every Tick of every seed
 * (test/sim/world.ts, "D1"). Waking early is always safe, so the function
 * errs that way: while a routine runs (an election, a promotion, a
 * switchover, an action or a vote in flight...) it answers `now + busyTickMs`,
 * the fixed tick of before, and only the quiet states (nothing running, the
 * cluster at rest or merely watching) get the earliest timer they hold. The
 * timers it lists are every comparison of `now` that the guards run after
 * each input make on such a state.
 */
import { aliveWindow } from "./cluster-view.ts"
import { AUTH_RETRY_MS } from "./credentials.ts"
import { electionTrigger } from "./election.ts"
import { LAG_HEARTBEAT_INTERVAL_MS } from "./lag-heartbeat.ts"
import { electionOf, leaseOf, promotionOf, switchoverOf } from "./roles.ts"
import type { AgentState, RoleState } from "./types.ts"

/** The tick of a busy agent: well under every timing a routine keeps. */
export const BUSY_TICK_MS = 50

/** Forwarded requests remembered this long (forwarding.ts) need no earlier wake-up than this. */
const SERVED_TTL_MS = 600_000

/** An election, or a promotion not finished yet or a switchover of the leader. */
const roleRoutineRunning = (role: RoleState): boolean => {
  switch (role._tag) {
    case "Follower":
      return false
    case "PreCandidate":
    case "Candidate":
      return true
    case "Leader":
      return (role.promotion?.step ?? "done") !== "done" || role.switchover !== null
  }
}

/**
 * True while some routine runs whose every timer this module does not list:
 * the core is then stepped at least every `busyTickMs`, as with the fixed tick.
 */
export const routineRunning = (s: AgentState): boolean =>
  roleRoutineRunning(s.role) ||
  s.proposal !== null ||
  s.pendingVote !== null ||
  s.clone !== null ||
  s.inFlight.size > 0 ||
  s.awaitingProbe.size > 0 ||
  s.pendingOperator.length > 0 ||
  s.forwarding.sent.size > 0 ||
  s.restart.running ||
  s.restart.inFlight ||
  s.restart.deadline !== null ||
  s.local.privileges.inFlight ||
  (s.transferStanding ?? null) !== null ||
  (s.forcedFailover ?? null) !== null

/**
 * The local monotonic time at which the core must be stepped next (a Tick):
 * later than `s.now`, or `s.now` itself when the next step must come at once.
 */
export const nextDeadline = (s: AgentState, busyTickMs: number = BUSY_TICK_MS): number => {
  const now = s.now
  const soon = now + busyTickMs
  if (!s.started) return soon
  const t = s.config.timings
  let next = routineRunning(s) ? soon : Number.POSITIVE_INFINITY
  const at = (when: number | null | undefined): void => {
    if (when !== null && when !== undefined && when > now && when < next) next = when
  }
  // Periodic work.
  at(s.nextProbeAt)
  at(s.nextHeartbeatAt)
  at(s.local.privileges.dueAt)
  at(s.nextGarpRefreshAt)
  // The next heartbeat-table row (lag-heartbeat.ts), set only while this primary writes them.
  const row = s.lagHeartbeatAt ?? null
  if (row !== null) at(row + LAG_HEARTBEAT_INTERVAL_MS)
  // Lease (section 5): the leader's own, the one a follower promised, the resignation after fencing.
  const lease = leaseOf(s)
  at(lease.validUntil)
  if (lease.fencedAt !== null) at(lease.fencedAt + t.leaseDurationMs)
  at(s.promise?.until)
  // Elections (section 6). A guard later in the step than the election clock may have
  // allowed an election: the next step, at once, arms its timeout.
  at(s.electionDueAt)
  if (s.role._tag === "Follower" && s.electionDueAt === null) {
    if (electionTrigger(s).ok) next = now
  }
  at(s.recoveryBlock?.until)
  at(s.handedOver?.until)
  at(s.preFailoverRefused?.until)
  at(s.failbackSince === null ? null : s.failbackSince + t.failbackDelayMs)
  // A probe of the primary stops being fresh (cluster-view.ts, primaryLostByQuorum).
  if (s.primaryProbe !== null) at(s.primaryProbe.at + 2 * t.probeIntervalMs + t.rpcTimeoutMs + 1)
  // Peers fall silent: every window their last word is judged by.
  const alive = aliveWindow(s.config)
  for (const v of s.peers.values()) {
    at(v.lastHeardAt + alive)
    at(v.lastHeardAt + t.rpcTimeoutMs + 1)
    at(v.lastHeardAt + t.leaseDurationMs)
    for (const heard of v.heardOthersAt.values()) at(heard + t.leaseDurationMs)
  }
  // mysqld's restart routine (section 12): stable again, failures leaving the window.
  if (s.restart.upSince !== null) at(s.restart.upSince + t.restartStableMs)
  for (const failure of s.restart.failures) at(failure + t.restartWindowMs)
  // Replication credentials retried after a refused login.
  const c = s.local.credentials
  if (c.retryAt > 0) at(c.retryAt)
  else if (c.authRetries > 0) at(now + AUTH_RETRY_MS)
  // The routines' own deadlines (they tick at least every busyTickMs besides).
  const election = electionOf(s)
  if (election !== null) {
    at(election.deadline)
    at(election.deadline - t.rpcTimeoutMs)
  }
  at(promotionOf(s)?.stepDeadline)
  at(switchoverOf(s)?.deadline)
  at(s.transferStanding?.deadline)
  // An old primary keeping the VIP for a make-before-break handover lets go at its end.
  at(s.vipHandover?.until)
  at(s.restart.deadline)
  at(s.forcedFailover?.until)
  if (s.pendingVote !== null) at(s.pendingVote.since + t.rpcTimeoutMs + 1)
  for (const p of s.forwarding.sent.values()) at(p.deadline)
  // Forwarded operator requests served long ago are forgotten.
  for (const e of s.forwarding.served.values()) at(e.at + SERVED_TTL_MS)
  return Number.isFinite(next) ? next : soon
}

/** True when `after` differs from `before` in anything but the clock (the reducer keeps untouched parts). */
export const changedBeyondClock = (before: AgentState, after: AgentState): boolean => {
  if (before === after) return false
  for (const key of Object.keys(after) as Array<keyof AgentState>) {
    if (key !== "now" && after[key] !== before[key]) return true
  }
  return false
}
