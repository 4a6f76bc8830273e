// The lab: N hosts as network namespaces, each with a real MySQL 9.7 under a
// restarting supervisor, a client namespace, and every fault of lab.md.
// Everything a lab creates carries its id, and `down` removes all of it,
// also after the test that created it crashed.
import { closeSync, existsSync, openSync, readFileSync } from "node:fs"
import { chmod, copyFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import mysql from "mysql2/promise"
import { bootedLabIds, haltBootedHosts } from "./booted-hosts.ts"
import { makeMysqlServerCerts } from "./certs.ts"
import { LabError, run, spawnDetached, tryRun, waitFor } from "./exec.ts"
import type { Fault, LabProcess } from "./faults.ts"
import * as net from "./network.ts"
import { ensureRootfs, requireRoot, rootfsPath } from "./rootfs.ts"

const here = dirname(fileURLToPath(import.meta.url))
const SUPERVISOR = join(here, "supervisor.sh")
const SVC = join(here, "svc.sh")

/** Lab-wide state lives here (tmpfs: gone after a reboot, as the namespaces are). */
export const runRoot = (): string => process.env.MHA_LAB_RUN ?? "/run/mha-lab"

/** Credentials of the lab's MySQL users. Test data only; never real secrets. */
export const LAB_USERS = {
  /** The agent's user: probes and actions. */
  agent: { user: "mha", password: "mha-lab-agent" },
  replication: { user: "repl", password: "mha-lab-repl" },
  /** The client application, writing through the VIP. */
  app: { user: "app", password: "mha-lab-app" },
} as const

export interface LabHost {
  readonly name: string
  readonly index: number
  readonly address: string
  readonly ns: string
  readonly serverId: number
  /** This host's directory as mysqld sees it, inside the root filesystem. */
  readonly hostDir: string
}

export interface LabState {
  readonly id: string
  readonly rootfs: string
  readonly hosts: ReadonlyArray<LabHost>
  readonly client: { readonly ns: string; readonly address: string }
  /** Every mysqld has a certificate from the lab's MySQL CA and accepts TCP clients over TLS only. */
  readonly tls?: boolean
}

export interface ReplicaView {
  readonly sourceHost: string
  readonly ioRunning: string
  readonly sqlRunning: string
  readonly lastError: string
  readonly secondsBehind: number | null
}

export interface HostView {
  readonly host: string
  readonly up: boolean
  readonly serverUuid?: string
  readonly readOnly?: boolean
  readonly superReadOnly?: boolean
  readonly gtidExecuted?: string
  readonly replica?: ReplicaView
}

export interface UpOptions {
  readonly hosts: number
  readonly id?: string
  /** Host 1 becomes the source, the others replicate from it with auto-position. */
  readonly replication?: boolean
  readonly semiSync?: boolean
  /**
   * TLS to MySQL (issue 15 item 3): each mysqld gets a server certificate
   * from a lab CA naming its host and address, require_secure_transport=ON
   * (no TCP client without TLS), and no RSA key pair at all, so that
   * caching_sha2_password can only send passwords over TLS.
   */
  readonly tls?: boolean
  readonly log?: (line: string) => void
}

const LAB_ID = /^[a-z0-9]{1,12}$/

/** A fresh lab id: $MHA_LAB_ID_PREFIX (default "t", at most 6 characters) and random letters. */
export const newLabId = (): string => {
  const prefix = (process.env.MHA_LAB_ID_PREFIX ?? "t").slice(0, 6)
  const random = Array.from({ length: 12 - prefix.length }, () =>
    Math.floor(Math.random() * 36).toString(36),
  ).join("")
  return `${prefix}${random}`
}

const myCnf = (lab: { id: string; tls?: boolean }, host: LabHost): string => `[mysqld]
user=mysql
datadir=${host.hostDir}/data
socket=${host.hostDir}/mysqld.sock
pid-file=${host.hostDir}/mysqld.pid
log-error=${host.hostDir}/error.log
${mysqldSettings(host)}${lab.tls ? mysqldTlsSettings(host) : ""}# lab ${lab.id}, host ${host.name}
`

/**
 * TLS only, and no RSA key pair: without one, caching_sha2_password's full
 * authentication (a cold cache, after a restart) cannot fall back to RSA, so
 * every login that succeeds sent its password over TLS. performance_schema is
 * on for the tests to see each session's CONNECTION_TYPE.
 */
const mysqldTlsSettings = (host: LabHost): string => `ssl_ca=${host.hostDir}/tls/ca.pem
ssl_cert=${host.hostDir}/tls/server.pem
ssl_key=${host.hostDir}/tls/server.key
require_secure_transport=ON
auto_generate_certs=OFF
caching_sha2_password_auto_generate_rsa_keys=OFF
caching_sha2_password_private_key_path=${host.hostDir}/tls/no-rsa-private.pem
caching_sha2_password_public_key_path=${host.hostDir}/tls/no-rsa-public.pem
performance_schema=ON
`

/** The replication settings of every lab mysqld, plain or booted (no paths). */
export const mysqldSettings = (host: {
  readonly address: string
  readonly serverId: number
}): string => `port=${net.MYSQL_PORT}
bind-address=0.0.0.0
report-host=${host.address}
server-id=${host.serverId}
gtid-mode=ON
enforce-gtid-consistency=ON
log-bin=binlog
relay-log=relay
# Keeps received (possibly acknowledged) transactions across a mysqld crash;
# the agent checks it (issue 10 item 4).
relay_log_recovery=OFF
# protocol.md section 9: only the lease holder ever clears it.
read_only=ON
super_read_only=ON
mysqlx=OFF
performance_schema=OFF
innodb_buffer_pool_size=32M
innodb_redo_log_capacity=32M
max_connections=100
secure-file-priv=
skip-name-resolve
plugin-load-add=semisync_source.so
plugin-load-add=semisync_replica.so
plugin-load-add=mysql_clone.so
`

// Users are created with the binary log off, so no host starts with
// transactions of its own (which would be errant on the replicas).
export const initSql = (): string => {
  const { agent, replication, app } = LAB_USERS
  return `SET sql_log_bin = 0;
CREATE USER '${agent.user}'@'%' IDENTIFIED WITH caching_sha2_password BY '${agent.password}';
GRANT SELECT, RELOAD, PROCESS, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${agent.user}'@'%';
GRANT SYSTEM_VARIABLES_ADMIN, SESSION_VARIABLES_ADMIN, REPLICATION_SLAVE_ADMIN, CONNECTION_ADMIN, BACKUP_ADMIN, CLONE_ADMIN, REPLICATION_APPLIER ON *.* TO '${agent.user}'@'%';
CREATE USER '${replication.user}'@'%' IDENTIFIED WITH caching_sha2_password BY '${replication.password}';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${replication.user}'@'%';
CREATE USER '${app.user}'@'%' IDENTIFIED WITH caching_sha2_password BY '${app.password}';
GRANT ALL ON app.* TO '${app.user}'@'%';
`
}

export class Lab {
  readonly state: LabState
  private readonly log: (line: string) => void

  private constructor(state: LabState, log: (line: string) => void) {
    this.state = state
    this.log = log
  }

  get id(): string {
    return this.state.id
  }
  get hosts(): ReadonlyArray<LabHost> {
    return this.state.hosts
  }

  // ---- lifecycle ------------------------------------------------------------

  /** Creates the lab; on any failure it removes what it made and rethrows. */
  static async up(options: UpOptions): Promise<Lab> {
    requireRoot("the lab")
    const log = options.log ?? (() => {})
    const id = options.id ?? newLabId()
    if (!LAB_ID.test(id)) throw new LabError(`lab id '${id}' must be 1 to 12 of [a-z0-9]`)
    if (!Number.isInteger(options.hosts) || options.hosts < 1 || options.hosts > 9) {
      throw new LabError(`--hosts must be an integer from 1 to 9, got ${options.hosts}`)
    }
    if ((await net.listNamespaces()).some((ns) => ns.startsWith(`${net.NS_PREFIX}${id}-`))) {
      throw new LabError(`a lab '${id}' already exists; run 'npm run lab -- down --id ${id}' first`)
    }
    const rootfs = await ensureRootfs(log)
    const hosts: LabHost[] = Array.from({ length: options.hosts }, (_, i) => {
      const name = `db${i + 1}`
      return {
        name,
        index: i + 1,
        address: net.hostAddress(i + 1),
        ns: net.hostNs(id, name),
        serverId: i + 1,
        hostDir: `/var/lib/mha-lab/${id}/${name}`,
      }
    })
    const state: LabState = {
      id,
      rootfs,
      hosts,
      client: { ns: net.hostNs(id, "client"), address: net.CLIENT_ADDRESS },
      ...(options.tls ? { tls: true } : {}),
    }
    const lab = new Lab(state, log)
    // Written first, so that `down` finds everything even if `up` dies halfway.
    await mkdir(lab.runDir(), { recursive: true })
    await writeFile(join(lab.runDir(), "lab.json"), JSON.stringify(state, null, 2))
    try {
      const started = Date.now()
      await net.createBridge(id)
      for (const h of hosts) await net.attachNamespace(id, h.ns, `v${h.name}`, h.address)
      await net.attachNamespace(id, state.client.ns, "vclient", state.client.address)
      if (options.tls) {
        await mkdir(join(lab.runDir(), "tls-mysql"), { recursive: true })
        await makeMysqlServerCerts(join(lab.runDir(), "tls-mysql"), hosts)
      }
      await Promise.all(hosts.map((h) => lab.initializeMysqld(h)))
      for (const h of hosts) lab.startSupervisor(h)
      await Promise.all(hosts.map((h) => lab.waitMysqld(h.name)))
      log(`lab ${id}: ${hosts.length} hosts up in ${((Date.now() - started) / 1000).toFixed(1)} s`)
      if (options.replication) await lab.startReplication({ semiSync: options.semiSync ?? false })
      return lab
    } catch (e) {
      await Lab.down(id)
      throw e
    }
  }

  /** A lab whose hosts another module made (booted hosts: booted-cluster.ts). */
  static attach(state: LabState, log: (line: string) => void = () => {}): Lab {
    return new Lab(state, log)
  }

  /** Opens a running lab by id (for the CLI, which runs in another process). */
  static async open(id: string): Promise<Lab> {
    const file = join(runRoot(), id, "lab.json")
    if (!existsSync(file)) throw new LabError(`no lab '${id}' is running (no ${file})`)
    return new Lab(JSON.parse(await readFile(file, "utf8")) as LabState, () => {})
  }

  /** Removes everything of lab `id`; idempotent, and works without its state file. */
  static async down(id: string): Promise<void> {
    // Booted hosts first: a clean halt of their systemd, before their namespaces go.
    await haltBootedHosts(id)
    const namespaces = (await net.listNamespaces()).filter((ns) =>
      ns.startsWith(`${net.NS_PREFIX}${id}-`),
    )
    // Hosts first (their processes die with them), the bridge last.
    const ordered = [
      ...namespaces.filter((ns) => ns !== net.bridgeNs(id)),
      ...namespaces.filter((ns) => ns === net.bridgeNs(id)),
    ]
    for (const ns of ordered) await net.destroyNamespace(ns)
    await rm(join(rootfsPath(), "var/lib/mha-lab", id), { recursive: true, force: true })
    await rm(join(runRoot(), id), { recursive: true, force: true })
  }

  /** Every lab id that has anything left on this machine, optionally only those starting with prefix. */
  static async list(prefix = ""): Promise<string[]> {
    const ids = new Set<string>()
    for (const ns of await net.listNamespaces()) {
      const m = /^mhl-([a-z0-9]+)-/.exec(ns)
      if (m?.[1]) ids.add(m[1])
    }
    for (const dir of [runRoot(), join(rootfsPath(), "var/lib/mha-lab")]) {
      if (existsSync(dir)) for (const e of await readdir(dir)) ids.add(e)
    }
    for (const id of await bootedLabIds()) ids.add(id)
    return [...ids].filter((id) => id.startsWith(prefix)).sort()
  }

  async down(): Promise<void> {
    await Lab.down(this.id)
  }

  runDir(): string {
    return join(runRoot(), this.id)
  }

  host(name: string): LabHost {
    const h = this.state.hosts.find((x) => x.name === name)
    if (!h) {
      throw new LabError(
        `lab ${this.id} has no host '${name}' (hosts: ${this.state.hosts.map((x) => x.name).join(", ")})`,
      )
    }
    return h
  }

  /** A host's directory as seen from outside the root filesystem. */
  hostPath(name: string, file = ""): string {
    return join(this.state.rootfs, this.host(name).hostDir, file)
  }

  // ---- mysqld ----------------------------------------------------------------

  private async initializeMysqld(h: LabHost): Promise<void> {
    const dir = join(this.state.rootfs, h.hostDir)
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, "my.cnf"), myCnf(this.state, h), { mode: 0o644 })
    await writeFile(join(dir, "init.sql"), initSql(), { mode: 0o644 })
    if (this.state.tls) {
      // The files mysqld reads, inside its root; wrong-name.* for the name-mismatch test.
      const tls = this.mysqlTls()
      await mkdir(join(dir, "tls"), { recursive: true })
      for (const [from, to] of [
        [tls.ca, "ca.pem"],
        [join(tls.dir, `${h.name}.crt`), "server.pem"],
        [join(tls.dir, `${h.name}.key`), "server.key"],
        [join(tls.dir, "wrong-name.crt"), "wrong-name.pem"],
        [join(tls.dir, "wrong-name.key"), "wrong-name.key"],
      ] as const) {
        await copyFile(from, join(dir, "tls", to))
        await chmod(join(dir, "tls", to), to.endsWith(".key") ? 0o600 : 0o644)
      }
      await run("chroot", [this.state.rootfs, "chown", "-R", "mysql:mysql", `${h.hostDir}/tls`])
    }
    await run("chroot", [this.state.rootfs, "chown", "mysql:mysql", h.hostDir])
    await run(
      "chroot",
      [
        this.state.rootfs,
        "/usr/sbin/mysqld",
        `--defaults-file=${h.hostDir}/my.cnf`,
        "--initialize-insecure",
        `--init-file=${h.hostDir}/init.sql`,
      ],
      { timeoutMs: 120_000 },
    )
  }

  private startSupervisor(h: LabHost): void {
    const fd = openSync(this.hostPath(h.name, "supervisor.out"), "a")
    try {
      spawnDetached(
        "ip",
        ["netns", "exec", h.ns, "bash", SUPERVISOR, this.state.rootfs, h.hostDir],
        fd,
      )
    } finally {
      closeSync(fd)
    }
  }

  /**
   * The lab's MySQL TLS files as the agents and clients read them (outside
   * the mysqlds' root); `hostCa` is the CA as a host's mysqld reads it.
   */
  mysqlTls(): {
    readonly dir: string
    readonly ca: string
    readonly rogueCa: string
    readonly hostCa: (name: string) => string
  } {
    if (!this.state.tls) throw new LabError(`lab ${this.id} was made without tls`)
    const dir = join(this.runDir(), "tls-mysql")
    return {
      dir,
      ca: join(dir, "ca.crt"),
      rogueCa: join(dir, "rogue-ca.crt"),
      hostCa: (name) => `${this.host(name).hostDir}/tls/ca.pem`,
    }
  }

  /** The restart_command an agent on this host uses: what `systemctl restart mysql` is elsewhere. */
  restartCommand(name: string): string {
    return `bash ${SVC} ${this.state.rootfs} ${this.host(name).hostDir} restart`
  }

  /** The kill_command an agent on this host uses: what `systemctl kill --signal=SIGKILL mysql` is elsewhere. */
  killCommand(name: string): string {
    return `bash ${SVC} ${this.state.rootfs} ${this.host(name).hostDir} kill`
  }

  mysqldPid(name: string): number | undefined {
    const file = this.hostPath(name, "mysqld.pid.sup")
    try {
      const text = readFileSync(file, "utf8").trim()
      return text === "" ? undefined : Number(text)
    } catch {
      return undefined
    }
  }

  /** Starts and restarts seen by the supervisor, oldest first. */
  async supervisorEvents(name: string): Promise<string[]> {
    const file = this.hostPath(name, "supervisor.log")
    if (!existsSync(file)) return []
    return (await readFile(file, "utf8")).split("\n").filter((l) => l !== "")
  }

  /** A root connection over the host's Unix socket (which needs no network). */
  async connect(name: string): Promise<mysql.Connection> {
    return mysql.createConnection({
      socketPath: this.hostPath(name, "mysqld.sock"),
      user: "root",
      connectTimeout: 2000,
      multipleStatements: false,
    })
  }

  async query<T = Record<string, unknown>>(
    name: string,
    sql: string,
    params: Array<string | number | null> = [],
  ): Promise<T[]> {
    const conn = await this.connect(name)
    try {
      const [rows] = await conn.query(sql, params)
      return (Array.isArray(rows) ? rows : []) as T[]
    } finally {
      await conn.end().catch(() => {})
    }
  }

  async isMysqldUp(name: string): Promise<boolean> {
    try {
      await this.query(name, "SELECT 1")
      return true
    } catch {
      return false
    }
  }

  async waitMysqld(name: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      `mysqld on ${name} to accept connections`,
      () => this.isMysqldUp(name),
      timeoutMs,
      100,
    )
  }

  /** Host 1 (or `source`) becomes the writable source; every other host replicates from it. */
  async startReplication(options: { source?: string; semiSync?: boolean } = {}): Promise<void> {
    const source = this.host(options.source ?? "db1")
    const { replication } = LAB_USERS
    if (options.semiSync) {
      await this.query(source.name, "SET GLOBAL rpl_semi_sync_source_enabled = ON")
      await this.query(source.name, "SET GLOBAL rpl_semi_sync_source_wait_for_replica_count = 1")
    }
    await this.query(source.name, "SET GLOBAL super_read_only = OFF")
    await this.query(source.name, "SET GLOBAL read_only = OFF")
    for (const h of this.hosts.filter((x) => x.name !== source.name)) {
      await this.query(h.name, "STOP REPLICA")
      if (options.semiSync)
        await this.query(h.name, "SET GLOBAL rpl_semi_sync_replica_enabled = ON")
      // With tls: the source's certificate checked against the CA and the address, no RSA.
      const auth = this.state.tls
        ? "GET_SOURCE_PUBLIC_KEY = 0, SOURCE_SSL = 1, SOURCE_SSL_CA = ?, SOURCE_SSL_VERIFY_SERVER_CERT = 1"
        : "GET_SOURCE_PUBLIC_KEY = 1"
      await this.query(
        h.name,
        `CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = ?, SOURCE_USER = ?, SOURCE_PASSWORD = ?,
           SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, SOURCE_RETRY_COUNT = 86400, ${auth}`,
        [
          source.address,
          net.MYSQL_PORT,
          replication.user,
          replication.password,
          ...(this.state.tls ? [this.mysqlTls().hostCa(h.name)] : []),
        ],
      )
      await this.query(h.name, "START REPLICA")
    }
    for (const h of this.hosts.filter((x) => x.name !== source.name)) {
      await waitFor(
        `${h.name} to connect to its source ${source.name}`,
        async () => (await this.replicaStatus(h.name))?.ioRunning === "Yes",
        30_000,
      )
    }
    this.log(`lab ${this.id}: ${source.name} is the source, the others replicate from it`)
  }

  async replicaStatus(name: string): Promise<ReplicaView | undefined> {
    const rows = await this.query<Record<string, unknown>>(name, "SHOW REPLICA STATUS")
    const r = rows[0]
    if (!r) return undefined
    const lag = r.Seconds_Behind_Source
    return {
      sourceHost: String(r.Source_Host ?? ""),
      ioRunning: String(r.Replica_IO_Running ?? ""),
      sqlRunning: String(r.Replica_SQL_Running ?? ""),
      lastError: String(r.Last_IO_Error || r.Last_SQL_Error || ""),
      secondsBehind: lag === null || lag === undefined ? null : Number(lag),
    }
  }

  async view(name: string): Promise<HostView> {
    try {
      const [v] = await this.query<{
        uuid: string
        ro: number
        sro: number
        gtid: string
      }>(
        name,
        "SELECT @@server_uuid AS uuid, @@read_only AS ro, @@super_read_only AS sro, @@gtid_executed AS gtid",
      )
      if (!v) return { host: name, up: false }
      const replica = await this.replicaStatus(name)
      return {
        host: name,
        up: true,
        serverUuid: v.uuid,
        readOnly: v.ro === 1,
        superReadOnly: v.sro === 1,
        gtidExecuted: v.gtid.replace(/\n/g, ""),
        ...(replica ? { replica } : {}),
      }
    } catch {
      return { host: name, up: false }
    }
  }

  async topology(): Promise<HostView[]> {
    return Promise.all(this.hosts.map((h) => this.view(h.name)))
  }

  /** Waits until every running replica has executed what `source` has. */
  async waitReplicasCaughtUp(source: string, timeoutMs = 30_000): Promise<void> {
    const [row] = await this.query<{ g: string }>(source, "SELECT @@gtid_executed AS g")
    const target = row?.g ?? ""
    for (const h of this.hosts.filter((x) => x.name !== source)) {
      // 0 once applied, 1 on timeout (no error): a test must not go on believing it caught up.
      const [wait] = await this.query<{ w: number | string }>(
        h.name,
        "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS w",
        [target, timeoutMs / 1000],
      )
      if (Number(wait?.w) !== 0) {
        throw new LabError(
          `${h.name} did not apply ${source}'s gtid_executed (${target}) within ${timeoutMs} ms`,
        )
      }
    }
  }

  // ---- processes in hosts (agents, clients) -----------------------------------

  private processDir(where: string): string {
    return join(this.runDir(), where)
  }

  private nsOf(where: string): string {
    return where === "client" ? this.state.client.ns : this.host(where).ns
  }

  /** Starts a long-running process inside a host (or "client"); its output goes to a log file. */
  async spawn(
    where: string,
    name: string,
    argv: ReadonlyArray<string>,
    env: NodeJS.ProcessEnv = process.env,
  ): Promise<number> {
    const dir = this.processDir(where)
    await mkdir(dir, { recursive: true })
    const fd = openSync(join(dir, `${name}.log`), "a")
    try {
      const [file, ...args] = argv
      if (!file) throw new LabError("spawn needs a command")
      const pid = spawnDetached("ip", ["netns", "exec", this.nsOf(where), file, ...args], fd, env)
      await writeFile(join(dir, `${name}.pid`), String(pid))
      return pid
    } finally {
      closeSync(fd)
    }
  }

  /** Stops a process started with spawn (SIGTERM, then SIGKILL after the grace period). */
  async stopProcess(where: string, name: string, graceMs = 5000): Promise<void> {
    const file = join(this.processDir(where), `${name}.pid`)
    if (!existsSync(file)) return
    const pid = Number((await readFile(file, "utf8")).trim())
    const alive = () => {
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    }
    if (alive()) process.kill(pid, "SIGTERM")
    try {
      await waitFor(`${name} on ${where} to stop`, () => !alive(), graceMs)
    } catch {
      if (alive()) process.kill(pid, "SIGKILL")
    }
    await rm(file, { force: true })
  }

  /** Pauses (SIGSTOP) or resumes (SIGCONT) a process started with spawn, such as the client's writer. */
  async signalProcess(where: string, name: string, signal: "STOP" | "CONT"): Promise<void> {
    const file = join(this.processDir(where), `${name}.pid`)
    if (!existsSync(file)) throw new LabError(`no ${name} was started on ${where}`)
    await this.signal(Number((await readFile(file, "utf8")).trim()), signal)
  }

  processLog(where: string, name: string): string {
    return join(this.processDir(where), `${name}.log`)
  }

  /** Runs a command to completion inside a host (or "client"). */
  exec(where: string, argv: ReadonlyArray<string>): ReturnType<typeof run> {
    return run("ip", ["netns", "exec", this.nsOf(where), ...argv])
  }

  private async pidOf(host: string, process: LabProcess): Promise<number> {
    if (process === "mysqld") {
      const pid = this.mysqldPid(host)
      if (pid === undefined) throw new LabError(`mysqld on ${host} is not running`)
      return pid
    }
    const file = join(this.processDir(host), "agent.pid")
    if (!existsSync(file)) throw new LabError(`no agent was started on ${host}`)
    return Number((await readFile(file, "utf8")).trim())
  }

  // ---- faults ----------------------------------------------------------------

  /** Injects one fault of lab.md. */
  async inject(fault: Fault): Promise<void> {
    switch (fault._tag) {
      case "KillMysqld":
        await this.signal(await this.pidOf(fault.host, "mysqld"), "KILL")
        return
      case "StopMysqld": {
        await writeFile(this.hostPath(fault.host, "disabled"), "")
        const pid = this.mysqldPid(fault.host)
        if (pid !== undefined) await this.signal(pid, "KILL")
        await waitFor(
          `mysqld on ${fault.host} to stop`,
          async () => !(await this.isMysqldUp(fault.host)),
          10_000,
        )
        return
      }
      case "StartMysqld":
        await rm(this.hostPath(fault.host, "disabled"), { force: true })
        await this.waitMysqld(fault.host)
        return
      case "Pause":
        await this.signal(await this.pidOf(fault.host, fault.process), "STOP")
        return
      case "Resume":
        await this.signal(await this.pidOf(fault.host, fault.process), "CONT")
        return
      case "KillAgent":
        await this.signal(await this.pidOf(fault.host, "agent"), "KILL")
        return
      case "Isolate":
        await net.isolate(this.host(fault.host).ns)
        return
      case "CutOneWay":
        await net.cutOutgoing(this.host(fault.from).ns, this.host(fault.to).address)
        return
      case "CutAgent":
        await this.cutBothWays(fault.a, fault.b, [net.AGENT_PORT])
        return
      case "CutReplication":
        await this.cutBothWays(fault.a, fault.b, [net.MYSQL_PORT])
        return
      case "Loss":
        for (const h of this.targets(fault.hosts)) await net.randomLoss(h.ns, fault.percent)
        return
      case "Heal":
        for (const h of this.targets(fault.hosts)) await net.heal(h.ns)
        return
      default: {
        const unhandled: never = fault
        throw new LabError(`unhandled fault ${JSON.stringify(unhandled)}`)
      }
    }
  }

  private targets(names: ReadonlyArray<string>): ReadonlyArray<LabHost> {
    return names.length === 0 ? this.hosts : names.map((n) => this.host(n))
  }

  private async cutBothWays(a: string, b: string, ports: ReadonlyArray<number>): Promise<void> {
    await net.cutPorts(this.host(a).ns, this.host(b).address, ports)
    await net.cutPorts(this.host(b).ns, this.host(a).address, ports)
  }

  private async signal(pid: number, signal: "KILL" | "STOP" | "CONT"): Promise<void> {
    const r = await tryRun("kill", [`-${signal}`, String(pid)])
    if (!r.ok) throw new LabError(`could not send SIG${signal} to ${pid}: ${r.stderr}`)
  }

  /** True when `from` can reach `to`'s MySQL port over the lab network (a real TCP connect). */
  async canReach(from: string, to: string, port = net.MYSQL_PORT): Promise<boolean> {
    const target = to === "client" ? this.state.client.address : this.host(to).address
    const r = await tryRun("ip", [
      "netns",
      "exec",
      this.nsOf(from),
      "timeout",
      "2",
      "bash",
      "-c",
      `exec 3<>/dev/tcp/${target}/${port}`,
    ])
    return r.ok
  }
}

/** One line per host: role, super_read_only, GTIDs (for people). */
export const formatTopology = (views: ReadonlyArray<HostView>): string => {
  const rows = views.map((v) => {
    const role = !v.up
      ? "DOWN"
      : v.replica
        ? `replica of ${v.replica.sourceHost} (io ${v.replica.ioRunning}, sql ${v.replica.sqlRunning}${v.replica.lastError ? `, error: ${v.replica.lastError}` : ""})`
        : v.superReadOnly
          ? "read-only, no source"
          : "WRITABLE source"
    return [
      v.host,
      role,
      v.up ? `super_read_only=${v.superReadOnly ? "ON" : "OFF"}` : "",
      v.gtidExecuted ?? "",
    ]
  })
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => (r[c] ?? "").length)))
  return rows
    .map((r) => r.map((cell, c) => (c < 3 ? cell.padEnd(widths[c] ?? 0) : cell)).join("  "))
    .join("\n")
}
