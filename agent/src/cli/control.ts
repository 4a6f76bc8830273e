// The operator's commands that talk to the local daemon over the control
// socket: `mha-agent status`, `switchover --to N`, `pause`, ... Tables for
// people, `--json` for scripts; exit 0 only on success, and one clear line
// when the daemon is down or refuses.
import { connect } from "node:net"
import { Schema } from "effect"
import { ControlReply, type ControlRequest, type StatusView } from "../../../shared/control.ts"

export const DEFAULT_SOCKET = "/run/mha-agent/agent.sock"

const decodeReply = Schema.decodeUnknownSync(ControlReply)

/** A failure to reach the daemon, already worded for the operator. */
export class DaemonUnreachable extends Error {
  override readonly name = "DaemonUnreachable"
}

export const request = (
  socketPath: string,
  req: ControlRequest,
  timeoutMs = 120_000,
): Promise<ControlReply> =>
  new Promise((resolve, reject) => {
    const socket = connect(socketPath)
    let buffer = ""
    const timer = setTimeout(() => {
      socket.destroy()
      reject(
        new DaemonUnreachable(
          `no reply from the agent at ${socketPath} within ${timeoutMs / 1000} s`,
        ),
      )
    }, timeoutMs)
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write(`${JSON.stringify(req)}\n`))
    socket.on("data", (chunk: string) => {
      buffer += chunk
      const nl = buffer.indexOf("\n")
      if (nl < 0) return
      clearTimeout(timer)
      socket.end()
      try {
        resolve(decodeReply(JSON.parse(buffer.slice(0, nl))))
      } catch (e) {
        reject(new DaemonUnreachable(`the agent sent a reply this CLI cannot read: ${String(e)}`))
      }
    })
    socket.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      const why =
        e.code === "ENOENT" || e.code === "ECONNREFUSED"
          ? "the agent is not running (is mha-agent.service started?)"
          : e.code === "EACCES"
            ? "permission denied (run as root or a member of the agent's group)"
            : e.message
      reject(new DaemonUnreachable(`cannot reach the agent at ${socketPath}: ${why}`))
    })
  })

interface Parsed {
  readonly socket: string
  readonly json: boolean
  readonly options: Map<string, string>
  readonly flags: Set<string>
  readonly positional: string[]
}

/** Parses `--socket P`, `--json`, `--name VALUE`, `--flag` and positional words. */
export const parseArgs = (args: ReadonlyArray<string>, valued: ReadonlyArray<string>): Parsed => {
  const options = new Map<string, string>()
  const flags = new Set<string>()
  const positional: string[] = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? ""
    if (a.startsWith("--")) {
      const [name, inline] = a.slice(2).split("=", 2) as [string, string | undefined]
      if (name === "socket" || valued.includes(name)) {
        const value = inline ?? args[++i]
        if (value === undefined) throw new UsageProblem(`--${name} needs a value`)
        options.set(name, value)
      } else flags.add(name)
    } else positional.push(a)
  }
  return {
    socket: options.get("socket") ?? process.env.MHA_AGENT_SOCKET ?? DEFAULT_SOCKET,
    json: flags.has("json"),
    options,
    flags,
    positional,
  }
}

/** A bad command line (the entry point prints it and exits 2). */
export class UsageProblem extends Error {
  override readonly name = "UsageProblem"
}

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length))) ?? []
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")
}

export const formatStatus = (s: StatusView): string => {
  const head = `cluster ${s.cluster}: term ${s.term}, primary ${s.leader ?? "none"}${s.leaderActive ? " (ACTIVE)" : ""}${s.paused ? ", PAUSED" : ""}${s.excluded.length > 0 ? `, excluded ${s.excluded.join(", ")}` : ""}\nthis node: ${s.node} (${s.role}); ${s.electionStatus}`
  const rows = [
    ["NODE", "KIND", "ROLE", "HEALTH", "SOURCE", "LAST HEARD", "ERRANT", "EXECUTED"],
    ...s.members.map((m) => [
      m.name,
      m.kind,
      m.role,
      m.health,
      m.source ?? "-",
      m.lastHeardMs === null ? (m.name === s.node ? "self" : "never") : `${m.lastHeardMs} ms`,
      m.errant === "" ? "-" : m.errant,
      m.executed === "" ? "-" : m.executed,
    ]),
  ]
  return `${head}\n${table(rows)}`
}

const print = (json: boolean, reply: ControlReply, human: () => string): number => {
  if (json) process.stdout.write(`${JSON.stringify(reply)}\n`)
  else if (reply.ok) process.stdout.write(`${human()}\n`)
  else process.stderr.write(`${reply.message}\n`)
  return reply.ok ? 0 : 1
}

/** `mha-agent <command>` for the commands that go through the daemon. */
export const runControlCommand = async (
  command: string,
  args: ReadonlyArray<string>,
): Promise<number> => {
  try {
    return await controlCommand(command, args)
  } catch (e) {
    if (!(e instanceof UsageProblem)) throw e
    process.stderr.write(`mha-agent ${e.message}\n`)
    return 2
  }
}

const controlCommand = async (command: string, args: ReadonlyArray<string>): Promise<number> => {
  const p = parseArgs(args, ["to", "drain-timeout"])
  const node = () => {
    const n = p.positional[0]
    if (n === undefined) throw new UsageProblem(`${command}: name the node`)
    return n
  }
  let req: ControlRequest
  switch (command) {
    case "status":
      req = { _tag: "Status" }
      break
    case "switchover": {
      const to = p.options.get("to")
      if (to === undefined) throw new UsageProblem("switchover: --to NODE is required")
      req = { _tag: "Switchover", to, dryRun: p.flags.has("dry-run"), drainTimeoutMs: null }
      break
    }
    case "failover":
      if (!p.flags.has("force")) {
        throw new UsageProblem(
          "failover: a manual failover may lose transactions the old primary acknowledged; add --force to confirm",
        )
      }
      req = { _tag: "Failover", to: p.options.get("to") ?? null }
      break
    case "pause":
      req = { _tag: "Pause" }
      break
    case "resume":
      req = { _tag: "Resume" }
      break
    case "exclude":
      req = { _tag: "Exclude", node: node() }
      break
    case "include":
      req = { _tag: "Include", node: node() }
      break
    case "ack-recovery":
      req = { _tag: "AckRecovery" }
      break
    case "rejoin":
      req = { _tag: "Rejoin", node: null, force: p.flags.has("force") }
      break
    case "errant-gtid":
      req =
        p.flags.has("fix") && !p.flags.has("dry-run")
          ? { _tag: "FixErrant", dryRun: false }
          : { _tag: "Status" }
      break
    default:
      throw new UsageProblem(`unknown command '${command}'`)
  }
  try {
    const reply = await request(p.socket, req)
    if (command === "errant-gtid" && reply.status !== undefined) {
      const verb = p.flags.has("fix")
        ? "would inject empty transactions on the primary for"
        : "errant on"
      const errant = reply.status.members.filter((m) => m.errant !== "")
      return print(p.json, reply, () =>
        errant.length === 0
          ? "no errant transactions"
          : errant.map((m) => `${verb} ${m.name}: ${m.errant}`).join("\n"),
      )
    }
    return print(p.json, reply, () => (reply.status ? formatStatus(reply.status) : reply.message))
  } catch (e) {
    if (e instanceof DaemonUnreachable) {
      process.stderr.write(`mha-agent ${command}: ${e.message}\n`)
      return 3
    }
    throw e
  }
}
