/**
 * A primary that answers reads but cannot commit (issue 16 item 1; protocol.md
 * section 2). With its binlog disk full, MySQL 9.7 keeps every commit waiting
 * in processlist state "waiting for handler commit" (it retries the write every
 * 60 s), gtid_executed stops, and SELECT and SHOW answer at once
 * (test/lab/disk-full-primary.test.ts): read-only probes see a healthy server.
 *
 * The probe counts client sessions stuck in commit (`MysqlProbe.commitWait`).
 * Commits that wait for a semi-sync acknowledgement are a different fault
 * (no replica acknowledges: failing over does not help) and look different:
 * Rpl_semi_sync_source_wait_sessions > 0, state "Waiting for semi-sync ACK";
 * sessions queued behind them may show "waiting for handler commit" too, so
 * any acknowledgement waiter rules a stall out.
 *
 * Rule: on the promoted primary, stuck commits and no acknowledgement waiter,
 * with gtid_executed unchanged, for `commitStallMs` (the oldest session's
 * wait as mysqld counts it, or as long as the agent has seen it): health
 * CRITICAL with the cause, and it resigns (section 12) so that a replica,
 * which holds everything acknowledged under strict semi-sync, takes over.
 * It then stands for no election (no reclaim, no failback) until its server
 * commits again: its gtid_executed grows (it applied a transaction as a
 * replica, or the stuck commits went through).
 */
import { isDataNode } from "./config.ts"
import { mayBeWritable } from "./fencing.ts"
import { isSubset } from "./gtid.ts"
import { isAtLeast } from "./health.ts"
import { event, type Outputs } from "./outputs.ts"
import { resign } from "./resignation.ts"
import type { AgentState } from "./types.ts"

export const defaultCommitStallMs = 3_000

const stallLimit = (s: AgentState): number => s.config.timings.commitStallMs ?? defaultCommitStallMs

/** Why this node must not stand because its server could not commit, or null. */
export const commitStallWhy = (s: AgentState): string | null => {
  const stall = s.commitStall ?? null
  if (stall === null || !stall.resigned) return null
  return `its mysqld could not commit (${stall.cause}): not standing until it commits again`
}

/** Runs after every local probe. */
export const watchCommits = (s: AgentState, out: Outputs): AgentState => {
  const limit = stallLimit(s)
  const probe = s.local.up ? s.local.probe : null
  if (!isDataNode(s.config, s.self) || limit <= 0 || probe === null) return s
  const stall = s.commitStall ?? null
  // Any commit moves gtid_executed: the server commits again.
  if (stall !== null && !isSubset(probe.executed, stall.executed)) {
    if (stall.resigned)
      event(out, "info", "commits-resumed", "mysqld commits again: it may stand again")
    return { ...s, commitStall: null }
  }
  const wait = probe.commitWait
  const stuck =
    wait !== undefined &&
    wait.sessions > 0 &&
    wait.oldestSeconds >= 1 &&
    probe.semiSyncWaiters === 0
  if (!stuck) {
    // A resigned node keeps its block until it commits again.
    return stall !== null && !stall.resigned ? { ...s, commitStall: null } : s
  }
  const cause = `${wait.sessions} client commit(s) stuck for ${wait.oldestSeconds} s, none waiting for a semi-sync acknowledgement, gtid_executed not moving (disk full?)`
  let next: AgentState = {
    ...s,
    commitStall:
      stall === null
        ? { since: s.now, executed: probe.executed, cause, resigned: false }
        : { ...stall, cause },
  }
  const current = next.commitStall!
  // Stuck sessions on a node that resigned for it: CRITICAL while they last.
  if (current.resigned) return critical(next)
  const stuckMs = Math.max(wait.oldestSeconds * 1000, s.now - current.since)
  // Two probes at least see gtid_executed unchanged; only the serving primary resigns.
  if (stuckMs < limit || s.now === current.since || s.role._tag !== "Leader" || !mayBeWritable(s))
    return next
  const why = `mysqld cannot commit: ${cause}`
  event(out, "error", "commit-stalled", why)
  next = resign(critical(next), out, why)
  return { ...next, commitStall: { ...current, resigned: true } }
}

const critical = (s: AgentState): AgentState =>
  isAtLeast(s.local.health.level, "CRITICAL")
    ? s
    : {
        ...s,
        local: { ...s.local, health: { ...s.local.health, level: "CRITICAL", recoveryStreak: 0 } },
      }
