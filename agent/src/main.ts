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
 * A command the running agent answers over the control socket is instead one
 * entry of `controlCommands` in ./cli/commands.ts (its options, help text and
 * the request it sends); ./cli/control.ts runs them all.
 *
 * Exit codes: 0 success, 1 the command failed, 2 bad command line, 3 the
 * agent could not be reached, 70 internal error (sysexits EX_SOFTWARE),
 * 78 `run` with an invalid config (EX_CONFIG: systemd does not retry it).
 */
import pkg from "../../package.json" with { type: "json" }
import type { Config } from "../../shared/config.ts"
import type { OptionSpec } from "./cli/args.ts"
import { COMMON_OPTIONS, CONTROL_EXIT_CODES, controlCommands } from "./cli/commands.ts"
import { type Io, processIo } from "./cli/io.ts"

/** Filled in at build time by packaging/build.sh (esbuild `define`); absent when run from source. */
declare const __MHA_BUILD__: { readonly version: string; readonly commit: string } | undefined

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2
export const EXIT_UNREACHABLE = 3
export const EXIT_SOFTWARE = 70
export const EXIT_CONFIG = 78

/** A bad command line: printed as one line, exit 2. */
export class UsageError extends Error {
  override readonly name = "UsageError"
}

export interface Command {
  /** The arguments, for `--help`: `check-config [--config FILE]`. */
  readonly usage: string
  /** One line for `mha-agent --help`. */
  readonly summary: string
  /** What `mha-agent <command> --help` says after the usage line. */
  readonly description?: string
  /** The command's options for `--help`: `["--config FILE", "the config file"]`. */
  readonly options?: ReadonlyArray<readonly [string, string]>
  /** Options every control command takes, listed apart in `--help`. */
  readonly commonOptions?: ReadonlyArray<readonly [string, string]>
  /** The exit codes for `--help`. */
  readonly exitCodes?: ReadonlyArray<readonly [number, string]>
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  readonly run: (args: ReadonlyArray<string>, io: Io) => Promise<number>
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

const version = async (args: ReadonlyArray<string>, io: Io): Promise<number> => {
  const { flags } = parseOptions("version", args, { flags: ["--json"] })
  const info = buildInfo()
  if (flags.has("--json")) io.out(`${JSON.stringify(info)}\n`)
  else io.out(`mha-agent ${info.version}\ncommit: ${info.commit}\nnode: ${info.node}\n`)
  return EXIT_OK
}

/** The daemon's config loader, loaded on demand (never on the control commands' path). */
const configLoader = () => import("./daemon/config-load.ts")

/**
 * The config of `file` for a command that needs it whole (check-config and
 * the day-1 commands), or null once its problem is printed. Loaded on demand:
 * the control commands never reach the config loader, Effect or yaml.
 */
export const loadValidConfig = async (file: string, io: Io): Promise<Config | null> => {
  const [{ Effect }, { loadConfig }] = await Promise.all([import("effect"), configLoader()])
  const result = await Effect.runPromise(Effect.result(loadConfig(file)))
  if (result._tag === "Failure") {
    io.err(`${result.failure.message}\n`)
    return null
  }
  return result.success
}

const checkConfig = async (args: ReadonlyArray<string>, io: Io): Promise<number> => {
  const { values, flags } = parseOptions("check-config", args, {
    values: ["--config", "--user"],
    flags: ["--files"],
  })
  if (values.has("--user") && !flags.has("--files"))
    throw new UsageError("check-config: --user goes with --files")
  const file = values.get("--config") ?? DEFAULT_CONFIG
  const c = await loadValidConfig(file, io)
  if (c === null) return EXIT_FAILED
  const members = c.cluster.members.map((m) =>
    m.kind === "witness" ? `${m.name} (witness)` : m.name,
  )
  const lines = [
    `config OK: ${file}`,
    `  cluster ${c.cluster.name}: ${members.length} members (${members.join(", ")}); this node: ${c.node}`,
    `  mesh ${c.mesh.listen ?? "(every address, agent_port)"}, http ${c.http.listen}, control ${c.control.socket}, state ${c.state_dir}`,
    `  vip ${c.vip === undefined ? "none" : `${c.vip.address} on ${c.vip.interface}`}; semi-sync ${c.semi_sync.mode}; log level ${c.log.level}`,
  ]
  const { configWarnings } = await configLoader()
  for (const w of configWarnings(c)) lines.push(`  warning: ${w}`)
  io.out(`${lines.join("\n")}\n`)
  if (!flags.has("--files")) return EXIT_OK
  // The files it names, as the agent's user will meet them (./cli/check-files.ts).
  const { checkFiles, lookupAccount } = await import("./cli/check-files.ts")
  const user = values.get("--user") ?? "mha-agent"
  const account = lookupAccount(user)
  if (account === undefined) {
    io.err(`check-config: no user '${user}' on this host (the agent's user; give --user NAME)\n`)
    return EXIT_FAILED
  }
  const { problems, notes } = checkFiles(c, account)
  for (const n of notes) io.out(`  ${n}\n`)
  if (problems.length === 0) {
    io.out(`  files OK: every file is readable by user ${user}, secrets by nobody else\n`)
    return EXIT_OK
  }
  io.err(
    `files of ${file} (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n  ${problems.join("\n  ")}\n`,
  )
  return EXIT_FAILED
}

const optionLines = (options: ReadonlyArray<OptionSpec>): Array<readonly [string, string]> =>
  options.map((o) => [o.value === undefined ? o.name : `${o.name} ${o.value}`, o.help] as const)

/**
 * Commands answered by the running agent over its control socket; what they
 * accept and send is in ./cli/commands.ts, the code that runs them in
 * ./cli/control.ts (loaded when one runs).
 */
const controlCommandTable: Readonly<Record<string, Command>> = Object.fromEntries(
  Object.entries(controlCommands).map(([name, spec]) => [
    name,
    {
      usage: spec.usage,
      summary: spec.summary,
      description: spec.description,
      options: [
        ...(spec.positional ? [[spec.positional.name, spec.positional.help] as const] : []),
        ...optionLines(spec.options),
      ],
      commonOptions: optionLines(COMMON_OPTIONS),
      exitCodes: CONTROL_EXIT_CODES,
      run: async (args: ReadonlyArray<string>, io: Io) =>
        (await import("./cli/control.ts")).runControlCommand(name, args, io),
    } satisfies Command,
  ]),
)

/** Every command, in the order `--help` lists them. */
export const commands: Readonly<Record<string, Command>> = {
  run: {
    usage: "run [--config FILE]",
    summary: "the daemon (what the systemd unit starts)",
    description:
      "Runs the agent in the foreground until SIGTERM (what mha-agent.service starts).\n" +
      "SIGHUP re-reads the config file.",
    options: [["--config FILE", `the config file (default ${DEFAULT_CONFIG})`]],
    exitCodes: [
      [0, "stopped by SIGTERM or SIGINT"],
      [1, "the agent could not run"],
      [2, "bad command line"],
      [78, "the config is invalid (systemd does not retry)"],
    ],
    run: (args) => load(import("./daemon/run.ts"), args),
  },
  "check-config": {
    usage: `check-config [--config FILE] [--files [--user NAME]]`,
    summary: `validate the config file (default ${DEFAULT_CONFIG}) without starting`,
    description:
      "Reads and validates the config file as `run` would and prints what it found; an\n" +
      "error names the file, the path inside it and what was expected. With --files it\n" +
      "also checks the files the config names: the mesh certificate names this member\n" +
      "(node) and no other, is issued by mesh.ca, is valid now and matches mesh.key;\n" +
      "every file is readable by the agent's user, and the secrets by nobody else.",
    options: [
      ["--config FILE", `the config file (default ${DEFAULT_CONFIG})`],
      ["--files", "also check the certificates, keys and password files it names"],
      ["--user NAME", "with --files: the agent's user (default mha-agent)"],
    ],
    exitCodes: [
      [0, "the config is valid (and with --files, its files too)"],
      [1, "the config or one of its files is not right (each problem is printed)"],
      [2, "bad command line"],
    ],
    run: checkConfig,
  },
  "make-certs": {
    usage: "make-certs --dir DIR [--members A,B,C] [--config FILE] [--days N] [--group G]",
    summary: "make the cluster CA and one mesh certificate per member",
    description:
      "Makes DIR/ca.pem and DIR/ca.key (the cluster CA; an existing pair is reused to\n" +
      "issue more certificates), then DIR/NAME.pem and DIR/NAME.key for each member,\n" +
      "the member name as CN and SAN DNS name (what peers check). Certificates 0644,\n" +
      "member keys 0640 root:G (0600 when group G does not exist here), CA key 0600.\n" +
      "Copy ca.pem, NAME.pem and NAME.key to host NAME; keep ca.key off the hosts.",
    options: [
      ["--dir DIR", "where to write (created if missing; existing member files are refused)"],
      ["--members A,B,C", "the member names"],
      ["--config FILE", `take the members from this config (default ${DEFAULT_CONFIG})`],
      ["--days N", "validity in days (default 825)"],
      ["--group G", "the group that may read the member keys (default mha-agent)"],
    ],
    exitCodes: [
      [0, "made"],
      [1, "nothing or not everything was made (the reason is printed)"],
      [2, "bad command line"],
    ],
    run: async (args, io) => (await import("./cli/make-certs.ts")).main(args, io),
  },
  "mysql-accounts": {
    usage: "mysql-accounts [--config FILE] [--host H]",
    summary: "print the SQL that creates the agent's MySQL accounts and grants",
    description:
      "Prints CREATE USER and GRANT statements for mysql.monitor (every privilege the\n" +
      "agent checks at start) and mysql.replication (REPLICATION SLAVE), with the\n" +
      "passwords of the config's password files. Run it once on the source, binary log\n" +
      "on, so that replication carries the accounts to the replicas:\n" +
      "  mha-agent mysql-accounts | mysql",
    options: [
      ["--config FILE", `the config file (default ${DEFAULT_CONFIG})`],
      ["--host H", "the accounts' host part (default %)"],
    ],
    exitCodes: [
      [0, "printed"],
      [1, "the config or a password file could not be read (the reason is printed)"],
      [2, "bad command line"],
    ],
    run: async (args, io) => (await import("./cli/mysql-setup.ts")).accountsMain(args, io),
  },
  "check-mysql": {
    usage: "check-mysql [--config FILE] [--member NAME] [--my-cnf FILE] [--json]",
    summary: "check a running mysqld: the agent's privileges and the settings it relies on",
    description:
      "Connects to the member's mysqld (default: this node's) with mysql.monitor and\n" +
      "checks every privilege the agent needs, gtid_mode, enforce_gtid_consistency,\n" +
      "log_bin, log_replica_updates, a server_id and server_uuid no other member has,\n" +
      "super_read_only=ON at boot, the semi-sync plugins, and relay_log_recovery=OFF\n" +
      "(recommended). Each problem is printed with its fix; warnings do not fail.",
    options: [
      ["--config FILE", `the config file (default ${DEFAULT_CONFIG})`],
      ["--member NAME", "the member whose mysqld to check (default: node)"],
      ["--my-cnf FILE", "the mysqld's option file, to check super_read_only=ON at boot"],
      ["--json", "one JSON line"],
    ],
    exitCodes: [
      [0, "no problem (warnings may be printed)"],
      [1, "a problem, or mysqld could not be asked (each is printed)"],
      [2, "bad command line"],
    ],
    run: async (args, io) => (await import("./cli/mysql-setup.ts")).checkMain(args, io),
  },
  ...controlCommandTable,
  version: {
    usage: "version [--json]",
    summary: "print the version, the git commit it was built from and the Node version",
    options: [["--json", "one JSON line"]],
    exitCodes: [
      [0, "success"],
      [2, "bad command line"],
    ],
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
    "Commands other than run, check-config, make-certs, mysql-accounts, check-mysql and",
    "version talk to the local agent over its control socket (--socket PATH,",
    `$MHA_AGENT_SOCKET); --json prints the agent's reply.`,
    "'mha-agent <command> --help' shows one command's options and exit codes.",
    "",
  ].join("\n")
}

const pairs = (rows: ReadonlyArray<readonly [string, string]>): string[] => {
  const width = Math.max(...rows.map(([a]) => a.length))
  return rows.map(([a, b]) => `  ${a.padEnd(width)}  ${b}`)
}

/** `mha-agent <command> --help`: usage, description, options and exit codes. */
export const commandHelp = (command: Command): string => {
  const lines = [`usage: mha-agent ${command.usage}`, "", command.description ?? command.summary]
  const options = [...(command.options ?? []), ["-h, --help", "this text"] as const]
  lines.push("", "options:", ...pairs(options))
  if (command.commonOptions && command.commonOptions.length > 0) {
    lines.push("", "common options:", ...pairs(command.commonOptions))
  }
  if (command.exitCodes && command.exitCodes.length > 0) {
    lines.push("", "exit codes:", ...pairs(command.exitCodes.map(([c, t]) => [String(c), t])))
  }
  return `${lines.join("\n")}\n`
}

/** Dispatches a command line (without node and script) and resolves to the exit code. */
export const main = async (argv: ReadonlyArray<string>, io: Io = processIo): Promise<number> => {
  const [name, ...args] = argv
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? args[0] : undefined
    const command = topic === undefined ? undefined : lookup(topic)
    if (topic !== undefined && command === undefined) {
      io.err(`mha-agent: unknown command '${topic}' (see 'mha-agent --help')\n`)
      return EXIT_USAGE
    }
    if (topic !== undefined && command !== undefined) io.out(commandHelp(command))
    else if (name === undefined) io.err(helpText())
    else io.out(helpText())
    return name === undefined ? EXIT_USAGE : EXIT_OK
  }
  if (name === "--version") return main(["version", ...args], io)
  const command = lookup(name)
  if (command === undefined) {
    const what = name.startsWith("-") ? "option" : "command"
    io.err(`mha-agent: unknown ${what} '${name}' (see 'mha-agent --help')\n`)
    return EXIT_USAGE
  }
  if (args.includes("--help") || args.includes("-h")) {
    io.out(commandHelp(command))
    return EXIT_OK
  }
  try {
    return await command.run(args, io)
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`mha-agent ${e.message}\n`)
      return EXIT_USAGE
    }
    const detail = e instanceof Error ? (e.stack ?? e.message) : String(e)
    io.err(`mha-agent ${name}: internal error: ${detail}\n`)
    return EXIT_SOFTWARE
  }
}

const lookup = (name: string): Command | undefined =>
  Object.hasOwn(commands, name) ? commands[name] : undefined

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
