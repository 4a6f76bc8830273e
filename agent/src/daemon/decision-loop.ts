// The decision loop: the one place that owns the core's state. It takes
// inputs one at a time from the inbox, stamps them with the monotonic clock,
// calls the pure `step`, publishes the new state for status and HTTP, and
// hands the step's outputs to the executor. If it crashes, its supervisor
// starts it again from the hard-state file, as an agent restart would.
import { Effect, Option, Queue } from "effect"
import type pino from "pino"
import { monotonicNow, newBootId, randomUnit } from "../adapters/clock.ts"
import type { HardStateStore } from "../adapters/hard-state-file.ts"
import type { ClusterConfig } from "../core/config.ts"
import { initialState, step } from "../core/reducer.ts"
import { stillWanted } from "../core/supersession.ts"
import type { AgentState, HardState, Output } from "../core/types.ts"
import type { PendingInput } from "./executor.ts"

export interface DecisionLoopOptions {
  readonly self: string
  readonly clusterConfig: () => ClusterConfig
  readonly inbox: Queue.Queue<PendingInput>
  readonly hardState: HardStateStore<HardState>
  /**
   * Runs a step's outputs; `incarnation` (this run's bootId) comes back with
   * their completions; `stillWanted` asks the core, at each output's turn,
   * whether the decision that issued it still stands.
   */
  readonly execute: (
    outputs: ReadonlyArray<Output>,
    incarnation: string,
    stillWanted: (output: Output) => boolean,
  ) => Effect.Effect<void>
  /** Called with every new state (status, HTTP endpoints, metrics). */
  readonly publish: (state: AgentState) => void
  readonly log: pino.Logger
  /** Test hook: a defect injected into the n-th step (MHA_AGENT_INJECT_DEFECT=decision-loop:n). */
  readonly injectDefectAt?: number
}

export const runDecisionLoop = (options: DecisionLoopOptions): Effect.Effect<never, unknown> => {
  // Outside the loop's run, so that an injected defect fires once, not after every restart.
  let defectInjected = false
  // The newest state of whichever run is current: a batch of an earlier run
  // (before a restart of the loop) is checked against it, not its own.
  let current: AgentState | null = null
  return Effect.gen(function* () {
    const hard = Option.getOrNull(yield* options.hardState.load)
    const bootId = newBootId()
    options.log.info(
      { event: "agent-start", term: hard?.term ?? 0, bootId },
      hard === null ? "no hard state yet: a new member" : `resuming from term ${hard.term}`,
    )
    let state = initialState(options.clusterConfig(), options.self)
    let steps = 0
    const apply = (pending: PendingInput) =>
      Effect.gen(function* () {
        steps++
        if (steps === options.injectDefectAt && !defectInjected) {
          defectInjected = true
          throw new Error(`injected defect in step ${steps}`)
        }
        const result = step(state, pending(monotonicNow()))
        state = result.state
        current = state
        options.publish(state)
        if (result.outputs.length > 0)
          yield* Effect.forkDetach(
            options.execute(
              result.outputs,
              bootId,
              (o) => current !== null && stillWanted(current, o, bootId),
            ),
          )
      })
    yield* apply((now) => ({
      _tag: "Start",
      now,
      hard,
      bootId,
      random: randomUnit(),
      wallClock: Date.now(),
    }))
    for (;;) yield* apply(yield* Queue.take(options.inbox))
  })
}

/** Feeds a Tick into the inbox every `intervalMs`: the core's only notion of time passing. */
export const runTicker = (
  inbox: Queue.Queue<PendingInput>,
  intervalMs: number,
): Effect.Effect<never> =>
  Effect.forever(
    Effect.andThen(
      Queue.offer(inbox, (now) => ({ _tag: "Tick", now, random: randomUnit() })),
      Effect.sleep(intervalMs),
    ),
  )
