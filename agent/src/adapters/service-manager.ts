/**
 * Restarts the local mysqld through the service manager (protocol.md section
 * 12): the configured `restart_command` (default `systemctl restart mysql`)
 * run by `/bin/sh -c`, each attempt bounded by a timeout after which its whole
 * process group is killed, at most `attempts` attempts with a pause between.
 *
 * The outcome is a value, never a failure: the caller (the primary keeping
 * its lease during a bounded restart, or a replica) decides what a failed
 * restart means.
 */
import { Context, Duration, Effect, Layer } from "effect"
import type { Config } from "../../../shared/config.ts"
import { describeRun, type ProcessRunResult, runInProcessGroup } from "./process-group.ts"

export interface RestartOptions {
  /** Shell command line, run as `/bin/sh -c <command>`. */
  readonly command: string
  /** Each attempt is killed (its process group) after this long. */
  readonly timeoutMs: number
  /** At least 1. */
  readonly attempts: number
  /** Pause between a failed attempt and the next one. */
  readonly retryDelayMs: number
  /** SIGTERM to SIGKILL grace on timeout (default 1000 ms). */
  readonly killGraceMs?: number
  /** Extra environment for the command (added to the agent's own). */
  readonly env?: Readonly<Record<string, string>>
}

/** The restart options of a config (service and timings sections). */
export const restartOptionsFromConfig = (config: Config): RestartOptions => ({
  command: config.service.restart_command,
  timeoutMs: config.timings.restart_timeout,
  attempts: config.timings.restart_attempts,
  retryDelayMs: config.timings.restart_retry_delay,
})

/** One attempt of the restart command. */
export interface RestartAttempt {
  /** 1-based. */
  readonly attempt: number
  readonly outcome: "succeeded" | "failed" | "timed-out" | "signaled" | "spawn-failed"
  /** Exit code when the command exited by itself. */
  readonly exitCode: number | null
  readonly signal: string | null
  readonly durationMs: number
  /** The last bytes of its stderr (for the log and the operator). */
  readonly stderrTail: string
  /** Human summary, e.g. "exited with code 1 after 120 ms". */
  readonly summary: string
}

export type RestartResult =
  | {
      readonly _tag: "Succeeded"
      /** How many attempts it took (1 = first try). */
      readonly attempts: number
      readonly history: ReadonlyArray<RestartAttempt>
    }
  | { readonly _tag: "Failed"; readonly history: ReadonlyArray<RestartAttempt> }

const toAttempt = (attempt: number, r: ProcessRunResult): RestartAttempt => ({
  attempt,
  outcome:
    r._tag === "Exited"
      ? r.code === 0
        ? "succeeded"
        : "failed"
      : r._tag === "TimedOut"
        ? "timed-out"
        : r._tag === "Signaled"
          ? "signaled"
          : "spawn-failed",
  exitCode: r._tag === "Exited" ? r.code : null,
  signal: r._tag === "Signaled" ? r.signal : null,
  durationMs: r.durationMs,
  stderrTail: r._tag === "SpawnFailed" ? r.reason : r.stderrTail,
  summary: describeRun(r),
})

/** Runs the restart command with bounded attempts (no service needed). */
export const restartService = Effect.fn("ServiceManager.restart")(function* (
  options: RestartOptions,
): Effect.fn.Return<RestartResult> {
  const attempts = Math.max(1, Math.floor(options.attempts))
  const history: Array<RestartAttempt> = []
  for (let n = 1; n <= attempts; n++) {
    if (n > 1 && options.retryDelayMs > 0)
      yield* Effect.sleep(Duration.millis(options.retryDelayMs))
    const run = yield* runInProcessGroup({
      file: "/bin/sh",
      args: ["-c", options.command],
      env: { ...process.env, ...options.env },
      timeoutMs: options.timeoutMs,
      ...(options.killGraceMs === undefined ? {} : { killGraceMs: options.killGraceMs }),
    })
    const attempt = toAttempt(n, run)
    history.push(attempt)
    yield* Effect.annotateCurrentSpan({ [`attempt.${n}`]: attempt.summary })
    if (attempt.outcome === "succeeded") return { _tag: "Succeeded", attempts: n, history }
    yield* Effect.logWarning(`restart command attempt ${n}/${attempts} ${attempt.summary}`).pipe(
      Effect.annotateLogs({ event: "restart-attempt-failed", stderr: attempt.stderrTail }),
    )
  }
  return { _tag: "Failed", history }
})

/** The service manager of the local host. */
export class ServiceManager extends Context.Service<
  ServiceManager,
  { readonly restart: (options: RestartOptions) => Effect.Effect<RestartResult> }
>()("mha-agent/adapters/ServiceManager") {
  static readonly layer: Layer.Layer<ServiceManager> = Layer.succeed(
    ServiceManager,
    ServiceManager.of({ restart: restartService }),
  )
}
