/**
 * Elections (sections 6, 7 and 16): when a replica may stand, PreVote, the
 * vote rules, and counting. Winning hands over to the promotion plan.
 */
import type {
  CandidateData,
  ClusterRecord,
  PreVoteRequestMessage,
  VoteKind,
  VoteRequestMessage,
  VoteResponseMessage,
} from "../../../shared/peer-messages.ts"
import { comparedWithCandidate } from "./adoption.ts"
import { isExcluded, lastPrimary, recoveryBlockStops } from "./cluster-record.ts"
import { aliveWindow, knownPrimary, primaryLostByQuorum } from "./cluster-view.ts"
import { commitStallWhy } from "./commit-stall.ts"
import { isDataNode, memberOf, quorum } from "./config.ts"
import { count, emptyGtidSet, formatGtidSet, isEmpty, parseGtidSet, subtract } from "./gtid.ts"
import { inLease } from "./lease.ts"
import { answeredSince, nextProbe, probeLocal } from "./local-probes.ts"
import { isMember, removedSelf, votesWin } from "./members.ts"
import { broadcast, event, issueMysql, type Outputs, persist, send } from "./outputs.ts"
import { privilegeBlocker } from "./privileges.ts"
import { beginPromotion } from "./promotion.ts"
import {
  atLeastAsComplete,
  type Contender,
  eligibility,
  lineageOf,
  ranksBetter,
} from "./ranking.ts"
import { crashLoopWhy } from "./restart-routine.ts"
import {
  becomeCandidate,
  becomeFollower,
  becomeLeader,
  becomePreCandidate,
  electionOf,
  following,
  leaderOf,
  roleName,
  withElection,
} from "./roles.ts"
import { adoptTerm } from "./term.ts"
import type { AgentState, Election } from "./types.ts"

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly why: string }

/** What this node says about its own data when it stands. */
export const candidateData = (s: AgentState): CandidateData => ({
  serverUuid: s.local.probe?.serverUuid ?? "",
  received: formatGtidSet(s.local.received),
  backlog: backlogOf(s),
  errant: formatGtidSet(s.local.errant),
  replicationError: s.local.probe?.replica?.lastError ?? null,
})

export const backlogOf = (s: AgentState): number => {
  const p = s.local.probe
  if (p === null || p.replica === null) return 0
  // The set difference, not a difference of sizes: after relay_log_recovery the
  // retrieved set restarts above the executed one (71-100 against 1-70 is 30, not 0).
  return count(subtract(p.replica.retrieved, p.executed))
}

/** The uuid of the current (or last) primary, for the lineage. */
const primaryUuid = (s: AgentState): string | null => {
  const p = knownPrimary(s)
  if (p === null) return null
  if (p === s.self) return s.local.probe?.serverUuid ?? null
  return s.peers.get(p)?.serverUuid ?? null
}

export const currentLineage = (s: AgentState): ReadonlySet<string> =>
  lineageOf(s.hard.record, primaryUuid(s))

/** Section 16: has any primary ever been committed in this cluster? */
export const seenHealthy = (record: ClusterRecord): boolean => record.term > 0

/**
 * Section 16: in a cluster never bootstrapped, the natural first primary is
 * the configured initial_primary, or the node every other live data node
 * replicates from.
 */
export const bootstrapChoice = (s: AgentState): string | null => {
  if (s.config.initialPrimary !== null) return s.config.initialPrimary
  const window = aliveWindow(s.config)
  const sources = new Set<string>()
  let seen = 0
  for (const m of s.config.members) {
    if (m.kind !== "data") continue
    if (m.name === s.self) {
      const src = s.local.probe?.replica?.source ?? null
      if (src !== null) sources.add(src)
      else sources.add(`self:${m.name}`)
      seen++
      continue
    }
    const v = s.peers.get(m.name)
    if (v === undefined || s.now - v.lastHeardAt >= window || !v.mysqlUp) continue
    seen++
    sources.add(v.source ?? `self:${m.name}`)
  }
  // Exactly one node replicates from nobody, and everyone else replicates from it.
  const roots = [...sources].filter((x) => x.startsWith("self:"))
  const replicatedFrom = [...sources].filter((x) => !x.startsWith("self:"))
  if (seen < quorum(s.config) || roots.length !== 1) return null
  const root = roots[0]!.slice("self:".length)
  return replicatedFrom.every((x) => x === root) && replicatedFrom.length > 0 ? root : null
}

/**
 * Contenders other than the candidate, as this node knows them, for ranking.
 * In an election, not one the anti-flap block stops (section 10): it cannot
 * take the role, so ranking it better would leave the cluster without a
 * primary; the voters' completeness check still guards the data.
 */
const rivals = (
  s: AgentState,
  candidate: string,
  lost: string | null,
  kind: VoteKind,
): Array<Contender> => {
  const result: Array<Contender> = []
  const within = s.config.timings.leaseDurationMs
  const blockUntil = s.recoveryBlock?.until ?? null
  for (const m of s.config.members) {
    if (m.name === candidate || m.name === lost || m.kind !== "data") continue
    if (kind === "election" && recoveryBlockStops(s.hard.record, blockUntil, s.now, m.name))
      continue
    if (m.name === s.self) {
      if (selfEligible(s).ok) {
        result.push({
          name: m.name,
          received: s.local.received,
          backlog: backlogOf(s),
          priority: m.priority,
        })
      }
      continue
    }
    const v = s.peers.get(m.name)
    if (v === undefined || s.now - v.lastHeardAt >= within) continue
    if (!v.healthy || !v.eligible || v.replicationError !== null || v.role === "DIVERGED") continue
    if (v.errant && !s.config.allowErrantPromotion) continue
    if (!m.promotable || isExcluded(s.hard.record, m.name)) continue
    result.push({ name: m.name, received: v.received, backlog: v.backlog, priority: m.priority })
  }
  return result
}

const resyncWhy =
  "mysqld went down since the primary last fed it: relay logs (relay_log_recovery) may have held acknowledged transactions"

export const selfEligible = (s: AgentState): Verdict => {
  const verdict = eligibility(s.config, s.hard.record, s.self, {
    errant: isEmpty(s.local.errant) ? "" : formatGtidSet(s.local.errant),
    replicationError: s.local.probe?.replica?.lastError ?? null,
  })
  if (!verdict.ok) return verdict
  if (!s.local.up || s.local.probe === null) return { ok: false, why: "local mysqld is not up" }
  // It would win, then abort mid-promotion (issue 10 item 3): it votes but never stands.
  const privileges = privilegeBlocker(s)
  if (privileges !== null) return { ok: false, why: privileges }
  if (s.local.diverged) return { ok: false, why: "this node is DIVERGED" }
  // Section 12: a crash-looping node does not take the role back while it keeps crashing.
  const looping = crashLoopWhy(s)
  if (looping !== null) return { ok: false, why: looping }
  if (s.clone?.phase === "cloning")
    return { ok: false, why: "this node is being re-seeded by clone" }
  const handedOver = s.handedOver ?? null
  if (handedOver !== null && s.now < handedOver.until)
    return { ok: false, why: `handed the role to ${handedOver.to} at the operator's request` }
  // Section 12: a node whose server could not commit takes no role back until it commits again.
  const cannotCommit = commitStallWhy(s)
  if (cannotCommit !== null) return { ok: false, why: cannotCommit }
  // Nor does the last primary while its own health is poor (issue 17): INFO is a freshly
  // started agent's level before its first good probes, so an agent restart still reclaims at once.
  const level = s.local.health.level
  if (lastPrimary(s.hard.record) === s.self && level !== "OK" && level !== "INFO") {
    return {
      ok: false,
      why: `health ${level}: the last primary takes the role back only once its health is OK`,
    }
  }
  // A replica that cannot receive (its disk is full) is behind by an unknown amount.
  if (s.local.stall !== null) return { ok: false, why: s.local.stall }
  const refused = s.preFailoverRefused
  if (refused !== null && s.now < refused.until) {
    return {
      ok: false,
      why: `promotion aborted by ${refused.reason}: not standing again until a primary is ACTIVE or ack-recovery`,
    }
  }
  // The recorded primary's data is its own binlog, not relay logs.
  if (s.local.resyncNeeded && s.hard.record.primary !== s.self) return { ok: false, why: resyncWhy }
  return { ok: true }
}

/** Is some other live node better placed to stand? */
const betterRival = (s: AgentState, lost: string | null): string | null => {
  const me: Contender = {
    name: s.self,
    received: s.local.received,
    backlog: backlogOf(s),
    priority: memberOf(s.config, s.self)?.priority ?? 0,
  }
  const lineage = currentLineage(s)
  const window = aliveWindow(s.config)
  for (const r of rivals(s, s.self, lost, "election")) {
    const v = s.peers.get(r.name)
    if (v === undefined || s.now - v.lastHeardAt >= window) continue
    // The recorded primary yields only to more data: replicas that lost relay logs vote for it alone.
    if (ranksBetter(r, me, lineage, s.hard.record.primary === s.self)) return r.name
  }
  return null
}

/**
 * Section 6: may this node start an election now, and of which kind?
 * Returns why not, for the status line, when it may not.
 */
export const electionTrigger = (
  s: AgentState,
):
  | { readonly ok: true; readonly kind: VoteKind }
  | { readonly ok: false; readonly why: string } => {
  if (s.role._tag !== "Follower") return { ok: false, why: `already ${roleName(s)}` }
  if (removedSelf(s)) return { ok: false, why: `${s.self} is not in the member list` }
  const leader = s.role.leader
  const self = selfEligible(s)
  if (!self.ok) return self
  const record = s.hard.record
  const probe = s.local.probe
  if (
    record.primary === s.self &&
    leader === null &&
    !s.reclaimTried &&
    probe !== null &&
    !probe.superReadOnly
  ) {
    return { ok: true, kind: "reclaim" }
  }
  if (record.paused) return { ok: false, why: "cluster paused" }
  if (!seenHealthy(record)) {
    if (leader !== null) return { ok: false, why: `${leader} leads term ${s.hard.term}` }
    const choice = bootstrapChoice(s)
    if (choice === s.self) return { ok: true, kind: "bootstrap" }
    if (!s.config.failoverBeforeHealthy) {
      return {
        ok: false,
        why:
          choice === null
            ? "cluster never seen healthy and no natural first primary (set initial_primary)"
            : `cluster never seen healthy: waiting for ${choice} to bootstrap`,
      }
    }
  }
  const primary = knownPrimary(s)
  const resigned = s.resignedTerm > 0 && s.resignedTerm >= s.hard.term && leaderOf(s) === null
  if (!resigned) {
    if (inLease(s)) return { ok: false, why: `lease promised to ${s.promise?.leader}` }
    // The last primary itself (its agent restarted) knows its own mysqld: it is read-only here.
    if (primary !== null && primary !== s.self) {
      const lost = primaryLostByQuorum(s, primary)
      if (!lost.lost) return { ok: false, why: lost.why }
    }
  }
  if (recoveryBlockStops(record, s.recoveryBlock?.until ?? null, s.now, s.self)) {
    return {
      ok: false,
      why: `anti-flap block after the failover of term ${record.lastFailoverTerm}: only ${lastPrimary(record) ?? "the last primary"} may take the role back; run ack-recovery`,
    }
  }
  const better = betterRival(s, primary)
  if (better !== null) return { ok: false, why: `${better} ranks better` }
  return { ok: true, kind: "election" }
}

// ---------------------------------------------------------------------------
// Standing

const electionDeadline = (s: AgentState): number => s.now + 2 * s.config.timings.rpcTimeoutMs

/** When and why an election started, for the history (section 9 step 8). */
export interface ElectionOrigin {
  readonly triggeredAt: number
  readonly reason: string
}

const originOf = (s: AgentState, kind: VoteKind): ElectionOrigin => {
  const primary = knownPrimary(s)
  const resigned = s.resignedTerm > 0 && s.resignedTerm >= s.hard.term && leaderOf(s) === null
  const reason =
    kind === "election"
      ? resigned
        ? `${primary ?? "the primary"} resigned`
        : `${primary ?? "the primary"}'s mysqld unreachable or fenced, confirmed by a quorum`
      : kind === "forced"
        ? "operator forced a failover"
        : kind === "transfer"
          ? "switchover"
          : kind === "bootstrap"
            ? "bootstrap"
            : "the primary's agent restarted (reclaim)"
  return { triggeredAt: s.electionArmedAt ?? s.now, reason }
}

export const startPreVote = (
  s: AgentState,
  out: Outputs,
  kind: VoteKind,
  origin: ElectionOrigin = originOf(s, kind),
): AgentState => {
  const term = s.hard.term + 1
  const election: Election = {
    kind,
    phase: "pre",
    term,
    granted: new Set([s.self]),
    records: [],
    deadline: electionDeadline(s),
    resentAt: null,
    ...origin,
  }
  event(
    out,
    "info",
    "pre-vote",
    `asking whether peers would elect ${s.self} for term ${term} (${kind})`,
  )
  broadcast(s, out, { _tag: "PreVoteRequest", from: s.self, term, kind, data: candidateData(s) })
  return maybeWinPreVote(becomePreCandidate(s, election), out)
}

export const startVote = (
  s: AgentState,
  out: Outputs,
  kind: VoteKind,
  origin: ElectionOrigin = originOf(s, kind),
): AgentState => {
  const term = s.hard.term + 1
  let next = becomeCandidate(s, {
    kind,
    phase: "vote",
    term,
    granted: new Set([s.self]),
    records: [s.hard.record],
    deadline: electionDeadline(s),
    resentAt: null,
    ...origin,
  })
  persist(next, out)
  if (isDataNode(s.config, s.self) && s.local.probe?.replica?.ioRunning) {
    ;[next] = issueMysql(next, out, { _tag: "StopReplicaIo" }, { _tag: "Revoke", term })
  }
  event(out, "info", "election", `standing for term ${term} (${kind})`)
  broadcast(next, out, { _tag: "VoteRequest", from: s.self, term, kind, data: candidateData(next) })
  return maybeWin(next, out)
}

const maybeWinPreVote = (s: AgentState, out: Outputs): AgentState => {
  const e = electionOf(s)
  if (e === null || e.phase !== "pre" || e.granted.size < quorum(s.config)) return s
  return startVote(s, out, e.kind, { triggeredAt: e.triggeredAt, reason: e.reason })
}

const maybeWin = (s: AgentState, out: Outputs): AgentState => {
  const e = electionOf(s)
  // Counted under the highest record of the candidate's and its voters' (members.ts).
  if (e === null || e.phase !== "vote" || !votesWin(s, e.granted, e.records)) return s
  event(out, "info", "elected", `won term ${e.term} with votes from ${[...e.granted].join(", ")}`)
  return beginPromotion(becomeLeader(s), out, e)
}

/** Election timeouts: give up a stalled round; re-send requests once to the silent. */
export const electionTimers = (s: AgentState, out: Outputs): AgentState => {
  const e = electionOf(s)
  if (e === null) return s
  if (s.now >= e.deadline) {
    event(out, "info", "election-timeout", `no quorum for term ${e.term} (${e.phase})`)
    return { ...becomeFollower(s, following(s)), electionDueAt: null }
  }
  const half = e.deadline - s.config.timings.rpcTimeoutMs
  if (e.resentAt === null && s.now >= half) {
    for (const m of s.config.members) {
      if (m.name === s.self || e.granted.has(m.name)) continue
      const data = candidateData(s)
      send(
        out,
        m.name,
        e.phase === "pre"
          ? { _tag: "PreVoteRequest", from: s.self, term: e.term, kind: e.kind, data }
          : { _tag: "VoteRequest", from: s.self, term: e.term, kind: e.kind, data },
      )
    }
    return withElection(s, { ...e, resentAt: s.now })
  }
  return s
}

// ---------------------------------------------------------------------------
// Voting

/**
 * How far a vote's decision has got with freezing the voter's data:
 * - `pre`: not frozen yet (a PreVote, or the first look at a vote request).
 *   Everything the frozen decision would refuse for reasons already known
 *   is refused here too, so a PreVote never succeeds where the vote fails
 *   (terms would climb at every attempt);
 * - `frozen`: the IO thread is stopped and a probe taken after it;
 * - `unfrozen`: the freeze did not finish in time.
 */
export type VoteStage = "pre" | "frozen" | "unfrozen"

export const freezeTimeoutWhy = "could not stop replication in time"

/**
 * Section 7: a voter that cannot freeze may still vouch for its data when
 * its acknowledgements can no longer release anything. A semi-sync replica
 * acknowledges only to the source its IO thread is connected to, and only
 * after writing the transaction to its relay log (checked on the lab). Once
 * that source, no longer leading, reports its mysqld quiet (refusing
 * connections, or read-only with no commit waiting), no commit there can be
 * released by a later acknowledgement; every acknowledgement that did
 * release one was sent before, for a transaction then already written: a
 * probe taken after the report holds it in its retrieved set, and the
 * candidate must hold that set. So the vote may be decided on that probe.
 */
export const acksSettled = (s: AgentState): boolean => {
  const p = s.local.probe
  const source = p?.replica?.source ?? null
  if (!s.local.up || p === null || source === null || source === s.self) return false
  const since = s.peers.get(source)?.quietSince ?? null
  // Taken (sent) after the report, not merely answered after it.
  const takenAt = s.probes.takenAt
  return since !== null && takenAt !== null && takenAt > since
}

/**
 * Section 7: what keeps this data node from vouching for its data in a vote,
 * null when nothing. A `forced` vote (`failover --force`: the operator
 * accepts that acknowledged writes may be lost) waives the rules that only
 * protect what the voter cannot vouch for: relay logs it may have lost, a
 * freeze that does not complete, and a mysqld that does not answer (it
 * votes with the data it last reported; it still refuses a candidate that
 * lacks any of it).
 */
const vouchRefusal = (
  s: AgentState,
  from: string,
  kind: VoteKind,
  stage: VoteStage,
): string | null => {
  const p = s.local.probe
  const down = !s.local.up || p === null
  // A forced vote vouches with what this node last saw of its data (kept while it is down):
  // a replica wedged by a full disk (its probes hang) is one the operator must be able to pass.
  if (down && kind !== "forced") return "my mysqld is down: I cannot vouch for my data"
  // (A primary stepping down fences itself before its freeze completes: judged frozen only.)
  if (!down && stage !== "pre" && !p.superReadOnly) return "my mysqld is still writable"
  if (kind === "forced") return null
  // Whatever relay logs it lost, the recorded primary has in its binlog: vote only for it.
  if (s.local.resyncNeeded && from !== s.hard.record.primary) return resyncWhy
  // A replica whose IO thread cannot be stopped could still acknowledge to the old
  // primary after voting: a commit the candidate lacks would then get OK (I3).
  if (acksSettled(s)) return null
  if (stage === "unfrozen") return freezeTimeoutWhy
  if (stage === "pre" && p?.replica?.ioRunning === true) {
    if (s.local.freezeStuck) return `${freezeTimeoutWhy} (STOP REPLICA IO_THREAD still pending)`
    if (s.local.stall !== null) return `${freezeTimeoutWhy}: ${s.local.stall}`
  }
  return null
}

/** Section 7: would this node vote for `from` in `term`? (Term rules are checked by the caller.) */
export const decideVote = (
  s: AgentState,
  from: string,
  kind: VoteKind,
  data: CandidateData,
  stage: VoteStage = "pre",
): Verdict => {
  const record = s.hard.record
  // A member removed by the record it accepted votes for nobody; nor is a non-member voted for.
  if (removedSelf(s)) return { ok: false, why: `${s.self} is not in the member list` }
  if (!isMember(s, from)) return { ok: false, why: `${from} is not in the member list` }
  if (isDataNode(s.config, s.self)) {
    // A voter vouches for its data: it must see it, frozen (section 7).
    const why = vouchRefusal(s, from, kind, stage)
    if (why !== null) return { ok: false, why }
  }
  if (kind === "bootstrap") {
    if (seenHealthy(record)) return { ok: false, why: "cluster already bootstrapped" }
    const choice = bootstrapChoice(s)
    if (choice !== from && s.local.probe?.replica?.source !== from) {
      return { ok: false, why: `bootstrap belongs to ${choice ?? "nobody known yet"}` }
    }
  }
  const transferConsented =
    kind === "transfer" &&
    s.transferConsent !== null &&
    s.transferConsent.to === from &&
    s.transferConsent.term + 1 >= s.hard.term
  if (inLease(s) && s.promise?.leader !== from && !transferConsented) {
    return { ok: false, why: `in lease of ${s.promise?.leader} until ${s.promise?.until}` }
  }
  if (kind === "election" && record.paused) return { ok: false, why: "cluster paused" }
  const verdict = eligibility(s.config, record, from, data)
  if (!verdict.ok) return verdict
  if (
    kind === "election" &&
    recoveryBlockStops(record, s.recoveryBlock?.until ?? null, s.now, from)
  ) {
    return {
      ok: false,
      why: `anti-flap block after the failover of term ${record.lastFailoverTerm}: only ${lastPrimary(record) ?? "the last primary"} may take the role back`,
    }
  }
  const parsed = parseGtidSet(data.received)
  const received = parsed._tag === "Ok" ? parsed.set : emptyGtidSet
  const lineage = currentLineage(s)
  const own = comparedWithCandidate(s.local.received, kind, data.serverUuid)
  if (!atLeastAsComplete(received, own, lineage)) {
    return { ok: false, why: `${from} lacks transactions this node has` }
  }
  if (kind === "election" || kind === "forced") {
    const candidate: Contender = {
      name: from,
      received,
      backlog: data.backlog,
      priority: memberOf(s.config, from)?.priority ?? 0,
    }
    for (const r of rivals(s, from, knownPrimary(s), kind)) {
      if (ranksBetter(r, candidate, lineage, record.primary === from)) {
        return { ok: false, why: `${r.name} ranks better` }
      }
    }
  }
  return { ok: true }
}

export const onPreVoteRequest = (
  s: AgentState,
  out: Outputs,
  req: PreVoteRequestMessage,
): AgentState => {
  const verdict: Verdict =
    req.term <= s.hard.term
      ? { ok: false, why: `term ${req.term} is not above ${s.hard.term}` }
      : decideVote(s, req.from, req.kind, req.data)
  if (!verdict.ok)
    event(out, "info", "pre-vote-refused", `${req.from} for term ${req.term}: ${verdict.why}`)
  send(out, req.from, {
    _tag: "PreVoteResponse",
    from: s.self,
    term: verdict.ok ? req.term : Math.max(s.hard.term, req.term - 1),
    granted: verdict.ok,
    reason: verdict.ok ? "ok" : verdict.why,
  })
  return s
}

/**
 * A vote request. The voter's own data must be frozen before it is compared
 * with the candidate's: a replica whose IO thread still runs could receive
 * (and acknowledge) a transaction from the old primary right after judging
 * the candidate complete. So a replica first stops its IO thread (the revoke
 * of section 9 step 3), probes, and only then decides (`onVoteProbe`).
 */
export const onVoteRequest = (s: AgentState, out: Outputs, req: VoteRequestMessage): AgentState => {
  let next = s
  if (req.term > next.hard.term)
    next = adoptTerm(next, out, req.term, `vote request from ${req.from}`)
  let verdict: Verdict
  if (req.term < next.hard.term) verdict = { ok: false, why: `stale term ${req.term}` }
  else if (next.hard.votedFor !== null && next.hard.votedFor !== req.from) {
    verdict = { ok: false, why: `already voted for ${next.hard.votedFor} in term ${req.term}` }
  } else if (next.pendingVote !== null && next.pendingVote.request.from !== req.from) {
    verdict = { ok: false, why: `deciding on ${next.pendingVote.request.from}'s request first` }
  } else verdict = decideVote(next, req.from, req.kind, req.data)
  if (verdict.ok && next.hard.votedFor === null && mustFreeze(next, req.kind)) {
    if (next.pendingVote !== null) return next // the freeze is under way
    let frozen: AgentState = {
      ...next,
      pendingVote: { request: req, stopped: false, since: next.now, freshFrom: 0 },
    }
    ;[frozen] = issueMysql(
      frozen,
      out,
      { _tag: "StopReplicaIo" },
      { _tag: "VoteFreeze", term: req.term },
    )
    return frozen
  }
  return answerVote(next, out, req, verdict)
}

/**
 * A data node votes on a fresh probe taken after its IO thread stopped; but
 * not by a STOP that would hang behind an IO thread waiting for disk space
 * (and block the probes with it) when the freeze is not needed: its
 * acknowledgements are settled, or the operator forced the failover.
 */
const mustFreeze = (s: AgentState, kind: VoteKind): boolean =>
  isDataNode(s.config, s.self) &&
  !(kind === "forced" && (s.local.stall !== null || !s.local.up)) &&
  !(s.local.stall !== null && acksSettled(s))

/** A forced vote that waived a rule says so: the operator accepted the loss. */
const waived = (out: Outputs, req: VoteRequestMessage, what: string): void =>
  event(out, "warn", "forced-vote", `voting for ${req.from} in term ${req.term} though ${what}`)

const answerVote = (
  s: AgentState,
  out: Outputs,
  req: VoteRequestMessage,
  verdict: Verdict,
): AgentState => {
  let next: AgentState = { ...s, pendingVote: null }
  if (
    verdict.ok &&
    req.kind === "forced" &&
    s.local.resyncNeeded &&
    req.from !== s.hard.record.primary
  )
    waived(out, req, "my relay logs may have held acknowledged transactions")
  if (verdict.ok && req.kind === "forced" && !s.local.up)
    waived(out, req, "my mysqld does not answer: I vote with the data it last reported")
  else if (verdict.ok && req.kind === "forced" && s.local.stall !== null && !acksSettled(s))
    waived(
      out,
      req,
      `my IO thread is not frozen (${s.local.stall}): an acknowledgement it sends the old primary once it writes again may be lost`,
    )
  if (verdict.ok) {
    const firstGrant = next.hard.votedFor === null
    next = {
      ...next,
      hard: { ...next.hard, votedFor: req.from },
      electionDueAt: null,
    }
    if (firstGrant) persist(next, out)
  }
  const response: VoteResponseMessage = {
    _tag: "VoteResponse",
    from: next.self,
    term: next.hard.term,
    granted: verdict.ok,
    reason: verdict.ok ? "ok" : verdict.why,
    record: next.hard.record,
  }
  send(out, req.from, response)
  if (!verdict.ok)
    event(out, "info", "vote-refused", `${req.from} for term ${req.term}: ${verdict.why}`)
  return next
}

/** The IO thread is stopped: probe, so the decision sees the frozen data. */
export const onVoteFrozen = (s: AgentState, out: Outputs): AgentState => {
  // A STOP that outlived its vote has ended: the next vote may try to freeze again.
  if (s.pendingVote === null) return { ...s, local: { ...s.local, freezeStuck: false } }
  const pendingVote = { ...s.pendingVote, stopped: true, freshFrom: nextProbe(s) }
  return probeLocal({ ...s, pendingVote }, out)
}

/** A probe after the freeze (or a timeout): decide the pending vote on fresh data. */
export const onVoteProbe = (s: AgentState, out: Outputs): AgentState => {
  const p = s.pendingVote
  if (p === null) return s
  const req = p.request
  if (req.term !== s.hard.term) return { ...s, pendingVote: null }
  const timedOut = s.now - p.since > s.config.timings.rpcTimeoutMs
  if (!p.stopped && !timedOut) return s
  if (timedOut && !p.stopped) {
    // Until the STOP ends, PreVotes are refused for the same reason (no climbing terms).
    const stuck: AgentState = { ...s, local: { ...s.local, freezeStuck: true } }
    const verdict = decideVote(stuck, req.from, req.kind, req.data, "unfrozen")
    if (verdict.ok)
      waived(
        out,
        req,
        "my IO thread could not be stopped: acknowledgements it sends the old primary after this vote may be lost",
      )
    return answerVote(stuck, out, req, verdict)
  }
  // Not an answer to a probe sent before the STOP ended: it read the data still growing.
  const fresh =
    answeredSince(s, p.freshFrom) && (s.local.probe?.replica?.ioRunning !== true || !s.local.up)
  if (!fresh) return s
  return answerVote(s, out, req, decideVote(s, req.from, req.kind, req.data, "frozen"))
}

export const onPreVoteResponse = (
  s: AgentState,
  out: Outputs,
  from: string,
  term: number,
  granted: boolean,
): AgentState => {
  const e = electionOf(s)
  if (!granted && term > s.hard.term) return adoptTerm(s, out, term, `pre-vote reply from ${from}`)
  if (e === null || e.phase !== "pre" || term !== e.term || !granted) return s
  const votes = new Set(e.granted)
  votes.add(from)
  return maybeWinPreVote(withElection(s, { ...e, granted: votes }), out)
}

export const onVoteResponse = (
  s: AgentState,
  out: Outputs,
  res: VoteResponseMessage,
): AgentState => {
  if (res.term > s.hard.term) return adoptTerm(s, out, res.term, `vote reply from ${res.from}`)
  const e = electionOf(s)
  if (e === null || e.phase !== "vote" || res.term !== e.term || !res.granted) return s
  const votes = new Set(e.granted)
  votes.add(res.from)
  return maybeWin(
    withElection(s, { ...e, granted: votes, records: [...e.records, res.record] }),
    out,
  )
}

/** Keeps `electionDueAt` armed while an election is allowed; fires it when due. */
export const electionClock = (s: AgentState, out: Outputs, random: number): AgentState => {
  const timings = s.config.timings
  if (electionOf(s) !== null) return s
  const trigger = electionTrigger(s)
  if (!trigger.ok)
    return s.electionDueAt === null && s.electionArmedAt === null
      ? s
      : { ...s, electionDueAt: null, electionArmedAt: null }
  if (trigger.kind === "reclaim") {
    // No timeout: every moment without a lease is a moment the guard would fence.
    return startPreVote({ ...s, reclaimTried: true }, out, "reclaim")
  }
  if (s.electionDueAt === null) {
    const span = timings.electionTimeoutMaxMs - timings.electionTimeoutMinMs
    // The first round after the failure is judged waits only a short random delay (up to
    // election_timeout_min): a node stands only when no eligible peer ranks better in its view,
    // so two candidates at once are rare, and every moment here is write downtime (issue 13).
    // A later round (no one was elected) takes the full randomised timeout against split votes.
    const delay =
      s.electionArmedAt === null
        ? random * timings.electionTimeoutMinMs
        : timings.electionTimeoutMinMs + random * span
    return {
      ...s,
      electionDueAt: s.now + delay,
      // The first moment the failure was judged, kept across election rounds (history).
      electionArmedAt: s.electionArmedAt ?? s.now,
    }
  }
  if (s.now < s.electionDueAt) return s
  // Bootstrap and resignation skip nothing here: PreVote always runs first.
  return startPreVote(s, out, trigger.kind)
}

/** The reason an election is not running, for status. */
export const whyNoElection = (s: AgentState): string => {
  const t = electionTrigger(s)
  if (!t.ok) return t.why
  // Standing while it fetches what it lacks (catch-up.ts): its pre-votes fail until then.
  const source = s.local.probe?.replica?.source ?? null
  const catchingUp =
    s.catchingUpFrom !== undefined && s.catchingUpFrom !== null && source === s.catchingUpFrom
      ? `; replicating from ${source} for transactions it holds and this node lacks`
      : ""
  return `election due (${t.kind})${catchingUp}`
}
