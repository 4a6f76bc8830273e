/**
 * Each deliberate bug of mutations.ts must be caught by the simulator, by one
 * of the invariants it is expected to break: within the CI seed budget
 * (`mutants`: the first catching seed is recorded; it is replayed (fast), and
 * only if it no longer catches the mutant is the whole budget searched
 * again), or, for the variants other defences mask in random runs
 * (`maskedMutants`), by a scenario of its own.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { maskedMutants, mutants, scenarioCatches } from "./mutations.ts"
import { runSeedsInParallel } from "./parallel.ts"
import { randomRun } from "./random-run.ts"

const budget = Number(process.env.SIM_SEEDS ?? 10_000)

for (const m of mutants) {
  test(`mutant ${m.name} is caught (${m.description})`, { timeout: 15 * 60_000 }, async () => {
    const replay = randomRun(m.caughtBy, { reducer: m.reducer })
    let seed = m.caughtBy
    let broken = replay.violations
    if (broken.length === 0) {
      const failures = await runSeedsInParallel(1, budget, m.name)
      const first = failures[0]
      assert.ok(first !== undefined, `mutant ${m.name} survived ${budget} seeds`)
      seed = first.seed
      broken = first.violations.map((v) => ({
        ...v,
        invariant: v.invariant as (typeof broken)[number]["invariant"],
      }))
      console.log(
        `# ${m.name}: recorded seed ${m.caughtBy} no longer catches it; first catching seed is now ${seed}`,
      )
    }
    console.log(
      `# ${m.name}: caught by seed ${seed}: ${broken.map((v) => `${v.invariant}: ${v.detail}`).join("; ")}`,
    )
    assert.ok(
      broken.some((v) => m.expect.includes(v.invariant)),
      `seed ${seed} caught ${m.name} with ${broken.map((v) => v.invariant).join(",")}, expected one of ${m.expect.join(",")}`,
    )
  })
}

test("without a mutant the recorded seeds pass", () => {
  for (const m of mutants) {
    const r = randomRun(m.caughtBy)
    assert.deepEqual(
      r.violations,
      [],
      `seed ${m.caughtBy}: ${r.violations.map((v) => v.detail).join("; ")}`,
    )
  }
})

// Variants no random seed of the budget catches (mutations.ts maskedMutants), each caught by a
// scenario of its own: it passes with the real reducer and fails with the variant.
for (const m of maskedMutants) {
  test(`mutant ${m.name} is caught by scenario ${m.scenario} (no random seed of the budget catches it)`, () => {
    const r = scenarioCatches(m)
    assert.deepEqual(r.realFailures, [], `${m.scenario} passes with the real reducer`)
    console.log(`# ${m.name}: ${m.scenario} fails: ${r.failures.join("; ")}`)
    assert.ok(r.caught, `${m.scenario} under ${m.name}: ${r.failures.join("; ") || "passes"}`)
  })
}

test("bug variants caught: all of them, by their recorded seeds or their scenarios", () => {
  const bySeed = mutants.filter((m) =>
    randomRun(m.caughtBy, { reducer: m.reducer }).violations.some((v) =>
      m.expect.includes(v.invariant),
    ),
  )
  const byScenario = maskedMutants.filter((m) => scenarioCatches(m).caught)
  const all = [...mutants, ...maskedMutants]
  console.log(
    `# bug variants caught: ${bySeed.length + byScenario.length} of ${all.length} (${bySeed.length} of ${mutants.length} by a recorded seed, ${byScenario.length} of ${maskedMutants.length} by a scenario of their own)`,
  )
  assert.deepEqual(
    all
      .filter((m) => !bySeed.some((x) => x === m) && !byScenario.some((x) => x === m))
      .map((m) => m.name),
    [],
    "a variant whose recorded seed no longer catches it (its own test searches the budget) or whose scenario no longer does",
  )
})
