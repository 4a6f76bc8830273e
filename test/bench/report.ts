// bench/results.md from the records of bench/results.json: the machine, the
// timings, one table per metric family (median, p95, max, run count) and the
// issue's targets next to the numbers.
import { execSync } from "node:child_process"
import { readFileSync } from "node:fs"
import type { FailoverTimes, SwitchoverPhases } from "./measure.ts"
import { median, quantile } from "./measure.ts"

export interface RunRecord {
  readonly scenario: string
  readonly run: number
  readonly commit: string
  readonly at: string
  readonly loadavg: ReadonlyArray<number>
  readonly ok: boolean
  readonly error?: string
  readonly logs?: string
  readonly timings?: Readonly<Record<string, number>>
  readonly downtimeMs?: number
  readonly acked?: number
  readonly lostWrites?: number
  readonly problems?: ReadonlyArray<string>
  readonly diverged?: ReadonlyArray<string>
  readonly termBefore?: number
  readonly termAfter?: number
  readonly times?: FailoverTimes
  readonly switchovers?: ReadonlyArray<SwitchoverPhases>
  /** The same fault seen by a second writer through HAProxy (bench --haproxy). */
  readonly haproxy?: {
    readonly downtimeMs: number
    readonly acked: number
    readonly lostWrites: number
    readonly switchoverBlocksMs: ReadonlyArray<number>
  }
  readonly what?: string
  readonly primaryBefore?: string
  readonly primaryAfter?: string
  readonly elections?: ReadonlyArray<string>
  readonly incident?: ReadonlyArray<string>
  readonly falseFailover?: boolean
  readonly windowMs?: number
  readonly agentCommand?: string
  /** At rest: new connections per second accepted by the primary's mysqld (its Connections counter). */
  readonly primaryConnectionsPerSecond?: number
  /**
   * At rest: CPU the machine spent through the window beyond the agents
   * measured (their mysqlds, the kernel, anything else running), % of one
   * core. A row with much more than its neighbours was not taken at rest.
   */
  readonly othersCpuPercent?: number
  readonly agents?: ReadonlyArray<{
    host: string
    cpuPercent: number
    rssMiB: number
    rssStartMiB?: number
    anonMiB?: number
    fileMiB?: number
    rssSeriesMiB?: ReadonlyArray<number>
    /** V8 heap bytes allocated per second through the window (KiB/s): the agent's own counter until 2026-12-06, then its --trace-gc lines. */
    heapAllocKiBPerSecond?: number
    /** CPU through the first minute after start (10 to 70 s), recorded when the window came later. */
    firstMinuteCpuPercent?: number
    /** Event-loop delay since the agent started (its mha_event_loop_delay_seconds): 0.99 quantile and max, ms. */
    loopDelayP99Ms?: number
    loopDelayMaxMs?: number
  }>
}

/** The median and max of the agents' heap allocation rates, or "not measured" (agents before the counter). */
const allocCells = (agents: ReadonlyArray<{ heapAllocKiBPerSecond?: number }>): string => {
  const rates = agents.flatMap((a) =>
    a.heapAllocKiBPerSecond === undefined ? [] : [a.heapAllocKiBPerSecond],
  )
  return rates.length === 0
    ? "not measured | not measured"
    : `${fmt(median(rates), 0)} | ${fmt(Math.max(...rates), 0)}`
}

const NAMES: Record<string, string> = {
  "1": "1: primary mysqld killed, restarts",
  "2": "2: primary mysqld cannot restart",
  hung: "primary mysqld hung (SIGSTOP 20 s)",
  "3": "3: primary host isolated",
  "8": "8: switchover there and back",
  "5-pause": "5: primary's agent paused < lease",
  "5-kill": "5: primary's agent killed -9, restarted",
  "6": "6: 30 % loss on every host, 60 s",
  "3-fast": "3: primary host isolated (fast profile)",
  "6-fast": "6: 30 % loss on every host, 60 s (fast profile)",
  "rest-3": "at rest, 3 members",
  "rest-7": "at rest, 7 members",
  "rest-3-bin": "at rest, 3 members, packaged binary",
  "rest-7-bin": "at rest, 7 members, packaged binary",
  "rest-3-haproxy": "at rest, 3 members, HAProxy checking every agent (shipped example)",
  "rest-3-bin-haproxy": "at rest, 3 members, packaged binary, HAProxy checking every agent",
  "rest-3-bin-warm180": "at rest after 3 minutes, 3 members, packaged binary",
  "rest-7-bin-warm180": "at rest after 3 minutes, 7 members, packaged binary",
  "rest-3-bin-warm840": "at rest after 14 minutes, 3 members, packaged binary",
  "rest-7-bin-warm840": "at rest after 14 minutes, 7 members, packaged binary",
}
// Explicit: an object's integer-like keys would come first.
const ORDER = [
  "1",
  "2",
  "hung",
  "3",
  "8",
  "5-pause",
  "5-kill",
  "6",
  "3-fast",
  "6-fast",
  "rest-3",
  "rest-7",
  "rest-3-bin",
  "rest-7-bin",
  "rest-3-haproxy",
  "rest-3-bin-haproxy",
  "rest-3-bin-warm180",
  "rest-7-bin-warm180",
  "rest-3-bin-warm840",
  "rest-7-bin-warm840",
]

const fmt = (x: number, digits = 0): string => (Number.isNaN(x) ? "–" : x.toFixed(digits))
const stats = (xs: ReadonlyArray<number>, digits = 0): string =>
  `${fmt(median(xs), digits)} | ${fmt(quantile(xs, 0.95), digits)} | ${fmt(xs.length === 0 ? Number.NaN : Math.max(...xs), digits)}`
const status = (met: boolean | undefined): string =>
  met === undefined ? "no data" : met ? "**met**" : "**missed**"
const defined = (xs: ReadonlyArray<number | undefined>): number[] =>
  xs.filter((x): x is number => x !== undefined && Number.isFinite(x))

const machine = (): string[] => {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8")
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown CPU"
  const cores = cpuinfo.split("\n").filter((l) => l.startsWith("processor")).length
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1])
  const kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()
  return [
    `- Machine: ${model}, ${cores} cores, ${fmt(memKb / 1024 / 1024, 1)} GiB RAM, Linux ${kernel} (from /proc).`,
  ]
}

const git = (args: string): string => {
  try {
    return execSync(`git ${args}`, { encoding: "utf8", cwd: import.meta.dirname }).trim()
  } catch {
    return "?"
  }
}

export const renderReport = (records: ReadonlyArray<RunRecord>): string => {
  const by = (s: string) => records.filter((r) => r.scenario === s)
  const present = ORDER.filter((s) => by(s).length > 0)
  const out: string[] = []
  const commits = new Map<string, number>()
  for (const r of records) commits.set(r.commit, (commits.get(r.commit) ?? 0) + 1)
  const dates = records.map((r) => r.at).sort()
  const loads = records.map((r) => r.loadavg[0] ?? 0)
  const timings = records.findLast((r) => r.timings !== undefined)?.timings
  const timingSets = new Set(records.filter((r) => r.timings).map((r) => JSON.stringify(r.timings)))

  out.push("# mha-agent benchmark results", "")
  out.push(
    `Generated ${new Date().toISOString()} (report commit ${git("rev-parse --short HEAD")}) by \`npm run bench\` (test/bench/run.ts) from ${records.length} runs in bench/results.json.`,
    "",
  )
  out.push(...machine())
  out.push(
    `- Runs taken ${dates[0] ?? "–"} to ${dates.at(-1) ?? "–"}, agent code at ${[...commits].map(([c, n]) => `${c} (${n} runs)`).join(", ")}.`,
    `- Other work (builds, unit tests of other people) ran on the machine during these runs; only lab runs were excluded by the lab lock. 1-minute load average at the start of a run: ${fmt(Math.min(...loads), 2)} to ${fmt(Math.max(...loads), 2)}.`,
    `- Lab: real MySQL 9.7 per network namespace, semi-sync strict, 3 hosts (7 for "at rest, 7 members"), the lab supervisor restarts a killed mysqld after 1 s, a client writes through the VIP every 20 ms (each write acknowledged after COMMIT).`,
  )
  if (timings) {
    out.push(
      `- Agent timings (effective, decoded from the agents' config by the agent's own loader; the benchmark sets restart_timeout and apply_timeout to 10 s, the rest are defaults): ${Object.entries(
        timings,
      )
        .map(([k, v]) => `${k} ${v}`)
        .join(
          ", ",
        )} (ms; drift_margin a fraction).${timingSets.size > 1 ? " NOTE: runs used different timings." : ""}`,
    )
  }
  out.push(
    "- Quantiles are nearest-rank: with 5 runs p95 is the maximum.",
    "",
    "Definitions (all times from one clock: the agents' log \"time\" fields, the writer's ack times and the fault time are epoch ms on this machine):",
    "- write downtime: the longest gap between two acknowledged writes through the VIP that ends after the fault, counted from the fault (c.check(faultAt).downtimeMs). Scenario 8: the longer of its two switchovers.",
    '- detection: fault → the first agent log line reporting the failure (mysqld-failed, restart-failed, self-fenced, resigned, primary-resigned, old-primary-unreachable, pre-vote, election, or election-status "election due").',
    "- wait: detection → the first pre-vote (the lease wait, or the restart attempts in scenario 2).",
    "- election: the first pre-vote → elected (the winner's line).",
    "- promotion: elected → promoted on the winner (fencing, catch-up, record committed, writable, VIP added).",
    "- VIP move: vip-acquired on the new primary → the first write acknowledged through the VIP after it (gratuitous ARP, client reconnect).",
    "- fault → first ack: fault → the first acknowledged write after the new primary's vip-acquired.",
    "- after the restart gave up (scenario 2): the last restart-failed line before resigned → the first acknowledged write after it.",
    '- switchover write block (scenario 8): per switchover, the longest ack gap ending between its "switchover" request line (the first from the CLI call) and the next switchover\'s.',
    "- false failover (5, 6): any term change or a different primary after the stress (measured 10 to 15 s after it ended).",
    '- agent at rest: writer and sampler stopped, then utime+stime of /proc/PID/stat over a 60 s window (percent of one core) and VmRSS of /proc/PID/status at its end, per agent process. The window starts 10 s after the lab is up (keys without "-warm") or later ("-warm180": 180 s, the steady state, with the first minute after start, 10 to 70 s, recorded beside it).',
    "",
  )

  // ---- targets -------------------------------------------------------------
  const downtimes = (s: string) => defined(by(s).map((r) => r.downtimeMs))
  const s3 = downtimes("3")
  const gaveUp = defined(by("2").map((r) => r.times?.afterRestartGaveUpMs))
  const blocks = by("8").flatMap((r) => (r.switchovers ?? []).map((x) => x.blockMs))
  const hung = downtimes("hung")
  const failoverKeys = ["1", "2", "hung", "3", "8", "5-pause", "5-kill", "6", "3-fast", "6-fast"]
  const withWrites = records.filter((r) => failoverKeys.includes(r.scenario))
  const lost = withWrites.reduce((n, r) => n + (r.lostWrites ?? 0), 0)
  const noCheck = withWrites.filter((r) => r.lostWrites === undefined).length
  const stress = records.filter((r) => STRESS.includes(r.scenario))
  const falseFailovers = stress.filter((r) => r.falseFailover !== false).length
  const rest = records.filter((r) => r.scenario.startsWith("rest-"))
  const restKinds: Array<[string, string]> = [
    ["", "source tree on Node 24"],
    ["-bin", "packaged binary"],
  ]
  const restRows = restKinds.flatMap(([suffix, label]) => {
    const agents = rest
      .filter((r) => r.scenario === `rest-3${suffix}` || r.scenario === `rest-7${suffix}`)
      .flatMap((r) => r.agents ?? [])
    if (agents.length === 0 && suffix !== "") return []
    const cpu = agents.length ? Math.max(...agents.map((a) => a.cpuPercent)) : Number.NaN
    const rss = agents.length ? Math.max(...agents.map((a) => a.rssMiB)) : Number.NaN
    return [
      `| agent at rest < 2 % of one core (every agent; ${label}) | max ${fmt(cpu, 2)} % | ${agents.length} agents | ${status(agents.length ? cpu < 2 : undefined)} |`,
      `| agent at rest < 120 MB RSS (every agent; ${label}) | max ${fmt(rss, 1)} MiB | ${agents.length} agents | ${status(agents.length ? rss < 120 : undefined)} |`,
    ]
  })
  const when = <T>(xs: ReadonlyArray<T>, f: () => boolean) => (xs.length === 0 ? undefined : f())
  out.push(
    "## Targets (issue 6)",
    "",
    "| target | measured | runs | status |",
    "|---|---|---|---|",
    `| scenario 3 (isolated primary): median write downtime ≤ 6 s | median ${fmt(median(s3))} ms | ${s3.length} | ${status(when(s3, () => median(s3) <= 6000))} |`,
    `| scenario 3: max write downtime ≤ 10 s | max ${fmt(s3.length ? Math.max(...s3) : Number.NaN)} ms | ${s3.length} | ${status(when(s3, () => Math.max(...s3) <= 10_000))} |`,
    `| scenario 2 (mysqld cannot restart): median downtime after the restart gave up ≤ 3 s | median ${fmt(median(gaveUp))} ms | ${gaveUp.length} | ${status(when(gaveUp, () => median(gaveUp) <= 3000))} |`,
    `| hung primary mysqld (SIGSTOP 20 s, issue 10): max write downtime ≤ 10 s | max ${fmt(hung.length ? Math.max(...hung) : Number.NaN)} ms | ${hung.length} | ${status(when(hung, () => Math.max(...hung) <= 10_000))} |`,
    `| scenario 8 (switchover): median write block per switchover < 1 s | median ${fmt(median(blocks))} ms | ${blocks.length} switchovers | ${status(when(blocks, () => median(blocks) < 1000))} |`,
    `| zero lost acknowledged writes in every run | ${lost} lost${noCheck ? `; ${noCheck} runs ended before the check` : ""} | ${withWrites.length} | ${status(when(withWrites, () => lost === 0 && noCheck === 0))} |`,
    `| zero false failovers (5, 6) | ${falseFailovers} runs with a term change or new primary (or no result) | ${stress.length} | ${status(when(stress, () => falseFailovers === 0))} |`,
    ...restRows,
    "",
  )

  out.push(...issue12Targets(records))
  out.push(...issue13Targets(records))

  // ---- write downtime ------------------------------------------------------
  out.push(
    "## Client-observed write downtime (ms)",
    "",
    "| scenario | runs ok / total | median | p95 | max |",
    "|---|---|---|---|---|",
  )
  for (const s of present.filter((k) => failoverKeys.includes(k))) {
    const rs = by(s)
    out.push(
      `| ${NAMES[s]} | ${rs.filter((r) => r.ok).length} / ${rs.length} | ${stats(downtimes(s))} |`,
    )
  }
  out.push(
    "",
    "Scenarios 5 and 6 have no target for downtime (listed for information: in 6 the loss also hits the client's and the replicas' MySQL traffic).",
    "",
  )

  // ---- scenario 2 and 8 specifics ------------------------------------------
  out.push(
    "## Scenario 2: write downtime after the restart gave up (ms)",
    "",
    "| runs | median | p95 | max | target |",
    "|---|---|---|---|---|",
    `| ${gaveUp.length} | ${stats(gaveUp)} | median ≤ 3000: ${status(when(gaveUp, () => median(gaveUp) <= 3000))} |`,
    "",
    "## Scenario 8: write block and phases per switchover (ms)",
    "",
    "| switchover | measure | count | median | p95 | max | target |",
    "|---|---|---|---|---|---|---|",
  )
  const sw: Array<[keyof SwitchoverPhases, string]> = [
    ["blockMs", "write block"],
    ["drainMs", "drain (request → transfer)"],
    ["handoverMs", "handover (transfer → promoted)"],
    ["vipMoveMs", "VIP move (vip-acquired → first ack)"],
  ]
  for (const [i, label] of [
    [0, "there"],
    [1, "back"],
  ] as const) {
    for (const [key, what] of sw) {
      const xs = defined(by("8").map((r) => r.switchovers?.[i]?.[key]))
      out.push(`| ${label} | ${what} | ${xs.length} | ${stats(xs)} | |`)
    }
  }
  out.push(
    `| both | write block | ${blocks.length} | ${stats(blocks)} | median < 1000: ${status(when(blocks, () => median(blocks) < 1000))} |`,
    "",
  )

  // ---- phases ----------------------------------------------------------------
  const phases: Array<[keyof FailoverTimes, string]> = [
    ["detectionMs", "detection"],
    ["restartMs", "mysqld restart by the agent (mysqld-failed → restarted)"],
    ["waitMs", "wait (detection → pre-vote)"],
    ["electionMs", "election"],
    ["promotionMs", "promotion"],
    ["vipMoveMs", "VIP move"],
    ["faultToAckMs", "fault → first ack"],
  ]
  out.push(
    "## Failover phases (ms, from the agents' logs)",
    "",
    "| scenario | phase | runs | median | p95 | max |",
    "|---|---|---|---|---|---|",
  )
  for (const s of present.filter((k) => ["1", "2", "3", "3-fast"].includes(k))) {
    for (const [key, label] of phases) {
      const xs = defined(by(s).map((r) => r.times?.[key] as number | undefined))
      if (xs.length > 0) out.push(`| ${NAMES[s]} | ${label} | ${xs.length} | ${stats(xs)} |`)
    }
  }
  out.push(
    "",
    "Scenario 1 has no election (the restart succeeds); scenario 8's phases are in its own table above.",
    "",
  )

  // ---- safety ----------------------------------------------------------------
  out.push(
    "## Safety: lost writes, invariants, false failovers",
    "",
    "| scenario | runs | runs failing (error or invariant) | lost acknowledged writes | runs with a term change | runs with a different primary | false failovers |",
    "|---|---|---|---|---|---|---|",
  )
  for (const s of present.filter((k) => failoverKeys.includes(k))) {
    const rs = by(s)
    const isStress = STRESS.includes(s)
    const termChanged = rs.filter(
      (r) => r.termBefore !== undefined && r.termAfter !== r.termBefore,
    ).length
    const newPrimary = rs.filter(
      (r) => r.primaryBefore !== undefined && r.primaryAfter !== r.primaryBefore,
    ).length
    out.push(
      `| ${NAMES[s]} | ${rs.length} | ${rs.filter((r) => !r.ok).length} | ${rs.reduce((n, r) => n + (r.lostWrites ?? 0), 0)} | ${termChanged} | ${isStress ? newPrimary : "(not a stress run)"} | ${isStress ? rs.filter((r) => r.falseFailover !== false).length : "–"} |`,
    )
  }
  out.push("")

  // ---- at rest -----------------------------------------------------------------
  if (rest.length > 0) {
    out.push(
      "## Agent cost at rest (per agent process)",
      "",
      "| agent | runs | agents measured | CPU % of one core: median | p95 | max | RSS MiB: median | p95 | max | targets (< 2 %, < 120 MB) |",
      "|---|---|---|---|---|---|---|---|---|---|",
    )
    for (const s of [
      "rest-3",
      "rest-7",
      "rest-3-bin",
      "rest-7-bin",
      "rest-3-haproxy",
      "rest-3-bin-haproxy",
      "rest-3-bin-warm180",
      "rest-7-bin-warm180",
      "rest-3-bin-warm840",
      "rest-7-bin-warm840",
    ].filter((k) => by(k).length > 0)) {
      const agents = by(s).flatMap((r) => r.agents ?? [])
      const cpu = agents.map((a) => a.cpuPercent)
      const rss = agents.map((a) => a.rssMiB)
      const met = when(agents, () => Math.max(...cpu) < 2 && Math.max(...rss) < 120)
      out.push(
        `| ${NAMES[s]} | ${by(s).length} | ${agents.length} | ${stats(cpu, 2)} | ${stats(rss, 1)} | ${status(met)} |`,
      )
    }
    // Issue 12: every at-rest run by agent commit, oldest first: the before/after table.
    out.push(
      "",
      "### At rest by agent commit (issue 12 targets: packaged binary ≤ 96 MB RSS and ≤ 0.8 % of one core, every agent; no new connection to the primary per replica per probe interval)",
      "",
      "| agent | commit | at | load avg (1 min) | agents | RSS MiB: median | max | anon MiB: median | CPU %: median | max | heap allocated KiB/s: median | max | new connections/s to the primary's mysqld | machine CPU % beyond the agents (one core = 100) | first minute after start, CPU %: median / max |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    )
    for (const r of rest) {
      const agents = r.agents ?? []
      out.push(
        `| ${NAMES[r.scenario] ?? r.scenario} | ${r.commit} | ${r.at.slice(0, 16)}Z | ${fmt(r.loadavg[0] ?? Number.NaN, 1)} | ${agents.length} | ${fmt(median(agents.map((a) => a.rssMiB)), 1)} | ${fmt(agents.length ? Math.max(...agents.map((a) => a.rssMiB)) : Number.NaN, 1)} | ${fmt(median(defined(agents.map((a) => a.anonMiB))), 1)} | ${fmt(median(agents.map((a) => a.cpuPercent)), 2)} | ${fmt(agents.length ? Math.max(...agents.map((a) => a.cpuPercent)) : Number.NaN, 2)} | ${allocCells(agents)} | ${r.primaryConnectionsPerSecond === undefined ? "not measured" : fmt(r.primaryConnectionsPerSecond, 2)} | ${r.othersCpuPercent === undefined ? "not measured" : fmt(r.othersCpuPercent, 1)} | ${firstMinuteCell(agents)} |`,
      )
    }
    out.push(
      "",
      "CPU on this 2-core machine is shared with other lab runs (load average in the table): compare CPU only between agents of one run; RSS does not depend on the load.",
    )
    const commands = new Set(rest.map((r) => r.agentCommand?.replace(/--config \S+/, "--config …")))
    out.push(
      "",
      `Agent processes measured: ${[...commands].map((c) => `\`${c}\``).join("; ")}. The per-run table gives each agent's RSS every 10 s through the window (MiB) and its anonymous / file-backed parts at the end.`,
    )
    out.push("")
  }

  // ---- false failovers, told by the agents --------------------------------------
  const falses = records.filter((r) => r.falseFailover)
  if (falses.length > 0) {
    out.push("## False failovers: what the agents logged", "")
    for (const r of falses) {
      out.push(
        `- ${NAMES[r.scenario] ?? r.scenario}, run ${r.run} (${r.at.slice(0, 19)}Z): term ${r.termBefore}→${r.termAfter}, primary ${r.primaryBefore}→${r.primaryAfter}; ${r.elections?.join("; ") || "no elected line"}${r.logs ? `; logs ${r.logs}` : ""}`,
        ...(r.incident ?? []).map((l) => `  - ${l}`),
      )
    }
    out.push("")
  }

  // ---- every run -----------------------------------------------------------------
  out.push(
    "## Every run",
    "",
    "| scenario | run | at | commit | load | ok | numbers |",
    "|---|---|---|---|---|---|---|",
  )
  for (const s of present) {
    for (const r of by(s)) {
      const n: string[] = []
      if (r.downtimeMs !== undefined) n.push(`downtime ${r.downtimeMs}`)
      if (r.haproxy !== undefined)
        n.push(
          `through HAProxy ${r.haproxy.downtimeMs}${r.haproxy.switchoverBlocksMs.length > 0 ? ` (blocks ${r.haproxy.switchoverBlocksMs.join(", ")})` : ""}, ${r.haproxy.lostWrites} lost`,
        )
      for (const x of r.switchovers ?? [])
        n.push(
          `switchover block ${x.blockMs} (drain ${x.drainMs}, handover ${x.handoverMs}, vip ${x.vipMoveMs})`,
        )
      const t = r.scenario === "8" ? undefined : r.times
      if (t?.detectionMs !== undefined) n.push(`detect ${t.detectionMs} (${t.detectedBy})`)
      if (t?.restartMs !== undefined) n.push(`restart ${t.restartMs}`)
      if (t?.waitMs !== undefined) n.push(`wait ${t.waitMs}`)
      if (t?.electionMs !== undefined) n.push(`elect ${t.electionMs}`)
      if (t?.promotionMs !== undefined) n.push(`promote ${t.promotionMs}`)
      if (t?.vipMoveMs !== undefined) n.push(`vip ${t.vipMoveMs}`)
      if (t?.afterRestartGaveUpMs !== undefined) n.push(`after give-up ${t.afterRestartGaveUpMs}`)
      if (r.termBefore !== undefined) n.push(`term ${r.termBefore}→${r.termAfter}`)
      if (r.primaryBefore !== undefined) n.push(`primary ${r.primaryBefore}→${r.primaryAfter}`)
      if (r.lostWrites) n.push(`LOST ${r.lostWrites}`)
      if (r.diverged?.length) n.push(`diverged ${r.diverged.join(",")}`)
      if (r.agents)
        n.push(
          r.agents
            .map(
              (a) =>
                `${a.host} ${a.cpuPercent}% ${a.rssMiB} MiB (anon ${a.anonMiB ?? "?"}, file ${a.fileMiB ?? "?"}; RSS every 10 s: ${a.rssSeriesMiB?.join(" ") ?? "?"}${a.heapAllocKiBPerSecond === undefined ? "" : `; heap allocated ${a.heapAllocKiBPerSecond} KiB/s`})`,
            )
            .join(", "),
        )
      if (r.problems?.length) n.push(`problems: ${r.problems.join("; ")}`)
      if (r.error) n.push(`error: ${r.error}`)
      if (r.logs) n.push(`logs ${r.logs}`)
      out.push(
        `| ${s} | ${r.run} | ${r.at.slice(0, 19)}Z | ${r.commit} | ${r.loadavg[0] ?? ""} | ${r.ok ? "yes" : "NO"} | ${n.join("; ").replaceAll("|", "/")} |`,
      )
    }
  }
  out.push("")
  return out.join("\n")
}

/** Runs where nothing fails and no failover may happen. */
const STRESS: ReadonlyArray<string> = ["5-pause", "5-kill", "6", "6-fast"]

/** Loss runs in which a primary fenced itself (its lease lapsed): writes stopped though nothing failed. */
const selfFenced = (r: RunRecord): boolean =>
  (r.incident ?? []).some((l) => / self-fenced: /.test(l))

/** orchestrator's medians on our lab (design/peers.md), ms. */
const ORCHESTRATOR_MS: Readonly<Record<string, number>> = { "2": 1590, "3": 8350, "8": 930 }

/** The agents' CPU through the first minute after start, "median / max", or "not measured". */
const firstMinuteCell = (
  agents: ReadonlyArray<{ firstMinuteCpuPercent?: number }>,
  unit = "",
): string => {
  const xs = defined(agents.map((a) => a.firstMinuteCpuPercent))
  return xs.length === 0
    ? "not measured"
    : `${fmt(median(xs), 2)} / ${fmt(Math.max(...xs), 2)}${unit}`
}

/** Issue 12's goal for the packaged agent at rest: every agent, in the steady state. */
export const ISSUE_12 = { cpuPercent: 0.8, rssMB: 96, loopDelayP99Ms: 20 } as const
const MIB_IN_MB = 1.048576

/**
 * Issue 12's targets per agent commit: the packaged binary at rest with 3 and
 * 7 members, in the steady state (the "-warm180" rows), every agent of every
 * run of that commit within both limits. The first minute after start is
 * shown beside, not judged: V8 still compiles the agent's code then.
 */
export const issue12Targets = (records: ReadonlyArray<RunRecord>): string[] => {
  const runs = (n: number) => `${n} run${n === 1 ? "" : "s"}`
  const rows: string[] = []
  for (const hosts of [3, 7]) {
    const key = `rest-${hosts}-bin-warm180`
    const rs = records.filter((r) => r.scenario === key)
    for (const c of [...new Set(rs.map((r) => r.commit))]) {
      const ofCommit = rs.filter((r) => r.commit === c)
      const agents = ofCommit.flatMap((r) => r.agents ?? [])
      if (agents.length === 0) continue
      const cpu = agents.map((a) => a.cpuPercent)
      const rssMB = agents.map((a) => a.rssMiB * MIB_IN_MB)
      const met = Math.max(...cpu) <= ISSUE_12.cpuPercent && Math.max(...rssMB) <= ISSUE_12.rssMB
      const delays = defined(agents.map((a) => a.loopDelayP99Ms))
      rows.push(
        `| packaged agent at rest, ${hosts} members, steady state: every agent ≤ ${ISSUE_12.cpuPercent} % of one core and ≤ ${ISSUE_12.rssMB} MB RSS | ${c} | CPU median ${fmt(median(cpu), 2)} %, max ${fmt(Math.max(...cpu), 2)} %; RSS max ${fmt(Math.max(...rssMB), 1)} MB; first minute after start (median / max): ${firstMinuteCell(agents, " %")} | ${runs(ofCommit.length)}, ${agents.length} agents | ${status(met)} |`,
      )
      if (delays.length > 0)
        rows.push(
          `| the same agents: event-loop delay p99 since start < ${ISSUE_12.loopDelayP99Ms} ms | ${c} | max ${fmt(Math.max(...delays), 1)} ms (longest single delay ${fmt(Math.max(...defined(agents.map((a) => a.loopDelayMaxMs))), 1)} ms) | ${delays.length} agents | ${status(Math.max(...delays) < ISSUE_12.loopDelayP99Ms)} |`,
        )
    }
  }
  if (rows.length === 0) return []
  return [
    "## Targets (issue 12): the agent at rest",
    "",
    "| target | agent commit | measured | runs | status |",
    "|---|---|---|---|---|",
    ...rows,
    "",
  ]
}

/**
 * Issue 13's downtime goals, judged per agent commit (a median over runs of
 * different code says nothing), with the ratio to orchestrator's median.
 */
const issue13Targets = (records: ReadonlyArray<RunRecord>): string[] => {
  const goals: ReadonlyArray<{
    readonly key: string
    readonly what: string
    readonly limitMs: number
    readonly values: (rs: ReadonlyArray<RunRecord>) => number[]
  }> = [
    {
      key: "2",
      what: "mysqld dead, cannot restart: median write downtime ≤ 1.2 s",
      limitMs: 1200,
      values: (rs) => defined(rs.map((r) => r.downtimeMs)),
    },
    {
      key: "3",
      what: "primary host isolated: median write downtime ≤ 5.0 s",
      limitMs: 5000,
      values: (rs) => defined(rs.map((r) => r.downtimeMs)),
    },
    {
      key: "8",
      what: "planned switchover: median write block per leg ≤ 300 ms",
      limitMs: 300,
      values: (rs) => rs.flatMap((r) => (r.switchovers ?? []).map((x) => x.blockMs)),
    },
  ]
  const commits = [...new Set(records.map((r) => r.commit))]
  const rows: string[] = []
  for (const g of goals) {
    for (const c of commits) {
      const rs = records.filter((r) => r.scenario === g.key && r.commit === c)
      const xs = g.values(rs)
      if (xs.length === 0) continue
      const m = median(xs)
      const orch = ORCHESTRATOR_MS[g.key]!
      rows.push(
        `| ${g.what} | ${c} | ${fmt(m)} ms (max ${fmt(Math.max(...xs))}) | ${xs.length}${g.key === "8" ? " legs" : ""} | ${fmt(orch)} ms | ${fmt(m / orch, 2)} | ${status(m <= g.limitMs)} |`,
      )
    }
  }
  // The same goals through HAProxy, from runs that had its writer (bench --haproxy).
  for (const g of goals) {
    for (const c of commits) {
      const rs = records.filter(
        (r) => r.scenario === g.key && r.commit === c && r.haproxy !== undefined,
      )
      const xs = rs.flatMap((r) =>
        g.key === "8"
          ? (r.haproxy?.switchoverBlocksMs ?? [])
          : [r.haproxy?.downtimeMs ?? Number.NaN],
      )
      if (xs.length === 0) continue
      const m = median(xs)
      const orch = ORCHESTRATOR_MS[g.key]!
      const lost = rs.reduce((n, r) => n + (r.haproxy?.lostWrites ?? 0), 0)
      rows.push(
        `| ${g.what}, through HAProxy | ${c} | ${fmt(m)} ms (max ${fmt(Math.max(...xs))}; ${lost} lost) | ${xs.length}${g.key === "8" ? " legs" : ""} | ${fmt(orch)} ms | ${fmt(m / orch, 2)} | ${status(m <= g.limitMs && lost === 0)} |`,
      )
    }
  }
  for (const c of commits) {
    const rs = records.filter((r) => r.scenario === "1" && r.commit === c)
    if (rs.length === 0) continue
    const failovers = rs.filter((r) => r.termBefore === undefined || r.termAfter !== r.termBefore)
    rows.push(
      `| mysqld crash that a restart fixes: no failover | ${c} | ${failovers.length} runs with a term change; median downtime ${fmt(median(defined(rs.map((r) => r.downtimeMs))))} ms | ${rs.length} | fails over every time | – | ${status(failovers.length === 0)} |`,
    )
  }
  for (const [key, profile] of [
    ["6", "default timings"],
    ["6-fast", "fast profile"],
  ] as const) {
    for (const c of commits) {
      const rs = records.filter((r) => r.scenario === key && r.commit === c)
      if (rs.length === 0) continue
      const falseFailovers = rs.filter((r) => r.falseFailover !== false).length
      rows.push(
        `| 30 % loss on every host for 60 s (${profile}): 0 false failovers in ≥ 10 runs | ${c} | ${falseFailovers} false failovers; ${rs.filter(selfFenced).length} runs with a primary that fenced itself | ${rs.length} | 1 in 3 false failovers | – | ${status(falseFailovers === 0 && rs.length >= 10)} |`,
      )
    }
  }
  for (const c of commits) {
    const xs = defined(
      records.filter((r) => r.scenario === "3-fast" && r.commit === c).map((r) => r.downtimeMs),
    )
    if (xs.length === 0) continue
    const m = median(xs)
    rows.push(
      `| fast profile (lease 2 s, heartbeat 250 ms): primary host isolated, median write downtime (no target) | ${c} | ${fmt(m)} ms (max ${fmt(Math.max(...xs))}) | ${xs.length} | ${fmt(ORCHESTRATOR_MS["3"]!)} ms | ${fmt(m / ORCHESTRATOR_MS["3"]!, 2)} | – |`,
    )
  }
  if (rows.length === 0) return []
  return [
    "## Targets (issue 13: faster than orchestrator), by agent commit",
    "",
    "| goal | agent commit | median | runs | orchestrator median | ratio (ours / orchestrator) | status |",
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
  ]
}
