// What the plain lab's cluster (cluster.ts) and the booted hosts' cluster
// (booted-cluster.ts) see the same way from the client's side: which node is
// the primary (writable and holding the VIP), the writer's acknowledged
// writes, and the invariants of lab.md over the run (no acknowledged write
// missing on the primary, never two writable nodes, convergence).
import { readFileSync } from "node:fs"
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
    try {
      await waitFor("acknowledged writes after the fault", () => this.writesAfter(t) > 5, timeoutMs)
    } catch (error) {
      // CI keeps no files: the message itself must say what blocked the writes.
      const why = await this.diagnosis().catch((e) => `diagnosis failed: ${e}`)
      throw new Error(`${error instanceof Error ? error.message : error}; ${why}`, { cause: error })
    }
  }

  /** The first acknowledged write after `t` (epoch ms), if any. */
  firstAckAfter(t: number): number | undefined {
    return this.writes().acked.find((a) => a.t > t)?.t
  }

  /**
   * One line on why writes may be blocked: each node's role as MySQL shows it
   * (writable, VIP, replication threads and source, semi-sync clients and
   * waiting sessions) and the writer's last errors.
   */
  async diagnosis(): Promise<string> {
    const views = await this.lab.topology()
    const nodes: string[] = []
    for (const v of views) {
      if (!v.up) {
        nodes.push(`${v.host}: mysqld down`)
        continue
      }
      const parts = [v.superReadOnly === false ? "writable" : "read-only"]
      if (await this.holdsVip(v.host)) parts.push("VIP")
      if (v.replica)
        parts.push(
          `replica of ${v.replica.sourceHost} io=${v.replica.ioRunning} sql=${v.replica.sqlRunning}${v.replica.lastError ? ` error=${v.replica.lastError}` : ""}`,
        )
      const semi = await this.lab
        .query<{ Variable_name: string; Value: string }>(
          v.host,
          "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_source_status', 'Rpl_semi_sync_source_clients', 'Rpl_semi_sync_source_wait_sessions', 'Rpl_semi_sync_replica_status')",
        )
        .catch(() => [])
      parts.push(
        semi.map((r) => `${r.Variable_name.replace("Rpl_semi_sync_", "")}=${r.Value}`).join(" "),
      )
      nodes.push(`${v.host}: ${parts.join(", ")}`)
    }
    // Whose MAC the client reaches the VIP at (an isolated host still answers ARP in the lab).
    const neigh = await this.lab.exec("client", ["ip", "neigh", "show", VIP]).catch(() => null)
    const macs = new Map<string, string>()
    for (const h of this.lab.hosts) {
      const link = await run("ip", ["-n", h.ns, "-o", "link", "show", "dev", "eth0"]).catch(
        () => null,
      )
      const mac = link?.stdout.match(/link\/ether ([0-9a-f:]+)/)?.[1]
      if (mac) macs.set(mac, h.name)
    }
    const entry = neigh?.stdout.trim() ?? "?"
    const owner = [...macs].find(([mac]) => entry.includes(mac))?.[1] ?? "no host"
    nodes.push(`client's VIP entry: ${entry} (${owner})`)
    const errors = readFileSync(this.writerLog, "utf8")
      .split("\n")
      .filter((l) => l.includes('"err"'))
      .slice(-3)
    return `nodes: ${nodes.join(" | ")}; writer's last errors: ${errors.join(" ")}`
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
