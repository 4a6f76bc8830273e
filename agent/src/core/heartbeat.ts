/**
 * Heartbeats (section 3) and their acknowledgements, which renew the
 * leader's lease and the followers' promises (section 5).
 */
import type { HeartbeatMessage } from "../../../shared/peer-messages.ts"
import { compareVersions } from "./cluster-record.ts"
import { aliveWindow, knownPrimary, mergeHeartbeat } from "./cluster-view.ts"
import { mayBeWritable } from "./fencing.ts"
import { inLease, promiseTo, roundAcked, roundSent } from "./lease.ts"
import { removedTargets } from "./members.ts"
import { type Outputs, peersOf, persist, send } from "./outputs.ts"
import { asLeader, isActivePrimary, leaderOf, switchoverOf, withLeader } from "./roles.ts"
import { observation } from "./status.ts"
import { adoptTerm, stepDown } from "./term.ts"
import type { AgentState, Output } from "./types.ts"

/**
 * This round's heartbeat, with our cluster record (`withRecord`, for a peer
 * that may lack it: mayLackRecord) or without it; both state its version.
 */
export const buildHeartbeat = (
  s: AgentState,
  round: number,
  withRecord = true,
): HeartbeatMessage => {
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
    recordVersion: { term: s.hard.record.term, seq: s.hard.record.seq },
    ...(withRecord ? { record: s.hard.record } : {}),
  }
}

/**
 * Does `peer` perhaps lack our cluster record? Yes unless its last heartbeat,
 * heard within the alive window, stated a version at least as new as ours.
 *
 * Why leaving the record out is safe: gossip is not what makes a record
 * count. The primary replicates each version to a quorum (record-replication.ts)
 * and a new leader adopts the highest record of its votes (vote responses
 * carry it); heartbeats only help a node that missed both, and onHeartbeat
 * adopts only a version newer than its own. A peer that stated our version
 * or a newer one holds a record at least as new (one version is one record:
 * only the primary of a term writes that term's versions), so ours would
 * change nothing there. Every other peer still gets it each round: one that
 * stated an older version (it missed a change, or its state was wiped and it
 * restarted: its first heartbeat says so, and the next round carries the
 * record), one that stated none (never heard, or an agent older than 1.4:
 * those of 1.0 and 1.1 cannot even decode a heartbeat without the record),
 * and one not heard lately (what it stated may be stale, and its lost
 * heartbeats may have said it fell behind).
 */
export const mayLackRecord = (s: AgentState, peer: string): boolean => {
  const v = s.peers.get(peer)
  if (v === undefined || v.recordVersion === undefined || v.recordVersion === null) return true
  if (s.now - v.lastHeardAt >= aliveWindow(s.config)) return true
  return compareVersions(v.recordVersion, s.hard.record) < 0
}

/**
 * A follower's own rounds and probes ride on its leader's heartbeats (issue
 * 12): when the leader's heartbeat arrives and the follower's next round or
 * probe is due within half its interval, it goes now, in the same step as
 * the acknowledgement. The whole cluster's traffic then comes in one burst
 * per interval, started by the leader's timer, instead of each member waking
 * its peers at a phase of its own: at rest an agent's cost is its number of
 * wake-ups. Safety does not rest on when a round goes (votes and the lease
 * do); liveness keeps its bounds: a round or probe waits at most a quarter
 * interval more for the leader (`leaderPhaseSlack`), and none while no live
 * leader holds this follower's promise.
 */
export const followLeaderPhase = (s: AgentState): AgentState => {
  const t = s.config.timings
  const pull = (due: number, interval: number) => (due - s.now <= interval / 2 ? s.now : due)
  const nextHeartbeatAt = pull(s.nextHeartbeatAt, t.heartbeatIntervalMs)
  const nextProbeAt = pull(s.nextProbeAt, t.probeIntervalMs)
  return nextHeartbeatAt === s.nextHeartbeatAt && nextProbeAt === s.nextProbeAt
    ? s
    : { ...s, nextHeartbeatAt, nextProbeAt }
}

/**
 * A member's own round and its probes go in one step (issue 12): when either
 * is due and the other is due within half its interval, both go now. The
 * leader, whose rounds no heartbeat of another starts, then wakes once per
 * interval for both instead of at two phases of its own; the probe's answer
 * comes back in the burst of acknowledgements its round starts. Going early
 * costs nothing: a round sent earlier renews the lease from an earlier send
 * time, and a probe taken earlier is fresher. Only while both have the same
 * interval (the default): once in phase they stay so. With different ones,
 * each pull would start the slower one at the faster one's rate.
 */
export const roundWithProbe = (s: AgentState): AgentState => {
  const roundDue = s.now >= s.nextHeartbeatAt
  const probeDue = s.now >= s.nextProbeAt
  const t = s.config.timings
  if (roundDue === probeDue || t.probeIntervalMs !== t.heartbeatIntervalMs) return s
  if (roundDue && s.nextProbeAt - s.now <= t.probeIntervalMs / 2)
    return { ...s, nextProbeAt: s.now }
  if (probeDue && s.nextHeartbeatAt - s.now <= t.heartbeatIntervalMs / 2)
    return { ...s, nextHeartbeatAt: s.now }
  return s
}

/**
 * How much later than its interval a follower's next round or probe is due
 * while it follows a live leader: time for the leader's next heartbeat, a
 * little late, to start it (followLeaderPhase), rather than its own timer
 * firing a moment before.
 */
export const leaderPhaseSlack = (s: AgentState, interval: number): number =>
  s.role._tag === "Follower" && inLease(s) ? interval / 4 : 0

/** Sends a round when due; a leader notes its send time for the lease. */
export const heartbeatTimer = (s: AgentState, out: Outputs): AgentState => {
  if (s.now < s.nextHeartbeatAt) return s
  const round = s.round + 1
  // Two messages at most, each sent to its peers one after the other: the mesh
  // encodes a message once and reuses the frame for the next Send of the same
  // object (adapters/mesh.ts), as for a broadcast. The group of the first peer
  // goes first (the members' order is kept when all get the same message).
  const peers = peersOf(s)
  const lean: Array<string> = []
  const full: Array<string> = []
  for (const to of peers) (mayLackRecord(s, to) ? full : lean).push(to)
  // A member this primary removed hears the record that leaves it out until it left (members.ts).
  full.push(...removedTargets(s))
  const groups: ReadonlyArray<readonly [ReadonlyArray<string>, boolean]> =
    lean.length > 0 && lean[0] === peers[0]
      ? [
          [lean, false],
          [full, true],
        ]
      : [
          [full, true],
          [lean, false],
        ]
  for (const [to, withRecord] of groups) {
    if (to.length === 0) continue
    const hb = buildHeartbeat(s, round, withRecord)
    for (const peer of to) send(out, peer, hb)
  }
  const interval = s.config.timings.heartbeatIntervalMs
  return asLeader(
    { ...s, round, nextHeartbeatAt: s.now + interval + leaderPhaseSlack(s, interval) },
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
  // Records spread by gossip too: a node cut off during a failover learns the new primary
  // (a heartbeat carries the record to a peer that may lack it: mayLackRecord).
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
  return followLeaderPhase(next)
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

/**
 * A follower's acknowledgement rides on its own heartbeat to the leader when
 * both leave in one step (protocol 1.5, issue 12). At rest they always do:
 * the leader's heartbeat starts the follower's round (followLeaderPhase), so
 * the leader took two messages from every follower each round, and their
 * handling was most of what made it the busiest agent. Now it takes one.
 *
 * Only when nothing lies between the two that could change what the leader
 * sees first: no other message to the same peer (the per-peer order of the
 * TLS stream is kept) and no hard-state write (durability.ts holds messages
 * behind one; moving the acknowledgement later never lets it leave earlier,
 * but this keeps that reasoning where it was). Otherwise the acknowledgement
 * goes alone, as before. The receiver steps the acknowledgement first, then
 * the heartbeat, as it would the two messages (core/reducer.ts).
 */
export const acksRideHeartbeats = (out: Outputs): Outputs => {
  // Most steps send no acknowledgement: nothing to build for them.
  if (!out.some((o) => o._tag === "Send" && o.message._tag === "HeartbeatAck")) return out
  /** An acknowledgement that may still ride, by recipient: its index and what it says. */
  const waiting = new Map<
    string,
    { readonly at: number; readonly term: number; readonly round: number }
  >()
  /** The heartbeats that carry one, by index, and the indices of the acknowledgements they carry. */
  const carrying = new Map<number, Output>()
  const carried = new Set<number>()
  out.forEach((o, i) => {
    if (o._tag === "PersistHardState") waiting.clear()
    if (o._tag !== "Send") return
    const ack = waiting.get(o.to)
    waiting.delete(o.to)
    const m = o.message
    if (m._tag === "HeartbeatAck") waiting.set(o.to, { at: i, term: m.term, round: m.round })
    else if (m._tag === "Heartbeat" && ack !== undefined && m.ack === undefined) {
      carrying.set(i, { ...o, message: { ...m, ack: { term: ack.term, round: ack.round } } })
      carried.add(ack.at)
    }
  })
  if (carried.size === 0) return out
  return out.flatMap((o, i) => (carried.has(i) ? [] : [carrying.get(i) ?? o]))
}
