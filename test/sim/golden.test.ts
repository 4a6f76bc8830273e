/**
 * Golden protocol tests (golden.ts): every file of test/sim/golden/ must
 * render exactly as it says after its `----` line. Rewrite them after a
 * deliberate change with
 *   UPDATE_GOLDEN=1 bash scripts/node24.sh --test test/sim/golden.test.ts
 * and review the diff.
 */
import assert from "node:assert/strict"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { test } from "node:test"
import { joinGolden, runGolden, splitGolden } from "./golden.ts"

const dir = new URL("./golden/", import.meta.url)
const update = process.env.UPDATE_GOLDEN === "1"

for (const file of readdirSync(dir)
  .filter((f) => f.endsWith(".txt"))
  .sort()) {
  test(`golden ${file}`, () => {
    const url = new URL(file, dir)
    const { script, expected } = splitGolden(readFileSync(url, "utf8"))
    const { result, rendered } = runGolden(script)
    assert.ok(result.ok, result.failures.join("\n"))
    if (update) {
      writeFileSync(url, joinGolden(script, rendered))
      return
    }
    assert.ok(expected !== null, `${file} has no ${"----"} line: run with UPDATE_GOLDEN=1`)
    assert.equal(
      rendered,
      expected,
      `${file}: the core's outputs changed (UPDATE_GOLDEN=1 rewrites)`,
    )
  })
}
