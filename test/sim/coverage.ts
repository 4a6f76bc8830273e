/**
 * Which random seeds exercise which protocol behaviour: prints, for every
 * event the agents emit, the first seeds (from 1) that produce it.
 *   bash scripts/node24.sh test/sim/coverage.ts --seeds 2000
 */
import { randomRun } from "./random-run.ts"

const i = process.argv.indexOf("--seeds")
const seeds = i >= 0 ? Number(process.argv[i + 1]) : 1000
const first = new Map<string, Array<number>>()
for (let seed = 1; seed <= seeds; seed++) {
  for (const e of randomRun(seed).events) {
    const list = first.get(e) ?? []
    if (list.length < 3) list.push(seed)
    first.set(e, list)
  }
}
for (const [e, list] of [...first].sort()) console.log(`${e.padEnd(28)} ${list.join(", ")}`)
