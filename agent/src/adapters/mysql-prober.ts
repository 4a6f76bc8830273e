/**
 * Probes of mysqld (protocol.md section 2).
 *
 * - `probeLocal`: the local mysqld, every `probe_interval`. One connection is
 *   kept open between probes (a probe then costs one round trip: its five
 *   statements in one batch, with no TCP handshake and no login); after any failure, timeout or
 *   interruption it is destroyed and the next probe connects afresh. Probes
 *   are serialized. Connect and login are bounded by `connectTimeoutMs`, the
 *   queries of one probe together by `queryTimeoutMs`, and the whole probe,
 *   the wait for an earlier probe included, is raced against the sum: a
 *   mysqld that accepted the connection and then hangs (SIGSTOP) is a failed
 *   probe (kind `timeout`) within that time, never a hung agent or a queue.
 * - `probeRemote`: another member's mysqld (the current primary): a fresh
 *   connection at least every `REMOTE_FRESH_CONNECTION_MS` (so a server that
 *   cannot take new connections counts as unreachable), kept for the probes
 *   in between (no login per probe: load on the primary), and one `SELECT`,
 *   which also tells whether it is fenced (`super_read_only = ON`). It never
 *   fails: the outcome is a value. See `planRemoteProbe`.
 *
 * Privileges: REPLICATION CLIENT (for SHOW REPLICA STATUS); nothing else.
 */
import { Context, Duration, Effect, Layer, Semaphore } from "effect"
import { type GtidSet, isEmpty, parseGtidSet, restrictToUuids } from "../core/gtid.ts"
import type { LagHeartbeatRow, MysqldStart, MysqlProbe, ReplicaStatus } from "../core/types.ts"
import { type HostBoot, makeHostBoot, mysqldStart } from "./host-boot.ts"
import {
  bool,
  describeEndpoint,
  type MysqlClientSettings,
  type MysqlEndpoint,
  MysqlError,
  type MysqlSession,
  nameValueMap,
  num,
  openSession,
  type Row,
  str,
  withSession,
} from "./mysql-connection.ts"

// ---------------------------------------------------------------------------
// What a probe returns

/** An error of a replication thread as SHOW REPLICA STATUS reports it. */
export interface ReplicationThreadError {
  readonly errno: number
  readonly message: string
  /** As MySQL prints it ("251122 03:41:07"), empty when unknown. */
  readonly timestamp: string
}

/** The default replication channel, from SHOW REPLICA STATUS. */
export interface ReplicaObservation {
  readonly sourceHost: string
  readonly sourcePort: number
  /** Empty before the IO thread first connected. */
  readonly sourceUuid: string
  /** Replica_IO_Running: "Connecting" means configured and retrying, not running. */
  readonly ioState: "Yes" | "No" | "Connecting"
  readonly ioRunning: boolean
  /**
   * Replica_IO_State, what the IO thread is doing ("Waiting for disk space"
   * when the relay log cannot be written: it then receives nothing and a
   * STOP REPLICA waits for it).
   */
  readonly ioStatus: string
  readonly sqlRunning: boolean
  /** Received into the relay log (Retrieved_Gtid_Set). */
  readonly retrieved: GtidSet
  /** Executed_Gtid_Set (the same as @@gtid_executed). */
  readonly executed: GtidSet
  /** Seconds_Behind_Source; null when the SQL or IO thread is not running. */
  readonly secondsBehindSource: number | null
  readonly autoPosition: boolean
  readonly lastIoError: ReplicationThreadError | null
  readonly lastSqlError: ReplicationThreadError | null
}

/** Semi-synchronous replication, both sides (MySQL 8.4+ names, older ones accepted). */
export interface SemiSyncObservation {
  /** The plugins are loaded (their variables exist). */
  readonly sourcePluginLoaded: boolean
  readonly replicaPluginLoaded: boolean
  /** rpl_semi_sync_source_enabled */
  readonly sourceEnabled: boolean
  /** Rpl_semi_sync_source_status: ON while commits wait for acknowledgements. */
  readonly sourceActive: boolean
  /** Rpl_semi_sync_source_clients: semi-sync replicas connected now. */
  readonly sourceClients: number
  /** Rpl_semi_sync_source_wait_sessions: commits waiting for an acknowledgement now. */
  readonly sourceWaitSessions: number
  readonly sourceTimeoutMs: number | null
  readonly waitForReplicaCount: number | null
  /** rpl_semi_sync_replica_enabled */
  readonly replicaEnabled: boolean
  /** Rpl_semi_sync_replica_status: the IO thread acknowledges. */
  readonly replicaActive: boolean
}

/** One successful probe of the local mysqld. */
export interface LocalObservation {
  readonly serverUuid: string
  readonly serverId: number
  readonly version: string
  readonly readOnly: boolean
  readonly superReadOnly: boolean
  /** @@relay_log_recovery: ON discards the relay log at every mysqld start. */
  readonly relayLogRecovery: boolean
  readonly executed: GtidSet
  /** This server's own commits in flight, not yet in gtid_executed (`committingOf`). */
  readonly committing: GtidSet
  /** When this mysqld process started on this host's clock since boot (host-boot.ts); null: unknown. */
  readonly started: MysqldStart | null
  /** Null when no replication source is configured (SHOW REPLICA STATUS is empty). */
  readonly replica: ReplicaObservation | null
  readonly semiSync: SemiSyncObservation
  /** Status `Uptime`: tells a restarted mysqld from one that only did not answer for a while. */
  readonly uptimeSeconds: number | null
  /** Client statements stuck in commit (see `COMMIT_WAIT_SQL`). */
  readonly commitWait: CommitWaitObservation
  /**
   * The heartbeat table's rows (`lag.source: heartbeat_table`); undefined
   * when not configured, or when the table cannot be read (not created yet).
   */
  readonly heartbeats?: ReadonlyArray<LagHeartbeatRow>
  /** How long this probe took, including a reconnect if one was needed. */
  readonly durationMs: number
  /** True when this probe had to open a new connection. */
  readonly reconnected: boolean
}

/**
 * Client sessions whose statement waits in commit: processlist state
 * "waiting for handler commit" (a full binlog disk: mysqld waits for space
 * and retries every 60 s; test/lab/disk-full-primary.test.ts) or "Waiting for
 * disk space". A commit waiting for a semi-sync acknowledgement shows
 * "Waiting for semi-sync ACK from replica" instead: not counted here.
 */
export interface CommitWaitObservation {
  readonly sessions: number
  /** The longest wait in seconds (processlist TIME), 0 when none. */
  readonly oldestSeconds: number
}

/** The outcome of a probe of another member's mysqld. */
export type RemoteProbe =
  | {
      readonly _tag: "Reachable"
      readonly target: string
      readonly serverUuid: string
      readonly readOnly: boolean
      /** True: the server is fenced (no writes, not even by SUPER users). */
      readonly superReadOnly: boolean
      readonly latencyMs: number
    }
  | {
      readonly _tag: "Unreachable"
      readonly target: string
      readonly error: MysqlError
      readonly latencyMs: number
    }

// ---------------------------------------------------------------------------
// Parsing

const unexpected = (action: string, target: string, reason: string) =>
  new MysqlError({
    action,
    target,
    kind: "unexpected",
    code: null,
    errno: null,
    sqlState: null,
    reason,
  })

const gtids = (
  action: string,
  target: string,
  what: string,
  text: string,
): Effect.Effect<GtidSet, MysqlError> => {
  const r = parseGtidSet(text)
  return r._tag === "Ok"
    ? Effect.succeed(r.set)
    : Effect.fail(
        unexpected(action, target, `cannot parse ${what} ${JSON.stringify(text)}: ${r.message}`),
      )
}

const threadError = (row: Row, prefix: "Last_IO" | "Last_SQL"): ReplicationThreadError | null => {
  const errno = num(row, `${prefix}_Errno`) ?? 0
  if (errno === 0) return null
  return {
    errno,
    message: str(row, `${prefix}_Error`),
    timestamp: str(row, `${prefix}_Error_Timestamp`),
  }
}

const parseReplica = Effect.fnUntraced(function* (
  target: string,
  rows: ReadonlyArray<Row>,
): Effect.fn.Return<ReplicaObservation | null, MysqlError> {
  // The default channel; a multi-source replica has other rows too.
  const row = rows.find((r) => str(r, "Channel_Name") === "") ?? rows[0]
  if (row === undefined) return null
  const io = str(row, "Replica_IO_Running")
  const ioState = io === "Yes" ? "Yes" : io === "Connecting" ? "Connecting" : "No"
  return {
    sourceHost: str(row, "Source_Host"),
    sourcePort: num(row, "Source_Port") ?? 0,
    sourceUuid: str(row, "Source_UUID"),
    ioState,
    ioRunning: ioState === "Yes",
    ioStatus: str(row, "Replica_IO_State"),
    sqlRunning: str(row, "Replica_SQL_Running") === "Yes",
    retrieved: yield* gtids("probe", target, "Retrieved_Gtid_Set", str(row, "Retrieved_Gtid_Set")),
    executed: yield* gtids("probe", target, "Executed_Gtid_Set", str(row, "Executed_Gtid_Set")),
    secondsBehindSource: num(row, "Seconds_Behind_Source"),
    autoPosition: bool(row, "Auto_Position"),
    lastIoError: threadError(row, "Last_IO"),
    lastSqlError: threadError(row, "Last_SQL"),
  }
})

const parseSemiSync = (
  variables: ReadonlyArray<Row>,
  status: ReadonlyArray<Row>,
): SemiSyncObservation => {
  const v = nameValueMap(variables)
  const s = nameValueMap(status)
  const get = (m: Map<string, string>, modern: string, legacy: string) =>
    m.get(modern) ?? m.get(legacy)
  const on = (x: string | undefined) => x !== undefined && (x.toUpperCase() === "ON" || x === "1")
  const n = (x: string | undefined) => (x === undefined || x === "" ? null : Number(x))
  const sourceEnabled = get(v, "rpl_semi_sync_source_enabled", "rpl_semi_sync_master_enabled")
  const replicaEnabled = get(v, "rpl_semi_sync_replica_enabled", "rpl_semi_sync_slave_enabled")
  return {
    sourcePluginLoaded: sourceEnabled !== undefined,
    replicaPluginLoaded: replicaEnabled !== undefined,
    sourceEnabled: on(sourceEnabled),
    sourceActive: on(get(s, "rpl_semi_sync_source_status", "rpl_semi_sync_master_status")),
    sourceClients: n(get(s, "rpl_semi_sync_source_clients", "rpl_semi_sync_master_clients")) ?? 0,
    sourceWaitSessions:
      n(get(s, "rpl_semi_sync_source_wait_sessions", "rpl_semi_sync_master_wait_sessions")) ?? 0,
    sourceTimeoutMs: n(get(v, "rpl_semi_sync_source_timeout", "rpl_semi_sync_master_timeout")),
    waitForReplicaCount: n(
      get(
        v,
        "rpl_semi_sync_source_wait_for_replica_count",
        "rpl_semi_sync_master_wait_for_slave_count",
      ),
    ),
    replicaEnabled: on(replicaEnabled),
    replicaActive: on(get(s, "rpl_semi_sync_replica_status", "rpl_semi_sync_slave_status")),
  }
}

const LOCAL_SQL = `SELECT @@server_uuid AS server_uuid, @@server_id AS server_id, @@version AS version,
  @@read_only AS read_only, @@super_read_only AS super_read_only, @@gtid_executed AS gtid_executed,
  @@relay_log_recovery AS relay_log_recovery, @@GLOBAL.gtid_owned AS gtid_owned`

/**
 * @@GLOBAL.gtid_owned lists each GTID in use with the thread owning it
 * ("uuid:3#19,uuid:4#20"). Those of this server's own uuid are its commits
 * in flight: written to its binlog (or about to be, and then on no replica
 * yet) but not in gtid_executed until they commit, such as a commit waiting
 * for its semi-sync acknowledgement, which crash recovery commits
 * (test/lab/semisync-behaviour.test.ts "kill -9 ... its GTID is owned, not
 * executed"). A replica may already hold such a transaction: the node's data
 * for votes and ranking must count it (protocol.md section 7).
 */
export const committingOf = (
  action: string,
  target: string,
  owned: string,
  serverUuid: string,
): Effect.Effect<GtidSet, MysqlError> =>
  gtids(action, target, "@@gtid_owned", owned.replace(/#\d+/g, "")).pipe(
    Effect.map((set) => restrictToUuids(set, new Set([serverUuid]))),
  )

/** Needs PROCESS (without it only the agent's own sessions show: no stuck commit is ever seen). */
const COMMIT_WAIT_SQL = `SELECT COUNT(*) AS sessions, COALESCE(MAX(TIME), 0) AS oldest
  FROM information_schema.PROCESSLIST
  WHERE COMMAND = 'Query' AND STATE IN ('waiting for handler commit', 'Waiting for disk space')`

/** `schema.table` (checked by the config: unquoted identifiers) quoted for SQL. */
export const quoteTable = (table: string): string =>
  table
    .split(".")
    .map((part) => `\`${part.replaceAll("`", "``")}\``)
    .join(".")

/** The heartbeat rows, their age on this mysqld's clock (the same query reads both). */
export const heartbeatSql = (table: string): string =>
  `SELECT \`member\`, \`term\`, TIMESTAMPDIFF(MICROSECOND, \`ts\`, UTC_TIMESTAMP(6)) AS age_us FROM ${quoteTable(table)}`

export const parseHeartbeats = (rows: ReadonlyArray<Row>): Array<LagHeartbeatRow> =>
  rows.flatMap((r) => {
    const member = str(r, "member")
    const term = num(r, "term")
    const ageUs = num(r, "age_us")
    return member === "" || term === null || ageUs === null
      ? []
      : [{ member, term, ageSeconds: ageUs / 1_000_000 }]
  })

/**
 * The heartbeat table, read after the probe's batch (one statement of its
 * own: a table not created yet fails only this read, never the probe).
 */
const readHeartbeats = (session: MysqlSession, table: string | undefined, timeoutMs: number) =>
  table === undefined
    ? Effect.succeed(undefined)
    : session.query("probe-heartbeat", heartbeatSql(table), undefined, timeoutMs).pipe(
        Effect.map(parseHeartbeats),
        Effect.catch((e: MysqlError) =>
          e.kind === "server" ? Effect.succeed(undefined) : Effect.fail(e),
        ),
      )

/**
 * The queries of one local probe on an open session, together bounded by
 * `timeoutMs`: each statement by its own timer (the session's), the second
 * by what the first left. A statement that times out fails with kind
 * `timeout` and leaves the session broken.
 */
const observe = Effect.fnUntraced(function* (
  session: MysqlSession,
  timeoutMs: number,
  heartbeatTable?: string,
) {
  const target = session.target
  const start = performance.now()
  // One round trip for all of them (the session allows multiple statements).
  const batch = yield* session.queryBatch(
    "probe",
    [
      LOCAL_SQL,
      "SHOW REPLICA STATUS",
      "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_%'",
      "SHOW GLOBAL STATUS WHERE Variable_name LIKE 'Rpl_semi_sync_%' OR Variable_name = 'Uptime'",
      COMMIT_WAIT_SQL,
    ],
    timeoutMs,
  )
  // queryBatch returns exactly one row set per statement.
  const [[vars], replicaRows, semiVars, semiStatus, [waits]] = batch as [
    Row[],
    Row[],
    Row[],
    Row[],
    Row[],
  ]
  if (vars === undefined)
    return yield* unexpected("probe", target, "SELECT @@server_uuid returned no row")
  const uptime = nameValueMap(semiStatus).get("uptime")
  const left = Math.max(1, Math.floor(timeoutMs - (performance.now() - start)))
  const heartbeats = yield* readHeartbeats(session, heartbeatTable, left)
  const serverUuid = str(vars, "server_uuid").toLowerCase()
  return {
    ...(heartbeats === undefined ? {} : { heartbeats }),
    serverUuid,
    serverId: num(vars, "server_id") ?? 0,
    version: str(vars, "version"),
    readOnly: bool(vars, "read_only"),
    superReadOnly: bool(vars, "super_read_only"),
    relayLogRecovery: bool(vars, "relay_log_recovery"),
    executed: yield* gtids("probe", target, "@@gtid_executed", str(vars, "gtid_executed")),
    committing: yield* committingOf("probe", target, str(vars, "gtid_owned"), serverUuid),
    replica: yield* parseReplica(target, replicaRows),
    semiSync: parseSemiSync(semiVars, semiStatus),
    uptimeSeconds: uptime === undefined || uptime === "" ? null : Number(uptime),
    commitWait: {
      sessions: waits === undefined ? 0 : (num(waits, "sessions") ?? 0),
      oldestSeconds: waits === undefined ? 0 : (num(waits, "oldest") ?? 0),
    },
  }
})

// ---------------------------------------------------------------------------
// The service

export interface MysqlProberOptions {
  /** The local mysqld: `127.0.0.1:mysql_port` (or this member's address), or its socket. */
  readonly local: MysqlEndpoint
  readonly settings: MysqlClientSettings
  /** How old the kept remote connection may grow (default REMOTE_FRESH_CONNECTION_MS; tests). */
  readonly remoteFreshConnectionMs?: number
  /** The heartbeat table to read with each local probe (`lag.source: heartbeat_table`), as configured now. */
  readonly lagHeartbeatTable?: () => string | undefined
  /** This host's boot and clock since boot (default: /proc, host-boot.ts). */
  readonly hostBoot?: () => HostBoot | null
}

/**
 * The remote probe opens a fresh connection to the primary's mysqld at least
 * this often, to tell whether it still accepts connections (protocol.md
 * section 2). A replica used to connect and log in every probe_interval: two
 * logins a second per replica on the primary, and most of the agent's garbage.
 */
export const REMOTE_FRESH_CONNECTION_MS = 5_000

/** The remote probe's kept connection, as `planRemoteProbe` sees it. */
export interface KeptRemoteConnection {
  readonly target: string
  /** Monotonic ms when it was opened. */
  readonly openedAt: number
  readonly broken: boolean
}

/**
 * How one remote probe reaches its target:
 * - `Kept`: the SELECT on the kept connection, no new connection;
 * - `Renew`: a fresh connection (connect and login), kept afterwards in place
 *   of the old one: when none is kept, it is to another target (the primary
 *   changed), it broke, or it is `freshEveryMs` old;
 * - `OneShot`: a fresh connection closed after the SELECT (the old rule),
 *   when an earlier probe still uses the kept one (probes may overlap while
 *   one waits out a hung server).
 * A `Kept` probe whose SELECT fails other than by a timeout renews at once
 * within the same probe: a kept connection that died (killed, reset) is
 * never by itself a vote that the primary is unreachable.
 */
export type RemoteProbePlan = "Kept" | "Renew" | "OneShot"

export const planRemoteProbe = (
  kept: KeptRemoteConnection | undefined,
  inUse: boolean,
  target: string,
  now: number,
  freshEveryMs: number,
): RemoteProbePlan => {
  if (inUse) return "OneShot"
  if (kept === undefined || kept.target !== target || kept.broken) return "Renew"
  return now - kept.openedAt >= freshEveryMs ? "Renew" : "Kept"
}

const REMOTE_SQL =
  "SELECT 1 AS ok, @@server_uuid AS server_uuid, @@read_only AS read_only, @@super_read_only AS super_read_only"

const remoteQuery = (session: MysqlSession) => session.query("probe-remote", REMOTE_SQL)

export interface MysqlProberService {
  /** Probes the local mysqld; fails with a MysqlError (connect, timeout, server, ...). */
  readonly probeLocal: Effect.Effect<LocalObservation, MysqlError>
  /**
   * SELECT on another mysqld over a kept connection renewed every
   * `REMOTE_FRESH_CONNECTION_MS` (see `planRemoteProbe`), bounded by connect
   * + query timeouts; never fails.
   */
  readonly probeRemote: (endpoint: MysqlEndpoint) => Effect.Effect<RemoteProbe>
  /** Drops the kept connection (the next probe reconnects). */
  readonly reset: Effect.Effect<void>
}

const elapsed = (start: number) => Math.round((performance.now() - start) * 1000) / 1000

/** Builds a prober; the kept connection is closed when `scope` closes. */
export const makeMysqlProber = Effect.fnUntraced(function* (options: MysqlProberOptions) {
  const { local, settings } = options
  const target = describeEndpoint(local)
  const lock = Semaphore.makeUnsafe(1)
  let kept: MysqlSession | undefined
  const drop = Effect.sync(() => {
    kept?.destroy()
    kept = undefined
  })
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      const s = kept
      kept = undefined
      return s === undefined ? Effect.void : s.close
    }),
  )

  const hostBoot = options.hostBoot ?? makeHostBoot()
  const deadline = settings.connectTimeoutMs + settings.queryTimeoutMs
  const timedOut = (action: string, target: string, ms: number) =>
    new MysqlError({
      action,
      target,
      kind: "timeout",
      code: "ETIMEDOUT",
      errno: null,
      sqlState: null,
      reason: `the probe did not finish within ${ms} ms`,
    })
  /** Probes (and resets) holding the lock or waiting for it: at 0 the next one takes it at once. */
  let lockUsers = 0
  const usingLock = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.suspend(() => {
      lockUsers++
      return Effect.onExit(effect, () =>
        Effect.sync(() => {
          lockUsers--
        }),
      )
    })
  const attemptLocal: Effect.Effect<LocalObservation, MysqlError> = Effect.gen(function* () {
    const start = performance.now()
    let reconnected = false
    if (kept === undefined || kept.isBroken()) {
      kept?.destroy()
      kept = undefined
      kept = yield* openSession("probe", local, settings, { multipleStatements: true })
      reconnected = true
    }
    const seen = yield* observe(kept, settings.queryTimeoutMs, options.lagHeartbeatTable?.())
    // Read right after the answer: Uptime and /proc/uptime a moment apart.
    const started = mysqldStart(hostBoot(), seen.uptimeSeconds)
    return { ...seen, started, durationMs: elapsed(start), reconnected }
  }).pipe(
    // A failure, a timeout or an interruption leaves the connection unusable.
    Effect.onExit((exit) => (exit._tag === "Failure" ? drop : Effect.void)),
    Semaphore.withPermit(lock),
  )
  const probeLocal: Effect.Effect<LocalObservation, MysqlError> = Effect.suspend(() => {
    // At rest the lock is free and the connection kept: the probe is its
    // statements, bounded by their own timers (queryTimeoutMs in all, within
    // the deadline), and needs no race with a timer (two fibers and a sleep,
    // two to four probes a second: issue 12).
    const atOnce = lockUsers === 0 && kept !== undefined && !kept.isBroken()
    const probe = usingLock(attemptLocal)
    return atOnce
      ? probe
      : // The deadline covers the wait for an earlier probe and the connect too: a
        // probe queued behind one stuck on a hung server fails at its deadline, never later.
        probe.pipe(
          Effect.timeoutOrElse({
            duration: Duration.millis(deadline),
            orElse: () => Effect.fail(timedOut("probe", target, deadline)),
          }),
        )
    // No tracing span (nor in probeRemote): no tracer is installed, and a span per
    // probe, two to four a second at rest, showed in the agent's profile (issue 12).
  })

  // The remote probe's kept connection (planRemoteProbe), and whether a
  // probe is using it (or renewing it) now.
  const freshEveryMs = options.remoteFreshConnectionMs ?? REMOTE_FRESH_CONNECTION_MS
  let remoteKept: { target: string; session: MysqlSession; openedAt: number } | undefined
  let remoteInUse = false
  const dropRemote = () => {
    remoteKept?.session.destroy()
    remoteKept = undefined
  }
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      const k = remoteKept
      remoteKept = undefined
      return k === undefined ? Effect.void : k.session.close
    }),
  )

  /**
   * One remote probe's plan (planRemoteProbe) and its SELECT. A kept
   * connection is the statement alone, bounded by its own timer; if it fails
   * otherwise (the connection died) a fresh one is opened at once, bounded
   * by what is left of the deadline.
   */
  const remoteAttempt = (endpoint: MysqlEndpoint, remote: string, start: number) => {
    const kept = remoteKept
    const plan = planRemoteProbe(
      kept === undefined
        ? undefined
        : { target: kept.target, openedAt: kept.openedAt, broken: kept.session.isBroken() },
      remoteInUse,
      remote,
      performance.now(),
      freshEveryMs,
    )
    if (plan === "OneShot")
      return { plan, run: withSession("probe-remote", endpoint, settings, remoteQuery) }
    remoteInUse = true
    const renew = Effect.gen(function* () {
      const session = yield* openSession("probe-remote", endpoint, settings)
      const old = remoteKept
      remoteKept = { target: remote, session, openedAt: performance.now() }
      // The old one is closed politely (COM_QUIT) without delaying the probe.
      if (old !== undefined) yield* Effect.forkDetach(old.session.close)
      return yield* remoteQuery(session)
    })
    const renewWithinDeadline = Effect.suspend(() => {
      const left = Math.max(1, Math.floor(deadline - (performance.now() - start)))
      return renew.pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(left),
          orElse: () => Effect.fail(timedOut("probe-remote", remote, deadline)),
        }),
      )
    })
    const run =
      plan === "Renew" || kept === undefined
        ? renew
        : remoteQuery(kept.session).pipe(
            Effect.catch((e: MysqlError) =>
              e.kind === "timeout"
                ? Effect.fail(e)
                : Effect.andThen(Effect.sync(dropRemote), renewWithinDeadline),
            ),
          )
    return {
      plan,
      run: run.pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            remoteInUse = false
            if (exit._tag === "Failure") dropRemote()
          }),
        ),
      ),
    }
  }

  const probeRemote = (endpoint: MysqlEndpoint): Effect.Effect<RemoteProbe> =>
    Effect.suspend(() => {
      const remote = describeEndpoint(endpoint)
      const start = performance.now()
      const { plan, run } = remoteAttempt(endpoint, remote, start)
      // On the kept connection the SELECT's own timer bounds it (as probeLocal's):
      // no race with a timer at rest; a connect is raced with the deadline.
      const bounded =
        plan === "Kept"
          ? run
          : run.pipe(
              Effect.timeoutOrElse({
                duration: Duration.millis(deadline),
                orElse: () => Effect.fail(timedOut("probe-remote", remote, deadline)),
              }),
            )
      return bounded.pipe(
        Effect.flatMap(([row]) =>
          row === undefined || num(row, "ok") !== 1
            ? Effect.fail(unexpected("probe-remote", remote, "SELECT 1 returned no row"))
            : Effect.succeed<RemoteProbe>({
                _tag: "Reachable",
                target: remote,
                serverUuid: str(row, "server_uuid").toLowerCase(),
                readOnly: bool(row, "read_only"),
                superReadOnly: bool(row, "super_read_only"),
                latencyMs: elapsed(start),
              }),
        ),
        Effect.catch((error: MysqlError) =>
          Effect.succeed<RemoteProbe>({
            _tag: "Unreachable",
            target: remote,
            error,
            latencyMs: elapsed(start),
          }),
        ),
      )
    })

  const service: MysqlProberService = {
    probeLocal,
    probeRemote,
    reset: usingLock(Semaphore.withPermit(lock)(drop)),
  }
  return service
})

/** Probes of the local mysqld (kept connection) and of other members' mysqld. */
export class MysqlProber extends Context.Service<MysqlProber, MysqlProberService>()(
  "mha-agent/adapters/MysqlProber",
) {
  static readonly layer = (options: MysqlProberOptions): Layer.Layer<MysqlProber> =>
    Layer.effect(
      MysqlProber,
      Effect.map(makeMysqlProber(options), (s) => MysqlProber.of(s)),
    )
}

// ---------------------------------------------------------------------------
// For the decision core

/** A one-line description of a replication error, for the core and the operator. */
/**
 * IO-thread errors that only say the source cannot be reached right now
 * (connect refused or timed out, connection lost): expected while a primary
 * is down, and no sign that this replica's data is broken.
 */
const SOURCE_UNREACHABLE_ERRNOS = new Set([2003, 2005, 2006, 2013])

/**
 * What breaks replication (protocol.md section 7: a replica "not broken by an
 * error"): any SQL-thread error, and IO-thread errors other than the source
 * being unreachable. Null when replication is sound.
 */
export const describeReplicationError = (r: ReplicaObservation): string | null => {
  const parts: Array<string> = []
  if (r.lastIoError && !SOURCE_UNREACHABLE_ERRNOS.has(r.lastIoError.errno)) {
    parts.push(`IO error ${r.lastIoError.errno}: ${r.lastIoError.message}`)
  }
  if (r.lastSqlError) parts.push(`SQL error ${r.lastSqlError.errno}: ${r.lastSqlError.message}`)
  return parts.length === 0 ? null : parts.join("; ")
}

/**
 * The core's view of a probe. `sourceName` maps the replica's source
 * (host, port) to a member name (the address it was repointed to), or
 * returns the `host:port` itself when it is not a member.
 */
export const toMysqlProbe = (
  o: LocalObservation,
  sourceName: (host: string, port: number) => string,
): MysqlProbe => {
  const replica: ReplicaStatus | null =
    o.replica === null
      ? null
      : {
          source: sourceName(o.replica.sourceHost, o.replica.sourcePort),
          ioRunning: o.replica.ioRunning,
          ...(o.replica.ioState === "Connecting" ? { ioConnecting: true } : {}),
          ioStatus: o.replica.ioStatus,
          sqlRunning: o.replica.sqlRunning,
          retrieved: o.replica.retrieved,
          lagSeconds: o.replica.secondsBehindSource,
          lastError: describeReplicationError(o.replica),
          ioErrno: o.replica.lastIoError?.errno ?? null,
          ...(o.replica.sourceUuid === "" ? {} : { sourceUuid: o.replica.sourceUuid }),
        }
  return {
    serverUuid: o.serverUuid,
    readOnly: o.readOnly,
    superReadOnly: o.superReadOnly,
    relayLogRecovery: o.relayLogRecovery,
    executed: o.executed,
    ...(isEmpty(o.committing) ? {} : { committing: o.committing }),
    replica,
    semiSyncSourceOn: o.semiSync.sourceEnabled && o.semiSync.sourceActive,
    semiSyncSourceEnabled: o.semiSync.sourceEnabled,
    semiSyncReplicaOn: o.semiSync.replicaEnabled,
    semiSyncWaiters: o.semiSync.sourceWaitSessions,
    commitWait: o.commitWait,
    semiSyncClients: o.semiSync.sourceClients,
    ...(o.semiSync.waitForReplicaCount === null
      ? {}
      : { semiSyncWaitCount: o.semiSync.waitForReplicaCount }),
    ...(o.uptimeSeconds === null ? {} : { uptimeSeconds: o.uptimeSeconds }),
    ...(o.started === null ? {} : { started: o.started }),
    ...(o.heartbeats === undefined ? {} : { heartbeats: o.heartbeats }),
  }
}
