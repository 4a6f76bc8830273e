/**
 * "Writes are blocked": the writable primary's mysqld has semi-sync on as a
 * source and fewer semi-sync replicas connected than the acknowledgements a
 * commit waits for (`rpl_semi_sync_source_wait_for_replica_count`), so every
 * commit waits, for as long as that lasts (strict mode never times out).
 * Examples: 3 data + 2 witnesses with one data node lost (strict needs 2
 * acks, protocol.md section 9), or the only replica unable to connect
 * (replication password changed). Nothing is wrong with the primary itself,
 * so no failover helps; the operator must be told, loudly: status, /health,
 * a metric and the on_writes_blocked / on_writes_unblocked hooks.
 *
 * Judged only from the primary's own probe. A short gap after a promotion or
 * a replica restart (replicas reconnect within a second or two) is not
 * reported: the condition must last WRITES_BLOCKED_GRACE_MS.
 */
import { trackAlarm } from "./alarm.ts"
import { event, type Outputs, runHook } from "./outputs.ts"
import type { AgentState, WritesBlocked } from "./types.ts"

/** How long the condition must hold before it is reported (replicas repoint within ~2 s). */
export const WRITES_BLOCKED_GRACE_MS = 3000

/** The condition as the last local probe shows it, or null when writes are not blocked. */
export const writesBlockedNow = (
  s: AgentState,
): { readonly needed: number; readonly connected: number; readonly waiting: number } | null => {
  if (s.role._tag !== "Leader" || !s.local.up) return null
  const p = s.local.probe
  if (p === null || p.readOnly || p.superReadOnly || !p.semiSyncSourceOn) return null
  if (p.semiSyncClients === undefined || p.semiSyncWaitCount === undefined) return null
  if (p.semiSyncClients >= p.semiSyncWaitCount) return null
  return { needed: p.semiSyncWaitCount, connected: p.semiSyncClients, waiting: p.semiSyncWaiters }
}

/** The words every report uses (status, /health, log, hook). */
export const describeWritesBlocked = (b: {
  readonly needed: number
  readonly connected: number
  readonly waiting: number
}): string =>
  `writes are blocked: ${b.needed} acknowledgement${b.needed === 1 ? "" : "s"} needed, ${b.connected} replica${b.connected === 1 ? "" : "s"} connected (${b.waiting} commit${b.waiting === 1 ? "" : "s"} waiting)`

/** The blockage once reported (past the grace period), else null. */
export const reportedWritesBlocked = (s: AgentState): WritesBlocked | null =>
  s.writesBlocked?.reported === true ? s.writesBlocked : null

const hookEnv = (b: WritesBlocked, reason: string) => ({
  MHA_ACKS_NEEDED: `${b.needed}`,
  MHA_REPLICAS_CONNECTED: `${b.connected}`,
  MHA_WAITING_COMMITS: `${b.waiting}`,
  MHA_REASON: reason,
})

/** After each local probe: track the condition, report its start and end once each. */
export const watchWritesBlocked = (s: AgentState, out: Outputs): AgentState => {
  const prev = s.writesBlocked ?? null
  const [next, writesBlocked] = trackAlarm(s, writesBlockedNow(s), prev, WRITES_BLOCKED_GRACE_MS, {
    start: (s, b) => {
      const reason = describeWritesBlocked(b)
      event(out, "error", "writes-blocked", reason)
      return runHook(s, out, "on_writes_blocked", hookEnv(b, reason), { _tag: "Hook" })[0]
    },
    end: (s, last) => {
      const reason = `writes are no longer blocked (${last.needed} acknowledgement(s) needed, ${last.connected} replica(s) connected for ${Math.round(s.now - last.since)} ms)`
      event(out, "info", "writes-unblocked", reason)
      return runHook(s, out, "on_writes_unblocked", hookEnv(last, reason), { _tag: "Hook" })[0]
    },
  })
  return next === s && writesBlocked === prev ? s : { ...next, writesBlocked }
}
