/**
 * Planned switchover as a leadership transfer (section 13), on the primary.
 *
 * pre_switchover hook -> fence itself (super_read_only, kill sessions, VIP
 * off) -> wait until the target has executed everything this node executed
 * -> consent to the transfer (voters then grant the target a vote while in
 * lease) -> the target promotes without a lease wait.
 * Before the consent leaves, a timeout rolls back (writable again, VIP
 * back). After it, rolling back could make two writable nodes, so a timeout
 * resigns instead and the replicas elect.
 */
import { isExcluded } from "./cluster-record.ts"
import { aliveWindow } from "./cluster-view.ts"
import { memberOf, quorum } from "./config.ts"
import { count, formatGtidSet, isSubset, subtract } from "./gtid.ts"
import { leaseValid } from "./lease.ts"
import { broadcast, event, issueMysql, type Outputs, runHook } from "./outputs.ts"
import { eligibility } from "./ranking.ts"
import { resign } from "./resignation.ts"
import type { AgentState, Switchover } from "./types.ts"

const reply = (out: Outputs, requestId: number, ok: boolean, message: string): void => {
  out.push({ _tag: "OperatorReply", requestId, ok, message })
}

/** Why `to` cannot take over from this primary now; null when it can. */
export const transferBlocker = (s: AgentState, to: string): string | null => {
  if (s.role !== "leader" || s.promotion?.step !== "done")
    return "this node is not the ACTIVE primary"
  if (s.switchover !== null) return "a switchover is already running"
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

/** A replica this close behind counts as caught up: the switchover itself waits for the rest. */
const caughtUpBacklog = 100

/** Request id of switchovers the agent starts itself (failback, shutdown). */
export const internalRequest = -1

/**
 * Optional failback (section 13): when the highest-priority member is
 * healthy, caught up and not ACTIVE for `failback_delay`, hand over to it.
 * Never inside the anti-flap block or while paused.
 */
export const failbackTimer = (s: AgentState, out: Outputs): AgentState => {
  if (!s.config.failback || s.role !== "leader" || s.promotion?.step !== "done") return s
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
  const active = s.role === "leader" && s.promotion?.step === "done"
  check(active, `${s.self} is the ACTIVE primary of term ${s.hard.term}`)
  check(s.switchover === null, "no other switchover is running")
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
  const mine = s.local.probe?.executed ?? null
  const missing = mine === null || v === undefined ? null : count(subtract(mine, v.executed))
  const behind = (missing ?? 0) + (v?.backlog ?? 0)
  check(
    missing !== null && behind <= caughtUpBacklog,
    `${to} is caught up: ${missing === null ? "unknown" : `${missing} of ${s.self}'s transactions not yet executed there, relay backlog ${v?.backlog ?? 0}`} (at most ${caughtUpBacklog}; the rest must apply within the switchover timeout of ${t.switchoverTimeoutMs} ms)`,
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
  const steps = [
    ...checks.map(([c, what]) => `check ${c === "note" ? "note" : c ? "pass" : "FAIL"}: ${what}`),
    `step 1: run pre_switchover (a non-zero exit aborts)`,
    `step 2: remove the VIP from ${s.self}`,
    ...(drainTimeoutMs !== null && drainTimeoutMs > 0
      ? [
          `step 3: wait up to ${drainTimeoutMs} ms for client sessions on ${s.self} to finish their statements and transactions`,
        ]
      : []),
    `step ${drainTimeoutMs ? 4 : 3}: super_read_only=ON on ${s.self}, kill the remaining client sessions (the write block starts)`,
    `step ${drainTimeoutMs ? 5 : 4}: wait until ${to} executed everything ${s.self} executed (${s.local.executedText || "(empty)"} and later), within ${t.switchoverTimeoutMs} ms; on timeout roll back (writable again, VIP back)`,
    `step ${drainTimeoutMs ? 6 : 5}: consent to the transfer: ${to} stands for term ${s.hard.term + 1} and voters grant it inside the lease`,
    `step ${drainTimeoutMs ? 7 : 6}: ${to} promotes without a lease wait (record, reset replica, semi-sync, writable, VIP); ${s.self} becomes its replica`,
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
    reply(out, requestId, false, `switchover refused: ${blocker ?? `${to} is unknown`}`)
    return s
  }
  const drain = drainTimeoutMs !== null && drainTimeoutMs > 0 ? drainTimeoutMs : 0
  const [next, id] = runHook(s, out, "pre_switchover", { MHA_NEW_PRIMARY: to }, "switchover")
  const sw: Switchover = {
    requestId,
    to,
    phase: "pre-hook",
    target: s.local.probe?.executed ?? v.executed,
    targetFixed: false,
    deadline: s.now + s.config.timings.switchoverTimeoutMs + drain,
    waitingFor: id,
    requestedAt: s.now,
    drainTimeoutMs: drain,
    reason: options.reason ?? "operator request",
  }
  event(out, "info", "switchover", `to ${to} requested`)
  return { ...next, switchover: sw }
}

export const onSwitchoverResult = (
  s: AgentState,
  out: Outputs,
  id: number,
  ok: boolean,
): AgentState => {
  const sw = s.switchover
  if (sw === null || sw.waitingFor !== id) return s
  if (sw.phase === "pre-hook") {
    if (!ok) {
      reply(out, sw.requestId, false, "switchover aborted: pre_switchover failed")
      return { ...s, switchover: null }
    }
    // The write block starts here.
    out.push({ _tag: "Vip", op: "remove" })
    let removing: AgentState = {
      ...s,
      local: { ...s.local, vip: { held: s.local.vip.held, pending: "remove" } },
    }
    if (sw.drainTimeoutMs > 0) {
      // --drain-timeout: clients finish what they are doing before the fence kills the rest.
      ;[removing] = issueMysql(
        removing,
        out,
        { _tag: "DrainSessions", timeoutMs: sw.drainTimeoutMs },
        "drain-sessions",
      )
    }
    const [fenced, fenceId] = issueMysql(
      removing,
      out,
      { _tag: "Fence", until: "abort" },
      "switchover",
    )
    const [next] = issueMysql(fenced, out, { _tag: "KillSessions" }, "kill-sessions")
    return { ...next, switchover: { ...sw, phase: "fencing", waitingFor: fenceId } }
  }
  if (sw.phase === "fencing") {
    if (!ok) return rollback(s, out, "could not set super_read_only")
    out.push({ _tag: "ProbeLocal" })
    // The target is what this node executed once fenced: read at the next probe.
    return { ...s, switchover: { ...sw, phase: "catch-up", waitingFor: null }, nextProbeAt: s.now }
  }
  return s
}

/** After the fence: the first fresh probe fixes the target set. */
export const onSwitchoverProbe = (s: AgentState): AgentState => {
  const sw = s.switchover
  const p = s.local.probe
  if (sw === null || sw.phase !== "catch-up" || p === null || !p.superReadOnly) return s
  return { ...s, switchover: { ...sw, target: p.executed, targetFixed: true } }
}

const rollback = (s: AgentState, out: Outputs, why: string): AgentState => {
  const sw = s.switchover
  if (sw === null) return s
  reply(out, sw.requestId, false, `switchover rolled back: ${why}`)
  event(out, "warn", "switchover-rollback", why)
  // mayBeWritable() holds again once `switchover` is cleared: the guard unfences and takes the VIP.
  return { ...s, switchover: null }
}

export const switchoverTimers = (s: AgentState, out: Outputs): AgentState => {
  const sw = s.switchover
  if (sw === null) return s
  if (s.role !== "leader") return { ...s, switchover: null }
  if (sw.phase === "transferring") {
    if (s.now >= sw.deadline) {
      reply(out, sw.requestId, false, `switchover failed: ${sw.to} did not take over`)
      return resign(s, out, `switchover to ${sw.to} did not complete`)
    }
    return s
  }
  if (sw.phase === "catch-up" && sw.targetFixed) {
    const v = s.peers.get(sw.to)
    if (v !== undefined && isSubset(sw.target, v.executed)) {
      broadcast(s, out, {
        _tag: "TransferLeadership",
        from: s.self,
        term: s.hard.term,
        to: sw.to,
        reason: sw.reason,
        sinceRequestMs: Math.max(0, Math.round(s.now - sw.requestedAt)),
      })
      event(out, "info", "transfer", `${sw.to} executed ${formatGtidSet(sw.target)}`)
      reply(out, sw.requestId, true, `leadership transferred to ${sw.to}`)
      // Voters will grant the target a vote inside our lease: give the lease up now (I1).
      return {
        ...s,
        lease: { ...s.lease, validUntil: 0, fencedAt: s.now },
        switchover: {
          ...sw,
          phase: "transferring",
          deadline: s.now + s.config.timings.switchoverTimeoutMs,
        },
      }
    }
  }
  if (s.now >= sw.deadline) return rollback(s, out, `${sw.to} did not catch up in time`)
  return s
}
