/**
 * Prints the result and trace of one scenario script, under the real reducer
 * or a bug variant of mutations.ts:
 *   bash scripts/node24.sh test/sim/show-scenario.ts test/sim/testdata/03-primary-isolated.txt [lines-per-node] [mutant]
 */
import { readFileSync } from "node:fs"
import { allMutants } from "./mutations.ts"
import { runScenario } from "./scenario.ts"

const file = process.argv[2]
if (file === undefined) throw new Error("usage: show-scenario.ts FILE [lines-per-node] [mutant]")
const name = process.argv[4]
const mutant = name === undefined ? undefined : allMutants.find((m) => m.name === name)
if (name !== undefined && mutant === undefined)
  throw new Error(`unknown mutant; one of ${allMutants.map((m) => m.name).join(", ")}`)
const result = runScenario(readFileSync(file, "utf8"), mutant?.reducer)
console.log(result.ok ? "ok" : result.failures.join("\n"))
console.log(result.world?.renderTrace(Number(process.argv[3] ?? 30)) ?? "")
