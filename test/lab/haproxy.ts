// Debian's HAProxy in the lab's client namespace, as an application's load
// balancer: a write frontend that checks every agent's /primary and a read
// frontend that checks /replica (the layout of packaging/haproxy.cfg.example,
// its write checks verbatim, faster read checks), plus a stats page.
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { run } from "./exec.ts"
import type { Lab } from "./lab.ts"
import { CLIENT_ADDRESS, HTTP_PORT, MYSQL_PORT } from "./network.ts"

export const HAPROXY_WRITE_PORT = 3307
export const HAPROXY_READ_PORT = 3308
export const HAPROXY_STATS_PORT = 8404

const EXAMPLE = join(import.meta.dirname, "../../packaging/haproxy.cfg.example")

/**
 * The write backend's checks in packaging/haproxy.cfg.example (`option httpchk`,
 * `http-check`, `default-server`), verbatim but for the agent's port, and its
 * `timeout check`: the lab and the benchmark check the primary exactly as the
 * shipped example does.
 */
export const shippedPrimaryChecks = (): {
  readonly lines: string[]
  readonly timeoutCheck: string
} => {
  const text = readFileSync(EXAMPLE, "utf8")
  const backend = text.slice(text.indexOf("\nbackend mysql_primary\n"))
  const block = backend.slice(0, backend.indexOf("\n    server "))
  const lines = block
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^(option httpchk|http-check|default-server) /.test(l))
    .map((l) => l.replace(/\bport \d+/, `port ${HTTP_PORT}`))
  const timeoutCheck = /^\s*timeout check (\S+)$/m.exec(text)?.[1]
  if (!lines.some((l) => l.startsWith("default-server ")) || timeoutCheck === undefined)
    throw new Error(
      `${EXAMPLE}: no default-server line in backend mysql_primary, or no timeout check`,
    )
  return { lines, timeoutCheck }
}

export const haproxyConfig = (
  servers: ReadonlyArray<{ name: string; address: string }>,
): string => {
  const list = servers
    .map((s) => `    server ${s.name} ${s.address}:${MYSQL_PORT} check`)
    .join("\n")
  const checks = shippedPrimaryChecks()
  return `
global
    maxconn 1024

defaults
    mode tcp
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    timeout check ${checks.timeoutCheck}

# Writes: the primary only.
frontend mysql_write
    bind ${CLIENT_ADDRESS}:${HAPROXY_WRITE_PORT}
    default_backend mysql_primary

backend mysql_primary
${checks.lines.map((l) => `    ${l}`).join("\n")}
${list}

# Reads: replicas within 10 s of lag, the primary when none is.
frontend mysql_read
    bind ${CLIENT_ADDRESS}:${HAPROXY_READ_PORT}
    default_backend mysql_replicas

backend mysql_replicas
    balance roundrobin
    option httpchk GET /replica?max_lag=10
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 port ${HTTP_PORT}
${list}

listen stats
    mode http
    bind ${CLIENT_ADDRESS}:${HAPROXY_STATS_PORT}
    stats enable
    stats uri /stats
`
}

/** Writes the config, checks it with `haproxy -c`, and starts HAProxy in the client namespace. */
export const startHaproxy = async (lab: Lab): Promise<void> => {
  const cfg = join(lab.runDir(), "haproxy.cfg")
  writeFileSync(cfg, haproxyConfig(lab.hosts.map((h) => ({ name: h.name, address: h.address }))))
  await run("/usr/sbin/haproxy", ["-c", "-q", "-f", cfg])
  await lab.spawn("client", "haproxy", ["/usr/sbin/haproxy", "-f", cfg, "-db"])
}

/** Server name -> UP/DOWN/... as HAProxy's CSV stats say, for one backend. */
export const backendStates = async (
  lab: Lab,
  backend = "mysql_primary",
): Promise<Record<string, string>> => {
  const { stdout } = await lab.exec("client", [
    "curl",
    "-sS",
    "-m",
    "2",
    `http://${CLIENT_ADDRESS}:${HAPROXY_STATS_PORT}/stats;csv`,
  ])
  const states: Record<string, string> = {}
  for (const line of stdout.split("\n")) {
    const [px, sv, ...rest] = line.split(",")
    if (px !== backend || sv === undefined || sv === "BACKEND" || sv === "FRONTEND") continue
    states[sv] = rest[15] ?? "?" // the 18th column is `status`
  }
  return states
}

/** Starts a writer in the client namespace that writes through HAProxy's write frontend into `out`. */
export const startHaproxyWriter = (lab: Lab, out: string): Promise<number> =>
  lab.spawn("client", "writer-haproxy", [
    process.execPath,
    join(import.meta.dirname, "client/writer.ts"),
    "--host",
    CLIENT_ADDRESS,
    "--port",
    String(HAPROXY_WRITE_PORT),
    "--out",
    out,
  ])
