// Prometheus metrics (operations.md, Metrics): the text exposition format
// 0.0.4, written by hand. Everything is read at scrape time from the latest
// core state, the adapters' counters and the process; the counters the core
// does not keep (elections, failovers, switchovers, fencing actions, probe
// failures) are derived here from the outputs the executor runs
// (`countOutputs`) and from the states the decision loop publishes
// (`notePublished`). Counters are per agent and start at 0 with the process.

import { createHistogram, performance } from "node:perf_hooks"
import pkg from "../../../package.json" with { type: "json" }
import { etcdCounters } from "../adapters/etcd.ts"
import type { HookStats } from "../adapters/hook-runner.ts"
import type { MeshMetrics, PeerState } from "../adapters/mesh.ts"
import { REQUIRED_PRIVILEGES } from "../adapters/mysql-actuator.ts"
import type { VipMetrics } from "../adapters/vip.ts"
import { recoveryBlockApplies } from "../core/cluster-record.ts"
import { livenessOf } from "../core/cluster-view.ts"
import { isDataNode } from "../core/config.ts"
import { backlogOf } from "../core/election.ts"
import type { CoreEvent, EventName } from "../core/events.ts"
import { count } from "../core/gtid.ts"
import { localReportedLag } from "../core/lag-heartbeat.ts"
import { leaseRemaining } from "../core/lease.ts"
import { leaderActiveOf, leaderOf, roleName } from "../core/roles.ts"
import { reportedSemiSyncFallback } from "../core/semi-sync-fallback.ts"
import { nodeRole } from "../core/status.ts"
import type { AgentState, Output } from "../core/types.ts"
import { reportedWritesBlocked } from "../core/writes-blocked.ts"
import type { CertificateExpiry } from "./cert-expiry.ts"
import { statusView } from "./status-view.ts"

/** Filled in at build time by packaging/build.sh, as in main.ts (not imported from there: no cycle). */
declare const __MHA_BUILD__: { readonly version: string; readonly commit: string } | undefined

const buildInfo = () =>
  typeof __MHA_BUILD__ === "undefined" ? { version: pkg.version, commit: "unknown" } : __MHA_BUILD__

// ---------------------------------------------------------------------------
// The text format

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

export type MetricType = "counter" | "gauge" | "summary"

export interface Sample {
  /** Appended to the family name: `_sum`, `_count` for a summary. */
  readonly suffix?: string
  readonly labels?: Readonly<Record<string, string>>
  readonly value: number
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** A label value inside double quotes: backslash, double quote and line feed escaped. */
export const escapeLabelValue = (v: string): string =>
  v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

/** HELP text: backslash and line feed escaped. */
export const escapeHelp = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

export const formatValue = (n: number): string => {
  if (Number.isNaN(n)) return "NaN"
  if (n === Number.POSITIVE_INFINITY) return "+Inf"
  if (n === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(n)
}

/** Collects metric families; each name once, its samples right after its HELP and TYPE. */
export class Exposition {
  private readonly out: Array<string> = []
  private readonly names = new Set<string>()

  family(name: string, type: MetricType, help: string, samples: ReadonlyArray<Sample>): this {
    if (!METRIC_NAME.test(name)) throw new Error(`bad metric name ${name}`)
    if (this.names.has(name)) throw new Error(`metric ${name} twice`)
    this.names.add(name)
    this.out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`)
    for (const s of samples) {
      const labels = Object.entries(s.labels ?? {})
      for (const [k] of labels) {
        if (!LABEL_NAME.test(k) || k.startsWith("__")) throw new Error(`bad label name ${k}`)
      }
      const text =
        labels.length === 0
          ? ""
          : `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`
      this.out.push(`${name}${s.suffix ?? ""}${text} ${formatValue(s.value)}`)
    }
    return this
  }

  gauge(name: string, help: string, value: number | ReadonlyArray<Sample>): this {
    return this.family(name, "gauge", help, typeof value === "number" ? [{ value }] : value)
  }

  counter(name: string, help: string, value: number | ReadonlyArray<Sample>): this {
    return this.family(name, "counter", help, typeof value === "number" ? [{ value }] : value)
  }

  text(): string {
    return `${this.out.join("\n")}\n`
  }
}

const bool = (b: boolean): number => (b ? 1 : 0)

/** One sample per label value: 1 for `current`, 0 for the others (a "state set"). */
const oneOf = (
  label: string,
  values: ReadonlyArray<string>,
  current: string,
  extra: Readonly<Record<string, string>> = {},
): Array<Sample> => {
  const all = values.includes(current) ? values : [...values, current]
  return all.map((v) => ({ labels: { ...extra, [label]: v }, value: bool(v === current) }))
}

// ---------------------------------------------------------------------------
// Counters the daemon keeps

/** The leader this agent believes in, with whether it announced its promotion finished. */
const leaderSample = (s: AgentState): ReadonlyArray<Sample> => {
  const leader = leaderOf(s)
  return leader === null
    ? []
    : [{ labels: { node: leader, active: String(leaderActiveOf(s)) }, value: 1 }]
}

const ELECTION_RESULTS = ["won", "timed_out"] as const
const FAILOVER_RESULTS = ["succeeded", "aborted"] as const
const SWITCHOVER_RESULTS = ["requested", "succeeded", "refused", "rolled_back"] as const
const FENCING_ACTIONS = ["local_fence", "remote_fence", "fence_command"] as const
const PROMOTION_KINDS = ["election", "transfer", "bootstrap", "forced", "reclaim"] as const
/** Repairs of this node's replication, by the core event that announced them (replication.ts). */
const REPAIR_KINDS = ["start_replica", "semi_sync", "repoint"] as const

const zeros = <K extends string>(keys: ReadonlyArray<K>): Record<K, number> =>
  Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>

const makeCounters = () => ({
  events: new Map<EventName, number>(),
  electionsStarted: 0,
  elections: zeros(ELECTION_RESULTS),
  votesRefused: { pre_vote: 0, vote: 0 },
  promotions: zeros(PROMOTION_KINDS),
  failovers: zeros(FAILOVER_RESULTS),
  switchovers: zeros(SWITCHOVER_RESULTS),
  fencing: zeros(FENCING_ACTIONS),
  mysqldFailures: 0,
  mysqldRestarts: 0,
  probeFailures: 0,
  resignations: 0,
  repairs: zeros(REPAIR_KINDS),
  splitBrainFences: 0,
})

type Counters = ReturnType<typeof makeCounters>

let counters = makeCounters()

/**
 * What one core event counts beyond `mha_events_total`. Every event of the
 * core is listed (events.ts), so a new one does not compile until it is
 * classified here; facts come from the event's typed fields, never its text.
 */
const countFacts = (c: Counters, e: CoreEvent): void => {
  switch (e.event) {
    case "election":
      c.electionsStarted += 1
      return
    case "elected":
      c.elections.won += 1
      return
    case "election-timeout":
      c.elections.timed_out += 1
      return
    case "pre-vote-refused":
      c.votesRefused.pre_vote += 1
      return
    case "vote-refused":
      c.votesRefused.vote += 1
      return
    case "promoted":
      c.promotions[e.kind] += 1
      if (e.kind === "election" || e.kind === "forced") c.failovers.succeeded += 1
      if (e.kind === "transfer") c.switchovers.succeeded += 1
      return
    case "promotion-aborted":
      c.failovers.aborted += 1
      return
    case "switchover":
      c.switchovers.requested += 1
      return
    case "switchover-rollback":
      c.switchovers.rolled_back += 1
      return
    case "switchover-refused":
      c.switchovers.refused += 1
      return
    case "mysqld-failed":
      c.mysqldFailures += 1
      return
    case "restart-mysqld":
      c.mysqldRestarts += 1
      return
    case "resigned":
      c.resignations += 1
      return
    case "replication-restart":
      c.repairs.start_replica += 1
      return
    case "semi-sync-replica":
      c.repairs.semi_sync += 1
      return
    case "repoint":
      c.repairs.repoint += 1
      return
    // Counted by name only.
    case "agent-start":
    case "catch-up":
    case "clone-failed":
    case "clone-rejoined":
    case "clone-started":
    case "cloned":
    case "commit-stalled":
    case "commits-resumed":
    case "converged":
    case "crash-loop":
    case "credentials":
    case "demoted":
    case "diverged":
    case "errant-transactions":
    case "failback":
    case "fence-escalated":
    case "fence-not-awaited":
    case "forced-failover":
    case "forced-vote":
    case "lag-recovered":
    case "lag-threshold-exceeded":
    case "lease-regained":
    case "mysql-action-failed":
    case "mysqld-failed-again":
    case "mysqld-restarted":
    case "new-primary":
    case "no-restart":
    case "old-primary-unreachable":
    case "operator":
    case "operator-forwarded":
    case "operator-request":
    case "peer-message-dropped":
    case "pre-vote":
    case "primary-failure-detected":
    case "primary-resigned":
    case "privilege-check-failed":
    case "privilege-missing":
    case "privileges-complete":
    case "reconfigured":
    case "record-committed":
    case "relay-log-intact":
    case "relay-log-lost":
    case "replication-resumed":
    case "replication-stalled":
    case "restart-failed":
    case "restart-held":
    case "restart-succeeded":
    case "role-change":
    case "self-fenced":
    case "semi-sync-fallback":
    case "semi-sync-restored":
    case "semi-sync-source":
    case "split-brain-guard":
    case "stale-completion":
    case "hard-state-write-failed":
    case "step-down":
    case "switchover-converged":
    case "transfer":
    case "transfer-refused":
    case "vip-failed":
    case "writes-blocked":
    case "writes-unblocked":
    case "config-members-stale":
    case "member-change":
    case "member-change-committed":
    case "member-removed":
      return
    default: {
      const unhandled: never = e
      throw new Error(`unclassified core event ${JSON.stringify(unhandled)}`)
    }
  }
}

/** Counts one core event (`Event` output): its name, and what it says about elections and failovers. */
export const countEvent = (e: CoreEvent): void => {
  counters.events.set(e.event, (counters.events.get(e.event) ?? 0) + 1)
  countFacts(counters, e)
}

/** Counts what one step asks the executor to do: its events and its fencing actions. */
export const countOutputs = (outputs: ReadonlyArray<Output>): void => {
  for (const o of outputs) {
    if (o._tag === "Event") countEvent(o)
    else if (o._tag === "Mysql" && o.action._tag === "Fence") counters.fencing.local_fence += 1
    else if (o._tag === "Mysql" && o.action._tag === "FenceRemote")
      counters.fencing.remote_fence += 1
    else if (o._tag === "RunHook" && o.hook === "fence_command") counters.fencing.fence_command += 1
    // The split-brain guard (fencing.ts) always asks for this hook, configured or not.
    else if (o._tag === "RunHook" && o.hook === "on_split_brain") counters.splitBrainFences += 1
  }
}

// ---------------------------------------------------------------------------
// The decision loop, as its publications show it

let lastNow: number | null = null
/** performance.now() when the core's `now` last advanced. */
let lastAdvanceAt: number | null = null
let lastFailures = 0

/** Called with every state the decision loop publishes. */
export const notePublished = (s: AgentState): void => {
  if (lastNow === null || s.now > lastNow) {
    lastNow = s.now
    lastAdvanceAt = performance.now()
  }
  const failures = s.local.health.consecutiveFailures
  if (failures > lastFailures) counters.probeFailures += failures - lastFailures
  lastFailures = failures
}

/** Milliseconds since the decision loop's clock last advanced; null before its first step. */
export const loopAgeMs = (): number | null =>
  lastAdvanceAt === null ? null : performance.now() - lastAdvanceAt

/** Forgets every counter (tests). */
export const resetCounters = (): void => {
  counters = makeCounters()
  lastNow = null
  lastAdvanceAt = null
  lastFailures = 0
}

// ---------------------------------------------------------------------------
// The process

/**
 * The event-loop delay: how late the decision loop's alarm fires (run.ts
 * hands `noteLoopDelay` to runAlarm), 2 to 4 times a second at rest and every
 * 50 ms while a routine runs. Node's own sampler (monitorEventLoopDelay) is a
 * timer of its own: every 10 ms it cost 0.28 % of a core in a bare process,
 * more than anything the agent does at rest, and every 100 ms still 0.04 %
 * (issue 12). Values in ns, at least 1 (the histogram's floor).
 */
const loopDelay = createHistogram()

/** Records one wake-up `lateMs` late. */
export const noteLoopDelay = (lateMs: number): void => {
  if (Number.isFinite(lateMs)) loopDelay.record(Math.max(1, Math.round(lateMs * 1e6)))
}

const processStart = Date.now() / 1000 - process.uptime()

const processMetrics = (x: Exposition): void => {
  const h = loopDelay
  const cpu = process.cpuUsage()
  const mem = process.memoryUsage()
  x.counter(
    "mha_process_cpu_seconds_total",
    "CPU time used by the agent process (user and system), in seconds.",
    (cpu.user + cpu.system) / 1e6,
  )
  x.gauge("mha_process_resident_memory_bytes", "Resident memory of the agent process.", mem.rss)
  x.gauge("mha_process_heap_used_bytes", "V8 heap in use.", mem.heapUsed)
  // Memory outside V8's heap that JavaScript objects hold (Buffers, TLS and
  // zlib state): heapUsed does not count it. A scavenge frees what young
  // objects held; what old objects hold waits for a full GC.
  x.gauge(
    "mha_process_external_memory_bytes",
    "Memory held outside V8's heap by JavaScript objects (Buffers and native wrappers), as V8 counts it.",
    mem.external,
  )
  x.gauge(
    "mha_process_array_buffers_bytes",
    "Memory of ArrayBuffers and Buffers, part of the external memory.",
    mem.arrayBuffers,
  )
  x.gauge(
    "mha_process_start_time_seconds",
    "Start time of the agent process, seconds since the epoch.",
    Math.round(processStart),
  )
  const n = h.count
  const q = (p: number) => (n === 0 ? Number.NaN : h.percentile(p) / 1e9)
  x.family(
    "mha_event_loop_delay_seconds",
    "summary",
    "Event-loop delay of the agent process since it started: how late the decision loop's timer fired (2-4 times a second at rest, every 50 ms while a routine runs).",
    [
      { labels: { quantile: "0.5" }, value: q(50) },
      { labels: { quantile: "0.9" }, value: q(90) },
      { labels: { quantile: "0.99" }, value: q(99) },
      { suffix: "_sum", value: n === 0 ? 0 : (h.mean * n) / 1e9 },
      { suffix: "_count", value: n },
    ],
  )
  x.gauge(
    "mha_event_loop_delay_max_seconds",
    "Longest event-loop delay seen since the agent started.",
    n === 0 ? 0 : h.max / 1e9,
  )
}

// ---------------------------------------------------------------------------
// The whole page

export interface MetricsSources {
  readonly cluster: string
  readonly node: string
  readonly state: AgentState | undefined
  /** Undefined when the mesh's counters could not be read. */
  readonly mesh?: { readonly metrics: MeshMetrics; readonly peers: ReadonlyArray<PeerState> }
  /** Undefined when this node has no VIP (none configured, or a witness). */
  readonly vip?: VipMetrics
  readonly hooks?: HookStats
  /** The certificates in use (cert-expiry.ts); none when unknown. */
  readonly certificates?: ReadonlyArray<CertificateExpiry>
}

const NODE_ROLES = ["ACTIVE", "STANDBY", "FENCED", "DIVERGED", "FAIL", "UNKNOWN"] as const
const HEALTH_LEVELS = ["OK", "INFO", "WARN", "CRITICAL", "FAIL", "UNKNOWN"] as const
const AGENT_ROLES = ["follower", "pre-candidate", "candidate", "leader"] as const
const VIP_STATES = ["held", "not_held", "unknown"] as const

const stateMetrics = (x: Exposition, s: AgentState | undefined, cluster: string): void => {
  const view = s === undefined ? undefined : statusView(s, cluster)
  const members = view?.members ?? []
  const self = s?.self ?? ""
  x.gauge(
    "mha_state_published",
    "1 once the decision loop has published a state (the other state metrics are empty before).",
    bool(s !== undefined),
  )
  x.gauge(
    "mha_node_role",
    "Role state of each member as this agent sees it (1 for the current one): its own from its probes, peers' from their heartbeats.",
    members.flatMap((m) => oneOf("role", NODE_ROLES, m.role, { node: m.name })),
  )
  x.gauge(
    "mha_node_health",
    "Health level of each member as this agent sees it (1 for the current one); peers are OK or FAIL by their heartbeats.",
    members.flatMap((m) => oneOf("level", HEALTH_LEVELS, m.health, { node: m.name })),
  )
  x.gauge(
    "mha_agent_role",
    "Consensus role of this agent (1 for the current one).",
    s === undefined ? [] : oneOf("role", AGENT_ROLES, roleName(s)),
  )
  x.gauge(
    "mha_leader",
    "The leader of the current term this agent believes in (1), with whether it announced its promotion finished.",
    s === undefined ? [] : leaderSample(s),
  )
  x.gauge("mha_term", "Current term (persisted).", s?.hard.term ?? 0)
  x.gauge(
    "mha_lease_remaining_seconds",
    "Lease this agent holds as leader, in seconds (0 when not the leader or the lease ran out).",
    s === undefined ? 0 : leaseRemaining(s) / 1000,
  )
  x.gauge(
    "mha_lease_promise_remaining_seconds",
    "How long this follower's promise to the leader still holds, in seconds.",
    s?.promise == null ? 0 : Math.max(0, s.promise.until - s.now) / 1000,
  )
  const peers = s === undefined ? [] : s.config.members.filter((m) => m.name !== self)
  const liveness = peers.map((m) => ({ name: m.name, state: livenessOf(s as AgentState, m.name) }))
  x.gauge(
    "mha_peers_reachable",
    "Peers this agent heard from within the alive window (heartbeats).",
    liveness.filter((p) => p.state === "alive").length,
  )
  x.gauge("mha_peers", "Peers in the configuration.", peers.length)
  x.gauge(
    "mha_peer_liveness",
    "Each peer as alive (heard directly), suspected (only others heard it) or failed (1 for the current one).",
    liveness.flatMap((p) =>
      oneOf("state", ["alive", "suspected", "failed"], p.state, { node: p.name }),
    ),
  )
  x.gauge(
    "mha_peer_last_heard_seconds",
    "Seconds since this agent last heard each peer.",
    s === undefined
      ? []
      : [...s.peers].map(([name, v]) => ({
          labels: { node: name },
          value: (s.now - v.lastHeardAt) / 1000,
        })),
  )
  const probe = s?.local.up ? s.local.probe : null
  // The reported lag: the heartbeat table's with lag.source heartbeat_table (once a row of the
  // current primary is seen), else Seconds_Behind_Source.
  const lag = s === undefined ? null : localReportedLag(s).seconds
  const sbs = probe?.replica?.lagSeconds
  x.gauge(
    "mha_replication_lag_seconds",
    "Replication lag per replica: the age of the primary's heartbeat row with lag.source heartbeat_table, else Seconds_Behind_Source; the local one at its last probe, peers' from their heartbeats (absent when not replicating or unknown).",
    [
      ...(lag == null ? [] : [{ labels: { node: self }, value: lag }]),
      ...(s === undefined
        ? []
        : [...s.peers].flatMap(([name, v]) =>
            v.source === null || v.lagSeconds === null
              ? []
              : [{ labels: { node: name }, value: v.lagSeconds }],
          )),
    ],
  )
  x.gauge(
    "mha_replication_seconds_behind_source",
    "This node's Seconds_Behind_Source as MySQL reports it at the last probe (0 while the IO thread receives nothing: compare with mha_replication_lag_seconds under lag.source heartbeat_table).",
    sbs == null ? [] : [{ labels: { node: self }, value: sbs }],
  )
  x.gauge(
    "mha_replication_backlog_transactions",
    "Transactions received but not yet applied, per member (own probe, peers' heartbeats).",
    s === undefined
      ? []
      : [
          ...(probe === null ? [] : [{ labels: { node: self }, value: backlogOf(s) }]),
          ...[...s.peers].map(([name, v]) => ({ labels: { node: name }, value: v.backlog })),
        ],
  )
  x.gauge(
    "mha_replication_running",
    "1 when a member's replication IO and SQL threads both run (own probe, peers' heartbeats).",
    s === undefined
      ? []
      : [
          ...(probe === null
            ? []
            : [
                {
                  labels: { node: self },
                  value: bool(probe.replica?.ioRunning === true && probe.replica.sqlRunning),
                },
              ]),
          ...[...s.peers].map(([name, v]) => ({
            labels: { node: name },
            value: bool(v.replicating),
          })),
        ],
  )
  x.gauge(
    "mha_mysqld_up",
    "1 when the local mysqld answered its last probe.",
    bool(s?.local.up === true),
  )
  const missing = s?.local.privileges.missing ?? null
  x.gauge(
    "mha_mysql_privilege_missing",
    "Per privilege the agent's actions need: 1 when its MySQL user lacks it on the local mysqld, 0 when granted (no samples before a grants check succeeded). While any is 1 this node does not stand for election.",
    missing === null || s === undefined || !isDataNode(s.config, s.self)
      ? []
      : REQUIRED_PRIVILEGES.map((r) => ({
          labels: { privilege: r.privilege },
          value: bool(missing.some((m) => m.privilege === r.privilege)),
        })),
  )
  x.gauge(
    "mha_probe_consecutive_failures",
    "Failed or late probes of the local mysqld in a row.",
    s?.local.health.consecutiveFailures ?? 0,
  )
  x.counter(
    "mha_probe_failures_total",
    "Failed or late probes of the local mysqld.",
    counters.probeFailures,
  )
  const vipHeld = s?.local.vip.held ?? "unknown"
  x.gauge(
    "mha_vip_state",
    "Whether this node holds the VIP, as the last VIP operation reported (1 for the current state).",
    s === undefined
      ? []
      : oneOf(
          "state",
          VIP_STATES,
          vipHeld === "unknown" ? "unknown" : vipHeld ? "held" : "not_held",
        ),
  )
  x.gauge(
    "mha_semi_sync_active",
    "1 when the local mysqld has semi-sync on as a source (the primary waits for replica acknowledgements).",
    bool(probe?.semiSyncSourceOn === true),
  )
  const writesBlocked = s === undefined ? null : reportedWritesBlocked(s)
  x.gauge(
    "mha_writes_blocked",
    "1 on the primary while every commit waits for semi-sync acknowledgements that cannot come: fewer semi-sync replicas connected than rpl_semi_sync_source_wait_for_replica_count, for longer than a grace period.",
    bool(writesBlocked !== null),
  )
  x.gauge(
    "mha_semi_sync_fallback",
    "1 on the primary while its semi-sync has fallen back to asynchronous replication (rpl_semi_sync_source_enabled ON, Rpl_semi_sync_source_status OFF: commits no longer wait for an acknowledgement), for longer than a grace period.",
    bool(s !== undefined && reportedSemiSyncFallback(s) !== null),
  )
  x.gauge(
    "mha_semi_sync_acks_needed",
    "rpl_semi_sync_source_wait_for_replica_count on the local mysqld (acknowledgements each commit waits for), as last probed.",
    probe?.semiSyncWaitCount === undefined ? [] : probe.semiSyncWaitCount,
  )
  x.gauge(
    "mha_semi_sync_replicas_connected",
    "Rpl_semi_sync_source_clients on the local mysqld: semi-sync replicas connected now, as last probed.",
    probe?.semiSyncClients === undefined ? [] : probe.semiSyncClients,
  )
  x.gauge(
    "mha_semi_sync_waiting_commits",
    "Rpl_semi_sync_source_wait_sessions on the local mysqld: commits waiting for an acknowledgement now.",
    probe == null ? [] : probe.semiSyncWaiters,
  )
  x.gauge(
    "mha_semi_sync_mode",
    "Configured semi-sync mode (1 for the current one).",
    s === undefined ? [] : oneOf("mode", ["off", "on", "strict"], s.config.semiSync),
  )
  x.gauge(
    "mha_errant_transactions",
    "Errant transactions on the local mysqld (GTIDs the primary's lineage lacks).",
    s === undefined ? [] : [{ labels: { node: self }, value: count(s.local.errant) }],
  )
  x.gauge(
    "mha_node_errant",
    "1 when a member has errant transactions (own probe, peers' heartbeats).",
    s === undefined
      ? []
      : s.config.members.map((m) => ({
          labels: { node: m.name },
          value: bool(
            m.name === self ? count(s.local.errant) > 0 : s.peers.get(m.name)?.errant === true,
          ),
        })),
  )
  x.gauge(
    "mha_paused",
    "1 while automatic actions are paused cluster-wide.",
    bool(s?.hard.record.paused === true),
  )
  x.gauge(
    "mha_node_excluded",
    "1 for members excluded from candidacy.",
    s === undefined
      ? []
      : s.config.members.map((m) => ({
          labels: { node: m.name },
          value: bool(s.hard.record.excluded.includes(m.name)),
        })),
  )
  const block = s?.recoveryBlock ?? null
  const blocked =
    s !== undefined && recoveryBlockApplies(s.hard.record) && block !== null && s.now < block.until
  x.gauge(
    "mha_recovery_blocked",
    "1 while the anti-flap block holds automatic failover (until ack-recovery or the period ends).",
    bool(blocked),
  )
  x.gauge(
    "mha_recovery_block_remaining_seconds",
    "Seconds left of the anti-flap block.",
    blocked && s !== undefined && block !== null ? (block.until - s.now) / 1000 : 0,
  )
  x.gauge(
    "mha_is_active",
    "1 when this node is ACTIVE: writable and holding the lease (what /primary answers).",
    bool(s !== undefined && nodeRole(s) === "ACTIVE"),
  )
}

const counterMetrics = (x: Exposition): void => {
  const c = counters
  x.counter(
    "mha_elections_started_total",
    "Elections this agent stood in (after a granted pre-vote).",
    c.electionsStarted,
  )
  x.counter(
    "mha_elections_total",
    "Elections this agent stood in, by result.",
    ELECTION_RESULTS.map((r) => ({ labels: { result: r }, value: c.elections[r] })),
  )
  x.counter(
    "mha_votes_refused_total",
    "Vote and pre-vote requests this agent refused.",
    (["pre_vote", "vote"] as const).map((p) => ({
      labels: { phase: p },
      value: c.votesRefused[p],
    })),
  )
  x.counter(
    "mha_promotions_total",
    "Promotions this node finished, by how it was elected.",
    PROMOTION_KINDS.map((k) => ({ labels: { kind: k }, value: c.promotions[k] })),
  )
  x.counter(
    "mha_failovers_total",
    "Failovers to this node, by result (succeeded: promoted after an election; aborted: the promotion failed).",
    FAILOVER_RESULTS.map((r) => ({ labels: { result: r }, value: c.failovers[r] })),
  )
  x.counter(
    "mha_switchovers_total",
    "Switchovers: requested on the old primary, succeeded on the new one, rolled back on the old one.",
    SWITCHOVER_RESULTS.map((r) => ({ labels: { result: r }, value: c.switchovers[r] })),
  )
  x.counter(
    "mha_fencing_actions_total",
    "Fencing actions started: super_read_only on the local mysqld, on the old primary's, and fence_command runs.",
    FENCING_ACTIONS.map((a) => ({ labels: { action: a }, value: c.fencing[a] })),
  )
  x.counter("mha_mysqld_failures_total", "Times the local mysqld was found down.", c.mysqldFailures)
  x.counter("mha_mysqld_restarts_total", "Restart attempts of the local mysqld.", c.mysqldRestarts)
  x.counter("mha_resignations_total", "Times this agent resigned leadership.", c.resignations)
  x.counter(
    "mha_split_brain_fences_total",
    "Times this node found its mysqld writable without the lease of the highest term and fenced it (the split-brain guard, with the on_split_brain hook).",
    c.splitBrainFences,
  )
  x.counter(
    "mha_replication_repairs_total",
    "Repairs of this node's replication by its agent, by kind (start_replica: a stopped thread started again; semi_sync: replica semi-sync re-enabled; repoint: pointed at the primary). Each is also logged with its reason.",
    REPAIR_KINDS.map((k) => ({ labels: { kind: k }, value: c.repairs[k] })),
  )
  x.counter(
    "mha_events_total",
    "Events of the decision core (the `event` of its log lines), by name.",
    // By code unit, not localeCompare: a collator loads ICU's data into every
    // agent on its first scrape (+4 MB RSS, issue 12), and event names are ASCII.
    [...c.events]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([event, n]) => ({ labels: { event }, value: n })),
  )
}

const adapterMetrics = (x: Exposition, src: MetricsSources): void => {
  const h = src.hooks
  x.counter(
    "mha_hook_runs_total",
    "Finished hook runs, by result.",
    h === undefined
      ? []
      : Object.entries(h.runs).map(([result, n]) => ({ labels: { result }, value: n })),
  )
  x.gauge("mha_hook_queue_pending", "Non-blocking hook runs waiting.", h?.pending ?? 0)
  x.counter(
    "mha_hook_dropped_total",
    "Non-blocking hook runs dropped because the queue was full.",
    h?.dropped ?? 0,
  )
  const m = src.mesh?.metrics
  x.counter(
    "mha_mesh_messages_total",
    "Peer messages received and sent.",
    m === undefined
      ? []
      : [
          { labels: { direction: "in" }, value: m.messagesIn },
          { labels: { direction: "out" }, value: m.messagesOut },
        ],
  )
  x.counter(
    "mha_mesh_bytes_total",
    "Peer message bytes received and sent.",
    m === undefined
      ? []
      : [
          { labels: { direction: "in" }, value: m.bytesIn },
          { labels: { direction: "out" }, value: m.bytesOut },
        ],
  )
  x.counter(
    "mha_mesh_dropped_total",
    "Peer messages dropped: bad inbound ones by reason, outbound ones for a full queue or expiry.",
    m === undefined
      ? []
      : [
          ...Object.entries(m.droppedBadByReason).map(([reason, n]) => ({
            labels: { reason },
            value: n,
          })),
          { labels: { reason: "queue-full" }, value: m.droppedQueueFull },
          { labels: { reason: "expired" }, value: m.droppedExpired },
        ],
  )
  x.counter(
    "mha_mesh_datagrams_total",
    "Heartbeat datagrams (UDP, beside the TLS connections) received and sent.",
    m === undefined
      ? []
      : [
          { labels: { direction: "in" }, value: m.datagramsIn },
          { labels: { direction: "out" }, value: m.datagramsOut },
        ],
  )
  x.counter(
    "mha_mesh_datagrams_dropped_total",
    "Datagrams dropped before decoding: malformed, unknown key, bad MAC, replayed or reordered.",
    m === undefined
      ? []
      : Object.entries(m.droppedDatagramsByReason).map(([reason, n]) => ({
          labels: { reason },
          value: n,
        })),
  )
  x.counter(
    "mha_mesh_duplicates_total",
    "Heartbeats and acknowledgements that arrived both ways (TLS and datagram): the later copy, not handled again.",
    m === undefined ? [] : m.duplicates,
  )
  x.counter(
    "mha_mesh_refused_total",
    "Mesh connections refused, by reason.",
    m === undefined
      ? []
      : Object.entries(m.refusedByReason).map(([reason, n]) => ({ labels: { reason }, value: n })),
  )
  x.counter(
    "mha_mesh_connections_total",
    "Mesh connection events.",
    m === undefined
      ? []
      : [
          { labels: { event: "connect" }, value: m.connects },
          { labels: { event: "reconnect" }, value: m.reconnects },
          { labels: { event: "disconnect" }, value: m.disconnects },
          { labels: { event: "replaced" }, value: m.replaced },
          { labels: { event: "dial" }, value: m.dialAttempts },
          { labels: { event: "dial-failure" }, value: m.dialFailures },
        ],
  )
  x.gauge(
    "mha_mesh_peer_connected",
    "1 when the mesh connection to a peer is open.",
    (src.mesh?.peers ?? []).map((p) => ({
      labels: { node: p.name },
      value: bool(p.status === "connected"),
    })),
  )
  x.gauge(
    "mha_mesh_peer_queued",
    "Messages waiting in a peer's outbound queue.",
    (src.mesh?.peers ?? []).map((p) => ({ labels: { node: p.name }, value: p.queued })),
  )
  x.gauge(
    "mha_certificate_expiry_timestamp_seconds",
    "When each certificate the agent uses stops being valid (notAfter), in seconds since the epoch: mesh_cert is this agent's mesh certificate, mesh_ca the cluster CA, as loaded at start.",
    (src.certificates ?? []).map((c) => ({
      labels: { certificate: c.certificate },
      value: c.notAfterSeconds,
    })),
  )
  const v = src.vip
  x.gauge("mha_vip_configured", "1 when this node manages a VIP.", bool(v !== undefined))
  x.counter(
    "mha_vip_operations_total",
    "VIP address adds and removes done on this node.",
    v === undefined
      ? []
      : [
          { labels: { op: "add" }, value: v.adds },
          { labels: { op: "remove" }, value: v.removes },
        ],
  )
  x.counter(
    "mha_vip_garp_bursts_total",
    "Gratuitous ARP bursts, by result.",
    v === undefined
      ? []
      : [
          { labels: { result: "ok" }, value: v.bursts - v.burstFailures },
          { labels: { result: "failed" }, value: v.burstFailures },
        ],
  )
  x.counter(
    "mha_etcd_publish_errors_total",
    "Requests to etcd (publishing the primary) that failed, refused publications included.",
    etcdCounters.errors,
  )
  x.counter(
    "mha_etcd_publish_refused_total",
    "Publications refused because etcd holds a higher term.",
    etcdCounters.refused,
  )
  x.gauge(
    "mha_etcd_published",
    "1 while this agent's primary key is in etcd, as far as it knows.",
    etcdCounters.published,
  )
  x.counter(
    "mha_vip_duplicates_seen_total",
    "Times another host answered ARP for the VIP before this node took it.",
    v?.duplicatesSeen ?? 0,
  )
}

/** The page for `/metrics`. */
export const renderMetrics = (src: MetricsSources): string => {
  const x = new Exposition()
  const info = buildInfo()
  x.gauge("mha_agent_info", "The agent's identity and build (always 1).", [
    {
      labels: { cluster: src.cluster, node: src.node, version: info.version, commit: info.commit },
      value: 1,
    },
  ])
  const age = loopAgeMs()
  x.gauge(
    "mha_decision_loop_age_seconds",
    "Seconds since the decision loop's clock last advanced (it ticks every 50 ms); -1 before its first step.",
    age === null ? -1 : age / 1000,
  )
  stateMetrics(x, src.state, src.cluster)
  counterMetrics(x)
  adapterMetrics(x, src)
  processMetrics(x)
  return x.text()
}
