/**
 * Actions on a mysqld (protocol.md sections 5, 9, 10, 12, 13): each opens a
 * connection of its own, is bounded by a timeout, and fails with a
 * `MysqlError` naming the action, the target and MySQL's error code and
 * message. The local mysqld is `local`; `at(endpoint)` acts on another
 * member's mysqld over the network (fencing the old primary, section 9).
 *
 * When an action times out after the server took the statement (a
 * `SET GLOBAL super_read_only` waiting for a lock, a slow CHANGE REPLICATION
 * SOURCE), the statement could still complete later on the server. So on a
 * timeout the connection is also killed server side (`KILL <id>` over a new
 * connection, best effort, bounded by connect + query timeouts): a timed-out
 * `unfence` must not make the server writable after the agent gave up.
 * Statements that wait for locks also run with `lock_wait_timeout` set to
 * the action's timeout.
 *
 * Privileges of the agent's user, by action (`checkGrants` compares them
 * with SHOW GRANTS; SUPER, deprecated, also satisfies most):
 * - probe: REPLICATION CLIENT (SHOW REPLICA STATUS);
 * - fence, unfence, setSemiSyncSource: SYSTEM_VARIABLES_ADMIN;
 * - killClientSessions: PROCESS (to see every session) and CONNECTION_ADMIN
 *   (to kill other users' sessions; it also keeps a connection slot for the
 *   agent when max_connections is exhausted);
 * - stopReplica, stopReplicaIoThread, startReplica, repoint:
 *   REPLICATION_SLAVE_ADMIN;
 * - resetReplicaAll: REPLICATION_SLAVE_ADMIN and RELOAD;
 * - setSemiSyncReplica: SYSTEM_VARIABLES_ADMIN and REPLICATION_SLAVE_ADMIN
 *   (the IO thread is restarted so the change takes effect, unless its
 *   connection already is as wanted);
 * - injectEmptyTransactions: one of SESSION_VARIABLES_ADMIN,
 *   SYSTEM_VARIABLES_ADMIN, REPLICATION_APPLIER (to set GTID_NEXT), and
 *   TRANSACTION_GTID_TAG for tagged GTIDs;
 * - clone: CLONE_ADMIN and SYSTEM_VARIABLES_ADMIN (clone_valid_donor_list)
 *   on the recipient; the donor's user needs BACKUP_ADMIN on the donor;
 * - waitForExecutedGtidSet, checkGrants: nothing.
 */
import { Deferred, Duration, Effect, Redacted } from "effect"
import { count, formatGtidSet, type GtidSet, parseGtidSet } from "../core/gtid.ts"
import {
  describeEndpoint,
  ER,
  type MysqlClientSettings,
  type MysqlEndpoint,
  MysqlError,
  type MysqlSession,
  num,
  type Row,
  str,
  withSession,
} from "./mysql-connection.ts"

// ---------------------------------------------------------------------------
// Types

/** A session killed by killClientSessions. */
export interface KilledSession {
  readonly id: number
  readonly user: string
  readonly host: string
  readonly command: string
}

export interface RepointOptions {
  /** The new source, as the replica's mysqld reaches it. */
  readonly host: string
  readonly port: number
  /** The replication user and password (stored by MySQL in its connection metadata). */
  readonly user: string
  readonly password: Redacted.Redacted<string> | string
  /**
   * How the replica authenticates with caching_sha2_password: fetch the
   * source's RSA key (`GET_SOURCE_PUBLIC_KEY=1`, no TLS), or TLS with files
   * on the replica's host.
   */
  readonly auth:
    | { readonly _tag: "GetSourcePublicKey" }
    | {
        readonly _tag: "Ssl"
        readonly ca?: string
        readonly cert?: string
        readonly key?: string
        readonly verifyServerCert?: boolean
      }
  /** Turn the semi-sync replica side on or off before START REPLICA (left as is when absent). */
  readonly semiSyncReplica?: boolean
  /** SOURCE_RETRY_COUNT (reconnect attempts, one a second); default 86400. */
  readonly retryCount?: number
}

export type WaitResult = { readonly _tag: "Applied" } | { readonly _tag: "TimedOut" }

export interface SemiSyncSourceOptions {
  readonly enabled: boolean
  /** rpl_semi_sync_source_timeout: how long a commit waits for an ack before falling back to async. */
  readonly timeoutMs: number
  /** rpl_semi_sync_source_wait_for_replica_count */
  readonly waitForReplicaCount: number
}

export interface CloneOptions {
  readonly donorHost: string
  readonly donorPort: number
  /** A user on the donor with BACKUP_ADMIN. */
  readonly user: string
  readonly password: Redacted.Redacted<string> | string
  /** The copy itself (CLONE INSTANCE). Default 1 hour. */
  readonly timeoutMs?: number
  /** Waiting for mysqld to come back after the clone restarted it. Default 120 s. */
  readonly restartTimeoutMs?: number
}

export interface CloneResult {
  /** @@gtid_executed of the re-seeded server, once it is back. */
  readonly executed: GtidSet
  /** From CLONE INSTANCE to the server answering again. */
  readonly durationMs: number
  /** The CLONE statement alone (the copy), up to the connection drop. */
  readonly copyMs: number
  /** How the CLONE statement ended (the connection drop is expected). */
  readonly ending: string
}

/** A privilege the agent's user lacks. */
export interface MissingPrivilege {
  /** The privilege to grant. */
  readonly privilege: string
  /** Any of these would do (SUPER, deprecated, usually does too). */
  readonly anyOf: ReadonlyArray<string>
  /** The actions that need it. */
  readonly neededBy: ReadonlyArray<string>
  /** The probe needs it: without it every probe fails though mysqld runs. */
  readonly forProbe: boolean
}

export interface GrantsReport {
  /** CURRENT_USER(), e.g. `mha@%`. */
  readonly user: string
  /** Global privileges found in SHOW GRANTS (upper case). */
  readonly granted: ReadonlyArray<string>
  readonly missing: ReadonlyArray<MissingPrivilege>
  /** Roles granted to the user: their privileges count (in `granted`) when active in its sessions. */
  readonly roles: ReadonlyArray<string>
}

/** Everything the agent does to one mysqld. */
export interface MysqlActions {
  readonly target: string
  /** `SET GLOBAL super_read_only = ON` (which sets read_only too); returns once verified. */
  readonly fence: Effect.Effect<void, MysqlError>
  /**
   * The same fence, never aborted by a timeout: an aborted `SET GLOBAL
   * super_read_only = ON` puts the old value back and the server is writable
   * again. Succeeds once verified; if it still pends after `patienceMs` it
   * fails and is left pending on its own connection (new writes wait behind
   * it meanwhile) until it goes through or mysqld stops.
   */
  readonly fenceLeftPending: (patienceMs: number) => Effect.Effect<void, MysqlError>
  /** `super_read_only = OFF, read_only = OFF`: only the lease holder does this. */
  readonly unfence: Effect.Effect<void, MysqlError>
  /**
   * Kills every client session: not system threads (replication IO/SQL and
   * workers, the event scheduler, daemons), not replicas' binlog dump
   * threads, not this connection, not the users in `skipUsers` (pass the
   * agent's own user to keep its probe connection).
   */
  readonly killClientSessions: (options?: {
    readonly skipUsers?: ReadonlyArray<string>
  }) => Effect.Effect<ReadonlyArray<KilledSession>, MysqlError>
  /**
   * How many of the sessions killClientSessions would kill are busy: running
   * a statement, or holding an open InnoDB transaction while idle (what
   * `switchover --drain-timeout` waits for). Needs PROCESS.
   */
  readonly busyClientSessions: (options?: {
    readonly skipUsers?: ReadonlyArray<string>
  }) => Effect.Effect<number, MysqlError>
  readonly stopReplica: Effect.Effect<void, MysqlError>
  /** STOP REPLICA IO_THREAD: no more transactions (nor semi-sync acks) from the source. */
  readonly stopReplicaIoThread: Effect.Effect<void, MysqlError>
  readonly startReplica: Effect.Effect<void, MysqlError>
  /** STOP REPLICA; RESET REPLICA ALL (forgets the source). */
  readonly resetReplicaAll: Effect.Effect<void, MysqlError>
  /** STOP REPLICA; CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION=1 ...; START REPLICA. */
  readonly repoint: (options: RepointOptions) => Effect.Effect<void, MysqlError>
  /** WAIT_FOR_EXECUTED_GTID_SET(set, timeout): Applied, or TimedOut after `timeoutSeconds`. */
  readonly waitForExecutedGtidSet: (
    set: GtidSet,
    timeoutSeconds: number,
  ) => Effect.Effect<WaitResult, MysqlError>
  /**
   * Promotion step 4 (protocol.md section 9): reads Retrieved_Gtid_Set now
   * (stop the IO thread first) and waits until it is executed. Returns the
   * outcome and the set waited for (empty when no replication is configured).
   */
  readonly waitForRelayLog: (
    timeoutSeconds: number,
  ) => Effect.Effect<{ readonly result: WaitResult; readonly retrieved: GtidSet }, MysqlError>
  readonly setSemiSyncSource: (options: SemiSyncSourceOptions) => Effect.Effect<void, MysqlError>
  /**
   * rpl_semi_sync_replica_enabled, then restarts the IO thread (if configured) so it takes
   * effect, unless the running IO thread already connected that way.
   */
  readonly setSemiSyncReplica: (
    enabled: boolean,
  ) => Effect.Effect<{ readonly ioThreadRestarted: boolean }, MysqlError>
  /**
   * Commits one empty transaction per GTID (SET GTID_NEXT; BEGIN; COMMIT),
   * then GTID_NEXT = AUTOMATIC. Meant for the primary (errant-gtid --fix:
   * the GTIDs then reach every replica through the binary log). It works
   * whether or not the server is fenced: MySQL commits an empty transaction
   * under super_read_only, so the caller need not unfence. GTIDs already
   * executed are skipped by MySQL itself. Returns how many were committed.
   */
  readonly injectEmptyTransactions: (
    gtids: GtidSet,
    options?: { readonly timeoutMs?: number },
  ) => Effect.Effect<number, MysqlError>
  /**
   * Re-seeds this server from a donor with the clone plugin. The server
   * restarts itself at the end (through its service manager, or the lab's
   * supervisor): the dropped connection is expected; this waits until the
   * server answers again and returns its new @@gtid_executed. Replication
   * is not configured afterwards: repoint it.
   *
   * Clone must remove the recipient's user data, which super_read_only
   * forbids (MySQL error 1290): for the copy, super_read_only is turned OFF
   * with read_only kept ON (only users with CONNECTION_ADMIN or SUPER could
   * write meanwhile). The restarted server comes back with its my.cnf
   * setting (super_read_only=ON at boot, protocol.md section 9); if the
   * clone fails, super_read_only is set ON again at once.
   */
  readonly clone: (options: CloneOptions) => Effect.Effect<CloneResult, MysqlError>
  /** The privileges of the required set that the agent's user lacks (see the module notes). */
  readonly checkGrants: Effect.Effect<GrantsReport, MysqlError>
}

// ---------------------------------------------------------------------------
// Privileges

interface Requirement {
  readonly privilege: string
  readonly anyOf: ReadonlyArray<string>
  readonly neededBy: ReadonlyArray<string>
  readonly forProbe?: true
}

/** The privileges the agent's user needs, and for what (see the module notes). */
export const REQUIRED_PRIVILEGES: ReadonlyArray<Requirement> = [
  {
    privilege: "REPLICATION CLIENT",
    anyOf: ["REPLICATION CLIENT", "SUPER"],
    neededBy: ["probe (SHOW REPLICA STATUS)", "setSemiSyncReplica"],
    forProbe: true,
  },
  {
    privilege: "SYSTEM_VARIABLES_ADMIN",
    anyOf: ["SYSTEM_VARIABLES_ADMIN", "SUPER"],
    neededBy: [
      "fence",
      "unfence",
      "setSemiSyncSource",
      "setSemiSyncReplica",
      "clone (clone_valid_donor_list)",
    ],
  },
  {
    privilege: "PROCESS",
    anyOf: ["PROCESS"],
    neededBy: [
      "killClientSessions (see every session)",
      "commit-stall probe (every session in information_schema.PROCESSLIST)",
      "switchover --drain-timeout (busy sessions)",
    ],
  },
  {
    privilege: "CONNECTION_ADMIN",
    anyOf: ["CONNECTION_ADMIN", "SUPER"],
    neededBy: [
      "killClientSessions (kill other users' sessions)",
      "probe (a slot beyond max_connections)",
    ],
  },
  {
    privilege: "REPLICATION_SLAVE_ADMIN",
    anyOf: ["REPLICATION_SLAVE_ADMIN", "SUPER"],
    neededBy: [
      "stopReplica",
      "stopReplicaIoThread",
      "startReplica",
      "resetReplicaAll",
      "repoint",
      "setSemiSyncReplica",
    ],
  },
  { privilege: "RELOAD", anyOf: ["RELOAD"], neededBy: ["resetReplicaAll"] },
  {
    privilege: "SESSION_VARIABLES_ADMIN",
    anyOf: ["SESSION_VARIABLES_ADMIN", "SYSTEM_VARIABLES_ADMIN", "REPLICATION_APPLIER", "SUPER"],
    neededBy: ["injectEmptyTransactions (SET GTID_NEXT)"],
  },
  { privilege: "CLONE_ADMIN", anyOf: ["CLONE_ADMIN"], neededBy: ["clone (recipient)"] },
  {
    privilege: "BACKUP_ADMIN",
    anyOf: ["BACKUP_ADMIN"],
    neededBy: ["clone (as the donor, when another member clones from this one)"],
  },
]

/** Global privileges and role grants out of SHOW GRANTS lines. */
export const parseGrants = (
  lines: ReadonlyArray<string>,
): { readonly privileges: ReadonlySet<string>; readonly roles: ReadonlyArray<string> } => {
  const privileges = new Set<string>()
  const roles: Array<string> = []
  for (const line of lines) {
    const onAll = /^GRANT\s+(.+?)\s+ON\s+\*\.\*\s+TO\s/i.exec(line)
    if (onAll?.[1] !== undefined) {
      for (const p of onAll[1].split(",")) {
        const name = p.trim().replace(/\s+/g, " ").toUpperCase()
        if (name === "ALL" || name === "ALL PRIVILEGES") privileges.add("ALL PRIVILEGES")
        else if (name !== "") privileges.add(name)
      }
      continue
    }
    // GRANT `role`@`%` TO `user`@`%` (no ON clause): a role.
    const role = /^GRANT\s+(`[^`]*`@`[^`]*`(?:\s*,\s*`[^`]*`@`[^`]*`)*)\s+TO\s/i.exec(line)
    if (role?.[1] !== undefined) roles.push(...role[1].split(/\s*,\s*/))
  }
  return { privileges, roles }
}

/** Static privileges that `ALL PRIVILEGES ON *.*` stands for (dynamic ones are listed apart). */
const STATIC = new Set(["REPLICATION CLIENT", "PROCESS", "RELOAD", "SUPER"])

export const missingPrivileges = (granted: ReadonlySet<string>): Array<MissingPrivilege> =>
  REQUIRED_PRIVILEGES.filter(
    (r) => !r.anyOf.some((p) => granted.has(p) || (granted.has("ALL PRIVILEGES") && STATIC.has(p))),
  ).map((r) => ({
    privilege: r.privilege,
    anyOf: r.anyOf,
    neededBy: r.neededBy,
    forProbe: r.forProbe === true,
  }))

// ---------------------------------------------------------------------------
// The actions

const secret = (p: Redacted.Redacted<string> | string): string =>
  typeof p === "string" ? p : Redacted.value(p)

/** System threads and replication threads that killClientSessions leaves alone. */
const SYSTEM_USERS = new Set(["system user", "event_scheduler"])
const SPARED_COMMANDS = new Set(["Binlog Dump", "Binlog Dump GTID", "Daemon", "Killed"])

const sleepMs = (ms: number) => Effect.sleep(Duration.millis(ms))

/** The actions on one mysqld. */
export const mysqlActions = (
  endpoint: MysqlEndpoint,
  settings: MysqlClientSettings,
  actionTimeoutMs = 10_000,
): MysqlActions => {
  const target = describeEndpoint(endpoint)
  const timeoutErr = (action: string, ms: number) =>
    new MysqlError({
      action,
      target,
      kind: "timeout",
      code: "ETIMEDOUT",
      errno: null,
      sqlState: null,
      reason: `did not finish within ${ms} ms`,
    })

  /** Best effort: kill a connection whose statement we stopped waiting for. */
  const killServerSide = (threadId: number) =>
    withSession("kill-timed-out", endpoint, settings, (s) =>
      s.query("kill-timed-out", "KILL CONNECTION ?", [threadId]),
    ).pipe(Effect.ignore)

  /**
   * Runs `body` on a fresh connection; the whole action (connect included)
   * is bounded by `timeoutMs` plus the connect timeout. Statements inside
   * get `timeoutMs` each.
   */
  const act = <A>(
    action: string,
    body: (s: MysqlSession, timeoutMs: number) => Effect.Effect<A, MysqlError>,
    timeoutMs = actionTimeoutMs,
  ): Effect.Effect<A, MysqlError> => {
    const bound = timeoutMs + settings.connectTimeoutMs
    // Per run: an action value (`fence`) is run many times, maybe at once.
    return Effect.suspend(() => {
      let threadId: number | undefined
      return withSession(action, endpoint, settings, (s) => {
        threadId = s.threadId
        return body(s, timeoutMs)
      }).pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(bound),
          orElse: () => Effect.fail(timeoutErr(action, bound)),
        }),
        Effect.tapError((e) =>
          e.kind === "timeout" && threadId !== undefined ? killServerSide(threadId) : Effect.void,
        ),
      )
    }).pipe(Effect.withSpan(`MysqlActuator.${action}`, { attributes: { target } }))
  }

  const exec = (
    s: MysqlSession,
    action: string,
    timeoutMs: number,
    sql: string,
    params?: ReadonlyArray<unknown>,
  ) => s.query(action, sql, params, timeoutMs)

  const setLockWait = (s: MysqlSession, action: string, timeoutMs: number) =>
    exec(s, action, timeoutMs, "SET SESSION lock_wait_timeout = ?", [
      Math.max(1, Math.ceil(timeoutMs / 1000)),
    ])

  const readFlags = (s: MysqlSession, action: string, timeoutMs: number) =>
    Effect.map(
      exec(s, action, timeoutMs, "SELECT @@read_only AS ro, @@super_read_only AS sro"),
      ([row]) => ({ ro: num(row, "ro") === 1, sro: num(row, "sro") === 1 }),
    )

  const verifyFailed = (action: string, reason: string) =>
    new MysqlError({
      action,
      target,
      kind: "unexpected",
      code: null,
      errno: null,
      sqlState: null,
      reason,
    })

  const fence = act("fence", (s, t) =>
    Effect.gen(function* () {
      yield* setLockWait(s, "fence", t)
      yield* exec(s, "fence", t, "SET GLOBAL super_read_only = ON")
      const f = yield* readFlags(s, "fence", t)
      if (!f.sro || !f.ro)
        return yield* verifyFailed("fence", `still read_only=${f.ro}, super_read_only=${f.sro}`)
    }),
  )

  // About 23 days: "never" for a pending fence, and below Node's largest timer (2^31 - 1 ms).
  const NEVER_MS = 2_000_000_000
  const fenceLeftPending = (patienceMs: number) =>
    Effect.gen(function* () {
      const done = yield* Deferred.make<void, MysqlError>()
      yield* Effect.forkDetach(
        act(
          "fence",
          (s, t) =>
            Effect.gen(function* () {
              yield* setLockWait(s, "fence", t)
              yield* exec(s, "fence", t, "SET GLOBAL super_read_only = ON")
              const f = yield* readFlags(s, "fence", t)
              if (!f.sro || !f.ro)
                return yield* verifyFailed(
                  "fence",
                  `still read_only=${f.ro}, super_read_only=${f.sro}`,
                )
            }),
          NEVER_MS,
        ).pipe(
          Effect.exit,
          Effect.flatMap((exit) => Deferred.done(done, exit)),
        ),
      )
      return yield* Deferred.await(done).pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(patienceMs),
          orElse: () =>
            Effect.fail(
              new MysqlError({
                action: "fence",
                target,
                kind: "timeout",
                code: "ETIMEDOUT",
                errno: null,
                sqlState: null,
                reason: `super_read_only = ON still pending after ${patienceMs} ms (left pending: writes wait behind it)`,
              }),
            ),
        }),
      )
    })

  const unfence = act("unfence", (s, t) =>
    Effect.gen(function* () {
      yield* setLockWait(s, "unfence", t)
      yield* exec(s, "unfence", t, "SET GLOBAL super_read_only = OFF")
      yield* exec(s, "unfence", t, "SET GLOBAL read_only = OFF")
      const f = yield* readFlags(s, "unfence", t)
      if (f.sro || f.ro)
        return yield* verifyFailed("unfence", `still read_only=${f.ro}, super_read_only=${f.sro}`)
    }),
  )

  const killClientSessions = (options: { readonly skipUsers?: ReadonlyArray<string> } = {}) =>
    act("kill-sessions", (s, t) =>
      Effect.gen(function* () {
        const skip = new Set(options.skipUsers ?? [])
        const rows = yield* exec(s, "kill-sessions", t, "SHOW FULL PROCESSLIST")
        const victims = rows
          .map((r: Row) => ({
            id: num(r, "Id") ?? -1,
            user: str(r, "User"),
            host: str(r, "Host"),
            command: str(r, "Command"),
          }))
          .filter(
            (v) =>
              v.id > 0 &&
              v.id !== s.threadId &&
              !SYSTEM_USERS.has(v.user) &&
              !SPARED_COMMANDS.has(v.command) &&
              !skip.has(v.user),
          )
        const killed: Array<KilledSession> = []
        // A session we may not kill (no CONNECTION_ADMIN, or its account has
        // SYSTEM_USER) does not stop the others from being killed: those are
        // what a fence waits for. The denial is reported afterwards.
        let denied: MysqlError | undefined
        for (const v of victims) {
          const r = yield* exec(s, "kill-sessions", t, "KILL CONNECTION ?", [v.id]).pipe(
            Effect.map(() => true),
            // It ended by itself in between.
            Effect.catchIf(
              (e) => e.errno === ER.NO_SUCH_THREAD,
              () => Effect.succeed(false),
            ),
            Effect.catchIf(
              (e) => e.errno === ER.KILL_DENIED,
              (e) => {
                denied ??= e
                return Effect.succeed(false)
              },
            ),
          )
          if (r) killed.push(v)
        }
        if (denied !== undefined) return yield* Effect.fail(denied)
        return killed
      }),
    )

  const busyClientSessions = (options: { readonly skipUsers?: ReadonlyArray<string> } = {}) =>
    act("busy-sessions", (s, t) =>
      Effect.gen(function* () {
        const skip = new Set(options.skipUsers ?? [])
        const rows = yield* exec(s, "busy-sessions", t, "SHOW FULL PROCESSLIST")
        const trx = yield* exec(
          s,
          "busy-sessions",
          t,
          "SELECT trx_mysql_thread_id AS id FROM information_schema.INNODB_TRX",
        )
        const inTransaction = new Set(trx.map((r: Row) => num(r, "id")))
        return rows.filter((r: Row) => {
          const id = num(r, "Id") ?? -1
          const command = str(r, "Command")
          return (
            id > 0 &&
            id !== s.threadId &&
            !SYSTEM_USERS.has(str(r, "User")) &&
            !SPARED_COMMANDS.has(command) &&
            !skip.has(str(r, "User")) &&
            (command !== "Sleep" || inTransaction.has(id))
          )
        }).length
      }),
    )

  const simple = (action: string, sql: string) =>
    act(action, (s, t) => Effect.asVoid(exec(s, action, t, sql)))

  const stopReplica = simple("stop-replica", "STOP REPLICA")
  const stopReplicaIoThread = simple("stop-replica-io", "STOP REPLICA IO_THREAD")
  const startReplica = simple("start-replica", "START REPLICA")
  const resetReplicaAll = act("reset-replica-all", (s, t) =>
    Effect.gen(function* () {
      yield* exec(s, "reset-replica-all", t, "STOP REPLICA")
      yield* exec(s, "reset-replica-all", t, "RESET REPLICA ALL")
    }),
  )

  const repoint = (o: RepointOptions) =>
    act("repoint", (s, t) =>
      Effect.gen(function* () {
        const params: Array<unknown> = [
          o.host,
          o.port,
          o.user,
          secret(o.password),
          o.retryCount ?? 86_400,
        ]
        let auth: string
        if (o.auth._tag === "GetSourcePublicKey") auth = "GET_SOURCE_PUBLIC_KEY = 1, SOURCE_SSL = 0"
        else {
          const parts = ["SOURCE_SSL = 1"]
          for (const [key, value] of [
            ["SOURCE_SSL_CA", o.auth.ca],
            ["SOURCE_SSL_CERT", o.auth.cert],
            ["SOURCE_SSL_KEY", o.auth.key],
          ] as const) {
            if (value !== undefined) {
              parts.push(`${key} = ?`)
              params.push(value)
            }
          }
          parts.push(`SOURCE_SSL_VERIFY_SERVER_CERT = ${o.auth.verifyServerCert ? 1 : 0}`)
          auth = parts.join(", ")
        }
        yield* exec(s, "repoint", t, "STOP REPLICA")
        yield* exec(
          s,
          "repoint",
          t,
          `CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = ?, SOURCE_USER = ?, SOURCE_PASSWORD = ?,
             SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, SOURCE_RETRY_COUNT = ?, ${auth}`,
          params,
        )
        if (o.semiSyncReplica !== undefined)
          yield* exec(s, "repoint", t, "SET GLOBAL rpl_semi_sync_replica_enabled = ?", [
            o.semiSyncReplica ? 1 : 0,
          ])
        yield* exec(s, "repoint", t, "START REPLICA")
      }),
    )

  const waitForExecutedGtidSet = (set: GtidSet, timeoutSeconds: number) =>
    act(
      "wait-for-executed",
      (s, t) =>
        Effect.map(
          exec(s, "wait-for-executed", t, "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS r", [
            formatGtidSet(set),
            timeoutSeconds,
          ]),
          ([row]): WaitResult => (num(row, "r") === 0 ? { _tag: "Applied" } : { _tag: "TimedOut" }),
        ),
      Math.ceil(timeoutSeconds * 1000) + settings.queryTimeoutMs,
    )

  const waitForRelayLog = (timeoutSeconds: number) =>
    act(
      "wait-for-relay-log",
      (s, t) =>
        Effect.gen(function* () {
          const a = "wait-for-relay-log"
          const rows = yield* exec(s, a, t, "SHOW REPLICA STATUS")
          const row = rows.find((r) => str(r, "Channel_Name") === "") ?? rows[0]
          const text = str(row, "Retrieved_Gtid_Set")
          const parsed = parseGtidSet(text)
          if (parsed._tag === "Err")
            return yield* verifyFailed(
              a,
              `cannot parse Retrieved_Gtid_Set ${JSON.stringify(text)}: ${parsed.message}`,
            )
          const [r] = yield* exec(s, a, t, "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS r", [
            formatGtidSet(parsed.set),
            timeoutSeconds,
          ])
          const result: WaitResult = num(r, "r") === 0 ? { _tag: "Applied" } : { _tag: "TimedOut" }
          return { result, retrieved: parsed.set }
        }),
      Math.ceil(timeoutSeconds * 1000) + settings.queryTimeoutMs,
    )

  const setSemiSyncSource = (o: SemiSyncSourceOptions) =>
    act("set-semi-sync-source", (s, t) =>
      Effect.gen(function* () {
        const a = "set-semi-sync-source"
        yield* exec(s, a, t, "SET GLOBAL rpl_semi_sync_source_wait_for_replica_count = ?", [
          o.waitForReplicaCount,
        ])
        yield* exec(s, a, t, "SET GLOBAL rpl_semi_sync_source_timeout = ?", [
          Math.round(o.timeoutMs),
        ])
        yield* exec(s, a, t, "SET GLOBAL rpl_semi_sync_source_enabled = ?", [o.enabled ? 1 : 0])
      }),
    )

  const setSemiSyncReplica = (enabled: boolean) =>
    act("set-semi-sync-replica", (s, t) =>
      Effect.gen(function* () {
        const a = "set-semi-sync-replica"
        yield* exec(s, a, t, "SET GLOBAL rpl_semi_sync_replica_enabled = ?", [enabled ? 1 : 0])
        const [row] = yield* exec(s, a, t, "SHOW REPLICA STATUS")
        const io = str(row, "Replica_IO_Running")
        if (row === undefined || (io !== "Yes" && io !== "Connecting"))
          return { ioThreadRestarted: false }
        // Rpl_semi_sync_replica_status tells how the running receiver connected (the variable
        // is read when it connects): already as wanted (a repoint set the variable before its
        // START REPLICA), a restart would only drop the connection, and the source's semi-sync
        // acknowledgements would wait until it is back (issue 13; test/lab/mysql-adapters.test.ts).
        const [status] = yield* exec(
          s,
          a,
          t,
          "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_replica_status', 'Rpl_semi_sync_slave_status')",
        )
        if (status !== undefined && (str(status, "Value") === "ON") === enabled)
          return { ioThreadRestarted: false }
        yield* exec(s, a, t, "STOP REPLICA IO_THREAD")
        yield* exec(s, a, t, "START REPLICA IO_THREAD")
        return { ioThreadRestarted: true }
      }),
    )

  const injectEmptyTransactions = (gtids: GtidSet, options: { readonly timeoutMs?: number } = {}) =>
    act(
      "inject-empty",
      (s, t) =>
        Effect.gen(function* () {
          const a = "inject-empty"
          let n = 0
          for (const [sid, intervals] of gtids.sids) {
            for (const iv of intervals) {
              for (let gno = iv.start; gno <= iv.end; gno++) {
                yield* exec(s, a, t, "SET GTID_NEXT = ?", [`${sid}:${gno}`])
                yield* exec(s, a, t, "BEGIN")
                yield* exec(s, a, t, "COMMIT")
                n++
              }
            }
          }
          yield* exec(s, a, t, "SET GTID_NEXT = 'AUTOMATIC'")
          return n
        }),
      options.timeoutMs ?? actionTimeoutMs + 10 * count(gtids),
    )

  const clone = (o: CloneOptions) => {
    const cloneTimeout = o.timeoutMs ?? 3_600_000
    const restartTimeout = o.restartTimeoutMs ?? 120_000
    const a = "clone"
    return Effect.gen(function* () {
      const started = performance.now()
      // The CLONE statement: it ends with the server going down, which
      // mysql2 reports as an error (3707 without a supervisor that mysqld
      // knows of, 1053, or a lost connection).
      const ending = yield* act(
        a,
        (s, t) =>
          Effect.gen(function* () {
            // Clone first removes the recipient's user data, which
            // super_read_only forbids; read_only stays ON, so clients
            // without CONNECTION_ADMIN still cannot write meanwhile.
            yield* exec(s, a, t, "SET GLOBAL read_only = ON")
            yield* exec(s, a, t, "SET GLOBAL super_read_only = OFF")
            yield* exec(s, a, t, "SET GLOBAL clone_valid_donor_list = ?", [
              `${o.donorHost}:${o.donorPort}`,
            ])
            return yield* exec(s, a, t, "CLONE INSTANCE FROM ?@?:? IDENTIFIED BY ?", [
              o.user,
              o.donorHost,
              o.donorPort,
              secret(o.password),
            ]).pipe(
              Effect.as("the statement returned"),
              Effect.catchIf(
                (e) =>
                  e.errno === ER.RESTART_SERVER_FAILED ||
                  e.errno === ER.SERVER_SHUTDOWN ||
                  e.kind === "connection-lost",
                (e) => Effect.succeed(`the server went down as expected: ${e.reason}`),
              ),
            )
          }),
        cloneTimeout,
      ).pipe(
        // The clone did not happen (or was killed): fence again at once.
        Effect.tapError(() =>
          withSession(a, endpoint, settings, (s) =>
            s.query(a, "SET GLOBAL super_read_only = ON"),
          ).pipe(Effect.ignore),
        ),
      )
      const cloneEnded = performance.now()
      // Wait until the restarted server answers: a connection to the old,
      // dying server would show an uptime older than the end of the clone.
      const deadline = cloneEnded + restartTimeout
      let lastError: MysqlError | undefined
      while (performance.now() < deadline) {
        const r = yield* withSession(a, endpoint, settings, (s) =>
          Effect.zipWith(
            s.query(a, "SELECT @@gtid_executed AS g"),
            s.query(a, "SHOW GLOBAL STATUS LIKE 'Uptime'"),
            ([g], [up]) => ({ g: str(g, "g"), up: num(up, "Value") }),
          ),
        ).pipe(Effect.result)
        if (r._tag === "Success") {
          const uptimeMs = (r.success.up ?? Number.POSITIVE_INFINITY) * 1000
          if (uptimeMs <= performance.now() - cloneEnded + 1000) {
            const parsed = parseGtidSet(r.success.g)
            if (parsed._tag === "Err")
              return yield* verifyFailed(
                a,
                `cannot parse @@gtid_executed after clone: ${parsed.message}`,
              )
            return {
              executed: parsed.set,
              durationMs: Math.round(performance.now() - started),
              copyMs: Math.round(cloneEnded - started),
              ending,
            }
          }
        } else lastError = r.failure
        yield* sleepMs(200)
      }
      return yield* new MysqlError({
        action: a,
        target,
        kind: "timeout",
        code: "ETIMEDOUT",
        errno: null,
        sqlState: null,
        reason: `the clone finished (${ending}) but mysqld did not come back within ${restartTimeout} ms${
          lastError ? ` (last error: ${lastError.reason})` : ""
        }`,
      })
    }).pipe(Effect.withSpan("MysqlActuator.clone", { attributes: { target } }))
  }

  const checkGrants = act("check-grants", (s, t) =>
    Effect.gen(function* () {
      const [who] = yield* exec(s, "check-grants", t, "SELECT CURRENT_USER() AS u")
      const rows = yield* exec(s, "check-grants", t, "SHOW GRANTS")
      const own = parseGrants(rows.map((r) => String(Object.values(r)[0] ?? "")))
      const roles = own.roles
      let privileges = own.privileges
      // Privileges of roles count when they are active in the agent's sessions (default
      // roles, or activate_all_roles_on_login): SHOW GRANTS ... USING lists them too.
      if (roles.length > 0) {
        const [current] = yield* exec(s, "check-grants", t, "SELECT CURRENT_ROLE() AS r")
        const active = str(current, "r")
        if (active !== "" && active !== "NONE") {
          const withRoles = yield* exec(
            s,
            "check-grants",
            t,
            `SHOW GRANTS FOR CURRENT_USER() USING ${active}`,
          )
          privileges = parseGrants(
            withRoles.map((r) => String(Object.values(r)[0] ?? "")),
          ).privileges
        }
      }
      return {
        user: str(who, "u"),
        granted: [...privileges].sort(),
        missing: missingPrivileges(privileges),
        roles,
      }
    }),
  )

  return {
    target,
    fence,
    fenceLeftPending,
    unfence,
    killClientSessions,
    busyClientSessions,
    stopReplica,
    stopReplicaIoThread,
    startReplica,
    resetReplicaAll,
    repoint,
    waitForExecutedGtidSet,
    waitForRelayLog,
    setSemiSyncSource,
    setSemiSyncReplica,
    injectEmptyTransactions,
    clone,
    checkGrants,
  }
}
