/**
 * Membership changes in the simulator (core/members.ts): seeded random runs
 * that add and remove members one at a time under faults, with every
 * invariant checked; and the bug variants, each caught by its scenario.
 * (The scenarios themselves, 40 and 41, also run in scenarios.test.ts.)
 */
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { test } from "node:test"
import { memberMutants } from "./member-mutants.ts"
import { memberRun } from "./member-runs.ts"
import { runScenario } from "./scenario.ts"

test("random runs with membership changes: 3 -> up to 5 members and back under faults, every invariant holds", () => {
  let ok = 0
  let grownTo5 = 0
  let withoutAnOriginal = 0
  for (let seed = 1; seed <= 20; seed++) {
    const r = memberRun(seed)
    assert.deepEqual(
      r.violations.map((v) => `${v.invariant}: ${v.detail}`),
      [],
      `seed ${seed}\n${r.faults.join("\n")}\n${r.trace()}`,
    )
    ok += r.changes.ok
    if (r.finalMembers.length === 5) grownTo5++
    if (!["db1", "db2", "db3"].every((n) => r.finalMembers.includes(n))) withoutAnOriginal++
  }
  // The runs do change members: many changes committed, some clusters end with five,
  // some without one of the first three.
  assert.ok(ok >= 100, `${ok} changes committed`)
  assert.ok(grownTo5 >= 3, `${grownTo5} runs end with 5 members`)
  assert.ok(withoutAnOriginal >= 3, `${withoutAnOriginal} runs end without one of db1-db3`)
})

for (const m of memberMutants) {
  test(`bug variant ${m.name} is caught by scenario ${m.scenario} (${m.failure})`, () => {
    const script = readFileSync(new URL(`./testdata/${m.scenario}`, import.meta.url), "utf8")
    assert.ok(runScenario(script).ok, `${m.scenario} passes with the real reducer`)
    const r = runScenario(script, m.reducer)
    assert.equal(r.ok, false, `${m.scenario} passes with ${m.name}`)
    assert.ok(
      r.failures.some((f) => f.startsWith(m.failure)),
      `no ${m.failure} among: ${r.failures.join("; ")}`,
    )
  })
}
