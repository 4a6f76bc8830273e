// Pure measurements for the benchmark: the agents' JSON log lines and the
// writer's acknowledged writes in, the intervals of the report out. Every
// interval is defined here once; the report header quotes these definitions.
import type { WriterLog } from "../lab/invariants.ts"

export interface LogLine {
  readonly host: string
  /** Epoch ms, from the line's "time" field. */
  readonly t: number
  readonly event: string
  readonly msg: string
}

/** Parses one agent's log (pino JSON lines; other lines, e.g. a crash trace, are skipped). */
export const parseAgentLog = (host: string, text: string): LogLine[] => {
  const out: LogLine[] = []
  for (const raw of text.split("\n")) {
    // journald priority prefix ("<6>") when the agent logs for journald.
    const line = raw.replace(/^<\d>/, "")
    if (!line.startsWith("{")) continue
    try {
      const o = JSON.parse(line) as { time?: unknown; event?: unknown; msg?: unknown }
      const t = typeof o.time === "string" ? Date.parse(o.time) : Number(o.time)
      if (!Number.isFinite(t) || typeof o.event !== "string") continue
      out.push({ host, t, event: o.event, msg: typeof o.msg === "string" ? o.msg : "" })
    } catch {
      // not a log line
    }
  }
  return out
}

/** Log lines that report a failure of the primary (its mysqld, its lease, or its absence). */
export const FAILURE_EVENTS: ReadonlySet<string> = new Set([
  "mysqld-failed",
  "restart-failed",
  "self-fenced",
  "resigned",
  "primary-resigned",
  "old-primary-unreachable",
  "pre-vote",
  "election",
])

/** A failure report: one of FAILURE_EVENTS, or an election-status line saying an election is due. */
export const reportsFailure = (l: LogLine): boolean =>
  FAILURE_EVENTS.has(l.event) || (l.event === "election-status" && l.msg.startsWith("election due"))

export interface FailoverTimes {
  /** fault → first failure report on any agent. */
  readonly detectionMs?: number
  readonly detectedBy?: string
  /** first failure report → first pre-vote (the lease wait, or the restart attempts). */
  readonly waitMs?: number
  /** first pre-vote → elected (the winner). */
  readonly electionMs?: number
  /** elected → promoted on the winner (fence, catch-up, record committed, writable, VIP). */
  readonly promotionMs?: number
  /** vip-acquired on the new primary → first write acknowledged through the VIP after it. */
  readonly vipMoveMs?: number
  /** mysqld-failed → the same agent's "mysqld restarted" line (scenario 1). */
  readonly restartMs?: number
  /** fault → first write acknowledged through the VIP after the new primary's vip-acquired. */
  readonly faultToAckMs?: number
  /** last restart-failed before the primary resigned → first acknowledged write after it. */
  readonly afterRestartGaveUpMs?: number
  readonly newPrimary?: string
}

const firstAfter = (
  lines: ReadonlyArray<LogLine>,
  t: number,
  pred: (l: LogLine) => boolean,
): LogLine | undefined => lines.find((l) => l.t >= t && pred(l))

const firstAckAtOrAfter = (log: WriterLog, t: number): number | undefined =>
  log.acked.find((a) => a.t >= t)?.t

/** Every interval of one failover, from the merged logs of all agents (sorted by time). */
export const failoverTimes = (
  lines: ReadonlyArray<LogLine>,
  writes: WriterLog,
  faultAt: number,
): FailoverTimes => {
  const sorted = [...lines].sort((a, b) => a.t - b.t)
  const r: { -readonly [K in keyof FailoverTimes]: FailoverTimes[K] } = {}
  const detected = firstAfter(sorted, faultAt, reportsFailure)
  if (detected) {
    r.detectionMs = detected.t - faultAt
    r.detectedBy = `${detected.host} ${detected.event}`
  }
  const failed = firstAfter(sorted, faultAt, (l) => l.event === "mysqld-failed")
  const restarted =
    failed &&
    firstAfter(
      sorted,
      failed.t,
      (l) => l.event === "mysqld-restart" && l.host === failed.host && l.msg === "mysqld restarted",
    )
  if (failed && restarted) r.restartMs = restarted.t - failed.t
  const preVote = firstAfter(sorted, faultAt, (l) => l.event === "pre-vote")
  if (detected && preVote) r.waitMs = preVote.t - detected.t
  const elected = firstAfter(sorted, faultAt, (l) => l.event === "elected")
  if (preVote && elected) r.electionMs = elected.t - preVote.t
  if (elected) {
    r.newPrimary = elected.host
    const promoted = firstAfter(
      sorted,
      elected.t,
      (l) => l.event === "promoted" && l.host === elected.host,
    )
    if (promoted) r.promotionMs = promoted.t - elected.t
    const vip = firstAfter(
      sorted,
      elected.t,
      (l) => l.event === "vip-acquired" && l.host === elected.host,
    )
    if (vip) {
      const ack = firstAckAtOrAfter(writes, vip.t)
      if (ack !== undefined) {
        r.vipMoveMs = ack - vip.t
        r.faultToAckMs = ack - faultAt
      }
    }
  }
  const resigned = firstAfter(sorted, faultAt, (l) => l.event === "resigned")
  if (resigned) {
    const gaveUp = sorted
      .filter((l) => l.event === "restart-failed" && l.t >= faultAt && l.t <= resigned.t)
      .at(-1)
    if (gaveUp) {
      const ack = firstAckAtOrAfter(writes, gaveUp.t)
      if (ack !== undefined) r.afterRestartGaveUpMs = ack - gaveUp.t
    }
  }
  return r
}

/** The longest time between two acknowledged writes that ends in [from, to), clipped at `from`. */
export const writeBlockMs = (log: WriterLog, from: number, to = Infinity): number => {
  let worst = 0
  for (let i = 1; i < log.acked.length; i++) {
    const prev = log.acked[i - 1]!
    const cur = log.acked[i]!
    if (cur.t >= from && cur.t < to) worst = Math.max(worst, cur.t - Math.max(prev.t, from))
  }
  return worst
}

/**
 * Scenario 8: the write block of each switchover separately. Switchover k
 * starts at its "switchover" request line (the first at the fault) and ends
 * where the next one starts.
 */
export const switchoverBlocks = (
  lines: ReadonlyArray<LogLine>,
  writes: WriterLog,
  faultAt: number,
): number[] => {
  const starts = [...lines]
    .filter((l) => l.event === "switchover" && l.t >= faultAt)
    .map((l) => l.t)
    .sort((a, b) => a - b)
  if (starts.length === 0) return []
  starts[0] = Math.min(starts[0]!, faultAt)
  return starts.map((s, i) => writeBlockMs(writes, s, starts[i + 1] ?? Infinity))
}

export interface SwitchoverPhases {
  /** The longest ack gap ending between this switchover's request line and the next one's. */
  readonly blockMs: number
  /** request → transfer (the old primary stopped writes and the target executed everything). */
  readonly drainMs?: number
  /** transfer → promoted on the target (its election and promotion). */
  readonly handoverMs?: number
  /** vip-acquired on the target → the first write acknowledged through the VIP after it. */
  readonly vipMoveMs?: number
}

/** Scenario 8: each switchover's write block and phases, in order. */
export const switchoverPhases = (
  lines: ReadonlyArray<LogLine>,
  writes: WriterLog,
  faultAt: number,
): SwitchoverPhases[] => {
  const sorted = [...lines].sort((a, b) => a.t - b.t)
  const requests = sorted.filter((l) => l.event === "switchover" && l.t >= faultAt)
  const blocks = switchoverBlocks(sorted, writes, faultAt)
  return requests.map((req, i) => {
    const r: { -readonly [K in keyof SwitchoverPhases]: SwitchoverPhases[K] } = {
      blockMs: blocks[i] ?? 0,
    }
    const until = requests[i + 1]?.t ?? Infinity
    const within = (l: LogLine) => l.t >= req.t && l.t < until
    const transfer = sorted.find((l) => within(l) && l.event === "transfer")
    if (transfer) r.drainMs = transfer.t - req.t
    const promoted = sorted.find((l) => within(l) && l.event === "promoted")
    if (transfer && promoted) r.handoverMs = promoted.t - transfer.t
    const vip = sorted.find((l) => within(l) && l.event === "vip-acquired")
    const ack = vip ? firstAckAtOrAfter(writes, vip.t) : undefined
    if (vip && ack !== undefined) r.vipMoveMs = ack - vip.t
    return r
  })
}

/** Nearest-rank quantile (q in (0, 1]); NaN for no values. */
export const quantile = (xs: ReadonlyArray<number>, q: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!
}

export const median = (xs: ReadonlyArray<number>): number => quantile(xs, 0.5)

/** CPU percent of one core between two readings of /proc/PID/stat utime+stime (clock ticks). */
export const cpuPercent = (ticks0: number, ticks1: number, ms: number, hz = 100): number =>
  ((ticks1 - ticks0) / hz / (ms / 1000)) * 100

/** utime + stime (fields 14 and 15) from the text of /proc/PID/stat. */
export const statTicks = (stat: string): number => {
  // The command name (field 2) may hold spaces; fields resume after its ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return Number(rest[11]) + Number(rest[12])
}

/**
 * The machine's busy clock ticks, all cores, from the text of /proc/stat
 * (its first line: user nice system idle iowait irq softirq steal ...):
 * everything but idle and iowait.
 */
export const machineBusyTicks = (procStat: string): number => {
  const fields = (procStat.split("\n")[0] ?? "").trim().split(/\s+/)
  if (fields[0] !== "cpu") return Number.NaN
  const [user, nice, system, , , irq, softirq, steal] = fields.slice(1, 9).map(Number)
  return [user, nice, system, irq, softirq, steal].reduce<number>((a, b) => a + (b ?? 0), 0)
}

/**
 * The agent's event-loop delay since it started, in ms, from its /metrics
 * page: the 0.99 quantile of `mha_event_loop_delay_seconds` and the max.
 * NaN for a value the page lacks.
 */
export const loopDelayMs = (page: string): { p99: number; max: number } => {
  const value = (re: RegExp) => {
    const m = re.exec(page)
    return m ? Number(m[1]) * 1000 : Number.NaN
  }
  return {
    p99: value(/^mha_event_loop_delay_seconds\{quantile="0\.99"\} (\S+)$/m),
    max: value(/^mha_event_loop_delay_max_seconds (\S+)$/m),
  }
}

/** VmRSS in MiB from the text of /proc/PID/status. */
export const rssMiB = (status: string): number => {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  return m ? Number(m[1]) / 1024 : Number.NaN
}

/** One collection as V8's --trace-gc prints it: the process, ms since its isolate started, heap in use (MiB) before and after. */
export interface TracedGc {
  readonly pid: number
  readonly ms: number
  readonly beforeMiB: number
  readonly afterMiB: number
}

/**
 * The collections in a log of an agent run with MHA_AGENT_TRACE_GC=1 (V8's --trace-gc: a line
 * such as "[123:0x2a] 16 ms: Scavenge 4.8 (5.8) -> 3.9 (6.8) MB, ..."; every
 * other line is skipped).
 */
export const parseTraceGc = (text: string): TracedGc[] => {
  const out: TracedGc[] = []
  for (const m of text.matchAll(
    /^\[(\d+):0x[0-9a-f]+\]\s+(\d+) ms: [A-Za-z() -]+? ([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB/gm,
  ))
    out.push({
      pid: Number(m[1]),
      ms: Number(m[2]),
      beforeMiB: Number(m[3]),
      afterMiB: Number(m[4]),
    })
  return out
}

/**
 * KiB/s allocated on the V8 heap from the collection `from` (index into `gcs`) to
 * the last one: what each collection found in use minus what the one before
 * left, over the time between the two ends. Undefined without two collections,
 * or when they are of more than one process (the agent restarted in between:
 * its clock and its heap started again).
 * The heap sizes are printed in 0.1 MiB steps; over tens of collections the
 * rounding evens out.
 */
export const heapAllocKiBPerSecond = (
  gcs: ReadonlyArray<TracedGc>,
  from: number,
): number | undefined => {
  const first = gcs[Math.max(0, from)]
  const last = gcs[gcs.length - 1]
  if (first === undefined || last === undefined || last.ms <= first.ms) return undefined
  if (gcs.slice(Math.max(0, from)).some((g) => g.pid !== last.pid)) return undefined
  let mib = 0
  for (let k = Math.max(0, from) + 1; k < gcs.length; k++)
    mib += Math.max(0, (gcs[k] as TracedGc).beforeMiB - (gcs[k - 1] as TracedGc).afterMiB)
  return (mib * 1024) / ((last.ms - first.ms) / 1000)
}
