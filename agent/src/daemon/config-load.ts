/**
 * Loads the YAML config file and decodes it with the shared schema
 * (shared/config.ts). Every problem names the file, the line and column when
 * the YAML document knows them, the path inside the document
 * (`cluster.members[2].priority`) and what was expected. A bad file never
 * starts the agent and never replaces a running config.
 *
 * {@link diffForReload} decides what a SIGHUP may change: timings,
 * thresholds, hooks, log level, HTTP and the other behaviour settings change
 * live; the cluster's membership and this agent's identity are refused until
 * a restart, and so are the listeners and paths bound at start and the lease
 * timings (a restart of every agent, one at a time).
 */
import { readFile } from "node:fs/promises"
import { Effect, Schema } from "effect"
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml"
import {
  type Config,
  type ConfigProblem,
  decodeConfig,
  formatPath,
  formatProblem,
} from "../../../shared/config.ts"
import { availabilityWarnings } from "../core/config.ts"
import { toClusterConfig } from "./core-config.ts"

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

const Problem = Schema.Struct({
  path: Schema.Array(Schema.Union([Schema.String, Schema.Number])),
  message: Schema.String,
  line: Schema.optionalKey(Schema.Number),
  column: Schema.optionalKey(Schema.Number),
})

/** The config file could not be read, parsed or validated. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  file: Schema.String,
  problems: Schema.Array(Problem),
}) {
  /** One line per problem: `file:line:col: path: message`. */
  get lines(): ReadonlyArray<string> {
    return this.problems.map((p) => formatProblem(this.file, p))
  }
  override get message(): string {
    const n = this.problems.length
    return `invalid config ${this.file} (${n} problem${n === 1 ? "" : "s"}):\n  ${this.lines.join("\n  ")}`
  }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

interface Located {
  readonly range?: readonly [number, number, number] | null | undefined
}

/**
 * The position for a problem: the value at `path`, or for an unknown key the
 * key itself, or (when the path does not exist, e.g. a missing key) the
 * deepest node that does.
 */
const locate = (
  contents: unknown,
  path: ReadonlyArray<string | number>,
  pointAtKey: boolean,
): number | undefined => {
  let node: unknown = contents
  let offset = (node as Located | null)?.range?.[0]
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]
    const last = i === path.length - 1
    if (isAlias(node)) return offset
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg)
      if (pair === undefined) return offset
      const keyStart = (pair.key as Located | null)?.range?.[0]
      if (last && pointAtKey && keyStart !== undefined) return keyStart
      node = pair.value
      offset = (node as Located | null)?.range?.[0] ?? keyStart ?? offset
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg]
      if (item === undefined) return offset
      node = item
      offset = (node as Located | null)?.range?.[0] ?? offset
    } else {
      return offset
    }
  }
  return offset
}

export type ParseResult =
  | { readonly _tag: "Ok"; readonly config: Config }
  | { readonly _tag: "Invalid"; readonly problems: ReadonlyArray<ConfigProblem> }

/** Parses and validates config text (pure; `loadConfig` adds the file reading). */
export const parseConfigText = (text: string): ParseResult => {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  const at = (offset: number | undefined): { line?: number; column?: number } => {
    if (offset === undefined) return {}
    const { line, col } = lineCounter.linePos(offset)
    return { line, column: col }
  }
  if (doc.errors.length > 0) {
    return {
      _tag: "Invalid",
      problems: doc.errors.map((e) => ({
        path: [],
        message: `YAML syntax: ${e.message.split("\n")[0] ?? e.message}`,
        ...at(e.pos[0]),
      })),
    }
  }
  let input: unknown
  try {
    input = doc.toJS({ maxAliasCount: 100 })
  } catch (e) {
    return { _tag: "Invalid", problems: [{ path: [], message: `YAML: ${String(e)}` }] }
  }
  if (input === null || input === undefined) {
    return {
      _tag: "Invalid",
      problems: [
        { path: [], message: "the document is empty; expected a mapping of config sections" },
      ],
    }
  }
  const decoded = decodeConfig(input)
  if (decoded._tag === "Ok") return decoded
  const problems = decoded.problems.map((p) => ({
    ...p,
    ...at(locate(doc.contents, p.path, p.message.startsWith("unknown key"))),
  }))
  // In file order; problems without a position (top level) first.
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0))
  return { _tag: "Invalid", problems }
}

/** Reads, parses and validates the config file. */
export const loadConfig = Effect.fn("loadConfig")(function* (
  file: string,
): Effect.fn.Return<Config, ConfigError> {
  const text = yield* Effect.tryPromise({
    try: () => readFile(file, "utf8"),
    catch: (e) =>
      new ConfigError({
        file,
        problems: [{ path: [], message: `cannot read the file: ${errorText(e)}` }],
      }),
  })
  const result = parseConfigText(text)
  if (result._tag === "Invalid") return yield* new ConfigError({ file, problems: result.problems })
  return result.config
})

const errorText = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException
  return err instanceof Error ? err.message : String(e)
}

// ---------------------------------------------------------------------------
// Reload (SIGHUP)
// ---------------------------------------------------------------------------

/** One setting that changes, with the values before and after. */
export interface ReloadChange {
  readonly path: string
  readonly from: unknown
  readonly to: unknown
}

/** One change that a reload may not make, and why. */
export interface ReloadRefusal extends ReloadChange {
  readonly reason: string
}

export interface ReloadPlan {
  /** True when the new config may replace the running one (nothing refused). */
  readonly ok: boolean
  /** Changes that take effect live. */
  readonly live: ReadonlyArray<ReloadChange>
  /** Changes that need a restart; any of them refuses the whole reload. */
  readonly refused: ReadonlyArray<ReloadRefusal>
}

const IDENTITY_REASON: Readonly<Record<string, string>> = {
  "cluster.name": "the cluster's name is its identity; it cannot change while the agent runs",
  node: "this agent's identity (node) cannot change while it runs; restart it",
  "cluster.members":
    "membership cannot change by editing the file while the agent runs: run `mha-agent member add|remove` on the primary (one member at a time), then put the members block it prints in every agent's file and reload",
}

const RESTART_REASON: Readonly<Record<string, string>> = {
  mesh: "the mesh listener and its certificates are set up at start; restart to change them",
  control: "the control socket is bound at start; restart to change it",
  state_dir: "the hard state location is fixed while the agent runs; restart to change it",
  vip: "the VIP cannot move to another address or interface while held; restart to change it",
  etcd: "the etcd publisher (endpoints, key, lease) is set up at start; restart to change it",
}

/** The monitor's TLS files are read and checked against the local mysqld at start (daemon/mysql-tls.ts). */
const MYSQL_TLS_REASON =
  "TLS to mysqld is read and verified against the local mysqld at start; restart the agent to change it"

/**
 * The lease's timings, refused on reload: applied live on one node at a time,
 * an old leader and a voter would disagree on how long a lease lasts, and two
 * leases could both look valid (protocol.md section 5). Changed in every
 * config, then the agents restarted one at a time.
 */
const LEASE_TIMING_REASON =
  "a lease timing cannot change live (nodes reloaded one by one would disagree on how long a lease lasts, and two leases could both look valid): change it in every agent's config, then restart the agents one at a time"
const LEASE_TIMINGS: ReadonlySet<string> = new Set([
  "timings.lease_duration",
  "timings.drift_margin",
  "timings.heartbeat_interval",
  "timings.rpc_timeout",
])

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

const changedLeaves = (
  a: unknown,
  b: unknown,
  path: ReadonlyArray<string | number>,
  out: Array<{ path: ReadonlyArray<string | number>; from: unknown; to: unknown }>,
): void => {
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)])
    for (const k of keys) changedLeaves(a[k], b[k], [...path, k], out)
    return
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path, from: a, to: b })
}

const describeMembers = (from: Config, to: Config): string => {
  const before = new Map(from.cluster.members.map((m) => [m.name, JSON.stringify(m)]))
  const after = new Map(to.cluster.members.map((m) => [m.name, JSON.stringify(m)]))
  const parts: Array<string> = []
  const added = [...after.keys()].filter((n) => !before.has(n))
  const removed = [...before.keys()].filter((n) => !after.has(n))
  const changed = [...after.keys()].filter((n) => before.has(n) && before.get(n) !== after.get(n))
  if (added.length) parts.push(`added ${added.join(", ")}`)
  if (removed.length) parts.push(`removed ${removed.join(", ")}`)
  if (changed.length) parts.push(`changed ${changed.join(", ")}`)
  if (parts.length === 0) parts.push("reordered")
  return parts.join("; ")
}

/**
 * What a reload from `from` to `to` would do. Refused: any change of
 * `cluster.name`, `node` or `cluster.members` (identity and membership),
 * of `mesh`, `control`, `state_dir`, `vip` and `mysql.tls` (set up at start), and of the
 * lease timings (`lease_duration`, `drift_margin`, `heartbeat_interval`,
 * `rpc_timeout`). Everything else changes live.
 */
export const diffForReload = (
  from: Config,
  to: Config,
  /**
   * The member list of the cluster record this agent holds (core/members.ts), null when
   * the record lists none: a file whose members say the same (names and kinds) is taken
   * live, since the record's list is what counts; any other members change is refused.
   */
  recordMembers: ReadonlyArray<{ readonly name: string; readonly kind: string }> | null = null,
): ReloadPlan => {
  const live: Array<ReloadChange> = []
  const refused: Array<ReloadRefusal> = []
  const leaves: Array<{ path: ReadonlyArray<string | number>; from: unknown; to: unknown }> = []
  const { cluster: ca, ...restA } = from
  const { cluster: cb, ...restB } = to
  changedLeaves(restA, restB, [], leaves)
  if (ca.name !== cb.name) leaves.push({ path: ["cluster", "name"], from: ca.name, to: cb.name })
  const key = (ms: ReadonlyArray<{ readonly name: string; readonly kind: string }>) =>
    ms
      .map((m) => `${m.name}:${m.kind}`)
      .sort()
      .join(",")
  const asRecorded = recordMembers !== null && key(cb.members) === key(recordMembers)
  if (JSON.stringify(ca.members) !== JSON.stringify(cb.members) && asRecorded) {
    live.push({
      path: "cluster.members",
      from: ca.members.map((m) => m.name),
      to: cb.members.map((m) => m.name),
    })
  } else if (JSON.stringify(ca.members) !== JSON.stringify(cb.members)) {
    refused.push({
      path: "cluster.members",
      from: ca.members.map((m) => m.name),
      to: cb.members.map((m) => m.name),
      reason: `${IDENTITY_REASON["cluster.members"]} (${describeMembers(from, to)})`,
    })
  }
  for (const leaf of leaves) {
    const path = formatPath(leaf.path)
    const top = String(leaf.path[0])
    const reason =
      IDENTITY_REASON[path] ??
      RESTART_REASON[top] ??
      (path.startsWith("mysql.tls") ? MYSQL_TLS_REASON : undefined) ??
      (LEASE_TIMINGS.has(path) ? LEASE_TIMING_REASON : undefined)
    if (reason !== undefined) refused.push({ path, from: leaf.from, to: leaf.to, reason })
    else live.push({ path, from: leaf.from, to: leaf.to })
  }
  return { ok: refused.length === 0, live, refused }
}

/** Human lines for a reload plan (logged on SIGHUP, printed by `mha-agent reload`). */
export const formatReloadPlan = (plan: ReloadPlan): ReadonlyArray<string> => {
  const show = (v: unknown) => (v === undefined ? "(unset)" : JSON.stringify(v))
  if (!plan.ok) {
    return [
      "reload refused; the running config stays in force:",
      ...plan.refused.map((r) => `  ${r.path}: ${r.reason}`),
    ]
  }
  if (plan.live.length === 0) return ["reload: no changes"]
  return [
    "reload: changing live:",
    ...plan.live.map((c) => `  ${c.path}: ${show(c.from)} -> ${show(c.to)}`),
  ]
}

/** What a valid config costs in availability (core/config.ts), for check-config and the agent's start. */
export const configWarnings = (c: Config): ReadonlyArray<string> =>
  availabilityWarnings(toClusterConfig(c))
