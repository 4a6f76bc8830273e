// The lab's network: one namespace per host, all on a bridge that lives in a
// namespace of its own, on a subnet that exists only inside those namespaces.
// Faults are nftables rules in the hosts' namespaces (tc netem is not
// available on these machines).
import { run, tryRun } from "./exec.ts"

export const SUBNET_PREFIX = "10.88.0"
export const PREFIX_LEN = 24
export const MYSQL_PORT = 3306
/** Ports the agents will use; cutting "agent traffic only" drops these. */
export const AGENT_PORT = 7400
export const HTTP_PORT = 8080
export const VIP = `${SUBNET_PREFIX}.100`
export const CLIENT_ADDRESS = `${SUBNET_PREFIX}.200`

/** Every name the lab creates starts with this and carries the lab id. */
export const NS_PREFIX = "mhl-"
export const bridgeNs = (labId: string) => `${NS_PREFIX}${labId}-br`
export const hostNs = (labId: string, host: string) => `${NS_PREFIX}${labId}-${host}`
export const hostAddress = (index: number) => `${SUBNET_PREFIX}.${10 + index}`

const ip = (...args: string[]) => run("ip", args)
const nft = (ns: string, script: string) =>
  run("ip", ["netns", "exec", ns, "nft", "-f", "-"], { input: script })

export const listNamespaces = async (): Promise<string[]> => {
  const { stdout } = await run("ip", ["netns", "list"])
  return stdout
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n !== "")
}

export const createBridge = async (labId: string): Promise<void> => {
  const br = bridgeNs(labId)
  await ip("netns", "add", br)
  await ip("-n", br, "link", "set", "lo", "up")
  await ip("-n", br, "link", "add", "br0", "type", "bridge")
  await ip("-n", br, "link", "set", "br0", "up")
}

/**
 * Adds a namespace with eth0 on the bridge. The veth pair is created inside
 * the bridge namespace, so its names never meet another lab's.
 */
export const attachNamespace = async (
  labId: string,
  ns: string,
  port: string,
  address: string,
): Promise<void> => {
  const br = bridgeNs(labId)
  await ip("netns", "add", ns)
  await ip("-n", ns, "link", "set", "lo", "up")
  await ip("-n", br, "link", "add", port, "type", "veth", "peer", "name", "eth0")
  await ip("-n", br, "link", "set", "eth0", "netns", ns)
  await ip("-n", br, "link", "set", port, "master", "br0")
  await ip("-n", br, "link", "set", port, "up")
  await ip("-n", ns, "addr", "add", `${address}/${PREFIX_LEN}`, "dev", "eth0")
  await ip("-n", ns, "link", "set", "eth0", "up")
  // An empty fault table: faults add rules, heal flushes them.
  await nft(
    ns,
    `table inet mhalab {
  chain input { type filter hook input priority 0; policy accept; }
  chain output { type filter hook output priority 0; policy accept; }
}
`,
  )
}

/** Kills every process in a namespace (also orphans of a crashed test), then deletes it. */
export const destroyNamespace = async (ns: string): Promise<void> => {
  for (let round = 0; round < 50; round++) {
    const pids = await tryRun("ip", ["netns", "pids", ns])
    const list = pids.ok ? pids.stdout.split("\n").filter((p) => p.trim() !== "") : []
    if (list.length === 0) break
    await tryRun("kill", ["-KILL", ...list])
    await new Promise((r) => setTimeout(r, 100))
  }
  await tryRun("ip", ["netns", "del", ns])
}

// ---- faults as nftables rules ------------------------------------------------

const addRules = (ns: string, rules: ReadonlyArray<string>) =>
  nft(ns, `${rules.map((r) => `add rule inet mhalab ${r}`).join("\n")}\n`)

/** Drops everything in and out of eth0: the host is cut off from all others. */
export const isolate = (ns: string) =>
  addRules(ns, ['input iifname "eth0" drop', 'output oifname "eth0" drop'])

/** Drops packets from this namespace to one address; the other direction still flows. */
export const cutOutgoing = (ns: string, to: string) => addRules(ns, [`output ip daddr ${to} drop`])

/** Drops packets arriving from one address. */
export const cutIncoming = (ns: string, from: string) =>
  addRules(ns, [`input ip saddr ${from} drop`])

/**
 * Drops TCP and UDP to or from the given ports of a peer, both ways, seen
 * from this namespace (the agent port carries the mesh's TLS connections and
 * its heartbeat datagrams).
 */
export const cutPorts = (ns: string, peer: string, ports: ReadonlyArray<number>) => {
  const set = `{ ${ports.join(", ")} }`
  return addRules(
    ns,
    ["tcp", "udp"].flatMap((proto) => [
      `output ip daddr ${peer} ${proto} dport ${set} drop`,
      `output ip daddr ${peer} ${proto} sport ${set} drop`,
      `input ip saddr ${peer} ${proto} dport ${set} drop`,
      `input ip saddr ${peer} ${proto} sport ${set} drop`,
    ]),
  )
}

/** Drops this share of packets arriving on eth0 at random. */
export const randomLoss = (ns: string, percent: number) =>
  addRules(ns, [`input iifname "eth0" numgen random mod 100 < ${Math.round(percent)} drop`])

export const heal = (ns: string) =>
  nft(ns, "flush chain inet mhalab input\nflush chain inet mhalab output\n")

export const listRules = async (ns: string): Promise<string> =>
  (await run("ip", ["netns", "exec", ns, "nft", "list", "table", "inet", "mhalab"])).stdout
