// A Jepsen-style randomized run on the lab: a LabCluster (semi-sync strict,
// the writer and the sampler through the VIP), a fault schedule drawn from
// the seed (schedule.ts), executed with real faults, then everything healed
// and the invariants of lab.md checked: no acknowledged write lost, never two
// writable nodes, convergence (an old primary left DIVERGED is allowed,
// protocol.md section 10, and reported).
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { type ClusterOptions, LabCluster } from "../lab/cluster.ts"
import { alive, sleep, waitFor } from "../lab/exec.ts"
import type { Fault } from "../lab/faults.ts"
import { convergence, readSamplerLog } from "../lab/invariants.ts"
import {
  formatFault,
  formatSchedule,
  formatUndo,
  generateSchedule,
  hostsOf,
  type ScheduledFault,
  type ScheduleOptions,
  type Undo,
} from "./schedule.ts"

export interface ChaosOptions {
  readonly seed: number
  readonly minutes: number
  readonly hosts: number
  /** Keep the logs folder also when every invariant holds. */
  readonly keepLogs?: boolean
  readonly log?: (line: string) => void
  /** Called once the cluster is up (run.ts tears it down on SIGINT). */
  readonly onCluster?: (c: LabCluster) => void
}

export interface ChaosResult {
  readonly schedule: string
  readonly applied: number
  readonly skipped: number
  /** Promotions by election seen in the agents' logs ("db2@2"), in order. */
  readonly promotions: ReadonlyArray<string>
  /** The single writable node as the client's sampler saw it, each change once. */
  readonly primaries: ReadonlyArray<string>
  readonly termStart: number
  readonly termEnd: number
  readonly acked: number
  readonly writeErrors: number
  readonly downtimeMs: number
  readonly lostWrites: number
  readonly splitBrainRounds: number
  readonly problems: ReadonlyArray<string>
  readonly diverged: ReadonlyArray<string>
  /** Stretches of more than 10 s without an acknowledged write ("+12.3 s .. +40.1 s"). */
  readonly writeGaps: ReadonlyArray<string>
  /** Agents that exited by themselves (not killed by the schedule), restarted as systemd would. */
  readonly agentExits: ReadonlyArray<string>
  readonly logs: string | undefined
}

/**
 * Anti-flap: after an automatic failover further automatic failovers are
 * blocked for recovery_block_period (10 min by default), which would end a
 * chaos run's failovers after the first. The config allows a short period,
 * so the run sets one (and the block is still exercised for 5 s).
 */
export const CHAOS_TIMINGS = {
  restart_timeout: "10s",
  apply_timeout: "10s",
  recovery_block_period: "5s",
} as const

/** How long the healed cluster gets to elect a primary and converge. */
export const CONVERGE_MS = 90_000

const withTimeout = <T>(p: Promise<T>, ms: number, fallback: T): Promise<T> =>
  Promise.race([p, sleep(ms).then(() => fallback)])

export const runChaos = async (options: ChaosOptions): Promise<ChaosResult> => {
  const log = options.log ?? ((line: string) => console.log(line))
  const scheduleOptions: ScheduleOptions = {
    seed: options.seed,
    totalMs: Math.round(options.minutes * 60_000),
    hosts: options.hosts,
  }
  const schedule = generateSchedule(scheduleOptions)
  const printed = formatSchedule(scheduleOptions, schedule)
  log(printed)

  const clusterOptions: ClusterOptions = { hosts: options.hosts, timings: CHAOS_TIMINGS }
  const upAt = Date.now()
  const c = await LabCluster.up(clusterOptions)
  options.onCluster?.(c)
  log(`lab ${c.lab.id}: ${options.hosts} hosts up in ${((Date.now() - upAt) / 1000).toFixed(1)} s`)
  let logs: string | undefined
  try {
    const result = await execute(c, schedule, log)
    const { problems } = result
    if (problems.length > 0 || options.keepLogs) {
      logs = c.keepLogs(`chaos-seed${options.seed}`)
    }
    return { ...result, schedule: printed, logs }
  } catch (error) {
    logs = c.keepLogs(`chaos-seed${options.seed}`)
    const message = error instanceof Error ? error.message : String(error)
    const kept = new Error(`${message}\n(logs kept in ${logs})`)
    kept.cause = error
    throw kept
  } finally {
    await c.down()
  }
}

const execute = async (
  c: LabCluster,
  schedule: ReadonlyArray<ScheduledFault>,
  log: (line: string) => void,
): Promise<Omit<ChaosResult, "schedule" | "logs">> => {
  const names = c.lab.hosts.map((h) => h.name)
  const maxTerm = () => Math.max(...names.map((n) => c.term(n)))
  const termStart = maxTerm()
  const start = Date.now()
  const stamp = () => `[+${((Date.now() - start) / 1000).toFixed(1).padStart(6)} s]`
  let lastPrimary = (await c.primary()) ?? "db1"
  const busy = new Set<string>()
  let applied = 0
  let skipped = 0

  // Roles are resolved one fault at a time, so two faults never take a host together.
  let queue: Promise<unknown> = Promise.resolve()
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const p = queue.then(f)
    queue = p.catch(() => undefined)
    return p
  }

  /** Maps the roles of a fault to free hosts: "primary" to the current primary, "replicaK" to the K-th other host. */
  const resolve = async (
    roles: ReadonlyArray<string>,
  ): Promise<Map<string, string> | undefined> => {
    const primary = await withTimeout(c.primary(), 8_000, undefined)
    if (primary !== undefined) lastPrimary = primary
    const map = new Map<string, string>()
    const taken = new Set(busy)
    const free = (h: string) => !taken.has(h)
    for (const role of roles) {
      let want: string[]
      if (role === "primary") want = [lastPrimary, ...names]
      else {
        const others = names.filter((n) => n !== lastPrimary)
        const k = (Number(role.replace("replica", "")) - 1) % others.length
        want = [...others.slice(k), ...others.slice(0, k), ...names]
      }
      const host = want.find(free)
      if (host === undefined) return undefined
      map.set(role, host)
      taken.add(host)
    }
    return map
  }

  const bind = (f: Fault, m: Map<string, string>): Fault => {
    const h = (r: string) => m.get(r) ?? r
    switch (f._tag) {
      case "KillMysqld":
      case "StopMysqld":
      case "StartMysqld":
      case "KillAgent":
      case "Isolate":
        return { ...f, host: h(f.host) }
      case "Pause":
      case "Resume":
        return { ...f, host: h(f.host) }
      case "CutOneWay":
        return { ...f, from: h(f.from), to: h(f.to) }
      case "CutAgent":
      case "CutReplication":
        return { ...f, a: h(f.a), b: h(f.b) }
      case "Loss":
      case "Heal":
        return { ...f, hosts: f.hosts.map(h) }
      default: {
        const unhandled: never = f
        throw new Error(`unhandled fault ${JSON.stringify(unhandled)}`)
      }
    }
  }
  const bindUndo = (u: Undo, m: Map<string, string>): Undo =>
    u._tag === "Inject"
      ? { _tag: "Inject", fault: bind(u.fault, m) }
      : u._tag === "RestartAgent"
        ? { _tag: "RestartAgent", host: m.get(u.host) ?? u.host }
        : u

  const agentAlive = (host: string): boolean => {
    const file = join(c.lab.runDir(), host, "agent.pid")
    return existsSync(file) && alive(Number(readFileSync(file, "utf8").trim()))
  }

  const undo = async (u: Undo): Promise<void> => {
    switch (u._tag) {
      case "SelfHealing":
        return
      case "Inject":
        await c.lab.inject(u.fault)
        return
      case "RestartAgent":
        // Only a dead agent is started again: never two agents on one host.
        if (!agentAlive(u.host)) await c.agents.start(u.host)
        return
      default: {
        const unhandled: never = u
        throw new Error(`unhandled undo ${JSON.stringify(unhandled)}`)
      }
    }
  }

  const one = async (e: ScheduledFault, i: number): Promise<void> => {
    await sleep(Math.max(0, start + e.atMs - Date.now()))
    const tag = `#${String(i + 1).padStart(2)}`
    const bound = await serial(async () => {
      const roles = [...new Set(hostsOf(e.fault))]
      const m = await resolve(roles)
      if (m === undefined) return undefined
      for (const h of m.values()) busy.add(h)
      return m
    })
    if (bound === undefined) {
      skipped++
      log(`${stamp()} ${tag} skipped ${formatFault(e.fault)}: no free host for it`)
      return
    }
    const fault = bind(e.fault, bound)
    const u = bindUndo(e.undo, bound)
    const roles = [...bound].map(([r, h]) => `${r}=${h}`).join(" ")
    try {
      await c.lab.inject(fault)
      applied++
      log(`${stamp()} ${tag} ${formatFault(fault)}  (${roles}, for ${e.durationMs / 1000} s)`)
    } catch (error) {
      log(`${stamp()} ${tag} FAILED to apply ${formatFault(fault)}: ${String(error)}`)
    }
    await sleep(Math.max(0, start + e.atMs + e.durationMs - Date.now()))
    try {
      await undo(u)
      if (u._tag !== "SelfHealing") log(`${stamp()} ${tag} undone: ${formatUndo(u)}`)
    } catch (error) {
      log(`${stamp()} ${tag} FAILED to undo with ${formatUndo(u)}: ${String(error)}`)
    } finally {
      for (const h of bound.values()) busy.delete(h)
    }
  }

  // The service manager's part for agents (systemd's Restart=always): an agent
  // that exits by itself, not killed by the schedule, is started again and
  // reported with its last fatal log line.
  const agentExits: string[] = []
  let faultsOver = false
  const watchdog = (async () => {
    while (!faultsOver) {
      await sleep(1_000)
      for (const h of names) {
        if (faultsOver || busy.has(h) || agentAlive(h)) continue
        const fatal = readFileSync(c.agents.logPath(h), "utf8")
          .split("\n")
          .filter((l) => l.includes('"level":60'))
          .pop()
        let why = "no fatal log line"
        try {
          if (fatal) why = (JSON.parse(fatal) as { msg: string }).msg
        } catch {
          why = fatal ?? why
        }
        agentExits.push(`${stamp()} ${h}: ${why}`)
        log(`${stamp()} the agent on ${h} exited by itself (${why}); starting it again`)
        await c.agents.start(h)
      }
    }
  })()

  await Promise.all(schedule.map(one))
  faultsOver = true
  await watchdog

  // Heal everything, start what is stopped, resume what is paused, restart dead agents.
  log(`${stamp()} faults over: healing everything`)
  await c.lab.inject({ _tag: "Heal", hosts: [] })
  for (const h of names) {
    for (const p of ["mysqld", "agent"] as const)
      await c.lab.inject({ _tag: "Resume", host: h, process: p }).catch(() => undefined)
    if (existsSync(c.lab.hostPath(h, "disabled")))
      await c.lab.inject({ _tag: "StartMysqld", host: h })
    if (!agentAlive(h)) {
      log(`${stamp()} starting the agent on ${h} (it was not running)`)
      await c.agents.start(h)
    }
  }
  const healAt = Date.now()
  const problems: string[] = []
  const primary = await c.waitForPrimary(CONVERGE_MS).catch(() => undefined)
  if (primary === undefined)
    problems.push(`no primary holding the VIP within ${CONVERGE_MS / 1000} s after the heal`)
  else {
    log(`${stamp()} primary after the heal: ${primary}`)
    await c
      .waitForWritesAfter(healAt, CONVERGE_MS)
      .catch(() => problems.push("no acknowledged write through the VIP after the heal"))
    let last: string[] = []
    await waitFor(
      "convergence after the heal",
      async () => {
        last = (await convergence(c.lab)).problems
        return last.length === 0
      },
      Math.max(5_000, CONVERGE_MS - (Date.now() - healAt)),
      500,
    ).catch(() => log(`${stamp()} not converged yet: ${last.join("; ")}`))
  }
  log(`${stamp()} converged after ${((Date.now() - healAt) / 1000).toFixed(1)} s; checking`)
  // Every agent runs and answers, and the primary's agent says it is ACTIVE.
  for (const h of names) {
    const answers = async () =>
      agentAlive(h) &&
      (await c.agents.cli(h, ["status", "--json"]).then(
        () => true,
        () => false,
      ))
    await waitFor(`the agent on ${h} to answer`, answers, 30_000, 500).catch(() =>
      problems.push(`the agent on ${h} ${agentAlive(h) ? "does not answer" : "is not running"}`),
    )
  }
  const end = await c.primary()
  if (end !== undefined) {
    const role = await c.agentRole(end, end).catch((e: unknown) => String(e))
    if (role !== "ACTIVE") problems.push(`${end} is writable but its agent says ${role}`)
  }
  const check = await c.check(start)
  problems.push(...check.problems)

  const rounds = readSamplerLog(c.samplerLog)
  const primaries: string[] = []
  let split = 0
  for (const r of rounds) {
    const writable = Object.entries(r.nodes).filter(([, s]) => s === "writable")
    if (writable.length > 1) split++
    const only = writable.length === 1 ? writable[0]![0] : undefined
    if (only !== undefined && primaries[primaries.length - 1] !== only) primaries.push(only)
  }
  const promotions: string[] = []
  for (const h of names) {
    const file = c.agents.logPath(h)
    if (!existsSync(file)) continue
    for (const line of readFileSync(file, "utf8").split("\n")) {
      if (!line.includes('"event":"promoted"')) continue
      try {
        // The promoted event carries its term and kind as fields (core/events.ts).
        const entry = JSON.parse(line) as { time: string; term?: number; kind?: string }
        promotions.push(`${entry.time} ${h}@${entry.term ?? "?"} (${entry.kind ?? "?"})`)
      } catch {
        // a torn last line of a killed agent
      }
    }
  }
  promotions.sort()
  const acks = c.writes().acked
  const writeGaps: string[] = []
  const rel = (t: number) => `+${((t - start) / 1000).toFixed(1)} s`
  for (let i = 1; i < acks.length; i++) {
    const a = acks[i - 1]!.t
    const b = acks[i]!.t
    if (b - a > 10_000) writeGaps.push(`${rel(a)} .. ${rel(b)}`)
  }
  const lost = check.problems.find((p) => p.includes("acknowledged writes missing"))
  return {
    applied,
    skipped,
    promotions: promotions.map((p) => p.slice(p.indexOf(" ") + 1)),
    primaries,
    termStart,
    termEnd: maxTerm(),
    acked: check.acked,
    writeErrors: c.writes().errors,
    downtimeMs: check.downtimeMs,
    lostWrites: lost ? Number(lost.split(" ")[0]) : 0,
    splitBrainRounds: split,
    problems,
    diverged: check.diverged,
    agentExits,
    writeGaps,
  }
}

/** The end-of-run report, one fact a line. */
export const formatReport = (r: ChaosResult): string => {
  const elections = r.promotions.filter((p) => p.includes("(election)")).length
  return [
    `faults applied: ${r.applied} (skipped: ${r.skipped})`,
    `failovers observed: ${elections} promotions by election (${r.promotions.join(", ") || "none"}); terms ${r.termStart} -> ${r.termEnd}`,
    `primaries as the client saw them: ${r.primaries.join(" -> ")} (${Math.max(0, r.primaries.length - 1)} changes)`,
    `acknowledged writes: ${r.acked} (failed or unknown attempts: ${r.writeErrors}; longest write gap ${(r.downtimeMs / 1000).toFixed(1)} s)`,
    `stretches over 10 s without an acknowledged write: ${r.writeGaps.join(", ") || "none"}`,
    `lost acknowledged writes: ${r.lostWrites}`,
    `sampler rounds with two writable nodes: ${r.splitBrainRounds}`,
    `nodes left DIVERGED: ${r.diverged.join(", ") || "none"}`,
    `agents that exited by themselves (restarted): ${r.agentExits.length}${r.agentExits.map((e) => `\n  ${e}`).join("")}`,
    `invariants: ${r.problems.length === 0 ? "all hold" : `FAILED: ${r.problems.join("; ")}`}`,
    ...(r.logs ? [`logs kept in ${r.logs}`] : []),
  ].join("\n")
}
