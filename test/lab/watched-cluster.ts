// What the plain lab's cluster (cluster.ts) and the booted hosts' cluster
// (booted-cluster.ts) see the same way from the client's side: which node is
// the primary (writable and holding the VIP), the writer's acknowledged
// writes, and the invariants of lab.md over the run (no acknowledged write
// missing on the primary, never two writable nodes, convergence).
import { join } from "node:path"
import { run, waitFor } from "./exec.ts"
import {
  convergence,
  missingAckedWrites,
  readSamplerLog,
  readWriterLog,
  splitBrainRounds,
  type WriterLog,
  writeDowntimeMs,
} from "./invariants.ts"
import type { Lab } from "./lab.ts"
import { VIP } from "./network.ts"

export interface Invariants {
  /** Client-observed write downtime after the fault. */
  readonly downtimeMs: number
  readonly acked: number
  readonly problems: string[]
  /** Nodes holding transactions the primary lacks (an old primary's own). */
  readonly diverged: string[]
}

export abstract class WatchedCluster {
  readonly lab: Lab
  readonly writerLog: string
  readonly samplerLog: string

  protected constructor(lab: Lab) {
    this.lab = lab
    this.writerLog = join(lab.runDir(), "writer.ndjson")
    this.samplerLog = join(lab.runDir(), "sampler.ndjson")
  }

  writes(): WriterLog {
    return readWriterLog(this.writerLog)
  }

  async holdsVip(host: string): Promise<boolean> {
    const { stdout } = await run("ip", [
      "-n",
      this.lab.host(host).ns,
      "-4",
      "addr",
      "show",
      "dev",
      "eth0",
    ])
    return stdout.includes(`${VIP}/`)
  }

  /** The node that is writable and holds the VIP, if exactly one does. */
  async primary(): Promise<string | undefined> {
    const views = await this.lab.topology()
    const writable = views.filter((v) => v.up && v.superReadOnly === false)
    if (writable.length !== 1) return undefined
    const name = writable[0]!.host
    return (await this.holdsVip(name)) ? name : undefined
  }

  async waitForPrimary(timeoutMs: number, not?: string): Promise<string> {
    let found: string | undefined
    await waitFor(
      not ? `a primary other than ${not}` : "a primary (writable, holding the VIP)",
      async () => {
        found = await this.primary()
        return found !== undefined && found !== not
      },
      timeoutMs,
      100,
    )
    return found!
  }

  /** Acknowledged writes after `t` (epoch ms). */
  writesAfter(t: number): number {
    return this.writes().acked.filter((a) => a.t > t).length
  }

  async waitForWritesAfter(t: number, timeoutMs: number): Promise<void> {
    await waitFor("acknowledged writes after the fault", () => this.writesAfter(t) > 5, timeoutMs)
  }

  /**
   * The invariants over the whole run so far: a single primary holding the
   * VIP with every acknowledged write, convergence (within 30 s), and never
   * two writable nodes in the sampler's log. `divergedIsAProblem`: whether a
   * node left DIVERGED fails convergence (the caller may check instead that
   * its agent reports it).
   */
  protected async invariants(faultAt: number, divergedIsAProblem: boolean): Promise<Invariants> {
    const problems: string[] = []
    const primary = await this.waitForPrimary(30_000).catch(() => undefined)
    const log = this.writes()
    if (primary === undefined) problems.push("no single primary holding the VIP")
    else {
      const missing = await missingAckedWrites(this.lab, primary, log)
      if (missing.length > 0)
        problems.push(
          `${missing.length} acknowledged writes missing on ${primary}: ${missing.slice(0, 5).join(", ")}`,
        )
    }
    let last = { problems: [] as string[], diverged: [] as string[] }
    try {
      await waitFor(
        "convergence",
        async () => {
          last = await convergence(this.lab)
          return last.problems.length === 0 && (!divergedIsAProblem || last.diverged.length === 0)
        },
        30_000,
      )
    } catch {
      problems.push(...last.problems)
      if (divergedIsAProblem) problems.push(...last.diverged.map((d) => `${d} is DIVERGED`))
    }
    // After the convergence wait: the sampler runs on until here, and the whole run counts.
    const splits = splitBrainRounds(readSamplerLog(this.samplerLog))
    if (splits.length > 0)
      problems.push(
        `two writable nodes at once in ${splits.length} samples, first ${JSON.stringify(splits[0])}`,
      )
    return {
      downtimeMs: writeDowntimeMs(log, faultAt),
      acked: log.acked.length,
      problems,
      diverged: last.diverged,
    }
  }
}
