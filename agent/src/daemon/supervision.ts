// OTP-style supervision for the daemon's long-running fibers (prober, mesh,
// decision loop, executor, VIP reconciler, hooks). Effect 4 has no Supervisor
// module and no Schedule.resetAfter, so restart intensity is this small loop:
// a child that fails, dies (a defect) or returns is restarted after a backoff;
// more than `maxRestarts` restarts within `windowMs` escalate, so the agent
// exits non-zero and systemd restarts the whole agent. Interruption is never
// restarted: it is how the daemon stops.
import { Cause, Effect, Exit, Schema } from "effect"
import { monotonicNow } from "../adapters/clock.ts"

export interface RestartPolicy {
  /** Restarts allowed within the window before escalating. */
  readonly maxRestarts: number
  readonly windowMs: number
  /** First backoff; doubles with every restart inside the window, up to maxBackoffMs. */
  readonly initialBackoffMs: number
  readonly maxBackoffMs: number
}

export const defaultRestartPolicy: RestartPolicy = {
  maxRestarts: 5,
  windowMs: 60_000,
  initialBackoffMs: 100,
  maxBackoffMs: 5_000,
}

/** A child restarted too often: the agent gives up, so that systemd restarts it. */
export class ChildEscalated extends Schema.TaggedError<ChildEscalated>()("ChildEscalated", {
  child: Schema.String,
  restarts: Schema.Number,
  windowMs: Schema.Number,
  lastCause: Schema.String,
}) {
  override get message(): string {
    return `${this.child} was restarted ${this.restarts} times within ${this.windowMs} ms; giving up (last: ${this.lastCause})`
  }
}

/** What the supervisor tells the log about a child. */
export type SupervisionEvent =
  | {
      readonly _tag: "ChildCrashed"
      readonly child: string
      readonly cause: string
      readonly restartInMs: number
      readonly restartsInWindow: number
    }
  | {
      readonly _tag: "ChildReturned"
      readonly child: string
      readonly restartInMs: number
      readonly restartsInWindow: number
    }
  | { readonly _tag: "ChildEscalated"; readonly child: string; readonly cause: string }

/** Backoff before the n-th restart within the window (n >= 1). */
export const backoffMs = (policy: RestartPolicy, n: number): number =>
  Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** Math.max(0, n - 1))

/**
 * Runs `child` for ever, restarting it per `policy`. Fails with ChildEscalated
 * when the restart intensity is exceeded; never fails otherwise.
 */
export const supervise = <E, R>(
  name: string,
  child: Effect.Effect<unknown, E, R>,
  options: {
    readonly policy?: RestartPolicy
    readonly onEvent?: (event: SupervisionEvent) => Effect.Effect<void>
  } = {},
): Effect.Effect<never, ChildEscalated, R> => {
  const policy = options.policy ?? defaultRestartPolicy
  const report = options.onEvent ?? logSupervisionEvent
  return Effect.gen(function* () {
    let restarts: number[] = []
    for (;;) {
      const exit = yield* Effect.exit(child)
      if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) {
        return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
      }
      // Monotonic: a wall-clock step must not stretch or empty the restart window.
      const now = monotonicNow()
      restarts = [...restarts.filter((t) => now - t < policy.windowMs), now]
      const cause = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "returned"
      if (restarts.length > policy.maxRestarts) {
        yield* report({ _tag: "ChildEscalated", child: name, cause })
        return yield* new ChildEscalated({
          child: name,
          restarts: restarts.length - 1,
          windowMs: policy.windowMs,
          lastCause: firstLine(cause),
        })
      }
      const wait = backoffMs(policy, restarts.length)
      yield* report(
        Exit.isFailure(exit)
          ? {
              _tag: "ChildCrashed",
              child: name,
              cause,
              restartInMs: wait,
              restartsInWindow: restarts.length,
            }
          : {
              _tag: "ChildReturned",
              child: name,
              restartInMs: wait,
              restartsInWindow: restarts.length,
            },
      )
      yield* Effect.sleep(wait)
    }
  })
}

const firstLine = (text: string): string => text.split("\n")[0] ?? text

export const logSupervisionEvent = (event: SupervisionEvent): Effect.Effect<void> => {
  switch (event._tag) {
    case "ChildCrashed":
      return Effect.logWarning(
        `${event.child} crashed: ${firstLine(event.cause)}; restarting in ${event.restartInMs} ms (restart ${event.restartsInWindow} in the window)`,
      ).pipe(Effect.annotateLogs({ event: "fiber-restart", child: event.child }))
    case "ChildReturned":
      return Effect.logWarning(
        `${event.child} returned, which a permanent fiber must not; restarting in ${event.restartInMs} ms`,
      ).pipe(Effect.annotateLogs({ event: "fiber-restart", child: event.child }))
    case "ChildEscalated":
      return Effect.logError(
        `${event.child} restarted too often; the agent exits so that its service manager restarts it: ${firstLine(event.cause)}`,
      ).pipe(Effect.annotateLogs({ event: "fiber-escalated", child: event.child }))
    default: {
      const unhandled: never = event
      return unhandled
    }
  }
}
