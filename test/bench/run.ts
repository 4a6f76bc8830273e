// The benchmark of lab.md: repeats scenarios on the real lab and appends one
// record per run to bench/results.json; bench/results.md is regenerated from
// all records after every run (and alone with --report).
//   npm run bench -- [--runs N] [--only 1,2,hung,3,5,6,8,rest,rest-3,rest-7] [--report] [--keep-logs]
//                    [--commit REV | --working-tree] [--packaged] [--profile default|fast] [--haproxy]
//                    [--rest-warmup S] [--results bench/results.json] [--out bench/results.md]
// --profile fast runs the agents with the documented fast timings (FAST_TIMINGS) and
// records the runs under the scenario's key with "-fast" (e.g. 3-fast, 6-fast).
// --haproxy also runs HAProxy with the shipped example config in the client's
// namespace and a second writer through it, for the failover scenarios (1, 2,
// hung, 3, 8): their records then hold the downtime through HAProxy too; and for
// "rest" (3 members, key rest-3-haproxy): what its checks cost the agents.
// --rest-warmup S waits S seconds (default 180: the steady state, key e.g. rest-7-bin-warm180)
// before the rest window; a run that waits 70 s or more also records each agent's CPU
// through the first minute after start (10 to 70 s), when V8 still compiles the agent's
// code. --rest-warmup 10 gives the rows of before (keys without "-warm"); warm840: after
// a quarter of an hour, where a slow growth of native memory shows.
// Run every chunk under the lab lock: flock /tmp/mha-lab.lock npm run bench -- --only 3 --runs 5
// --runs defaults to 5 for the scenarios and to 1 for "rest", "rest-3" and "rest-7" (one run of "rest" is 2 × 4 minutes).
import { execSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { loadavg } from "node:os"
import { dirname, join } from "node:path"
import { parseArgs } from "node:util"
import { parseConfigText } from "../../agent/src/daemon/config-load.ts"
import { type ClusterOptions, LabCluster } from "../lab/cluster.ts"
import { sleep, waitFor } from "../lab/exec.ts"
import { backendStates, startHaproxy, startHaproxyWriter } from "../lab/haproxy.ts"
import { agentHttp } from "../lab/http-client.ts"
import { missingAckedWrites, readWriterLog, writeDowntimeMs } from "../lab/invariants.ts"
import {
  mysqldCannotRestart,
  mysqldKilledRestarts,
  primaryIsolated,
  primaryMysqldHung,
  type Scenario,
  switchoverThereAndBack,
} from "../lab/scenarios.ts"
import {
  cpuPercent,
  failoverTimes,
  heapAllocKiBPerSecond,
  type LogLine,
  loopDelayMs,
  machineBusyTicks,
  parseAgentLog,
  parseTraceGc,
  reportsFailure,
  switchoverPhases,
  type TracedGc,
} from "./measure.ts"
import { type RunRecord, renderReport } from "./report.ts"
import {
  agentComm,
  agentCosts,
  primaryAgentKilled,
  primaryAgentPaused,
  randomLossEverywhere,
  type StressOutcome,
} from "./stress.ts"

const repo = join(import.meta.dirname, "../..")

/** The timings every run uses: the defaults, with the lab tests' shorter restart and apply timeouts. */
export const BENCH_TIMINGS = { restart_timeout: "10s", apply_timeout: "10s" } as const
/**
 * The "fast" timing profile of packaging/config.example.yaml: half the default
 * lease and election timeouts, heartbeats twice as often
 * (heartbeat_interval * 2 + rpc_timeout stays below the lease).
 */
export const FAST_TIMINGS = {
  lease_duration: "2s",
  heartbeat_interval: "250ms",
  election_timeout_min: "150ms",
  election_timeout_max: "600ms",
} as const
const PAUSE_MS = 3000
const LOSS_PERCENT = 30
const LOSS_MS = 60_000
const REST_WINDOW_MS = 60_000
/** Clock ticks per second of /proc's CPU times. */
const clockTicks = (): number =>
  Number(execSync("getconf CLK_TCK", { encoding: "utf8" }).trim()) || 100
/** The first minute after start, recorded beside a later window: 10 to 70 s after the lab is up. */
const FIRST_MINUTE = { fromS: 10, toS: 70 } as const

const { values } = parseArgs({
  options: {
    runs: { type: "string" },
    only: { type: "string", default: "1,2,hung,3,5,6,8,rest" },
    report: { type: "boolean", default: false },
    "keep-logs": { type: "boolean", default: false },
    "working-tree": { type: "boolean", default: false },
    packaged: { type: "boolean", default: false },
    commit: { type: "string", default: "HEAD" },
    profile: { type: "string", default: "default" },
    haproxy: { type: "boolean", default: false },
    // Seconds between the lab coming up and the rest window. V8 still compiles hot
    // code for a minute or two after start and RSS climbs to a plateau: 180 measures
    // the steady state, what an agent costs for as long as it runs (issue 12), and
    // the first minute is recorded beside it. 10 gives the rows of issues 6 to 12.
    "rest-warmup": { type: "string", default: "180" },
    results: { type: "string", default: join(repo, "bench/results.json") },
    out: { type: "string", default: join(repo, "bench/results.md") },
  },
})

const REST_WARMUP_S = Number(values["rest-warmup"])
if (!Number.isInteger(REST_WARMUP_S) || REST_WARMUP_S < 0)
  throw new Error(`--rest-warmup takes whole seconds, not '${values["rest-warmup"]}'`)

const readRecords = (): RunRecord[] =>
  existsSync(values.results)
    ? (JSON.parse(readFileSync(values.results, "utf8")) as RunRecord[])
    : []

const writeReport = (): void => {
  mkdirSync(dirname(values.out), { recursive: true })
  writeFileSync(values.out, renderReport(readRecords()))
}

const append = (r: RunRecord): void => {
  const all = readRecords()
  all.push(r)
  mkdirSync(dirname(values.results), { recursive: true })
  writeFileSync(values.results, `${JSON.stringify(all, null, 1)}\n`)
  writeReport()
}

const git = (args: string): string =>
  execSync(`git ${args}`, { cwd: repo, encoding: "utf8" }).trim()

/** True when the agents are a binary (packaged, or a given MHA_AGENT_BIN) rather than the source on Node 24. */
let binaryAgent = false

/**
 * Which agent the runs use. Others edit the checkout while the bench runs, so
 * by default the agent is one commit's agent/ and shared/ (--commit, default
 * HEAD), exported with git archive into /tmp and run from there through
 * MHA_AGENT_BIN, which the lab honours. --packaged builds that commit's
 * single binary (packaging/build.sh) in /tmp and runs it instead;
 * --working-tree runs the checkout as it is; a given MHA_AGENT_BIN wins.
 */
const chooseAgent = (): string => {
  if (process.env.MHA_AGENT_BIN) {
    binaryAgent = true
    return `MHA_AGENT_BIN=${process.env.MHA_AGENT_BIN}`
  }
  const commit = git(`rev-parse --short ${values.commit}`)
  if (values["working-tree"]) {
    const dirty = git("status --porcelain -- agent shared") !== ""
    return dirty ? `${commit}+uncommitted agent/shared changes` : commit
  }
  const exportTo = (dir: string, paths: string): void => {
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    execSync(`git archive ${commit} ${paths} | tar -x -C ${dir}`, { cwd: repo })
    symlinkSync(join(repo, "node_modules"), join(dir, "node_modules"))
  }
  if (values.packaged) {
    const dir = `/tmp/mha-bench-pkg-${commit}`
    const bin = join(dir, "dist/mha-agent")
    if (!existsSync(bin)) {
      exportTo(dir, "agent shared packaging package.json tsconfig.json")
      const epoch = git(`log -1 --format=%ct ${commit}`)
      execSync(`bash packaging/build.sh`, {
        cwd: dir,
        stdio: ["ignore", "ignore", "inherit"],
        env: {
          ...process.env,
          MHA_DIST: join(dir, "dist"),
          MHA_COMPRESS: "gzip",
          SOURCE_DATE_EPOCH: epoch,
        },
      })
    }
    process.env.MHA_AGENT_BIN = bin
    binaryAgent = true
    return `${commit} (packaged)`
  }
  const dir = `/tmp/mha-bench-agent-${commit}`
  const bin = join(dir, "run-agent.sh")
  if (!existsSync(bin)) {
    exportTo(dir, "agent shared package.json tsconfig.json")
    writeFileSync(
      bin,
      `#!/bin/sh\nexec ${process.execPath} --disable-warning=ExperimentalWarning ${dir}/agent/src/main.ts "$@"\n`,
      { mode: 0o755 },
    )
  }
  process.env.MHA_AGENT_BIN = bin
  return commit
}

/** The agents' effective timings in ms, decoded by the agent's own config loader. */
const effectiveTimings = (c: LabCluster): Record<string, number> => {
  const parsed = parseConfigText(readFileSync(c.agents.configPath("db1"), "utf8"))
  if (parsed._tag !== "Ok") throw new Error(`the lab's agent config does not parse`)
  return { ...parsed.config.timings } as Record<string, number>
}

const agentLines = (c: LabCluster): LogLine[] =>
  c.lab.hosts.flatMap((h) => {
    const file = c.agents.logPath(h.name)
    return existsSync(file) ? parseAgentLog(h.name, readFileSync(file, "utf8")) : []
  })

const maxTerm = (c: LabCluster): number => Math.max(...c.lab.hosts.map((h) => c.term(h.name)))

const lostWrites = (problems: ReadonlyArray<string>): number =>
  problems
    .map((p) => /^(\d+) acknowledged writes missing/.exec(p)?.[1])
    .reduce((n, m) => n + (m === undefined ? 0 : Number(m)), 0)

let agentVersion = "?"

const base = (scenario: string, run: number) => ({
  scenario,
  run,
  commit: agentVersion,
  at: new Date().toISOString(),
  loadavg: loadavg().map((x) => Number(x.toFixed(2))),
})

/** One run on a fresh cluster; failures become records too (with the kept logs). */
const onCluster = async (
  scenario: string,
  run: number,
  options: ClusterOptions,
  body: (c: LabCluster) => Promise<Partial<RunRecord>>,
): Promise<RunRecord> => {
  const started = base(`${scenario}${fast ? "-fast" : ""}`, run)
  let c: LabCluster
  try {
    c = await LabCluster.up({
      timings: { ...BENCH_TIMINGS, ...(fast ? FAST_TIMINGS : {}) },
      ...options,
    })
  } catch (e) {
    return { ...started, ok: false, error: `lab up: ${e instanceof Error ? e.message : e}` }
  }
  try {
    const timings = effectiveTimings(c)
    const r = await body(c)
    const ok = r.ok ?? (r.problems ?? []).length === 0
    const logs =
      !ok || r.falseFailover || values["keep-logs"] ? c.keepLogs(`bench${scenario}`) : undefined
    return { ...started, timings, ...r, ok, ...(logs ? { logs } : {}) }
  } catch (e) {
    return {
      ...started,
      ok: false,
      error: e instanceof Error ? e.message.split("\n")[0]! : String(e),
      logs: c.keepLogs(`bench${scenario}`),
    }
  } finally {
    await c.down()
  }
}

/** HAProxy (packaging/haproxy.cfg.example) and a second writer through it, once it sees the primary. */
const startHaproxyPath = async (c: LabCluster): Promise<string> => {
  await startHaproxy(c.lab)
  const primary = await c.waitForPrimary(10_000)
  await waitFor(
    `HAProxy to send writes to ${primary}`,
    async () =>
      (await backendStates(c.lab).catch(() => ({}) as Record<string, string>))[primary]?.startsWith(
        "UP",
      ) === true,
    20_000,
    200,
  )
  const out = join(c.lab.runDir(), "writer-haproxy.ndjson")
  await startHaproxyWriter(c.lab, out)
  await waitFor(
    "writes acknowledged through HAProxy",
    () => readWriterLog(out).acked.length > 20,
    30_000,
  )
  return out
}

/** The HAProxy writer's downtime after the fault, its switchover blocks, and acknowledged writes the primary lacks. */
const haproxyOutcome = async (
  c: LabCluster,
  out: string,
  lines: ReadonlyArray<LogLine>,
  faultAt: number,
): Promise<NonNullable<RunRecord["haproxy"]>> => {
  await c.lab.stopProcess("client", "writer-haproxy")
  const log = readWriterLog(out)
  const primary = await c.waitForPrimary(30_000)
  const missing = await missingAckedWrites(c.lab, primary, log)
  return {
    downtimeMs: writeDowntimeMs(log, faultAt),
    acked: log.acked.length,
    lostWrites: missing.length,
    switchoverBlocksMs: switchoverPhases(lines, log, faultAt).map((x) => x.blockMs),
  }
}

const failoverRun = (key: string, scenario: Scenario) => (run: number) =>
  onCluster(key, run, {}, async (c) => {
    const termBefore = maxTerm(c)
    const viaHaproxy = values.haproxy ? await startHaproxyPath(c) : undefined
    const faultAt = await scenario(c)
    const check = await c.check(faultAt)
    const lines = agentLines(c)
    const writes = c.writes()
    const haproxy =
      viaHaproxy === undefined ? undefined : await haproxyOutcome(c, viaHaproxy, lines, faultAt)
    return {
      ...(haproxy === undefined ? {} : { haproxy }),
      downtimeMs: check.downtimeMs,
      acked: check.acked,
      lostWrites: lostWrites(check.problems),
      problems: check.problems,
      diverged: check.diverged,
      termBefore,
      termAfter: maxTerm(c),
      times: failoverTimes(lines, writes, faultAt),
      ...(key === "8" ? { switchovers: switchoverPhases(lines, writes, faultAt) } : {}),
    }
  })

const stressRun =
  (key: string, stress: (c: LabCluster) => Promise<StressOutcome>) => (run: number) =>
    onCluster(key, run, {}, async (c) => {
      const o = await stress(c)
      const check = await c.check(o.faultAt)
      const lines = agentLines(c).filter((l) => l.t >= o.faultAt)
      const elections = lines.filter((l) => l.event === "elected")
      // What the agents said about the primary during the stress: the story of a false failover.
      const incident = lines
        .filter((l) => reportsFailure(l) || ["elected", "promoted", "step-down"].includes(l.event))
        .sort((a, b) => a.t - b.t)
        .slice(0, 30)
        .map((l) => `+${l.t - o.faultAt} ms ${l.host} ${l.event}: ${l.msg}`)
      return {
        what: o.what,
        downtimeMs: check.downtimeMs,
        acked: check.acked,
        lostWrites: lostWrites(check.problems),
        problems: check.problems,
        diverged: check.diverged,
        termBefore: o.termBefore,
        termAfter: o.termAfter,
        primaryBefore: o.primaryBefore,
        primaryAfter: o.primaryAfter ?? "none",
        elections: elections.map((l) => `${l.host}: ${l.msg}`),
        incident,
        falseFailover: o.termAfter !== o.termBefore || o.primaryAfter !== o.primaryBefore,
      }
    })

/** The heap allocation rate from the collection `from` on, rounded; nothing without two collections. */
const allocRate = (
  gcs: ReadonlyArray<TracedGc>,
  from: number,
): { heapAllocKiBPerSecond?: number } => {
  const rate = heapAllocKiBPerSecond(gcs, from)
  return rate === undefined ? {} : { heapAllocKiBPerSecond: Number(rate.toFixed(1)) }
}

/**
 * The binary as after a boot: out of the page cache, so that the agents fault its
 * pages in from disk. A binary just written (by the build, or a copy) sits in the
 * page cache in large folios, and a process that maps it then counts more of it as
 * resident: 69 instead of 57 MiB of file-backed RSS, the same binary, on this
 * machine's kernel (6.18). sync writes its dirty pages, then dd's documented way
 * to drop one file's cached pages (read-only: a binary in use stays usable).
 */
const asAfterBoot = (bin: string): void => {
  execSync(`sync ${bin} && dd if=${bin} iflag=nocache count=0 status=none`)
}

/** A binary agent (e.g. the packaged one) is measured at rest under keys of its own. */
// With --haproxy (3 members only), HAProxy checks every agent as the shipped example says
// through the window: what its checks cost the agents.
const restRun = (hosts: number) => (run: number) => {
  if (binaryAgent && process.env.MHA_AGENT_BIN) asAfterBoot(process.env.MHA_AGENT_BIN)
  return onCluster(
    `rest-${hosts}${binaryAgent ? "-bin" : ""}${values.haproxy ? "-haproxy" : ""}${REST_WARMUP_S === 10 ? "" : `-warm${REST_WARMUP_S}`}`,
    run,
    // V8's --trace-gc (MHA_AGENT_TRACE_GC): each agent's log holds a line per collection,
    // which gives the bytes it allocated on its heap (one printf per collection, about one a second).
    { hosts, env: { MHA_AGENT_TRACE_GC: "1" } },
    async (c) => {
      // At rest: no client traffic, only the agents and their mysqlds.
      await c.lab.stopProcess("client", "writer")
      await c.lab.stopProcess("client", "sampler")
      if (values.haproxy) await startHaproxy(c.lab)
      const upAt = Date.now()
      // The first minute after start, when the steady window comes later.
      let firstMinute: ReadonlyArray<number> | undefined
      if (REST_WARMUP_S >= FIRST_MINUTE.toS) {
        await sleep(FIRST_MINUTE.fromS * 1000)
        const from = agentCosts(c)
        const fromAt = Date.now()
        await sleep((FIRST_MINUTE.toS - FIRST_MINUTE.fromS) * 1000)
        const to = agentCosts(c)
        const ms = Date.now() - fromAt
        const hz = clockTicks()
        firstMinute = to.map((a, i) =>
          Number(cpuPercent(from[i]!.cpuTicks, a.cpuTicks, ms, hz).toFixed(3)),
        )
      }
      await sleep(Math.max(0, upAt + REST_WARMUP_S * 1000 - Date.now()))
      // New connections the primary's mysqld accepted through the window (its
      // Connections status counter; our own two readings are one of them).
      const primary = await c.waitForPrimary(10_000)
      const connections = async () =>
        Number(
          (
            await c.lab.query<{ Value: string }>(primary, "SHOW GLOBAL STATUS LIKE 'Connections'")
          )[0]?.Value,
        )
      // Each agent's collections so far (the --trace-gc lines in its log).
      const collections = () =>
        c.lab.hosts.map((h) => parseTraceGc(readFileSync(c.agents.logPath(h.name), "utf8")))
      // Every agent scraped at both ends of the window, as Prometheus would (a
      // scrape brings code and data of its own into memory).
      const scrape = () => Promise.all(c.lab.hosts.map((h) => agentHttp(c.lab, h.name, "/metrics")))
      const connectionsBefore = await connections()
      await scrape()
      const collectionsBefore = collections()
      const t0 = Date.now()
      const machineBefore = machineBusyTicks(readFileSync("/proc/stat", "utf8"))
      const before = agentCosts(c)
      // RSS every 10 s through the window: a steady climb and a sawtooth look alike at the ends.
      const series: number[][] = before.map((a) => [a.rssMiB])
      for (let waited = 0; waited < REST_WINDOW_MS; waited += 10_000) {
        await sleep(Math.min(10_000, REST_WINDOW_MS - waited))
        agentCosts(c).forEach((a, i) => series[i]?.push(a.rssMiB))
      }
      const after = agentCosts(c)
      const machineAfter = machineBusyTicks(readFileSync("/proc/stat", "utf8"))
      const ms = Date.now() - t0
      const pagesAfter = await scrape()
      // Each agent's event-loop delay since it started, startup included (its own histogram).
      const loopDelays = pagesAfter.map((page) => {
        const { p99, max } = loopDelayMs(page.body)
        return Number.isFinite(p99) && Number.isFinite(max)
          ? { loopDelayP99Ms: Number(p99.toFixed(2)), loopDelayMaxMs: Number(max.toFixed(2)) }
          : {}
      })
      const collectionsAfter = collections()
      const newConnections = (await connections()) - connectionsBefore - 1
      const hz = clockTicks()
      return {
        ok: true,
        windowMs: ms,
        agentCommand: agentComm(c, "db1"),
        primaryConnectionsPerSecond: Number((newConnections / (ms / 1000)).toFixed(2)),
        // What else ran through the window: a busy machine inflates every agent's CPU.
        othersCpuPercent: Number(
          (
            cpuPercent(machineBefore, machineAfter, ms, hz) -
            after.reduce(
              (sum, a, i) => sum + cpuPercent(before[i]!.cpuTicks, a.cpuTicks, ms, hz),
              0,
            )
          ).toFixed(1),
        ),
        agents: after.map((a, i) => ({
          host: a.host,
          cpuPercent: Number(cpuPercent(before[i]!.cpuTicks, a.cpuTicks, ms, hz).toFixed(3)),
          ...(firstMinute === undefined ? {} : { firstMinuteCpuPercent: firstMinute[i] }),
          ...loopDelays[i],
          rssMiB: Number(a.rssMiB.toFixed(1)),
          rssStartMiB: Number(before[i]!.rssMiB.toFixed(1)),
          anonMiB: Number(a.anonMiB.toFixed(1)),
          fileMiB: Number(a.fileMiB.toFixed(1)),
          rssSeriesMiB: (series[i] ?? []).map((x) => Math.round(x)),
          // From the last collection before the window to the last one in it.
          ...allocRate(collectionsAfter[i] ?? [], (collectionsBefore[i]?.length ?? 0) - 1),
        })),
      }
    },
  )
}

if (values.profile !== "default" && values.profile !== "fast")
  throw new Error(`unknown --profile '${values.profile}' (known: default, fast)`)
const fast = values.profile === "fast"

const PLAN: Record<string, ReadonlyArray<(run: number) => Promise<RunRecord>>> = {
  "1": [failoverRun("1", mysqldKilledRestarts)],
  "2": [failoverRun("2", mysqldCannotRestart)],
  hung: [failoverRun("hung", primaryMysqldHung())],
  "3": [failoverRun("3", primaryIsolated)],
  "8": [failoverRun("8", switchoverThereAndBack)],
  "5": [
    stressRun("5-pause", (c) => primaryAgentPaused(c, PAUSE_MS)),
    stressRun("5-kill", primaryAgentKilled),
  ],
  "6": [stressRun("6", (c) => randomLossEverywhere(c, LOSS_PERCENT, LOSS_MS))],
  rest: values.haproxy ? [restRun(3)] : [restRun(3), restRun(7)],
  // One size alone (a long --rest-warmup takes a quarter of an hour per run).
  "rest-3": [restRun(3)],
  "rest-7": [restRun(7)],
}

if (values.report) {
  writeReport()
  console.log(`wrote ${values.out} from ${readRecords().length} records in ${values.results}`)
} else {
  agentVersion = chooseAgent()
  console.log(`agent: ${agentVersion} (${process.env.MHA_AGENT_BIN ?? "the working tree"})`)
  const keys = values.only.split(",").map((k) => k.trim())
  for (const k of keys) {
    if (!PLAN[k])
      throw new Error(`unknown --only item '${k}' (known: ${Object.keys(PLAN).join(", ")})`)
  }
  for (const k of keys) {
    const runs = Number(values.runs ?? (k.startsWith("rest") ? 1 : 5))
    for (let i = 1; i <= runs; i++) {
      for (const step of PLAN[k]!) {
        const r = await step(i)
        append(r)
        console.log(summary(r))
      }
    }
  }
  console.log(`results: ${values.results}; report: ${values.out}`)
}

function summary(r: RunRecord): string {
  const parts = [`scenario ${r.scenario} run ${r.run}: ${r.ok ? "ok" : "FAILED"}`]
  if (r.downtimeMs !== undefined) parts.push(`downtime ${r.downtimeMs} ms`)
  if (r.haproxy)
    parts.push(
      `through HAProxy: downtime ${r.haproxy.downtimeMs} ms, ${r.haproxy.lostWrites} lost${r.haproxy.switchoverBlocksMs.length > 0 ? `, blocks ${JSON.stringify(r.haproxy.switchoverBlocksMs)}` : ""}`,
    )
  if (r.switchovers) parts.push(`switchovers ${JSON.stringify(r.switchovers)}`)
  if (r.times) parts.push(JSON.stringify(r.times))
  if (r.falseFailover !== undefined)
    parts.push(`term ${r.termBefore}→${r.termAfter}, primary ${r.primaryBefore}→${r.primaryAfter}`)
  if (r.agents)
    parts.push(r.agents.map((a) => `${a.host} ${a.cpuPercent}% ${a.rssMiB} MiB`).join(", "))
  if (r.problems?.length) parts.push(`problems: ${r.problems.join("; ")}`)
  if (r.error) parts.push(`error: ${r.error}`)
  if (r.logs) parts.push(`logs: ${r.logs}`)
  return parts.join(" | ")
}
