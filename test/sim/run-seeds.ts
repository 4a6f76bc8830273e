/**
 * Runs many random seeds and reports violations:
 *   bash scripts/node24.sh test/sim/run-seeds.ts --seeds 100000 --start 1 [--workers 2]
 * A failing seed prints its fault schedule and the last events of every node;
 * rerun it alone with `--seeds 1 --start <seed> --trace` (the whole trace).
 * `--mutant NAME` runs under a deliberate bug of mutations.ts instead.
 * Without it, the run ends with the bug variants of mutations.ts: each one's
 * recorded seed replayed (the range searched again only if that no longer
 * catches it), each masked one's scenario run with the real reducer and with
 * the variant, and how many of them all were caught.
 */
import { availableParallelism } from "node:os"
import { allMutants, maskedMutants, mutants, scenarioCatches } from "./mutations.ts"
import { runSeedsInParallel } from "./parallel.ts"
import { randomRun } from "./random-run.ts"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback
  return Number.isFinite(v) ? v : fallback
}

const seeds = arg("seeds", 1000)
const start = arg("start", 1)
const workers = arg("workers", seeds >= 200 ? availableParallelism() : 1)
const showTrace = process.argv.includes("--trace")
const mutantAt = process.argv.indexOf("--mutant")
const mutant =
  mutantAt >= 0 ? allMutants.find((m) => m.name === process.argv[mutantAt + 1]) : undefined
if (mutantAt >= 0 && mutant === undefined) {
  throw new Error(`unknown mutant; one of ${allMutants.map((m) => m.name).join(", ")}`)
}

const began = performance.now()
const byInvariant = new Map<string, number>()
let failed = 0
const report = (seed: number, shape: string, lines: ReadonlyArray<string>, trace: string) => {
  failed++
  console.log(`seed ${seed} (${shape}) violated:`)
  for (const l of lines) console.log(`  ${l}`)
  if (trace !== "") console.log(trace)
}

if (workers > 1 && !showTrace && mutant === undefined) {
  for (const f of await runSeedsInParallel(start, seeds, null, workers)) {
    for (const v of f.violations)
      byInvariant.set(v.invariant, (byInvariant.get(v.invariant) ?? 0) + 1)
    report(
      f.seed,
      f.shape,
      f.violations.map((v) => `${v.invariant} at ${v.at.toFixed(0)} ms: ${v.detail}`),
      f.trace,
    )
  }
} else {
  for (let seed = start; seed < start + seeds; seed++) {
    const r = randomRun(seed, { reducer: mutant?.reducer })
    if (showTrace) console.log(r.trace())
    if (r.violations.length === 0) continue
    for (const v of r.violations)
      byInvariant.set(v.invariant, (byInvariant.get(v.invariant) ?? 0) + 1)
    report(
      seed,
      r.shape,
      r.violations.map((v) => `${v.invariant} at ${v.at.toFixed(0)} ms: ${v.detail}`),
      failed < 3 && !showTrace ? r.trace() : "",
    )
  }
}
const seconds = (performance.now() - began) / 1000
console.log(
  `${seeds} seeds from ${start}: ${failed} failed ${JSON.stringify(Object.fromEntries(byInvariant))}; ${seconds.toFixed(1)} s, ${(seeds / seconds).toFixed(1)} seeds/s`,
)
let missed = 0
if (mutant === undefined && !showTrace && !process.argv.includes("--no-mutants")) {
  let bySeed = 0
  let byScenario = 0
  for (const m of mutants) {
    let by: { seed: number; what: string } | null = null
    const replay = randomRun(m.caughtBy, { reducer: m.reducer })
    if (replay.violations.some((v) => m.expect.includes(v.invariant)))
      by = { seed: m.caughtBy, what: replay.violations.map((v) => v.invariant).join(",") }
    else {
      const first = (await runSeedsInParallel(start, seeds, m.name, workers))[0]
      if (first?.violations.some((v) => m.expect.includes(v.invariant)))
        by = { seed: first.seed, what: first.violations.map((v) => v.invariant).join(",") }
    }
    if (by !== null) bySeed++
    console.log(
      `  ${by === null ? "MISSED" : "caught"} ${m.name} (${m.description})${by === null ? "" : `: seed ${by.seed}, ${by.what}`}`,
    )
  }
  // No seed of the budget catches these: a scenario of its own does (mutations.ts maskedMutants).
  for (const m of maskedMutants) {
    const r = scenarioCatches(m)
    if (r.caught) byScenario++
    console.log(
      `  ${r.caught ? "caught" : "MISSED"} ${m.name} (${m.description}): scenario ${m.scenario}${r.caught ? `: ${r.caughtWith}` : r.realFailures.length > 0 ? ` fails with the real reducer: ${r.realFailures.join("; ")}` : ""}`,
    )
  }
  missed = allMutants.length - bySeed - byScenario
  console.log(
    `bug variants caught: ${bySeed + byScenario} of ${allMutants.length} (${bySeed} of ${mutants.length} by a seed, ${byScenario} of ${maskedMutants.length} by a scenario of their own)`,
  )
}
process.exitCode = failed > 0 || missed > 0 ? 1 : 0
