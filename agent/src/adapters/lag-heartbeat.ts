/**
 * The heartbeat table's writer (`lag.source: heartbeat_table`): the core
 * decides when (core/lag-heartbeat.ts: once a second while ACTIVE and
 * writable); this only runs the SQL, on a connection of its own, in the
 * background.
 *
 * - One write at a time: a request that comes while the previous write still
 *   runs (a commit waiting for a semi-sync acknowledgement) is skipped, so
 *   the writer never piles up waiting commits, nor holds up a probe or the
 *   decision loop (`write` returns at once).
 * - The schema and table are created (IF NOT EXISTS, which replicates) once
 *   per connection; a row per member that was ever primary, updated in place.
 * - Failures are logged once until the next success (not once a second),
 *   and the next attempt waits `RETRY_AFTER_FAILURE_MS` (no login a second
 *   on a primary that refuses the write, a grant missing).
 *
 * Privileges: CREATE, INSERT, UPDATE on the heartbeat schema (and SELECT on
 * the replicas, to read it).
 */
import { Effect } from "effect"
import type pino from "pino"
import {
  type MysqlClientSettings,
  type MysqlEndpoint,
  MysqlError,
  type MysqlSession,
  openSession,
} from "./mysql-connection.ts"
import { quoteTable } from "./mysql-prober.ts"

export interface LagHeartbeatWriterOptions {
  readonly endpoint: MysqlEndpoint
  readonly settings: MysqlClientSettings
  /** `schema.table`, as configured now. */
  readonly table: () => string
  /** This member's name: the row's key. */
  readonly member: string
  readonly log: pino.Logger
}

export interface LagHeartbeatWriter {
  /** Writes this primary's row for `term` in the background; skipped while one runs. */
  readonly write: (term: number) => void
  readonly close: () => void
}

/** The statements that create the schema and table (both replicate). */
export const createHeartbeatSql = (table: string): ReadonlyArray<string> => {
  const quoted = quoteTable(table)
  const schema = quoted.slice(0, quoted.indexOf("."))
  return [
    `CREATE DATABASE IF NOT EXISTS ${schema}`,
    `CREATE TABLE IF NOT EXISTS ${quoted} (
  \`member\` VARCHAR(64) NOT NULL PRIMARY KEY,
  \`term\` BIGINT UNSIGNED NOT NULL,
  \`server_id\` INT UNSIGNED NOT NULL,
  \`ts\` DATETIME(6) NOT NULL
)`,
  ]
}

/** One row per primary, its timestamp from the primary's mysqld (UTC, microseconds). */
export const writeHeartbeatSql = (table: string): string =>
  `INSERT INTO ${quoteTable(table)} (\`member\`, \`term\`, \`server_id\`, \`ts\`)
 VALUES (?, ?, @@server_id, UTC_TIMESTAMP(6)) AS hb
 ON DUPLICATE KEY UPDATE \`term\` = hb.\`term\`, \`server_id\` = hb.\`server_id\`, \`ts\` = hb.\`ts\``

/** After a failed write, requests are skipped this long. */
export const RETRY_AFTER_FAILURE_MS = 5_000

export const makeLagHeartbeatWriter = (o: LagHeartbeatWriterOptions): LagHeartbeatWriter => {
  let busy = false
  let retryAt = 0
  let closed = false
  let session: MysqlSession | undefined
  /** The table created on this session. */
  let created: string | undefined
  /** The failure last logged, until a write succeeds. */
  let failing: string | null = null

  const attempt = (term: number) =>
    Effect.gen(function* () {
      if (session === undefined || session.isBroken()) {
        session?.destroy()
        session = undefined
        created = undefined
        session = yield* openSession("lag-heartbeat", o.endpoint, o.settings)
      }
      const s = session
      const table = o.table()
      if (created !== table) {
        for (const sql of createHeartbeatSql(table)) yield* s.query("lag-heartbeat", sql)
        created = table
      }
      yield* s.query("lag-heartbeat", writeHeartbeatSql(table), [o.member, term])
    })

  const write = (term: number): void => {
    if (busy || closed || performance.now() < retryAt) return
    busy = true
    Effect.runPromise(Effect.result(attempt(term))).then(
      (r) => {
        busy = false
        if (r._tag === "Success") {
          if (failing !== null)
            o.log.info({ event: "lag-heartbeat-resumed" }, "heartbeat rows written again")
          failing = null
          return
        }
        // A failed statement may leave the connection in any state: the next write starts afresh.
        session?.destroy()
        session = undefined
        retryAt = performance.now() + RETRY_AFTER_FAILURE_MS
        const e = r.failure
        const why = e instanceof MysqlError ? `${e.target}: ${e.reason}` : String(e)
        if (failing === null)
          o.log.warn(
            { event: "lag-heartbeat-failed" },
            `cannot write the heartbeat row (logged once until it works again): ${why}`,
          )
        failing = why
      },
      (e: unknown) => {
        busy = false
        o.log.warn({ event: "lag-heartbeat-failed" }, `heartbeat write: ${String(e)}`)
      },
    )
  }

  return {
    write,
    close: () => {
      closed = true
      session?.destroy()
      session = undefined
    },
  }
}
