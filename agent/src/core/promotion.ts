/**
 * The promotion plan of the winner of term T (section 9). Each step waits for
 * the completion of its action; any failure that could lose data aborts and
 * resigns rather than promote.
 *
 * One deliberate reordering against protocol.md: the record naming this node
 * primary (with its server_uuid appended to the lineage) is committed by a
 * quorum BEFORE the node becomes writable, not after. Otherwise a write taken
 * by this primary could be invisible to the completeness check of the next
 * election (which only looks at lineage uuids).
 */
import { type HistoryRecord, MAX_HISTORY } from "../../../shared/peer-messages.ts"
import { highestRecord, nextRecord } from "./cluster-record.ts"
import { strictAckCount } from "./config.ts"
import { noteFailure } from "./failure-detected.ts"
import { formatGtidSet } from "./gtid.ts"
import { inLease, leaseValid } from "./lease.ts"
import { answeredSince, nextProbe, probeLocal } from "./local-probes.ts"
import { broadcast, event, issueMysql, type Outputs, persist, runHook } from "./outputs.ts"
import { propose } from "./record-replication.ts"
import { resign } from "./resignation.ts"
import { asLeader, promotionOf } from "./roles.ts"
import type { AgentState, Election, MysqlAction, Promotion, PromotionStep } from "./types.ts"

const order: ReadonlyArray<PromotionStep> = [
  "fence-old-primary",
  "fence-command",
  "pre-failover",
  "apply-relay-log",
  "read-gtids",
  "commit-record",
  "await-lease",
  "reset-replica",
  "semi-sync",
  "make-writable",
  "done",
]

const stepTimeout = (s: AgentState, step: PromotionStep): number => {
  const t = s.config.timings
  switch (step) {
    case "apply-relay-log":
      return t.applyTimeoutMs + t.rpcTimeoutMs
    case "commit-record":
    case "await-lease":
      return t.leaseDurationMs
    case "pre-failover":
      // The hook runner kills the hook at hooks.timeout; this only backs that up.
      return (s.config.hookTimeoutMs ?? 30_000) + 2 * t.rpcTimeoutMs
    default:
      return t.rpcTimeoutMs * 3
  }
}

export const beginPromotion = (s: AgentState, out: Outputs, e: Election): AgentState => {
  // Step 1: adopt the highest record of the quorum, so no committed change is lost.
  const record = highestRecord(e.records, s.hard.record)
  const oldPrimary = record.primary !== s.self ? record.primary : null
  let next: AgentState = {
    ...s,
    hard: { ...s.hard, record },
    nextHeartbeatAt: s.now, // start the lease rounds at once
    promise: null,
    resignedTerm: 0,
  }
  persist(next, out)
  const promotion: Promotion = {
    term: e.term,
    kind: e.kind,
    step: "fence-old-primary",
    oldPrimary,
    waitingFor: null,
    freshFrom: null,
    stepDeadline: s.now,
    startedAt: s.now,
    triggeredAt: e.triggeredAt,
    reason: e.reason,
  }
  next = asLeader(next, () => ({ promotion }))
  // Once per failure: usually this node saw it already as a replica (hook-events.ts).
  if ((e.kind === "election" || e.kind === "forced") && oldPrimary !== null) {
    next = noteFailure(next, out, oldPrimary, `${s.self} won term ${e.term} (${e.kind})`)
  }
  return enterStep(next, out, "fence-old-primary")
}

/**
 * The remote fence need not hold the promotion back: an election (not forced,
 * not a transfer) that the lease wait preceded, no vote promise left here, and
 * this node's last probe of the old primary's mysqld found it unreachable.
 * A reachable old primary is fenced first (that is fast), since only the
 * fence then makes it read-only.
 */
const fenceNeedNotBlock = (s: AgentState, kind: Election["kind"], oldPrimary: string): boolean => {
  if (kind !== "election" || inLease(s)) return false
  const probe = s.primaryProbe
  return (
    probe !== null &&
    probe.target === oldPrimary &&
    !probe.reachable &&
    s.now - probe.at <= s.config.timings.leaseDurationMs
  )
}

const withPromotion = (s: AgentState, change: Partial<Promotion>): AgentState =>
  asLeader(s, (r) => (r.promotion === null ? {} : { promotion: { ...r.promotion, ...change } }))

const act = (s: AgentState, out: Outputs, action: MysqlAction): AgentState => {
  const [next, id] = issueMysql(s, out, action, {
    _tag: "Promotion",
    term: promotionOf(s)?.term ?? s.hard.term,
  })
  return withPromotion(next, { waitingFor: id })
}

const enterStep = (s: AgentState, out: Outputs, step: PromotionStep): AgentState => {
  let next = withPromotion(s, {
    step,
    waitingFor: null,
    freshFrom: null,
    stepDeadline: s.now + stepTimeout(s, step),
  })
  const p = promotionOf(next)
  if (p === null) return next
  const probe = next.local.probe
  switch (step) {
    case "fence-old-primary": {
      if (p.oldPrimary === null) return enterStep(next, out, "fence-command")
      if (!fenceNeedNotBlock(next, p.kind, p.oldPrimary))
        return act(next, out, { _tag: "FenceRemote", target: p.oldPrimary })
      // Section 9 step 2: "if it does not answer, the lease wait already passed". Waiting for
      // the connect timeout against a host that does not answer only adds downtime (issue 13):
      // the fence is started in the background (the step's later outputs do not wait for it;
      // its late result is ignored, not being the step's waitingFor) and the promotion moves
      // on to the revoke at once.
      const [fencing] = issueMysql(
        next,
        out,
        { _tag: "FenceRemote", target: p.oldPrimary, background: true },
        { _tag: "Promotion", term: p.term },
      )
      event(
        out,
        "info",
        "fence-not-awaited",
        `${p.oldPrimary}'s mysqld was unreachable from here and no lease is left (term ${p.term} won by election): not waiting for the remote fence`,
      )
      return enterStep(fencing, out, "fence-command")
    }
    case "fence-command": {
      // Step 3, revoke, happened at the vote: each voter froze (stopped its IO thread) before
      // granting; under strict semi-sync the replicas outside the quorum are fewer than the
      // acknowledgements a commit waits for, so the old primary gets no commit acknowledged.
      if (next.config.fenceCommand === null || p.oldPrimary === null) {
        return enterStep(next, out, "pre-failover")
      }
      const [withHook, id] = runHook(
        next,
        out,
        "fence_command",
        { MHA_OLD_PRIMARY: p.oldPrimary },
        { _tag: "Promotion", term: p.term },
      )
      return withPromotion(withHook, { waitingFor: id })
    }
    case "pre-failover": {
      // Before anything that cannot be taken back (the record naming this node, writability):
      // a non-zero exit or a timeout aborts, and the record keeps the old primary.
      if (p.kind !== "election" && p.kind !== "forced")
        return enterStep(next, out, "apply-relay-log")
      const [withHook, id] = runHook(
        next,
        out,
        "pre_failover",
        {
          MHA_OLD_PRIMARY: p.oldPrimary ?? "",
          MHA_NEW_PRIMARY: next.self,
          MHA_REASON: `${next.self} won term ${p.term} (${p.kind})`,
        },
        { _tag: "Promotion", term: p.term },
      )
      return withPromotion(withHook, { waitingFor: id })
    }
    case "apply-relay-log":
      if (probe === null || probe.replica === null) return enterStep(next, out, "read-gtids")
      return act(next, out, {
        _tag: "WaitForRelayLog",
        timeoutMs: next.config.timings.applyTimeoutMs,
      })
    case "read-gtids":
      // The record's `base` must be gtid_executed as it is now, not as the last periodic probe
      // (or one still out) saw it.
      return probeLocal(withPromotion(next, { freshFrom: nextProbe(next) }), out)
    case "commit-record": {
      const uuid = probe?.serverUuid
      const r = next.hard.record
      next = propose(
        next,
        out,
        nextRecord(r, p.term, {
          primary: next.self,
          primaryUuid: uuid ?? null,
          // The relay log is applied: what this node received is what it executed.
          base: formatGtidSet(next.local.received),
          lineage:
            uuid === undefined || r.lineage.includes(uuid) ? r.lineage : [...r.lineage, uuid],
          // The failover itself (the anti-flap block) is recorded only once this node is
          // writable (recordHistory): a promotion that aborts before is no failover (section 10).
        }),
      )
      return next.proposal === null ? enterStep(next, out, "await-lease") : next
    }
    case "await-lease":
      return leaseValid(next) ? enterStep(next, out, "reset-replica") : next
    case "reset-replica":
      if (probe === null || probe.replica === null) return enterStep(next, out, "semi-sync")
      return act(next, out, { _tag: "ResetReplicaAll" })
    case "semi-sync":
      return act(next, out, {
        _tag: "SetSemiSync",
        source: next.config.semiSync !== "off",
        replica: false,
        waitForReplicaCount: next.config.semiSync === "strict" ? strictAckCount(next.config) : 1,
      })
    case "make-writable":
      return act(next, out, { _tag: "MakeWritable" })
    case "done":
      return finish(next, out, p)
    default:
      return absurd(step)
  }
}

const finish = (before: AgentState, out: Outputs, p: Promotion): AgentState => {
  out.push({ _tag: "Vip", op: "add" })
  // The role reads ACTIVE (status.ts nodeRole: /primary, status, hooks) once a probe sees this
  // node writable: probe now, not up to an interval later (issue 13: HAProxy kept writes out
  // for ~380 ms after the promotion, waiting for the next periodic probe).
  const s = probeLocal(before, out)
  const vip = { held: s.local.vip.held, pending: "add" as const }
  const executed = s.local.executedText
  broadcast(s, out, { _tag: "LeaderAnnounce", from: s.self, term: p.term, executed })
  event(
    out,
    "info",
    { event: "promoted", kind: p.kind, term: p.term },
    `${s.self} is ACTIVE for term ${p.term} (${p.kind})`,
  )
  // Bootstrap and reclaim have no post hook of their own: on_role_change (hook-events.ts) tells.
  const hook =
    p.kind === "transfer"
      ? "post_switchover"
      : p.kind === "election" || p.kind === "forced"
        ? "post_failover"
        : null
  const [next] =
    hook === null
      ? [s]
      : runHook(
          s,
          out,
          hook,
          {
            MHA_NEW_PRIMARY: s.self,
            MHA_OLD_PRIMARY: p.oldPrimary ?? "",
            MHA_REASON: `${s.self} is ACTIVE for term ${p.term} (${p.kind})`,
          },
          { _tag: "Hook" },
        )
  return recordActive(
    asLeader({ ...next, local: { ...next.local, vip } }, () => ({ leaderActive: true })),
    out,
    p,
  )
}

/**
 * Once this node is ACTIVE (section 9 step 8), the cluster record says so:
 * `lastActive` (the last primary of section 10) and, for a failover or a
 * switchover, the `history` entry, committed by a quorum like any change.
 * A failover that moved the role here from another node also starts the
 * anti-flap block (section 10). Neither a promotion that aborted before its
 * node became writable (it never gets here) nor the last primary taking the
 * role back (the role did not move) counts as a failover.
 */
const recordActive = (s: AgentState, out: Outputs, p: Promotion): AgentState => {
  const kind: HistoryRecord["kind"] | null =
    p.kind === "transfer"
      ? "switchover"
      : p.kind === "election" || p.kind === "forced"
        ? "failover"
        : null
  const r = s.hard.record
  if (kind === null && r.lastActive === s.self) return s
  // Records from before `lastActive` existed: the role moved if the record named another primary.
  const moved =
    kind === "failover" && (r.lastActive === null ? p.oldPrimary !== null : r.lastActive !== s.self)
  const history: ReadonlyArray<HistoryRecord> =
    kind === null
      ? r.history
      : [
          ...r.history,
          {
            kind,
            term: p.term,
            atMs: Math.round(s.now + s.wallClockOffset),
            reason: p.reason.slice(0, 500),
            oldPrimary: p.oldPrimary,
            newPrimary: s.self,
            durationMs: Math.max(0, Math.round(s.now - p.triggeredAt)),
          },
        ].slice(-MAX_HISTORY)
  return propose(
    s,
    out,
    nextRecord(r, p.term, {
      lastActive: s.self,
      history,
      ...(moved ? { lastFailoverTerm: p.term, recoveryAcked: false } : {}),
    }),
  )
}

const next = (s: AgentState, out: Outputs): AgentState => {
  const p = promotionOf(s)
  if (p === null) return s
  const i = order.indexOf(p.step)
  const following = order[i + 1]
  return following === undefined ? s : enterStep(s, out, following)
}

export const abortPromotion = (s: AgentState, out: Outputs, why: string): AgentState => {
  event(
    out,
    "error",
    {
      event: "promotion-aborted",
      kind: promotionOf(s)?.kind ?? null,
      term: promotionOf(s)?.term ?? s.hard.term,
    },
    why,
  )
  const [withHook] = runHook(
    s,
    out,
    "post_unsuccessful_failover",
    {
      MHA_REASON: why,
      MHA_OLD_PRIMARY: promotionOf(s)?.oldPrimary ?? "",
      MHA_NEW_PRIMARY: s.self,
    },
    { _tag: "Hook" },
  )
  return resign(withHook, out, `promotion aborted: ${why}`)
}

/**
 * The pre_failover hook said no (or did not answer in time): abort, resign the
 * term (fenced, never writable), and do not stand again until a primary is
 * ACTIVE, the operator runs ack-recovery or a forced failover, or a
 * recovery block period has passed, so that another node can win.
 */
const refusedByPreFailover = (
  s: AgentState,
  out: Outputs,
  term: number,
  why: string,
): AgentState => {
  const aborted = abortPromotion(s, out, why)
  return {
    ...aborted,
    preFailoverRefused: {
      term,
      // As long as the anti-flap block, and never less than 15 leases (a minute by default).
      until:
        s.now +
        Math.max(s.config.timings.recoveryBlockPeriodMs, 15 * s.config.timings.leaseDurationMs),
      reason: `${why} (term ${term})`,
    },
  }
}

/** A completion of the current step's action or hook. */
export const onPromotionResult = (
  s: AgentState,
  out: Outputs,
  id: number,
  ok: boolean,
  error: string | null,
): AgentState => {
  const p = promotionOf(s)
  if (p === null || p.waitingFor !== id) return s
  switch (p.step) {
    case "fence-old-primary":
      // If it does not answer, the lease wait already passed (or it resigned): go on.
      if (!ok)
        event(out, "warn", "old-primary-unreachable", `${p.oldPrimary}: ${error ?? "no answer"}`)
      return next(s, out)
    case "fence-command":
      if (!ok && s.config.fenceCommand?.required) {
        return abortPromotion(s, out, `fence_command failed for ${p.oldPrimary}`)
      }
      return next(s, out)
    case "pre-failover":
      if (!ok)
        return refusedByPreFailover(s, out, p.term, `pre_failover hook: ${error ?? "failed"}`)
      return next(s, out)
    case "apply-relay-log":
      if (!ok) return abortPromotion(s, out, `relay log not applied in time: ${error ?? "timeout"}`)
      return next(s, out)
    default:
      if (!ok) return abortPromotion(s, out, `${p.step} failed: ${error ?? "error"}`)
      return next(s, out)
  }
}

/** A probe after the relay log was applied: the GTID position is final (read-only, IO stopped). */
export const onPromotionProbe = (s: AgentState, out: Outputs): AgentState => {
  const p = promotionOf(s)
  if (p?.step !== "read-gtids" || !s.local.up) return s
  return p.freshFrom !== null && answeredSince(s, p.freshFrom) ? next(s, out) : s
}

/** Steps that wait on state rather than on an action, and step deadlines. */
export const promotionTimers = (s: AgentState, out: Outputs): AgentState => {
  const p = promotionOf(s)
  if (p === null || p.step === "done" || s.role._tag !== "Leader") return s
  if (p.step === "commit-record" && s.proposal === null) return next(s, out)
  if (p.step === "await-lease" && leaseValid(s)) return next(s, out)
  if (s.now >= p.stepDeadline) {
    if (p.step === "pre-failover")
      return refusedByPreFailover(s, out, p.term, "pre_failover hook timed out")
    return abortPromotion(s, out, `step ${p.step} timed out`)
  }
  return s
}

function absurd(value: never): never {
  throw new Error(`unexpected ${String(value)}`)
}
