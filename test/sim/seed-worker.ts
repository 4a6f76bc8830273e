/**
 * Worker thread body for parallel seed runs: runs seeds [start, start+count)
 * (optionally under a mutant) and posts the failures back.
 */
import { parentPort, workerData } from "node:worker_threads"
import { allMutants } from "./mutations.ts"
import { randomRun } from "./random-run.ts"

export interface SeedJob {
  readonly start: number
  readonly count: number
  /** Run under this mutant; stop at the first caught seed. */
  readonly mutant: string | null
}

export interface SeedFailure {
  readonly seed: number
  readonly shape: string
  readonly violations: ReadonlyArray<{ invariant: string; at: number; detail: string }>
  readonly trace: string
}

const job = workerData as SeedJob
const reducer =
  job.mutant === null ? undefined : allMutants.find((m) => m.name === job.mutant)?.reducer
const failures: Array<SeedFailure> = []
for (let seed = job.start; seed < job.start + job.count; seed++) {
  const r = randomRun(seed, { reducer })
  if (r.violations.length > 0) {
    failures.push({
      seed,
      shape: r.shape,
      violations: r.violations.map((v) => ({ invariant: v.invariant, at: v.at, detail: v.detail })),
      trace: failures.length < 3 ? r.trace() : "",
    })
    if (job.mutant !== null) break
  }
}
parentPort?.postMessage({ failures, ran: job.count })
