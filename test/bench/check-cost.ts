// What HAProxy's health checks cost the agents: one 3-member cluster at rest,
// alternating windows without and with HAProxy (the shipped example's write
// and read checks, test/lab/haproxy.ts), every agent's CPU per window. The
// same cluster and back-to-back windows, so that the machine's load and the
// agent's warm-up weigh alike on both sides (compare ratios, not absolutes).
//   MHA_LAB_ID_PREFIX=lb bash scripts/node24.sh test/bench/check-cost.ts [--window-s 30] [--rounds 2]
import { execSync } from "node:child_process"
import { parseArgs } from "node:util"
import { LabCluster } from "../lab/cluster.ts"
import { sleep } from "../lab/exec.ts"
import { shippedPrimaryChecks, startHaproxy } from "../lab/haproxy.ts"
import { cpuPercent } from "./measure.ts"
import { agentCosts } from "./stress.ts"

const { values } = parseArgs({
  options: {
    "window-s": { type: "string", default: "30" },
    rounds: { type: "string", default: "2" },
  },
})
const windowMs = Number(values["window-s"]) * 1000
const hz = Number(execSync("getconf CLK_TCK", { encoding: "utf8" }).trim()) || 100
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

const c = await LabCluster.up({})
try {
  await c.waitForPrimary(20_000)
  await c.lab.stopProcess("client", "writer")
  await c.lab.stopProcess("client", "sampler")
  await sleep(10_000)
  const window = async (label: string) => {
    const before = agentCosts(c)
    const t0 = Date.now()
    await sleep(windowMs)
    const after = agentCosts(c)
    const ms = Date.now() - t0
    const cpu = after.map((a, i) => cpuPercent(before[i]!.cpuTicks, a.cpuTicks, ms, hz))
    console.log(`${label}: ${after.map((a, i) => `${a.host} ${cpu[i]!.toFixed(2)} %`).join(", ")}`)
    return median(cpu)
  }
  const without: number[] = []
  const withChecks: number[] = []
  for (let r = 0; r < Number(values.rounds); r++) {
    without.push(await window(`round ${r + 1} without HAProxy`))
    await startHaproxy(c.lab)
    await sleep(3_000)
    withChecks.push(
      await window(`round ${r + 1} with HAProxy (${shippedPrimaryChecks().lines.join("; ")})`),
    )
    await c.lab.stopProcess("client", "haproxy")
    await sleep(3_000)
  }
  // Each agent answers the read backend's check every second, and the write backend's: one
  // per `wait` + `inter` when the checks are held (?wait=), else every `inter` while it is the
  // primary (UP there) and every `downinter` while a replica (DOWN there). Estimated from the
  // config, not counted.
  const checks = shippedPrimaryChecks().lines.join(" ")
  const every = (name: string, fallback: number) =>
    Number(new RegExp(`\\b${name} (\\d+)ms`).exec(checks)?.[1] ?? fallback)
  const hold = Number(/[?&]wait=(\d+)/.exec(checks)?.[1] ?? 0)
  const primaryRate = 1000 / (hold + every("inter", 2000)) + 1
  const replicaRate = 1000 / (hold + every("downinter", every("inter", 2000))) + 1
  const extra = median(withChecks) - median(without)
  console.log(
    `median agent CPU: ${median(without).toFixed(2)} % without, ${median(withChecks).toFixed(2)} % with HAProxy: +${extra.toFixed(2)} points; checks per second: ${primaryRate.toFixed(0)} on the primary, ${replicaRate.toFixed(0)} on each replica; about ${((extra / 100 / ((primaryRate + 2 * replicaRate) / 3)) * 1e6).toFixed(0)} µs of CPU per check`,
  )
} finally {
  await c.down()
}
