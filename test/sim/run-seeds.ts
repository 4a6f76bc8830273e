/**
 * Runs many random seeds and reports violations:
 *   bash scripts/node24.sh test/sim/run-seeds.ts --seeds 10000 --start 1
 * A failing seed prints its fault schedule and the last events of every node;
 * rerun it alone with `--seeds 1 --start <seed> --trace`.
 */
import { randomRun } from "./random-run.ts"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback
  return Number.isFinite(v) ? v : fallback
}

const seeds = arg("seeds", 1000)
const start = arg("start", 1)
const showTrace = process.argv.includes("--trace")
const began = performance.now()
let failed = 0
const byInvariant = new Map<string, number>()
for (let seed = start; seed < start + seeds; seed++) {
  const r = randomRun(seed)
  if (showTrace) console.log(r.trace())
  if (r.violations.length > 0) {
    failed++
    for (const v of r.violations)
      byInvariant.set(v.invariant, (byInvariant.get(v.invariant) ?? 0) + 1)
    if (failed <= 3) {
      console.log(`seed ${seed} (${r.shape}) violated:`)
      for (const v of r.violations)
        console.log(`  ${v.invariant} at ${v.at.toFixed(0)} ms: ${v.detail}`)
      if (!showTrace) console.log(r.trace())
    } else {
      console.log(
        `seed ${seed} (${r.shape}): ${r.violations.map((v) => `${v.invariant} ${v.detail}`).join("; ")}`,
      )
    }
  }
}
const seconds = (performance.now() - began) / 1000
console.log(
  `${seeds} seeds from ${start}: ${failed} failed ${JSON.stringify(Object.fromEntries(byInvariant))}; ${seconds.toFixed(1)} s, ${(seeds / seconds).toFixed(1)} seeds/s`,
)
process.exitCode = failed > 0 ? 1 : 0
