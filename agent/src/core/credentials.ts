/**
 * The replication credentials a replica's channel holds (issue 17). MySQL
 * stores the password in the replica's connection metadata at CHANGE
 * REPLICATION SOURCE; a connected IO thread keeps working after the
 * password changes on the source, but its next connect fails with 1045 and
 * it retries with the stale password for ever. So the credentials are
 * applied again (with the password file read afresh by the executor) when:
 * - a reload found the replication password file changed (so the channel
 *   holds the new password before the old one is discarded: no reconnect
 *   fails later);
 * - the operator ran `rejoin`;
 * - the IO thread fails to log in to the right source: a bounded number of
 *   times, since a wrong file only gives the same error again; a reload with
 *   a changed file, a `rejoin` or a restart of the agent tries again. The
 *   error stays in status (replicationError) until it clears.
 */
import { event, type Outputs } from "./outputs.ts"
import type { AgentState, ReplicaStatus } from "./types.ts"

export interface ReplicationCredentials {
  /** Apply the credentials to the channel at the next chance, and why (null: nothing pending). */
  readonly reapply: "password file changed" | "rejoin" | null
  /** Re-applies after a login failure since the IO thread last ran. */
  readonly authRetries: number
  /** Local time before which no re-apply for a login failure is issued. */
  readonly retryAt: number
}

export const initialCredentials: ReplicationCredentials = {
  reapply: null,
  authRetries: 0,
  retryAt: 0,
}

/** Re-applies for one login failure before waiting for the operator (reload, rejoin). */
export const MAX_AUTH_RETRIES = 3
/** Between two: the IO thread retries every second, so its error is back well before. */
export const AUTH_RETRY_MS = 3_000

/**
 * MySQL errors of an IO thread that could not log in to its source: the
 * password it holds is not the user's (1045, ER_ACCESS_DENIED_ERROR).
 */
const AUTH_ERRNOS: ReadonlySet<number> = new Set([1045])

export const failsToLogIn = (replica: ReplicaStatus): boolean =>
  !replica.ioRunning && AUTH_ERRNOS.has(replica.ioErrno ?? 0)

/** The reload read a changed replication password file: the channel gets it, retries start over. */
export const replicationPasswordChanged = (s: AgentState, out: Outputs): AgentState => {
  event(out, "info", "credentials", "the replication password file changed: re-applying it")
  return withCredentials(s, { reapply: "password file changed", authRetries: 0, retryAt: 0 })
}

/** `rejoin`: the credentials are applied again even when the channel already names the primary. */
export const rejoinReappliesCredentials = (s: AgentState): AgentState =>
  withCredentials(s, { ...s.local.credentials, reapply: "rejoin", authRetries: 0 })

/** The channel was (re)configured from scratch: nothing pending. */
export const credentialsApplied = (s: AgentState): AgentState =>
  s.local.credentials.reapply === null
    ? s
    : withCredentials(s, { ...s.local.credentials, reapply: null })

/**
 * For a replica whose channel already names the primary: why its
 * credentials must be applied again now, or null. Also forgets past login
 * failures once the IO thread runs.
 */
export const credentialsToReapply = (
  s: AgentState,
  out: Outputs,
  replica: ReplicaStatus,
  source: string,
): [AgentState, string | null] => {
  const c = s.local.credentials
  if (c.reapply !== null) {
    return [withCredentials(s, { ...c, reapply: null }), c.reapply]
  }
  if (replica.ioRunning) {
    return [
      c.authRetries === 0 ? s : withCredentials(s, { ...c, authRetries: 0, retryAt: 0 }),
      null,
    ]
  }
  if (!failsToLogIn(replica) || s.now < c.retryAt) return [s, null]
  if (c.authRetries >= MAX_AUTH_RETRIES) {
    if (c.authRetries === MAX_AUTH_RETRIES) {
      event(
        out,
        "error",
        "credentials",
        `replication cannot log in to ${source} (${replica.lastError ?? "error 1045"}) after ${MAX_AUTH_RETRIES} re-applies of the password file: write the right password into replication.password_file and reload`,
      )
      return [withCredentials(s, { ...c, authRetries: c.authRetries + 1 }), null]
    }
    return [s, null]
  }
  const n = c.authRetries + 1
  return [
    withCredentials(s, { ...c, authRetries: n, retryAt: s.now + AUTH_RETRY_MS }),
    `the IO thread cannot log in to ${source} (re-apply ${n} of ${MAX_AUTH_RETRIES})`,
  ]
}

const withCredentials = (s: AgentState, credentials: ReplicationCredentials): AgentState => ({
  ...s,
  local: { ...s.local, credentials },
})
