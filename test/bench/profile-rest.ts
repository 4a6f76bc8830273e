// Where an agent's CPU goes at rest (issue 12): a lab cluster as the bench's
// "rest" scenario has it, every agent under `--cpu-prof` (NODE_OPTIONS: the
// source tree, or the binary given in MHA_AGENT_BIN), settling (10 s), a
// window, then the agents stopped gracefully so that they write their
// profiles. Prints, per agent, the samples inside the window: self time by
// function and by package, and the time under a few entry points.
//   bash scripts/node24.sh test/bench/profile-rest.ts [--hosts 3] [--settle 10] [--window 60] [--top 25]
// Not part of `npm test`; run it under the lab lock like the bench.
import { mkdirSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { LabCluster } from "../lab/cluster.ts"
import { sleep } from "../lab/exec.ts"

const { values } = parseArgs({
  options: {
    hosts: { type: "string", default: "3" },
    window: { type: "string", default: "60" },
    // Seconds after the writer stops before the window opens (V8 still compiles in the first minute).
    settle: { type: "string", default: "10" },
    top: { type: "string", default: "25" },
    dir: { type: "string", default: `/tmp/mha-profile-rest-${process.pid}` },
  },
})

interface ProfileNode {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
  }
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const packageOf = (url: string): string => {
  if (url === "") return "(native)"
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m) return m[1] as string
  const ours = /\/(agent\/src\/[^/]+|shared)\//.exec(url)
  if (ours) return ours[1] as string
  if (url.startsWith("node:")) return "node"
  return url.split("/").slice(-1)[0] ?? url
}

/** Milliseconds of samples inside [fromUs, toUs] (CLOCK_MONOTONIC µs, as V8 stamps them). */
const analyse = (p: Profile, fromUs: number, toUs: number) => {
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<string, number>()
  const pkgs = new Map<string, number>()
  const under = new Map<string, number>()
  let t = p.startTime
  let total = 0
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0
    t += dt
    if (t < fromUs || t > toUs) continue
    const node = byId.get(p.samples[i] as number)
    if (node === undefined) continue
    const ms = (p.timeDeltas[i + 1] ?? dt) / 1000
    const f = node.callFrame
    if (f.functionName === "(idle)") continue
    total += ms
    const key = `${f.functionName || "(anonymous)"} ${packageOf(f.url)}:${f.lineNumber + 1}`
    self.set(key, (self.get(key) ?? 0) + ms)
    pkgs.set(packageOf(f.url), (pkgs.get(packageOf(f.url)) ?? 0) + ms)
    // Inclusive time per package on the stack (each package once per sample).
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const u = byId.get(id)?.callFrame.url ?? ""
      const k = packageOf(u)
      if (seen.has(k)) continue
      seen.add(k)
      under.set(k, (under.get(k) ?? 0) + ms)
    }
  }
  return { total, self, pkgs, under }
}

const top = (m: Map<string, number>, n: number, seconds: number): string =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, ms]) => `  ${(ms / 10 / seconds).toFixed(3).padStart(7)} %  ${k}`)
    .join("\n")

const dir = values.dir
mkdirSync(dir, { recursive: true })
const windowS = Number(values.window)
const c = await LabCluster.up({
  hosts: Number(values.hosts),
  // The bench's timings (run.ts BENCH_TIMINGS; not imported: run.ts runs the bench when loaded).
  timings: { restart_timeout: "10s", apply_timeout: "10s" },
  env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` },
})
let fromUs = 0
let toUs = 0
try {
  await c.lab.stopProcess("client", "writer")
  await c.lab.stopProcess("client", "sampler")
  await sleep(Number(values.settle) * 1000)
  fromUs = Number(process.hrtime.bigint() / 1000n)
  await sleep(windowS * 1000)
  toUs = Number(process.hrtime.bigint() / 1000n)
  await c.agents.stopAll()
} finally {
  await c.down()
}
const n = Number(values.top)
for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
  const p = JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile
  const r = analyse(p, fromUs, toUs)
  if (r.total === 0) continue
  console.log(`\n== ${file}: ${(r.total / 10 / windowS).toFixed(3)} % of a core in the window`)
  console.log("by package (self):")
  console.log(top(r.pkgs, 15, windowS))
  console.log("by package (on the stack):")
  console.log(top(r.under, 15, windowS))
  console.log("by function (self):")
  console.log(top(r.self, n, windowS))
}
