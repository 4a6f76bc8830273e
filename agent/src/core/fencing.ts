/**
 * Self-fencing (section 5) and the guard that keeps "writable and holding the
 * VIP" equal to "ACTIVE" (sections 9, 10, 11): a node that is writable
 * without the lease of the highest term is fenced at once, whoever made it so.
 */
import { adoptionEnds } from "./adoption.ts"
import { isDataNode, strictAckCount } from "./config.ts"
import { leaseValid } from "./lease.ts"
import { awaitProbe } from "./local-probes.ts"
import { event, isInFlight, issueMysql, type Outputs, runHook } from "./outputs.ts"
import { electionOf, switchoverOf } from "./roles.ts"
import type { AgentState, Switchover, VipOp } from "./types.ts"
import { beginVipHandover, keepVipForHandover } from "./vip-handover.ts"

/**
 * The switchover has started to fence this node (VIP off, super_read_only):
 * from then on it alone fences, rolls back or hands over. Before the fence
 * (converging, pre-hook) the node stays writable with the VIP.
 */
export const switchoverFenced = (sw: Switchover | null): boolean =>
  sw !== null && sw.phase !== "converging" && sw.phase !== "pre-hook"

/** This node may accept writes: the promoted leader of its term, inside its lease. */
export const mayBeWritable = (s: AgentState): boolean =>
  s.role._tag === "Leader" &&
  s.role.promotion?.step === "done" &&
  s.role.lease.fencedAt === null &&
  !switchoverFenced(s.role.switchover) &&
  (leaseValid(s) || s.hard.record.paused)

/** A restarted recorded primary is asking to lead again: leave its mysqld alone meanwhile. */
const reclaiming = (s: AgentState): boolean =>
  electionOf(s)?.kind === "reclaim" ||
  (s.role._tag === "Leader" &&
    s.role.promotion?.kind === "reclaim" &&
    s.role.promotion.step !== "done")

/**
 * Remove the VIP, super_read_only=ON, kill client sessions: in this order,
 * so clients lose the address before they lose the ability to write.
 */
export const selfFence = (
  s: AgentState,
  out: Outputs,
  reason: string,
  keepVip = false,
): AgentState => {
  // keepVip (a resigning primary whose mysqld refuses connections): the VIP stays for a
  // make-before-break handover (vip-handover.ts); the reconcile loop removes it later. A
  // handover already under way (a switchover's old primary, fenced, stepping down when the
  // target's vote request brings the next term) keeps it too.
  const keeping = keepVipForHandover(s)
  const keep = keepVip || keeping.keep
  let next: AgentState
  if (keepVip) next = beginVipHandover(s, out, s.config.timings.leaseDurationMs)
  else if (keep) next = keeping.state
  else {
    out.push({ _tag: "Vip", op: "remove" })
    next = { ...s, local: { ...s.local, vip: { held: s.local.vip.held, pending: "remove" } } }
  }
  if (isDataNode(s.config, s.self)) {
    ;[next] = issueMysql(next, out, { _tag: "Fence", until: "pending" }, { _tag: "Fence" })
    ;[next] = issueMysql(next, out, { _tag: "KillSessions" }, { _tag: "KillSessions" })
  }
  event(out, "warn", "self-fenced", reason)
  ;[next] = runHook(next, out, "on_fence", { MHA_REASON: reason }, { _tag: "Hook" })
  return next
}

/**
 * A fence that did not complete within fence_timeout (section 9): the
 * `super_read_only = ON` pended behind a commit that waits for an
 * acknowledgement and could not be released without giving its client OK
 * (a session the agent may not kill). If the server still answers and is
 * still writable, stop it hard: its connections drop, no client gets OK, and
 * it comes back read-only (my.cnf); whatever it committed alone makes it
 * DIVERGED. Never on a node that may be writable.
 */
export const onFenceFailed = (s: AgentState, out: Outputs, error: string | null): AgentState => {
  const probe = s.local.up ? s.local.probe : null
  if (!isDataNode(s.config, s.self) || mayBeWritable(s) || probe === null) return s
  // Done (late), or stopped already and not probed since: no second kill of a restarting server.
  if ((probe.superReadOnly && probe.readOnly) || s.awaitingProbe.has("KillMysqld")) return s
  const reason = `super_read_only=ON did not complete within fence_timeout (${error ?? "error"}); ${probe.semiSyncWaiters} commit(s) wait for a semi-sync acknowledgement: stopping mysqld hard so that no client gets OK`
  event(out, "error", "fence-escalated", reason)
  out.push({ _tag: "KillMysqld", reason })
  return awaitProbe(s, "KillMysqld")
}

/** Semi-sync is configured, and the probe shows it off as a source (not merely fallen back). */
const semiSyncSourceMissing = (
  s: AgentState,
  probe: { readonly semiSyncSourceEnabled?: boolean; readonly semiSyncSourceOn: boolean },
): boolean =>
  s.config.semiSync !== "off" && !(probe.semiSyncSourceEnabled ?? probe.semiSyncSourceOn)

/** Keeps the local mysqld's writability and the VIP equal to what the role allows. */
export const guardWritability = (s: AgentState, out: Outputs): AgentState => {
  // Section 14: while paused, no fencing and no VIP moves.
  if (!isDataNode(s.config, s.self) || (s.hard.record.paused && s.role._tag !== "Leader")) return s
  let next = s
  const allowed = mayBeWritable(s)
  const probe = s.local.up ? s.local.probe : null
  // Once a switchover has fenced, it alone fences (and may roll back) this node.
  // A clone needs super_read_only OFF to replace the data; read_only stays ON meanwhile.
  const cloning = s.clone?.phase === "cloning"
  const writable =
    probe !== null && (cloning ? !probe.readOnly : !probe.superReadOnly || !probe.readOnly)
  if (
    writable &&
    !allowed &&
    !switchoverFenced(switchoverOf(s)) &&
    !reclaiming(s) &&
    // Section 16: a running source being adopted stays writable (adoption.ts).
    adoptionEnds(s) !== null
  ) {
    if (!isInFlight(next, "Fence")) {
      event(
        out,
        "error",
        "split-brain-guard",
        "mysqld is writable but this node does not hold the lease of the highest term",
      )
      ;[next] = issueMysql(next, out, { _tag: "Fence", until: "pending" }, { _tag: "Fence" })
      ;[next] = issueMysql(next, out, { _tag: "KillSessions" }, { _tag: "KillSessions" })
      ;[next] = runHook(
        next,
        out,
        "on_split_brain",
        { MHA_REASON: "writable without lease" },
        { _tag: "Hook" },
      )
    }
  }
  if (
    probe?.superReadOnly &&
    allowed &&
    !isInFlight(next, "MakeWritable") &&
    // The promotion just made it writable (and turned semi-sync on): this probe predates that.
    !isInFlight(next, "Promotion")
  ) {
    // A lease regained in the same term, or mysqld restarted under a live lease. A restart
    // loses a runtime SET GLOBAL rpl_semi_sync_source_enabled unless my.cnf sets it: writable
    // without it, clients would get OK for commits no replica has. Semi-sync first; writable
    // once a probe shows it on.
    if (semiSyncSourceMissing(next, probe)) {
      if (!isInFlight(next, "SemiSyncSource")) {
        event(
          out,
          "warn",
          "semi-sync-source",
          "rpl_semi_sync_source_enabled is OFF (mysqld restarted; my.cnf does not set it): turning it on before making mysqld writable",
        )
        ;[next] = issueMysql(
          next,
          out,
          {
            _tag: "SetSemiSync",
            source: true,
            replica: false,
            waitForReplicaCount:
              next.config.semiSync === "strict" ? strictAckCount(next.config) : 1,
          },
          { _tag: "SemiSyncSource" },
        )
      }
    } else {
      ;[next] = issueMysql(next, out, { _tag: "MakeWritable" }, { _tag: "MakeWritable" })
    }
  }
  // Section 11: a reconcile loop keeps "VIP present" equal to "I am ACTIVE" (an old primary
  // that can take no write keeps it until the new one has it: vip-handover.ts).
  const handover = keepVipForHandover(next)
  next = handover.state
  const vip = next.local.vip
  if (vip.pending === null) {
    const want = allowed && probe !== null && !probe.superReadOnly
    if (want && vip.held !== true) {
      out.push({ _tag: "Vip", op: "add" })
      next = { ...next, local: { ...next.local, vip: { held: vip.held, pending: "add" } } }
    } else if (!allowed && vip.held !== false && !handover.keep) {
      out.push({ _tag: "Vip", op: "remove" })
      next = { ...next, local: { ...next.local, vip: { held: vip.held, pending: "remove" } } }
    }
  }
  return next
}

/** A VIP operation finished: remember what is really there. */
export const onVipDone = (s: AgentState, op: VipOp, ok: boolean): AgentState => {
  if (op === "quiet") return s
  const held = ok
    ? op !== "remove"
    : s.local.vip.held === true && op === "remove"
      ? true
      : "unknown"
  const pending = s.local.vip.pending === op ? null : s.local.vip.pending
  return { ...s, local: { ...s.local, vip: { held, pending } } }
}
