// Local clients abusing an agent's control socket (issue 16 item 4): many
// clients looping `status` (a new connection per request, as the CLI does)
// and clients sending garbage: binary, 10 MB lines, endless streams of bad
// lines, and connections that never speak. Every reply is read and judged:
// a status, or a refusal that says why.
import { connect, type Socket } from "node:net"

export interface AbuseOptions {
  readonly socketPath: string
  readonly statusClients: number
  readonly garbageClients: number
  readonly durationMs: number
}

export interface AbuseResult {
  /** Status requests answered with a status. */
  statusOk: number
  /** Status requests refused, by message. */
  refused: Map<string, number>
  /** Replies that were neither: the test fails on any. */
  wrong: Array<string>
  /** Garbage connections that got an error reply (the line), by kind. */
  garbageAnswered: Map<string, number>
  /** Garbage connections closed by the agent. */
  garbageClosed: number
  /** Socket errors seen by any client, by code. */
  errors: Map<string, number>
}

const GARBAGE = ["binary", "long-line", "bad-lines", "unread-status", "silent"] as const

/** Socket errors the clients saw, by code (a connection reset loses the reply). */
const errors = new Map<string, number>()

const firstLine = (socket: Socket): Promise<string | null> =>
  new Promise((resolve) => {
    let buffer = ""
    socket.setEncoding("utf8")
    const done = (line: string | null) => {
      socket.removeAllListeners("data")
      resolve(line)
    }
    socket.on("data", (chunk: string) => {
      buffer += chunk
      const nl = buffer.indexOf("\n")
      if (nl >= 0) done(buffer.slice(0, nl))
    })
    socket.on("close", () => done(null))
    socket.on("error", (e: NodeJS.ErrnoException) => {
      errors.set(e.code ?? e.message, (errors.get(e.code ?? e.message) ?? 0) + 1)
      done(null)
    })
  })

const statusOnce = async (path: string, result: AbuseResult): Promise<void> => {
  const socket = connect(path)
  const line = firstLine(socket)
  const started = Date.now()
  let connectedAfter = -1
  socket.on("connect", () => {
    connectedAfter = Date.now() - started
    socket.write(`${JSON.stringify({ _tag: "Status" })}\n`)
  })
  const got = await line
  socket.destroy()
  if (got === null) {
    result.wrong.push(
      `status: the connection closed without a reply after ${Date.now() - started} ms (connected after ${connectedAfter} ms)`,
    )
    return
  }
  const reply = JSON.parse(got) as { ok: boolean; message: string; status?: unknown }
  if (reply.ok && reply.status !== undefined) result.statusOk++
  else if (!reply.ok && /busy|retry/.test(reply.message)) {
    const key = reply.message.replace(/\d+/g, "N")
    result.refused.set(key, (result.refused.get(key) ?? 0) + 1)
  } else result.wrong.push(`status: ${got.slice(0, 200)}`)
}

/** Writes `chunk` again and again, with backpressure, until the socket closes or `until`. */
const flood = async (
  socket: Socket,
  chunk: Buffer | string,
  until: number,
  answered: { done: boolean },
): Promise<void> => {
  while (!socket.destroyed && !answered.done && Date.now() < until) {
    if (!socket.write(chunk)) {
      await new Promise<void>((r) => {
        socket.once("drain", r)
        socket.once("close", r)
      })
    }
  }
}

const garbageOnce = async (
  path: string,
  kind: (typeof GARBAGE)[number],
  until: number,
  result: AbuseResult,
  /** Hang up once the reply is read (the prelude), instead of waiting for the agent to. */
  leaveOnReply = false,
): Promise<void> => {
  const socket = connect(path)
  socket.on("error", () => {})
  await new Promise<void>((r) => {
    socket.once("connect", r)
    socket.once("close", r)
  })
  // Each sends until the agent replies or closes the connection (the reply
  // read, as a client would), or the run ends; unread-status never reads.
  const answered = { done: false }
  const line =
    kind === "unread-status"
      ? Promise.resolve(null)
      : firstLine(socket).then((l) => {
          answered.done = true
          return l
        })
  const closed = new Promise<void>((r) => socket.once("close", r))
  switch (kind) {
    case "binary": {
      // Not UTF-8, and no newline ever.
      const bytes = Buffer.alloc(64 * 1024)
      for (let i = 0; i < bytes.length; i++) bytes[i] = 0x80 + ((i * 131 + 7) % 128)
      void flood(socket, bytes, until, answered)
      break
    }
    case "long-line":
      // 10 MB lines, written 1 MB at a time.
      void flood(socket, Buffer.alloc(1024 * 1024, "x"), until, answered)
      break
    case "bad-lines":
      void flood(socket, "{not json\n".repeat(1000), until, answered)
      break
    case "unread-status":
      // Requests, and never a reply read.
      socket.pause()
      void flood(socket, `${JSON.stringify({ _tag: "Status" })}\n`.repeat(100), until, answered)
      break
    case "silent":
      break
  }
  const got = await Promise.race([
    line,
    new Promise<null>((r) => setTimeout(() => r(null), Math.max(0, until - Date.now()))),
  ])
  if (typeof got === "string") {
    const reply = JSON.parse(got) as { ok: boolean; message: string }
    if (reply.ok) result.wrong.push(`${kind}: ok reply ${got.slice(0, 200)}`)
    const key = `${kind}: ${reply.message.replace(/\d+/g, "N").slice(0, 80)}`
    result.garbageAnswered.set(key, (result.garbageAnswered.get(key) ?? 0) + 1)
    if (leaveOnReply) {
      socket.destroy()
      return
    }
  }
  await Promise.race([closed, new Promise((r) => setTimeout(r, Math.max(0, until - Date.now())))])
  if (socket.destroyed || socket.readableEnded) result.garbageClosed++
  socket.destroy()
}

export const abuseControlSocket = async (options: AbuseOptions): Promise<AbuseResult> => {
  const result: AbuseResult = {
    statusOk: 0,
    refused: new Map(),
    wrong: [],
    garbageAnswered: new Map(),
    garbageClosed: 0,
    errors,
  }
  errors.clear()
  const loops: Array<Promise<void>> = []
  // One garbage client of each kind that gets a reply first, alone: in the flood a quiet
  // machine's 200 status loopers keep all 32 connection slots taken, and every garbage client
  // then hears only "busy" (seen: 2384 statuses in 6 s, not one garbage client served).
  for (const kind of ["binary", "long-line", "bad-lines"] as const)
    await garbageOnce(options.socketPath, kind, Date.now() + 1_000, result, true)
  // The flood gets its whole duration after the prelude (in CI the prelude's time came out of
  // it: 90 statuses where the unit test wants 200).
  const until = Date.now() + options.durationMs
  for (let i = 0; i < options.statusClients; i++) {
    loops.push(
      (async () => {
        while (Date.now() < until) await statusOnce(options.socketPath, result)
      })(),
    )
  }
  for (let i = 0; i < options.garbageClients; i++) {
    const kind = GARBAGE[i % GARBAGE.length] ?? "silent"
    loops.push(
      (async () => {
        while (Date.now() < until) await garbageOnce(options.socketPath, kind, until, result)
      })(),
    )
  }
  await Promise.all(loops)
  return result
}
