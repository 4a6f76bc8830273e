/**
 * Committing cluster record changes (section 8): the primary persists the
 * new version, sends it to every peer, and counts it committed once a quorum
 * (itself included) has persisted it. Followers persist before they ack.
 */
import type { ClusterRecord } from "../../../shared/peer-messages.ts"
import { compareVersions } from "./cluster-record.ts"
import { quorum } from "./config.ts"
import { removedTargets, syncMembers } from "./members.ts"
import { event, type Outputs, peersOf, persist, send } from "./outputs.ts"
import { adoptTerm } from "./term.ts"
import type { AgentState } from "./types.ts"

export const propose = (s: AgentState, out: Outputs, record: ClusterRecord): AgentState => {
  // A new member list counts from here on (members.ts): its quorum commits it; the members
  // of the list before and after it are all told.
  const before = peersOf(s)
  const next: AgentState = syncMembers({
    ...s,
    hard: { ...s.hard, record },
    proposal: { record, acks: new Set([s.self]), lastSentAt: s.now },
  })
  persist(next, out)
  const message = { _tag: "RecordAppend", from: s.self, term: s.hard.term, record } as const
  for (const to of new Set([...before, ...peersOf(next)])) send(out, to, message)
  return checkCommitted(next, out)
}

const checkCommitted = (s: AgentState, out: Outputs): AgentState => {
  const p = s.proposal
  // Only members count: a removed member's acknowledgement is no part of a quorum.
  const acks = s.config.members.filter((m) => p?.acks.has(m.name)).length
  if (p === null || acks < quorum(s.config)) return s
  event(out, "info", "record-committed", `cluster record ${p.record.term}.${p.record.seq}`)
  return { ...s, proposal: null, committed: { term: p.record.term, seq: p.record.seq } }
}

export const onRecordAppend = (
  s: AgentState,
  out: Outputs,
  from: string,
  term: number,
  record: ClusterRecord,
): AgentState => {
  let next = s
  if (term > next.hard.term) next = adoptTerm(next, out, term, `record from ${from}`)
  if (term < next.hard.term) return next
  if (compareVersions(record, next.hard.record) > 0) {
    next = syncMembers({ ...next, hard: { ...next.hard, record } })
    persist(next, out)
  }
  if (compareVersions(next.hard.record, record) >= 0) {
    send(out, from, { _tag: "RecordAck", from: s.self, term, seq: record.seq })
  }
  return next
}

export const onRecordAck = (
  s: AgentState,
  out: Outputs,
  from: string,
  term: number,
  seq: number,
): AgentState => {
  if (term > s.hard.term) return adoptTerm(s, out, term, `record ack from ${from}`)
  const p = s.proposal
  if (p === null || term !== p.record.term || seq !== p.record.seq) return s
  const acks = new Set(p.acks)
  acks.add(from)
  return checkCommitted({ ...s, proposal: { ...p, acks } }, out)
}

/** Re-sends an uncommitted proposal to the peers that have not acknowledged it. */
export const resendProposal = (s: AgentState, out: Outputs): AgentState => {
  const p = s.proposal
  if (p === null || s.now - p.lastSentAt < s.config.timings.rpcTimeoutMs / 2) return s
  if (s.role._tag !== "Leader" || p.record.term !== s.hard.term) return { ...s, proposal: null }
  for (const name of [...peersOf(s), ...removedTargets(s)]) {
    if (p.acks.has(name)) continue
    send(out, name, { _tag: "RecordAppend", from: s.self, term: s.hard.term, record: p.record })
  }
  return { ...s, proposal: { ...p, lastSentAt: s.now } }
}
