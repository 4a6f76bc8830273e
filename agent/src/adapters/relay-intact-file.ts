/**
 * The relay-intact file beside the hard state (core/relay-intact.ts): which
 * mysqld process holds everything it received, so that an agent that starts
 * and finds it still running needs no resync. It is separate from the hard
 * state, whose form must stay readable by the previous release.
 *
 * Nothing in it is a promise to a peer: a lost or stale file only costs the
 * next start a resync (a stale one names an older process, never the one
 * running), so it is written by rename without fsync, in the background,
 * and a file that cannot be read counts as none (said in the log).
 */
import { readFileSync } from "node:fs"
import { rename, writeFile } from "node:fs/promises"
import { join } from "node:path"
import type pino from "pino"
import type { MysqldStart } from "../core/types.ts"

export const RELAY_INTACT_FILE = "relay-intact.json"

const parse = (text: string): MysqldStart | null => {
  const v: unknown = JSON.parse(text)
  if (typeof v !== "object" || v === null) return null
  const { boot, sinceBootSeconds } = v as Record<string, unknown>
  return typeof boot === "string" && boot !== "" && typeof sinceBootSeconds === "number"
    ? { boot, sinceBootSeconds }
    : null
}

/** The process recorded in `stateDir`, or null: none yet, or unreadable (logged). */
export const loadRelayIntact = (stateDir: string, log: pino.Logger): MysqldStart | null => {
  const path = join(stateDir, RELAY_INTACT_FILE)
  try {
    const started = parse(readFileSync(path, "utf8"))
    if (started === null)
      log.warn(
        { event: "relay-intact-unreadable" },
        `${path}: not a recorded mysqld start; ignored`,
      )
    return started
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      log.warn({ event: "relay-intact-unreadable" }, `${path}: ${String(e)}; ignored`)
    return null
  }
}

/** Writes each recorded process in the background, one write at a time, the newest last. */
export const makeRelayIntactRecorder = (stateDir: string, log: pino.Logger) => {
  const path = join(stateDir, RELAY_INTACT_FILE)
  let chain: Promise<void> = Promise.resolve()
  return {
    record: (started: MysqldStart): void => {
      const text = `${JSON.stringify(started)}\n`
      chain = chain
        .then(async () => {
          const temp = `${path}.tmp`
          await writeFile(temp, text, { mode: 0o600 })
          await rename(temp, path)
        })
        .catch((e: unknown) =>
          log.warn(
            { event: "relay-intact-write-failed" },
            `${path}: ${String(e)} (the next agent start resyncs its relay log)`,
          ),
        )
    },
  }
}
