// The packaged binary runs the daemon (issue 7): the lab's three agents run
// `dist/mha-agent run` (the Node 24 single-executable application that goes
// into the .deb and the .rpm) instead of the source tree, and the basic
// failover scenario (2: the primary's mysqld cannot restart) passes with the
// same invariants as test/lab/failover.test.ts: no acknowledged write lost,
// never two writable nodes, convergence to one primary.
//
// The binary is dist/'s when it is newer than every source, else a quick
// build (MHA_COMPRESS=gzip) into a temporary directory (see helpers.ts).
// test/lab/agents.ts runs $MHA_AGENT_BIN when it is set. That the agents
// really are the binary is checked on each running agent: /proc/PID/exe is
// the binary, and its /metrics reports the commit baked into the bundle
// (`mha_agent_info{commit=...}`, "unknown" from the source tree).
import assert from "node:assert/strict"
import { existsSync } from "node:fs"
import { readFile, readlink, realpath, rm } from "node:fs/promises"
import { join } from "node:path"
import { after, before, test } from "node:test"
import { LabCluster } from "../lab/cluster.ts"
import { HTTP_PORT } from "../lab/network.ts"
import { mysqldCannotRestart } from "../lab/scenarios.ts"
import { packagesUnderTest, run, scratchDir } from "./helpers.ts"

const isRoot = process.getuid?.() === 0
const skip = isRoot ? false : "needs root (the lab: network namespaces, MySQL)"

const log = (line: string): void => {
  process.stderr.write(`# binary-failover: ${line}\n`)
}
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`

let scratch = ""
let bin = ""
let built: { version: string; commit: string; node: string }
const previousBin = process.env.MHA_AGENT_BIN

before(
  async () => {
    if (!isRoot) return
    const started = Date.now()
    scratch = await scratchDir("binary")
    const pkgs = await packagesUnderTest(scratch, log)
    bin = await realpath(join(pkgs.dir, "mha-agent"))
    built = JSON.parse((await run(bin, ["version", "--json"])).stdout) as typeof built
    assert.match(built.node, /^v24\./)
    assert.notEqual(built.commit, "unknown", "the binary has its commit baked in")
    log(`binary ${bin} (${built.version}, ${built.commit}) ready in ${seconds(started)}`)
    process.env.MHA_AGENT_BIN = bin
  },
  { timeout: 20 * 60_000 },
)

after(async () => {
  if (previousBin === undefined) delete process.env.MHA_AGENT_BIN
  else process.env.MHA_AGENT_BIN = previousBin
  if (scratch !== "") await rm(scratch, { recursive: true, force: true })
})

/** What a running agent is: its executable, and the /metrics info line. */
const agentIdentity = async (c: LabCluster, host: string) => {
  const address = c.lab.host(host).address
  const pidFile = join(c.lab.runDir(), host, "agent.pid")
  assert.ok(existsSync(pidFile), `${host}: no agent.pid`)
  const pid = Number((await readFile(pidFile, "utf8")).trim())
  const exe = await readlink(`/proc/${pid}/exe`)
  const argv0 = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0")[0]
  const fetchMetrics = `fetch("http://${address}:${HTTP_PORT}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))`
  const metrics = await c.lab.exec(host, [process.execPath, "-e", fetchMetrics])
  const info = metrics.stdout.split("\n").find((l) => l.startsWith("mha_agent_info{"))
  return { pid, exe, argv0, info }
}

test("binary: scenario 2 (the primary's mysqld cannot restart) with the agents run from the packaged binary", {
  skip,
  timeout: 300_000,
}, async () => {
  const started = Date.now()
  const c = await LabCluster.up({ timings: { restart_timeout: "10s", apply_timeout: "10s" } })
  log(`lab and agents up in ${seconds(started)}`)
  let failed = true
  try {
    for (const h of c.lab.hosts) {
      const id = await agentIdentity(c, h.name)
      assert.equal(id.exe, bin, `${h.name}: the agent (pid ${id.pid}) runs the binary`)
      assert.equal(id.argv0, bin, `${h.name}: argv[0]`)
      assert.ok(id.info !== undefined, `${h.name}: /metrics has mha_agent_info`)
      assert.ok(
        id.info.includes(`commit="${built.commit}"`) &&
          id.info.includes(`version="${built.version}"`),
        `${h.name}: the daemon is the bundle: ${id.info}`,
      )
    }
    const agentLog = await readFile(c.agents.logPath(c.lab.hosts[0]!.name), "utf8")
    const first = agentLog.split("\n").filter((l) => l.trim() !== "")
    assert.ok(first.length > 0, "the agent logged")
    for (const l of first.slice(0, 5))
      assert.doesNotThrow(() => JSON.parse(l), `a JSON log line: ${l}`)

    const scenarioStarted = Date.now()
    const faultAt = await mysqldCannotRestart(c)
    const result = await c.check(faultAt)
    assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
    log(
      `failover from the binary: client-observed write downtime ${result.downtimeMs} ms, ${result.acked} acknowledged writes, none lost${result.diverged.length > 0 ? `; ${result.diverged.join(", ")} left DIVERGED (unacknowledged transactions of its own, reported by its agent)` : ""}; scenario and check ${seconds(scenarioStarted)}`,
    )
    // The agents that did the failover are still the binary's.
    for (const h of c.lab.hosts) {
      const id = await agentIdentity(c, h.name)
      assert.equal(id.exe, bin, `${h.name}: still the binary after the failover`)
    }
    failed = false
  } finally {
    if (failed) log(`logs kept in ${c.keepLogs("binary-failover")}`)
    await c.down()
    log(`took ${seconds(started)} (lab up to down)`)
  }
})
