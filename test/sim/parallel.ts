/**
 * Runs seed ranges on worker threads (one per core by default), so the CI
 * budget of 10,000 seeds uses both cores of the machine.
 */
import { availableParallelism } from "node:os"
import { Worker } from "node:worker_threads"
import type { SeedFailure, SeedJob } from "./seed-worker.ts"

export const runSeedsInParallel = async (
  start: number,
  count: number,
  mutant: string | null = null,
  workers: number = Math.max(1, Math.min(availableParallelism(), 4)),
): Promise<ReadonlyArray<SeedFailure>> => {
  const per = Math.ceil(count / workers)
  const jobs: Array<Promise<ReadonlyArray<SeedFailure>>> = []
  for (let i = 0; i < workers; i++) {
    // Interleaved chunks would balance better; contiguous ranges keep "first seed" meaningful.
    const job: SeedJob = {
      start: start + i * per,
      count: Math.max(0, Math.min(per, count - i * per)),
      mutant,
    }
    if (job.count === 0) continue
    jobs.push(
      new Promise((resolve, reject) => {
        const w = new Worker(new URL("./seed-worker.ts", import.meta.url), { workerData: job })
        w.once("message", (m: { failures: ReadonlyArray<SeedFailure> }) => resolve(m.failures))
        w.once("error", reject)
        w.once("exit", (code) => {
          if (code !== 0) reject(new Error(`seed worker exited with ${code}`))
        })
      }),
    )
  }
  return (await Promise.all(jobs)).flat().sort((a, b) => a.seed - b.seed)
}
