/**
 * "Semi-sync fell back to asynchronous": the writable primary's mysqld has
 * rpl_semi_sync_source_enabled ON but Rpl_semi_sync_source_status OFF. In
 * "on" mode a commit that waited rpl_semi_sync_source_timeout for an
 * acknowledgement (every replica's IO thread stopped, or too slow) is
 * released and the source stops waiting: from then on a commit is
 * acknowledged to its client before any replica has it, and a failover may
 * lose it. MySQL switches back by itself once a semi-sync replica has caught
 * up. The operator must know both moments: an event, the
 * on_semi_sync_fallback / on_semi_sync_restored hooks, a line in `status`
 * and the mha_semi_sync_fallback metric. Strict mode never times out, but if
 * it ever shows the same it is reported the same way.
 *
 * Judged only from the primary's own probe, with the grace period of
 * alarm.ts: a new primary turns semi-sync on before its replicas have
 * repointed, and a replica that reconnects switches the status back on
 * within a second or two.
 */
import { trackAlarm } from "./alarm.ts"
import { event, type Outputs, runHook } from "./outputs.ts"
import type { AgentState, SemiSyncFallback } from "./types.ts"

/** How long the condition must hold before it is reported (as for writes-blocked.ts). */
export const SEMI_SYNC_FALLBACK_GRACE_MS = 3000

/** The condition as the last local probe shows it, or null when semi-sync is not fallen back. */
export const semiSyncFallbackNow = (
  s: AgentState,
): { readonly needed: number; readonly connected: number } | null => {
  if (s.role._tag !== "Leader" || !s.local.up || s.config.semiSync === "off") return null
  const p = s.local.probe
  if (p === null || p.readOnly || p.superReadOnly) return null
  // Not probed (undefined), disabled, or waiting for acknowledgements as it should.
  if (p.semiSyncSourceEnabled !== true || p.semiSyncSourceOn) return null
  return { needed: p.semiSyncWaitCount ?? 1, connected: p.semiSyncClients ?? 0 }
}

/** The words every report uses (status, log, hook). */
export const describeSemiSyncFallback = (f: {
  readonly needed: number
  readonly connected: number
}): string =>
  `semi-sync fell back to asynchronous replication: commits no longer wait for a replica's acknowledgement (${f.connected} semi-sync replica${f.connected === 1 ? "" : "s"} connected, ${f.needed} needed)`

/** The fallback once reported (past the grace period), else null. */
export const reportedSemiSyncFallback = (s: AgentState): SemiSyncFallback | null =>
  s.semiSyncFallback?.reported === true ? s.semiSyncFallback : null

const hookEnv = (f: SemiSyncFallback, reason: string) => ({
  MHA_ACKS_NEEDED: `${f.needed}`,
  MHA_REPLICAS_CONNECTED: `${f.connected}`,
  MHA_REASON: reason,
})

/** After each local probe: track the condition, report its start and end once each. */
export const watchSemiSyncFallback = (s: AgentState, out: Outputs): AgentState => {
  const prev = s.semiSyncFallback ?? null
  const [next, semiSyncFallback] = trackAlarm(
    s,
    semiSyncFallbackNow(s),
    prev,
    SEMI_SYNC_FALLBACK_GRACE_MS,
    {
      start: (s, f) => {
        const reason = describeSemiSyncFallback(f)
        event(out, "error", "semi-sync-fallback", reason)
        return runHook(s, out, "on_semi_sync_fallback", hookEnv(f, reason), { _tag: "Hook" })[0]
      },
      end: (s, last) => {
        // Restored, or no longer this node's concern (it resigned, or semi-sync was turned off).
        const reason = semiSyncSourceBackOn(s)
          ? `semi-sync restored: commits wait for a replica's acknowledgement again (asynchronous for ${Math.round(s.now - last.since)} ms)`
          : `semi-sync fallback no longer watched on this node (asynchronous for ${Math.round(s.now - last.since)} ms)`
        event(out, "info", "semi-sync-restored", reason)
        return runHook(s, out, "on_semi_sync_restored", hookEnv(last, reason), { _tag: "Hook" })[0]
      },
    },
  )
  return next === s && semiSyncFallback === prev ? s : { ...next, semiSyncFallback }
}

const semiSyncSourceBackOn = (s: AgentState): boolean =>
  s.local.up && s.local.probe?.semiSyncSourceOn === true
