/**
 * The agent's config file, as an Effect Schema shared by the daemon (which
 * loads it at start and on SIGHUP) and the CLI (`mha-agent check-config`).
 *
 * The decoded value keeps the file's snake_case keys so that every error and
 * every log line can name a key exactly as the operator wrote it. Durations
 * are written as `"500ms"`, `"4s"`, `"10m"`, `"1h"`, `"1m30s"` or a plain
 * number of milliseconds, and decode to milliseconds. Percentages are written
 * as `"10%"` (or a fraction below 1) and decode to a fraction.
 *
 * Decode with {@link decodeOptions}: unknown keys are errors (typo
 * protection) and every problem is reported, not only the first. The
 * cross-field rules (node is a member, names unique, the lease timing rule of
 * protocol.md section 5, ...) are checks on {@link Config} itself, so a plain
 * `Schema.decodeUnknown*(Config)` enforces them too.
 */

import type { SchemaAST } from "effect"
import { Effect, Schema, SchemaIssue, SchemaTransformation } from "effect"

// ---------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }
const DURATION_WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g
const DURATION_EXPECTED =
  'a duration like "500ms", "4s", "10m", "1m30s" or a number of milliseconds'

/** Parses `"500ms"`, `"4s"`, `"10m"`, `"1h"`, `"1m30s"`, `"250"` (ms) into milliseconds. */
export const parseDurationMs = (text: string): number | undefined => {
  const s = text.trim()
  if (/^\d+(?:\.\d+)?$/.test(s)) return Number(s)
  if (!DURATION_WHOLE.test(s)) return undefined
  let total = 0
  for (const m of s.matchAll(DURATION_PART)) total += Number(m[1]) * (UNIT_MS[m[2] ?? "ms"] ?? 1)
  return total
}

/** Milliseconds rendered the way an operator would write them. */
export const formatDurationMs = (ms: number): string => {
  if (ms !== 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms !== 0 && ms % 1_000 === 0) return `${ms / 1_000}s`
  return `${ms}ms`
}

/** A duration in the file (string with unit, or number of ms) decoded to milliseconds (>= 0). */
export const Millis = Schema.Union([Schema.String, Schema.Number])
  .annotate({ expected: DURATION_EXPECTED })
  .pipe(
    Schema.decodeTo(
      Schema.Number,
      SchemaTransformation.transformEffect<number, string | number>({
        decode: (input, options) => {
          const ms = typeof input === "number" ? input : parseDurationMs(input)
          return ms === undefined || !Number.isFinite(ms) || ms < 0
            ? Effect.fail(
                new SchemaIssue.InvalidValue({ expected: DURATION_EXPECTED }, input, options),
              )
            : Effect.succeed(ms)
        },
        encode: (ms) => Effect.succeed(formatDurationMs(ms)),
      }),
    ),
  )

const positive = (what = "a duration greater than zero") =>
  Schema.makeFilter<number>((n) => n > 0, { expected: what })

/** A duration that must be > 0. */
const PositiveMillis = Millis.check(positive())

const PERCENT_EXPECTED = 'a percentage like "10%" (or a fraction between 0 and 1)'

/** `"10%"` or `0.1`, decoded to the fraction 0.1. */
export const Fraction = Schema.Union([Schema.String, Schema.Number])
  .annotate({ expected: PERCENT_EXPECTED })
  .pipe(
    Schema.decodeTo(
      Schema.Number,
      SchemaTransformation.transformEffect<number, string | number>({
        decode: (input, options) => {
          let f: number | undefined
          if (typeof input === "number") f = input
          else {
            const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(input)
            f = m ? Number(m[1]) / 100 : undefined
          }
          return f === undefined || !Number.isFinite(f) || f < 0 || f >= 1
            ? Effect.fail(
                new SchemaIssue.InvalidValue({ expected: PERCENT_EXPECTED }, input, options),
              )
            : Effect.succeed(f)
        },
        encode: (f) => Effect.succeed(`${Math.round(f * 10_000) / 100}%`),
      }),
    ),
  )

/** An absolute file system path. */
export const AbsolutePath = Schema.String.check(
  Schema.makeFilter<string>((s) => s.startsWith("/") && !s.includes("\0"), {
    expected: 'an absolute path (starting with "/")',
  }),
)

const NAME_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/
/** A member or cluster name: also the name in the member's mesh certificate. */
export const Name = Schema.String.check(
  Schema.makeFilter<string>((s) => NAME_PATTERN.test(s), {
    expected:
      "a name of letters, digits, '.', '_' or '-' (1 to 64 characters, starting and ending with a letter or digit)",
  }),
)

const Host = Schema.String.check(
  Schema.makeFilter<string>((s) => s.length > 0 && !/[\s/]/.test(s), {
    expected: "a host name or IP address (no port, no spaces)",
  }),
)

const Int = Schema.Number.check(Schema.isInt({ expected: "an integer" }))
const Port = Int.check(
  Schema.makeFilter<number>((n) => n >= 1 && n <= 65_535, {
    expected: "a port number (1 to 65535)",
  }),
)

const LISTEN_EXPECTED = 'a listen address "host:port" (IPv6 in brackets, "[::]:7946")'
/** `host:port`, `[v6]:port` or `:port`. */
export const ListenAddress = Schema.String.check(
  Schema.makeFilter<string>((s) => parseListen(s) !== undefined, { expected: LISTEN_EXPECTED }),
)

/** Splits a listen address; an empty host means every address. */
export const parseListen = (s: string): { host: string; port: number } | undefined => {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]*)):(\d{1,5})$/.exec(s)
  if (!m) return undefined
  const port = Number(m[3])
  if (port > 65_535) return undefined
  return { host: m[1] ?? m[2] ?? "", port }
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const CIDR_EXPECTED = 'an address with its prefix length, like "10.0.0.100/24"'
/** An IPv4 or IPv6 address with a prefix length (`10.0.0.100/24`, `fd00::10/64`). */
export const Cidr = Schema.String.check(
  Schema.makeFilter<string>(
    (s) => {
      const m = /^([^/]+)\/(\d{1,3})$/.exec(s)
      if (!m) return false
      const addr = m[1] ?? ""
      const prefix = Number(m[2])
      if (IPV4.test(addr)) return prefix <= 32
      return /^[0-9A-Fa-f:]+$/.test(addr) && addr.includes(":") && prefix <= 128
    },
    { expected: CIDR_EXPECTED },
  ),
)

const PositiveInt = Int.check(positive("an integer greater than zero"))

const defaultTo =
  <A>(value: A) =>
  <S extends Schema.Top & { readonly Type: A }>(schema: S) =>
    schema.pipe(Schema.withDecodingDefaultTypeKey(Effect.succeed(value)))

/** A whole section that may be left out: it decodes as `{}` (all defaults). */
const sectionDefault = <S extends Schema.Codec<unknown, object>>(schema: S) =>
  schema.pipe(
    Schema.withDecodingDefaultTypeKey(
      Effect.succeed(Schema.decodeUnknownSync(schema)({}) as S["Type"]),
    ),
  )

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------

export const MemberKind = Schema.Literals(["data", "witness"])
export type MemberKind = typeof MemberKind.Type

export const Member = Schema.Struct({
  name: Name,
  address: Host,
  mysql_port: Port.pipe(defaultTo(3306)),
  agent_port: Port,
  priority: Int.pipe(defaultTo(0)),
  promotable: Schema.Boolean.pipe(defaultTo(true)),
  kind: MemberKind.pipe(defaultTo<MemberKind>("data")),
})
export type Member = typeof Member.Type

export const Cluster = Schema.Struct({
  name: Name,
  members: Schema.Array(Member),
})

const MysqlUser = Schema.Struct({
  user: Schema.NonEmptyString,
  password_file: AbsolutePath,
})

export const MysqlTls = Schema.Struct({
  /** The CA the servers' certificates must chain to; without it the channel is encrypted but not verified. */
  ca: Schema.optionalKey(AbsolutePath),
  cert: Schema.optionalKey(AbsolutePath),
  key: Schema.optionalKey(AbsolutePath),
  /**
   * Also check the name: a server's certificate must name the member's
   * `address` (a SAN IP or DNS entry); replication gets
   * SOURCE_SSL_VERIFY_SERVER_CERT = 1. Needs `ca`.
   */
  verify_identity: Schema.Boolean.pipe(defaultTo(false)),
  /**
   * The same files as the local mysqld reads them, for CHANGE REPLICATION
   * SOURCE TO SOURCE_SSL_CA / _CERT / _KEY (mysqld runs as another user, in
   * a container or a chroot); default: `ca`, `cert`, `key`.
   */
  source_ssl_ca: Schema.optionalKey(AbsolutePath),
  source_ssl_cert: Schema.optionalKey(AbsolutePath),
  source_ssl_key: Schema.optionalKey(AbsolutePath),
})

export const Mysql = Schema.Struct({
  monitor: MysqlUser,
  replication: MysqlUser,
  /** TLS towards mysqld (probes, and SOURCE_SSL for replication). */
  tls: Schema.optionalKey(MysqlTls),
  /** Replication without TLS: fetch the source's RSA key (caching_sha2_password). */
  get_source_public_key: Schema.Boolean.pipe(defaultTo(false)),
  connect_timeout: PositiveMillis.pipe(defaultTo(1_000)),
  query_timeout: PositiveMillis.pipe(defaultTo(1_000)),
})

export const Timings = Schema.Struct({
  probe_interval: PositiveMillis.pipe(defaultTo(500)),
  heartbeat_interval: PositiveMillis.pipe(defaultTo(500)),
  rpc_timeout: PositiveMillis.pipe(defaultTo(1_000)),
  lease_duration: PositiveMillis.pipe(defaultTo(4_000)),
  drift_margin: Fraction.pipe(defaultTo(0.1)),
  election_timeout_min: PositiveMillis.pipe(defaultTo(300)),
  election_timeout_max: PositiveMillis.pipe(defaultTo(1_200)),
  restart_timeout: PositiveMillis.pipe(defaultTo(30_000)),
  restart_attempts: PositiveInt.pipe(defaultTo(2)),
  restart_retry_delay: Millis.pipe(defaultTo(1_000)),
  /** A restart counts as successful only once mysqld has answered every probe for this long (section 12). */
  restart_stable_period: PositiveMillis.pipe(defaultTo(10_000)),
  /** More than restart_attempts failures of mysqld within this window is a crash loop (section 12). */
  restart_window: PositiveMillis.pipe(defaultTo(300_000)),
  apply_timeout: PositiveMillis.pipe(defaultTo(30_000)),
  switchover_timeout: PositiveMillis.pipe(defaultTo(5_000)),
  fence_timeout: PositiveMillis.pipe(defaultTo(10_000)),
  /** The primary whose client commits are stuck this long (disk full) resigns; 0: never (protocol.md section 2). */
  commit_stall_timeout: Millis.pipe(defaultTo(3_000)),
  recovery_block_period: Millis.pipe(defaultTo(600_000)),
  failback_delay: Millis.pipe(defaultTo(300_000)),
})
export type Timings = typeof Timings.Type

/** The OK -> INFO -> WARN -> CRITICAL -> FAIL ladder (protocol.md section 2). */
export const Health = Schema.Struct({
  /** Consecutive failed or late probes to reach each level. */
  info_after: PositiveInt.pipe(defaultTo(1)),
  warn_after: PositiveInt.pipe(defaultTo(2)),
  critical_after: PositiveInt.pipe(defaultTo(3)),
  fail_after: PositiveInt.pipe(defaultTo(4)),
  /** Consecutive good probes to move one level back down. */
  recover_after: PositiveInt.pipe(defaultTo(3)),
  /** Replication lag from which a good probe shows INFO, WARN, CRITICAL. */
  lag_info: Millis.pipe(defaultTo(5_000)),
  lag_warn: Millis.pipe(defaultTo(10_000)),
  lag_critical: Millis.pipe(defaultTo(60_000)),
})

export const SemiSyncMode = Schema.Literals(["off", "on", "strict"])
export type SemiSyncMode = typeof SemiSyncMode.Type

export const SemiSync = Schema.Struct({
  mode: SemiSyncMode.pipe(defaultTo<SemiSyncMode>("off")),
  /** rpl_semi_sync_source_timeout in "on" mode (strict mode never falls back). */
  timeout: PositiveMillis.pipe(defaultTo(10_000)),
})

export const Vip = Schema.Struct({
  address: Cidr,
  interface: Schema.NonEmptyString,
  garp_count: PositiveInt.pipe(defaultTo(5)),
  /** Delay of the second gratuitous-ARP burst after taking the VIP. */
  garp_delay: Millis.pipe(defaultTo(5_000)),
  /** Re-announce period while ACTIVE (0 disables). */
  garp_refresh: Millis.pipe(defaultTo(10_000)),
})

const ETCD_ENDPOINT_EXPECTED =
  'an etcd client URL "http://host:port" or "https://host:port" (no path)'
/** `http(s)://host:port` of an etcd member's client listener. */
export const EtcdEndpoint = Schema.String.check(
  Schema.makeFilter<string>(
    (s) => {
      try {
        const u = new URL(s)
        return (
          (u.protocol === "http:" || u.protocol === "https:") &&
          u.hostname !== "" &&
          (u.pathname === "/" || u.pathname === "") &&
          u.search === "" &&
          u.username === "" &&
          /^[a-z]+:\/\/[^/]+\/?$/i.test(s)
        )
      } catch {
        return false
      }
    },
    { expected: ETCD_ENDPOINT_EXPECTED },
  ),
)

/**
 * Publishing the primary for service discovery (operations.md): while ACTIVE
 * the agent keeps `key` (JSON: cluster, primary, host, port, term) under an
 * etcd lease of `lease_ttl`, and the highest term it ever published in
 * `<key>/term`, which no lower term overwrites.
 */
export const Etcd = Schema.Struct({
  endpoints: Schema.Array(EtcdEndpoint),
  /** Default: /mha-agent/<cluster.name>/primary. */
  key: Schema.optionalKey(
    Schema.String.check(
      Schema.makeFilter<string>((s) => s.startsWith("/") && !s.endsWith("/") && !/\s/.test(s), {
        expected: 'a key like "/mha-agent/prod-db/primary" (starting with "/", no spaces)',
      }),
    ),
  ),
  /** The lease the key lives under: a crashed agent's key is gone this long after its last refresh. */
  lease_ttl: Millis.pipe(defaultTo(5_000)),
  /** Each etcd request (per endpoint) gives up after this long. */
  request_timeout: PositiveMillis.pipe(defaultTo(1_000)),
  /** TLS towards etcd (https endpoints): the CA, and a client certificate if etcd asks for one. */
  tls: Schema.optionalKey(MysqlTls),
  /** etcd authentication (its auth enabled): a user with read-write on the key and `<key>/term`. */
  username: Schema.optionalKey(Schema.NonEmptyString),
  password_file: Schema.optionalKey(AbsolutePath),
})
export type Etcd = typeof Etcd.Type

export const Service = Schema.Struct({
  restart_command: Schema.NonEmptyString.pipe(defaultTo("systemctl restart mysql")),
  /**
   * Stops mysqld hard (SIGKILL: its connections drop, no client gets OK) when
   * a fence cannot complete within fence_timeout; the service manager (or the
   * restart routine) starts it again, read-only from its my.cnf.
   */
  kill_command: Schema.NonEmptyString.pipe(defaultTo("systemctl kill --signal=SIGKILL mysql")),
})

export const Mesh = Schema.Struct({
  /** Defaults to every address on this member's `agent_port` (see {@link meshListen}). */
  listen: Schema.optionalKey(ListenAddress),
  ca: AbsolutePath,
  cert: AbsolutePath,
  key: AbsolutePath,
  max_message_bytes: PositiveInt.pipe(defaultTo(1_048_576)),
})

export const Http = Schema.Struct({
  listen: ListenAddress.pipe(defaultTo("0.0.0.0:8008")),
})

export const Control = Schema.Struct({
  socket: AbsolutePath.pipe(defaultTo("/run/mha-agent/agent.sock")),
})

/** Hook names of operations.md, in the order the document lists them. */
export const HOOK_NAMES = [
  "on_failure_detected",
  "pre_failover",
  "post_failover",
  "post_unsuccessful_failover",
  "pre_switchover",
  "post_switchover",
  "on_fence",
  "on_role_change",
  "on_split_brain",
  "on_lag_threshold_exceeded",
  "on_lag_recovered",
  "on_writes_blocked",
  "on_writes_unblocked",
  "on_semi_sync_fallback",
  "on_semi_sync_restored",
] as const
export type HookName = (typeof HOOK_NAMES)[number]

/** Hooks whose exit status the caller waits for (non-zero aborts the action). */
export const BLOCKING_HOOKS: ReadonlySet<HookName> = new Set<HookName>([
  "pre_failover",
  "pre_switchover",
])

export const Hooks = Schema.Struct({
  on_failure_detected: Schema.optionalKey(AbsolutePath),
  pre_failover: Schema.optionalKey(AbsolutePath),
  post_failover: Schema.optionalKey(AbsolutePath),
  post_unsuccessful_failover: Schema.optionalKey(AbsolutePath),
  pre_switchover: Schema.optionalKey(AbsolutePath),
  post_switchover: Schema.optionalKey(AbsolutePath),
  on_fence: Schema.optionalKey(AbsolutePath),
  on_role_change: Schema.optionalKey(AbsolutePath),
  on_split_brain: Schema.optionalKey(AbsolutePath),
  on_lag_threshold_exceeded: Schema.optionalKey(AbsolutePath),
  on_lag_recovered: Schema.optionalKey(AbsolutePath),
  /** The primary's commits wait for acknowledgements no connected replica can give (and when that ends). */
  on_writes_blocked: Schema.optionalKey(AbsolutePath),
  on_writes_unblocked: Schema.optionalKey(AbsolutePath),
  /** The primary's semi-sync ("on" mode) fell back to asynchronous replication (and when it is back). */
  on_semi_sync_fallback: Schema.optionalKey(AbsolutePath),
  on_semi_sync_restored: Schema.optionalKey(AbsolutePath),
  /** Each run is killed (its whole process group) after this long. */
  timeout: PositiveMillis.pipe(defaultTo(30_000)),
  /** Pending non-blocking hooks; when full the oldest is dropped and counted. */
  queue_size: PositiveInt.pipe(defaultTo(64)),
})

export const LagSource = Schema.Literals(["seconds_behind_source", "heartbeat_table"])
export type LagSource = typeof LagSource.Type

/** `schema.table`, each an unquoted MySQL identifier (letters, digits, `_`, `$`; 1 to 64). */
export const QualifiedTable = Schema.String.check(
  Schema.makeFilter<string>((s) => /^[A-Za-z0-9_$]{1,64}\.[A-Za-z0-9_$]{1,64}$/.test(s), {
    expected:
      'a table as "schema.table" (letters, digits, "_" or "$", 1 to 64 characters each, no quotes)',
  }),
)

/**
 * Where a replica's lag comes from (operations.md): MySQL's
 * Seconds_Behind_Source, or a heartbeat table the primary's agent updates
 * every second (pt-heartbeat style), which keeps counting while the IO
 * thread receives nothing (Seconds_Behind_Source then reads 0).
 */
export const Lag = Schema.Struct({
  source: LagSource.pipe(defaultTo<LagSource>("seconds_behind_source")),
  table: QualifiedTable.pipe(defaultTo("mha_agent.heartbeat")),
})

export const LogLevel = Schema.Literals(["trace", "debug", "info", "warn", "error", "fatal"])
export const Log = Schema.Struct({
  level: LogLevel.pipe(defaultTo<typeof LogLevel.Type>("info")),
})

// ---------------------------------------------------------------------------
// The whole file
// ---------------------------------------------------------------------------

const ConfigFields = Schema.Struct({
  cluster: Cluster,
  /** Which member this host is. */
  node: Name,
  mysql: Mysql,
  timings: sectionDefault(Timings),
  health: sectionDefault(Health),
  semi_sync: sectionDefault(SemiSync),
  vip: Schema.optionalKey(Vip),
  etcd: Schema.optionalKey(Etcd),
  service: sectionDefault(Service),
  mesh: Mesh,
  http: sectionDefault(Http),
  control: sectionDefault(Control),
  state_dir: AbsolutePath.pipe(defaultTo("/var/lib/mha-agent")),
  hooks: sectionDefault(Hooks),
  lag: sectionDefault(Lag),
  auto_rejoin: Schema.Boolean.pipe(defaultTo(true)),
  failback: Schema.Boolean.pipe(defaultTo(false)),
  /** Names the first primary of a cluster where nobody replicates yet (protocol.md section 16). */
  initial_primary: Schema.optionalKey(Name),
  /** Fail over a cluster never seen healthy (protocol.md section 16). */
  failover_before_healthy: Schema.Boolean.pipe(defaultTo(false)),
  /** Shell command that shoots the old primary (power off, cloud API), run with MHA_* env. */
  fence_command: Schema.optionalKey(Schema.NonEmptyString),
  /** When true, a failing fence_command aborts the promotion. */
  fence_required: Schema.Boolean.pipe(defaultTo(false)),
  allow_errant_promotion: Schema.Boolean.pipe(defaultTo(false)),
  log: sectionDefault(Log),
})

type Fields = typeof ConfigFields.Type

/** One violated cross-field rule, at a path inside the file. */
export interface RuleViolation {
  readonly path: ReadonlyArray<string | number>
  readonly message: string
}

/**
 * The cross-field rules, on an otherwise well-typed config. Exported so that
 * callers holding a config built in code (tests, the simulator) can check it.
 */
export const crossFieldViolations = (c: Fields): Array<RuleViolation> => {
  const out: Array<RuleViolation> = []
  const add = (path: ReadonlyArray<string | number>, message: string) => out.push({ path, message })
  const members = c.cluster.members
  const t = c.timings

  if (members.length === 0) add(["cluster", "members"], "Expected at least 1 member")
  const firstIndex = new Map<string, number>()
  members.forEach((m, i) => {
    const first = firstIndex.get(m.name)
    if (first === undefined) firstIndex.set(m.name, i)
    else
      add(
        ["cluster", "members", i, "name"],
        `duplicate member name "${m.name}" (also members[${first}])`,
      )
  })
  const endpoint = (kind: "agent_port" | "mysql_port") => {
    const seen = new Map<string, number>()
    members.forEach((m, i) => {
      if (kind === "mysql_port" && m.kind === "witness") return
      const key = `${m.address}:${m[kind]}`
      const first = seen.get(key)
      if (first === undefined) seen.set(key, i)
      else add(["cluster", "members", i, kind], `${key} is already used by members[${first}]`)
    })
  }
  endpoint("agent_port")
  endpoint("mysql_port")

  const names = members.map((m) => m.name)
  const memberNamed = (name: string) => members.find((m) => m.name === name)
  if (members.length > 0 && !memberNamed(c.node)) {
    add(["node"], `"${c.node}" is not a member; expected one of ${[...new Set(names)].join(", ")}`)
  }
  const dataMembers = members.filter((m) => m.kind === "data")
  if (members.length > 0 && dataMembers.length === 0) {
    add(["cluster", "members"], "Expected at least one member of kind data")
  } else if (members.length > 0 && !dataMembers.some((m) => m.promotable)) {
    add(["cluster", "members"], "Expected at least one data member with promotable: true")
  }
  if (c.initial_primary !== undefined) {
    const p = memberNamed(c.initial_primary)
    if (!p) {
      add(
        ["initial_primary"],
        `"${c.initial_primary}" is not a member; expected one of ${[...new Set(names)].join(", ")}`,
      )
    } else if (p.kind === "witness") {
      add(
        ["initial_primary"],
        `"${c.initial_primary}" is a witness (it runs no mysqld); expected a data member`,
      )
    }
  }

  // protocol.md section 5.
  const hb = t.heartbeat_interval
  const rpc = t.rpc_timeout
  const lease = t.lease_duration
  if (hb * 2 + rpc >= lease) {
    add(
      ["timings", "lease_duration"],
      `heartbeat_interval * 2 + rpc_timeout must be less than lease_duration: ` +
        `${formatDurationMs(hb)} * 2 + ${formatDurationMs(rpc)} = ${formatDurationMs(hb * 2 + rpc)}` +
        `, which is not below lease_duration ${formatDurationMs(lease)}`,
    )
  }
  if (t.drift_margin >= 0.5) {
    add(["timings", "drift_margin"], "Expected a drift margin below 50%")
  }
  if (t.election_timeout_min >= t.election_timeout_max) {
    add(
      ["timings", "election_timeout_max"],
      `election_timeout_max (${formatDurationMs(t.election_timeout_max)}) must be greater than ` +
        `election_timeout_min (${formatDurationMs(t.election_timeout_min)})`,
    )
  }

  // protocol.md section 12: the stable period needs a few probes, and must fit in the window.
  if (t.restart_stable_period < 2 * t.probe_interval) {
    add(
      ["timings", "restart_stable_period"],
      `restart_stable_period (${formatDurationMs(t.restart_stable_period)}) must be at least ` +
        `two probe intervals (2 * ${formatDurationMs(t.probe_interval)})`,
    )
  }
  if (t.restart_window <= t.restart_stable_period) {
    add(
      ["timings", "restart_window"],
      `restart_window (${formatDurationMs(t.restart_window)}) must be longer than ` +
        `restart_stable_period (${formatDurationMs(t.restart_stable_period)})`,
    )
  }

  const h = c.health
  const ladder: Array<[keyof typeof h, number]> = [
    ["info_after", h.info_after],
    ["warn_after", h.warn_after],
    ["critical_after", h.critical_after],
    ["fail_after", h.fail_after],
  ]
  for (let i = 1; i < ladder.length; i++) {
    const [prevKey, prev] = ladder[i - 1] ?? ["info_after", 0]
    const [key, value] = ladder[i] ?? ["info_after", 0]
    if (value < prev)
      add(["health", key], `${key} (${value}) must not be below ${prevKey} (${prev})`)
  }
  if (h.lag_info > h.lag_warn) {
    add(
      ["health", "lag_warn"],
      `lag_warn (${formatDurationMs(h.lag_warn)}) must not be below lag_info (${formatDurationMs(h.lag_info)})`,
    )
  }
  if (h.lag_warn > h.lag_critical) {
    add(
      ["health", "lag_critical"],
      `lag_critical (${formatDurationMs(h.lag_critical)}) must not be below lag_warn (${formatDurationMs(h.lag_warn)})`,
    )
  }

  if (c.semi_sync.mode === "strict" && dataMembers.length < 2) {
    add(
      ["semi_sync", "mode"],
      "strict semi-sync needs at least 2 data members (a replica must ack)",
    )
  }
  // protocol.md section 9: strict waits for members - quorum acknowledgements
  // (witnesses vote but hold no data); more than there are data replicas and
  // no commit could ever complete.
  const acks = Math.max(1, members.length - (Math.floor(members.length / 2) + 1))
  if (c.semi_sync.mode === "strict" && dataMembers.length >= 2 && acks > dataMembers.length - 1) {
    add(
      ["semi_sync", "mode"],
      `strict semi-sync with ${members.length} members waits for ${acks} acknowledgements per commit ` +
        `(members - quorum: witnesses vote but hold no data), but only ${dataMembers.length - 1} data ` +
        "replicas exist: no write could ever commit. Add data members or remove witnesses",
    )
  }
  const tls = c.mysql.tls
  if (tls !== undefined && (tls.cert === undefined) !== (tls.key === undefined)) {
    add(["mysql", "tls"], "cert and key must be given together")
  }
  if (tls?.verify_identity && tls.ca === undefined) {
    add(
      ["mysql", "tls", "verify_identity"],
      "verify_identity needs mysql.tls.ca (a name is only worth checking on a certificate the CA signed)",
    )
  }
  if (tls === undefined && !c.mysql.get_source_public_key) {
    add(
      ["mysql"],
      "replication with caching_sha2_password needs TLS (mysql.tls) or get_source_public_key: true",
    )
  }
  const etcd = c.etcd
  if (etcd !== undefined) {
    if (etcd.endpoints.length === 0) add(["etcd", "endpoints"], "Expected at least 1 endpoint")
    const ttl = etcd.lease_ttl
    if (ttl < 2_000 || ttl % 1_000 !== 0) {
      add(
        ["etcd", "lease_ttl"],
        `lease_ttl (${formatDurationMs(ttl)}) must be a whole number of seconds, at least 2s (etcd leases count in seconds and refuse shorter ones)`,
      )
    } else if (etcd.request_timeout * 2 >= ttl) {
      add(
        ["etcd", "request_timeout"],
        `request_timeout (${formatDurationMs(etcd.request_timeout)}) must be below half of lease_ttl (${formatDurationMs(ttl)}): the lease is refreshed every lease_ttl / 3`,
      )
    }
    if (etcd.tls !== undefined && (etcd.tls.cert === undefined) !== (etcd.tls.key === undefined)) {
      add(["etcd", "tls"], "cert and key must be given together")
    }
    if (etcd.tls !== undefined && etcd.endpoints.some((e) => e.startsWith("http:"))) {
      add(["etcd", "endpoints"], "etcd.tls is set: every endpoint must be https://")
    }
    if ((etcd.username === undefined) !== (etcd.password_file === undefined)) {
      add(["etcd"], "username and password_file must be given together")
    }
  }
  if (c.fence_required && c.fence_command === undefined) {
    add(["fence_required"], "fence_required is true but no fence_command is configured")
  }
  return out
}

/** The config file, with its cross-field rules. */
export const Config = ConfigFields.check(
  Schema.makeFilter<Fields>((c) =>
    crossFieldViolations(c).map((v) => ({ path: v.path, issue: v.message })),
  ),
)
export type Config = typeof Config.Type
export type ConfigEncoded = typeof Config.Encoded

/** Parse options for config files: unknown keys are errors, report every problem. */
export const decodeOptions: SchemaAST.ParseOptions = {
  errors: "all",
  onExcessProperty: "error",
  reportInput: true,
}

// ---------------------------------------------------------------------------
// Problems, with paths the operator can find in the file
// ---------------------------------------------------------------------------

/** One thing wrong with a config file. */
export interface ConfigProblem {
  /** Path inside the document, e.g. `["cluster", "members", 2, "priority"]`. */
  readonly path: ReadonlyArray<string | number>
  readonly message: string
  /** 1-based position in the file, when known. */
  readonly line?: number
  readonly column?: number
}

/** `["cluster", "members", 2, "priority"]` -> `cluster.members[2].priority`. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`
    else {
      const key = String(p)
      const plain = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)
      out += plain ? (out === "" ? key : `.${key}`) : `[${JSON.stringify(key)}]`
    }
  }
  return out === "" ? "(top level)" : out
}

/** `file:line:col: path: message` (position parts left out when unknown). */
export const formatProblem = (file: string, p: ConfigProblem): string => {
  const where =
    p.line === undefined ? file : `${file}:${p.line}${p.column === undefined ? "" : `:${p.column}`}`
  return `${where}: ${formatPath(p.path)}: ${p.message}`
}

const levenshtein = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0] ?? 0
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const up = row[j] ?? 0
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      row[j] = Math.min(up + 1, (row[j - 1] ?? 0) + 1, diag + cost)
      diag = up
    }
  }
  return row[b.length] ?? 0
}

const unknownKeyMessage = (key: PropertyKey | undefined, ast: SchemaAST.AST): string => {
  const known =
    ast._tag === "Objects" ? ast.propertySignatures.map((p) => String(p.name)) : ([] as string[])
  let message = "unknown key"
  if (typeof key === "string" && known.length > 0) {
    const best = known
      .map((k) => ({ k, d: levenshtein(key.toLowerCase(), k.toLowerCase()) }))
      .sort((x, y) => x.d - y.d)[0]
    if (best && best.d <= Math.max(1, Math.floor(key.length / 3))) {
      message += ` (did you mean "${best.k}"?)`
    }
    message += `; expected one of: ${known.join(", ")}`
  }
  return message
}

const standard = SchemaIssue.makeFormatterStandardSchemaV1()

const toPathKey = (p: PropertyKey): string | number =>
  typeof p === "number" ? p : typeof p === "symbol" ? String(p) : p

/** Flattens a decode issue into problems with paths (unknown keys get a "did you mean"). */
export const issueToProblems = (issue: SchemaIssue.Issue): Array<ConfigProblem> => {
  const out: Array<ConfigProblem> = []
  const walk = (i: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey>): void => {
    switch (i._tag) {
      case "Pointer":
        walk(i.issue, [...path, ...i.path])
        return
      case "Composite":
        for (const sub of i.issues) walk(sub, path)
        return
      case "Encoding":
        walk(i.issue, path)
        return
      case "UnexpectedKey":
        out.push({ path: path.map(toPathKey), message: unknownKeyMessage(path.at(-1), i.ast) })
        return
      case "MissingKey":
        out.push({ path: path.map(toPathKey), message: "missing (required)" })
        return
      default:
        for (const s of standard(i).issues) {
          const sub = (s.path ?? []).map((k) =>
            typeof k === "object" && k !== null && "key" in k ? k.key : k,
          )
          out.push({ path: [...path, ...sub].map(toPathKey), message: s.message })
        }
    }
  }
  walk(issue, [])
  return out
}

/**
 * Decodes an already-parsed document (from YAML or JSON). Failure carries
 * problems with paths but no positions (config-load adds those from YAML).
 */
export const decodeConfig = (
  input: unknown,
):
  | { readonly _tag: "Ok"; readonly config: Config }
  | { readonly _tag: "Invalid"; readonly problems: ReadonlyArray<ConfigProblem> } => {
  const r = Schema.decodeUnknownExit(Config)(input, decodeOptions)
  if (r._tag === "Success") return { _tag: "Ok", config: r.value }
  const problems: Array<ConfigProblem> = []
  for (const reason of r.cause.reasons) {
    if (reason._tag === "Fail") problems.push(...issueToProblems(reason.error.issue))
    else problems.push({ path: [], message: String(reason) })
  }
  return { _tag: "Invalid", problems }
}

/** Where the mesh listens: `mesh.listen`, else every address on this member's agent_port. */
export const meshListen = (c: Config): { host: string; port: number } => {
  const own = c.cluster.members.find((m) => m.name === c.node)
  const explicit = c.mesh.listen === undefined ? undefined : parseListen(c.mesh.listen)
  return explicit ?? { host: "0.0.0.0", port: own?.agent_port ?? 0 }
}

/** This host's member entry (the config's rules guarantee it exists). */
export const ownMember = (c: Config): Member => {
  const own = c.cluster.members.find((m) => m.name === c.node)
  if (own === undefined) throw new Error(`node ${c.node} is not a member`)
  return own
}
