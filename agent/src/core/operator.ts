/**
 * Operator requests (operations.md CLI). Cluster-wide settings (pause,
 * exclude, ack-recovery) are record changes made by the primary and answered
 * once committed; other nodes refuse and name the primary, which the daemon
 * forwards to.
 */

import { requestClone } from "./clone.ts"
import { nextRecord } from "./cluster-record.ts"
import { isDataNode, memberOf } from "./config.ts"
import { rejoinReappliesCredentials } from "./credentials.ts"
import { startVote } from "./election.ts"
import { emptyGtidSet, formatGtidSet, isEmpty, subtract, union } from "./gtid.ts"
import { requestMemberChange } from "./member-change.ts"
import { event, issueMysql, type Outputs, operatorReply, send } from "./outputs.ts"
import { privilegeBlocker } from "./privileges.ts"
import { propose } from "./record-replication.ts"
import { resign } from "./resignation.ts"
import {
  activeLeaderOf,
  isActivePrimary,
  leaderActiveOf,
  leaderOf,
  notActivePrimaryWhy,
  roleName,
} from "./roles.ts"
import { readyCandidate, requestSwitchover } from "./switchover.ts"
import type { AgentState, OperatorRequest } from "./types.ts"

const changeRecord = (
  s: AgentState,
  out: Outputs,
  requestId: number,
  change: Parameters<typeof nextRecord>[2],
  what: string,
): AgentState => {
  const notPrimary = notActivePrimaryWhy(s)
  if (notPrimary !== null) {
    operatorReply(out, requestId, false, notPrimary)
    return s
  }
  // A member change not yet committed holds the record (member-change.ts).
  if (s.proposal !== null || (s.memberChange ?? null) !== null) {
    operatorReply(out, requestId, false, "a cluster record change is in progress; retry")
    return s
  }
  const record = nextRecord(s.hard.record, s.hard.term, change)
  event(out, "info", "operator", what)
  const next = propose(s, out, record)
  if (next.proposal === null) {
    operatorReply(out, requestId, true, what)
    return next
  }
  return {
    ...next,
    pendingOperator: [...next.pendingOperator, { requestId, seq: record.seq }],
  }
}

/** Answers operator requests whose record change has committed. */
export const answerCommitted = (s: AgentState, out: Outputs): AgentState => {
  if (s.pendingOperator.length === 0) return s
  const done = s.pendingOperator.filter(
    (p) => s.committed.term === s.hard.term && s.committed.seq >= p.seq,
  )
  for (const p of done)
    operatorReply(out, p.requestId, true, `committed as record ${s.hard.term}.${p.seq}`)
  const lost = s.role._tag !== "Leader"
  if (lost)
    for (const p of s.pendingOperator)
      operatorReply(out, p.requestId, false, "lost leadership; retry")
  return {
    ...s,
    pendingOperator: lost ? [] : s.pendingOperator.filter((p) => !done.includes(p)),
  }
}

export const onOperator = (
  s: AgentState,
  out: Outputs,
  requestId: number,
  request: OperatorRequest,
): AgentState => {
  const r = s.hard.record
  switch (request._tag) {
    case "Pause":
      return changeRecord(s, out, requestId, { paused: true }, "paused: no automatic actions")
    case "Resume":
      return changeRecord(s, out, requestId, { paused: false }, "resumed")
    case "Exclude":
      if (memberOf(s.config, request.node) === undefined) {
        operatorReply(out, requestId, false, `unknown node ${request.node}`)
        return s
      }
      return changeRecord(
        s,
        out,
        requestId,
        {
          excluded: r.excluded.includes(request.node) ? r.excluded : [...r.excluded, request.node],
        },
        `${request.node} excluded from candidacy; its agent no longer repairs its replication`,
      )
    case "Include":
      return changeRecord(
        s,
        out,
        requestId,
        { excluded: r.excluded.filter((n) => n !== request.node) },
        `${request.node} included in candidacy; its agent repairs its replication again`,
      )
    case "AckRecovery":
      if (!isActivePrimary(s)) {
        // No primary to record it: the block itself may be why. Lift it here; the
        // operator runs this on a quorum so that a candidate can collect votes.
        operatorReply(
          out,
          requestId,
          true,
          "anti-flap block lifted on this node only (no primary to record it)",
        )
        return {
          ...s,
          recoveryBlock: s.recoveryBlock === null ? null : { ...s.recoveryBlock, until: s.now },
          // A pre_failover refusal holds this node back the same way.
          preFailoverRefused: null,
        }
      }
      return changeRecord(s, out, requestId, { recoveryAcked: true }, "anti-flap block lifted")
    case "Switchover":
      return requestSwitchover(s, out, requestId, request.to, request.dryRun, {
        drainTimeoutMs: request.drainTimeoutMs,
        reason: "operator request",
      })
    case "Failover": {
      // Run on the node to promote (the daemon forwards `--to`).
      const to = request.to ?? s.self
      if (to !== s.self) {
        // Asked by `to` (issue 17 item 2): a live primary that cannot serve (its disk is full,
        // say) hands the role over: it fences itself and resigns, naming `to`.
        if (isActivePrimary(s) && isDataNode(s.config, to)) {
          event(out, "warn", "forced-failover", `operator forced a failover to ${to}`)
          operatorReply(out, requestId, true, `${s.self} fenced itself and resigned for ${to}`)
          // It does not stand against `to` meanwhile (it would rank best: it has everything).
          const handedOver = { to, until: s.now + 2 * s.config.timings.leaseDurationMs }
          return { ...resign(s, out, `operator forced a failover to ${to}`, to), handedOver }
        }
        operatorReply(out, requestId, false, `run on ${to}`)
        return s
      }
      if (s.role._tag !== "Follower" || !isDataNode(s.config, s.self)) {
        operatorReply(out, requestId, false, `cannot stand: this node is ${roleName(s)}`)
        return s
      }
      // Forcing skips the failure checks, not what the promotion itself needs.
      const lacking = privilegeBlocker(s)
      if (lacking !== null) {
        operatorReply(out, requestId, false, `cannot stand: ${lacking}`)
        return s
      }
      // A live primary holds the lease: ask it to fence itself and resign for this node first;
      // if it does not (unreachable), the forced vote waits out its lease as before.
      // Only a primary heard within a heartbeat or two can hand over; one whose agent is
      // silent (killed, cut off) would only delay the forced election by a lease.
      const leader = activeLeaderOf(s)
      const heard = leader === null ? undefined : s.peers.get(leader)
      const primary =
        leader !== null &&
        leader !== s.self &&
        heard !== undefined &&
        s.now - heard.lastHeardAt <= s.config.timings.rpcTimeoutMs
          ? leader
          : null
      if (primary !== null && s.forcedFailover == null) {
        send(out, primary, {
          _tag: "OperatorRequest",
          from: s.self,
          requestId: forcedFailoverRequestId,
          request: { _tag: "Failover", to: s.self },
        })
        event(
          out,
          "warn",
          "forced-failover",
          `operator forced a failover: asking ${primary} to resign for ${s.self}`,
        )
        operatorReply(
          out,
          requestId,
          true,
          `asked ${primary} to fence itself and resign for ${s.self}; standing for election`,
        )
        return {
          ...s,
          forcedFailover: { from: primary, until: s.now + s.config.timings.leaseDurationMs },
        }
      }
      event(
        out,
        "warn",
        "forced-failover",
        "operator forced an election; voters still check leases and data",
      )
      operatorReply(out, requestId, true, "standing for election")
      return startVote({ ...s, preFailoverRefused: null }, out, "forced")
    }
    case "Rejoin": {
      if (request.node !== null && request.node !== s.self) {
        operatorReply(out, requestId, false, `run on ${request.node}`)
        return s
      }
      if (!s.local.diverged && !request.force) {
        const source = s.local.up ? (s.local.probe?.replica?.source ?? null) : null
        const leader = activeLeaderOf(s)
        operatorReply(
          out,
          requestId,
          true,
          leader === null
            ? "not diverged; it rejoins once a primary is ACTIVE"
            : source === leader
              ? `not diverged; already replicates from ${leader}: its credentials are applied again`
              : `not diverged; rejoining as a replica of ${leader} with auto-position`,
        )
        // Also an old primary that auto_rejoin: false keeps waiting for this command.
        // The credentials too: the password file may have changed (issue 17).
        const reapplied = rejoinReappliesCredentials(s)
        return source === leader && leader !== null
          ? reapplied
          : { ...reapplied, local: { ...reapplied.local, rejoinRequested: true } }
      }
      if (s.local.diverged && !request.force) {
        operatorReply(
          out,
          requestId,
          false,
          `diverged (${formatGtidSet(s.local.errant)}): use --force or clone`,
        )
        return s
      }
      operatorReply(out, requestId, true, "rejoining as a replica despite divergence")
      const forced = rejoinReappliesCredentials(s)
      return {
        ...forced,
        local: { ...forced.local, diverged: false, rejoinForced: true, rejoinRequested: true },
      }
    }
    case "Demote":
      return demote(s, out, requestId, request.node, request.source)
    case "FixErrant": {
      if (!isActivePrimary(s)) {
        operatorReply(out, requestId, false, `not the primary; ask ${leaderOf(s) ?? "the primary"}`)
        return s
      }
      const mine = s.local.probe?.executed ?? emptyGtidSet
      let errant = emptyGtidSet
      const perNode: Array<string> = []
      for (const [name, v] of s.peers) {
        if (!v.errant) continue
        const extra = subtract(v.executed, mine)
        if (isEmpty(extra)) continue
        perNode.push(`${name} holds ${formatGtidSet(extra)} that ${s.self} lacks`)
        errant = union(errant, extra)
      }
      if (isEmpty(errant)) {
        operatorReply(out, requestId, true, "no errant transactions")
        return s
      }
      if (request.dryRun) {
        out.push({
          _tag: "OperatorReply",
          requestId,
          ok: true,
          message: `dry run: would inject empty transactions ${formatGtidSet(errant)} on ${s.self} (the primary); nothing changed`,
          steps: [
            ...perNode,
            `inject one empty transaction per GTID on ${s.self}: ${formatGtidSet(errant)}`,
            "the replicas then hold nothing the primary lacks and rejoin",
          ],
        })
        return s
      }
      const [next] = issueMysql(
        s,
        out,
        { _tag: "InjectEmpty", gtids: errant },
        { _tag: "FixErrant" },
      )
      operatorReply(out, requestId, true, `injecting empty transactions ${formatGtidSet(errant)}`)
      return next
    }
    case "Clone":
      return requestClone(s, out, requestId, request.recipient, request.donor)
    case "MemberAdd":
      return requestMemberChange(s, out, requestId, { _tag: "Add", member: request.member })
    case "MemberRemove":
      return requestMemberChange(s, out, requestId, { _tag: "Remove", node: request.node })
    case "Shutdown": {
      if (s.role._tag !== "Leader") {
        operatorReply(out, requestId, true, "not the primary: nothing to hand over")
        return s
      }
      // Section 14: hand over by switchover if a candidate is ready, else fence and resign.
      const to = s.hard.record.paused ? null : readyCandidate(s)
      if (to !== null)
        return requestSwitchover(s, out, requestId, to, false, {
          reason: `the agent of ${s.self} was stopped`,
          resignIfRefused: true,
        })
      operatorReply(
        out,
        requestId,
        true,
        "no candidate ready: fencing and resigning before shutdown",
      )
      return resign(s, out, "agent shutting down")
    }
    default:
      return absurd(request)
  }
}

/**
 * `demote N --source M`, on N: fence it (super_read_only=ON, client sessions
 * killed) and make it a replica of M with auto-position, like a forced
 * rejoin. Refused unless M is the ACTIVE primary and N is not.
 */
const demote = (
  s: AgentState,
  out: Outputs,
  requestId: number,
  node: string,
  source: string,
): AgentState => {
  const refuse = (why: string): AgentState => {
    operatorReply(out, requestId, false, `demote refused: ${why}`)
    return s
  }
  if (node !== s.self) return refuse(`run on ${node}`)
  if (memberOf(s.config, source) === undefined) return refuse(`unknown node ${source}`)
  if (!isDataNode(s.config, s.self)) return refuse(`${s.self} is a witness: it has no mysqld`)
  if (source === s.self || s.role._tag === "Leader")
    return refuse(`${s.self} is the primary: use switchover --to another node`)
  if (leaderOf(s) !== source || !leaderActiveOf(s))
    return refuse(
      `${source} is not the ACTIVE primary (${s.self} sees ${leaderOf(s) === null ? "no primary" : `${leaderOf(s)}${leaderActiveOf(s) ? "" : " not yet ACTIVE"}`})`,
    )
  const probe = s.local.up ? s.local.probe : null
  if (probe === null) return refuse(`the mysqld of ${s.self} is down`)
  let next: AgentState = {
    ...s,
    local: { ...s.local, diverged: false, rejoinForced: true, rejoinRequested: true },
  }
  ;[next] = issueMysql(next, out, { _tag: "Fence", until: "pending" }, { _tag: "Fence" })
  ;[next] = issueMysql(next, out, { _tag: "KillSessions" }, { _tag: "KillSessions" })
  const already = probe.replica?.source === source
  const what = `${s.self} fenced (super_read_only=ON, client sessions killed); ${already ? `already replicates from ${source}` : `repointing it to ${source} with auto-position`}`
  event(out, "warn", "demoted", what)
  operatorReply(out, requestId, true, what)
  return next
}

function absurd(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`)
}

/** The id of the request to a primary to step down: its reply is nobody's (ignored). */
const forcedFailoverRequestId = 0

/**
 * A forced failover asked the live primary to step down: its transfer makes
 * this node stand, and a new primary ends the wait. Without either in time
 * (the primary's agent is unreachable), stand for a forced election, which
 * waits out the lease.
 */
export const forcedFailoverTimer = (s: AgentState, out: Outputs): AgentState => {
  const f = s.forcedFailover ?? null
  if (f === null) return s
  // A pre-vote of its own meanwhile does not cancel the operator's request; standing or
  // leading, or another primary, does.
  if (
    s.role._tag === "Candidate" ||
    s.role._tag === "Leader" ||
    (activeLeaderOf(s) !== null && activeLeaderOf(s) !== f.from)
  )
    return { ...s, forcedFailover: null }
  if (s.now < f.until) return s
  event(
    out,
    "warn",
    "forced-failover",
    `${f.from} did not resign in time: standing for a forced election`,
  )
  return startVote({ ...s, forcedFailover: null, preFailoverRefused: null }, out, "forced")
}
