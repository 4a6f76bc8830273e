/**
 * The peer mesh (architecture.md, protocol.md sections 1 and 3, operations.md
 * Security): WebSockets over TLS 1.3 with mutual authentication against the
 * cluster CA.
 *
 * - Every agent listens on its agent port with a server that demands a client
 *   certificate from the cluster CA; it dials its peers with its own
 *   certificate, and pins the name: the server must present exactly the
 *   member it dialled.
 * - The sender of a message is the member named by the certificate of the
 *   connection it came on; nothing inside a message is trusted for that.
 * - One connection per pair: the member whose name sorts first dials
 *   ({@link dials}); an inbound connection from a member we dial ourselves is
 *   refused, and a newer inbound connection from a member replaces an older
 *   one (the peer restarted while the old socket still looked open).
 * - Lost or failed connections are redialled with capped exponential backoff
 *   and jitter; silent connections are detected by WebSocket pings and cut.
 * - Every message is a JSON text frame decoded with the Schema given at
 *   construction. A frame over `maxMessageBytes` is dropped; one over
 *   `maxFrameBytes` (the `ws` maxPayload) closes the connection. Binary
 *   frames, bad JSON, schema mismatches and (optionally) a sender claimed
 *   inside the message that differs from the certificate are dropped. Each
 *   drop is counted and logged once per peer and reason; none crashes
 *   anything.
 * - Sending never blocks: each peer has a bounded outbound queue that drops
 *   its oldest message when full, and messages that waited longer than
 *   `queueMaxAgeMs` (the peer was away) are dropped instead of sent late.
 * - Optionally (`datagram`), some messages also go as UDP datagrams to the
 *   peer's port, authenticated with keys from the TLS connection
 *   (mesh-datagram.ts): packet loss stalls a TCP connection, not a datagram.
 *   The first copy to arrive is delivered; a second one of the same
 *   `datagramId` is dropped.
 *
 * The mesh is generic over the message type: `Mesh.layer({ schema, ... })`
 * with the daemon's `PeerMessage` Schema, and `Mesh.tag<PeerMessage>()` to
 * use it. There is one mesh per agent, so every `tag<A>()` is the same key.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram"
import { readFile } from "node:fs/promises"
import type { IncomingMessage } from "node:http"
import { createServer, type Server } from "node:https"
import { isIP, isIPv6 } from "node:net"
import type { Duplex } from "node:stream"
import type { ConnectionOptions, PeerCertificate, TLSSocket } from "node:tls"
import {
  Context,
  Effect,
  Layer,
  PubSub,
  Queue,
  Result,
  Schema,
  SchemaIssue,
  type Scope,
  Stream,
} from "effect"
import WebSocket, { WebSocketServer } from "ws"
import type { Config } from "../../../shared/config.ts"
import { meshListen } from "../../../shared/config.ts"
import {
  compatible,
  formatVersion,
  incompatibleText,
  MESH_PROTOCOL,
  PROTOCOL_HEADER,
  type ProtocolVersion,
  parseVersion,
  takesDatagrams,
} from "../../../shared/protocol-version.ts"
import { monotonicNow } from "./clock.ts"
import {
  DATAGRAM_DROP_REASONS,
  type DatagramDropReason,
  DatagramKeys,
  exportKey,
  MAX_DATAGRAM_PAYLOAD,
} from "./mesh-datagram.ts"
import {
  classifyTlsError,
  dials,
  identifyInbound,
  identifyOutbound,
  REFUSAL_REASONS,
  type RefusalReason,
} from "./mesh-identity.ts"

export type { RefusalReason } from "./mesh-identity.ts"
export { dials } from "./mesh-identity.ts"

/** The URL path of the mesh endpoint. */
export const MESH_PATH = "/mha-agent/mesh/v1"

// ---------------------------------------------------------------------------
// Options, values, errors

export interface MeshPeer {
  readonly name: string
  readonly address: string
  readonly port: number
}

export interface MeshTls {
  /** PEM of the cluster CA (the only CA trusted). */
  readonly ca: string | Buffer
  /** PEM of this member's certificate (CN / SAN = the member name). */
  readonly cert: string | Buffer
  readonly key: string | Buffer
}

export interface MeshBackoff {
  /** First redial delay (before jitter). Default 100 ms. */
  readonly initialMs?: number
  /** Cap of the delay. Default 5000 ms. */
  readonly maxMs?: number
}

export interface MeshOptions<A, I> {
  /** This member's name. */
  readonly self: string
  /** Every member of the cluster (this one may be included; it is skipped). */
  readonly members: ReadonlyArray<MeshPeer>
  readonly listen: { readonly host: string; readonly port: number }
  readonly tls: MeshTls
  /** The message Schema: frames are JSON of its encoded form. */
  readonly schema: Schema.Codec<A, I>
  /** A frame above this is dropped (and counted). Default 1 MiB. */
  readonly maxMessageBytes?: number
  /** A frame above this closes the connection (ws maxPayload). Default 4 x maxMessageBytes. */
  readonly maxFrameBytes?: number
  /** Outbound messages kept per peer; the oldest is dropped when full. Default 256. */
  readonly queueLimit?: number
  /** A queued message older than this is dropped instead of sent. Default 10 s. */
  readonly queueMaxAgeMs?: number
  /** Received messages not yet taken; the oldest is dropped when full. Default 4096. */
  readonly inboundCapacity?: number
  /**
   * Handles every received message at once, in the socket's callback, instead
   * of queueing it for `inbound` (which then stays empty): no queue hop and no
   * fiber wake-up per message. It must not throw.
   */
  readonly deliver?: (message: Inbound<A>) => void
  /**
   * WebSocket ping period. No ping is sent on a connection where messages
   * went both ways within the last period: they prove it alive to both ends.
   * The sweep that pings and cuts silent peers runs after a send once a
   * period has passed, and on a timer only when no send ran it for a while
   * (Transport.liveness). Default 1000 ms.
   */
  readonly pingIntervalMs?: number
  /** The protocol version this end announces and checks (protocol-version.ts); tests set others. */
  readonly protocol?: ProtocolVersion
  /** A connection with nothing received (message, ping or pong) for this long is cut. Default 3000 ms. */
  readonly deadAfterMs?: number
  /** Dial timeout (TCP, TLS and WebSocket upgrade). Default 2000 ms. */
  readonly connectTimeoutMs?: number
  readonly backoff?: MeshBackoff
  /**
   * The sender a message claims for itself (e.g. its `from` field). When given,
   * a message whose claim differs from the certificate's name is dropped.
   */
  readonly claimedSender?: (message: A) => string | undefined
  /**
   * Messages also sent as UDP datagrams (mesh-datagram.ts): the copy of a
   * message to send that way, or undefined for the TLS connection only. When
   * given, the mesh also listens on UDP at its listen address and port.
   */
  readonly datagram?: (message: A) => A | undefined
  /**
   * Names a message sent both ways (on the TLS connection and as a datagram):
   * the later of two copies with the same name from a peer is not delivered.
   */
  readonly datagramId?: (message: A) => string | undefined
  /**
   * `datagramId` read from a received message's JSON before it is decoded,
   * undefined when it cannot be told from that: a second copy is then
   * dropped without being decoded (issue 12). It must name a message as
   * `datagramId` names it once decoded.
   */
  readonly encodedDatagramId?: (json: object) => string | undefined
  /**
   * A faster decoder for the most frequent messages, tried before the Schema:
   * the message, or undefined to leave the JSON to the Schema. Where it
   * answers it must answer as the Schema would.
   */
  readonly fastDecode?: (json: unknown) => A | undefined
  /**
   * What a peer speaking `version` (undefined while not connected) gets in
   * place of a message it could not take, undefined for the message itself:
   * a newer message in the words of an older protocol.
   */
  readonly forPeerVersion?: (
    message: A,
    version: ProtocolVersion | undefined,
  ) => ReadonlyArray<A> | undefined
}

export interface Inbound<A> {
  /** The member named by the certificate of the connection it arrived on. */
  readonly from: string
  readonly message: A
  /** Wall clock, epoch milliseconds. */
  readonly receivedAt: number
  /** `performance.now()` at receipt (monotonic, for lease arithmetic). */
  readonly receivedAtMonotonic: number
}

export type PeerStatus = "connected" | "connecting" | "disconnected"

export interface PeerState {
  readonly name: string
  readonly status: PeerStatus
  /** Which side opened the current (or next) connection. */
  readonly direction: "outbound" | "inbound"
  /** Epoch ms when the current connection opened. */
  readonly connectedSince: number | null
  /** Epoch ms of the last frame, ping or pong received from the peer. */
  readonly lastSeenAt: number | null
  /** Negotiated TLS version of the current connection ("TLSv1.3"). */
  readonly tlsProtocol: string | null
  /** The mesh protocol the peer announced on the current connection; absent when not connected. */
  readonly protocol?: ProtocolVersion
  /** Messages waiting in the outbound queue. */
  readonly queued: number
  /** Connections to this peer established after the first one. */
  readonly reconnects: number
  readonly lastError: string | null
}

export interface PeerChange {
  readonly peer: string
  readonly status: "connected" | "disconnected"
  readonly direction: "outbound" | "inbound"
  /** Epoch ms. */
  readonly at: number
}

export type DropReason =
  | "oversize"
  | "frame-too-large"
  | "binary"
  | "malformed-json"
  | "schema"
  | "sender-mismatch"

export const DROP_REASONS: ReadonlyArray<DropReason> = [
  "oversize",
  "frame-too-large",
  "binary",
  "malformed-json",
  "schema",
  "sender-mismatch",
]

export interface MeshMetrics {
  readonly messagesIn: number
  readonly messagesOut: number
  readonly bytesIn: number
  readonly bytesOut: number
  /** Bad messages dropped, all reasons. */
  readonly droppedBad: number
  readonly droppedBadByReason: Readonly<Record<DropReason, number>>
  /** Outbound messages dropped because the peer's queue was full. */
  readonly droppedQueueFull: number
  /** Outbound messages dropped because they waited too long for the peer. */
  readonly droppedExpired: number
  /** Connections refused (either direction), all reasons. */
  readonly refusedPeers: number
  readonly refusedByReason: Readonly<Record<RefusalReason, number>>
  /** Connections established, both directions. */
  readonly connects: number
  /** Connections established to a peer that had been connected before. */
  readonly reconnects: number
  readonly disconnects: number
  readonly dialAttempts: number
  readonly dialFailures: number
  /** Inbound connections replaced by a newer one from the same peer. */
  readonly replaced: number
  /** Datagrams received (authenticated) and sent. */
  readonly datagramsIn: number
  readonly datagramsOut: number
  /** Datagrams dropped before decoding, by reason. */
  readonly droppedDatagramsByReason: Readonly<Record<DatagramDropReason, number>>
  /** Second copies (TLS or datagram) of a message already delivered: not delivered again. */
  readonly duplicates: number
}

/** The mesh could not start: bad TLS material or the port could not be bound. */
export class MeshStartError extends Schema.TaggedError<MeshStartError>()("MeshStartError", {
  reason: Schema.Literals(["tls", "listen", "config"]),
  detail: Schema.String,
}) {
  override get message(): string {
    return `mesh could not start (${this.reason}): ${this.detail}`
  }
}

/** A message could not be queued. */
export class MeshSendError extends Schema.TaggedError<MeshSendError>()("MeshSendError", {
  peer: Schema.NullOr(Schema.String),
  reason: Schema.Literals(["unknown-peer", "encode", "too-large", "stopped"]),
  detail: Schema.String,
}) {
  override get message(): string {
    return `mesh send${this.peer === null ? "" : ` to ${this.peer}`} failed (${this.reason}): ${this.detail}`
  }
}

export interface MeshService<A> {
  readonly self: string
  /** The other members, sorted (as at start; `setMembers` changes them). */
  readonly peers: ReadonlyArray<string>
  /** The member list changed (the cluster record's, core/members.ts): dial the new, drop the gone. */
  readonly setMembers: (members: ReadonlyArray<MeshPeer>) => Effect.Effect<void>
  /** Queues a message for one peer (never waits for the network). */
  readonly send: (peer: string, message: A) => Effect.Effect<void, MeshSendError>
  /**
   * `send` as a plain call: queued (and pumped to an open connection) before
   * it returns; the error, or undefined once queued. For callers outside a
   * fiber: the executor sends a step's heartbeats and acknowledgements in the
   * decision loop's turn (issue 12).
   */
  readonly sendNow: (peer: string, message: A) => MeshSendError | undefined
  /** Queues a message for every peer (encoded once). */
  readonly broadcast: (message: A) => Effect.Effect<void, MeshSendError>
  /** Received messages, oldest first (a single consumer). */
  readonly inbound: Stream.Stream<Inbound<A>>
  readonly inboundQueue: Queue.Dequeue<Inbound<A>>
  /** Connections opening and closing, as they happen (each subscriber sees those after it subscribed). */
  readonly peerChanges: Stream.Stream<PeerChange>
  readonly peerStates: Effect.Effect<ReadonlyArray<PeerState>>
  readonly metrics: Effect.Effect<MeshMetrics>
}

// ---------------------------------------------------------------------------
// The transport (Node callbacks; the Effect service below wraps it)

interface Queued {
  readonly data: string
  readonly bytes: number
  /** monotonicNow() when queued: its age never jumps with the wall clock. */
  readonly at: number
}

interface Conn {
  readonly ws: WebSocket
  readonly direction: "outbound" | "inbound"
  readonly tlsProtocol: string | null
  /** The mesh protocol the peer announced. */
  readonly protocol: ProtocolVersion
  /** Epoch ms, for display. */
  readonly openedAt: number
  /** monotonicNow() at open: durations and the silent-peer cut use this. */
  readonly openedAtMonotonic: number
  /** The TLS socket under `ws`: corked while a turn's frames to the peer gather (`pump`). */
  readonly socket: TLSSocket | undefined
  corked: boolean
}

interface PeerRuntime {
  readonly name: string
  readonly address: string
  readonly port: number
  /** Where its datagrams go: its address if an IP literal, else the last connection's remote address. */
  datagramAddress: string | undefined
  readonly dialer: boolean
  conn: Conn | undefined
  dialing: WebSocket | undefined
  timer: NodeJS.Timeout | undefined
  failures: number
  everConnected: boolean
  /** Epoch ms, for display. */
  lastSeenAt: number | null
  /** monotonicNow() of the last frame, ping or pong: the silent-peer cut uses this. */
  lastSeenMonotonic: number | null
  /** monotonicNow() of the last message received from / sent to the peer (pings skipped while both flow). */
  lastMessageInAt: number
  lastMessageOutAt: number
  lastError: string | null
  reconnects: number
  queue: Array<Queued>
  /** Names (datagramId) of the last messages delivered from it, oldest first. */
  readonly recentIds: Set<string>
}

type LogLevel = "debug" | "info" | "warn" | "error"
type Log = (level: LogLevel, message: string, annotations: Record<string, unknown>) => void

const zeroes = <K extends string>(keys: ReadonlyArray<K>): Record<K, number> =>
  Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>

const errorText = (e: unknown): string => {
  const err = e as { code?: unknown; message?: unknown } | null
  const code = typeof err?.code === "string" ? `${err.code}: ` : ""
  return `${code}${String(err?.message ?? e)}`
}

/** An IPv4 peer from a (dual-stack) IPv6 socket goes to its mapped address; an IPv6 one cannot go from IPv4. */
const datagramTarget = (socket: "udp4" | "udp6", address: string): string | undefined =>
  socket === "udp6" && isIP(address) === 4
    ? `::ffff:${address}`
    : socket === "udp4" && isIP(address) === 6
      ? undefined
      : address

/** Message names remembered per peer to drop second copies: a few seconds of heartbeats. */
const RECENT_IDS = 64

/** Marker on the Error our checkServerIdentity returns. */
const PEER_IDENTITY_CODE = "ERR_MHA_PEER_IDENTITY"

const formatIssue = SchemaIssue.makeFormatterDefault()

class Transport<A, I> {
  readonly self: string
  private memberNames: ReadonlySet<string>
  readonly peers: Map<string, PeerRuntime>
  private readonly maxMessageBytes: number
  private readonly maxFrameBytes: number
  private readonly protocol: ProtocolVersion
  private readonly queueLimit: number
  private readonly queueMaxAgeMs: number
  private readonly pingIntervalMs: number
  private readonly deadAfterMs: number
  private readonly connectTimeoutMs: number
  private readonly backoffInitialMs: number
  private readonly backoffMaxMs: number
  private readonly highWater: number
  private readonly decode: (input: unknown) => Result.Result<A, Schema.SchemaError>
  private readonly encode: (input: A) => Result.Result<I, Schema.SchemaError>
  private readonly loggedOnce = new Set<string>()
  private server: Server | undefined
  private wss: WebSocketServer | undefined
  /** The liveness sweep's fallback timer (see `liveness`). */
  private sweep: NodeJS.Timeout | undefined
  /** The fallback timer is armed for pingIntervalMs: no send ran the sweep lately. */
  private sweepIdle = true
  /** monotonicNow() of the last liveness sweep. */
  private lastSweepAt = 0
  /** How long the fallback timer waits after a sweep run by a send (see `liveness`). */
  private readonly sweepFallbackMs: number
  private readonly inboundIdentity = new WeakMap<object, { name: string; tls: string | null }>()
  private stopping = false
  private udp: UdpSocket | undefined
  private udpType: "udp4" | "udp6" = "udp4"
  private readonly keys = new DatagramKeys()

  readonly counters = {
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    droppedQueueFull: 0,
    droppedExpired: 0,
    connects: 0,
    reconnects: 0,
    disconnects: 0,
    dialAttempts: 0,
    dialFailures: 0,
    replaced: 0,
    datagramsIn: 0,
    datagramsOut: 0,
    duplicates: 0,
  }
  readonly dropped = zeroes(DROP_REASONS)
  readonly droppedDatagrams = zeroes(DATAGRAM_DROP_REASONS)
  readonly refused = zeroes(REFUSAL_REASONS)

  private readonly options: MeshOptions<A, I>
  private readonly deliver: (inbound: Inbound<A>) => void
  private readonly changed: (change: PeerChange) => void
  private readonly log: Log

  constructor(
    options: MeshOptions<A, I>,
    deliver: (inbound: Inbound<A>) => void,
    changed: (change: PeerChange) => void,
    log: Log,
  ) {
    this.options = options
    this.deliver = deliver
    this.changed = changed
    this.log = log
    this.self = options.self
    this.memberNames = new Set(options.members.map((m) => m.name))
    this.maxMessageBytes = options.maxMessageBytes ?? 1_048_576
    this.protocol = options.protocol ?? MESH_PROTOCOL
    this.maxFrameBytes = Math.max(
      options.maxFrameBytes ?? this.maxMessageBytes * 4,
      this.maxMessageBytes,
    )
    this.queueLimit = Math.max(1, options.queueLimit ?? 256)
    this.queueMaxAgeMs = options.queueMaxAgeMs ?? 10_000
    this.pingIntervalMs = options.pingIntervalMs ?? 1_000
    this.deadAfterMs = options.deadAfterMs ?? 3_000
    // Longer than the time between two sweeps run by sends at rest (a
    // heartbeat every 500 ms: at most pingIntervalMs + 500 ms), so that at
    // rest the timer never fires; and short enough that, once sends stop, this
    // end's next ping reaches a peer (whose last word from us is the send of
    // that sweep) a ping period before its deadAfterMs runs out (with the
    // defaults 1 s, the margin the former interval timer left).
    this.sweepFallbackMs = Math.max(2 * this.pingIntervalMs, this.deadAfterMs - this.pingIntervalMs)
    this.connectTimeoutMs = options.connectTimeoutMs ?? 2_000
    this.backoffInitialMs = options.backoff?.initialMs ?? 100
    this.backoffMaxMs = Math.max(this.backoffInitialMs, options.backoff?.maxMs ?? 5_000)
    this.highWater = Math.max(this.maxMessageBytes * 2, 256 * 1024)
    this.decode = Schema.decodeUnknownResult(options.schema) as (
      input: unknown,
    ) => Result.Result<A, Schema.SchemaError>
    this.encode = Schema.encodeResult(options.schema) as (
      input: A,
    ) => Result.Result<I, Schema.SchemaError>
    this.peers = new Map()
    for (const m of [...options.members].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (m.name === options.self || this.peers.has(m.name)) continue
      this.peers.set(m.name, this.newPeer(m))
    }
  }

  private newPeer(m: MeshPeer): PeerRuntime {
    return {
      name: m.name,
      address: m.address,
      port: m.port,
      datagramAddress: isIP(m.address) === 0 ? undefined : m.address,
      dialer: dials(this.self, m.name),
      conn: undefined,
      dialing: undefined,
      timer: undefined,
      failures: 0,
      everConnected: false,
      lastSeenAt: null,
      lastSeenMonotonic: null,
      lastMessageInAt: 0,
      lastMessageOutAt: 0,
      lastError: null,
      reconnects: 0,
      queue: [],
      recentIds: new Set(),
    }
  }

  /**
   * The member list changed (a membership change in the cluster record,
   * core/members.ts): a new member's certificate is accepted and it is
   * dialled; a member no longer listed is refused from now on and its
   * connection closed. A member whose address or port changed is redialled.
   */
  setMembers(members: ReadonlyArray<MeshPeer>): void {
    this.memberNames = new Set(members.map((m) => m.name))
    const wanted = new Map(members.map((m) => [m.name, m]))
    for (const [name, p] of [...this.peers]) {
      const m = wanted.get(name)
      if (m !== undefined && m.address === p.address && m.port === p.port) continue
      this.peers.delete(name)
      if (p.timer !== undefined) clearTimeout(p.timer)
      p.timer = undefined
      p.dialing?.terminate()
      p.conn?.ws.close(4001, "no longer a member")
      p.queue = []
      this.log("info", `mesh: ${name} ${m === undefined ? "is no longer a member" : "moved"}`, {
        event: "mesh-peer-removed",
        peer: name,
      })
    }
    for (const m of [...members].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (m.name === this.self || this.peers.has(m.name)) continue
      const p = this.newPeer(m)
      this.peers.set(m.name, p)
      this.log("info", `mesh: ${m.name} is a member (${m.address}:${m.port})`, {
        event: "mesh-peer-added",
        peer: m.name,
      })
      if (this.server !== undefined && p.dialer) this.dial(p)
    }
  }

  // ---- lifecycle ------------------------------------------------------------

  start(): Promise<void> {
    const { tls, listen } = this.options
    const server = createServer(
      {
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: "TLSv1.3",
        maxVersion: "TLSv1.3",
        handshakeTimeout: this.connectTimeoutMs * 2,
      },
      (_req, res) => {
        res.writeHead(426, { connection: "close" })
        res.end()
      },
    )
    server.headersTimeout = this.connectTimeoutMs * 2
    server.requestTimeout = this.connectTimeoutMs * 2
    this.server = server
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
    })
    // Every accepted upgrade answers with our version: the dialler checks it too.
    this.wss.on("headers", (headers: Array<string>) => {
      headers.push(`${PROTOCOL_HEADER}: ${formatVersion(this.protocol)}`)
    })
    server.on("secureConnection", (socket: TLSSocket) => this.onSecureConnection(socket))
    server.on("tlsClientError", (error: Error, socket: TLSSocket) => {
      // A client certificate that fails verification (another CA, expired) is
      // reported by Node as authorizationError, and the error is a reset.
      const authError = (socket as TLSSocket & { authorizationError?: unknown }).authorizationError
      const reason = authError ? "bad-certificate" : classifyTlsError(error)
      const detail = authError
        ? `client certificate rejected: ${String(authError)}`
        : errorText(error)
      this.refuse(reason, `${socket.remoteAddress ?? "?"}`, detail)
      socket.destroy()
    })
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(req, socket, head),
    )
    return new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e)
      server.once("error", onError)
      server.listen(listen.port, listen.host, () => {
        server.off("error", onError)
        server.on("error", (e) => this.log("error", `mesh listener error: ${errorText(e)}`, {}))
        this.lastSweepAt = monotonicNow()
        this.armSweep(this.pingIntervalMs, true)
        for (const p of this.peers.values()) if (p.dialer) this.dial(p)
        this.startDatagrams().then(resolve, resolve)
      })
    })
  }

  /**
   * Listens for datagrams on the mesh's address and port over UDP. If that
   * fails the mesh runs on its TLS connections alone (as before protocol
   * 1.2), and says so: losing the datagrams costs robustness under packet
   * loss, not correctness.
   */
  private startDatagrams(): Promise<void> {
    if (this.options.datagram === undefined) return Promise.resolve()
    const { host, port } = this.options.listen
    this.udpType = isIPv6(host) ? "udp6" : "udp4"
    const udp = createSocket({ type: this.udpType })
    return new Promise<void>((resolve) => {
      udp.once("error", (e) => {
        this.log(
          "warn",
          `mesh: cannot listen for datagrams on ${host}:${port}/udp (${errorText(e)}): heartbeats travel on the TLS connections only, which stall under packet loss`,
          { event: "mesh-datagrams-unavailable" },
        )
        udp.close()
        resolve()
      })
      udp.bind({ port, address: host }, () => {
        udp.removeAllListeners("error")
        udp.on("error", (e) =>
          this.once(
            `udp-error:${errorText(e)}`,
            "warn",
            `mesh: datagram socket error: ${errorText(e)}`,
            {
              event: "mesh-datagram-error",
            },
          ),
        )
        udp.on("message", (data) => this.onDatagram(data))
        this.udp = udp
        resolve()
      })
    })
  }

  async stop(): Promise<void> {
    this.stopping = true
    if (this.sweep) clearTimeout(this.sweep)
    this.sweep = undefined
    this.udp?.close()
    this.udp = undefined
    const sockets: Array<WebSocket> = []
    for (const p of this.peers.values()) {
      if (p.timer) clearTimeout(p.timer)
      p.timer = undefined
      if (p.dialing) sockets.push(p.dialing)
      if (p.conn) sockets.push(p.conn.ws)
      p.queue = []
    }
    const closed = sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve()
          const t = setTimeout(() => {
            ws.terminate()
            resolve()
          }, 500)
          ws.once("close", () => {
            clearTimeout(t)
            resolve()
          })
          if (ws.readyState === WebSocket.CONNECTING) ws.terminate()
          else ws.close(1001, "agent shutting down")
        }),
    )
    await Promise.all(closed)
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve()
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
    this.wss?.close()
  }

  // ---- logging and counting ---------------------------------------------------

  private once(
    key: string,
    level: LogLevel,
    message: string,
    annotations: Record<string, unknown>,
  ) {
    if (this.loggedOnce.has(key)) return
    // Bounded: a flood of distinct keys (addresses) starts the set afresh.
    if (this.loggedOnce.size >= 10_000) this.loggedOnce.clear()
    this.loggedOnce.add(key)
    this.log(level, message, annotations)
  }

  private refuse(reason: RefusalReason, who: string, detail: string) {
    this.refused[reason] += 1
    this.once(
      `refused:${who}:${reason}`,
      "warn",
      `mesh refused a connection (${reason}) with ${who}: ${detail}`,
      {
        event: "mesh-peer-refused",
        peer: who,
        reason,
      },
    )
  }

  private drop(peer: string, reason: DropReason, detail: string) {
    this.dropped[reason] += 1
    this.once(
      `drop:${peer}:${reason}`,
      "warn",
      `mesh dropped a message from ${peer} (${reason}): ${detail}`,
      {
        event: "mesh-message-dropped",
        peer,
        reason,
      },
    )
  }

  /**
   * The version a peer announced (`header`: its value, absent for 1.0), or
   * undefined when it is malformed or of another major: then the refusal is
   * logged naming both versions and counted (reason "protocol-version").
   */
  private peerVersion(peer: string, header: string | Array<string> | undefined) {
    const parsed = parseVersion(Array.isArray(header) ? header[0] : header)
    const detail = !parsed.ok
      ? `peer ${peer} sent a ${parsed.error}; this agent speaks ${formatVersion(this.protocol)}`
      : compatible(this.protocol, parsed.version)
        ? undefined
        : incompatibleText(peer, parsed.version, this.protocol)
    if (detail === undefined && parsed.ok) return parsed.version
    const p = this.peers.get(peer)
    if (p !== undefined) p.lastError = detail ?? null
    this.refuse("protocol-version", peer, detail ?? "")
    return undefined
  }

  // ---- inbound --------------------------------------------------------------------

  private onSecureConnection(socket: TLSSocket) {
    const cert = socket.getPeerCertificate() as PeerCertificate | null
    const id = identifyInbound(cert, this.self, this.memberNames)
    if (id._tag === "Refused") {
      const who = id.names.length > 0 ? id.names.join("|") : (socket.remoteAddress ?? "?")
      this.refuse(
        id.reason,
        who,
        `certificate names ${JSON.stringify(id.names)} from ${socket.remoteAddress}`,
      )
      socket.destroy()
      return
    }
    this.inboundIdentity.set(socket, { name: id.name, tls: socket.getProtocol() ?? null })
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    const id = this.inboundIdentity.get(socket)
    const peer = id === undefined ? undefined : this.peers.get(id.name)
    if (this.stopping || id === undefined || peer === undefined || req.url !== MESH_PATH) {
      socket.write("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n")
      socket.destroy()
      return
    }
    // A peer of another major version is refused before any message (no header: 1.0).
    const theirs = this.peerVersion(peer.name, req.headers[PROTOCOL_HEADER])
    if (theirs === undefined) {
      socket.write(
        `HTTP/1.1 426 Upgrade Required\r\n${PROTOCOL_HEADER}: ${formatVersion(this.protocol)}\r\nConnection: close\r\n\r\n`,
      )
      socket.destroy()
      return
    }
    this.wss?.handleUpgrade(req, socket, head, (ws) => {
      if (this.stopping) {
        ws.terminate()
        return
      }
      const old = peer.conn
      if (old !== undefined) {
        this.counters.replaced += 1
        this.log("info", `mesh: a newer connection from ${peer.name} replaces the old one`, {
          event: "mesh-connection-replaced",
          peer: peer.name,
        })
        peer.conn = undefined
        old.ws.close(4000, "replaced by a newer connection")
        setTimeout(() => old.ws.terminate(), 1_000).unref()
      }
      this.attach(peer, ws, "inbound", id?.tls ?? null, theirs, socket as TLSSocket)
    })
  }

  // ---- outbound -------------------------------------------------------------------

  private backoffDelay(failures: number): number {
    const base = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.max(0, failures - 1))
    return Math.round(base / 2 + (Math.random() * base) / 2)
  }

  private scheduleDial(peer: PeerRuntime) {
    if (this.stopping || peer.timer || peer.dialing || peer.conn) return
    // A member the list no longer names is not dialled again (setMembers).
    if (this.peers.get(peer.name) !== peer) return
    peer.failures += 1
    const delay = this.backoffDelay(peer.failures)
    peer.timer = setTimeout(() => {
      peer.timer = undefined
      this.dial(peer)
    }, delay)
  }

  private dial(peer: PeerRuntime) {
    if (this.stopping || peer.dialing || peer.conn) return
    if (this.peers.get(peer.name) !== peer) return
    this.counters.dialAttempts += 1
    const host = isIPv6(peer.address) ? `[${peer.address}]` : peer.address
    let identityFailure: RefusalReason | undefined
    const tlsOptions: ConnectionOptions = {
      ca: this.options.tls.ca,
      cert: this.options.tls.cert,
      key: this.options.tls.key,
      servername: peer.name,
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3",
      rejectUnauthorized: true,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const id = identifyOutbound(cert, peer.name, this.memberNames)
        if (id._tag === "Member") return undefined
        identityFailure = id.reason
        const e = new Error(
          `dialled ${peer.name} at ${peer.address}:${peer.port} but its certificate names ${JSON.stringify(id.names)}`,
        ) as Error & { code: string }
        e.code = PEER_IDENTITY_CODE
        return e
      },
    }
    // ws hands these options to tls.connect (its typings narrow checkServerIdentity).
    const ws = new WebSocket(`wss://${host}:${peer.port}${MESH_PATH}`, {
      ...tlsOptions,
      handshakeTimeout: this.connectTimeoutMs,
      maxPayload: this.maxFrameBytes,
      perMessageDeflate: false,
      followRedirects: false,
      headers: { [PROTOCOL_HEADER]: formatVersion(this.protocol) },
    } as unknown as WebSocket.ClientOptions)
    peer.dialing = ws
    let tlsProtocol: string | null = null
    let tlsSocket: TLSSocket | undefined
    let theirs: ProtocolVersion | undefined
    /** Refused for its version: logged and counted already, its close is no dial error. */
    let versionRefused = false
    let opened = false
    ws.on("upgrade", (res: IncomingMessage) => {
      tlsSocket = res.socket as TLSSocket
      tlsProtocol = tlsSocket.getProtocol?.() ?? null
      theirs = this.peerVersion(peer.name, res.headers[PROTOCOL_HEADER])
      versionRefused = theirs === undefined
    })
    // A peer of another major version answers 426 with its version: refused the same way.
    ws.on("unexpected-response", (_req: unknown, res: IncomingMessage) => {
      if (res.statusCode === 426) {
        versionRefused = this.peerVersion(peer.name, res.headers[PROTOCOL_HEADER]) === undefined
      }
      ws.terminate()
    })
    ws.once("open", () => {
      opened = true
      peer.dialing = undefined
      if (this.stopping || theirs === undefined) {
        ws.terminate()
        if (theirs === undefined) {
          this.counters.dialFailures += 1
          this.scheduleDial(peer)
        }
        return
      }
      this.attach(peer, ws, "outbound", tlsProtocol, theirs, tlsSocket)
    })
    ws.on("error", (e: Error) => {
      if (opened || versionRefused) return // attach() handles errors of open connections
      peer.lastError = errorText(e)
      if (identityFailure !== undefined) {
        this.refuse(identityFailure, peer.name, errorText(e))
      } else if (
        (e as { code?: string }).code !== undefined &&
        /CERT|SIGNATURE|ISSUER|SELF_SIGNED|VERIFY/.test(String((e as { code?: string }).code))
      ) {
        this.refuse("bad-certificate", peer.name, errorText(e))
      } else {
        this.once(
          `dial:${peer.name}:${(e as { code?: string }).code ?? e.message}`,
          "info",
          `mesh: cannot connect to ${peer.name} at ${peer.address}:${peer.port}: ${errorText(e)}`,
          {
            event: "mesh-dial-failed",
            peer: peer.name,
          },
        )
      }
    })
    ws.once("close", () => {
      if (opened) return
      peer.dialing = undefined
      this.counters.dialFailures += 1
      this.scheduleDial(peer)
    })
  }

  // ---- open connections ----------------------------------------------------------

  private attach(
    peer: PeerRuntime,
    ws: WebSocket,
    direction: Conn["direction"],
    tlsProtocol: string | null,
    protocol: ProtocolVersion,
    tlsSocket: TLSSocket | undefined,
  ) {
    const now = Date.now()
    this.datagramKeys(peer, protocol, tlsSocket)
    const conn: Conn = {
      ws,
      direction,
      tlsProtocol,
      protocol,
      openedAt: now,
      openedAtMonotonic: monotonicNow(),
      socket: tlsSocket,
      corked: false,
    }
    peer.conn = conn
    peer.lastSeenAt = now
    peer.lastSeenMonotonic = conn.openedAtMonotonic
    peer.lastError = null
    this.counters.connects += 1
    if (peer.everConnected) {
      peer.reconnects += 1
      this.counters.reconnects += 1
    }
    peer.everConnected = true
    this.changed({ peer: peer.name, status: "connected", direction, at: now })
    const v = formatVersion(protocol)
    this.log(
      "info",
      `mesh: connected with ${peer.name} (${direction}, ${tlsProtocol ?? "?"}, protocol ${v})`,
      {
        event: "mesh-peer-connected",
        peer: peer.name,
        direction,
      },
    )
    const seen = () => {
      peer.lastSeenAt = Date.now()
      peer.lastSeenMonotonic = monotonicNow()
    }
    ws.on("pong", seen)
    ws.on("ping", seen)
    ws.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
      seen()
      peer.lastMessageInAt = peer.lastSeenMonotonic as number
      this.onFrame(peer.name, data, isBinary)
    })
    ws.on("error", (e: Error & { code?: string }) => {
      peer.lastError = errorText(e)
      if (e.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
        this.drop(peer.name, "frame-too-large", `${errorText(e)}; connection closed`)
      } else {
        this.once(
          `conn-error:${peer.name}:${e.code ?? e.message}`,
          "warn",
          `mesh: connection with ${peer.name} failed: ${errorText(e)}`,
          {
            event: "mesh-connection-error",
            peer: peer.name,
          },
        )
      }
    })
    ws.once("close", (code: number, reason: Buffer) => {
      if (peer.conn?.ws !== ws) return // replaced
      peer.conn = undefined
      this.counters.disconnects += 1
      const lived = Math.round(monotonicNow() - conn.openedAtMonotonic)
      this.changed({ peer: peer.name, status: "disconnected", direction, at: Date.now() })
      this.log(
        "info",
        `mesh: disconnected from ${peer.name} (code ${code} ${reason.toString("utf8")}) after ${lived} ms`,
        {
          event: "mesh-peer-disconnected",
          peer: peer.name,
        },
      )
      if (peer.dialer) {
        // A connection that lived a while resets the backoff; one that dies at
        // once (a peer that drops us after the handshake) keeps backing off.
        if (lived >= Math.max(this.deadAfterMs, 2_000)) peer.failures = 0
        this.scheduleDial(peer)
      }
    })
    this.pump(peer)
  }

  /** This connection's datagram keys, if the peer takes datagrams (protocol 1.2). */
  private datagramKeys(
    peer: PeerRuntime,
    protocol: ProtocolVersion,
    socket: TLSSocket | undefined,
  ) {
    if (this.options.datagram === undefined || !takesDatagrams(protocol) || socket === undefined)
      return
    const send = exportKey(socket, this.self)
    const receive = exportKey(socket, peer.name)
    if (send === undefined || receive === undefined) return
    this.keys.connected(peer.name, send, receive)
    if (isIP(peer.address) === 0 && socket.remoteAddress !== undefined)
      peer.datagramAddress = socket.remoteAddress
  }

  /** The JSON of `message`'s datagram copy, undefined when it has none (or datagrams are off). */
  datagramPayload(message: A): Buffer | undefined {
    if (this.udp === undefined) return undefined
    const copy = this.options.datagram?.(message)
    if (copy === undefined) return undefined
    const frame = this.encodeFrame(copy, null)
    if (frame instanceof MeshSendError || frame.bytes > MAX_DATAGRAM_PAYLOAD) return undefined
    return Buffer.from(frame.data, "utf8")
  }

  /** Sends a datagram copy to a peer that ever gave this member keys. */
  sendDatagram(peer: PeerRuntime, payload: Buffer | undefined) {
    const udp = this.udp
    if (udp === undefined || payload === undefined || peer.datagramAddress === undefined) return
    const to = datagramTarget(this.udpType, peer.datagramAddress)
    if (to === undefined) return
    const datagram = this.keys.seal(peer.name, payload)
    if (datagram === undefined) return
    this.counters.datagramsOut += 1
    // Fire and forget: a datagram lost is what the TLS connection is there for.
    udp.send(datagram, peer.port, to, () => {})
  }

  private onDatagram(data: Buffer) {
    const opened = this.keys.open(data)
    if (opened._tag === "Dropped") {
      this.droppedDatagrams[opened.reason] += 1
      return
    }
    this.counters.datagramsIn += 1
    this.onFrame(opened.peer, opened.payload, false)
  }

  /** Was this message (named by datagramId) delivered already, by the other way? */
  private duplicate(from: string, message: A): boolean {
    const id = this.options.datagramId?.(message)
    const recent = this.peers.get(from)?.recentIds
    if (id === undefined || recent === undefined) return false
    if (recent.has(id)) {
      this.counters.duplicates += 1
      return true
    }
    recent.add(id)
    if (recent.size > RECENT_IDS) recent.delete(recent.values().next().value as string)
    return false
  }

  /** Was the message of this JSON (named by encodedDatagramId) delivered already? Counted if so. */
  private seenEncoded(from: string, json: unknown): boolean {
    const nameOf = this.options.encodedDatagramId
    if (nameOf === undefined || typeof json !== "object" || json === null) return false
    let id: string | undefined
    try {
      id = nameOf(json)
    } catch {
      return false
    }
    if (id === undefined || this.peers.get(from)?.recentIds.has(id) !== true) return false
    this.counters.duplicates += 1
    return true
  }

  private onFrame(from: string, data: WebSocket.RawData, isBinary: boolean) {
    const bytes = Array.isArray(data)
      ? data.reduce((n, b) => n + b.length, 0)
      : data instanceof ArrayBuffer
        ? data.byteLength
        : data.length
    this.counters.bytesIn += bytes
    if (isBinary) return this.drop(from, "binary", `${bytes} bytes`)
    if (bytes > this.maxMessageBytes) {
      return this.drop(from, "oversize", `${bytes} bytes > limit ${this.maxMessageBytes}`)
    }
    const text = Array.isArray(data)
      ? Buffer.concat(data).toString("utf8")
      : data instanceof ArrayBuffer
        ? Buffer.from(data).toString("utf8")
        : data.toString("utf8")
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return this.drop(from, "malformed-json", errorText(e))
    }
    // Half of what arrives at rest is the second copy of a heartbeat or an
    // acknowledgement: it is recognised by its name before any decoding.
    if (this.seenEncoded(from, json)) return
    let decoded: Result.Result<A, Schema.SchemaError>
    try {
      const fast = this.options.fastDecode?.(json)
      decoded = fast === undefined ? this.decode(json) : Result.succeed(fast)
    } catch (e) {
      // A Schema whose transformation throws: still only this message is lost.
      return this.drop(from, "schema", `decoding threw: ${errorText(e)}`)
    }
    if (Result.isFailure(decoded)) {
      return this.drop(from, "schema", formatIssue(decoded.failure.issue).replaceAll("\n", " "))
    }
    const message = decoded.success
    let claimed: string | undefined
    try {
      claimed = this.options.claimedSender?.(message)
    } catch (e) {
      return this.drop(from, "sender-mismatch", `claimedSender threw: ${errorText(e)}`)
    }
    if (claimed !== undefined && claimed !== from) {
      return this.drop(from, "sender-mismatch", `message claims to be from ${claimed}`)
    }
    if (this.duplicate(from, message)) return
    this.counters.messagesIn += 1
    this.deliver({ from, message, receivedAt: Date.now(), receivedAtMonotonic: monotonicNow() })
  }

  /**
   * Runs the liveness sweep if one is due (pingIntervalMs since the last):
   * called after every send. At rest the agent sends a heartbeat to every
   * peer every 500 ms, so the sweep rides on those sends and wakes the
   * process on no timer of its own (issue 12: a wake-up is what an agent at
   * rest pays for, not the work in it).
   */
  sent() {
    if (this.stopping) return
    const sinceSweep = monotonicNow() - this.lastSweepAt
    if (sinceSweep >= this.pingIntervalMs) this.liveness(false)
    // Sends resume while the timer sweeps every pingIntervalMs: the sends take
    // over, else the timer, always due first, would keep its own wake-ups.
    else if (this.sweepIdle) this.armSweep(this.sweepFallbackMs - sinceSweep, false)
  }

  /** (Re)arms the fallback sweep `ms` from now, replacing the armed one. */
  private armSweep(ms: number, idle: boolean) {
    this.sweepIdle = idle
    // Cleared and set again, not refresh()ed: a refreshed Node timer still
    // wakes the process at its old expiry (to re-queue itself); a cleared one
    // is forgotten as soon as another timer (a heartbeat's) wakes the loop.
    if (this.sweep !== undefined) clearTimeout(this.sweep)
    this.sweep = setTimeout(() => this.liveness(true), ms)
    this.sweep.unref()
  }

  /**
   * The liveness sweep: cuts a peer silent beyond deadAfterMs and pings the
   * others unless messages flow both ways. It runs from sends (`sent`) while
   * there are any; the fallback timer runs it when no send did for
   * sweepFallbackMs, and every pingIntervalMs from then on while none does,
   * as the interval timer it replaces did, so that a dead connection is cut
   * and an idle one kept alive when nothing is sent.
   */
  private liveness(fromTimer: boolean) {
    if (this.stopping) return
    // Monotonic: a wall-clock step must neither cut a healthy peer nor stop watching a silent one.
    const now = monotonicNow()
    this.lastSweepAt = now
    this.armSweep(fromTimer ? this.pingIntervalMs : this.sweepFallbackMs, fromTimer)
    for (const p of this.peers.values()) {
      const c = p.conn
      if (c === undefined || c.ws.readyState !== WebSocket.OPEN) continue
      const silentMs = Math.round(now - (p.lastSeenMonotonic ?? c.openedAtMonotonic))
      if (silentMs > this.deadAfterMs) {
        p.lastError = `nothing received for ${silentMs} ms`
        this.log("warn", `mesh: ${p.name} silent for ${silentMs} ms; cutting the connection`, {
          event: "mesh-peer-silent",
          peer: p.name,
        })
        c.ws.terminate()
        continue
      }
      // Messages both ways within the period: each end has just heard the other.
      const flowing =
        now - p.lastMessageInAt < this.pingIntervalMs &&
        now - p.lastMessageOutAt < this.pingIntervalMs &&
        p.lastMessageInAt >= c.openedAtMonotonic &&
        p.lastMessageOutAt >= c.openedAtMonotonic
      if (!flowing) c.ws.ping()
    }
  }

  // ---- sending ---------------------------------------------------------------------

  encodeFrame(message: A, peer: string | null): Queued | MeshSendError {
    let data: string
    try {
      const encoded = this.encode(message)
      if (Result.isFailure(encoded)) {
        return new MeshSendError({
          peer,
          reason: "encode",
          detail: formatIssue(encoded.failure.issue).replaceAll("\n", " "),
        })
      }
      data = JSON.stringify(encoded.success)
    } catch (e) {
      return new MeshSendError({ peer, reason: "encode", detail: errorText(e) })
    }
    const bytes = Buffer.byteLength(data, "utf8")
    if (bytes > this.maxMessageBytes) {
      return new MeshSendError({
        peer,
        reason: "too-large",
        detail: `${bytes} bytes > limit ${this.maxMessageBytes}`,
      })
    }
    return { data, bytes, at: monotonicNow() }
  }

  enqueue(peer: PeerRuntime, frame: Queued) {
    if (peer.queue.length >= this.queueLimit) {
      peer.queue.shift()
      this.counters.droppedQueueFull += 1
      this.once(
        `queue-full:${peer.name}`,
        "warn",
        `mesh: outbound queue to ${peer.name} is full; dropping its oldest messages`,
        {
          event: "mesh-queue-full",
          peer: peer.name,
        },
      )
    }
    peer.queue.push(frame)
    this.pump(peer)
  }

  private pump(peer: PeerRuntime) {
    const c = peer.conn
    if (c === undefined || c.ws.readyState !== WebSocket.OPEN) return
    const now = monotonicNow()
    this.cork(c)
    while (peer.queue.length > 0 && c.ws.bufferedAmount < this.highWater) {
      const frame = peer.queue.shift() as Queued
      if (now - frame.at > this.queueMaxAgeMs) {
        this.counters.droppedExpired += 1
        continue
      }
      this.counters.messagesOut += 1
      this.counters.bytesOut += frame.bytes
      peer.lastMessageOutAt = now
      c.ws.send(frame.data, () => {
        if (peer.queue.length > 0) this.pump(peer)
      })
    }
  }

  /**
   * Holds the frames sent to a peer in this turn of the event loop, and
   * writes them together at its end: one TLS record and one write instead of
   * one per frame. A follower acknowledges its leader's heartbeat and sends
   * its own round in the same step (core/heartbeat.ts followLeaderPhase); at
   * rest a write, and the wake-up it causes at the peer, costs more than the
   * frame (issue 12). A microtask later is no later for the peer.
   */
  private cork(c: Conn) {
    const socket = c.socket
    if (socket === undefined || c.corked) return
    c.corked = true
    socket.cork()
    queueMicrotask(() => {
      c.corked = false
      socket.uncork()
    })
  }

  isStopping(): boolean {
    return this.stopping
  }

  // ---- views --------------------------------------------------------------------------

  peerStates(): ReadonlyArray<PeerState> {
    return [...this.peers.values()].map((p) => ({
      name: p.name,
      status:
        p.conn !== undefined
          ? "connected"
          : p.dialing !== undefined
            ? "connecting"
            : "disconnected",
      direction: p.conn?.direction ?? (p.dialer ? "outbound" : "inbound"),
      connectedSince: p.conn?.openedAt ?? null,
      lastSeenAt: p.lastSeenAt,
      tlsProtocol: p.conn?.tlsProtocol ?? null,
      ...(p.conn === undefined ? {} : { protocol: p.conn.protocol }),
      queued: p.queue.length,
      reconnects: p.reconnects,
      lastError: p.lastError,
    }))
  }

  metrics(): MeshMetrics {
    const droppedBad = Object.values(this.dropped).reduce((a, b) => a + b, 0)
    const refusedPeers = Object.values(this.refused).reduce((a, b) => a + b, 0)
    return {
      ...this.counters,
      droppedBad,
      droppedBadByReason: { ...this.dropped },
      refusedPeers,
      refusedByReason: { ...this.refused },
      droppedDatagramsByReason: { ...this.droppedDatagrams },
    }
  }
}

// ---------------------------------------------------------------------------
// The Effect service

/** Starts the mesh in the current scope; closing the scope closes every socket. */
export const makeMesh = <A, I>(
  options: MeshOptions<A, I>,
): Effect.Effect<MeshService<A>, MeshStartError, Scope.Scope> =>
  Effect.gen(function* () {
    if (!options.members.some((m) => m.name === options.self)) {
      return yield* new MeshStartError({
        reason: "config",
        detail: `${options.self} is not one of the members (${options.members.map((m) => m.name).join(", ")})`,
      })
    }
    const context = yield* Effect.context<never>()
    const run = Effect.runForkWith(context)
    const log: Log = (level, message, annotations) => {
      const effect =
        level === "debug"
          ? Effect.logDebug(message)
          : level === "info"
            ? Effect.logInfo(message)
            : level === "warn"
              ? Effect.logWarning(message)
              : Effect.logError(message)
      run(
        effect.pipe(Effect.annotateLogs({ component: "mesh", node: options.self, ...annotations })),
      )
    }
    const inbound = yield* Queue.sliding<Inbound<A>>(Math.max(1, options.inboundCapacity ?? 4_096))
    const changes = yield* PubSub.sliding<PeerChange>(1_024)
    const transport = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const t = new Transport(
            options,
            options.deliver ?? ((m) => void Queue.offerUnsafe(inbound, m)),
            (c) => void PubSub.publishUnsafe(changes, c),
            log,
          )
          await t.start()
          return t
        },
        catch: (e) => {
          const code = (e as { code?: unknown } | null)?.code
          const reason =
            typeof code === "string" && /^E(ADDR|ACCES|PERM)/.test(code) ? "listen" : "tls"
          return new MeshStartError({ reason, detail: errorText(e) })
        },
      }),
      (t) =>
        Effect.andThen(
          Effect.promise(() => t.stop()),
          Effect.andThen(Queue.shutdown(inbound), PubSub.shutdown(changes)),
        ),
    )
    yield* Effect.logInfo(
      `mesh listening on ${options.listen.host}:${options.listen.port} as ${options.self}`,
    ).pipe(Effect.annotateLogs({ component: "mesh", event: "mesh-started" }))

    // The core broadcasts as one Send per peer with the same message object: it
    // is encoded (and its datagram copy too) once, for the first peer, and the
    // frame reused for the others (issue 12). Messages are never mutated.
    let lastMessage: A | undefined
    let lastFrame: Queued | undefined
    let lastPayload: Buffer | undefined
    const frameOf = (message: A, peer: string): Queued | MeshSendError => {
      if (lastMessage === message && lastFrame !== undefined)
        return { data: lastFrame.data, bytes: lastFrame.bytes, at: monotonicNow() }
      const frame = transport.encodeFrame(message, peer)
      if (frame instanceof MeshSendError) return frame
      lastMessage = message
      lastFrame = frame
      lastPayload = transport.datagramPayload(message)
      return frame
    }

    const sendNow = (peer: string, message: A): MeshSendError | undefined => {
      if (transport.isStopping())
        return new MeshSendError({ peer, reason: "stopped", detail: "the mesh is shut down" })
      const p = transport.peers.get(peer)
      if (p === undefined) {
        return new MeshSendError({
          peer,
          reason: "unknown-peer",
          detail: `${peer} is not a peer of ${options.self}`,
        })
      }
      const older = options.forPeerVersion?.(message, p.conn?.protocol)
      for (const m of older ?? [message]) {
        const frame = frameOf(m, peer)
        if (frame instanceof MeshSendError) return frame
        transport.enqueue(p, frame)
        transport.sendDatagram(p, lastPayload)
      }
      transport.sent()
      return undefined
    }

    const send = (peer: string, message: A): Effect.Effect<void, MeshSendError> =>
      Effect.suspend(() => {
        const error = sendNow(peer, message)
        return error === undefined ? Effect.void : Effect.fail(error)
      })

    const broadcast = (message: A): Effect.Effect<void, MeshSendError> =>
      Effect.suspend(() => {
        if (transport.isStopping()) {
          return Effect.fail(
            new MeshSendError({ peer: null, reason: "stopped", detail: "the mesh is shut down" }),
          )
        }
        const frame = transport.encodeFrame(message, null)
        if (frame instanceof MeshSendError) return Effect.fail(frame)
        const payload = transport.datagramPayload(message)
        for (const p of transport.peers.values()) {
          transport.enqueue(p, frame)
          transport.sendDatagram(p, payload)
        }
        transport.sent()
        return Effect.void
      })

    return {
      self: options.self,
      peers: [...transport.peers.keys()],
      setMembers: (members) => Effect.sync(() => transport.setMembers(members)),
      send,
      sendNow,
      broadcast,
      inbound: Stream.fromQueue(inbound),
      inboundQueue: inbound,
      peerChanges: Stream.fromPubSub(changes),
      peerStates: Effect.sync(() => transport.peerStates()),
      metrics: Effect.sync(() => transport.metrics()),
    } satisfies MeshService<A>
  })

const MESH_KEY = "mha-agent/adapters/Mesh"

/**
 * The mesh service. One per agent: `Mesh.tag<A>()` always returns the same
 * key, typed with the message type the daemon uses.
 */
export const Mesh = {
  tag: <A>(): Context.Service<MeshService<A>, MeshService<A>> =>
    Context.Service<MeshService<A>>(MESH_KEY),
  make: makeMesh,
  layer: <A, I>(options: MeshOptions<A, I>): Layer.Layer<MeshService<A>, MeshStartError> =>
    Layer.effect(Mesh.tag<A>(), makeMesh(options)),
}

/** Mesh options from a loaded config: reads the CA, certificate and key files. */
export const meshOptionsFromConfig = <A, I>(
  config: Config,
  schema: Schema.Codec<A, I>,
  extra: Partial<Omit<MeshOptions<A, I>, "self" | "members" | "listen" | "tls" | "schema">> = {},
): Effect.Effect<MeshOptions<A, I>, MeshStartError> =>
  Effect.gen(function* () {
    const read = (what: string, path: string) =>
      Effect.tryPromise({
        try: () => readFile(path),
        catch: (e) =>
          new MeshStartError({
            reason: "tls",
            detail: `cannot read mesh ${what} ${path}: ${errorText(e)}`,
          }),
      })
    const ca = yield* read("ca", config.mesh.ca)
    const cert = yield* read("cert", config.mesh.cert)
    const key = yield* read("key", config.mesh.key)
    return {
      maxMessageBytes: config.mesh.max_message_bytes,
      ...extra,
      self: config.node,
      members: config.cluster.members.map((m) => ({
        name: m.name,
        address: m.address,
        port: m.agent_port,
      })),
      listen: meshListen(config),
      tls: { ca, cert, key },
      schema,
    }
  })
