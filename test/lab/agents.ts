// Real agents on the lab: one `mha-agent run` per host, inside the host's
// namespace, with mTLS certificates, password files and a config of its own,
// exactly as an operator would install them (the packaged binary instead of
// the source tree when MHA_AGENT_BIN is set).
import { readFileSync } from "node:fs"
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { stringify } from "yaml"
import { type LabCerts, makeCerts } from "./certs.ts"
import { LAB_USERS, type Lab } from "./lab.ts"
import { AGENT_PORT, HTTP_PORT, MYSQL_PORT, PREFIX_LEN, VIP } from "./network.ts"

const repo = join(import.meta.dirname, "../..")

export interface AgentTimings {
  readonly probe_interval?: string
  readonly heartbeat_interval?: string
  readonly rpc_timeout?: string
  readonly lease_duration?: string
  readonly restart_timeout?: string
  readonly restart_attempts?: number
  readonly apply_timeout?: string
  readonly recovery_block_period?: string
  readonly [key: string]: string | number | undefined
}

export interface AgentsOptions {
  /** Witness members: these lab hosts run an agent but their mysqld is not a member. */
  readonly witnesses?: ReadonlyArray<string>
  readonly timings?: AgentTimings
  readonly semiSync?: "off" | "on" | "strict"
  readonly extra?: Readonly<Record<string, unknown>>
  /** Environment for every agent (e.g. fault injection). */
  readonly env?: Readonly<Record<string, string>>
  /** Environment for one host's agent only, on top of `env` (e.g. libfaketime on one node). */
  readonly hostEnv?: Readonly<Record<string, Readonly<Record<string, string>>>>
  /** The agent command per host (default agentCommand()): e.g. a previous release's binary. */
  readonly command?: (host: string) => ReadonlyArray<string>
  /** Adjusts a host's config file before it is written (e.g. what a previous release accepts). */
  readonly configFor?: (host: string, config: Record<string, unknown>) => Record<string, unknown>
}

/**
 * The environment the shipped systemd unit gives the agent (its Environment=
 * lines): the packaged binary runs with it here too, as operators run it.
 */
export const unitEnvironment = (): Record<string, string> => {
  const unit = readFileSync(join(repo, "packaging/mha-agent.service"), "utf8")
  const env: Record<string, string> = {}
  for (const m of unit.matchAll(/^Environment=([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/gm))
    env[m[1] as string] = m[2] as string
  return env
}

/** The command that runs the agent: the packaged binary, or the source tree on Node 24. */
export const agentCommand = (): string[] =>
  process.env.MHA_AGENT_BIN
    ? [process.env.MHA_AGENT_BIN]
    : [process.execPath, "--disable-warning=ExperimentalWarning", join(repo, "agent/src/main.ts")]

export class LabAgents {
  readonly lab: Lab
  readonly certs: LabCerts
  readonly options: AgentsOptions

  private constructor(lab: Lab, certs: LabCerts, options: AgentsOptions) {
    this.lab = lab
    this.certs = certs
    this.options = options
  }

  /** Writes every host's files; start() then runs the agents. */
  static async prepare(lab: Lab, options: AgentsOptions = {}): Promise<LabAgents> {
    const names = lab.hosts.map((h) => h.name)
    await mkdir(join(lab.runDir(), "tls"), { recursive: true })
    const certs = await makeCerts({ members: names, dir: join(lab.runDir(), "tls") })
    const agents = new LabAgents(lab, certs, options)
    for (const h of lab.hosts) await agents.writeFiles(h.name)
    const { issue: _issue, remove: _remove, ...certFiles } = certs
    await writeFile(
      join(lab.runDir(), "agents.json"),
      JSON.stringify({ certs: certFiles, options }),
    )
    return agents
  }

  /** The agents of a running lab, from what prepare() wrote (for the sandbox's later commands). */
  static async open(lab: Lab): Promise<LabAgents> {
    const saved = JSON.parse(await readFile(join(lab.runDir(), "agents.json"), "utf8")) as {
      certs: Omit<LabCerts, "issue" | "remove">
      options: AgentsOptions
    }
    const certs: LabCerts = {
      ...saved.certs,
      issue: () => Promise.reject(new Error("certificates of an opened lab are read-only")),
      remove: () => Promise.resolve(),
    }
    return new LabAgents(lab, certs, saved.options)
  }

  configDir(host: string): string {
    return join(this.lab.runDir(), host, "etc")
  }
  configPath(host: string): string {
    return join(this.configDir(host), "config.yaml")
  }
  socketPath(host: string): string {
    return join(this.lab.runDir(), host, "run", "agent.sock")
  }

  /** The config file of one host, as an operator would write it. */
  config(host: string): Record<string, unknown> {
    const dir = this.configDir(host)
    const witnesses = new Set(this.options.witnesses ?? [])
    return {
      cluster: {
        name: `lab-${this.lab.id}`,
        members: this.lab.hosts.map((h) => ({
          name: h.name,
          address: h.address,
          mysql_port: MYSQL_PORT,
          agent_port: AGENT_PORT,
          priority: 100 - h.index,
          ...(witnesses.has(h.name) ? { kind: "witness" } : {}),
        })),
      },
      node: host,
      mysql: {
        monitor: { user: LAB_USERS.agent.user, password_file: join(dir, "monitor.password") },
        replication: {
          user: LAB_USERS.replication.user,
          password_file: join(dir, "replication.password"),
        },
        // With tls: verified by CA and address, no RSA key (the lab's mysqlds have none).
        ...(this.lab.state.tls
          ? {
              tls: {
                ca: this.lab.mysqlTls().ca,
                verify_identity: true,
                source_ssl_ca: this.lab.mysqlTls().hostCa(host),
              },
              get_source_public_key: false,
            }
          : { get_source_public_key: true }),
        connect_timeout: "1s",
        query_timeout: "1s",
      },
      timings: { ...this.options.timings },
      semi_sync: { mode: this.options.semiSync ?? "strict" },
      vip: { address: `${VIP}/${PREFIX_LEN}`, interface: "eth0" },
      service: {
        restart_command: this.lab.restartCommand(host),
        kill_command: this.lab.killCommand(host),
      },
      mesh: {
        listen: `0.0.0.0:${AGENT_PORT}`,
        ca: this.certs.ca,
        cert: this.certs.members[host]?.cert,
        key: this.certs.members[host]?.key,
      },
      http: { listen: `0.0.0.0:${HTTP_PORT}` },
      control: { socket: this.socketPath(host) },
      state_dir: join(this.lab.runDir(), host, "state"),
      log: { level: "info" },
      ...this.options.extra,
    }
  }

  private async writeFiles(host: string): Promise<void> {
    const dir = this.configDir(host)
    await mkdir(dir, { recursive: true })
    await mkdir(join(this.lab.runDir(), host, "run"), { recursive: true })
    await mkdir(join(this.lab.runDir(), host, "state"), { recursive: true, mode: 0o750 })
    await writeFile(join(dir, "monitor.password"), `${LAB_USERS.agent.password}\n`, { mode: 0o600 })
    await writeFile(join(dir, "replication.password"), `${LAB_USERS.replication.password}\n`, {
      mode: 0o600,
    })
    await this.writeConfig(host)
    await chmod(dir, 0o750)
  }

  /** (Re)writes a host's config file (read by its agent at start and reload). */
  async writeConfig(host: string): Promise<void> {
    const config = this.options.configFor?.(host, this.config(host)) ?? this.config(host)
    await writeFile(this.configPath(host), stringify(config), { mode: 0o640 })
  }

  private command(host: string): ReadonlyArray<string> {
    return this.options.command?.(host) ?? agentCommand()
  }

  async start(host: string): Promise<void> {
    await this.lab.spawn(
      host,
      "agent",
      [...this.command(host), "run", "--config", this.configPath(host)],
      {
        ...process.env,
        ...(process.env.MHA_AGENT_BIN ? unitEnvironment() : {}),
        ...this.options.env,
        ...this.options.hostEnv?.[host],
      },
    )
  }

  async startAll(): Promise<void> {
    for (const h of this.lab.hosts) await this.start(h.name)
  }

  async stop(host: string): Promise<void> {
    await this.lab.stopProcess(host, "agent", 15_000)
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.lab.hosts.map((h) => this.stop(h.name)))
  }

  logPath(host: string): string {
    return this.lab.processLog(host, "agent")
  }

  /** Runs the CLI against one host's agent (inside the host's namespace). */
  cli(host: string, args: ReadonlyArray<string>) {
    return this.lab.exec(host, [...this.command(host), ...args, "--socket", this.socketPath(host)])
  }
}
