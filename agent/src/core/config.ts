/**
 * What the decision core needs to know about the cluster. The daemon's YAML
 * loader produces this; the simulator builds it directly.
 * All durations are milliseconds on the agent's monotonic clock.
 */
import type { HealthThresholds } from "./health.ts"

export type MemberKind = "data" | "witness"

export interface MemberConfig {
  readonly name: string
  readonly priority: number
  readonly promotable: boolean
  readonly kind: MemberKind
  /** Where to reach it (the config file's `address`, `agent_port`, `mysql_port`); the simulator leaves them out. */
  readonly address?: string
  readonly agentPort?: number
  readonly mysqlPort?: number
}

export interface Timings {
  readonly probeIntervalMs: number
  /**
   * How long the driver lets one local probe run (connect + query timeouts,
   * waiting for an earlier probe included); default 2000. A periodic probe
   * unanswered for longer plus a probe interval is presumed lost and sent again.
   */
  readonly probeTimeoutMs?: number
  readonly heartbeatIntervalMs: number
  readonly rpcTimeoutMs: number
  readonly leaseDurationMs: number
  /** Fraction of the lease given up to clock drift (0.1 = 10 %). */
  readonly driftMargin: number
  /** Election timeouts are drawn from [min, max) with the input's random value. */
  readonly electionTimeoutMinMs: number
  readonly electionTimeoutMaxMs: number
  readonly restartTimeoutMs: number
  readonly restartAttempts: number
  /** A restart counts as successful only once mysqld has answered every probe for this long. */
  readonly restartStableMs: number
  /** More than restartAttempts failures of mysqld within this window is a crash loop. */
  readonly restartWindowMs: number
  readonly applyTimeoutMs: number
  readonly switchoverTimeoutMs: number
  readonly recoveryBlockPeriodMs: number
  readonly failbackDelayMs: number
  /**
   * A primary whose client commits have been stuck (not waiting for an
   * acknowledgement) this long while gtid_executed does not move cannot
   * commit: it resigns (commit-stall.ts). Default 3000; 0 turns the check off.
   */
  readonly commitStallMs?: number
}

export type SemiSyncMode = "off" | "on" | "strict"

export interface ClusterConfig {
  readonly members: ReadonlyArray<MemberConfig>
  readonly timings: Timings
  readonly health: HealthThresholds
  readonly semiSync: SemiSyncMode
  readonly autoRejoin: boolean
  readonly failback: boolean
  /** Names the first primary of a cluster where nobody replicates yet (section 16). */
  readonly initialPrimary: string | null
  /** Section 16: fail over a cluster never seen healthy only when this is set. */
  readonly failoverBeforeHealthy: boolean
  readonly allowErrantPromotion: boolean
  /** When a fence_command hook is configured and required, its failure aborts a promotion. */
  readonly fenceCommand: { readonly required: boolean } | null
  /** hooks.timeout: how long a blocking hook (pre_failover) may run. Default 30 s. */
  readonly hookTimeoutMs?: number
  /** The `vip` section is configured: announce the VIP again this often while holding it (vip-refresh.ts). */
  readonly garpRefreshMs?: number
  /** The `etcd` section is configured: publish this node as primary while ACTIVE (discovery.ts). */
  readonly publishPrimary?: boolean
  /** `lag.source: heartbeat_table`: the primary writes a heartbeat row, replicas report its age as their lag (lag-heartbeat.ts). */
  readonly lagHeartbeat?: boolean
}

export const defaultTimings: Timings = {
  probeIntervalMs: 500,
  heartbeatIntervalMs: 500,
  rpcTimeoutMs: 1000,
  leaseDurationMs: 4000,
  driftMargin: 0.1,
  electionTimeoutMinMs: 300,
  electionTimeoutMaxMs: 1200,
  restartTimeoutMs: 3000,
  restartAttempts: 2,
  restartStableMs: 10_000,
  restartWindowMs: 300_000,
  applyTimeoutMs: 5000,
  switchoverTimeoutMs: 3000,
  recoveryBlockPeriodMs: 600_000,
  failbackDelayMs: 30_000,
}

export const quorumOf = (memberCount: number): number => Math.floor(memberCount / 2) + 1

export const quorum = (config: ClusterConfig): number => quorumOf(config.members.length)

export const memberOf = (config: ClusterConfig, name: string): MemberConfig | undefined =>
  config.members.find((m) => m.name === name)

export const isDataNode = (config: ClusterConfig, name: string): boolean =>
  memberOf(config, name)?.kind === "data"

/**
 * Semi-sync "strict": how many replica acknowledgements a commit waits for so
 * that every possible vote quorum (which excludes the lost primary) holds at
 * least one replica that received it: N - quorum, at least 1.
 * protocol.md leaves the count open; with 5 members one ack is not enough.
 */
export const strictAckCount = (config: ClusterConfig): number =>
  Math.max(1, config.members.length - quorum(config))

/**
 * What the config costs in availability, said before it bites (issue 18): under
 * strict semi-sync a commit waits for `strictAckCount` acknowledgements, and
 * only data replicas send them (witnesses never do). When fewer data nodes may
 * be lost before writes block than members may be lost before the quorum goes,
 * the operator is told at check-config and at the agent's start.
 */
export const availabilityWarnings = (config: ClusterConfig): ReadonlyArray<string> => {
  if (config.semiSync !== "strict") return []
  const data = config.members.filter((m) => m.kind === "data").length
  const witnesses = config.members.length - data
  const acks = strictAckCount(config)
  const dataLossBeforeBlock = data - 1 - acks
  const memberLossBeforeNoQuorum = config.members.length - quorum(config)
  if (dataLossBeforeBlock >= memberLossBeforeNoQuorum) return []
  const lost = dataLossBeforeBlock + 1
  return [
    `semi-sync strict: every commit waits for ${acks} acknowledgement${acks === 1 ? "" : "s"} and only the ${data - 1} data replica${data === 2 ? "" : "s"} can send them${witnesses > 0 ? ` (witnesses never acknowledge)` : ""}: with ${lost} data node${lost === 1 ? "" : "s"} lost every write blocks (reported as writes-blocked) although the quorum survives ${memberLossBeforeNoQuorum} lost member${memberLossBeforeNoQuorum === 1 ? "" : "s"}; add a data node, or use semi_sync.mode: on to fall back to asynchronous instead`,
  ]
}

/** Section 5: `heartbeat_interval * 2 + rpc_timeout < lease_duration`. */
export const checkTimings = (t: Timings): ReadonlyArray<string> => {
  const problems: Array<string> = []
  if (t.heartbeatIntervalMs * 2 + t.rpcTimeoutMs >= t.leaseDurationMs) {
    problems.push("heartbeat_interval * 2 + rpc_timeout must be less than lease_duration")
  }
  if (t.driftMargin < 0 || t.driftMargin >= 0.5) problems.push("drift margin must be in [0, 0.5)")
  if (t.electionTimeoutMinMs >= t.electionTimeoutMaxMs) {
    problems.push("election timeout min must be below max")
  }
  return problems
}
