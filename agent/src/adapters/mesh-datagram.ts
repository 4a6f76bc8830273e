/**
 * Datagrams beside the mesh's TLS connections (proposed protocol.md section 3).
 *
 * The lease lives on heartbeats and their acknowledgements, and a TCP
 * connection under packet loss stalls for seconds: a lost segment is resent
 * after 200, 400, 800, 1600 ms, and every later frame waits behind it. Under
 * 30 % loss on every host both of a primary's connections stalled past its
 * lease at once, and it fenced itself with nothing failed. So the messages
 * the lease needs are also sent as UDP datagrams to the peer's agent port:
 * each stands alone, and the first copy to arrive counts (the reducer takes
 * duplicates and reordering, as the simulator checks).
 *
 * Authentication comes from the TLS connection: both ends of a mutually
 * authenticated TLS 1.3 connection derive the same keys from it (the RFC 8446
 * exporter), one per sending direction, so only the two members of that
 * connection know them. A datagram is
 *
 *   "MHA1" | key id (8 bytes) | sequence (8 bytes, big-endian) | HMAC-SHA256 (32 bytes) | JSON
 *
 * with the HMAC over everything before it and the JSON after. The key id
 * names the sender; the sequence only grows per key, so a replayed or
 * reordered older datagram is dropped. Keys outlive their connection (a
 * connection cut for silence is exactly when datagrams matter) until a newer
 * connection with the same peer replaces them: the last two are kept, so
 * datagrams sealed with the previous key during the switch still count.
 */
import {
  createHash,
  createHmac,
  createSecretKey,
  type KeyObject,
  timingSafeEqual,
} from "node:crypto"
import type { TLSSocket } from "node:tls"

const MAGIC = Buffer.from("MHA1", "ascii")
const ID_BYTES = 8
const SEQ_BYTES = 8
const MAC_BYTES = 32
const HEADER_BYTES = MAGIC.length + ID_BYTES + SEQ_BYTES + MAC_BYTES
/** The exporter label (RFC 8446 section 7.5); the context names the sending member. */
const LABEL = "EXPORTER-mha-agent-datagram-v1"
/** Keys kept per peer: the current connection's and the one before. */
const KEPT = 2
/** The largest JSON sent as a datagram (below UDP's limit). */
export const MAX_DATAGRAM_PAYLOAD = 60_000

export type DatagramDropReason = "malformed" | "unknown-key" | "bad-mac" | "replay"

export const DATAGRAM_DROP_REASONS: ReadonlyArray<DatagramDropReason> = [
  "malformed",
  "unknown-key",
  "bad-mac",
  "replay",
]

// Keys are held as KeyObjects, prepared once per connection: a raw Buffer given to
// createHmac is imported again on every datagram (~0.2 % of a core at rest, issue 12).
interface SendKey {
  readonly id: Buffer
  readonly key: KeyObject
  seq: bigint
}

interface ReceiveKey {
  readonly peer: string
  readonly key: KeyObject
  lastSeq: bigint
}

const idOf = (key: Buffer): Buffer =>
  createHash("sha256").update(key).digest().subarray(0, ID_BYTES)

const mac = (key: Buffer | KeyObject, header: Buffer, payload: Buffer): Buffer =>
  createHmac("sha256", key).update(header).update(payload).digest()

/** The key `sender` seals its datagrams with on this connection; undefined if TLS cannot export. */
export const exportKey = (socket: TLSSocket, sender: string): Buffer | undefined => {
  try {
    return socket.exportKeyingMaterial(32, LABEL, Buffer.from(sender, "utf8"))
  } catch {
    return undefined
  }
}

/** Seals `payload` with a key and a sequence number. */
export const seal = (key: Buffer | KeyObject, id: Buffer, seq: bigint, payload: Buffer): Buffer => {
  const header = Buffer.alloc(MAGIC.length + ID_BYTES + SEQ_BYTES)
  MAGIC.copy(header, 0)
  id.copy(header, MAGIC.length)
  header.writeBigUInt64BE(seq, MAGIC.length + ID_BYTES)
  return Buffer.concat([header, mac(key, header, payload), payload])
}

export type Opened =
  | { readonly _tag: "Opened"; readonly peer: string; readonly payload: Buffer }
  | { readonly _tag: "Dropped"; readonly reason: DatagramDropReason }

/** The keys of every peer: what this member seals with, and what it accepts. */
export class DatagramKeys {
  private readonly sending = new Map<string, SendKey>()
  private readonly receiving = new Map<string, ReceiveKey>()
  /** Receive key ids per peer, newest last. */
  private readonly byPeer = new Map<string, Array<string>>()

  /** A new connection with `peer` opened: its keys replace the oldest kept. */
  connected(peer: string, send: Buffer, receive: Buffer): void {
    this.sending.set(peer, { id: idOf(send), key: createSecretKey(send), seq: 0n })
    const id = idOf(receive).toString("hex")
    if (this.receiving.has(id)) return
    this.receiving.set(id, { peer, key: createSecretKey(receive), lastSeq: 0n })
    const ids = [...(this.byPeer.get(peer) ?? []), id]
    while (ids.length > KEPT) this.receiving.delete(ids.shift() as string)
    this.byPeer.set(peer, ids)
  }

  /** A datagram for `peer`, or undefined when no connection with it ever gave a key. */
  seal(peer: string, payload: Buffer): Buffer | undefined {
    const k = this.sending.get(peer)
    if (k === undefined) return undefined
    k.seq += 1n
    return seal(k.key, k.id, k.seq, payload)
  }

  /** Checks a received datagram: known key, genuine, newer than the last from that key. */
  open(datagram: Buffer): Opened {
    if (datagram.length < HEADER_BYTES || !datagram.subarray(0, MAGIC.length).equals(MAGIC))
      return { _tag: "Dropped", reason: "malformed" }
    const idEnd = MAGIC.length + ID_BYTES
    const k = this.receiving.get(datagram.subarray(MAGIC.length, idEnd).toString("hex"))
    if (k === undefined) return { _tag: "Dropped", reason: "unknown-key" }
    const headerEnd = idEnd + SEQ_BYTES
    const header = datagram.subarray(0, headerEnd)
    const payload = datagram.subarray(HEADER_BYTES)
    if (!timingSafeEqual(mac(k.key, header, payload), datagram.subarray(headerEnd, HEADER_BYTES)))
      return { _tag: "Dropped", reason: "bad-mac" }
    const seq = datagram.readBigUInt64BE(idEnd)
    if (seq <= k.lastSeq) return { _tag: "Dropped", reason: "replay" }
    k.lastSeq = seq
    return { _tag: "Opened", peer: k.peer, payload }
  }
}
