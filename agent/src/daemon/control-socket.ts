// The control socket: NDJSON over a Unix socket (mode 0660), one request per
// line, one reply per line. Status is answered from the published state;
// everything else becomes an operator request to the core, answered when the
// core replies. A malformed line gets an error reply naming the problem.
import { chmod, mkdir, rm } from "node:fs/promises"
import { createServer, type Server, type Socket } from "node:net"
import { dirname } from "node:path"
import { Effect, Schema } from "effect"
import type pino from "pino"
import {
  ControlReply,
  ControlRequest,
  type HistoryEntry,
  MAX_CONTROL_LINE,
} from "../../../shared/control.ts"
import type { AgentState, OperatorRequest } from "../core/types.ts"
import { statusView } from "./status-view.ts"

export interface ControlSocketOptions {
  readonly path: string
  readonly cluster: () => string
  readonly state: () => AgentState | undefined
  /** Hands a request to the core; resolves with its reply (the core forwards it over the mesh). */
  readonly ask: (request: OperatorRequest) => Promise<ControlReply>
  /** Re-reads the config as SIGHUP does; resolves with what changed or why it was refused. */
  readonly reload: () => Promise<ControlReply>
  readonly log: pino.Logger
  /** This agent's own agent_port: a member added without one gets it (most clusters use one port). */
  readonly agentPort?: () => number
  /**
   * The connected peers speaking a mesh protocol older than a membership change needs
   * (1.3: the record's member list), each as "name (1.2)": a change is refused while any is.
   */
  readonly olderPeers?: () => ReadonlyArray<string>
}

const decodeRequest = Schema.decodeUnknownExit(ControlRequest)
const encodeReply = Schema.encodeSync(ControlReply)

/** The core's request for `r`; undefined for what the daemon answers itself. */
const toOperator = (r: ControlRequest, agentPort: number): OperatorRequest | undefined => {
  switch (r._tag) {
    case "Status":
      return undefined
    case "Switchover":
      return { _tag: "Switchover", to: r.to, dryRun: r.dryRun, drainTimeoutMs: r.drainTimeoutMs }
    case "Failover":
      return { _tag: "Failover", to: r.to }
    case "Pause":
    case "Resume":
    case "AckRecovery":
      return { _tag: r._tag }
    case "FixErrant":
      return { _tag: "FixErrant", dryRun: r.dryRun }
    case "Exclude":
    case "Include":
      return { _tag: r._tag, node: r.node }
    case "Rejoin":
      return { _tag: "Rejoin", node: r.node, force: r.force }
    case "Demote":
      return { _tag: "Demote", node: r.node, source: r.source }
    case "Clone":
      return { _tag: "Clone", recipient: r.recipient, donor: r.donor }
    case "MemberAdd":
      return {
        _tag: "MemberAdd",
        member: {
          name: r.name,
          kind: r.kind,
          address: r.address,
          agentPort: r.agentPort ?? agentPort,
          mysqlPort: r.mysqlPort,
          priority: r.priority,
          promotable: r.kind === "data" && r.promotable,
        },
      }
    case "MemberRemove":
      return { _tag: "MemberRemove", node: r.node }
    case "History":
    case "Reload":
      return undefined
    default: {
      const unhandled: never = r
      return unhandled
    }
  }
}

/** `history`: from this node's copy of the cluster record (committed by a quorum). */
export const historyReply = (state: AgentState): ControlReply => {
  const record = state.hard.record
  const history: Array<HistoryEntry> = record.history.map((h) => ({
    kind: h.kind,
    term: h.term,
    at: new Date(h.atMs).toISOString(),
    reason: h.reason,
    oldPrimary: h.oldPrimary,
    newPrimary: h.newPrimary,
    durationMs: h.durationMs,
  }))
  const n = history.length
  return {
    ok: true,
    message: `${n} failover and switchover entr${n === 1 ? "y" : "ies"} in cluster record ${record.term}.${record.seq}`,
    history,
  }
}

export const answer = async (
  options: ControlSocketOptions,
  line: string,
): Promise<ControlReply> => {
  let json: unknown
  try {
    json = JSON.parse(line)
  } catch (e) {
    return {
      ok: false,
      message: `malformed request: not JSON (${e instanceof Error ? e.message : e})`,
    }
  }
  const decoded = decodeRequest(json)
  if (decoded._tag === "Failure") {
    return {
      ok: false,
      message: `malformed request: ${String(decoded.cause).split("\n").slice(0, 4).join(" ")}`,
    }
  }
  const request = decoded.value
  const state = options.state()
  if (state === undefined) return { ok: false, message: "the agent is starting; retry" }
  if (request._tag === "Reload") return options.reload()
  if (request._tag === "History") return historyReply(state)
  const operator = toOperator(request, options.agentPort?.() ?? 7946)
  if (operator?._tag === "MemberAdd" || operator?._tag === "MemberRemove") {
    // An agent of protocol 1.2 or older would ignore the record's list and count its file.
    const older = options.olderPeers?.() ?? []
    if (older.length > 0)
      return {
        ok: false,
        message: `member change refused: ${older.join(", ")} speak${older.length === 1 ? "s" : ""} a mesh protocol older than 1.3 and would not count the new member list: upgrade every agent first`,
      }
  }
  if (operator === undefined) {
    return { ok: true, message: "status", status: statusView(state, options.cluster()) }
  }
  return options.ask(operator)
}

/**
 * What one local client may hold (issue 16): the socket is for the CLI and
 * scripts, so a client that floods it, sends garbage or never speaks is cut
 * off with a reply saying why, and the agent's memory stays bounded: at most
 * `maxConnections` connections, each with at most one request line of
 * `maxLineBytes` buffered, one request answered at a time (reading pauses
 * meanwhile) and one reply waiting to be written.
 */
export interface ControlSocketLimits {
  readonly maxConnections: number
  readonly maxLineBytes: number
  /**
   * A connection with no request under way that sends nothing for this long
   * is closed, and so is one whose client reads no reply for this long.
   */
  readonly idleTimeoutMs: number
}

export const DEFAULT_CONTROL_LIMITS: ControlSocketLimits = {
  maxConnections: 32,
  maxLineBytes: MAX_CONTROL_LINE,
  idleTimeoutMs: 10_000,
}

const replyLine = (reply: ControlReply): string => `${JSON.stringify(encodeReply(reply))}\n`

/**
 * Says why, then closes. Closing a socket with unread input would reset the
 * connection and the client could lose the reply, so the connection lingers
 * up to {@link LINGER_MS}: what the client sends is read and dropped up to
 * {@link LINGER_BYTES} (a client that read the reply and closes is seen at
 * once), then no longer read (a flood costs no CPU), and closed at the end.
 */
const refuse = (socket: Socket, message: string): void => {
  if (socket.destroyed) return
  // The client may be gone already (EPIPE): never an uncaught error.
  if (socket.listenerCount("error") === 0) socket.on("error", () => socket.destroy())
  socket.removeAllListeners("data")
  let dropped = 0
  socket.on("data", (chunk: string | Buffer) => {
    dropped += chunk.length
    if (dropped > LINGER_BYTES) socket.pause()
  })
  socket.resume()
  const cut = setTimeout(() => socket.destroy(), LINGER_MS)
  cut.unref()
  socket.once("close", () => clearTimeout(cut))
  socket.end(replyLine({ ok: false, message }))
}

const LINGER_MS = 2_000
const LINGER_BYTES = 256 * 1024

/** One client's connection: requests answered one at a time, in order. */
const serveConnection = (
  options: ControlSocketOptions,
  limits: ControlSocketLimits,
  socket: Socket,
): void => {
  let buffer = ""
  let busy = false
  let idle: ReturnType<typeof setTimeout> | undefined
  const armIdle = () => {
    clearTimeout(idle)
    idle = setTimeout(
      () => refuse(socket, `idle for ${limits.idleTimeoutMs} ms with no complete request: closing`),
      limits.idleTimeoutMs,
    )
    idle.unref()
  }
  socket.setEncoding("utf8")
  socket.on("error", () => socket.destroy())
  socket.on("close", () => clearTimeout(idle))
  const next = (): void => {
    if (busy || socket.destroyed) return
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      if (line.length > limits.maxLineBytes) {
        refuse(socket, `request too long: more than ${limits.maxLineBytes} bytes in one line`)
        return
      }
      if (line.trim() === "") continue
      busy = true
      clearTimeout(idle)
      socket.pause()
      answer(options, line)
        .catch(
          (e: unknown): ControlReply => ({ ok: false, message: `internal error: ${String(e)}` }),
        )
        .then((reply) => {
          if (socket.destroyed) return
          const resume = () => {
            busy = false
            armIdle()
            socket.resume()
            next()
          }
          // Backpressure: the next request is read once this reply is out.
          if (socket.write(replyLine(reply))) resume()
          else {
            // A client that stops reading its replies is cut off after the idle timeout.
            const stuck = setTimeout(() => socket.destroy(), limits.idleTimeoutMs)
            stuck.unref()
            socket.once("drain", () => {
              clearTimeout(stuck)
              resume()
            })
          }
        })
      return
    }
    // UTF-16 length, an upper bound on the line's bytes for ASCII JSON.
    if (buffer.length > limits.maxLineBytes) {
      refuse(socket, `request too long: more than ${limits.maxLineBytes} bytes without a newline`)
    }
  }
  socket.on("data", (chunk: string) => {
    buffer += chunk
    armIdle()
    next()
  })
  armIdle()
}

/** Serves the socket until the scope closes. */
export const serveControlSocket = (
  options: ControlSocketOptions,
  limits: ControlSocketLimits = DEFAULT_CONTROL_LIMITS,
) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      await mkdir(dirname(options.path), { recursive: true })
      await rm(options.path, { force: true })
      let open = 0
      const server: Server = createServer((socket: Socket) => {
        if (open >= limits.maxConnections) {
          refuse(socket, `busy: ${open} control connections already open; retry`)
          return
        }
        open++
        socket.once("close", () => open--)
        serveConnection(options, limits, socket)
      })
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject)
        server.listen(options.path, () => resolve())
      })
      await chmod(options.path, 0o660)
      options.log.info({ event: "control-socket" }, `control socket at ${options.path}`)
      return server
    }),
    (server) =>
      Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve())
            rm(options.path, { force: true }).catch(() => {})
          }),
      ),
  )
