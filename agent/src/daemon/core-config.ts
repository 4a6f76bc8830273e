/**
 * The decision core's view of the config (agent/src/core/config.ts) from the
 * file's (shared/config.ts): camelCase names, lag thresholds in seconds.
 * The file's cross-field rules already hold, so no check is repeated here.
 */
import type { Config } from "../../../shared/config.ts"
import type { ClusterConfig } from "../core/config.ts"

export const toClusterConfig = (c: Config): ClusterConfig => ({
  members: c.cluster.members.map((m) => ({
    name: m.name,
    priority: m.priority,
    promotable: m.promotable,
    kind: m.kind,
    address: m.address,
    agentPort: m.agent_port,
    mysqlPort: m.mysql_port,
  })),
  timings: {
    probeIntervalMs: c.timings.probe_interval,
    probeTimeoutMs: c.mysql.connect_timeout + c.mysql.query_timeout,
    heartbeatIntervalMs: c.timings.heartbeat_interval,
    rpcTimeoutMs: c.timings.rpc_timeout,
    leaseDurationMs: c.timings.lease_duration,
    driftMargin: c.timings.drift_margin,
    electionTimeoutMinMs: c.timings.election_timeout_min,
    electionTimeoutMaxMs: c.timings.election_timeout_max,
    restartTimeoutMs: c.timings.restart_timeout,
    restartAttempts: c.timings.restart_attempts,
    restartStableMs: c.timings.restart_stable_period,
    restartWindowMs: c.timings.restart_window,
    applyTimeoutMs: c.timings.apply_timeout,
    switchoverTimeoutMs: c.timings.switchover_timeout,
    recoveryBlockPeriodMs: c.timings.recovery_block_period,
    failbackDelayMs: c.timings.failback_delay,
    commitStallMs: c.timings.commit_stall_timeout,
  },
  health: {
    failuresToInfo: c.health.info_after,
    failuresToWarn: c.health.warn_after,
    failuresToCritical: c.health.critical_after,
    failuresToFail: c.health.fail_after,
    successesToRecover: c.health.recover_after,
    lagInfoSeconds: c.health.lag_info / 1_000,
    lagWarnSeconds: c.health.lag_warn / 1_000,
    lagCriticalSeconds: c.health.lag_critical / 1_000,
  },
  semiSync: c.semi_sync.mode,
  autoRejoin: c.auto_rejoin,
  failback: c.failback,
  initialPrimary: c.initial_primary ?? null,
  failoverBeforeHealthy: c.failover_before_healthy,
  allowErrantPromotion: c.allow_errant_promotion,
  fenceCommand: c.fence_command === undefined ? null : { required: c.fence_required },
  hookTimeoutMs: c.hooks.timeout,
  publishPrimary: c.etcd !== undefined,
  ...(c.vip === undefined ? {} : { garpRefreshMs: c.vip.garp_refresh }),
  lagHeartbeat: c.lag.source === "heartbeat_table",
})
