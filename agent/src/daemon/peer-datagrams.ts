/**
 * Which peer messages also travel as UDP datagrams (adapters/mesh-datagram.ts,
 * protocol 1.2), and to whom.
 *
 * What the lease lives on goes both ways, because packet loss stalls a TCP
 * connection and not a datagram: the leader's heartbeats (they keep the
 * followers' promises) and the acknowledgements that renew its lease. A
 * follower's heartbeat goes on the TLS connection only while it knows a
 * leader: no lease or promise times out on it, and at 7 members those
 * copies were 6 of every 7 datagrams an agent sent at rest (issue 12). Under
 * loss the others may then hear it late, which only delays what it reports
 * (its data, its view of the primary). Without a known leader (an election)
 * every heartbeat goes both ways, as before. A follower's heartbeat that
 * carries its acknowledgement (protocol 1.5) goes both ways too: the lease
 * lives on it.
 */
import type { PeerMessage } from "../../../shared/peer-messages.ts"
import { type ProtocolVersion, takesAckInHeartbeat } from "../../../shared/protocol-version.ts"

/**
 * The name two copies of a heartbeat or an acknowledgement share (the TLS
 * frame and the datagram), from the message or from its JSON as received
 * (these fields are the same in both). A heartbeat that carries the record
 * is named apart from its datagram copy, which leaves the record out: the
 * record is sent only to a peer that may lack it (core/heartbeat.ts), and
 * must not be dropped as the second copy of a heartbeat whose datagram came
 * first. Both copies are then stepped; stepping a heartbeat twice only
 * repeats its acknowledgement.
 */
export const copyName = (m: {
  readonly _tag?: unknown
  readonly bootId?: unknown
  readonly term?: unknown
  readonly round?: unknown
  readonly record?: unknown
}): string | undefined =>
  m._tag === "Heartbeat"
    ? `hb ${m.bootId} ${m.round}${m.record === undefined ? "" : " with record"}`
    : m._tag === "HeartbeatAck"
      ? `ack ${m.term} ${m.round}`
      : undefined

/**
 * The datagram copy of a message, undefined for none: an acknowledgement as
 * it is, a leader's heartbeat, one carrying an acknowledgement (or any while
 * no leader is known) without its record, so that it fits one packet.
 */
export const datagramCopy = (m: PeerMessage): PeerMessage | undefined => {
  if (m._tag === "HeartbeatAck") return m
  if (m._tag !== "Heartbeat") return undefined
  if (m.leader !== null && m.leader !== m.from && m.ack === undefined) return undefined
  const { record: _, ...small } = m
  return small
}

/**
 * What goes to a peer speaking `version` (undefined: not connected, version
 * unknown) in place of `m`, undefined for `m` itself. A peer older than
 * protocol 1.5 would ignore an acknowledgement riding on a heartbeat, and a
 * leader's lease would not count it: it gets the two messages the core would
 * have sent before (core/heartbeat.ts acksRideHeartbeats), the
 * acknowledgement first. So does a peer whose version is not known yet: the
 * frame may wait for its next connection.
 */
export const forPeerVersion = (
  m: PeerMessage,
  version: ProtocolVersion | undefined,
): ReadonlyArray<PeerMessage> | undefined => {
  if (m._tag !== "Heartbeat" || m.ack === undefined) return undefined
  if (version !== undefined && takesAckInHeartbeat(version)) return undefined
  const { ack, ...heartbeat } = m
  return [{ _tag: "HeartbeatAck", from: m.from, term: ack.term, round: ack.round }, heartbeat]
}
