// The agent's log: one JSON line per event on stdout (pino), with `cluster`,
// `node`, `term` and `event` fields. Under systemd each line starts with its
// syslog priority (`<4>` warn, `<3>` error, ...) so journald records the
// right PRIORITY. Passwords never appear: every line is scrubbed on its way out.
import { Logger, type LogLevel, References } from "effect"
import pino from "pino"

export type AgentLogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal"

export interface LogSettings {
  readonly level: AgentLogLevel
  /** Prefix lines with syslog priorities (journald). Default: when started by systemd. */
  readonly journald: boolean
  readonly cluster: string
  readonly node: string
}

/** systemd sets JOURNAL_STREAM when stdout goes to the journal. */
export const underJournald = (env: NodeJS.ProcessEnv = process.env): boolean =>
  env.JOURNAL_STREAM !== undefined && env.JOURNAL_STREAM !== ""

/** pino's numeric level to a syslog priority (RFC 5424). */
export const syslogPriority = (pinoLevel: number): number =>
  pinoLevel >= 60 ? 2 : pinoLevel >= 50 ? 3 : pinoLevel >= 40 ? 4 : pinoLevel >= 30 ? 6 : 7

// What a password looks like in SQL and in JSON: `IDENTIFIED BY '...'`,
// `SOURCE_PASSWORD = '...'`, `"password":"..."`, `password=...`.
const SECRETS: ReadonlyArray<readonly [RegExp, string]> = [
  [/(IDENTIFIED\s+(?:WITH\s+\S+\s+)?BY\s+)'(?:[^'\\]|\\.)*'/gi, "$1'[redacted]'"],
  [/(PASSWORD\s*=\s*)'(?:[^'\\]|\\.)*'/gi, "$1'[redacted]'"],
  [/(\\?"[a-z_]*password\\?"\s*:\s*)\\?"(?:[^"\\]|\\.)*?\\?"/gi, '$1"[redacted]"'],
  [/(password=)[^\s&",]+/gi, "$1[redacted]"],
]

export const scrubSecrets = (line: string): string =>
  SECRETS.reduce((text, [pattern, replacement]) => text.replace(pattern, replacement), line)

export const makeLogger = (
  settings: LogSettings,
  destination: { write(line: string): unknown } = process.stdout,
): pino.Logger =>
  pino(
    {
      level: settings.level,
      base: { cluster: settings.cluster, node: settings.node },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: {
        streamWrite: (line) => {
          const clean = scrubSecrets(line)
          if (!settings.journald) return clean
          const level = Number(/^\{"level":(\d+)/.exec(clean)?.[1] ?? 30)
          return `<${syslogPriority(level)}>${clean}`
        },
      },
    },
    destination,
  )

const pinoMethod = (
  level: LogLevel.LogLevel,
): "debug" | "info" | "warn" | "error" | "fatal" | undefined => {
  switch (level) {
    case "All":
    case "Trace":
    case "Debug":
      return "debug"
    case "Info":
      return "info"
    case "Warn":
      return "warn"
    case "Error":
      return "error"
    case "Fatal":
      return "fatal"
    case "None":
      return undefined
  }
}

/** Effect's log calls (Effect.logWarning ...) go to the same pino logger, with their annotations. */
export const effectLoggerLayer = (logger: pino.Logger) =>
  Logger.layer([
    Logger.make((options) => {
      const method = pinoMethod(options.logLevel)
      if (!method) return
      const parts = Array.isArray(options.message) ? options.message : [options.message]
      const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
      logger[method](
        { ...annotations },
        parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" "),
      )
    }),
  ])
