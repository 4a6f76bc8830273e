/**
 * A replica's relay log across a restart of its agent (protocol.md section 7,
 * "relay logs"). With relay_log_recovery a mysqld drops what it received but
 * had not applied whenever it starts, and a replica that may have lost
 * acknowledged transactions so votes only for the recorded primary until it
 * caught up again (its resync, local-node.ts). An agent that starts cannot
 * tell whether its mysqld restarted while it was down, so it assumes so; if
 * the primary is lost at that moment no quorum forms.
 *
 * So the agent records (a file beside the hard state, `RecordRelayIntact`)
 * which mysqld process holds everything it received, and an agent that
 * starts and finds that same process still running knows its relay log is
 * intact. A process is known by when it started on the agent host's clock
 * since boot (/proc/uptime less the server's Uptime), which no wall-clock
 * step on the agent's host moves, with the host's boot id.
 */
import type { MysqldStart } from "./types.ts"

/**
 * Two readings of one process's start differ by Uptime's whole seconds and
 * the moment between the query and /proc/uptime: at most a second and a bit.
 */
export const SAME_PROCESS_TOLERANCE_S = 2

/**
 * A process is recorded only once it has run this long. The next process
 * starts after it ended, so after it was recorded: its start is later by
 * more than the tolerance, and the two are never taken for one.
 */
export const RECORD_AFTER_UPTIME_S = 5

export const sameProcess = (a: MysqldStart, b: MysqldStart): boolean =>
  a.boot === b.boot && Math.abs(a.sinceBootSeconds - b.sinceBootSeconds) <= SAME_PROCESS_TOLERANCE_S

/** The server restarted between two probes that both answered (no failed probe in between). */
export const restartedBetween = (
  before: MysqldStart | undefined,
  now: MysqldStart | undefined,
): boolean => before !== undefined && now !== undefined && !sameProcess(before, now)

/** Should this process be recorded as holding everything it received? */
export const shouldRecord = (
  recorded: MysqldStart | null,
  started: MysqldStart | undefined,
  uptimeSeconds: number | undefined,
): started is MysqldStart =>
  started !== undefined &&
  uptimeSeconds !== undefined &&
  uptimeSeconds >= RECORD_AFTER_UPTIME_S &&
  (recorded === null || !sameProcess(recorded, started))
