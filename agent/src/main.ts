/**
 * The `mha-agent` entry point: one binary for the daemon (`mha-agent run`,
 * what the systemd unit starts) and the operator's CLI. It only dispatches:
 * every command is one entry of {@link commands}, and its code is loaded
 * with a dynamic `import()` when that command runs, so `mha-agent version`
 * starts without loading Effect, mysql2 or the mesh (esbuild turns each
 * dynamic import into a lazily initialised part of the one bundle).
 *
 * Adding a command: write a module (`./cli/status.ts`, `./daemon/run.ts`)
 * that exports `main(args: ReadonlyArray<string>): Promise<number>` (the
 * arguments after the command's name; the result is the exit code), and add
 * an entry `name: { usage, summary, run: (args) => load(import("./cli/x.ts"), args) }`.
 * A module reports a bad command line by throwing {@link UsageError} (exit 2,
 * one line on stderr); any other throw is an internal error (exit 70).
 *
 * Exit codes: 0 success, 1 the command failed, 2 bad command line, 3 the
 * agent could not be reached, 70 internal error (sysexits EX_SOFTWARE),
 * 78 `run` with an invalid config (EX_CONFIG: systemd does not retry it).
 */
import pkg from "../../package.json" with { type: "json" }

/** Filled in at build time by packaging/build.sh (esbuild `define`); absent when run from source. */
declare const __MHA_BUILD__: { readonly version: string; readonly commit: string } | undefined

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2
export const EXIT_SOFTWARE = 70

/** A bad command line: printed as one line, exit 2. */
export class UsageError extends Error {
  override readonly name = "UsageError"
}

export interface Command {
  /** The arguments, for `--help`: `check-config [--config FILE]`. */
  readonly usage: string
  /** One line for `mha-agent --help`. */
  readonly summary: string
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  readonly run: (args: ReadonlyArray<string>) => Promise<number>
}

export interface BuildInfo {
  readonly version: string
  readonly commit: string
  readonly node: string
}

export const buildInfo = (): BuildInfo => {
  const built = typeof __MHA_BUILD__ === "undefined" ? undefined : __MHA_BUILD__
  return {
    version: built?.version ?? pkg.version,
    commit: built?.commit ?? "unknown",
    node: process.version,
  }
}

export const DEFAULT_CONFIG = "/etc/mha-agent/config.yaml"

/** A command module's shape (see the header). */
export interface CommandModule {
  readonly main: (args: ReadonlyArray<string>) => Promise<number>
}

/** Runs a lazily imported command module: `run: (args) => load(import("./cli/x.ts"), args)`. */
export const load = async (
  module: Promise<CommandModule>,
  args: ReadonlyArray<string>,
): Promise<number> => (await module).main(args)

// ---------------------------------------------------------------------------
// Small argument helpers (commands with richer options bring their own parser)
// ---------------------------------------------------------------------------

/**
 * Parses `--name VALUE` / `--name=VALUE` options and `--flag` switches; any
 * other argument is a usage error naming it.
 */
export const parseOptions = (
  command: string,
  args: ReadonlyArray<string>,
  spec: { readonly values?: ReadonlyArray<string>; readonly flags?: ReadonlyArray<string> },
): { readonly values: ReadonlyMap<string, string>; readonly flags: ReadonlySet<string> } => {
  const values = new Map<string, string>()
  const flags = new Set<string>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? ""
    const eq = arg.indexOf("=")
    const name = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg
    if (spec.values?.includes(name)) {
      let value: string | undefined
      if (eq > 0 && name !== arg) value = arg.slice(eq + 1)
      else {
        value = args[i + 1]
        i++
      }
      if (value === undefined || value === "") {
        throw new UsageError(`${command}: ${name} needs a value`)
      }
      values.set(name, value)
    } else if (spec.flags?.includes(arg)) {
      flags.add(arg)
    } else {
      throw new UsageError(
        `${command}: unexpected argument '${arg}' (see 'mha-agent ${command} --help')`,
      )
    }
  }
  return { values, flags }
}

// ---------------------------------------------------------------------------
// Built-in commands
// ---------------------------------------------------------------------------

const version = async (args: ReadonlyArray<string>): Promise<number> => {
  const { flags } = parseOptions("version", args, { flags: ["--json"] })
  const info = buildInfo()
  if (flags.has("--json")) process.stdout.write(`${JSON.stringify(info)}\n`)
  else
    process.stdout.write(`mha-agent ${info.version}\ncommit: ${info.commit}\nnode: ${info.node}\n`)
  return EXIT_OK
}

const checkConfig = async (args: ReadonlyArray<string>): Promise<number> => {
  const { values } = parseOptions("check-config", args, { values: ["--config"] })
  const file = values.get("--config") ?? DEFAULT_CONFIG
  const [{ Effect }, { loadConfig }] = await Promise.all([
    import("effect"),
    import("./daemon/config-load.ts"),
  ])
  const result = await Effect.runPromise(Effect.result(loadConfig(file)))
  if (result._tag === "Failure") {
    process.stderr.write(`${result.failure.message}\n`)
    return EXIT_FAILED
  }
  const c = result.success
  const members = c.cluster.members.map((m) =>
    m.kind === "witness" ? `${m.name} (witness)` : m.name,
  )
  const lines = [
    `config OK: ${file}`,
    `  cluster ${c.cluster.name}: ${members.length} members (${members.join(", ")}); this node: ${c.node}`,
    `  mesh ${c.mesh.listen ?? "(every address, agent_port)"}, http ${c.http.listen}, control ${c.control.socket}, state ${c.state_dir}`,
    `  vip ${c.vip === undefined ? "none" : `${c.vip.address} on ${c.vip.interface}`}; semi-sync ${c.semi_sync.mode}; log level ${c.log.level}`,
  ]
  process.stdout.write(`${lines.join("\n")}\n`)
  return EXIT_OK
}

const control = (name: string) => async (args: ReadonlyArray<string>) =>
  (await import("./cli/control.ts")).runControlCommand(name, args)

/** Commands answered by the running agent over its control socket (`--socket PATH`, `--json`). */
const controlCommands: Readonly<Record<string, Command>> = {
  status: {
    usage: "status [--json]",
    summary: "the cluster as this agent sees it",
    run: control("status"),
  },
  switchover: {
    usage: "switchover --to NODE [--dry-run]",
    summary: "planned handover to NODE (run on the primary)",
    run: control("switchover"),
  },
  failover: {
    usage: "failover [--to NODE] --force",
    summary: "manual failover when the primary is gone (may lose transactions)",
    run: control("failover"),
  },
  pause: {
    usage: "pause",
    summary: "stop all automatic actions, cluster-wide",
    run: control("pause"),
  },
  resume: { usage: "resume", summary: "restart automatic actions", run: control("resume") },
  exclude: {
    usage: "exclude NODE",
    summary: "take NODE out of candidacy",
    run: control("exclude"),
  },
  include: {
    usage: "include NODE",
    summary: "make NODE a candidate again",
    run: control("include"),
  },
  "ack-recovery": {
    usage: "ack-recovery",
    summary: "lift the anti-flap block",
    run: control("ack-recovery"),
  },
  rejoin: {
    usage: "rejoin [--force]",
    summary: "bring this node back as a replica",
    run: control("rejoin"),
  },
  "errant-gtid": {
    usage: "errant-gtid [--fix] [--dry-run]",
    summary: "list errant transactions; --fix injects empty ones on the primary",
    run: control("errant-gtid"),
  },
}

/** Every command, in the order `--help` lists them. */
export const commands: Readonly<Record<string, Command>> = {
  run: {
    usage: "run [--config FILE]",
    summary: "the daemon (what the systemd unit starts)",
    run: (args) => load(import("./daemon/run.ts"), args),
  },
  "check-config": {
    usage: `check-config [--config FILE]`,
    summary: `validate the config file (default ${DEFAULT_CONFIG}) without starting`,
    run: checkConfig,
  },
  ...controlCommands,
  version: {
    usage: "version [--json]",
    summary: "print the version, the git commit it was built from and the Node version",
    run: version,
  },
}

export const helpText = (): string => {
  const width = Math.max(...Object.values(commands).map((c) => c.usage.length))
  return [
    "usage: mha-agent <command> [options]",
    "",
    "commands:",
    ...Object.values(commands).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`),
    "",
    "'mha-agent <command> --help' shows one command's usage.",
    "",
  ].join("\n")
}

/** Dispatches a command line (without node and script) and resolves to the exit code. */
export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [name, ...args] = argv
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? args[0] : undefined
    const command = topic === undefined ? undefined : commands[topic]
    if (topic !== undefined && command === undefined) {
      process.stderr.write(`mha-agent: unknown command '${topic}' (see 'mha-agent --help')\n`)
      return EXIT_USAGE
    }
    if (command !== undefined) process.stdout.write(`usage: mha-agent ${command.usage}\n`)
    else (name === undefined ? process.stderr : process.stdout).write(helpText())
    return name === undefined ? EXIT_USAGE : EXIT_OK
  }
  if (name === "--version") return main(["version", ...args])
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined
  if (command === undefined) {
    process.stderr.write(`mha-agent: unknown command '${name}' (see 'mha-agent --help')\n`)
    return EXIT_USAGE
  }
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`usage: mha-agent ${command.usage}\n  ${command.summary}\n`)
    return EXIT_OK
  }
  try {
    return await command.run(args)
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`mha-agent ${e.message}\n`)
      return EXIT_USAGE
    }
    const detail = e instanceof Error ? (e.stack ?? e.message) : String(e)
    process.stderr.write(`mha-agent ${name}: internal error: ${detail}\n`)
    return EXIT_SOFTWARE
  }
}

/** True when this module is the program (the bundle, the binary, or `node agent/src/main.ts`). */
const isProgram = (): boolean => {
  if (typeof __MHA_BUILD__ !== "undefined") return true
  const script = process.argv[1]
  return script !== undefined && /(?:^|[\\/])main\.ts$/.test(script)
}

if (isProgram()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (e: unknown) => {
      process.stderr.write(`mha-agent: internal error: ${String(e)}\n`)
      process.exitCode = EXIT_SOFTWARE
    },
  )
}
