// One request to the local agent over its control socket (NDJSON: one line
// out, one line back), with every way of not getting an answer worded for the
// operator: not running, permission denied, no reply in time.
import { connect } from "node:net"
import type { ControlReply, ControlRequest } from "../../../shared/control.ts"
import { decodeReply } from "./reply.ts"

/** The agent could not be reached or did not answer (exit 3); the message is one line. */
export class DaemonUnreachable extends Error {
  override readonly name = "DaemonUnreachable"
}

/** The agent answered with something this CLI cannot read (exit 1). */
export class BadReply extends Error {
  override readonly name = "BadReply"
}

/** Why connecting failed, by errno code: `ENOENT (is mha-agent running?)`. */
export const describeSocketError = (code: string | undefined, message: string): string => {
  switch (code) {
    case "ENOENT":
    case "ECONNREFUSED":
      return `${code} (is mha-agent running?)`
    case "EACCES":
    case "EPERM":
      return `permission denied (${code}): run as root or as a member of the agent's group`
    case "ENOTSOCK":
      return `${code} (not a socket: is --socket right?)`
    default:
      return code === undefined ? message : `${code} (${message})`
  }
}

export const request = (
  socketPath: string,
  req: ControlRequest,
  timeoutMs: number,
): Promise<ControlReply> =>
  new Promise((resolve, reject) => {
    const where = `the agent at ${socketPath}`
    let settled = false
    const settle = (f: () => void) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      f()
    }
    const socket = connect(socketPath)
    let buffer = ""
    const timer = setTimeout(
      () =>
        settle(() =>
          reject(new DaemonUnreachable(`no reply from ${where} within ${timeoutMs / 1000} s`)),
        ),
      timeoutMs,
    )
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write(`${JSON.stringify(req)}\n`))
    socket.on("data", (chunk: string) => {
      buffer += chunk
      const nl = buffer.indexOf("\n")
      if (nl < 0) return
      const line = buffer.slice(0, nl)
      settle(() => {
        try {
          resolve(decodeReply(JSON.parse(line)))
        } catch (e) {
          const why = e instanceof Error ? e.message.split("\n")[0] : String(e)
          reject(new BadReply(`${where} sent a reply this CLI cannot read: ${why}`))
        }
      })
    })
    socket.on("end", () =>
      settle(() => reject(new DaemonUnreachable(`${where} closed the connection without a reply`))),
    )
    socket.on("error", (e: NodeJS.ErrnoException) =>
      settle(() =>
        reject(
          new DaemonUnreachable(`cannot reach ${where}: ${describeSocketError(e.code, e.message)}`),
        ),
      ),
    )
  })
