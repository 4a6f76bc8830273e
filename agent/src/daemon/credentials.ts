/**
 * The MySQL password files on reload (issue 17): both are read again, and a
 * changed password counts as a change of the config (it is named, never
 * shown). The monitor password applies to every connection the agent opens
 * afterwards (its own probes and actions); before it is taken, it must log
 * in to the local mysqld, so that a wrong file is refused rather than making
 * every probe fail (mysqld would look down). The replication password is read
 * again by every CHANGE REPLICATION SOURCE; the core re-applies it to the
 * replica's channel (core/credentials.ts).
 */
import { Effect, Redacted } from "effect"
import type { Config } from "../../../shared/config.ts"
import {
  ER,
  type MysqlClientSettings,
  type MysqlEndpoint,
  MysqlError,
  readMysqlSettings,
  withSession,
} from "../adapters/mysql-connection.ts"

export type SecretName = "monitor" | "replication"

export interface Secrets {
  readonly monitor: MysqlClientSettings
  readonly replication: MysqlClientSettings
}

/** Reads both password files (and the TLS files) of a config. */
export const readSecrets = (config: Config) =>
  Effect.all({
    monitor: readMysqlSettings(config, "monitor"),
    replication: readMysqlSettings(config, "replication"),
  })

/** The accounts whose password differs between two reads. */
export const changedSecrets = (before: Secrets, after: Secrets): ReadonlyArray<SecretName> =>
  (["monitor", "replication"] as const).filter(
    (which) => Redacted.value(before[which].password) !== Redacted.value(after[which].password),
  )

/** The reload plan's line for a changed password (the password itself is never printed). */
export const describeSecretChange = (which: SecretName): string =>
  `  mysql.${which}.password_file: the password changed (not shown)`

/**
 * Client settings whose password can be replaced while connections are made
 * with them: each new connection reads the current one (openSession reads
 * `password` when it logs in), kept connections stay as they logged in.
 */
export const rotatingPassword = (initial: MysqlClientSettings) => {
  let password = initial.password
  const settings: MysqlClientSettings = {
    ...initial,
    get password() {
      return password
    },
  }
  return {
    settings,
    replace: (next: Redacted.Redacted<string>) => {
      password = next
    },
  }
}

/**
 * Whether the new monitor password logs in to the local mysqld: a refusal
 * message when mysqld denies it (1045), null otherwise (also when mysqld
 * does not answer: that says nothing about the password).
 */
export const monitorLoginRefusal = (
  local: MysqlEndpoint,
  settings: MysqlClientSettings,
): Effect.Effect<string | null> =>
  withSession("reload-login", local, settings, (s) => s.query("reload-login", "SELECT 1")).pipe(
    Effect.as(null),
    Effect.catch((e: MysqlError) =>
      Effect.succeed(
        e instanceof MysqlError && e.errno === ER.ACCESS_DENIED
          ? `the new password in mysql.monitor.password_file does not log in to the local mysqld as ${settings.user} (${e.reason}): set it in MySQL first (ALTER USER ... RETAIN CURRENT PASSWORD)`
          : null,
      ),
    ),
  )
