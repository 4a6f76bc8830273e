// The read-only HTTP listener (operations.md, HTTP): health checks for load
// balancers (`/primary` for HAProxy's write backend, `/replica` for reads),
// liveness and readiness for supervisors, `/cluster` for people and
// `/metrics` for Prometheus. GET and HEAD only; every answer comes from the
// latest published core state, so a request never waits for the decision
// loop and never changes anything. A bad request gets a 4xx, never a crash.
// `http.listen` changes live on SIGHUP: the new address is bound before the
// old one is closed.
//
// A load balancer's check of a role path may ask to be held (`?wait=MS`, at
// most 5 s): the answer then comes as soon as it differs from what it would
// be now, or after MS with whatever it is then; it comes at once when it
// already differs from what that poller was last told. A poller such as HAProxy
// (next check `inter` after the answer) thus learns of a new primary, or of a
// fenced one, the moment the agent knows, while sending about one check per
// MS instead of one every few tens of milliseconds (packaging/haproxy.cfg.example).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { Effect, Schema } from "effect"
import type pino from "pino"
import { type Config, parseListen } from "../../../shared/config.ts"
import type { HookStats } from "../adapters/hook-runner.ts"
import type { MeshMetrics, PeerState } from "../adapters/mesh.ts"
import type { VipMetrics } from "../adapters/vip.ts"
import { isDataNode } from "../core/config.ts"
import { describeLagSource, localReportedLag } from "../core/lag-heartbeat.ts"
import { leaseRemaining } from "../core/lease.ts"
import { leaderActiveOf, leaderOf } from "../core/roles.ts"
import { clusterWritesBlocked, nodeRole } from "../core/status.ts"
import type { AgentState } from "../core/types.ts"
import { describeWritesBlocked, reportedWritesBlocked } from "../core/writes-blocked.ts"
import type { CertificateExpiry } from "./cert-expiry.ts"
import {
  loopAgeMs,
  CONTENT_TYPE as METRICS_CONTENT_TYPE,
  type MetricsSources,
  renderMetrics,
} from "./metrics.ts"
import { statusView } from "./status-view.ts"

/** The decision loop steps at least every second (run.ts MAX_SLEEP_MS); no step for this long means it is stuck. */
export const LIVENESS_MS = 5_000

export interface HttpView {
  readonly cluster: string
  readonly node: string
  readonly state: AgentState | undefined
  /** Milliseconds since the decision loop's clock last advanced; null before its first step. */
  readonly loopAgeMs: number | null
  /** Builds the `/metrics` page (called only for that path). */
  readonly metrics: () => string
}

export interface HttpReply {
  readonly status: number
  readonly contentType: string
  readonly body: string
  readonly headers?: Readonly<Record<string, string>>
}

const TEXT = "text/plain; charset=utf-8"
const text = (status: number, line: string, headers?: Record<string, string>): HttpReply => ({
  status,
  contentType: TEXT,
  body: `${line}\n`,
  ...(headers === undefined ? {} : { headers }),
})
const ok = (line: string) => text(200, line)
const unavailable = (line: string) => text(503, line)

/** The role paths a load balancer checks: the only ones whose answer may be held. */
const HELD_PATHS: ReadonlySet<string> = new Set([
  "/primary",
  "/read-write",
  "/replica",
  "/read-only",
])
/** The longest hold: well under the listener's requestTimeout and any sane check timeout. */
export const MAX_WAIT_MS = 5_000

/** `wait` in ms: absent or 0 (answer at once), an integer up to MAX_WAIT_MS on a role path. */
export const waitOf = (url: URL): number | string => {
  const raw = url.searchParams.get("wait")
  if (raw === null) return 0
  if (!HELD_PATHS.has(url.pathname))
    return `wait applies to ${[...HELD_PATHS].join(", ")}, not to ${url.pathname}`
  const n = Number(raw)
  if (raw.trim() === "" || !Number.isInteger(n) || n < 0 || n > MAX_WAIT_MS)
    return `wait must be a whole number of milliseconds from 0 to ${MAX_WAIT_MS}, not '${raw}'`
  return n
}

/** `max_lag` in seconds: absent, or a finite number >= 0 (else a message for a 400). */
const maxLagOf = (params: URLSearchParams): number | undefined | string => {
  const raw = params.get("max_lag")
  if (raw === null) return undefined
  const n = raw.trim() === "" ? Number.NaN : Number(raw)
  if (!Number.isFinite(n) || n < 0) return `max_lag must be a number of seconds >= 0, not '${raw}'`
  return n
}

/** Why the state cannot be trusted for a role answer, or undefined when it can. */
const stale = (v: HttpView): string | undefined => {
  if (v.state === undefined) return "the agent is starting: no state yet"
  if (v.loopAgeMs === null) return "the decision loop has not stepped yet"
  if (v.loopAgeMs > LIVENESS_MS)
    return `the decision loop is stalled: no step for ${Math.round(v.loopAgeMs)} ms`
  return undefined
}

const whyNot = (s: AgentState, role: string): string =>
  `${role}: ${leaderOf(s) === null ? "no leader known" : `leader ${leaderOf(s)}${leaderActiveOf(s) ? "" : " (not active yet)"}`}, term ${s.hard.term}`

const primary = (v: HttpView): HttpReply => {
  const why = stale(v)
  if (why !== undefined) return unavailable(why)
  const s = v.state as AgentState
  const role = nodeRole(s)
  if (role !== "ACTIVE") return unavailable(whyNot(s, role))
  // The state is a few ms old: the lease must still hold now, not only when it was published.
  const left = leaseRemaining(s) - (v.loopAgeMs ?? 0)
  if (!s.hard.record.paused && left <= 0) return unavailable("ACTIVE but the lease ran out")
  return ok(`ACTIVE: writable, holding the lease of term ${s.hard.term}`)
}

/** STANDBY within the lag bound, or why not. */
const standby = (v: HttpView, maxLag: number | undefined): HttpReply => {
  const why = stale(v)
  if (why !== undefined) return unavailable(why)
  const s = v.state as AgentState
  const role = nodeRole(s)
  if (role !== "STANDBY") return unavailable(whyNot(s, role))
  const replica = s.local.probe?.replica ?? null
  const reported = localReportedLag(s)
  const lag = reported.seconds
  const source = replica?.source ?? "?"
  // Which lag, when the heartbeat table is configured (or why it is not used yet).
  const from = s.config.lagHeartbeat === true ? ` (from ${describeLagSource(reported.source)})` : ""
  if (maxLag !== undefined) {
    if (lag === null) return unavailable(`STANDBY of ${source}, but its lag is unknown${from}`)
    if (lag > maxLag)
      return unavailable(`STANDBY of ${source}, lag ${lag} s > max_lag ${maxLag} s${from}`)
  }
  return ok(
    `STANDBY: replicating from ${source}, lag ${lag === null ? "unknown" : `${lag} s`}${from}`,
  )
}

const readOnly = (v: HttpView, maxLag: number | undefined): HttpReply => {
  const asPrimary = primary(v)
  if (asPrimary.status === 200) return asPrimary
  const asReplica = standby(v, maxLag)
  if (asReplica.status !== 200) return asReplica
  const level = (v.state as AgentState).local.health.level
  if (level === "CRITICAL" || level === "FAIL") return unavailable(`STANDBY but health ${level}`)
  return asReplica
}

const health = (v: HttpView): HttpReply => {
  const why = stale(v)
  if (why !== undefined) return unavailable(why)
  const s = v.state as AgentState
  if (!isDataNode(s.config, s.self)) {
    const blocked = clusterWritesBlocked(s)
    return ok(
      `witness: the agent runs (no mysqld to check)${blocked === null ? "" : `; the primary ${leaderOf(s) ?? "?"} says ${blocked}`}`,
    )
  }
  if (s.local.lastProbeAt === null) return unavailable("mysqld not probed yet")
  // The agent could not do its job here (fence, promote): say so, with the names.
  const missing = s.local.privileges.missing ?? []
  const lacks =
    missing.length === 0
      ? null
      : `the agent's MySQL user lacks ${missing
          .map((m) => `${m.privilege} (needed by ${m.neededBy.join(", ")})`)
          .join("; ")}: this node will not stand for election`
  const level = s.local.health.level
  if (!s.local.up)
    return unavailable(`mysqld is down (health ${level})${lacks === null ? "" : `, or ${lacks}`}`)
  if (lacks !== null) return unavailable(`mysqld is up (health ${level}) but ${lacks}`)
  // On the primary, every commit waits for acknowledgements that cannot come: not healthy.
  const own = reportedWritesBlocked(s)
  if (own !== null)
    return unavailable(`mysqld is up (health ${level}) but ${describeWritesBlocked(own)}`)
  const blocked = clusterWritesBlocked(s)
  if (blocked !== null)
    return ok(`mysqld is up (health ${level}); the primary ${leaderOf(s) ?? "?"} says ${blocked}`)
  return ok(`mysqld is up (health ${s.local.health.level})`)
}

const liveness = (v: HttpView): HttpReply => {
  if (v.loopAgeMs === null) return unavailable("the decision loop has not stepped yet")
  if (v.loopAgeMs > LIVENESS_MS)
    return unavailable(`the decision loop is stalled: no step for ${Math.round(v.loopAgeMs)} ms`)
  return ok(`the decision loop is alive (last step ${Math.round(v.loopAgeMs)} ms ago)`)
}

const readiness = (v: HttpView): HttpReply => {
  const why = stale(v)
  if (why !== undefined) return unavailable(why)
  const s = v.state as AgentState
  if (isDataNode(s.config, s.self) && s.local.lastProbeAt === null)
    return unavailable("mysqld not probed yet")
  if (s.role._tag === "Leader") return ok(`joined: leader of term ${s.hard.term}`)
  if (leaderOf(s) === null) return unavailable(`no leader known yet (term ${s.hard.term})`)
  return ok(`joined: leader ${leaderOf(s)}, term ${s.hard.term}`)
}

const cluster = (v: HttpView): HttpReply => ({
  status: 200,
  contentType: "application/json; charset=utf-8",
  body: `${JSON.stringify(
    v.state === undefined
      ? { cluster: v.cluster, node: v.node, starting: true }
      : statusView(v.state, v.cluster),
  )}\n`,
})

export const PATHS = [
  "/primary",
  "/read-write",
  "/replica",
  "/read-only",
  "/health",
  "/liveness",
  "/readiness",
  "/cluster",
  "/metrics",
] as const

/** The answer to one request (pure but for `metrics()`); never throws for any input. */
export const answerHttp = (v: HttpView, method: string | undefined, rawUrl: string | undefined) => {
  if (method !== "GET" && method !== "HEAD") {
    return text(405, `method ${method ?? "?"} not allowed: GET or HEAD`, { Allow: "GET, HEAD" })
  }
  let url: URL
  try {
    url = new URL(rawUrl ?? "/", "http://agent")
  } catch {
    return text(400, "malformed request target")
  }
  const maxLag = maxLagOf(url.searchParams)
  if (typeof maxLag === "string") return text(400, maxLag)
  const wait = waitOf(url)
  if (typeof wait === "string") return text(400, wait)
  switch (url.pathname) {
    case "/primary":
    case "/read-write":
      return primary(v)
    case "/replica":
      return standby(v, maxLag)
    case "/read-only":
      return readOnly(v, maxLag)
    case "/health":
      return health(v)
    case "/liveness":
      return liveness(v)
    case "/readiness":
      return readiness(v)
    case "/cluster":
      return cluster(v)
    case "/metrics":
      return { status: 200, contentType: METRICS_CONTENT_TYPE, body: v.metrics() }
    default:
      return text(404, `unknown path ${url.pathname}: one of ${PATHS.join(" ")}`)
  }
}

// ---------------------------------------------------------------------------
// The listener

export class HttpStartError extends Schema.TaggedError<HttpStartError>()("HttpStartError", {
  listen: Schema.String,
  detail: Schema.String,
}) {
  override get message(): string {
    return `the HTTP listener could not start on ${this.listen}: ${this.detail}`
  }
}

export interface HttpOptions {
  readonly config: () => Config
  /**
   * Calls `listener` after every replacement of the config (a reload);
   * returns its removal. Without it a new `http.listen` is not followed.
   */
  readonly onConfigReplaced?: (listener: () => void) => () => void
  readonly state: () => AgentState | undefined
  readonly log: pino.Logger
  /** Counter sources for `/metrics`; each is optional. */
  readonly mesh?: {
    readonly metrics: Effect.Effect<MeshMetrics>
    readonly peerStates: Effect.Effect<ReadonlyArray<PeerState>>
  }
  readonly vip?: { readonly metrics: Effect.Effect<VipMetrics> } | undefined
  readonly hooks?: { readonly stats: Effect.Effect<HookStats> }
  /** The certificates in use, for `/metrics` (cert-expiry.ts). */
  readonly certificates?: ReadonlyArray<CertificateExpiry>
  /** Calls `listener` after every state the decision loop publishes; returns its removal. */
  readonly onPublish?: (listener: () => void) => () => void
}

const readSync = <A>(e: Effect.Effect<A> | undefined): A | undefined => {
  if (e === undefined) return undefined
  try {
    return Effect.runSync(e)
  } catch {
    return undefined
  }
}

export const viewOf = (options: HttpOptions): HttpView => {
  const config = options.config()
  const state = options.state()
  return {
    cluster: config.cluster.name,
    node: config.node,
    state,
    loopAgeMs: loopAgeMs(),
    metrics: () => {
      const meshMetrics = readSync(options.mesh?.metrics)
      const peers = readSync(options.mesh?.peerStates)
      const vip = readSync(options.vip?.metrics)
      const hooks = readSync(options.hooks?.stats)
      const sources: MetricsSources = {
        cluster: config.cluster.name,
        node: config.node,
        state,
        ...(meshMetrics === undefined
          ? {}
          : { mesh: { metrics: meshMetrics, peers: peers ?? [] } }),
        ...(vip === undefined ? {} : { vip }),
        ...(hooks === undefined ? {} : { hooks }),
        ...(options.certificates === undefined ? {} : { certificates: options.certificates }),
      }
      return renderMetrics(sources)
    },
  }
}

/** At most this many answers are held at once; past it, requests are answered at once. */
const MAX_HELD = 256
let held = 0

/**
 * What each poller was last told on each held path (key: its address, the
 * path and query). A check is held only while the answer is still what the
 * poller was told: a status that changed between two of its checks (in its
 * `inter`) is answered at once. Held from the change instead, a poller would
 * go on believing the old one for a whole wait: HAProxy kept a stopped
 * primary UP for a second beside the new one (CI of f0e2cd8). A poller not
 * seen before is answered at once too.
 */
const told = new Map<string, number>()
const MAX_POLLERS = 256

/** The poller's address and what it asks, whatever it asks to wait. */
const pollerKey = (req: IncomingMessage): string =>
  `${req.socket.remoteAddress ?? "?"} ${(req.url ?? "/").replace(/([?&])wait=\d*&?/, "$1")}`

const noteTold = (key: string, status: number): void => {
  told.delete(key)
  told.set(key, status)
  // The oldest first: a Map keeps insertion order.
  if (told.size > MAX_POLLERS) told.delete(told.keys().next().value as string)
}

const answerNow = (options: HttpOptions, req: IncomingMessage): HttpReply => {
  try {
    return answerHttp(viewOf(options), req.method, req.url)
  } catch (e) {
    options.log.error({ event: "http-error", path: req.url }, String(e))
    return text(500, "internal error")
  }
}

/** The `wait` of a valid role-path request, 0 for anything else (answered as it is). */
const holdOf = (req: IncomingMessage): number => {
  try {
    const wait = waitOf(new URL(req.url ?? "/", "http://agent"))
    return typeof wait === "number" ? wait : 0
  } catch {
    return 0
  }
}

const handle = (options: HttpOptions, req: IncomingMessage, res: ServerResponse): void => {
  // A body is never read: drain it so that the connection can be reused.
  req.resume()
  const reply = answerNow(options, req)
  const wait = holdOf(req)
  const onPublish = options.onPublish
  const roleAnswer = reply.status === 200 || reply.status === 503
  if (wait === 0 || onPublish === undefined || held >= MAX_HELD || !roleAnswer) {
    send(req, res, reply)
    return
  }
  const key = pollerKey(req)
  if (told.get(key) !== reply.status) {
    noteTold(key, reply.status)
    send(req, res, reply)
    return
  }
  // Held: answered when the status moves away from this one, or after `wait`.
  held++
  let done = false
  let timer: ReturnType<typeof setTimeout> | undefined
  let removeListener: () => void = () => {}
  const finish = (answer: HttpReply | null) => {
    if (done) return
    done = true
    held--
    clearTimeout(timer)
    removeListener()
    if (answer === null) return
    noteTold(key, answer.status)
    send(req, res, answer)
  }
  removeListener = onPublish(() => {
    const now = answerNow(options, req)
    if (now.status !== reply.status) finish(now)
  })
  timer = setTimeout(() => finish(answerNow(options, req)), wait)
  // The poller gave up (its check timeout) or went away: nothing to answer.
  res.on("close", () => finish(null))
}

const send = (req: IncomingMessage, res: ServerResponse, reply: HttpReply): void => {
  try {
    res.writeHead(reply.status, {
      "Content-Type": reply.contentType,
      "Content-Length": Buffer.byteLength(reply.body),
      "Cache-Control": "no-store",
      ...reply.headers,
    })
    res.end(req.method === "HEAD" ? undefined : reply.body)
  } catch {
    res.destroy()
  }
}

const listenOn = (options: HttpOptions, listen: string): Promise<Server> => {
  const address = parseListen(listen)
  if (address === undefined) return Promise.reject(new Error(`bad listen address '${listen}'`))
  const server = createServer(
    { requestTimeout: 10_000, headersTimeout: 5_000, maxHeaderSize: 16 * 1024 },
    (req, res) => handle(options, req, res),
  )
  server.maxConnections = 1024
  server.keepAliveTimeout = 5_000
  server.on("clientError", (_err, socket) => {
    if (socket.writable && !socket.destroyed) {
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    } else socket.destroy()
  })
  return new Promise<Server>((resolve, reject) => {
    server.once("error", reject)
    server.listen(
      { port: address.port, host: address.host === "" ? undefined : address.host },
      () => {
        server.off("error", reject)
        server.on("error", (e) => options.log.error({ event: "http-error" }, String(e)))
        resolve(server)
      },
    )
  })
}

const closeServer = (server: Server): Promise<void> =>
  new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })

/**
 * Serves HTTP on `config.http.listen` until the scope closes; fails with
 * HttpStartError when the address cannot be bound at start. A later change of
 * `http.listen` (SIGHUP; `onConfigReplaced` tells) moves the listener; if the
 * new address cannot be bound the old one stays and the error is logged.
 */
export const serveHttp = (options: HttpOptions) =>
  Effect.gen(function* () {
    let listen = options.config().http.listen
    let server: Server = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => listenOn(options, listen),
        catch: (e) =>
          new HttpStartError({ listen, detail: e instanceof Error ? e.message : String(e) }),
      }),
      () => Effect.promise(() => closeServer(server)),
    )
    options.log.info({ event: "http-listening" }, `HTTP on ${listen}`)
    /** The last value of http.listen acted on (bound, or tried and refused). */
    let tried = listen
    let moving = false
    let closed = false
    const follow = async (): Promise<void> => {
      if (moving) return
      moving = true
      try {
        // Again while a reload during the move changed http.listen once more.
        for (let wanted = options.config().http.listen; wanted !== tried && !closed; ) {
          tried = wanted
          try {
            const next = await listenOn(options, wanted)
            if (closed) {
              await closeServer(next)
              return
            }
            const old = server
            server = next
            options.log.info({ event: "http-listening" }, `HTTP moved from ${listen} to ${wanted}`)
            listen = wanted
            await closeServer(old)
          } catch (e) {
            options.log.error(
              { event: "http-error" },
              `HTTP stays on ${listen}: ${wanted} could not be bound: ${e instanceof Error ? e.message : String(e)}`,
            )
          }
          wanted = options.config().http.listen
        }
      } finally {
        moving = false
      }
    }
    // Told by the reload that replaced the config, not a timer that looks at
    // it: a timer woke the agent at rest once a second for nothing (issue 12).
    const onReplaced = options.onConfigReplaced
    if (onReplaced !== undefined) {
      yield* Effect.acquireRelease(
        Effect.sync(() => onReplaced(() => void follow())),
        (remove) =>
          Effect.sync(() => {
            closed = true
            remove()
          }),
      )
    }
  })
