/**
 * Runs every scenario script of test/sim/testdata (one per acceptance
 * scenario of lab.md that makes sense in simulation, plus protocol corners).
 */
import assert from "node:assert/strict"
import { readdirSync, readFileSync } from "node:fs"
import { test } from "node:test"
import { runScenario } from "./scenario.ts"

const dir = new URL("./testdata/", import.meta.url)
for (const file of readdirSync(dir)
  .filter((f) => f.endsWith(".txt"))
  .sort()) {
  test(`scenario ${file}`, () => {
    const result = runScenario(readFileSync(new URL(file, dir), "utf8"))
    assert.ok(result.ok, `${result.failures.join("\n")}\n${result.world?.renderTrace(25) ?? ""}`)
  })
}
