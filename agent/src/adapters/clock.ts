// Time and chance, as the daemon feeds them to the pure core: a monotonic
// clock for leases and timers (never the wall clock, which can jump), a fresh
// boot id per process, and the random numbers that jitter election timeouts.
import { randomUUID } from "node:crypto"

/** Milliseconds on a monotonic clock (process-relative; only differences mean anything). */
export const monotonicNow = (): number => performance.now()

/** A new id for this run of the agent, so peers can tell a restart from a pause. */
export const newBootId = (): string => randomUUID()

/** A number in [0, 1). */
export const randomUnit = (): number => Math.random()
