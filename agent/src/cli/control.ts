// `mha-agent <command>` for the commands the running agent answers over its
// control socket: parse the command line (commands.ts), send one request, show
// the reply. Tables for people, `--json` for scripts; exit 0 only on success,
// otherwise one line on stderr: 1 refused or failed, 2 bad command line,
// 3 the agent could not be reached.
import type { ControlReply } from "../../../shared/control.ts"
import { parseArgs, parseSeconds, UsageProblem } from "./args.ts"
import {
  COMMON_OPTIONS,
  controlCommands,
  DEFAULT_SOCKET,
  DEFAULT_TIMEOUT_S,
  type Plan,
  type Rendering,
} from "./commands.ts"
import { oneLine } from "./format.ts"
import { type Io, processIo } from "./io.ts"
import { renderErrant, renderHistory, renderStatus, renderSteps, renderTopology } from "./render.ts"
import { BadReply, DaemonUnreachable, request } from "./socket.ts"

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2
export const EXIT_UNREACHABLE = 3

const render = (rendering: Rendering, reply: ControlReply): string => {
  const by = reply.answeredBy === undefined ? "" : `${reply.answeredBy}: `
  switch (rendering) {
    case "status":
      return reply.status ? renderStatus(reply.status) : reply.message
    case "topology":
      return reply.status ? renderTopology(reply.status) : reply.message
    case "errant":
      return reply.status ? renderErrant(reply.status) : reply.message
    case "history":
      return by + renderHistory(reply.history ?? [])
    case "steps":
      return by + renderSteps(reply)
    case "message":
      return by + reply.message
    default: {
      const unhandled: never = rendering
      return unhandled
    }
  }
}

/** What a command line asks for: the socket, the plan, `--json`, the reply timeout. */
export const planCommand = (
  command: string,
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>> = process.env,
): { socket: string; json: boolean; timeoutMs: number; plan: Plan } => {
  const spec = Object.hasOwn(controlCommands, command) ? controlCommands[command] : undefined
  if (spec === undefined) throw new UsageProblem(`unknown command '${command}'`)
  const p = parseArgs(
    args,
    [...spec.options, ...COMMON_OPTIONS],
    spec.maxPositional ?? (spec.positional ? 1 : 0),
  )
  if (spec.positional?.required && p.positional.length === 0) {
    throw new UsageProblem(`${spec.positional.name} is required`)
  }
  const plan = spec.plan(p)
  const timeout = p.values.get("--timeout")
  const timeoutS =
    timeout === undefined
      ? (plan.timeoutS ?? DEFAULT_TIMEOUT_S)
      : parseSeconds("--timeout", timeout)
  if (timeoutS <= 0) throw new UsageProblem("--timeout must be more than 0 seconds")
  return {
    socket: p.values.get("--socket") ?? env.MHA_AGENT_SOCKET ?? DEFAULT_SOCKET,
    json: p.flags.has("--json"),
    timeoutMs: Math.round(timeoutS * 1000),
    plan,
  }
}

/** Runs one control command; resolves to its exit code. */
export const runControlCommand = async (
  command: string,
  args: ReadonlyArray<string>,
  io: Io = processIo,
): Promise<number> => {
  let planned: ReturnType<typeof planCommand>
  try {
    planned = planCommand(command, args)
  } catch (e) {
    if (!(e instanceof UsageProblem)) throw e
    io.err(`mha-agent ${command}: ${e.message} (see 'mha-agent ${command} --help')\n`)
    return EXIT_USAGE
  }
  const { socket, json, timeoutMs, plan } = planned
  if (plan.printOnly !== undefined) {
    io.out(plan.printOnly)
    return EXIT_OK
  }
  if (plan.request._tag === "Failover" && !json) {
    io.err(
      "warning: a forced failover may lose transactions the old primary acknowledged and no replica received\n",
    )
  }
  let reply: ControlReply
  try {
    reply = await request(socket, plan.request, timeoutMs)
  } catch (e) {
    if (e instanceof DaemonUnreachable) {
      io.err(`mha-agent: ${e.message}\n`)
      return EXIT_UNREACHABLE
    }
    if (e instanceof BadReply) {
      io.err(`mha-agent: ${e.message}\n`)
      return EXIT_FAILED
    }
    throw e
  }
  if (json) io.out(`${JSON.stringify(reply)}\n`)
  if (!reply.ok) {
    io.err(`${reply.answeredBy ?? "mha-agent"}: ${oneLine(reply.message)}\n`)
    return EXIT_FAILED
  }
  if (!json) io.out(`${render(plan.rendering, reply)}\n`)
  return EXIT_OK
}
