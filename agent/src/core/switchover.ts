/**
 * Planned switchover as a leadership transfer (section 13), on the primary.
 *
 * converge unfenced (writable, VIP held) until the target could apply what it
 * still lacks within the block budget, else refuse at switchover_timeout
 * without having blocked a write -> pre_switchover hook -> fence itself (VIP
 * off, super_read_only, kill sessions) -> wait until the target has executed
 * everything this node executed -> consent to the transfer (voters then grant
 * the target a vote while in lease) -> the target promotes without a lease wait.
 * Before the consent leaves, a timeout rolls back (writable again, VIP
 * back). After it, rolling back could make two writable nodes, so a timeout
 * resigns instead and the replicas elect.
 */
import { isExcluded } from "./cluster-record.ts"
import { aliveWindow } from "./cluster-view.ts"
import { memberOf, quorum } from "./config.ts"
import { count, formatGtidSet, type GtidSet, isSubset, subtract } from "./gtid.ts"
import { leaseValid } from "./lease.ts"
import { probeLocal } from "./local-probes.ts"
import { broadcast, event, issueMysql, type Outputs, operatorReply, runHook } from "./outputs.ts"
import { eligibility } from "./ranking.ts"
import { resign } from "./resignation.ts"
import { asLeader, isActivePrimary, switchoverOf, withSwitchover } from "./roles.ts"
import { revokeActions } from "./supersession.ts"
import type { ActionPurpose, AgentState, PeerView, Switchover, TargetSample } from "./types.ts"
import { beginVipHandover } from "./vip-handover.ts"

/**
 * Purposes of the actions a switchover issues (pre_switchover and the fence, the drain, the
 * kill, the wait on the target's mysqld).
 */
const switchoverActions: ReadonlySet<ActionPurpose["_tag"]> = new Set([
  "Switchover",
  "DrainSessions",
  "SwitchoverKillSessions",
  "SwitchoverCatchUp",
])

/**
 * The switchover is over (refused, rolled back, or the role changed): what it
 * issued and has not started yet is withdrawn, so a drain that outlives the
 * rollback never goes on to fence the primary it gave back (issue 16).
 */
const endSwitchover = (s: AgentState): AgentState =>
  revokeActions(withSwitchover(s, null), switchoverActions)

/** Why `to` cannot take over from this primary now; null when it can. */
export const transferBlocker = (s: AgentState, to: string): string | null =>
  switchoverOf(s) !== null ? "a switchover is already running" : targetBlocker(s, to)

/** transferBlocker without the running switchover: checked again while converging. */
const targetBlocker = (s: AgentState, to: string): string | null => {
  if (s.role._tag !== "Leader" || s.role.promotion?.step !== "done")
    return "this node is not the ACTIVE primary"
  if (to === s.self) return `${to} is already the primary`
  const v = s.peers.get(to)
  if (v === undefined || s.now - v.lastHeardAt >= aliveWindow(s.config))
    return `${to} is not reachable`
  const verdict = eligibility(s.config, s.hard.record, to, {
    errant: v.errant ? "errant" : "",
    replicationError: v.replicationError,
  })
  if (!verdict.ok) return verdict.why
  if (v.source !== s.self || !v.replicating) return `${to} does not replicate from ${s.self}`
  if (!v.eligible) return `${to} cannot stand for election now`
  return null
}

/** The member to hand over to: the highest priority one that can take over now. */
export const readyCandidate = (s: AgentState): string | null => {
  const ready = s.config.members
    .filter((m) => m.kind === "data" && transferBlocker(s, m.name) === null)
    .sort((a, b) => b.priority - a.priority || (a.name < b.name ? -1 : 1))
  return ready[0]?.name ?? null
}

/** A replica this close behind counts as caught up for failback: the switchover itself waits for the rest. */
const caughtUpBacklog = 100

/**
 * The block budget: a switchover fences only once the target's estimated
 * time to apply what it still lacks is at most this (500 ms, so that the whole
 * write block, catch-up plus transfer, stays near the 1 s of section 13), and
 * never more than half of switchover_timeout, so that the post-fence catch-up
 * wait (the safety net, which rolls back) keeps room.
 */
export const blockBudgetMs = (s: AgentState): number =>
  Math.min(500, s.config.timings.switchoverTimeoutMs / 2)

/**
 * How far the target is from this primary, from the last local probe and
 * the target's last heartbeat. `relay`: what it received but has not
 * executed, from one probe of its own (no staleness between two nodes).
 * `unreceived`: what this node executed that it had not received, which
 * also counts the writes made since its sample was taken.
 */
interface Distance {
  readonly relay: number
  readonly unreceived: number
}

const distanceOf = (s: AgentState, v: PeerView): Distance | null => {
  const mine = s.local.probe?.executed ?? null
  if (mine === null) return null
  return {
    relay: count(subtract(v.received, v.executed)),
    unreceived: count(subtract(mine, v.received)),
  }
}

/**
 * Estimated time for the target to apply its relay backlog, from its apply
 * rate measured between heartbeats (a raw count says little under 1000+ tps:
 * the same count is 50 ms of work for a fast applier and seconds for a slow
 * one). Infinite while there is a backlog and no rate is known.
 */
export const applyEstimateMs = (backlog: number, rate: number | null): number =>
  backlog === 0 ? 0 : rate === null || rate <= 0 ? Number.POSITIVE_INFINITY : backlog / rate

/**
 * The target is close enough to fence: it can apply its relay backlog within
 * the budget, and what it has not received is no more than it applies in the
 * time its sample is older than the local probe, plus a probe interval (the
 * age of the probe a heartbeat carries) plus the budget. A receiver that
 * falls behind (its IO thread, the network) fails the second part.
 */
const closeEnough = (
  s: AgentState,
  d: Distance,
  rate: number | null,
  sampledAt: number,
): { readonly ok: boolean; readonly estimateMs: number } => {
  const budget = blockBudgetMs(s)
  const estimateMs = applyEstimateMs(d.relay, rate)
  const staleMs = Math.max(0, (s.local.lastProbeAt ?? s.now) - sampledAt)
  const allowance = (rate ?? 0) * (staleMs + s.config.timings.probeIntervalMs + budget)
  return { ok: estimateMs <= budget && d.unreceived <= allowance, estimateMs }
}

/**
 * A new heartbeat sample of the target: the rate is what it executed since
 * the last sample over the time between them. A sample that shows no progress
 * counts only once it is two heartbeat intervals old (a heartbeat may carry
 * the same probe twice), so that a stalled applier reads as rate 0.
 */
const nextSample = (
  s: AgentState,
  last: TargetSample | null,
  rate: number | null,
  v: PeerView,
): { readonly last: TargetSample; readonly rate: number | null } => {
  const now: TargetSample = { at: v.lastHeardAt, executed: v.executed }
  if (last === null) return { last: now, rate }
  const elapsed = now.at - last.at
  if (elapsed <= 0) return { last, rate }
  const applied = count(subtract(now.executed, last.executed))
  if (applied === 0 && elapsed < 2 * s.config.timings.heartbeatIntervalMs) return { last, rate }
  return { last: now, rate: applied / elapsed }
}

const perSecond = (rate: number | null): string =>
  rate === null ? "unknown" : `${Math.round(rate * 1000)}/s`

/** Request id of switchovers the agent starts itself (failback, shutdown). */
export const internalRequest = -1

/**
 * Optional failback (section 13): when the highest-priority member is
 * healthy, caught up and not ACTIVE for `failback_delay`, hand over to it.
 * Never inside the anti-flap block or while paused.
 */
export const failbackTimer = (s: AgentState, out: Outputs): AgentState => {
  if (!s.config.failback || s.role._tag !== "Leader" || s.role.promotion?.step !== "done") return s
  const top = s.config.members
    .filter((m) => m.kind === "data" && m.promotable)
    .sort((a, b) => b.priority - a.priority || (a.name < b.name ? -1 : 1))[0]
  const blocked =
    s.hard.record.paused ||
    (s.recoveryBlock !== null && !s.hard.record.recoveryAcked && s.now < s.recoveryBlock.until)
  const ready =
    top !== undefined &&
    top.name !== s.self &&
    !blocked &&
    transferBlocker(s, top.name) === null &&
    (s.peers.get(top.name)?.backlog ?? Number.POSITIVE_INFINITY) <= caughtUpBacklog
  if (!ready || top === undefined)
    return s.failbackSince === null ? s : { ...s, failbackSince: null }
  if (s.failbackSince === null) return { ...s, failbackSince: s.now }
  if (s.now - s.failbackSince < s.config.timings.failbackDelayMs) return s
  event(out, "info", "failback", `${top.name} has the highest priority and is caught up`)
  return requestSwitchover({ ...s, failbackSince: null }, out, internalRequest, top.name, false, {
    reason: `failback to ${top.name}, the member with the highest priority`,
  })
}

export interface SwitchoverOptions {
  /** Wait this long for client sessions to finish before fencing (null: no wait). */
  readonly drainTimeoutMs?: number | null
  /** Why, for the history (operator request, failback, shutdown). */
  readonly reason?: string
  /** The agent is stopping: if the switchover is refused or rolls back, fence and resign instead. */
  readonly resignIfRefused?: boolean
}

/**
 * `switchover --dry-run`: every check the switchover makes, with its result,
 * and every step it would take; nothing changes.
 */
export const switchoverPlan = (
  s: AgentState,
  to: string,
  drainTimeoutMs: number | null,
): { readonly ok: boolean; readonly message: string; readonly steps: ReadonlyArray<string> } => {
  const checks: Array<[boolean | "note", string]> = []
  const check = (ok: boolean | "note", what: string) => checks.push([ok, what])
  const t = s.config.timings
  const active = isActivePrimary(s)
  check(active, `${s.self} is the ACTIVE primary of term ${s.hard.term}`)
  check(switchoverOf(s) === null, "no other switchover is running")
  check(leaseValid(s), `${s.self} holds a valid lease`)
  const m = memberOf(s.config, to)
  check(m !== undefined, `${to} is a configured member`)
  check(to !== s.self, `${to} is not already the primary`)
  check(m?.kind === "data", `${to} is a data node (not a witness)`)
  check(m?.promotable === true, `${to} is promotable`)
  check(!isExcluded(s.hard.record, to), `${to} is not excluded for maintenance`)
  const v = s.peers.get(to)
  const ago = v === undefined ? null : Math.round(s.now - v.lastHeardAt)
  check(
    ago !== null && ago < aliveWindow(s.config),
    `${to} is reachable (heard ${ago === null ? "never" : `${ago} ms ago`}, window ${aliveWindow(s.config)} ms)`,
  )
  check(v?.healthy === true, `${to} is healthy (mysqld up, health OK or INFO)`)
  check(
    v !== undefined && (!v.errant || s.config.allowErrantPromotion),
    `${to} has no errant transactions`,
  )
  check(
    v !== undefined && v.replicationError === null,
    `${to} replicates without error${v?.replicationError ? ` (${v.replicationError})` : ""}`,
  )
  check(
    v !== undefined && v.source === s.self && v.replicating,
    `${to} replicates from ${s.self} with IO and SQL threads running`,
  )
  check(v?.eligible === true, `${to} reports it could stand for election now`)
  const d = v === undefined ? null : distanceOf(s, v)
  const budget = blockBudgetMs(s)
  check(
    "note",
    d === null
      ? `${to}'s distance from ${s.self} is unknown`
      : `${to} has ${d.relay} received transaction(s) still to apply and ${d.unreceived} of ${s.self}'s not yet received${v?.lagSeconds == null ? "" : ` (lag ${v.lagSeconds} s)`}: the switchover first waits unfenced until ${to} could apply them within the ${budget} ms block budget, at most switchover_timeout (${t.switchoverTimeoutMs} ms), else refuses without blocking writes`,
  )
  let heard = 1
  for (const member of s.config.members) {
    if (member.name === s.self) continue
    const pv = s.peers.get(member.name)
    if (pv !== undefined && s.now - pv.lastHeardAt < aliveWindow(s.config)) heard++
  }
  check(
    heard >= quorum(s.config),
    `a quorum is reachable: ${heard} of ${s.config.members.length} members heard (need ${quorum(s.config)}) to grant ${to} the transfer vote`,
  )
  check(
    "note",
    `anti-flap block${s.hard.record.lastFailoverTerm > 0 && !s.hard.record.recoveryAcked ? ` in force after the failover of term ${s.hard.record.lastFailoverTerm}` : ""}: never blocks a planned switchover`,
  )
  check(
    "note",
    s.hard.record.paused
      ? "the cluster is paused: a planned switchover still runs"
      : "the cluster is not paused",
  )
  const blocker = transferBlocker(s, to)
  const failed = checks.filter(([ok]) => ok === false)
  const ok = blocker === null && failed.length === 0
  let n = 0
  const step = (what: string) => `step ${++n}: ${what}`
  const steps = [
    ...checks.map(([c, what]) => `check ${c === "note" ? "note" : c ? "pass" : "FAIL"}: ${what}`),
    step(
      `converge, unfenced (${s.self} stays writable with the VIP): every heartbeat of ${to} gives its apply rate; wait until its relay backlog over that rate is at most ${budget} ms and it has received all but what that rate covers, within ${t.switchoverTimeoutMs} ms of the request; else refuse and say how far behind it is (no write blocked, nothing to roll back)`,
    ),
    step("run pre_switchover (a non-zero exit refuses, still unfenced)"),
    drainTimeoutMs !== null && drainTimeoutMs > 0
      ? step(`remove the VIP from ${s.self} (the write block starts)`)
      : step(
          `the write block starts: ${s.self} keeps the VIP, fenced, until ${to} has announced itself (make-before-break: clients get read-only errors, not dropped connections)`,
        ),
    ...(drainTimeoutMs !== null && drainTimeoutMs > 0
      ? [
          step(
            `wait up to ${drainTimeoutMs} ms for client sessions on ${s.self} to finish their statements and transactions`,
          ),
        ]
      : []),
    step(`super_read_only=ON on ${s.self}, kill the remaining client sessions`),
    step(
      `wait until ${to} executed everything ${s.self} executed (${s.local.executedText || "(empty)"} and later; asked of ${to}'s mysqld with WAIT_FOR_EXECUTED_GTID_SET, or seen in its heartbeats), within ${t.switchoverTimeoutMs} ms of the end of converging; on timeout roll back (writable again, VIP back)`,
    ),
    step(
      `consent to the transfer: ${to} stands for term ${s.hard.term + 1} and voters grant it inside the lease`,
    ),
    step(
      `${to} promotes without a lease wait (record, reset replica, semi-sync, writable, VIP); ${s.self} becomes its replica`,
    ),
  ]
  const message = ok
    ? `dry run: the switchover to ${to} would proceed; nothing changed`
    : `dry run: the switchover to ${to} would be refused: ${blocker ?? failed[0]?.[1] ?? "a check failed"}; nothing changed`
  return { ok, message, steps }
}

export const requestSwitchover = (
  s: AgentState,
  out: Outputs,
  requestId: number,
  to: string,
  dryRun: boolean,
  options: SwitchoverOptions = {},
): AgentState => {
  const drainTimeoutMs = options.drainTimeoutMs ?? null
  if (dryRun) {
    const plan = switchoverPlan(s, to, drainTimeoutMs)
    out.push({
      _tag: "OperatorReply",
      requestId,
      ok: plan.ok,
      message: plan.message,
      steps: plan.steps,
    })
    return s
  }
  const blocker = transferBlocker(s, to)
  const v = s.peers.get(to)
  if (blocker !== null || v === undefined) {
    operatorReply(out, requestId, false, `switchover refused: ${blocker ?? `${to} is unknown`}`)
    return s
  }
  const drain = drainTimeoutMs !== null && drainTimeoutMs > 0 ? drainTimeoutMs : 0
  // Writes go on meanwhile: the fence waits until the target is close enough.
  const sw: Switchover = {
    phase: "converging",
    requestId,
    to,
    requestedAt: s.now,
    drainTimeoutMs: drain,
    reason: options.reason ?? "operator request",
    resignIfRefused: options.resignIfRefused ?? false,
    deadline: s.now + s.config.timings.switchoverTimeoutMs,
    last: { at: v.lastHeardAt, executed: v.executed },
    rate: null,
  }
  event(out, "info", "switchover", `to ${to} requested`)
  return converge(withSwitchover(s, sw), out)
}

/**
 * Converging (unfenced): fence once the target's estimated apply time of its
 * gap is within the block budget; refuse at the deadline, or at once if the
 * target can no longer take over, without ever having blocked a write.
 */
const converge = (s: AgentState, out: Outputs): AgentState => {
  const sw = switchoverOf(s)
  if (sw === null || sw.phase !== "converging") return s
  const blocker = targetBlocker(s, sw.to)
  const v = s.peers.get(sw.to)
  if (blocker !== null || v === undefined) return refuse(s, out, blocker ?? `${sw.to} is unknown`)
  const { last, rate } = nextSample(s, sw.last, sw.rate, v)
  const d = distanceOf(s, v)
  const close = d === null ? null : closeEnough(s, d, rate, last.at)
  const budget = blockBudgetMs(s)
  const where =
    d === null
      ? `${s.self}'s executed set is unknown (no probe)`
      : `${sw.to} has ${d.relay} received transaction(s) to apply and ${d.unreceived} not yet received, applying ${perSecond(rate)}: about ${close !== null && Number.isFinite(close.estimateMs) ? `${Math.round(close.estimateMs)} ms` : "an unbounded time"} to apply (block budget ${budget} ms)`
  if (close?.ok === true) {
    event(
      out,
      "info",
      "switchover-converged",
      `${where} after ${Math.round(s.now - sw.requestedAt)} ms unfenced; fencing`,
    )
    const [next, id] = runHook(
      s,
      out,
      "pre_switchover",
      { MHA_NEW_PRIMARY: sw.to },
      { _tag: "Switchover" },
    )
    const { last: _l, rate: _r, ...common } = sw
    return withSwitchover(next, {
      ...common,
      phase: "pre-hook",
      waitingFor: id,
      // From here on, today's switchover: hook, fence and catch-up within switchover_timeout.
      deadline: s.now + s.config.timings.switchoverTimeoutMs + sw.drainTimeoutMs,
    })
  }
  if (s.now >= sw.deadline)
    return refuse(
      s,
      out,
      `${sw.to} did not get close enough within switchover_timeout (${s.config.timings.switchoverTimeoutMs} ms): ${where}; writes were never blocked, try again when the load is lower`,
    )
  return last === sw.last && rate === sw.rate ? s : withSwitchover(s, { ...sw, last, rate })
}

/** Before the fence: nothing to undo, the node never stopped taking writes. */
const refuse = (s: AgentState, out: Outputs, why: string): AgentState => {
  const sw = switchoverOf(s)
  if (sw === null) return s
  event(out, "warn", "switchover-refused", `to ${sw.to}: ${why}`)
  if (sw.resignIfRefused) {
    operatorReply(
      out,
      sw.requestId,
      true,
      `switchover to ${sw.to} refused (${why}): fencing and resigning before shutdown`,
    )
    return resign(endSwitchover(s), out, "agent shutting down")
  }
  operatorReply(out, sw.requestId, false, `switchover refused: ${why}`)
  return endSwitchover(s)
}

export const onSwitchoverResult = (
  s: AgentState,
  out: Outputs,
  id: number,
  ok: boolean,
): AgentState => {
  const sw = switchoverOf(s)
  if (sw === null || (sw.phase !== "pre-hook" && sw.phase !== "fencing") || sw.waitingFor !== id)
    return s
  if (sw.phase === "pre-hook") {
    if (!ok) return refuse(s, out, "pre_switchover failed")
    // The write block starts here. Without a drain the VIP stays (make-before-break,
    // vip-handover.ts): clients get read-only errors from the fenced server and retry at once,
    // and the target's gratuitous ARP moves them; this node removes the VIP once the target
    // announced itself. Removed first, a client's packets in between were lost and it waited
    // for TCP's retransmission (200 ms, then 400 ms more) or its connect timeout (issue 13).
    // A drain removes it first: no new sessions while the old ones finish.
    let removing: AgentState
    if (sw.drainTimeoutMs > 0) {
      out.push({ _tag: "Vip", op: "remove" })
      removing = { ...s, local: { ...s.local, vip: { held: s.local.vip.held, pending: "remove" } } }
    } else {
      const t = s.config.timings
      removing = beginVipHandover(s, out, t.switchoverTimeoutMs + t.leaseDurationMs)
    }
    if (sw.drainTimeoutMs > 0) {
      // --drain-timeout: clients finish what they are doing before the fence kills the rest.
      ;[removing] = issueMysql(
        removing,
        out,
        { _tag: "DrainSessions", timeoutMs: sw.drainTimeoutMs },
        { _tag: "DrainSessions" },
      )
    }
    const [fenced, fenceId] = issueMysql(
      removing,
      out,
      { _tag: "Fence", until: "abort" },
      { _tag: "Switchover" },
    )
    const [next] = issueMysql(
      fenced,
      out,
      { _tag: "KillSessions" },
      { _tag: "SwitchoverKillSessions" },
    )
    return withSwitchover(next, { ...sw, phase: "fencing", waitingFor: fenceId })
  }
  if (!ok) return rollback(s, out, "could not set super_read_only")
  // The target is what this node executed once fenced: read by a probe that finds it fenced
  // (onSwitchoverProbe), whichever answers first.
  const { waitingFor: _w, ...common } = sw
  return {
    ...withSwitchover(probeLocal(s, out), {
      ...common,
      phase: "catch-up",
      target: null,
      asked: null,
    }),
    nextProbeAt: s.now,
  }
}

/**
 * After the fence: the first fresh probe fixes the target set, and the
 * target's mysqld is asked to answer once it has executed it. Its heartbeat
 * alone would tell only after its next probe and heartbeat (up to a probe
 * plus a heartbeat interval later, issue 13), and the writes are blocked
 * meanwhile. The heartbeat still counts too (switchoverTimers): a target
 * whose mysqld this node cannot reach over the network is not held up.
 */
export const onSwitchoverProbe = (s: AgentState, out: Outputs): AgentState => {
  const sw = switchoverOf(s)
  const p = s.local.probe
  if (sw === null || sw.phase !== "catch-up" || p === null || !p.superReadOnly) return s
  // A target of an older release stands on the data it last probed: the transfer waits for
  // its heartbeat to show the set (switchoverTimers), or its voters refuse it (rolling
  // upgrades, protocol 1.2). Its mysqld is not asked.
  if (s.peers.get(sw.to)?.standsOnOwnProbe !== true)
    return sw.target === null ? withSwitchover(s, { ...sw, target: p.executed }) : s
  // Already asked for this set (the server is fenced: a later probe finds the same).
  if (sw.asked !== null && sw.target !== null && isSubset(p.executed, sw.target)) return s
  const [next, asked] = issueMysql(
    s,
    out,
    {
      _tag: "WaitForExecutedAt",
      target: sw.to,
      gtids: p.executed,
      timeoutMs: Math.max(0, sw.deadline - s.now),
    },
    { _tag: "SwitchoverCatchUp" },
  )
  return withSwitchover(next, { ...sw, target: p.executed, asked })
}

/** The wait on the target's mysqld ended: it has executed the target set, or it timed out or failed. */
export const onSwitchoverCaughtUp = (
  s: AgentState,
  out: Outputs,
  id: number,
  ok: boolean,
  error: string | null,
): AgentState => {
  const sw = switchoverOf(s)
  if (sw === null || sw.phase !== "catch-up" || sw.asked !== id || sw.target === null) return s
  if (!ok) {
    // It proves nothing: the heartbeats and the deadline decide (switchoverTimers).
    event(
      out,
      "warn",
      "mysql-action-failed",
      `switchover-catch-up: waiting on ${sw.to}'s mysqld: ${error ?? "error"}; waiting for its heartbeats instead`,
    )
    return s
  }
  if (s.role._tag !== "Leader") return s
  return transfer(s, out, sw, sw.target)
}

/**
 * Consent to the transfer: `to` has executed `target`, everything this node
 * executed before it was fenced. Nothing is rolled back after this.
 */
const transfer = (s: AgentState, out: Outputs, sw: Switchover, target: GtidSet): AgentState => {
  broadcast(s, out, {
    _tag: "TransferLeadership",
    from: s.self,
    term: s.hard.term,
    to: sw.to,
    reason: sw.reason,
    sinceRequestMs: Math.max(0, Math.round(s.now - sw.requestedAt)),
  })
  event(out, "info", "transfer", `${sw.to} executed ${formatGtidSet(target)}`)
  operatorReply(out, sw.requestId, true, `leadership transferred to ${sw.to}`)
  const { requestId, to, requestedAt, drainTimeoutMs, reason, resignIfRefused } = sw
  // Voters will grant the target a vote inside our lease: give the lease up now (I1).
  return asLeader(revokeActions(s, catchUpWait), (r) => ({
    lease: { ...r.lease, validUntil: 0, fencedAt: s.now },
    switchover: {
      requestId,
      to,
      requestedAt,
      drainTimeoutMs,
      reason,
      resignIfRefused,
      target,
      phase: "transferring",
      deadline: s.now + s.config.timings.switchoverTimeoutMs,
    },
  }))
}

/** The wait on the target's mysqld, once the heartbeat told first: not needed any more. */
const catchUpWait: ReadonlySet<ActionPurpose["_tag"]> = new Set(["SwitchoverCatchUp"])

const rollback = (s: AgentState, out: Outputs, why: string): AgentState => {
  const sw = switchoverOf(s)
  if (sw === null) return s
  event(out, "warn", "switchover-rollback", why)
  if (sw.resignIfRefused) {
    operatorReply(
      out,
      sw.requestId,
      true,
      `switchover to ${sw.to} rolled back (${why}): resigning before shutdown`,
    )
    return resign(endSwitchover(s), out, "agent shutting down")
  }
  operatorReply(out, sw.requestId, false, `switchover rolled back: ${why}`)
  // mayBeWritable() holds again once `switchover` is cleared: the guard unfences and takes the VIP.
  return endSwitchover(s)
}

export const switchoverTimers = (s: AgentState, out: Outputs): AgentState => {
  const sw = switchoverOf(s)
  if (sw === null) return s
  if (s.role._tag !== "Leader") {
    // Transferring: answered already; the target took over (or the replicas elected).
    if (sw.phase !== "transferring")
      operatorReply(
        out,
        sw.requestId,
        false,
        `switchover aborted: ${s.self} is no longer the primary`,
      )
    return endSwitchover(s)
  }
  if (sw.phase === "converging") return converge(s, out)
  if (sw.phase === "transferring") {
    if (s.now >= sw.deadline) {
      operatorReply(out, sw.requestId, false, `switchover failed: ${sw.to} did not take over`)
      return resign(s, out, `switchover to ${sw.to} did not complete`)
    }
    return s
  }
  if (sw.phase === "catch-up" && sw.target !== null) {
    const v = s.peers.get(sw.to)
    if (v !== undefined && isSubset(sw.target, v.executed)) return transfer(s, out, sw, sw.target)
  }
  if (s.now < sw.deadline) return s
  if (sw.phase === "pre-hook") return refuse(s, out, "pre_switchover did not finish in time")
  return rollback(
    s,
    out,
    sw.phase === "catch-up"
      ? `${sw.to} did not catch up within switchover_timeout after the fence`
      : "the fence did not finish within switchover_timeout",
  )
}
