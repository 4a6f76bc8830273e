// Day-1 MySQL setup: `mha-agent mysql-accounts` prints the SQL that creates
// the agent's two accounts with exactly the privileges its actions need (the
// list the agent itself checks at start: REQUIRED_PRIVILEGES), and
// `mha-agent check-mysql` checks a running mysqld: those privileges, and the
// settings the protocol relies on, each problem named with its fix.
// The judging is pure (`judgeMysql`); the queries are in `observeMysql`.
import { readFileSync } from "node:fs"
import type { Config } from "../../../shared/config.ts"
import {
  DEFAULT_CONFIG,
  EXIT_FAILED,
  EXIT_OK,
  loadValidConfig,
  parseOptions,
  UsageError,
} from "../main.ts"
import type { Io } from "./io.ts"

// ---------------------------------------------------------------------------
// The accounts

/** What the monitor account (the agent's own) is granted: one per required privilege. */
export const monitorPrivileges = async (): Promise<ReadonlyArray<string>> =>
  (await import("../adapters/mysql-actuator.ts")).REQUIRED_PRIVILEGES.map((r) => r.privilege)

/** What the replication account needs: replicas connect with it to read the binary log. */
export const REPLICATION_PRIVILEGES: ReadonlyArray<string> = ["REPLICATION SLAVE"]

const quote = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`

/**
 * The SQL for both accounts. Run it on the source with the binary log on:
 * replication carries the accounts to every replica.
 */
export const accountsSql = (options: {
  readonly monitorUser: string
  readonly monitorPassword: string
  readonly replicationUser: string
  readonly replicationPassword: string
  readonly host: string
  readonly monitorPrivileges: ReadonlyArray<string>
  /** `lag.table` when `lag.source: heartbeat_table`: the agent creates and writes it. */
  readonly heartbeatTable?: string
}): string => {
  const m = `${quote(options.monitorUser)}@${quote(options.host)}`
  const r = `${quote(options.replicationUser)}@${quote(options.host)}`
  return [
    "-- mha-agent's MySQL accounts. Run once on the source (binary log on): replication",
    "-- carries them to the replicas. The passwords are those of the config's password files.",
    "-- The agent's account: probes, fencing, repointing, semi-sync, clone (mysql.monitor).",
    `CREATE USER IF NOT EXISTS ${m} IDENTIFIED BY ${quote(options.monitorPassword)};`,
    `GRANT ${options.monitorPrivileges.join(", ")} ON *.* TO ${m};`,
    ...(options.heartbeatTable === undefined
      ? []
      : [
          "-- lag.source heartbeat_table: the primary's agent creates and updates its heartbeat table.",
          `GRANT CREATE, INSERT, UPDATE ON \`${options.heartbeatTable.split(".")[0]}\`.* TO ${m};`,
        ]),
    "-- The account replicas connect with (mysql.replication).",
    `CREATE USER IF NOT EXISTS ${r} IDENTIFIED BY ${quote(options.replicationPassword)};`,
    `GRANT ${REPLICATION_PRIVILEGES.join(", ")} ON *.* TO ${r};`,
    "",
  ].join("\n")
}

// ---------------------------------------------------------------------------
// Checking a running mysqld

/** What check-mysql reads from one mysqld (and the others' ids). */
export interface MysqlFacts {
  readonly member: string
  readonly user: string
  readonly missingPrivileges: ReadonlyArray<string>
  readonly variables: ReadonlyMap<string, string>
  /** PLUGIN_NAME -> PLUGIN_STATUS. */
  readonly plugins: ReadonlyMap<string, string>
  /** performance_schema.variables_info's VARIABLE_SOURCE of super_read_only, null when unknown. */
  readonly superReadOnlySource: string | null
  /** super_read_only in the my.cnf given with --my-cnf: true, false (absent or OFF), or null (not given). */
  readonly superReadOnlyInMyCnf: { readonly file: string; readonly on: boolean } | null
  /** The other data members' server_id and server_uuid (null: could not be asked). */
  readonly others: ReadonlyArray<{
    readonly member: string
    readonly serverId: number | null
    readonly serverUuid: string | null
    readonly error: string | null
  }>
}

export interface Finding {
  readonly level: "ok" | "problem" | "warning"
  readonly what: string
  readonly text: string
}

const on = (v: string | undefined) => v !== undefined && /^(ON|1|TRUE|YES)$/i.test(v.trim())

/** Every check of a mysqld, in order: each problem names its fix. Pure. */
export const judgeMysql = (f: MysqlFacts, semiSync: "off" | "on" | "strict"): Array<Finding> => {
  const out: Array<Finding> = []
  const ok = (what: string, text: string) => out.push({ level: "ok", what, text })
  const problem = (what: string, text: string) => out.push({ level: "problem", what, text })
  const warning = (what: string, text: string) => out.push({ level: "warning", what, text })
  const v = (name: string) => f.variables.get(name)

  if (f.missingPrivileges.length === 0)
    ok("privileges", `${f.user} has every privilege the agent needs`)
  else
    for (const p of f.missingPrivileges)
      problem("privileges", `${f.user} lacks ${p}: GRANT ${p} ON *.* TO ${f.user}`)

  const require = (name: string, why: string) => {
    if (on(v(name))) ok(name, "ON")
    else problem(name, `is ${v(name) ?? "unknown"}, must be ON (${why}): set ${name}=ON in my.cnf`)
  }
  if (v("gtid_mode") === "ON") ok("gtid_mode", "ON")
  else
    problem(
      "gtid_mode",
      `is ${v("gtid_mode") ?? "unknown"}, must be ON (auto-positioning, completeness checks): set gtid_mode=ON and enforce_gtid_consistency=ON in my.cnf (on a running set: OFF_PERMISSIVE, ON_PERMISSIVE, ON, as MySQL's manual describes)`,
    )
  if (v("enforce_gtid_consistency") === "ON") ok("enforce_gtid_consistency", "ON")
  else
    problem(
      "enforce_gtid_consistency",
      `is ${v("enforce_gtid_consistency") ?? "unknown"}, must be ON (needed by gtid_mode=ON): set enforce_gtid_consistency=ON in my.cnf`,
    )
  require("log_bin", "a replica promoted to primary serves its binary log")
  require("log_replica_updates", "a replica promoted to primary must hold every transaction in its binary log")

  const id = Number(v("server_id") ?? "0")
  const sameId = f.others.filter((o) => o.serverId !== null && o.serverId === id)
  const uuid = v("server_uuid") ?? ""
  const sameUuid = f.others.filter((o) => o.serverUuid !== null && o.serverUuid === uuid)
  if (id === 0)
    problem(
      "server_id",
      "is 0: replication needs a server_id of its own: set server_id=N in my.cnf",
    )
  else if (sameId.length > 0)
    problem(
      "server_id",
      `${id} is also the server_id of ${sameId.map((o) => o.member).join(", ")}: give each mysqld its own (server_id=N in my.cnf, then restart it)`,
    )
  else ok("server_id", `${id}, unique among the members asked`)
  if (sameUuid.length > 0)
    problem(
      "server_uuid",
      `${uuid} is also the server_uuid of ${sameUuid.map((o) => o.member).join(", ")} (a copied datadir): stop mysqld, remove auto.cnf from its datadir, start it`,
    )
  for (const o of f.others)
    if (o.error !== null)
      warning(
        "server_id",
        `could not ask ${o.member} for its server_id (${o.error}): run check-mysql there too`,
      )

  // Section 9: every mysqld boots read-only; only the lease holder clears it.
  const source = f.superReadOnlySource
  if (f.superReadOnlyInMyCnf !== null) {
    if (f.superReadOnlyInMyCnf.on)
      ok("super_read_only", `ON at boot (${f.superReadOnlyInMyCnf.file})`)
    else
      problem(
        "super_read_only",
        `not ON at boot in ${f.superReadOnlyInMyCnf.file}: add super_read_only=ON under [mysqld] (a restarted mysqld must never be writable by accident)`,
      )
  } else if (source === "COMPILED")
    problem(
      "super_read_only",
      "is not set at boot (compiled default OFF): add super_read_only=ON under [mysqld] in my.cnf (a restarted mysqld must never be writable by accident)",
    )
  else if (source === null || source === "DYNAMIC")
    warning(
      "super_read_only",
      `cannot tell whether my.cnf sets it (${source === null ? "performance_schema off" : "changed at runtime"}): make sure it has super_read_only=ON under [mysqld], or pass --my-cnf FILE`,
    )
  else ok("super_read_only", `ON at boot (${source})`)

  for (const [plugin, file] of [
    ["rpl_semi_sync_source", "semisync_source.so"],
    ["rpl_semi_sync_replica", "semisync_replica.so"],
  ] as const) {
    const status = f.plugins.get(plugin)
    if (status === "ACTIVE") ok(plugin, "plugin ACTIVE")
    else if (semiSync === "off")
      warning(
        plugin,
        `plugin not loaded (semi_sync is off in the config): plugin-load-add=${file} in my.cnf to turn it on later`,
      )
    else
      problem(
        plugin,
        `plugin ${status === undefined ? "not loaded" : status} but semi_sync is ${semiSync}: add plugin-load-add=${file} to my.cnf (or INSTALL PLUGIN ${plugin} SONAME '${file}')`,
      )
  }
  if (f.plugins.get("clone") !== "ACTIVE")
    warning(
      "clone",
      "plugin not loaded: `mha-agent clone` needs plugin-load-add=mysql_clone.so in my.cnf",
    )

  // Issue 10: OFF keeps received (maybe acknowledged) transactions across a mysqld crash.
  if (v("relay_log_recovery") === undefined) warning("relay_log_recovery", "unknown")
  else if (on(v("relay_log_recovery")))
    warning(
      "relay_log_recovery",
      "is ON: a crash of this replica's mysqld discards relay logs that may hold acknowledged transactions; recommended: relay_log_recovery=OFF in my.cnf (with GTID auto-positioning)",
    )
  else ok("relay_log_recovery", "OFF (relay logs survive a crash)")
  return out
}

/** super_read_only under [mysqld] (or [server], [mysqld-*]) in one my.cnf. */
export const superReadOnlyInMyCnf = (text: string): boolean => {
  let section = ""
  let value = false
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim()
    const sec = /^\[([^\]]+)\]$/.exec(line)
    if (sec !== null) {
      section = sec[1]!.trim().toLowerCase()
      continue
    }
    if (!(section === "mysqld" || section === "server" || section.startsWith("mysqld-"))) continue
    const m = /^(?:loose[-_])?super[-_]read[-_]only\s*(?:=\s*(.*))?$/i.exec(line)
    if (m !== null) value = m[1] === undefined || on(m[1].replace(/^["']|["']$/g, ""))
  }
  return value
}

// ---------------------------------------------------------------------------
// The commands

const readPassword = (path: string, file: string): string => {
  try {
    return readFileSync(file, "utf8").replace(/\r?\n$/, "")
  } catch (e) {
    throw new Error(
      `${path}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    )
  }
}

export const accountsMain = async (args: ReadonlyArray<string>, io: Io): Promise<number> => {
  const { values } = parseOptions("mysql-accounts", args, { values: ["--config", "--host"] })
  const file = values.get("--config") ?? DEFAULT_CONFIG
  const host = values.get("--host") ?? "%"
  const c = await loadValidConfig(file, io)
  if (c === null) return EXIT_FAILED
  try {
    io.out(
      accountsSql({
        monitorUser: c.mysql.monitor.user,
        monitorPassword: readPassword("mysql.monitor.password_file", c.mysql.monitor.password_file),
        replicationUser: c.mysql.replication.user,
        replicationPassword: readPassword(
          "mysql.replication.password_file",
          c.mysql.replication.password_file,
        ),
        host,
        monitorPrivileges: await monitorPrivileges(),
        ...(c.lag.source === "heartbeat_table" ? { heartbeatTable: c.lag.table } : {}),
      }),
    )
    return EXIT_OK
  } catch (e) {
    io.err(`mha-agent mysql-accounts: ${e instanceof Error ? e.message : String(e)}\n`)
    return EXIT_FAILED
  }
}

/** Reads the facts of one member's mysqld with the config's monitor account. */
const observeMysql = async (
  c: Config,
  member: string,
  myCnf: string | undefined,
): Promise<MysqlFacts> => {
  const [{ Effect }, conn, { mysqlActions }] = await Promise.all([
    import("effect"),
    import("../adapters/mysql-connection.ts"),
    import("../adapters/mysql-actuator.ts"),
  ])
  const settings = await Effect.runPromise(conn.readMysqlSettings(c, "monitor"))
  const endpoint = conn.memberEndpoint(c, member)
  if (endpoint === undefined) throw new Error(`${member} is a witness: it has no mysqld`)
  const grants = await Effect.runPromise(mysqlActions(endpoint, settings).checkGrants)
  const facts = await Effect.runPromise(
    conn.withSession("check-mysql", endpoint, settings, (s) =>
      Effect.gen(function* () {
        const [vars] = yield* s.query(
          "check-mysql",
          `SELECT @@gtid_mode AS gtid_mode, @@enforce_gtid_consistency AS enforce_gtid_consistency,
             @@log_bin AS log_bin, @@log_replica_updates AS log_replica_updates,
             @@server_id AS server_id, @@server_uuid AS server_uuid,
             @@super_read_only AS super_read_only, @@relay_log_recovery AS relay_log_recovery`,
        )
        const plugins = yield* s.query(
          "check-mysql",
          "SELECT PLUGIN_NAME AS n, PLUGIN_STATUS AS s FROM information_schema.PLUGINS WHERE PLUGIN_NAME IN ('rpl_semi_sync_source', 'rpl_semi_sync_replica', 'clone')",
        )
        const info = yield* s
          .query(
            "check-mysql",
            "SELECT VARIABLE_SOURCE AS src FROM performance_schema.variables_info WHERE VARIABLE_NAME = 'super_read_only'",
          )
          .pipe(Effect.orElseSucceed(() => []))
        return { vars, plugins, info }
      }),
    ),
  )
  const variables = new Map<string, string>()
  for (const [k, val] of Object.entries(facts.vars ?? {})) {
    // @@log_bin and friends come back as 0/1.
    const text = String(val)
    variables.set(
      k,
      ["log_bin", "log_replica_updates", "super_read_only", "relay_log_recovery"].includes(k)
        ? text === "1"
          ? "ON"
          : text === "0"
            ? "OFF"
            : text
        : text,
    )
  }
  const others = []
  for (const m of c.cluster.members) {
    if (m.name === member || m.kind !== "data") continue
    const e = conn.memberEndpoint(c, m.name)
    if (e === undefined) continue
    const r = await Effect.runPromise(
      Effect.result(
        conn.withSession("check-mysql", e, settings, (s) =>
          s.query("check-mysql", "SELECT @@server_id AS id, @@server_uuid AS uuid"),
        ),
      ),
    )
    if (r._tag === "Failure")
      others.push({ member: m.name, serverId: null, serverUuid: null, error: r.failure.reason })
    else
      others.push({
        member: m.name,
        serverId: Number(r.success[0]?.id),
        serverUuid: String(r.success[0]?.uuid),
        error: null,
      })
  }
  let inMyCnf: MysqlFacts["superReadOnlyInMyCnf"] = null
  if (myCnf !== undefined) {
    let text: string
    try {
      text = readFileSync(myCnf, "utf8")
    } catch (e) {
      throw new Error(
        `--my-cnf: cannot read ${myCnf}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      )
    }
    inMyCnf = { file: myCnf, on: superReadOnlyInMyCnf(text) }
  }
  const src = facts.info[0]?.src
  return {
    member,
    user: grants.user,
    missingPrivileges: grants.missing.map((m) => m.privilege),
    variables,
    plugins: new Map(facts.plugins.map((p) => [String(p.n), String(p.s)])),
    superReadOnlySource: src === undefined ? null : String(src),
    superReadOnlyInMyCnf: inMyCnf,
    others,
  }
}

export const checkMain = async (args: ReadonlyArray<string>, io: Io): Promise<number> => {
  const { values, flags } = parseOptions("check-mysql", args, {
    values: ["--config", "--member", "--my-cnf"],
    flags: ["--json"],
  })
  const file = values.get("--config") ?? DEFAULT_CONFIG
  const c = await loadValidConfig(file, io)
  if (c === null) return EXIT_FAILED
  const member = values.get("--member") ?? c.node
  const m = c.cluster.members.find((x) => x.name === member)
  if (m === undefined)
    throw new UsageError(
      `check-mysql: --member ${member} is not a member (${c.cluster.members.map((x) => x.name).join(", ")})`,
    )
  if (m.kind !== "data")
    throw new UsageError(`check-mysql: ${member} is a witness: it has no mysqld`)
  let facts: MysqlFacts
  try {
    facts = await observeMysql(c, member, values.get("--my-cnf"))
  } catch (e) {
    const why =
      e !== null && typeof e === "object" && "message" in e ? String(e.message) : String(e)
    io.err(`mha-agent check-mysql: ${member} (${m.address}:${m.mysql_port}): ${why}\n`)
    return EXIT_FAILED
  }
  const findings = judgeMysql(facts, c.semi_sync.mode)
  const problems = findings.filter((x) => x.level === "problem").length
  if (flags.has("--json")) io.out(`${JSON.stringify({ member, problems, findings })}\n`)
  else {
    const tag = { ok: "ok     ", problem: "PROBLEM", warning: "warning" } as const
    io.out(`mysqld of ${member} (${m.address}:${m.mysql_port}) as ${facts.user}:\n`)
    for (const x of findings) io.out(`  ${tag[x.level]} ${x.what}: ${x.text}\n`)
    io.out(
      problems === 0
        ? "no problems\n"
        : `${problems} problem${problems === 1 ? "" : "s"}: fix ${problems === 1 ? "it" : "them"} before starting the agent\n`,
    )
  }
  return problems === 0 ? EXIT_OK : EXIT_FAILED
}
