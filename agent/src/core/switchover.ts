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
import { aliveWindow } from "./cluster-view.ts"
import { formatGtidSet, isSubset } from "./gtid.ts"
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
  return requestSwitchover({ ...s, failbackSince: null }, out, internalRequest, top.name, false)
}

export const requestSwitchover = (
  s: AgentState,
  out: Outputs,
  requestId: number,
  to: string,
  dryRun: boolean,
): AgentState => {
  const blocker = transferBlocker(s, to)
  const v = s.peers.get(to)
  if (blocker !== null || v === undefined) {
    reply(out, requestId, false, `switchover refused: ${blocker ?? `${to} is unknown`}`)
    return s
  }
  const steps = [
    `check ${to}: eligible, replicating from ${s.self}, backlog ${v.backlog}`,
    "run pre_switchover (non-zero aborts)",
    `super_read_only=ON on ${s.self}, kill sessions, remove the VIP`,
    `wait until ${to} executed ${s.local.executedText || "(empty)"} and later writes (timeout ${s.config.timings.switchoverTimeoutMs} ms, then roll back)`,
    `transfer leadership to ${to} for term ${s.hard.term + 1}; ${s.self} becomes its replica`,
  ]
  if (dryRun) {
    reply(out, requestId, true, `dry run:\n${steps.map((x, i) => `${i + 1}. ${x}`).join("\n")}`)
    return s
  }
  const [next, id] = runHook(s, out, "pre_switchover", { MHA_NEW_PRIMARY: to }, "switchover")
  const sw: Switchover = {
    requestId,
    to,
    phase: "pre-hook",
    target: s.local.probe?.executed ?? v.executed,
    targetFixed: false,
    deadline: s.now + s.config.timings.switchoverTimeoutMs,
    waitingFor: id,
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
    const removing: AgentState = {
      ...s,
      local: { ...s.local, vip: { held: s.local.vip.held, pending: "remove" } },
    }
    const [fenced, fenceId] = issueMysql(removing, out, { _tag: "Fence" }, "switchover")
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
      broadcast(s, out, { _tag: "TransferLeadership", from: s.self, term: s.hard.term, to: sw.to })
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
