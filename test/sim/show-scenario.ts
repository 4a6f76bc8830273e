/**
 * Prints the result and trace of one scenario script:
 *   bash scripts/node24.sh test/sim/show-scenario.ts test/sim/testdata/03-primary-isolated.txt
 */
import { readFileSync } from "node:fs"
import { runScenario } from "./scenario.ts"

const file = process.argv[2]
if (file === undefined) throw new Error("usage: show-scenario.ts FILE [lines-per-node]")
const result = runScenario(readFileSync(file, "utf8"))
console.log(result.ok ? "ok" : result.failures.join("\n"))
console.log(result.world?.renderTrace(Number(process.argv[3] ?? 30)) ?? "")
