// The decision loop: the one place that owns the core's state. It takes
// inputs one at a time, stamps them with the monotonic clock, calls the pure
// `step`, publishes the new state for status and HTTP, and hands the step's
// outputs to the executor. If it crashes, its supervisor starts it again from
// the hard-state file, as an agent restart would.
//
// Inputs arrive two ways. Ticks, peer messages and probe results are stepped
// at once in the caller's turn of the event loop (`direct`): twenty ticks a second and every
// heartbeat through a queue and a fiber wake-up cost more CPU at rest than
// all the agent's real work. Everything else (completions, operator requests,
// reloads) goes through the inbox; while the inbox holds anything, direct
// inputs queue behind it, so inputs are still stepped in arrival order.
import { Effect, Option, Queue } from "effect"
import type pino from "pino"
import { monotonicNow, newBootId, randomUnit } from "../adapters/clock.ts"
import type { HardStateStore } from "../adapters/hard-state-file.ts"
import type { ClusterConfig } from "../core/config.ts"
import { changedBeyondClock, nextDeadline } from "../core/deadline.ts"
import { initialState, step } from "../core/reducer.ts"
import { stillWanted } from "../core/supersession.ts"
import type { AgentState, HardState, MysqldStart, Output } from "../core/types.ts"
import type { PendingInput } from "./executor.ts"

/** Steps an input at once while a decision loop runs (null while none does). */
export interface DirectStep {
  current: ((input: PendingInput) => void) | null
}

export interface DecisionLoopOptions {
  readonly self: string
  readonly clusterConfig: () => ClusterConfig
  readonly inbox: Queue.Queue<PendingInput>
  /** Filled in while the loop runs; see {@link deliverInput}. */
  readonly direct?: DirectStep
  readonly hardState: HardStateStore<HardState>
  /** The relay-intact file, read at the start of each run (adapters/relay-intact-file.ts). */
  readonly relayIntact?: () => MysqldStart | null
  /**
   * Runs a step's outputs (executor.ts executeNow): those that need no waiting
   * at once, and returns the rest, which the loop runs in a fiber of its own
   * (undefined: nothing left). `incarnation` (this run's bootId) comes back
   * with their completions; `stillWanted` asks the core, at each output's
   * turn, whether the decision that issued it still stands.
   */
  readonly execute: (
    outputs: ReadonlyArray<Output>,
    incarnation: string,
    stillWanted: (output: Output) => boolean,
    fork: (effect: Effect.Effect<void>) => void,
  ) => Effect.Effect<void> | undefined
  /**
   * Called with every new state (status, HTTP endpoints, metrics); `changed`
   * is false when the step only advanced the clock (no output, every other
   * field the same object as before).
   */
  readonly publish: (state: AgentState, changed: boolean) => void
  /** Told after every step when the core next needs a Tick (core/deadline.ts). */
  readonly alarm?: Alarm
  readonly log: pino.Logger
  /** Test hook: a defect injected into the n-th step (MHA_AGENT_INJECT_DEFECT=decision-loop:n). */
  readonly injectDefectAt?: number
}

/** Steps `input` at once when a decision loop runs and nothing waits in its inbox; queues it otherwise. */
export const deliverInput = (
  direct: DirectStep,
  inbox: Queue.Queue<PendingInput>,
  input: PendingInput,
): void => {
  if (direct.current !== null) direct.current(input)
  else Queue.offerUnsafe(inbox, input)
}

export const runDecisionLoop = (options: DecisionLoopOptions): Effect.Effect<never, unknown> => {
  // Outside the loop's run, so that an injected defect fires once, not after every restart.
  let defectInjected = false
  // The newest state of whichever run is current: a batch of an earlier run
  // is checked against it, and so finds its actions no longer wanted.
  let current: AgentState | null = null
  return Effect.gen(function* () {
    const hard = Option.getOrNull(yield* options.hardState.load)
    const relayIntact = options.relayIntact?.() ?? null
    // The core logs the start (agent-start) with this run's bootId.
    const bootId = newBootId()
    // Outputs that must wait run as fibers of their own, with this loop's services.
    const fork = Effect.runForkWith(yield* Effect.context<never>())
    const wanted = (o: Output): boolean => current !== null && stillWanted(current, o, bootId)
    let state = initialState(options.clusterConfig(), options.self)
    let steps = 0
    /** True while a step runs: an input arriving from inside it (re-entrant) is queued. */
    let busy = false
    const apply = (pending: PendingInput): void => {
      busy = true
      try {
        steps++
        if (steps === options.injectDefectAt && !defectInjected) {
          defectInjected = true
          throw new Error(`injected defect in step ${steps}`)
        }
        const before = state
        const result = step(state, pending(monotonicNow()))
        state = result.state
        current = state
        options.publish(state, result.outputs.length > 0 || changedBeyondClock(before, state))
        options.alarm?.current?.(nextDeadline(state))
        if (result.outputs.length > 0) {
          // At rest only heartbeats, acknowledgements and events: sent and logged here,
          // no fiber (issue 12).
          const rest = options.execute(result.outputs, bootId, wanted, fork)
          if (rest !== undefined) fork(rest)
        }
      } finally {
        busy = false
      }
    }
    const direct = options.direct
    const stepDirect = (pending: PendingInput): void => {
      if (busy || Queue.sizeUnsafe(options.inbox) > 0) {
        Queue.offerUnsafe(options.inbox, pending)
        return
      }
      try {
        apply(pending)
      } catch (e) {
        // A defect in a direct step ends this run of the loop like one in the loop
        // itself: the loop takes it from the inbox, dies, and its supervisor restarts it.
        if (direct !== undefined && direct.current === stepDirect) direct.current = null
        Queue.offerUnsafe(options.inbox, () => {
          throw e
        })
      }
    }
    yield* Effect.sync(() =>
      apply((now) => ({
        _tag: "Start",
        now,
        hard,
        bootId,
        random: randomUnit(),
        wallClock: Date.now(),
        relayIntact,
      })),
    )
    if (direct !== undefined) direct.current = stepDirect
    return yield* Effect.forever(
      Effect.flatMap(Queue.take(options.inbox), (pending) => Effect.sync(() => apply(pending))),
    ).pipe(
      Effect.ensuring(
        Effect.sync(() => {
          if (direct !== undefined && direct.current === stepDirect) direct.current = null
        }),
      ),
    )
  })
}

/** Where the decision loop asks to be woken (the alarm fills it in while it runs). */
export interface Alarm {
  current: ((deadline: number) => void) | null
}

/**
 * Steps a Tick when the core's next deadline is due (core/deadline.ts; the
 * decision loop passes it on after every step), instead of twenty a second.
 * A plain timer, not a fiber that sleeps and offers to a queue. An earlier
 * deadline replaces a later one; a later one waits for the pending timer (a
 * Tick too early changes nothing). When no step asks (the loop is
 * restarting), it wakes after `maxSleepMs` all the same. `onLate` hears how
 * late each wake-up came (ms): the event-loop delay, measured on a timer
 * that runs anyway (daemon/metrics.ts).
 */
export const runAlarm = (
  deliver: (input: PendingInput) => void,
  alarm: Alarm,
  maxSleepMs: number,
  firstAfterMs: number,
  onLate?: (lateMs: number) => void,
): Effect.Effect<never> =>
  Effect.callback<never>(() => {
    let timer: ReturnType<typeof setTimeout> | undefined
    let fireAt = Number.POSITIVE_INFINITY
    /** When the pending timer should fire (its delay is whole ms, at least 1). */
    let expectedAt = 0
    const schedule = (deadline: number): void => {
      if (deadline >= fireAt) return
      if (timer !== undefined) clearTimeout(timer)
      fireAt = deadline
      const now = monotonicNow()
      const wait = Math.max(1, Math.ceil(deadline - now))
      expectedAt = now + wait
      timer = setTimeout(fire, wait)
    }
    const fire = (): void => {
      onLate?.(monotonicNow() - expectedAt)
      timer = undefined
      fireAt = Number.POSITIVE_INFINITY
      deliver((now) => ({ _tag: "Tick", now, random: randomUnit() }))
      if (timer === undefined) schedule(monotonicNow() + maxSleepMs)
    }
    alarm.current = schedule
    schedule(monotonicNow() + firstAfterMs)
    return Effect.sync(() => {
      if (alarm.current === schedule) alarm.current = null
      if (timer !== undefined) clearTimeout(timer)
    })
  })
