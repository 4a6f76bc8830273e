// A cluster of booted lab hosts (lab.md "Booted hosts"), as an operator runs
// one: each host a systemd-nspawn container with systemd as PID 1, Debian's
// mysql-server as mysql.service, the agent installed from the .deb with
// apt-get, its config, certificates and secrets in /etc/mha-agent, the
// shipped polkit rule in place, started with `systemctl enable --now`, and
// restart_command left at its default `systemctl restart mysql`. The
// network, the client's writer and sampler and the invariants are the plain
// lab's.
import { cpSync, existsSync, mkdirSync } from "node:fs"
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import { stringify } from "yaml"
import { packagesUnderTest } from "../pkg/helpers.ts"
import type { AgentTimings } from "./agents.ts"
import {
  bootedHostPaths,
  bootHost,
  inContainer,
  makeHostRoot,
  tryInContainer,
} from "./booted-hosts.ts"
import { ensureBootedRootfs } from "./booted-rootfs.ts"
import { makeCerts } from "./certs.ts"
import { run, waitFor } from "./exec.ts"
import {
  initSql,
  LAB_USERS,
  Lab,
  type LabHost,
  type LabState,
  mysqldSettings,
  newLabId,
} from "./lab.ts"
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
  /** From the first `apt-get install ./mha-agent_*.deb` to a writable primary holding the VIP. */
  readonly installToActiveMs: number
}

export class BootedCluster extends WatchedCluster {
  readonly leaders: Map<string, number>
  times: BootedTimes = { rootMs: 0, installToActiveMs: 0 }
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
      await mkdir(join(lab.runDir(), "tls"), { recursive: true })
      const certs = await makeCerts({
        members: hosts.map((h) => h.name),
        dir: join(lab.runDir(), "tls"),
      })
      cluster.timings = options.timings ?? {}
      // On every host at once, as configuration management would.
      const installStart = Date.now()
      await Promise.all(
        hosts.map((h) =>
          cluster.installAgent(h.name, pkgs.deb, {
            ca: certs.ca,
            cert: certs.members[h.name]!.cert,
            key: certs.members[h.name]!.key,
            timings: cluster.timings,
          }),
        ),
      )
      await cluster.waitForPrimary(60_000)
      cluster.times = { rootMs, installToActiveMs: Date.now() - installStart }
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

  /** The operator's steps of packaging/README.package, on one host. */
  private async installAgent(
    host: string,
    deb: string,
    files: { ca: string; cert: string; key: string; timings: AgentTimings },
  ): Promise<void> {
    await copyFile(deb, this.pathIn(host, `/root/${basename(deb)}`))
    await this.in(
      host,
      ["sh", "-c", `DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/${basename(deb)}`],
      300_000,
    )
    const etc = this.pathIn(host, "/etc/mha-agent")
    await mkdir(join(etc, "tls"), { recursive: true })
    await copyFile(files.ca, join(etc, "tls/ca.pem"))
    await copyFile(files.cert, join(etc, `tls/${host}.pem`))
    await copyFile(files.key, join(etc, `tls/${host}.key`))
    await writeFile(join(etc, "monitor.password"), `${LAB_USERS.agent.password}\n`)
    await writeFile(join(etc, "replication.password"), `${LAB_USERS.replication.password}\n`)
    await writeFile(join(etc, "config.yaml"), stringify(this.agentConfig(host, files.timings)))
    // Readable by the agent's user, the secrets by nobody else (README.package step 2).
    await this.in(host, [
      "sh",
      "-c",
      "cd /etc/mha-agent && chown root:mha-agent config.yaml monitor.password replication.password tls tls/* " +
        "&& chmod 0640 config.yaml monitor.password replication.password tls/* && chmod 0750 tls",
    ])
    await this.in(host, [
      "cp",
      "/usr/share/doc/mha-agent/polkit-mha-agent.rules",
      "/etc/polkit-1/rules.d/50-mha-agent.rules",
    ])
    await this.in(host, ["mha-agent", "check-config"])
    await this.in(host, ["systemctl", "enable", "--now", "mha-agent"])
  }

  /** /etc/mha-agent/config.yaml of a host; `service` is left at its defaults. */
  agentConfig(host: string, timings: AgentTimings): Record<string, unknown> {
    return {
      cluster: {
        name: `lab-${this.lab.id}`,
        members: this.lab.hosts.map((h) => ({
          name: h.name,
          address: h.address,
          mysql_port: net.MYSQL_PORT,
          agent_port: net.AGENT_PORT,
          priority: 100 - h.index,
        })),
      },
      node: host,
      mysql: {
        monitor: { user: LAB_USERS.agent.user, password_file: "/etc/mha-agent/monitor.password" },
        replication: {
          user: LAB_USERS.replication.user,
          password_file: "/etc/mha-agent/replication.password",
        },
        get_source_public_key: true,
        connect_timeout: "1s",
        query_timeout: "1s",
      },
      timings: { ...timings },
      semi_sync: { mode: "strict" },
      vip: { address: `${net.VIP}/${net.PREFIX_LEN}`, interface: "eth0" },
      mesh: {
        listen: `0.0.0.0:${net.AGENT_PORT}`,
        ca: "/etc/mha-agent/tls/ca.pem",
        cert: `/etc/mha-agent/tls/${host}.pem`,
        key: `/etc/mha-agent/tls/${host}.key`,
      },
      http: { listen: `0.0.0.0:${net.HTTP_PORT}` },
      log: { level: "info" },
    }
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
