// The benchmark's own scenarios: 5 and 6 of lab.md (stress that must not
// cause a failover) and the agents' cost at rest. Scenarios 5 and 6 do not
// assert: they return what happened, and the benchmark counts false failovers.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import type { LabCluster } from "../lab/cluster.ts"
import { sleep } from "../lab/exec.ts"
import { rssMiB, statTicks } from "./measure.ts"

export interface StressOutcome {
  readonly faultAt: number
  readonly primaryBefore: string
  readonly primaryAfter: string | undefined
  readonly termBefore: number
  readonly termAfter: number
  /** What was done, for the report (e.g. "paused 3000 ms"). */
  readonly what: string
}

const maxTerm = (c: LabCluster): number => Math.max(...c.lab.hosts.map((h) => c.term(h.name)))

/** After the stress: give the cluster time to react (an election would happen here), then look. */
const settle = async (
  c: LabCluster,
  faultAt: number,
  primaryBefore: string,
  termBefore: number,
  what: string,
  settleMs: number,
): Promise<StressOutcome> => {
  await sleep(settleMs)
  await c.waitForWritesAfter(Date.now(), 30_000).catch(() => {})
  return {
    faultAt,
    primaryBefore,
    primaryAfter: await c.primary(),
    termBefore,
    termAfter: maxTerm(c),
    what,
  }
}

/** 5a: the primary's agent is paused (SIGSTOP) for less than the lease, then resumed. */
export const primaryAgentPaused = async (
  c: LabCluster,
  pauseMs: number,
): Promise<StressOutcome> => {
  const primary = await c.waitForPrimary(10_000)
  const term = maxTerm(c)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "Pause", host: primary, process: "agent" })
  await sleep(pauseMs)
  await c.lab.inject({ _tag: "Resume", host: primary, process: "agent" })
  return settle(c, faultAt, primary, term, `agent paused ${pauseMs} ms`, 10_000)
}

/** 5b: the primary's agent is killed (kill -9) and started again at once, as a service manager would. */
export const primaryAgentKilled = async (c: LabCluster): Promise<StressOutcome> => {
  const primary = await c.waitForPrimary(10_000)
  const term = maxTerm(c)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "KillAgent", host: primary })
  await c.agents.start(primary)
  return settle(c, faultAt, primary, term, "agent killed -9 and restarted at once", 15_000)
}

/** 6: random loss of `percent` % of the packets arriving at every host for `ms`, then healed. */
export const randomLossEverywhere = async (
  c: LabCluster,
  percent: number,
  ms: number,
): Promise<StressOutcome> => {
  const primary = await c.waitForPrimary(10_000)
  const term = maxTerm(c)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "Loss", percent, hosts: [] })
  try {
    await sleep(ms)
  } finally {
    await c.lab.inject({ _tag: "Heal", hosts: [] })
  }
  return settle(c, faultAt, primary, term, `${percent} % loss on every host for ${ms} ms`, 10_000)
}

export interface AgentCost {
  readonly host: string
  readonly cpuTicks: number
  readonly rssMiB: number
  /** RssAnon and RssFile of /proc/PID/status, MiB: heap and stacks versus mapped files. */
  readonly anonMiB: number
  readonly fileMiB: number
}

const statusMiB = (status: string, field: string): number => {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(status)
  return m ? Number(m[1]) / 1024 : Number.NaN
}

const agentPid = (c: LabCluster, host: string): number =>
  Number(readFileSync(join(c.lab.runDir(), host, "agent.pid"), "utf8").trim())

/** Ticks (utime+stime) and RSS of every agent process now. */
export const agentCosts = (c: LabCluster): AgentCost[] =>
  c.lab.hosts.map((h) => {
    const pid = agentPid(c, h.name)
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    return {
      host: h.name,
      cpuTicks: statTicks(readFileSync(`/proc/${pid}/stat`, "utf8")),
      rssMiB: rssMiB(status),
      anonMiB: statusMiB(status, "RssAnon"),
      fileMiB: statusMiB(status, "RssFile"),
    }
  })

/** The agent process's command, to make sure the pid is the agent and not a wrapper. */
export const agentComm = (c: LabCluster, host: string): string =>
  readFileSync(`/proc/${agentPid(c, host)}/cmdline`, "utf8")
    .split("\0")
    .slice(0, 4)
    .join(" ")
