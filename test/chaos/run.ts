// npm run chaos -- --minutes N --seed S [--hosts 3|5] [--keep-logs]
// A Jepsen-style randomized run on the lab (see chaos.ts): prints the seed's
// fault schedule, applies it to a real cluster, heals, checks the invariants
// and exits non-zero (naming the kept logs folder) when one fails.
// Brings up a lab: run it under the lab lock (flock /tmp/mha-lab.lock ...).
import { parseArgs } from "node:util"
import type { LabCluster } from "../lab/cluster.ts"
import { formatReport, runChaos } from "./chaos.ts"

const USAGE = "usage: npm run chaos -- --minutes N --seed S [--hosts 3|5] [--keep-logs]"

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "3" },
    seed: { type: "string" },
    hosts: { type: "string", default: "3" },
    "keep-logs": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
})
if (values.help) {
  console.log(USAGE)
  process.exit(0)
}
const minutes = Number(values.minutes)
const seed = Number(values.seed ?? Date.now() % 1_000_000)
const hosts = Number(values.hosts)
if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 120) {
  console.error(`--minutes must be a number of minutes from 0 to 120\n${USAGE}`)
  process.exit(2)
}
if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
  console.error(`--seed must be an integer from 0 to ${0xffffffff}\n${USAGE}`)
  process.exit(2)
}
if (hosts !== 3 && hosts !== 5) {
  console.error(`--hosts must be 3 or 5\n${USAGE}`)
  process.exit(2)
}

let cluster: LabCluster | undefined
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: tearing the lab down`)
    const c = cluster
    if (!c) process.exit(130)
    const dir = c.keepLogs(`chaos-seed${seed}-interrupted`)
    console.error(`logs kept in ${dir}`)
    void c.down().finally(() => process.exit(130))
  })
}

try {
  const result = await runChaos({
    seed,
    minutes,
    hosts,
    keepLogs: values["keep-logs"],
    onCluster: (c) => {
      cluster = c
    },
  })
  console.log(`\nchaos seed ${seed}, ${hosts} hosts, ${minutes} min:\n${formatReport(result)}`)
  process.exit(result.problems.length === 0 ? 0 : 1)
} catch (error) {
  console.error(
    `chaos seed ${seed}: the run failed: ${error instanceof Error ? error.message : String(error)}`,
  )
  process.exit(1)
}
