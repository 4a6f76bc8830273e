// A whole cluster on the lab for scenario tests: real MySQL with semi-sync
// replication, an agent per host, a client writing through the VIP, and a
// sampler of every node's writability. `check()` asserts the three invariants
// of lab.md; on failure the logs stay in a folder named in the message.
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { type AgentsOptions, LabAgents } from "./agents.ts"
import { sleep, waitFor } from "./exec.ts"
import { Lab } from "./lab.ts"
import { VIP } from "./network.ts"
import { type Invariants, WatchedCluster } from "./watched-cluster.ts"

const here = import.meta.dirname

export interface ClusterOptions extends AgentsOptions {
  readonly hosts?: number
  /** Lab id (default: a fresh one). */
  readonly id?: string
  /** TLS to MySQL only (Lab's UpOptions.tls); the agents, writer and sampler verify the servers. */
  readonly tls?: boolean
  /** Runs on the lab (db1 the source, replication running) before the agents start. */
  readonly beforeAgents?: (lab: Lab) => Promise<void>
  /** The hosts whose agents start with the cluster (default: every host); the others later. */
  readonly agentsOn?: ReadonlyArray<string>
}

export class LabCluster extends WatchedCluster {
  readonly agents: LabAgents

  private constructor(lab: Lab, agents: LabAgents) {
    super(lab)
    this.agents = agents
  }

  /** Lab, replication from db1, agents, then the writer and the sampler once a primary is ACTIVE. */
  static async up(options: ClusterOptions = {}): Promise<LabCluster> {
    const lab = await Lab.up({
      hosts: options.hosts ?? 3,
      replication: true,
      semiSync: true,
      ...(options.tls ? { tls: true } : {}),
      ...(options.id === undefined ? {} : { id: options.id }),
    })
    try {
      await lab.query("db1", "CREATE DATABASE app")
      await lab.query(
        "db1",
        "CREATE TABLE app.writes (id BIGINT PRIMARY KEY, client_ms BIGINT, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
      )
      await lab.waitReplicasCaughtUp("db1")
      await options.beforeAgents?.(lab)
      const agents = await LabAgents.prepare(lab, options)
      const cluster = new LabCluster(lab, agents)
      if (options.agentsOn === undefined) await agents.startAll()
      else for (const h of options.agentsOn) await agents.start(h)
      await cluster.waitForPrimary(30_000)
      const ca = lab.state.tls ? ["--ca", lab.mysqlTls().ca] : []
      await lab.spawn("client", "sampler", [
        process.execPath,
        join(here, "client/sampler.ts"),
        "--hosts",
        lab.hosts.map((h) => `${h.name}=${h.address}`).join(","),
        "--out",
        cluster.samplerLog,
        ...ca,
      ])
      await lab.spawn("client", "writer", [
        process.execPath,
        join(here, "client/writer.ts"),
        "--host",
        VIP,
        "--out",
        cluster.writerLog,
        ...ca,
      ])
      await waitFor(
        "the first acknowledged writes through the VIP",
        () => cluster.writes().acked.length > 10,
        30_000,
      )
      return cluster
    } catch (e) {
      await lab.down()
      throw e
    }
  }

  /** The term in a node's hard-state file (what it has persisted). */
  term(host: string): number {
    const file = join(this.lab.runDir(), host, "state", "hard-state.json")
    if (!existsSync(file)) return 0
    return (JSON.parse(readFileSync(file, "utf8")) as { term: number }).term
  }

  /**
   * Stops `primary`'s mysqld (it cannot restart) with every replica level with
   * it: the writer pauses (SIGSTOP) until each replica has applied what the
   * primary has, and a second more so that every agent has probed that, then
   * resumes. For tests whose outcome needs priority to decide the winner:
   * ranking puts more data first, and with the writer running either replica
   * may hold the last commit when mysqld stops. Returns the time of the fault.
   */
  async stopMysqldLevel(primary: string): Promise<number> {
    await this.lab.signalProcess("client", "writer", "STOP")
    try {
      await this.lab.waitReplicasCaughtUp(primary, 10_000)
      await sleep(1_000)
      const faultAt = Date.now()
      await this.lab.inject({ _tag: "StopMysqld", host: primary })
      return faultAt
    } finally {
      await this.lab.signalProcess("client", "writer", "CONT")
    }
  }

  /**
   * Stops the writer and checks the invariants; returns the client-observed
   * downtime after `faultAt` and the nodes left DIVERGED (an old primary with
   * unacknowledged transactions of its own, which its agent must report: a
   * problem if it does not).
   */
  async check(faultAt: number): Promise<Invariants> {
    await this.lab.stopProcess("client", "writer")
    const result = await this.invariants(faultAt, false)
    const problems = result.problems
    // Its agent may still be catching up with the new term and record: give it a few probes.
    for (const host of result.diverged) {
      let role = "unknown"
      await waitFor(
        `${host}'s agent to say DIVERGED`,
        async () => {
          role = await this.agentRole(host, host)
          return role === "DIVERGED"
        },
        20_000,
        500,
      ).catch(() => {
        problems.push(`${host} holds transactions the primary lacks, but its agent says ${role}`)
      })
    }
    return result
  }

  /**
   * Writes one errant transaction on a replica by hand (a row in app.writes
   * with a GTID of its own). Its agent fences super_read_only again within a
   * probe, so it is done on one connection at once, retried if the fence came first.
   */
  async writeErrantTransaction(host: string): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const conn = await this.lab.connect(host)
      try {
        await conn.query("SET GLOBAL super_read_only = OFF")
        await conn.query("INSERT INTO app.writes (id, client_ms) VALUES (?, 0)", [-1 - attempt])
        return
      } catch {
        // fenced in between: try again
      } finally {
        await conn.query("SET GLOBAL super_read_only = ON").catch(() => {})
        await conn.end().catch(() => {})
      }
    }
    throw new Error(`no errant transaction could be written on ${host}: fenced every time`)
  }

  /**
   * Waits until the agent on `primary` sees `member` (or, without it, any member)
   * as a STANDBY replicating from it, as `status` shows it, and returns that
   * member: a switchover's target must be one, and right after the cluster
   * comes up, or after a failover, a replica may still be connecting.
   */
  async standbyOf(primary: string, member?: string, timeoutMs = 30_000): Promise<string> {
    let found = ""
    await waitFor(
      `${primary}'s agent to see ${member ?? "a replica"} replicating from it`,
      async () => {
        const r = await this.agents.cli(primary, ["status", "--json"]).catch(() => undefined)
        if (r === undefined) return false
        const view = JSON.parse(r.stdout) as {
          status: { members: Array<{ name: string; role: string; source: string | null }> }
        }
        found =
          view.status.members.find(
            (m) =>
              m.role === "STANDBY" &&
              m.source === primary &&
              (member === undefined || m.name === member),
          )?.name ?? ""
        return found !== ""
      },
      timeoutMs,
    )
    return found
  }

  /** The role of `member` as the agent on `on` reports it (status --json). */
  async agentRole(on: string, member: string): Promise<string> {
    // An agent just (re)started has no control socket yet: that is an answer too, not an error.
    const r = await this.agents.cli(on, ["status", "--json"]).catch((e: unknown) => ({
      stdout: "",
      stderr: e instanceof Error ? e.message : String(e),
    }))
    try {
      const view = JSON.parse(r.stdout) as {
        status: { members: Array<{ name: string; role: string }> }
      }
      return view.status.members.find((m) => m.name === member)?.role ?? "absent"
    } catch {
      return `unknown (status failed: ${r.stderr.trim()})`
    }
  }

  /** Copies every log (agents, mysqld error logs, writer, sampler) to a folder that survives `down`. */
  keepLogs(name: string): string {
    const dir = join(
      process.env.MHA_TEST_ARTIFACTS ?? "/tmp/mha-test-logs",
      `${name}-${this.lab.id}`,
    )
    mkdirSync(dir, { recursive: true })
    // Regular files and folders only: no sockets (the control socket), no keys.
    cpSync(this.lab.runDir(), join(dir, "run"), {
      recursive: true,
      filter: (src) => {
        const st = lstatSync(src)
        return (st.isDirectory() || st.isFile()) && !src.includes("/tls")
      },
    })
    for (const h of this.lab.hosts) {
      for (const f of ["error.log", "supervisor.log"]) {
        const src = this.lab.hostPath(h.name, f)
        if (existsSync(src)) cpSync(src, join(dir, `${h.name}-${f}`))
      }
    }
    return dir
  }

  async down(): Promise<void> {
    await this.lab.down()
  }
}

/**
 * Runs `body` on a fresh cluster and always tears it down; on failure the
 * logs are kept and the error names their folder.
 */
export const runScenario = async (
  options: ClusterOptions & { readonly slug: string },
  body: (c: LabCluster) => Promise<void>,
): Promise<void> => {
  const { slug, ...clusterOptions } = options
  const c = await LabCluster.up(clusterOptions)
  try {
    await body(c)
    // MHA_TEST_KEEP_LOGS=1: keep them after a pass too (to study a run that passed).
    if (process.env.MHA_TEST_KEEP_LOGS === "1") console.log(`logs kept in ${c.keepLogs(slug)}`)
  } catch (error) {
    const dir = c.keepLogs(slug)
    const message = error instanceof Error ? error.message : String(error)
    const kept = new Error(
      `${message}\n(logs of agents, mysqld, writer and sampler kept in ${dir})`,
    )
    kept.cause = error
    throw kept
  } finally {
    await c.down()
  }
}
