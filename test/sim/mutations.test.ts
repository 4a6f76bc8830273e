/**
 * Each deliberate bug of mutations.ts must be caught by the simulator within
 * the CI seed budget, by one of the invariants it is expected to break. The
 * first catching seed is recorded; it is replayed (fast), and only if it no
 * longer catches the mutant is the whole budget searched again.
 */
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { test } from "node:test"
import { maskedMutants, mutants } from "./mutations.ts"
import { runSeedsInParallel } from "./parallel.ts"
import { randomRun } from "./random-run.ts"
import { runScenario } from "./scenario.ts"

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

test("bug variants caught by their recorded seeds: all of them", () => {
  const caught = mutants.filter((m) =>
    randomRun(m.caughtBy, { reducer: m.reducer }).violations.some((v) =>
      m.expect.includes(v.invariant),
    ),
  )
  console.log(`# bug variants caught: ${caught.length} of ${mutants.length}`)
  assert.deepEqual(
    mutants.filter((m) => !caught.includes(m)).map((m) => m.name),
    [],
    "a variant whose recorded seed no longer catches it: its own test searches the budget",
  )
})

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

/** Variants no random seed of the budget catches, each caught by a scenario of its own. */
const caughtByScenario = [
  {
    name: "aborted-promotion-counts-as-failover",
    scenario: "18b-promotion-abort-no-block.txt",
    failure: "expect primary db3",
  },
  { name: "relay-always-intact", scenario: "26-relay-intact-agent-restart.txt", failure: "I3" },
] as const

for (const c of caughtByScenario) {
  test(`mutant ${c.name} is caught by scenario ${c.scenario} (no random seed of the budget catches it)`, () => {
    const m = maskedMutants.find((x) => x.name === c.name)
    assert.ok(m !== undefined)
    const script = readFileSync(new URL(`./testdata/${c.scenario}`, import.meta.url), "utf8")
    assert.ok(runScenario(script).ok, `${c.scenario} passes with the real reducer`)
    const r = runScenario(script, m.reducer)
    console.log(`# ${m.name}: ${c.scenario} fails: ${r.failures.join("; ")}`)
    assert.equal(r.ok, false)
    assert.ok(
      r.failures.some((f) => f.includes(c.failure)),
      r.failures.join("; "),
    )
  })
}
