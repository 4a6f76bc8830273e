// A cluster of booted lab hosts (lab.md "Booted hosts"), as an operator runs
// one: each host a systemd-nspawn container with systemd as PID 1, Debian's
// mysql-server as mysql.service, the agent put on the hosts by following
// the operator's guide packaging/README.package command by command
// (booted-guide.ts: the .deb installed with apt-get, the day-1 commands, the
// config, certificates and secrets in /etc/mha-agent, the shipped polkit
// rule, `systemctl enable --now`), restart_command left at its default
// `systemctl restart mysql`. The network, the client's writer and sampler
// and the invariants are the plain lab's.
import { cpSync, existsSync, mkdirSync } from "node:fs"
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { packagesUnderTest } from "../pkg/helpers.ts"
import type { AgentTimings } from "./agents.ts"
import { followGuide, guideConfig, labConfig } from "./booted-guide.ts"
import {
  bootedHostPaths,
  bootHost,
  inContainer,
  makeHostRoot,
  tryInContainer,
} from "./booted-hosts.ts"
import { ensureBootedRootfs } from "./booted-rootfs.ts"
import { run, waitFor } from "./exec.ts"
import { initSql, Lab, type LabHost, type LabState, mysqldSettings, newLabId } from "./lab.ts"
import * as net from "./network.ts"
import { requireRoot } from "./rootfs.ts"
import { type Invariants, WatchedCluster } from "./watched-cluster.ts"

const here = import.meta.dirname
/** Inside each container: the lab's mysqld files (its socket, reachable from outside through the overlay). */
const LAB_DIR_IN_HOST = "/var/lib/mha-lab"

export interface BootedClusterOptions {
  readonly hosts?: number
  readonly timings?: AgentTimings
  readonly log?: (line: string) => void
  /** The agent's .deb to install (default: this checkout's); e.g. a previous release's. */
  readonly deb?: string
}

export interface BootedTimes {
  /** Building (or finding) the cached root. */
  readonly rootMs: number
  /** From the guide's `apt-get install ./mha-agent_*.deb` to a writable primary holding the VIP. */
  readonly installToActiveMs: number
  /** From the guide's `systemctl enable --now mha-agent` (done on every host) to the same. */
  readonly startToActiveMs: number
}

export class BootedCluster extends WatchedCluster {
  readonly leaders: Map<string, number>
  times: BootedTimes = { rootMs: 0, installToActiveMs: 0, startToActiveMs: 0 }
  timings: AgentTimings = {}

  private constructor(lab: Lab, leaders: Map<string, number>) {
    super(lab)
    this.leaders = leaders
  }

  /** Boots the hosts, replicates from db1 with semi-sync, installs and starts the agents, then the writer and sampler. */
  static async up(options: BootedClusterOptions = {}): Promise<BootedCluster> {
    requireRoot("the booted lab")
    const log = options.log ?? (() => {})
    const id = newLabId()
    const t0 = Date.now()
    const lower = await ensureBootedRootfs(log)
    const rootMs = Date.now() - t0
    const scratch = await mkdtemp(join(tmpdir(), "mha-booted-pkg-"))
    const hosts: LabHost[] = Array.from({ length: options.hosts ?? 3 }, (_, i) => {
      const name = `db${i + 1}`
      return {
        name,
        index: i + 1,
        address: net.hostAddress(i + 1),
        ns: net.hostNs(id, name),
        serverId: i + 1,
        // As seen from outside: Lab.query connects to <rootfs>/<hostDir>/mysqld.sock.
        hostDir: join(bootedHostPaths(id, name).root, LAB_DIR_IN_HOST),
      }
    })
    const state: LabState = {
      id,
      rootfs: "/",
      hosts,
      client: { ns: net.hostNs(id, "client"), address: net.CLIENT_ADDRESS },
    }
    const lab = Lab.attach(state, log)
    // Written first, so that `down` finds everything even if `up` dies halfway.
    await mkdir(lab.runDir(), { recursive: true })
    await writeFile(join(lab.runDir(), "lab.json"), JSON.stringify({ ...state, booted: true }))
    const leaders = new Map<string, number>()
    try {
      const pkgs = { deb: options.deb ?? (await packagesUnderTest(scratch, log)).deb }
      await net.createBridge(id)
      for (const h of hosts) await net.attachNamespace(id, h.ns, `v${h.name}`, h.address)
      await net.attachNamespace(id, state.client.ns, "vclient", state.client.address)
      await Promise.all(
        hosts.map(async (h) => {
          const { root } = await makeHostRoot(lower, id, h.name)
          await prepareMysql(root, h)
          leaders.set(h.name, await bootHost(id, h.name, h.ns))
        }),
      )
      await Promise.all(hosts.map((h) => lab.waitMysqld(h.name, 180_000)))
      log(`booted lab ${id}: ${hosts.length} hosts with mysql.service up`)
      await lab.startReplication({ semiSync: true })
      await lab.query("db1", "CREATE DATABASE app")
      await lab.query(
        "db1",
        "CREATE TABLE app.writes (id BIGINT PRIMARY KEY, client_ms BIGINT, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
      )
      await lab.waitReplicasCaughtUp("db1")
      const cluster = new BootedCluster(lab, leaders)
      cluster.timings = options.timings ?? {}
      // The operator's steps: every block of packaging/README.package, in order.
      const guide = await followGuide(cluster, {
        deb: pkgs.deb,
        workstation: join(scratch, "workstation"),
        log,
      })
      await cluster.waitForPrimary(60_000)
      cluster.times = {
        rootMs,
        installToActiveMs: Date.now() - guide.installAt,
        startToActiveMs: Date.now() - guide.startedAt,
      }
      await lab.spawn("client", "sampler", [
        process.execPath,
        join(here, "client/sampler.ts"),
        "--hosts",
        hosts.map((h) => `${h.name}=${h.address}`).join(","),
        "--out",
        cluster.samplerLog,
      ])
      await lab.spawn("client", "writer", [
        process.execPath,
        join(here, "client/writer.ts"),
        "--host",
        net.VIP,
        "--out",
        cluster.writerLog,
      ])
      await waitFor(
        "the first acknowledged writes through the VIP",
        () => cluster.writes().acked.length > 10,
        30_000,
      )
      return cluster
    } catch (e) {
      // MHA_LAB_KEEP=1: leave the lab up to look into it (remove it with the lab CLI's `down`).
      if (process.env.MHA_LAB_KEEP === "1") log(`keeping booted lab ${id} for inspection`)
      else await Lab.down(id)
      throw e
    } finally {
      await rm(scratch, { recursive: true, force: true })
    }
  }

  leader(host: string): number {
    const pid = this.leaders.get(host)
    if (pid === undefined) throw new Error(`no booted host ${host}`)
    return pid
  }

  /** Runs a command inside a booted host as root. */
  in(host: string, argv: ReadonlyArray<string>, timeoutMs?: number) {
    return inContainer(this.leader(host), argv, timeoutMs)
  }

  tryIn(host: string, argv: ReadonlyArray<string>, timeoutMs?: number) {
    return tryInContainer(this.leader(host), argv, timeoutMs)
  }

  /** Host-side path of a file inside a booted host. */
  pathIn(host: string, file: string): string {
    return join(bootedHostPaths(this.lab.id, host).root, file)
  }

  /** /etc/mha-agent/config.yaml of a host: the guide's, with the lab's addresses (booted-guide.ts labConfig). */
  agentConfig(host: string, timings: AgentTimings): Record<string, unknown> {
    return labConfig(guideConfig(), this.lab, host, timings)
  }

  /** MainPID of a unit inside a host (its pid in the host's namespace), 0 when not running. */
  async mainPid(host: string, unit: string): Promise<number> {
    const r = await this.in(host, ["systemctl", "show", "-p", "MainPID", "--value", unit])
    return Number(r.stdout.trim())
  }

  /** The agent's journal on a host, as JSON records. */
  async journal(host: string, since?: string): Promise<Array<Record<string, string>>> {
    const args = ["journalctl", "-u", "mha-agent", "-o", "json", "--no-pager"]
    if (since) args.push("--since", since)
    const r = await this.in(host, args)
    return r.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, string>)
  }

  /**
   * The three invariants of lab.md over the whole run so far, while the
   * writer keeps running (the cluster is reused by the next check): no
   * acknowledged write missing on the primary, never two writable nodes,
   * convergence. Returns the client-observed downtime after `faultAt`.
   */
  async check(faultAt: number): Promise<Invariants> {
    return this.invariants(faultAt, true)
  }

  /**
   * As check, but a node left DIVERGED (an old primary holding unacknowledged
   * transactions of its own, lab.md scenario 3) is no problem if its agent
   * reports it so.
   */
  async checkRejoinedOrDiverged(faultAt: number): Promise<Invariants> {
    const r = await this.invariants(faultAt, false)
    for (const host of r.diverged) {
      let role = "unknown"
      await waitFor(
        `${host}'s agent to say DIVERGED`,
        async () => {
          const s = await this.tryIn(host, ["mha-agent", "status", "--json"])
          if (s.code !== 0) return false
          role = (JSON.parse(s.stdout) as { status: { role: string } }).status.role
          return role === "DIVERGED"
        },
        20_000,
        500,
      ).catch(() => {
        r.problems.push(`${host} holds transactions the primary lacks, but its agent says ${role}`)
      })
    }
    return r
  }

  /** Copies the run folder, every host's journal and mysqld error log to a folder that survives `down`. */
  async keepLogs(name: string): Promise<string> {
    const dir = join(
      process.env.MHA_TEST_ARTIFACTS ?? "/tmp/mha-test-logs",
      `${name}-${this.lab.id}`,
    )
    mkdirSync(dir, { recursive: true })
    cpSync(this.lab.runDir(), join(dir, "run"), {
      recursive: true,
      filter: (src) => !src.includes("/tls"),
    })
    for (const h of this.lab.hosts) {
      const j = await this.tryIn(h.name, ["journalctl", "--no-pager", "-o", "short-precise"])
      await writeFile(join(dir, `${h.name}-journal.txt`), j.stdout)
      const err = this.pathIn(h.name, "/var/log/mysql/error.log")
      if (existsSync(err)) cpSync(err, join(dir, `${h.name}-error.log`))
    }
    return dir
  }

  async down(): Promise<void> {
    await Lab.down(this.lab.id)
  }
}

/** The host's mysqld: the lab's settings beside Debian's, its own datadir and users. */
const prepareMysql = async (root: string, h: LabHost): Promise<void> => {
  await writeFile(join(root, "etc/hostname"), `${h.name}\n`)
  const socket = `${LAB_DIR_IN_HOST}/mysqld.sock`
  await writeFile(
    join(root, "etc/mysql/mysql.conf.d/zz-mha-lab.cnf"),
    `# The lab's settings (lab.ts mysqldSettings), read after Debian's mysqld.cnf.
[mysqld]
socket=${socket}
${mysqldSettings(h)}
[client]
socket=${socket}
`,
    { mode: 0o644 },
  )
  await mkdir(join(root, LAB_DIR_IN_HOST), { recursive: true })
  await writeFile(join(root, LAB_DIR_IN_HOST, "init.sql"), initSql(), { mode: 0o644 })
  await run("chroot", [
    root,
    "sh",
    "-c",
    `install -d -o mysql -g mysql -m 0700 /var/lib/mysql && chown mysql:mysql ${LAB_DIR_IN_HOST} && ` +
      "install -d -o mysql -g adm -m 2750 /var/log/mysql",
  ])
  await run(
    "chroot",
    [
      root,
      "/usr/sbin/mysqld",
      "--initialize-insecure",
      "--user=mysql",
      `--init-file=${LAB_DIR_IN_HOST}/init.sql`,
    ],
    { timeoutMs: 180_000 },
  )
}
