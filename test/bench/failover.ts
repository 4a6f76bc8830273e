// The failover benchmark (first part): repeats scenarios on the real lab and
// prints a Markdown table of client-observed write downtime (median, p95,
// max) and lost acknowledged writes.
//   npm run bench:failover -- [--runs 5] [--scenarios 1,2,3,8] [--out bench/failover.md]
import { execSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { dirname } from "node:path"
import { parseArgs } from "node:util"
import { LabCluster } from "../lab/cluster.ts"
import {
  mysqldCannotRestart,
  mysqldKilledRestarts,
  primaryIsolated,
  type Scenario,
  switchoverThereAndBack,
} from "../lab/scenarios.ts"

const SCENARIOS: Record<string, { name: string; run: Scenario }> = {
  "1": { name: "1: primary mysqld killed, restarts", run: mysqldKilledRestarts },
  "2": { name: "2: primary mysqld cannot restart", run: mysqldCannotRestart },
  "3": { name: "3: primary host isolated", run: primaryIsolated },
  "8": { name: "8: switchover there and back", run: switchoverThereAndBack },
}

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    scenarios: { type: "string", default: "1,2,3,8" },
    out: { type: "string", default: "bench/failover.md" },
  },
})
const runs = Number(values.runs)
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? Number.NaN
}

const rows: string[] = []
for (const key of values.scenarios.split(",")) {
  const scenario = SCENARIOS[key]
  if (!scenario)
    throw new Error(`unknown scenario ${key} (known: ${Object.keys(SCENARIOS).join(", ")})`)
  const downtimes: number[] = []
  let lost = 0
  let failures = 0
  for (let i = 0; i < runs; i++) {
    const c = await LabCluster.up({ timings: { restart_timeout: "10s", apply_timeout: "10s" } })
    try {
      const faultAt = await scenario.run(c)
      const r = await c.check(faultAt)
      downtimes.push(r.downtimeMs)
      lost += r.problems.filter((p) => p.includes("missing")).length
      if (r.problems.length > 0) {
        failures++
        console.error(
          `${scenario.name} run ${i + 1}: ${r.problems.join("; ")} (logs: ${c.keepLogs(`bench${key}`)})`,
        )
      }
      console.error(`${scenario.name} run ${i + 1}: downtime ${r.downtimeMs} ms`)
    } catch (e) {
      failures++
      console.error(
        `${scenario.name} run ${i + 1} failed: ${e instanceof Error ? e.message : e} (logs: ${c.keepLogs(`bench${key}`)})`,
      )
    } finally {
      await c.down()
    }
  }
  rows.push(
    `| ${scenario.name} | ${downtimes.length}/${runs} | ${quantile(downtimes, 0.5)} | ${quantile(downtimes, 0.95)} | ${Math.max(...downtimes)} | ${lost} | ${failures} |`,
  )
}
const commit = execSync("git rev-parse --short HEAD", { encoding: "utf8" }).trim()
const table = [
  `Failover benchmark, ${new Date().toISOString()}, commit ${commit}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, default timings (lease 4 s, heartbeat 500 ms), semi-sync strict`,
  "",
  "| scenario | runs ok | median downtime ms | p95 ms | max ms | runs with lost acked writes | runs failing an invariant |",
  "|---|---|---|---|---|---|---|",
  ...rows,
].join("\n")
console.log(table)
mkdirSync(dirname(values.out), { recursive: true })
writeFileSync(values.out, `${table}\n`)
