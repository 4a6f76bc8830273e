/**
 * The decision core: `step(state, input) -> { state, outputs }`, pure, in the
 * manner of etcd-io/raft. Every input is matched exhaustively, so a new kind
 * of input does not compile until it is handled here.
 *
 * After each input the same guards run, so the outputs always converge the
 * world toward what the state allows: timers (probes, heartbeats, lease,
 * elections, promotion, switchover, restarts), then "writable and VIP only
 * if ACTIVE", then "replicas follow the active primary".
 */
import type { PeerMessage } from "../../../shared/peer-messages.ts"
import { guardCatchUp } from "./catch-up.ts"
import { cloneProgress } from "./clone.ts"
import { initialRecord } from "./cluster-record.ts"
import { knownPrimary } from "./cluster-view.ts"
import { watchCommits } from "./commit-stall.ts"
import { onHookDone, onMysqlDone } from "./completions.ts"
import { type ClusterConfig, isDataNode } from "./config.ts"
import { replicationPasswordChanged } from "./credentials.ts"
import { guardPublication } from "./discovery.ts"
import { noDurability, onPersisted, onPersistFailed, ready } from "./durability.ts"
import {
  electionClock,
  electionTimers,
  onPreVoteRequest,
  onPreVoteResponse,
  onVoteProbe,
  onVoteRequest,
  onVoteResponse,
} from "./election.ts"
import { guardWritability, onVipDone, selfFence } from "./fencing.ts"
import {
  forwardTimers,
  idleForwarding,
  onForwardedReply,
  onForwardedRequest,
  onOperatorInput,
  routeReplies,
} from "./forwarding.ts"
import {
  acksRideHeartbeats,
  heartbeatTimer,
  leaderPhaseSlack,
  onHeartbeat,
  onHeartbeatAck,
  roundWithProbe,
} from "./heartbeat.ts"
import { watchLag, watchPrimaryFailure, watchRole } from "./hook-events.ts"
import { lagHeartbeatDue } from "./lag-heartbeat.ts"
import { leaseValid, promiseTo } from "./lease.ts"
import { initialLocal, localProbeDue, onLocalProbed } from "./local-node.ts"
import { noProbes, takeAnswer } from "./local-probes.ts"
import { memberChangeProgress, onRemovedHeartbeat, onRemovedProbed } from "./member-change.ts"
import { fileMembers, isMember, removedTargets, syncMembers, withFileConfig } from "./members.ts"
import { answerCommitted, forcedFailoverTimer } from "./operator.ts"
import { event, type Outputs } from "./outputs.ts"
import { onPrivilegesChecked, privilegeCheckDue, recheckPrivileges } from "./privileges.ts"
import { onPromotionProbe, promotionTimers } from "./promotion.ts"
import { onRecordAck, onRecordAppend, resendProposal } from "./record-replication.ts"
import { guardReplication } from "./replication.ts"
import { heartbeatAfterResign, onResign, resign } from "./resignation.ts"
import { idleRestart, onRestartDone, restartTimers } from "./restart-routine.ts"
import { asLeader, becomeFollower } from "./roles.ts"
import { watchSemiSyncFallback } from "./semi-sync-fallback.ts"
import { failbackTimer, onSwitchoverProbe, switchoverTimers } from "./switchover.ts"
import { adoptTerm } from "./term.ts"
import {
  onTransferLeadership,
  onTransferProbe,
  transferStandingTimer,
} from "./transfer-standing.ts"
import type { AgentState, HardState, Input, MysqldStart, Output } from "./types.ts"
import { vipRefreshTimer } from "./vip-refresh.ts"
import { watchWritesBlocked } from "./writes-blocked.ts"

export interface StepResult {
  readonly state: AgentState
  readonly outputs: ReadonlyArray<Output>
}

export const freshHardState: HardState = { term: 0, votedFor: null, record: initialRecord }

/** The state before `Start`: nothing is known, nothing is done. */
export const initialState = (config: ClusterConfig, self: string): AgentState => ({
  self,
  config,
  started: false,
  bootId: "",
  now: 0,
  hard: freshHardState,
  role: { _tag: "Follower", leader: null, leaderActive: false },
  local: initialLocal,
  primaryProbe: null,
  peers: new Map(),
  round: 0,
  nextHeartbeatAt: 0,
  nextProbeAt: 0,
  promise: null,
  electionDueAt: null,
  proposal: null,
  committed: { term: 0, seq: 0 },
  restart: idleRestart,
  transferConsent: null,
  resignedTerm: 0,
  recoveryBlock: null,
  inFlight: new Map(),
  awaitingProbe: new Map(),
  probes: noProbes,
  durability: noDurability,
  nextId: 1,
  reclaimTried: false,
  failbackSince: null,
  pendingVote: null,
  pendingOperator: [],
  forwarding: idleForwarding,
  wallClockOffset: 0,
  electionArmedAt: null,
  clone: null,
  preFailoverRefused: null,
  failureSeen: null,
  roleSeen: null,
})

export const step = (state: AgentState, input: Input): StepResult => {
  const out: Outputs = []
  if (!state.started && input._tag !== "Start") return { state, outputs: out }
  let s: AgentState = { ...state, now: Math.max(state.now, input.now) }
  let random = 0.5
  switch (input._tag) {
    case "Start":
      // The file's members seed; the record read from disk may list others (members.ts).
      s = onStart(
        initialState({ ...state.config, members: fileMembers(state) }, state.self),
        out,
        input.now,
        input.hard,
        input.bootId,
        input.relayIntact ?? null,
      )
      if (input.wallClock !== undefined) s = { ...s, wallClockOffset: input.wallClock - input.now }
      random = input.random
      break
    case "Tick":
      random = input.random
      break
    case "LocalProbed": {
      // An answer older than one already taken in reads older data, and one to an earlier run
      // of the decision loop names a number of its own: both dropped.
      const taken = input.incarnation === s.bootId ? takeAnswer(s, input.probe) : null
      if (taken === null) break
      s = onSwitchoverProbe(onLocalProbed(taken, out, input.result), out)
      s = watchCommits(s, out)
      s = watchLag(s, out)
      s = watchWritesBlocked(s, out)
      s = watchSemiSyncFallback(s, out)
      s = onVoteProbe(s, out)
      s = onPromotionProbe(s, out)
      s = onTransferProbe(s, out)
      s = heartbeatAfterResign(s)
      break
    }
    case "PrimaryProbed":
      // A removed member this primary probes to learn whether it left (member-change.ts).
      if (removedTargets(s).includes(input.target)) {
        s = onRemovedProbed(s, out, input.target, input.reachable)
        break
      }
      s = {
        ...s,
        primaryProbe: {
          target: input.target,
          reachable: input.reachable,
          fenced: input.superReadOnly === true,
          at: s.now,
        },
      }
      break
    case "PeerReceived":
      if (input.message.from !== input.from) {
        event(
          out,
          "warn",
          "peer-message-dropped",
          `${input.from} sent a message signed as ${input.message.from}`,
        )
        return { state, outputs: out }
      }
      // A member the accepted list leaves out (or one it does not name yet) is not heard;
      // a removed member's heartbeats only tell its primary whether it left (members.ts).
      if (!isMember(s, input.from)) {
        if (input.message._tag === "Heartbeat") s = onRemovedHeartbeat(s, out, input.message)
        break
      }
      s = onPeerMessage(s, out, input.message)
      break
    case "MysqlDone": {
      // Issued before the decision loop restarted: its id may name one of this run's actions.
      if (input.incarnation !== s.bootId) {
        event(out, "info", "stale-completion", `${describeStale(input)} ignored`)
        break
      }
      s = onMysqlDone(s, out, input.id, input.ok, input.error)
      break
    }
    case "VipDone":
      if (!input.ok)
        event(out, "error", "vip-failed", `ip addr ${input.op} failed: ${input.error ?? "error"}`)
      s = onVipDone(s, input.op, input.ok)
      break
    case "PrivilegesChecked":
      s = onPrivilegesChecked(s, out, input.result)
      break
    case "Persisted":
      // Numbers are per run: an earlier run's say nothing of this one's.
      if (input.incarnation === s.bootId) s = onPersisted(s, input.seq)
      break
    case "PersistFailed":
      if (input.incarnation === s.bootId) s = onPersistFailed(s, out, input.seq, input.error)
      break
    case "RestartDone":
      s = onRestartDone(s, out, input.ok)
      if (input.ok) s = recheckPrivileges(s)
      break
    case "HookDone": {
      if (input.incarnation !== s.bootId) {
        event(out, "info", "stale-completion", `${describeStale(input)} ignored`)
        break
      }
      s = onHookDone(s, out, input.id, input.exitCode)
      break
    }
    case "Operator":
      s = onOperatorInput(s, out, input.requestId, input.request)
      break
    case "Reconfigure":
      // A reload is also the operator's way to have grants checked again at once.
      s = recheckPrivileges(withFileConfig(s, input.config))
      event(out, "info", "reconfigured", "reloaded settings apply from now on")
      if (input.changedSecrets?.includes("replication")) s = replicationPasswordChanged(s, out)
      break
    default:
      return absurd(input)
  }
  // Whatever record the input brought counts at once, its member list included.
  s = syncMembers(s)
  s = afterInput(s, out, random)
  s = routeReplies(s, out)
  const [readied, leaving] = ready(s, acksRideHeartbeats(out))
  return { state: readied, outputs: leaving }
}

const describeStale = (
  input: Extract<Input, { _tag: "MysqlDone" } | { _tag: "HookDone" }>,
): string =>
  `${input._tag} of action ${input.id} from an earlier run of the decision loop (${input.incarnation})`

const onStart = (
  s: AgentState,
  out: Outputs,
  now: number,
  hard: HardState | null,
  bootId: string,
  relayIntact: MysqldStart | null,
): AgentState => {
  const record = hard?.record ?? initialRecord
  event(
    out,
    "info",
    "agent-start",
    hard === null
      ? `no hard state yet: a new member (boot ${bootId})`
      : `resuming from term ${hard.term}, record ${record.term}.${record.seq} (boot ${bootId})`,
  )
  const loaded = syncMembers({ ...s, hard: hard ?? freshHardState })
  return {
    ...loaded,
    started: true,
    bootId,
    now,
    nextHeartbeatAt: now,
    nextProbeAt: now,
    // While the agent was down its mysqld may have restarted and dropped relay logs, unless
    // the first probe finds the process an earlier run recorded intact (relay-intact.ts).
    local: {
      ...s.local,
      resyncNeeded: isDataNode(s.config, s.self) && record.primary !== s.self && record.term > 0,
      resyncSince: now + s.config.timings.probeIntervalMs,
      relayIntact: { recorded: relayIntact, atStart: relayIntact },
    },
    // After a crash we cannot know whom we acknowledged: promise a full lease to nobody in particular.
    promise: hard !== null && hard.term > 0 ? promiseTo(s.config, "", hard.term, now) : null,
    recoveryBlock:
      record.lastFailoverTerm > 0 && !record.recoveryAcked
        ? { term: record.lastFailoverTerm, until: now + s.config.timings.recoveryBlockPeriodMs }
        : null,
  }
}

const onPeerMessage = (s: AgentState, out: Outputs, m: PeerMessage): AgentState => {
  switch (m._tag) {
    case "Heartbeat":
      // An acknowledgement riding on it (acksRideHeartbeats) first, as the two messages came.
      return onHeartbeat(
        m.ack === undefined ? s : onHeartbeatAck(s, out, m.from, m.ack.term, m.ack.round),
        out,
        m,
      )
    case "HeartbeatAck":
      return onHeartbeatAck(s, out, m.from, m.term, m.round)
    case "PreVoteRequest":
      return onPreVoteRequest(s, out, m)
    case "PreVoteResponse":
      return onPreVoteResponse(s, out, m.from, m.term, m.granted)
    case "VoteRequest":
      return onVoteRequest(s, out, m)
    case "VoteResponse":
      return onVoteResponse(s, out, m)
    case "Revoke":
      // Sent by agents up to dfc83b6 (a rolling upgrade) and no longer: the voters' freeze is
      // the revoke (promotion.ts, step 3). Its term still counts, like any message's.
      return m.term > s.hard.term ? adoptTerm(s, out, m.term, `revoke from ${m.from}`) : s
    case "LeaderAnnounce": {
      const next = m.term > s.hard.term ? adoptTerm(s, out, m.term, `announce from ${m.from}`) : s
      if (m.term < next.hard.term || next.role._tag === "Leader") return next
      event(out, "info", "new-primary", `${m.from} is ACTIVE for term ${m.term}`)
      return {
        ...becomeFollower(next, { leader: m.from, leaderActive: true }),
        resignedTerm: 0,
        preFailoverRefused: null,
      }
    }
    case "Resign": {
      const next = m.term > s.hard.term ? adoptTerm(s, out, m.term, `resignation of ${m.from}`) : s
      return onResign(next, out, m.from, m.term, m.reason)
    }
    case "TransferLeadership":
      return onTransferLeadership(s, out, m)
    case "RecordAppend":
      return onRecordAppend(s, out, m.from, m.term, m.record)
    case "RecordAck":
      return onRecordAck(s, out, m.from, m.term, m.seq)
    case "OperatorRequest":
      return onForwardedRequest(s, out, m.from, m.requestId, m.request)
    case "OperatorReply":
      return onForwardedReply(s, out, m)
    default:
      return absurd(m)
  }
}

/** Timers and guards, run after every input. */
const afterInput = (state: AgentState, out: Outputs, random: number): AgentState => {
  let s = probesDue(roundWithProbe(state), out)
  s = privilegeCheckDue(s, out)
  s = heartbeatTimer(s, out)
  s = leaseCheck(s, out)
  s = electionTimers(s, out)
  s = onVoteProbe(s, out) // a pending vote times out
  s = electionClock(s, out, random)
  s = guardCatchUp(s, out)
  s = promotionTimers(s, out)
  s = switchoverTimers(s, out)
  s = transferStandingTimer(s, out)
  s = failbackTimer(s, out)
  s = restartTimers(s, out)
  s = resendProposal(s, out)
  s = answerCommitted(s, out)
  s = memberChangeProgress(s, out)
  s = forwardTimers(s, out)
  s = forcedFailoverTimer(s, out)
  s = trackRecoveryBlock(s)
  s = guardWritability(s, out)
  s = guardPublication(s, out)
  s = vipRefreshTimer(s, out)
  s = lagHeartbeatDue(s, out)
  s = guardReplication(s, out)
  s = cloneProgress(s, out)
  s = watchPrimaryFailure(s, out)
  s = watchRole(s, out)
  return s
}

const probesDue = (s: AgentState, out: Outputs): AgentState => {
  if (s.now < s.nextProbeAt) return s
  const next = localProbeDue(s, out)
  const primary = knownPrimary(next)
  if (primary !== null && primary !== s.self && isDataNode(s.config, primary)) {
    out.push({ _tag: "ProbePrimary", target: primary })
  }
  for (const target of removedTargets(next)) out.push({ _tag: "ProbePrimary", target })
  const interval = s.config.timings.probeIntervalMs
  return { ...next, nextProbeAt: s.now + interval + leaderPhaseSlack(next, interval) }
}

/**
 * Section 5: without a valid lease the primary fences itself at once. If no
 * quorum answers for a whole further lease, it resigns so that the replicas
 * need not wait (for example behind a one-way partition).
 */
const leaseCheck = (s: AgentState, out: Outputs): AgentState => {
  if (s.role._tag !== "Leader" || s.hard.record.paused) return s
  const promoted = s.role.promotion?.step === "done"
  const lease = s.role.lease
  if (leaseValid(s)) {
    if (lease.fencedAt !== null) {
      event(out, "info", "lease-regained", `a quorum acknowledged term ${s.hard.term} again`)
      return asLeader(s, (r) => ({ lease: { ...r.lease, fencedAt: null } }))
    }
    return s
  }
  if (!promoted) return s
  if (lease.fencedAt === null) {
    const fenced = selfFence(s, out, `lease expired: no quorum acknowledged term ${s.hard.term}`)
    return asLeader(fenced, (r) => ({ lease: { ...r.lease, fencedAt: s.now } }))
  }
  if (s.now >= lease.fencedAt + s.config.timings.leaseDurationMs) {
    return resign(s, out, "no quorum for a whole lease")
  }
  return s
}

const trackRecoveryBlock = (s: AgentState): AgentState => {
  const r = s.hard.record
  if (r.lastFailoverTerm === 0 || (s.recoveryBlock?.term ?? 0) >= r.lastFailoverTerm) return s
  return {
    ...s,
    recoveryBlock: {
      term: r.lastFailoverTerm,
      until: s.now + s.config.timings.recoveryBlockPeriodMs,
    },
  }
}

function absurd(value: never): never {
  throw new Error(`unexpected input ${JSON.stringify(value)}`)
}
