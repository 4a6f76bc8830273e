/**
 * The mysql2 plumbing shared by the prober and the actuator: where a mysqld
 * is, how to log in, one typed error, and connections whose every step is
 * bounded by a timer of our own.
 *
 * Why our own timers: mysql2's `connectTimeout` only covers the handshake.
 * A mysqld that accepted the connection and then hangs (SIGSTOP, a stuck
 * storage engine) never answers a query, and mysql2 would wait forever. Every
 * step here is raced against a timer; when the timer wins, or the fiber is
 * interrupted, the socket is destroyed at once (not a graceful FIN that
 * would linger on a stopped peer) and the connection is never used again.
 *
 * Authentication (caching_sha2_password, the default of MySQL 8.4+/9.x):
 * - over TLS (`tls` given) the password goes through the encrypted channel;
 * - without TLS, mysql2 asks the server for its RSA public key and sends the
 *   password encrypted with it (the client side of GET_SOURCE_PUBLIC_KEY=1).
 *   Setting `serverPublicKey` (PEM) pins the key instead, which saves a round
 *   trip on a cold cache and defeats a man in the middle handing out its own
 *   key; without it the first login after a restart trusts the network;
 * - over a Unix socket the password is sent as is (the socket is local).
 *
 * Passwords are `Redacted` and never put into an error or a log line: mysql2
 * attaches the interpolated SQL text (which may hold a password, e.g. in
 * CHANGE REPLICATION SOURCE or CLONE) to its errors as `err.sql`; that field
 * is never copied.
 */
import { readFile } from "node:fs/promises"
import { checkServerIdentity, type TLSSocket } from "node:tls"
import { Duration, Effect, Redacted, Schema } from "effect"
import mysql from "mysql2"
import type { Config } from "../../../shared/config.ts"

// ---------------------------------------------------------------------------
// Where and how

/** A mysqld: TCP host and port (what the agent uses), or a Unix socket. */
export type MysqlEndpoint =
  | { readonly host: string; readonly port: number }
  | { readonly socketPath: string }

export const describeEndpoint = (e: MysqlEndpoint): string =>
  "socketPath" in e
    ? `unix:${e.socketPath}`
    : e.host.includes(":")
      ? `[${e.host}]:${e.port}`
      : `${e.host}:${e.port}`

/** TLS material, as PEM text (not paths). */
export interface MysqlTlsPem {
  readonly ca?: string
  readonly cert?: string
  readonly key?: string
  /** Also check that the certificate names the host connected to (needs `ca`). */
  readonly verifyIdentity?: boolean
}

/** How to log in and how long to wait. */
export interface MysqlClientSettings {
  readonly user: string
  readonly password: Redacted.Redacted<string>
  /** TCP connect plus handshake and authentication. */
  readonly connectTimeoutMs: number
  /** One query (or one probe's batch of queries). */
  readonly queryTimeoutMs: number
  /** Use TLS (and verify the server against `ca` when given). */
  readonly tls?: MysqlTlsPem
  /** The server's RSA public key (PEM), pinned; otherwise fetched from the server. */
  readonly serverPublicKey?: string
}

// ---------------------------------------------------------------------------
// The error

/** One MySQL operation failed: which, against what, how, and MySQL's own code and message. */
export class MysqlError extends Schema.TaggedError<MysqlError>()("MysqlError", {
  /** What we were doing: "probe", "fence", "repoint", "connect", ... */
  action: Schema.String,
  /** `host:port` or `unix:/path`. */
  target: Schema.String,
  /**
   * - connect: could not connect or log in (refused, unreachable, auth);
   * - timeout: our timer fired (a hung server, a lock wait, a slow network);
   * - server: mysqld answered with an error (errno is MySQL's code);
   * - connection-lost: the connection broke in the middle;
   * - unexpected: a reply we could not make sense of.
   */
  kind: Schema.Literals(["connect", "timeout", "server", "connection-lost", "unexpected"]),
  /** mysql2's / MySQL's symbolic code: "ER_ACCESS_DENIED_ERROR", "ECONNREFUSED", ... */
  code: Schema.NullOr(Schema.String),
  /** MySQL's numeric error code (1045, 1290, ...), when the server sent one. */
  errno: Schema.NullOr(Schema.Number),
  sqlState: Schema.NullOr(Schema.String),
  /** MySQL's message, or the client-side reason. Never holds a password. */
  reason: Schema.String,
}) {
  override get message(): string {
    const code =
      this.errno !== null
        ? ` (MySQL error ${this.errno}${this.code ? ` ${this.code}` : ""})`
        : this.code
          ? ` (${this.code})`
          : ""
    return `mysql ${this.action} on ${this.target} failed: ${this.kind}: ${this.reason}${code}`
  }
}

/** MySQL error numbers this package looks at. */
export const ER = {
  ACCESS_DENIED: 1045,
  SPECIFIC_ACCESS_DENIED: 1227,
  NO_SUCH_THREAD: 1094,
  /** ER_KILL_DENIED_ERROR: "You are not owner of thread" (the target has SYSTEM_USER). */
  KILL_DENIED: 1095,
  SERVER_SHUTDOWN: 1053,
  OPTION_PREVENTS_STATEMENT: 1290,
  /** CLONE finished and mysqld shuts down: no supervisor to restart it, or it restarts through one. */
  RESTART_SERVER_FAILED: 3707,
  /** Client side: lost connection during query. */
  CR_SERVER_LOST: 2013,
} as const

interface MysqlLikeError {
  readonly code?: unknown
  readonly errno?: unknown
  readonly sqlState?: unknown
  readonly sqlMessage?: unknown
  readonly message?: unknown
  readonly fatal?: unknown
}

const CONNECTION_LOST_CODES = new Set([
  "PROTOCOL_CONNECTION_LOST",
  "ECONNRESET",
  "EPIPE",
  "PROTOCOL_SEQUENCE_TIMEOUT",
])

/** Maps a mysql2 error to a MysqlError; `phase` tells connect errors from query errors. */
export const toMysqlError = (
  action: string,
  target: string,
  phase: "connect" | "query",
  e: unknown,
): MysqlError => {
  const err = (typeof e === "object" && e !== null ? e : {}) as MysqlLikeError
  const code = typeof err.code === "string" ? err.code : null
  const serverErrno =
    typeof err.errno === "number" && typeof err.sqlState === "string" ? err.errno : null
  const sqlState = typeof err.sqlState === "string" ? err.sqlState : null
  const reason =
    typeof err.sqlMessage === "string" && err.sqlMessage !== ""
      ? err.sqlMessage
      : typeof err.message === "string"
        ? err.message
        : String(e)
  const kind: MysqlError["kind"] =
    code === "ETIMEDOUT"
      ? "timeout"
      : phase === "connect"
        ? "connect"
        : serverErrno !== null
          ? "server"
          : code !== null && CONNECTION_LOST_CODES.has(code)
            ? "connection-lost"
            : err.fatal === true
              ? "connection-lost"
              : "unexpected"
  return new MysqlError({ action, target, kind, code, errno: serverErrno, sqlState, reason })
}

const timeoutError = (action: string, target: string, what: string, ms: number) =>
  new MysqlError({
    action,
    target,
    kind: "timeout",
    code: "ETIMEDOUT",
    errno: null,
    sqlState: null,
    reason: `${what} did not finish within ${ms} ms`,
  })

// ---------------------------------------------------------------------------
// Connections

/** The longest delay a Node timer takes (a longer one fires after 1 ms). */
const MAX_TIMER_MS = 2_147_483_647

/** A row of a result set, as mysql2 returns it. */
export type Row = Record<string, unknown>

type RawConnection = mysql.Connection

/** Kills the socket now (mysql2's own destroy() only ends it gracefully). */
const destroyNow = (conn: RawConnection): void => {
  try {
    conn.destroy()
  } catch {
    // already closed
  }
  const stream = (conn as unknown as { stream?: { destroy?: () => void } }).stream
  try {
    stream?.destroy?.()
  } catch {
    // already closed
  }
}

/** One open connection; broken (and unusable) after any failure or timeout. */
export interface MysqlSession {
  readonly target: string
  /** The server-side connection id (for KILL, and to skip ourselves). */
  readonly threadId: number
  readonly isBroken: () => boolean
  /** Runs one statement, bounded by `timeoutMs` (default: the query timeout). */
  readonly query: (
    action: string,
    sql: string,
    params?: ReadonlyArray<unknown>,
    timeoutMs?: number,
  ) => Effect.Effect<Array<Row>, MysqlError>
  /**
   * Runs several constant statements in one round trip (a session opened with
   * `multipleStatements`), bounded together by `timeoutMs`: one result per statement.
   */
  readonly queryBatch: (
    action: string,
    sqls: ReadonlyArray<string>,
    timeoutMs?: number,
  ) => Effect.Effect<Array<Array<Row>>, MysqlError>
  /** Ends the connection: gracefully when healthy, at once when broken. */
  readonly close: Effect.Effect<void>
  /** Destroys the socket at once. */
  readonly destroy: () => void
}

type AuthPluginFactory = (options: { serverPublicKey?: string }) => unknown
const authPlugins = (mysql as unknown as { authPlugins: Record<string, AuthPluginFactory> })
  .authPlugins

/** Per-session options: statements batched into one round trip (constant SQL only, never user input). */
export interface SessionOptions {
  readonly multipleStatements?: boolean
}

export const connectionOptions = (
  endpoint: MysqlEndpoint,
  settings: MysqlClientSettings,
  session: SessionOptions = {},
): mysql.ConnectionOptions => {
  const base: mysql.ConnectionOptions = {
    user: settings.user,
    password: Redacted.value(settings.password),
    connectTimeout: settings.connectTimeoutMs,
    multipleStatements: session.multipleStatements === true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    charset: "utf8mb4",
    // mysql2 gives every connection an LRU cache for prepared statements
    // (about 512 KB, allocated at connect); the agent prepares none. With
    // the default size, each fresh connection was garbage that grew V8's
    // young generation by tens of MB (issue 12).
    maxPreparedStatements: 1,
  }
  const where = "socketPath" in endpoint ? { socketPath: endpoint.socketPath } : endpoint
  const ssl =
    settings.tls === undefined
      ? {}
      : {
          ssl: {
            ...(settings.tls.ca === undefined ? {} : { ca: settings.tls.ca }),
            ...(settings.tls.cert === undefined ? {} : { cert: settings.tls.cert }),
            ...(settings.tls.key === undefined ? {} : { key: settings.tls.key }),
            rejectUnauthorized: settings.tls.ca !== undefined,
            // The name is checked by openSession (checkNameOnTls), not by
            // mysql2: for a host given as an IP address, mysql2 3.x has Node
            // check the certificate against "localhost" (seen on the lab).
            verifyIdentity: false,
          },
        }
  const pinned =
    settings.serverPublicKey === undefined || authPlugins?.caching_sha2_password === undefined
      ? {}
      : {
          authPlugins: {
            caching_sha2_password: authPlugins.caching_sha2_password({
              serverPublicKey: settings.serverPublicKey,
            }) as NonNullable<mysql.ConnectionOptions["authPlugins"]>[string],
          },
        }
  return { ...base, ...where, ...ssl, ...pinned }
}

/**
 * Has the TLS upgrade of `conn` fail unless the server's certificate names
 * `host` (Node's rules: a SAN IP entry for an address, a SAN DNS entry for a
 * name), checked once the handshake is done and before any credential is
 * sent. mysql2's own `verifyIdentity` cannot do it for an IP address: on the
 * socket it upgrades, Node has no host name and checks "localhost".
 */
const checkNameOnTls = (conn: RawConnection, host: string): void => {
  const c = conn as unknown as {
    startTLS?: (onSecure: (err?: Error) => void) => void
    stream?: Partial<TLSSocket>
  }
  const startTLS = c.startTLS
  // Never a silent downgrade: a mysql2 without this method cannot have the name checked.
  if (typeof startTLS !== "function")
    throw new Error("this mysql2 has no startTLS: the server's name cannot be checked")
  c.startTLS = function (this: unknown, onSecure: (err?: Error) => void) {
    startTLS.call(this, (err?: Error) => {
      if (err) return onSecure(err)
      const peer = c.stream?.getPeerCertificate?.(false)
      onSecure(
        peer === undefined || Object.keys(peer).length === 0
          ? new Error(`the server at ${host} sent no certificate`)
          : checkServerIdentity(host, peer),
      )
    })
  }
}

/**
 * Opens a connection, bounded by `connectTimeoutMs` (TCP, handshake and
 * authentication). On timeout or interruption the socket is destroyed.
 */
export const openSession = (
  action: string,
  endpoint: MysqlEndpoint,
  settings: MysqlClientSettings,
  options: SessionOptions = {},
): Effect.Effect<MysqlSession, MysqlError> => {
  const target = describeEndpoint(endpoint)
  return Effect.suspend(() => {
    let conn: RawConnection
    try {
      conn = mysql.createConnection(connectionOptions(endpoint, settings, options))
    } catch (e) {
      return Effect.fail(toMysqlError(action, target, "connect", e))
    }
    if (settings.tls?.ca !== undefined && settings.tls.verifyIdentity && "host" in endpoint) {
      try {
        checkNameOnTls(conn, endpoint.host)
      } catch (e) {
        conn.on("error", () => {})
        destroyNow(conn)
        return Effect.fail(toMysqlError(action, target, "connect", e))
      }
    }
    let broken = false
    // An error with no command waiting (the server closed an idle
    // connection) is emitted on the connection; without a listener it would
    // crash the process.
    conn.on("error", () => {
      broken = true
    })
    conn.on("end", () => {
      broken = true
    })
    const markBroken = () => {
      broken = true
      destroyNow(conn)
    }
    /** One round trip: the statement's result as mysql2 gives it, bounded by `timeoutMs`. */
    const run = (
      queryAction: string,
      sql: string,
      params: ReadonlyArray<unknown> | undefined,
      timeoutMs: number | undefined,
    ): Effect.Effect<unknown, MysqlError> => {
      const ms = timeoutMs ?? settings.queryTimeoutMs
      const lost = () =>
        Effect.fail(
          new MysqlError({
            action: queryAction,
            target,
            kind: "connection-lost",
            code: "CONNECTION_BROKEN",
            errno: null,
            sqlState: null,
            reason: "the connection broke earlier and cannot be reused",
          }),
        )
      // The timeout is a plain timer here rather than Effect.timeoutOrElse, which
      // races two fibers per statement: the probes run two to four statements a
      // second at rest (issue 12). The same outcome: at the timeout the socket is
      // destroyed and the statement fails with kind "timeout"; an interruption
      // destroys it too. A bound beyond what a Node timer takes (Infinity: a
      // fence left pending) sets no timer.
      return Effect.callback<unknown, MysqlError>((resume) => {
        if (broken) {
          resume(lost())
          return
        }
        let settled = false
        const timer =
          ms <= MAX_TIMER_MS
            ? setTimeout(
                () => {
                  if (settled) return
                  settled = true
                  markBroken()
                  resume(Effect.fail(timeoutError(queryAction, target, "the query", ms)))
                },
                Math.max(0, ms),
              )
            : undefined
        conn.query(
          { sql, values: params === undefined ? undefined : [...params] },
          (err: unknown, rows: unknown) => {
            if (settled) return
            settled = true
            clearTimeout(timer)
            if (err) {
              const e = toMysqlError(queryAction, target, "query", err)
              if (e.kind !== "server") markBroken()
              resume(Effect.fail(e))
            } else {
              resume(Effect.succeed(rows))
            }
          },
        )
        return Effect.sync(() => {
          settled = true
          clearTimeout(timer)
          markBroken()
        })
      })
    }
    const session: MysqlSession = {
      target,
      get threadId() {
        return conn.threadId
      },
      isBroken: () => broken,
      query: (queryAction, sql, params, timeoutMs) =>
        run(queryAction, sql, params, timeoutMs).pipe(
          Effect.map((rows) => (Array.isArray(rows) ? (rows as Array<Row>) : [])),
        ),
      queryBatch: (queryAction, sqls, timeoutMs) =>
        run(queryAction, sqls.join(";\n"), undefined, timeoutMs).pipe(
          Effect.flatMap((results) => {
            // One statement gives its rows; several give one result per statement.
            const all = sqls.length === 1 ? [results] : results
            return Array.isArray(all) &&
              all.length === sqls.length &&
              all.every((r) => Array.isArray(r))
              ? Effect.succeed(all as Array<Array<Row>>)
              : Effect.fail(
                  new MysqlError({
                    action: queryAction,
                    target,
                    kind: "unexpected",
                    code: null,
                    errno: null,
                    sqlState: null,
                    reason: `a batch of ${sqls.length} statements did not return ${sqls.length} row sets`,
                  }),
                )
          }),
        ),
      close: Effect.callback<void>((resume) => {
        if (broken) {
          destroyNow(conn)
          resume(Effect.void)
          return
        }
        broken = true
        conn.end(() => resume(Effect.void))
        return Effect.sync(() => destroyNow(conn))
      }).pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(settings.queryTimeoutMs),
          orElse: () => Effect.sync(() => destroyNow(conn)),
        }),
      ),
      destroy: markBroken,
    }
    return Effect.callback<MysqlSession, MysqlError>((resume) => {
      conn.connect((err: unknown) => {
        if (err) {
          markBroken()
          resume(Effect.fail(toMysqlError(action, target, "connect", err)))
        } else resume(Effect.succeed(session))
      })
      return Effect.sync(markBroken)
    }).pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(settings.connectTimeoutMs),
        orElse: () =>
          Effect.fail(
            new MysqlError({
              action,
              target,
              kind: "timeout",
              code: "ETIMEDOUT",
              errno: null,
              sqlState: null,
              reason: `connect and login did not finish within ${settings.connectTimeoutMs} ms`,
            }),
          ),
      }),
    )
  })
}

/**
 * Opens a connection, runs `use`, and closes it: gracefully after success,
 * at once after a failure, a timeout or an interruption.
 */
export const withSession = <A, E, R>(
  action: string,
  endpoint: MysqlEndpoint,
  settings: MysqlClientSettings,
  use: (session: MysqlSession) => Effect.Effect<A, E, R>,
): Effect.Effect<A, E | MysqlError, R> =>
  Effect.acquireUseRelease(openSession(action, endpoint, settings), use, (session, exit) =>
    exit._tag === "Success" ? session.close : Effect.sync(session.destroy),
  )

// ---------------------------------------------------------------------------
// Reading result rows

export const str = (row: Row | undefined, key: string): string => {
  const v = row?.[key]
  if (v === null || v === undefined) return ""
  return typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("utf8") : String(v)
}

export const num = (row: Row | undefined, key: string): number | null => {
  const v = row?.[key]
  if (v === null || v === undefined || v === "") return null
  const n = Number(v)
  return Number.isFinite(n) ? n : null
}

export const bool = (row: Row | undefined, key: string): boolean => {
  const v = row?.[key]
  if (typeof v === "string") return v === "1" || v.toUpperCase() === "ON" || v === "Yes"
  return v === 1 || v === true || v === 1n
}

/** `SHOW VARIABLES` / `SHOW STATUS` rows as a map. */
export const nameValueMap = (rows: ReadonlyArray<Row>): Map<string, string> =>
  new Map(rows.map((r) => [str(r, "Variable_name").toLowerCase(), str(r, "Value")]))

// ---------------------------------------------------------------------------
// From the config file

/** A file named by the config could not be read. */
export class MysqlSettingsError extends Schema.TaggedError<MysqlSettingsError>()(
  "MysqlSettingsError",
  { path: Schema.String, key: Schema.String, reason: Schema.String },
) {
  override get message(): string {
    return `cannot read ${this.key} (${this.path}): ${this.reason}`
  }
}

const readText = (key: string, path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (e) =>
      new MysqlSettingsError({ path, key, reason: e instanceof Error ? e.message : String(e) }),
  })

/**
 * Builds client settings for one of the config's MySQL users (`monitor`: the
 * agent's own probes and actions; `replication`: what replicas log in with):
 * reads its `password_file` (one line; a trailing newline is dropped) and the
 * TLS files, if any.
 */
export const readMysqlSettings = Effect.fn("MysqlSettings.read")(function* (
  config: Config,
  which: "monitor" | "replication" = "monitor",
): Effect.fn.Return<MysqlClientSettings, MysqlSettingsError> {
  const user = config.mysql[which]
  const password = (yield* readText(`mysql.${which}.password_file`, user.password_file)).replace(
    /\r?\n$/,
    "",
  )
  const tlsConf = config.mysql.tls
  let tls: MysqlTlsPem | undefined
  if (tlsConf !== undefined) {
    const t: { ca?: string; cert?: string; key?: string; verifyIdentity?: boolean } = {
      verifyIdentity: tlsConf.verify_identity,
    }
    if (tlsConf.ca !== undefined) t.ca = yield* readText("mysql.tls.ca", tlsConf.ca)
    if (tlsConf.cert !== undefined) t.cert = yield* readText("mysql.tls.cert", tlsConf.cert)
    if (tlsConf.key !== undefined) t.key = yield* readText("mysql.tls.key", tlsConf.key)
    tls = t
  }
  return {
    user: user.user,
    password: Redacted.make(password, { label: `mysql.${which}.password` }),
    connectTimeoutMs: config.mysql.connect_timeout,
    queryTimeoutMs: config.mysql.query_timeout,
    ...(tls === undefined ? {} : { tls }),
  }
})

/** The endpoint of a member's mysqld as the config names it. */
export const memberEndpoint = (config: Config, name: string): MysqlEndpoint | undefined => {
  const m = config.cluster.members.find((x) => x.name === name)
  return m === undefined || m.kind === "witness"
    ? undefined
    : { host: m.address, port: m.mysql_port }
}
