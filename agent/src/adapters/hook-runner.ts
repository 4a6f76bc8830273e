/**
 * Runs the operator's hooks (operations.md, "Hooks").
 *
 * - Each run gets `MHA_CLUSTER`, `MHA_EVENT` (the hook name), `MHA_NODE`,
 *   `MHA_OLD_PRIMARY`, `MHA_NEW_PRIMARY`, `MHA_TERM` and `MHA_REASON` (empty
 *   when not applicable) on top of the agent's environment, and the event's
 *   extra `MHA_*` variables (`MHA_LAG_SECONDS`, `MHA_OLD_ROLE`, `MHA_NEW_ROLE`).
 * - Each run is bounded by `hooks.timeout`: the hook runs in a process group
 *   of its own, which gets SIGTERM and then SIGKILL when the time is up.
 * - A path is refused (and not run) when it is not absolute, is a symlink, is
 *   not a regular file, is not executable, is writable by group or others, is
 *   owned by someone other than root or the agent, or sits in a directory
 *   that someone else could write to (no sticky bit).
 * - Blocking hooks (`pre_failover`, `pre_switchover`) run at once and return
 *   their result; a non-zero exit aborts the action (the caller decides, see
 *   {@link hookAllows}).
 * - Non-blocking hooks are queued and run one at a time, in order, by a
 *   background fiber; the caller never waits. When `hooks.queue_size` runs
 *   are pending, the oldest pending one is dropped and counted.
 *
 * Settings are read through an effect at each use, so a SIGHUP that changes
 * hook paths, the timeout or the queue size applies at once.
 */
import { constants } from "node:fs"
import { access, lstat, stat } from "node:fs/promises"
import { dirname, isAbsolute } from "node:path"
import { Context, Effect, Layer, Queue } from "effect"
import type { Config, HookName } from "../../../shared/config.ts"
import { describeRun, type ProcessRunResult, runInProcessGroup } from "./process-group.ts"

export type BlockingHookName = "pre_failover" | "pre_switchover"
export type NonBlockingHookName = Exclude<HookName, BlockingHookName>

/** What a hook is told about the event that triggers it. */
export interface HookEvent<H extends HookName = HookName> {
  readonly hook: H
  readonly oldPrimary?: string | undefined
  readonly newPrimary?: string | undefined
  readonly term?: number | bigint | undefined
  readonly reason?: string | undefined
  /**
   * Further `MHA_*` variables of this event (`MHA_LAG_SECONDS` for the lag
   * hooks, `MHA_OLD_ROLE` and `MHA_NEW_ROLE` for on_role_change). Names that
   * do not start with `MHA_`, or that the fields above set, are ignored.
   */
  readonly extra?: Readonly<Record<string, string>> | undefined
}

/** What the hook runner needs from the config (read again at each use). */
export interface HookSettings {
  readonly cluster: string
  readonly node: string
  readonly hooks: Config["hooks"]
  /** SIGTERM to SIGKILL grace on timeout (default 1000 ms). */
  readonly killGraceMs?: number
}

export const hookSettingsFromConfig = (config: Config): HookSettings => ({
  cluster: config.cluster.name,
  node: config.node,
  hooks: config.hooks,
})

export type HookRunResult =
  | { readonly _tag: "NotConfigured"; readonly hook: HookName }
  | {
      readonly _tag: "Refused"
      readonly hook: HookName
      readonly path: string
      readonly reason: string
    }
  | {
      readonly _tag: "Ran"
      readonly hook: HookName
      readonly path: string
      readonly run: ProcessRunResult
    }

/** Whether a blocking hook's result lets the action go ahead: not configured, or exited 0. */
export const hookAllows = (r: HookRunResult): boolean =>
  r._tag === "NotConfigured" || (r._tag === "Ran" && r.run._tag === "Exited" && r.run.code === 0)

/** One line for logs: `hook pre_failover (/path) exited with code 1 after 12 ms`. */
export const describeHookRun = (r: HookRunResult): string => {
  switch (r._tag) {
    case "NotConfigured":
      return `hook ${r.hook} is not configured`
    case "Refused":
      return `hook ${r.hook} (${r.path}) refused: ${r.reason}`
    case "Ran":
      return `hook ${r.hook} (${r.path}) ${describeRun(r.run)}`
  }
}

export interface HookStats {
  /** Non-blocking runs waiting in the queue (not counting the one running). */
  readonly pending: number
  /** Non-blocking runs dropped because the queue was full. */
  readonly dropped: number
  /** Finished runs by result: succeeded, failed, timed_out, refused, spawn_failed. */
  readonly runs: Readonly<Record<HookResultLabel, number>>
}

export type HookResultLabel = "succeeded" | "failed" | "timed_out" | "refused" | "spawn_failed"

export const hookResultLabel = (r: HookRunResult): HookResultLabel | undefined => {
  switch (r._tag) {
    case "NotConfigured":
      return undefined
    case "Refused":
      return "refused"
    case "Ran":
      switch (r.run._tag) {
        case "Exited":
          return r.run.code === 0 ? "succeeded" : "failed"
        case "Signaled":
          return "failed"
        case "TimedOut":
          return "timed_out"
        case "SpawnFailed":
          return "spawn_failed"
      }
  }
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`

/**
 * Why `path` must not be run as a hook, or `undefined` when it is safe.
 * Checked before every run (the file may have changed since the last one).
 */
export const inspectHookPath = (path: string): Effect.Effect<string | undefined> =>
  Effect.promise(async () => {
    if (!isAbsolute(path)) return "the path is not absolute"
    const uid = process.getuid?.() ?? 0
    const trusted = (owner: number) => owner === 0 || owner === uid
    let st: Awaited<ReturnType<typeof lstat>>
    try {
      st = await lstat(path)
    } catch (e) {
      return `cannot inspect it: ${(e as Error).message}`
    }
    if (st.isSymbolicLink()) return "it is a symlink; give the real path"
    if (!st.isFile()) return "it is not a regular file"
    if ((st.mode & 0o022) !== 0) {
      return `it is writable by ${(st.mode & 0o020) !== 0 ? "its group" : "others"} (mode ${octal(st.mode)})`
    }
    if (!trusted(st.uid))
      return `it is owned by uid ${st.uid}, not by root or the agent (uid ${uid})`
    if ((st.mode & 0o111) === 0) return `it is not executable (mode ${octal(st.mode)})`
    try {
      await access(path, constants.X_OK)
    } catch {
      return "the agent may not execute it"
    }
    for (let dir = dirname(path); ; dir = dirname(dir)) {
      let d: Awaited<ReturnType<typeof stat>>
      try {
        d = await stat(dir)
      } catch (e) {
        return `cannot inspect its directory ${dir}: ${(e as Error).message}`
      }
      const sticky = (d.mode & 0o1000) !== 0
      if ((d.mode & 0o022) !== 0 && !sticky) {
        return `its directory ${dir} is writable by group or others (mode ${octal(d.mode)})`
      }
      if (!trusted(d.uid)) {
        return `its directory ${dir} is owned by uid ${d.uid}, not by root or the agent`
      }
      if (dir === dirname(dir)) break
    }
    return undefined
  })

const STANDARD_VARIABLES = new Set([
  "MHA_CLUSTER",
  "MHA_EVENT",
  "MHA_NODE",
  "MHA_OLD_PRIMARY",
  "MHA_NEW_PRIMARY",
  "MHA_TERM",
  "MHA_REASON",
])

/** The environment of a hook run: the agent's own without MHA_*, plus the event. */
export const hookEnvironment = (
  settings: Pick<HookSettings, "cluster" | "node">,
  event: HookEvent,
): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("MHA_")) env[k] = v
  }
  env.MHA_CLUSTER = settings.cluster
  env.MHA_EVENT = event.hook
  env.MHA_NODE = settings.node
  env.MHA_OLD_PRIMARY = event.oldPrimary ?? ""
  env.MHA_NEW_PRIMARY = event.newPrimary ?? ""
  env.MHA_TERM = event.term === undefined ? "" : String(event.term)
  env.MHA_REASON = event.reason ?? ""
  for (const [k, v] of Object.entries(event.extra ?? {})) {
    if (k.startsWith("MHA_") && !STANDARD_VARIABLES.has(k)) env[k] = v
  }
  return env
}

/** Runs one hook now (inspection, then the run), whatever its kind. */
export const runHookNow = Effect.fn("HookRunner.run")(function* (
  settings: HookSettings,
  event: HookEvent,
): Effect.fn.Return<HookRunResult> {
  const path = settings.hooks[event.hook]
  if (path === undefined) return { _tag: "NotConfigured", hook: event.hook }
  const problem = yield* inspectHookPath(path)
  if (problem !== undefined) return { _tag: "Refused", hook: event.hook, path, reason: problem }
  const run = yield* runInProcessGroup({
    file: path,
    env: hookEnvironment(settings, event),
    timeoutMs: settings.hooks.timeout,
    ...(settings.killGraceMs === undefined ? {} : { killGraceMs: settings.killGraceMs }),
  })
  return { _tag: "Ran", hook: event.hook, path, run }
})

export interface HookRunnerService {
  /** Runs a blocking hook now and returns its result (see {@link hookAllows}). */
  readonly runBlocking: (event: HookEvent<BlockingHookName>) => Effect.Effect<HookRunResult>
  /** Queues a non-blocking hook; returns at once. */
  readonly enqueue: (event: HookEvent<NonBlockingHookName>) => Effect.Effect<void>
  readonly stats: Effect.Effect<HookStats>
  /** Inspects every configured hook path: the refused ones with the reason. */
  readonly check: Effect.Effect<
    ReadonlyArray<{ readonly hook: HookName; readonly path: string; readonly problem: string }>
  >
}

interface Job {
  readonly event: HookEvent<NonBlockingHookName>
}

export class HookRunner extends Context.Service<HookRunner, HookRunnerService>()(
  "mha-agent/adapters/HookRunner",
) {
  /**
   * The hook runner with its background worker (interrupted, with its running
   * hook's process group killed, when the layer's scope closes).
   */
  static readonly layer = (settings: Effect.Effect<HookSettings>): Layer.Layer<HookRunner> =>
    Layer.effect(
      HookRunner,
      Effect.gen(function* () {
        const queue = yield* Queue.unbounded<Job>()
        let dropped = 0
        const runs: Record<HookResultLabel, number> = {
          succeeded: 0,
          failed: 0,
          timed_out: 0,
          refused: 0,
          spawn_failed: 0,
        }

        const runCounted = (event: HookEvent) =>
          Effect.gen(function* () {
            const s = yield* settings
            const result = yield* runHookNow(s, event)
            const label = hookResultLabel(result)
            if (label !== undefined) runs[label] += 1
            if (label !== undefined && label !== "succeeded") {
              const tail = result._tag === "Ran" ? result.run.stderrTail : ""
              yield* Effect.logWarning(describeHookRun(result)).pipe(
                Effect.annotateLogs({ event: "hook-failed", hook: event.hook, stderr: tail }),
              )
            }
            return result
          })

        yield* Queue.take(queue).pipe(
          Effect.flatMap((job) =>
            runCounted(job.event).pipe(
              Effect.catchCause((cause) =>
                Effect.logError(`hook ${job.event.hook} crashed the runner`, cause),
              ),
            ),
          ),
          Effect.forever,
          Effect.forkScoped,
        )

        const enqueue = (event: HookEvent<NonBlockingHookName>) =>
          Effect.flatMap(settings, (s) =>
            Effect.suspend(() => {
              const capacity = Math.max(1, s.hooks.queue_size)
              const lost: Array<HookName> = []
              while (Queue.sizeUnsafe(queue) >= capacity) {
                const oldest = Queue.takeUnsafe(queue)
                if (oldest === undefined || oldest._tag !== "Success") break
                dropped += 1
                lost.push(oldest.value.event.hook)
              }
              Queue.offerUnsafe(queue, { event })
              return lost.length === 0
                ? Effect.void
                : Effect.logWarning(
                    `hook queue full (${capacity}): dropped the oldest pending run of ${lost.join(", ")}`,
                  ).pipe(Effect.annotateLogs({ event: "hook-dropped", dropped_total: dropped }))
            }),
          )

        const check = Effect.gen(function* () {
          const s = yield* settings
          const out: Array<{ hook: HookName; path: string; problem: string }> = []
          for (const [hook, path] of Object.entries(s.hooks)) {
            if (typeof path !== "string") continue
            const problem = yield* inspectHookPath(path)
            if (problem !== undefined) out.push({ hook: hook as HookName, path, problem })
          }
          return out
        })

        return HookRunner.of({
          runBlocking: runCounted,
          enqueue,
          stats: Effect.sync(() => ({
            pending: Queue.sizeUnsafe(queue),
            dropped,
            runs: { ...runs },
          })),
          check,
        })
      }),
    )
}
