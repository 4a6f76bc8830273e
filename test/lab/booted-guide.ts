// packaging/README.package, the operator's guide "mha-agent on three hosts",
// followed command by command on the booted hosts (issue 14 item 5), so the
// guide cannot rot: every fenced block of the guide is run as written, in
// the guide's order, and the test fails if a command fails, if a step it
// knows is missing, or if the guide has a block it does not know.
//
// A block opens with "```LANG on=WHERE step=NAME [file=PATH]". WHERE:
// `workstation` (the operator's machine: this machine, in a scratch
// directory, with the package's binary on PATH), `every-host` (each booted
// host, at once, as configuration management would), `db1` (one named
// host), `any-host` (the first host). A `file=` block is the content of that
// file on every host, with the lab's own values (see labConfig). The
// variables the guide names (NODE, MONITOR_PASSWORD, ...) are set; `sh -u`
// fails on any other.
//
// The one thing the lab cannot run as written is `scp`: the booted hosts have
// no sshd. On the workstation `scp` is a stand-in that copies into the
// host's root as scp would (the source's mode, owned by root).
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { chmod, copyFile, mkdir, writeFile } from "node:fs/promises"
import { basename, join } from "node:path"
import { parse, stringify } from "yaml"
import { repoRoot } from "../pkg/helpers.ts"
import type { AgentTimings } from "./agents.ts"
import type { BootedCluster } from "./booted-cluster.ts"
import { run, sleep } from "./exec.ts"
import { LAB_USERS, type Lab } from "./lab.ts"
import * as net from "./network.ts"

export const GUIDE_FILE = join(repoRoot, "packaging/README.package")

/** The steps of the guide, in its order: a step missing from the guide, or one not here, fails the test. */
export const GUIDE_STEPS = [
  "copy-package",
  "install",
  "config",
  "files",
  "accounts",
  "check-mysql",
  "certs",
  "cert-files",
  "polkit",
  "start",
  "status",
] as const
export type GuideStep = (typeof GUIDE_STEPS)[number]

const PLACES = ["workstation", "every-host", "any-host"] as const

export interface GuideBlock {
  readonly step: string
  /** workstation, every-host, any-host or a member's name. */
  readonly on: string
  readonly lang: string
  readonly file?: string
  readonly body: string
  /** 1-based line of the opening fence, for error messages. */
  readonly line: number
}

/** The guide's fenced blocks; every fenced block must say where it runs and which step it is. */
export const parseGuide = (text: string, file = GUIDE_FILE): GuideBlock[] => {
  const lines = text.split("\n")
  const blocks: GuideBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)(.*)$/.exec(lines[i]!)
    if (open === null) continue
    const where = `${file}:${i + 1}`
    const attrs = new Map<string, string>()
    for (const word of open[3]!
      .trim()
      .split(/\s+/)
      .filter((w) => w !== "")) {
      const kv = /^([a-z]+)=(\S+)$/.exec(word)
      if (kv === null)
        throw new Error(`${where}: '${word}' in a block's opening line is not KEY=VALUE`)
      attrs.set(kv[1]!, kv[2]!)
    }
    const on = attrs.get("on")
    const step = attrs.get("step")
    if (on === undefined || step === undefined)
      throw new Error(
        `${where}: a fenced block without on=WHERE step=NAME (every block of the guide is run by the booted-hosts test)`,
      )
    const indent = open[1]!.length
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++)
      body.push(lines[j]!.slice(indent))
    if (j === lines.length) throw new Error(`${where}: the block is not closed`)
    const target = attrs.get("file")
    blocks.push({
      step,
      on,
      lang: open[2]!,
      ...(target === undefined ? {} : { file: target }),
      body: `${body.join("\n")}\n`,
      line: i + 1,
    })
    i = j
  }
  const steps = blocks.map((b) => b.step)
  const missing = GUIDE_STEPS.filter((s) => !steps.includes(s))
  const unknown = steps.filter((s) => !(GUIDE_STEPS as ReadonlyArray<string>).includes(s))
  const twice = steps.filter((s, i) => steps.indexOf(s) !== i)
  if (missing.length > 0 || unknown.length > 0 || twice.length > 0)
    throw new Error(
      `${file}: the guide's steps are not those the booted-hosts test follows (${GUIDE_STEPS.join(", ")}):` +
        (missing.length > 0 ? ` missing ${missing.join(", ")};` : "") +
        (unknown.length > 0
          ? ` unknown ${unknown.join(", ")} (teach test/lab/booted-guide.ts);`
          : "") +
        (twice.length > 0 ? ` given twice ${twice.join(", ")};` : ""),
    )
  return blocks
}

export const readGuide = (): GuideBlock[] => parseGuide(readFileSync(GUIDE_FILE, "utf8"))

/** The guide's config.yaml, as written in it. */
export const guideConfig = (blocks: ReadonlyArray<GuideBlock> = readGuide()) => {
  const b = blocks.find((x) => x.step === "config")
  if (b?.file === undefined || b.lang !== "yaml")
    throw new Error(
      `${GUIDE_FILE}:${b?.line ?? "?"}: the config step must be a yaml block with file=`,
    )
  return parse(b.body) as GuideConfigFile
}

interface GuideConfigFile {
  cluster: { name: string; members: Array<Record<string, unknown> & { name: string }> }
  node: string
  mesh: { cert: string; key: string } & Record<string, unknown>
  vip?: { address: string } & Record<string, unknown>
  timings?: Record<string, unknown>
  http?: Record<string, unknown>
  [key: string]: unknown
}

/**
 * The guide's config made one lab host's: the lab's values replace only
 * what is the lab's own (addresses and ports, the VIP, which member this
 * host is and its certificate's name, the test's timings); everything else
 * (accounts, password files, semi-sync, the mesh's files) is the guide's.
 */
export const labConfig = (
  guide: GuideConfigFile,
  lab: Lab,
  host: string,
  timings: AgentTimings,
): Record<string, unknown> => {
  const names = guide.cluster.members.map((m) => m.name)
  const hosts = lab.hosts.map((h) => h.name)
  if (names.join(",") !== hosts.join(","))
    throw new Error(
      `the guide's members (${names.join(", ")}) are not the booted lab's hosts (${hosts.join(", ")})`,
    )
  const own = (path: string) => path.replaceAll(guide.node, host)
  return {
    ...guide,
    cluster: {
      ...guide.cluster,
      members: guide.cluster.members.map((m) => {
        const h = lab.host(m.name)
        return {
          ...m,
          address: h.address,
          mysql_port: net.MYSQL_PORT,
          agent_port: net.AGENT_PORT,
          // db1 preferred, as the plain lab's agents have it.
          priority: 100 - h.index,
        }
      }),
    },
    node: host,
    mesh: { ...guide.mesh, cert: own(guide.mesh.cert), key: own(guide.mesh.key) },
    vip: { ...guide.vip, address: `${net.VIP}/${net.PREFIX_LEN}` },
    timings: { ...guide.timings, ...timings },
    http: { ...guide.http, listen: `0.0.0.0:${net.HTTP_PORT}` },
  }
}

/** The values of the guide's variables on one host. */
const variables = (host: string | undefined): Record<string, string> => ({
  ...(host === undefined ? {} : { NODE: host }),
  MONITOR_PASSWORD: "mha-lab-monitor",
  REPLICATION_PASSWORD: LAB_USERS.replication.password,
  // The lab's [mysqld] settings (booted-cluster.ts prepareMysql).
  MY_CNF: "/etc/mysql/mysql.conf.d/zz-mha-lab.cnf",
})

/** scp to a booted host: the host's root is on this machine (HOST:PATH, relative to /root). */
const SCP_STANDIN = `#!/bin/bash
# The booted-hosts test's stand-in for scp (the hosts run no sshd): copies
# FILE... to HOST:DIR in HOST's root on this machine, as scp would (the
# source's mode, owned by the user who copies).
set -eu
dest=\${!#}
host=\${dest%%:*}
path=\${dest#*:}
var=MHA_LAB_ROOT_\${host}
root=\${!var:?scp stand-in: no booted host $host}
case $path in /*) ;; *) path=/root/$path ;; esac
cp -- "\${@:1:$#-1}" "$root$path"
`

export interface GuideTimes {
  /** Epoch ms when the guide's install step began, and when its start step ended. */
  readonly installAt: number
  readonly startedAt: number
  /** When `mha-agent status` first showed what the guide says it shows. */
  readonly activeAt: number
  /** Each step's duration (ms), in order. */
  readonly steps: ReadonlyArray<readonly [string, number]>
}

const execOut = (
  file: string,
  args: ReadonlyArray<string>,
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(
      file,
      [...args],
      { ...options, timeout: options.timeoutMs, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0
        resolve({ code, stdout, stderr })
      },
    )
  })

/**
 * Follows the guide on the booted hosts: the package under test `deb` is
 * what the operator downloaded into the workstation's directory.
 */
export const followGuide = async (
  c: BootedCluster,
  options: { deb: string; workstation: string; log: (line: string) => void },
): Promise<GuideTimes> => {
  const blocks = readGuide()
  const config = guideConfig(blocks)
  const ws = options.workstation
  const bin = join(ws, ".bin")
  await mkdir(bin, { recursive: true })
  await copyFile(options.deb, join(ws, basename(options.deb)))
  // The workstation's mha-agent: /usr/bin/mha-agent of the package under test.
  await run("dpkg-deb", ["-x", options.deb, join(ws, ".pkg")], { timeoutMs: 120_000 })
  await run("ln", ["-s", join(ws, ".pkg/usr/bin/mha-agent"), join(bin, "mha-agent")])
  await writeFile(join(bin, "scp"), SCP_STANDIN)
  await chmod(join(bin, "scp"), 0o755)
  const wsEnv: NodeJS.ProcessEnv = {
    PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: ws,
    LANG: "C.UTF-8",
    ...variables(undefined),
    ...Object.fromEntries(
      c.lab.hosts.map((h) => [`MHA_LAB_ROOT_${h.name}`, c.pathIn(h.name, "/")]),
    ),
  }
  const failed = (
    b: GuideBlock,
    where: string,
    r: { code: number; stdout: string; stderr: string },
  ) =>
    new Error(
      `guide step '${b.step}' (${GUIDE_FILE}:${b.line}) failed on ${where} (exit ${r.code}):\n${r.stderr.trim()}\n${r.stdout.trim()}`,
    )
  const inHost = async (b: GuideBlock, host: string) => {
    if (b.file !== undefined) {
      await writeFile(c.pathIn(host, b.file), stringify(labConfig(config, c.lab, host, c.timings)))
      return ""
    }
    const env = Object.entries({ HOME: "/root", ...variables(host) }).map(([k, v]) => `${k}=${v}`)
    const r = await c.tryIn(host, ["env", ...env, "sh", "-euxc", `cd /root\n${b.body}`], 300_000)
    if (r.code !== 0) throw failed(b, host, r)
    return r.stdout
  }
  const hosts = c.lab.hosts.map((h) => h.name)
  let installAt = 0
  let startedAt = 0
  let activeAt = 0
  const steps: Array<readonly [string, number]> = []
  for (const b of blocks) {
    const t0 = Date.now()
    if (b.step === "install") installAt = t0
    if (b.file !== undefined && b.on !== "every-host")
      throw new Error(`${GUIDE_FILE}:${b.line}: a file= block is written on every host`)
    if (b.on === "workstation") {
      const r = await execOut("bash", ["-euxc", b.body], {
        cwd: ws,
        env: wsEnv,
        timeoutMs: 120_000,
      })
      if (r.code !== 0) throw failed(b, "the workstation", r)
    } else if (b.on === "every-host") {
      await Promise.all(hosts.map((h) => inHost(b, h)))
    } else if (b.step === "status") {
      // What step 8 of the guide says the operator sees, a few seconds after the last start.
      const expected = new RegExp(
        `^${config.cluster.name}: OK, primary db1 \\(ACTIVE\\), term 1, ${hosts.length}/${hosts.length} nodes healthy`,
        "m",
      )
      const host = b.on === "any-host" ? hosts[0]! : b.on
      let out = ""
      for (const deadline = Date.now() + 60_000; ; ) {
        try {
          out = await inHost(b, host)
          if (expected.test(out)) break
        } catch (e) {
          out = e instanceof Error ? e.message : String(e)
        }
        if (Date.now() > deadline)
          throw new Error(
            `guide step 'status': ${host}'s mha-agent status never matched ${expected} within 60 s; last:\n${out}`,
          )
        await sleep(500)
      }
      activeAt = Date.now()
      options.log(`guide: ${out.split("\n")[0]}`)
    } else {
      if (!(PLACES as ReadonlyArray<string>).includes(b.on) && !hosts.includes(b.on))
        throw new Error(`${GUIDE_FILE}:${b.line}: on=${b.on} is no place and no host`)
      await inHost(b, b.on === "any-host" ? hosts[0]! : b.on)
      // Replication carries the accounts to the replicas: the next step asks them.
      if (b.step === "accounts")
        await c.lab.waitReplicasCaughtUp(b.on === "any-host" ? hosts[0]! : b.on)
    }
    if (b.step === "start") startedAt = Date.now()
    steps.push([b.step, Date.now() - t0])
  }
  options.log(
    `guide followed: ${steps.map(([s, ms]) => `${s} ${(ms / 1000).toFixed(1)} s`).join(", ")}`,
  )
  return { installAt, startedAt, activeAt, steps }
}
