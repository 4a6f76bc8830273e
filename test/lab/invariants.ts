// The three invariants of lab.md, checked from what the lab's client saw:
// no acknowledged write missing, never two writable nodes reachable at once,
// and convergence to one writable primary that every other node replicates.
import { existsSync, readFileSync } from "node:fs"
import type { Lab } from "./lab.ts"

export interface WriterLog {
  readonly acked: ReadonlyArray<{ readonly id: number; readonly t: number }>
  readonly errors: number
}

export const readWriterLog = (file: string): WriterLog => {
  const acked: Array<{ id: number; t: number }> = []
  let errors = 0
  if (!existsSync(file)) return { acked, errors }
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line === "") continue
    const entry = JSON.parse(line) as { ack?: number; err?: string; t: number }
    if (entry.ack !== undefined) acked.push({ id: entry.ack, t: entry.t })
    else errors++
  }
  return { acked, errors }
}

/** The longest time between two acknowledged writes that ends after `from`: the client-observed downtime. */
export const writeDowntimeMs = (log: WriterLog, from: number): number => {
  let worst = 0
  for (let i = 1; i < log.acked.length; i++) {
    const prev = log.acked[i - 1]!
    const cur = log.acked[i]!
    if (cur.t >= from) worst = Math.max(worst, cur.t - Math.max(prev.t, from))
  }
  return worst
}

/** Acknowledged writes that the node does not have. */
export const missingAckedWrites = async (
  lab: Lab,
  node: string,
  log: WriterLog,
): Promise<number[]> => {
  const rows = await lab.query<{ id: number }>(node, "SELECT id FROM app.writes")
  const present = new Set(rows.map((r) => Number(r.id)))
  return log.acked.map((a) => a.id).filter((id) => !present.has(id))
}

export interface SamplerRound {
  readonly t: number
  readonly nodes: Readonly<Record<string, "writable" | "read-only" | "unreachable">>
}

export const readSamplerLog = (file: string): SamplerRound[] =>
  (existsSync(file) ? readFileSync(file, "utf8") : "")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as SamplerRound)

/** Rounds in which more than one node was both reachable by the client and writable. */
export const splitBrainRounds = (rounds: ReadonlyArray<SamplerRound>): SamplerRound[] =>
  rounds.filter((r) => Object.values(r.nodes).filter((s) => s === "writable").length > 1)

/**
 * One writable node; every other running node replicates from it with both
 * threads running, or is DIVERGED: it holds transactions the primary lacks
 * (protocol.md section 10: e.g. an old primary killed after its binlog was
 * synced but before a replica acknowledged), which MySQL itself confirms
 * here, and then waits for an operator. Such nodes are listed in `diverged`.
 */
export const convergence = async (
  lab: Lab,
): Promise<{ problems: string[]; diverged: string[] }> => {
  const views = await lab.topology()
  const writable = views.filter((v) => v.up && v.superReadOnly === false)
  if (writable.length !== 1) {
    return {
      problems: [
        `expected one writable node, found ${writable.map((v) => v.host).join(", ") || "none"}`,
      ],
      diverged: [],
    }
  }
  const primaryView = writable[0]!
  const primary = lab.host(primaryView.host)
  const problems: string[] = []
  const diverged: string[] = []
  for (const v of views) {
    if (v.host === primary.name || !v.up) continue
    const r = v.replica
    const replicating =
      r !== undefined &&
      r.sourceHost === primary.address &&
      r.ioRunning === "Yes" &&
      r.sqlRunning === "Yes"
    if (!replicating) {
      const [row] = await lab.query<{ subset: number }>(
        primary.name,
        "SELECT GTID_SUBSET(?, ?) AS subset",
        [v.gtidExecuted ?? "", primaryView.gtidExecuted ?? ""],
      )
      if (Number(row?.subset) === 0) {
        diverged.push(v.host)
        continue
      }
    }
    if (!r) problems.push(`${v.host} does not replicate`)
    else if (r.sourceHost !== primary.address)
      problems.push(`${v.host} replicates from ${r.sourceHost}, not ${primary.name}`)
    else if (r.ioRunning !== "Yes" || r.sqlRunning !== "Yes") {
      problems.push(`${v.host}: io ${r.ioRunning}, sql ${r.sqlRunning} ${r.lastError}`)
    }
  }
  return { problems, diverged }
}

export const convergenceProblems = async (lab: Lab): Promise<string[]> =>
  (await convergence(lab)).problems
