/**
 * Heartbeats (section 3) and their acknowledgements, which renew the
 * leader's lease and the followers' promises (section 5).
 */
import type { HeartbeatMessage } from "../../../shared/peer-messages.ts"
import { compareVersions } from "./cluster-record.ts"
import { aliveWindow, knownPrimary, mergeHeartbeat } from "./cluster-view.ts"
import { mayBeWritable } from "./fencing.ts"
import { promiseTo, roundAcked, roundSent } from "./lease.ts"
import { removedTargets } from "./members.ts"
import { broadcast, type Outputs, persist, send } from "./outputs.ts"
import { asLeader, isActivePrimary, leaderOf, switchoverOf, withLeader } from "./roles.ts"
import { observation } from "./status.ts"
import { adoptTerm, stepDown } from "./term.ts"
import type { AgentState } from "./types.ts"

export const buildHeartbeat = (s: AgentState, round: number): HeartbeatMessage => {
  const probe = s.primaryProbe
  const primary = knownPrimary(s)
  const probed = probe !== null && probe.target === primary ? probe : null
  return {
    _tag: "Heartbeat",
    from: s.self,
    bootId: s.bootId,
    term: s.hard.term,
    leader: leaderOf(s),
    round,
    active: isActivePrimary(s),
    observation: observation(s),
    probedPrimary: probed?.target ?? null,
    primaryReachable: probed === null ? null : probed.reachable,
    primaryFenced: probed === null ? null : probed.fenced,
    heardFrom: [...s.peers].map(([name, v]) => ({ name, agoMs: s.now - v.lastHeardAt })),
    standsOnOwnProbe: true,
    record: s.hard.record,
  }
}

/** Sends a round when due; a leader notes its send time for the lease. */
export const heartbeatTimer = (s: AgentState, out: Outputs): AgentState => {
  if (s.now < s.nextHeartbeatAt) return s
  const round = s.round + 1
  const hb = buildHeartbeat(s, round)
  broadcast(s, out, hb)
  // A member this primary removed hears the record that leaves it out until it left (members.ts).
  for (const to of removedTargets(s)) send(out, to, hb)
  return asLeader(
    { ...s, round, nextHeartbeatAt: s.now + s.config.timings.heartbeatIntervalMs },
    (r) => ({ lease: roundSent(r.lease, round, s.now) }),
  )
}

export const onHeartbeat = (s: AgentState, out: Outputs, hb: HeartbeatMessage): AgentState => {
  const before = s.peers.get(hb.from)
  let next: AgentState = { ...s, peers: mergeHeartbeat(s, hb, s.now) }
  // Section 11: a peer heard again (a partition healed) gets fresh gratuitous ARP from the primary.
  const healed = before === undefined || s.now - before.lastHeardAt >= aliveWindow(s.config)
  if (healed && mayBeWritable(s) && s.local.vip.held === true)
    out.push({ _tag: "Vip", op: "refresh" })
  // Records spread by gossip too: a node cut off during a failover learns the new primary.
  // Never a record of an older term than ours: our term's leader may already have adopted
  // the highest record of its quorum, and a late one must not look committed beside it.
  if (
    hb.record !== undefined &&
    compareVersions(hb.record, next.hard.record) > 0 &&
    hb.record.term >= next.hard.term &&
    next.role._tag !== "Leader"
  ) {
    next = { ...next, hard: { ...next.hard, record: hb.record } }
    persist(next, out)
  }
  const claimsLeadership = hb.leader === hb.from
  if (!claimsLeadership) return next
  if (hb.term < next.hard.term) {
    // Tell a stale leader about the newer term so it steps down.
    send(out, hb.from, {
      _tag: "HeartbeatAck",
      from: s.self,
      term: next.hard.term,
      round: hb.round,
    })
    return next
  }
  if (hb.term > next.hard.term) next = adoptTerm(next, out, hb.term, `heartbeat from ${hb.from}`)
  if (next.role._tag === "Leader") return next // same term, two leaders cannot happen; ignore
  if (next.role._tag !== "Follower") next = stepDown(next, out, `${hb.from} leads term ${hb.term}`)
  next = {
    ...withLeader(next, hb.from, hb.active),
    promise: promiseTo(next.config, hb.from, hb.term, next.now),
    electionDueAt: null,
  }
  send(out, hb.from, { _tag: "HeartbeatAck", from: s.self, term: hb.term, round: hb.round })
  return next
}

export const onHeartbeatAck = (
  s: AgentState,
  out: Outputs,
  from: string,
  term: number,
  round: number,
): AgentState => {
  if (term > s.hard.term) return adoptTerm(s, out, term, `acknowledgement from ${from}`)
  if (s.role._tag !== "Leader" || term !== s.hard.term) return s
  // After consenting to a transfer the lease is given up for good in this term.
  if (switchoverOf(s)?.phase === "transferring") return s
  return asLeader(s, (r) => ({ lease: roundAcked(r.lease, s.config, round, from) }))
}
