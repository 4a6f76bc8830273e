/**
 * The CI budget: 10,000 random seeds (each ~32 simulated seconds: a random
 * cluster shape, 1 to 6 random faults, a heal, then time to converge), with
 * I1-I5 checked on every simulated step and L1 at the end. Zero violations.
 * SIM_SEEDS / SIM_START override the range; a failure names the seed to
 * replay with `bash scripts/node24.sh test/sim/run-seeds.ts --seeds 1 --start N`.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { runSeedsInParallel } from "./parallel.ts"

const seeds = Number(process.env.SIM_SEEDS ?? 10_000)
const start = Number(process.env.SIM_START ?? 1)

test(`${seeds} random seeds from ${start}: no invariant violated`, {
  timeout: 15 * 60_000,
}, async () => {
  const began = performance.now()
  const failures = await runSeedsInParallel(start, seeds)
  const seconds = (performance.now() - began) / 1000
  console.log(
    `# ${seeds} seeds in ${seconds.toFixed(1)} s (${(seeds / seconds).toFixed(0)} seeds/s)`,
  )
  const report = failures
    .map(
      (f) =>
        `seed ${f.seed} (${f.shape}): ${f.violations.map((v) => `${v.invariant} at ${v.at.toFixed(0)} ms: ${v.detail}`).join("; ")}\n${f.trace}`,
    )
    .join("\n")
  assert.equal(failures.length, 0, report)
})
