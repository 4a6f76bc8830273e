// The chaos run's fault schedule: a pure function of the seed (and of the run
// length and host count). Faults come from the lab's fault list
// (test/lab/faults.ts); their hosts are roles ("primary", "replica1", ...)
// that the run resolves to lab hosts when the fault is applied, so a schedule
// keeps aiming at the primary after a failover has moved it. The same seed
// always prints the identical schedule.
import type { Fault } from "../lab/faults.ts"

/** mulberry32: a small seeded PRNG; one 32-bit seed replays the whole schedule. */
export const mulberry32 = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** "primary" or "replicaK" (K from 1): resolved to a lab host when the fault is applied. */
export type Role = string

/** How a fault is undone at the end of its duration. */
export type Undo =
  | { readonly _tag: "SelfHealing" } // kill -9 of mysqld: the supervisor restarts it
  | { readonly _tag: "Inject"; readonly fault: Fault } // start-mysqld, resume, heal
  | { readonly _tag: "RestartAgent"; readonly host: Role } // a killed agent is started again

export interface ScheduledFault {
  /** Offset from the start of the fault phase, ms. */
  readonly atMs: number
  /** How long the fault stays active before its undo, ms. */
  readonly durationMs: number
  readonly fault: Fault
  readonly undo: Undo
}

export interface ScheduleOptions {
  readonly seed: number
  /** Length of the fault phase, ms: every fault is undone by then. */
  readonly totalMs: number
  readonly hosts: number
  /** At most this many faults active at once (default 2). */
  readonly maxConcurrent?: number
}

export const MAX_CONCURRENT = 2
/** A quiet start, so the run observes the healthy cluster first. */
const FIRST_FAULT_MS = 5_000
/** Sequential faults leave the cluster this much (min, max) time to settle. */
const GAP_MS: readonly [number, number] = [3_000, 15_000]
/** Chance that the next fault starts while the previous one is still active. */
const OVERLAP_CHANCE = 0.3
/** A kill -9 of mysqld counts as active while the supervisor brings it back. */
const KILL_WINDOW_MS = 8_000

type Kind =
  | "kill-mysqld"
  | "stop-mysqld"
  | "pause-mysqld"
  | "pause-agent"
  | "kill-agent"
  | "isolate"
  | "cut"
  | "cut-agent"
  | "cut-replication"
  | "loss"

/**
 * Weights and durations (min, max ms). Tuned to exercise failovers: the
 * faults that take a primary's mysqld or host away (stop, pause mysqld,
 * isolate) are the most frequent, and faults aim at the primary more often
 * than at a replica; the faults that must NOT cause a failover (a dead or hung
 * agent, a killed mysqld that restarts, cuts, loss) are all in the mix too.
 */
const KINDS: ReadonlyArray<{ kind: Kind; weight: number; duration: readonly [number, number] }> = [
  { kind: "isolate", weight: 3, duration: [6_000, 25_000] },
  { kind: "stop-mysqld", weight: 2.5, duration: [8_000, 25_000] },
  { kind: "pause-mysqld", weight: 1.5, duration: [5_000, 20_000] },
  { kind: "kill-mysqld", weight: 1.5, duration: [KILL_WINDOW_MS, KILL_WINDOW_MS] },
  { kind: "kill-agent", weight: 1.5, duration: [2_000, 15_000] },
  { kind: "pause-agent", weight: 1.5, duration: [2_000, 12_000] },
  { kind: "cut", weight: 1, duration: [5_000, 20_000] },
  { kind: "cut-agent", weight: 1, duration: [5_000, 20_000] },
  { kind: "cut-replication", weight: 1, duration: [5_000, 20_000] },
  { kind: "loss", weight: 1, duration: [10_000, 30_000] },
]
const PRIMARY_CHANCE = 0.6

/** Hosts a fault occupies (two faults active at once never share a host). */
export const hostsOf = (fault: Fault): ReadonlyArray<Role> => {
  switch (fault._tag) {
    case "KillMysqld":
    case "StopMysqld":
    case "StartMysqld":
    case "Pause":
    case "Resume":
    case "KillAgent":
    case "Isolate":
      return [fault.host]
    case "CutOneWay":
      return [fault.from, fault.to]
    case "CutAgent":
    case "CutReplication":
      return [fault.a, fault.b]
    case "Loss":
    case "Heal":
      return fault.hosts
    default: {
      const unhandled: never = fault
      throw new Error(`unhandled fault ${JSON.stringify(unhandled)}`)
    }
  }
}

/** How many hosts a fault takes ([] on loss or heal means every host). */
export const width = (fault: Fault, hosts: number): number => {
  const h = hostsOf(fault)
  return (fault._tag === "Loss" || fault._tag === "Heal") && h.length === 0 ? hosts : h.length
}

/** The undo of each fault: kill -9 heals itself, stop needs start, pause needs resume, network faults need heal, a killed agent a restart. */
export const undoOf = (fault: Fault): Undo => {
  switch (fault._tag) {
    case "KillMysqld":
      return { _tag: "SelfHealing" }
    case "StopMysqld":
      return { _tag: "Inject", fault: { _tag: "StartMysqld", host: fault.host } }
    case "Pause":
      return {
        _tag: "Inject",
        fault: { _tag: "Resume", host: fault.host, process: fault.process },
      }
    case "KillAgent":
      return { _tag: "RestartAgent", host: fault.host }
    case "Isolate":
      return { _tag: "Inject", fault: { _tag: "Heal", hosts: [fault.host] } }
    case "CutOneWay":
      // The rule lives in the sender's namespace.
      return { _tag: "Inject", fault: { _tag: "Heal", hosts: [fault.from] } }
    case "CutAgent":
    case "CutReplication":
      return { _tag: "Inject", fault: { _tag: "Heal", hosts: [fault.a, fault.b] } }
    case "Loss":
      return { _tag: "Inject", fault: { _tag: "Heal", hosts: fault.hosts } }
    case "StartMysqld":
    case "Resume":
    case "Heal":
      throw new Error(`${fault._tag} is an undo, not a fault of the schedule`)
    default: {
      const unhandled: never = fault
      throw new Error(`unhandled fault ${JSON.stringify(unhandled)}`)
    }
  }
}

const round100 = (ms: number): number => Math.round(ms / 100) * 100

/** The fault schedule of a seed: a pure function (no clock, no Math.random). */
export const generateSchedule = (options: ScheduleOptions): ScheduledFault[] => {
  const { totalMs, hosts } = options
  const maxConcurrent = options.maxConcurrent ?? MAX_CONCURRENT
  if (!Number.isInteger(hosts) || hosts < 3) throw new Error(`chaos needs 3 or more hosts`)
  const rng = mulberry32(options.seed)
  const between = (lo: number, hi: number) => lo + (hi - lo) * rng()
  const replica = (): Role => `replica${1 + Math.floor(rng() * (hosts - 1))}`
  const target = (): Role => (rng() < PRIMARY_CHANCE ? "primary" : replica())
  /** Two distinct roles: the primary and a replica, or two replicas. */
  const pair = (): [Role, Role] => {
    const first = target()
    let second = replica()
    while (second === first) second = replica()
    return rng() < 0.5 ? [first, second] : [second, first]
  }
  const totalWeight = KINDS.reduce((s, k) => s + k.weight, 0)
  const pickKind = () => {
    let r = rng() * totalWeight
    for (const k of KINDS) {
      r -= k.weight
      if (r < 0) return k
    }
    return KINDS[KINDS.length - 1]!
  }
  const draw = (kind: Kind): Fault => {
    switch (kind) {
      case "kill-mysqld":
        return { _tag: "KillMysqld", host: target() }
      case "stop-mysqld":
        return { _tag: "StopMysqld", host: target() }
      case "pause-mysqld":
        return { _tag: "Pause", host: target(), process: "mysqld" }
      case "pause-agent":
        return { _tag: "Pause", host: target(), process: "agent" }
      case "kill-agent":
        return { _tag: "KillAgent", host: target() }
      case "isolate":
        return { _tag: "Isolate", host: target() }
      case "cut": {
        const [from, to] = pair()
        return { _tag: "CutOneWay", from, to }
      }
      case "cut-agent": {
        const [a, b] = pair()
        return { _tag: "CutAgent", a, b }
      }
      case "cut-replication": {
        const [a, b] = pair()
        return { _tag: "CutReplication", a, b }
      }
      case "loss":
        return { _tag: "Loss", percent: 5 * Math.round(between(2, 8)), hosts: [] }
    }
  }

  const out: ScheduledFault[] = []
  const activeAt = (t: number) => out.filter((e) => e.atMs <= t && t < e.atMs + e.durationMs)
  let t = FIRST_FAULT_MS
  for (let guard = 0; guard < 10_000 && t < totalMs; guard++) {
    const k = pickKind()
    const fault = draw(k.kind)
    const durationMs = round100(between(k.duration[0], k.duration[1]))
    const atMs = round100(t)
    const active = activeAt(atMs)
    const busy = active.reduce((s, e) => s + width(e.fault, hosts), 0)
    const fits =
      atMs + durationMs <= totalMs &&
      active.length < maxConcurrent &&
      busy + width(fault, hosts) <= hosts
    if (!fits) {
      // Wait for the earliest active fault to end (or give up at the end).
      const ends = active.map((e) => e.atMs + e.durationMs)
      t = ends.length > 0 ? Math.min(...ends) + 1_000 : atMs + 1_000
      continue
    }
    out.push({ atMs, durationMs, fault, undo: undoOf(fault) })
    const overlap = rng() < OVERLAP_CHANCE && durationMs >= 4_000
    t = overlap
      ? atMs + between(1_000, durationMs - 2_000)
      : Math.max(...out.map((e) => e.atMs + e.durationMs)) + between(GAP_MS[0], GAP_MS[1])
  }
  return out
}

/** A fault as the lab's command line writes it (`npm run lab -- fault ...`). */
export const formatFault = (f: Fault): string => {
  switch (f._tag) {
    case "KillMysqld":
      return `kill-mysqld ${f.host}`
    case "StopMysqld":
      return `stop-mysqld ${f.host}`
    case "StartMysqld":
      return `start-mysqld ${f.host}`
    case "Pause":
      return `pause ${f.host} ${f.process}`
    case "Resume":
      return `resume ${f.host} ${f.process}`
    case "KillAgent":
      return `kill-agent ${f.host}`
    case "Isolate":
      return `isolate ${f.host}`
    case "CutOneWay":
      return `cut ${f.from} ${f.to}`
    case "CutAgent":
      return `cut-agent ${f.a} ${f.b}`
    case "CutReplication":
      return `cut-replication ${f.a} ${f.b}`
    case "Loss":
      return `loss ${f.percent}${f.hosts.length > 0 ? ` ${f.hosts.join(" ")}` : ""}`
    case "Heal":
      return `heal${f.hosts.length > 0 ? ` ${f.hosts.join(" ")}` : ""}`
    default: {
      const unhandled: never = f
      throw new Error(`unhandled fault ${JSON.stringify(unhandled)}`)
    }
  }
}

export const formatUndo = (u: Undo): string => {
  switch (u._tag) {
    case "SelfHealing":
      return "(the supervisor restarts it)"
    case "Inject":
      return formatFault(u.fault)
    case "RestartAgent":
      return `start-agent ${u.host}`
    default: {
      const unhandled: never = u
      throw new Error(`unhandled undo ${JSON.stringify(unhandled)}`)
    }
  }
}

const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** The printed schedule: identical text for identical seeds. */
export const formatSchedule = (options: ScheduleOptions, schedule: ReadonlyArray<ScheduledFault>) =>
  [
    `chaos schedule: seed ${options.seed}, ${options.hosts} hosts, ${sec(options.totalMs)} of faults, ${schedule.length} faults`,
    ...schedule.map(
      (e, i) =>
        `  #${String(i + 1).padStart(2)} +${sec(e.atMs).padStart(8)}  ${formatFault(e.fault).padEnd(34)} for ${sec(e.durationMs).padStart(6)}, then ${formatUndo(e.undo)}`,
    ),
  ].join("\n")

/**
 * The rules a schedule must keep; returns what breaks them (empty: none).
 * At most `maxConcurrent` faults active at once, never more hosts taken than
 * there are, every fault ends within the run and carries its own undo.
 */
export const scheduleViolations = (
  options: ScheduleOptions,
  schedule: ReadonlyArray<ScheduledFault>,
): string[] => {
  const problems: string[] = []
  const maxConcurrent = options.maxConcurrent ?? MAX_CONCURRENT
  schedule.forEach((e, i) => {
    const name = `#${i + 1} ${formatFault(e.fault)}`
    if (e.durationMs <= 0) problems.push(`${name}: duration ${e.durationMs}`)
    if (e.atMs < 0 || e.atMs + e.durationMs > options.totalMs)
      problems.push(`${name}: not within the run`)
    if (i > 0 && e.atMs < schedule[i - 1]!.atMs) problems.push(`${name}: out of order`)
    if (JSON.stringify(e.undo) !== JSON.stringify(undoOf(e.fault)))
      problems.push(`${name}: undo ${formatUndo(e.undo)} does not undo it`)
    const active = schedule.filter((o) => o.atMs <= e.atMs && e.atMs < o.atMs + o.durationMs)
    if (active.length > maxConcurrent)
      problems.push(`${name}: ${active.length} faults active at once`)
    const taken = active.reduce((s, o) => s + width(o.fault, options.hosts), 0)
    if (taken > options.hosts)
      problems.push(`${name}: ${taken} host slots taken of ${options.hosts}`)
    for (const role of hostsOf(e.fault)) {
      const m = /^replica(\d+)$/.exec(role)
      if (role !== "primary" && !(m && Number(m[1]) >= 1 && Number(m[1]) < options.hosts))
        problems.push(`${name}: unknown role ${role}`)
    }
  })
  return problems
}
