// The sandbox: a 3-host cluster of real MySQL 9.7 with an agent per host, the
// VIP, HAProxy (checking every agent's /primary and /replica) and two small
// writers (one through the VIP, one through HAProxy), left running so a
// newcomer can pull the plug and watch.
//   npm run sandbox                     bring it up (or show it, if it is up)
//   npm run sandbox -- kill-primary     kill -9 the primary's mysqld and keep it down
//   npm run sandbox -- isolate db1      cut a host off; `-- heal` undoes every network fault
//   npm run sandbox -- status           the agents' view, HAProxy's view, the writers' counts
//   npm run sandbox -- mha db2 status   any mha-agent command, run inside a host
//   npm run sandbox -- down             remove everything
import { join } from "node:path"
import { LabAgents } from "./agents.ts"
import { LabCluster } from "./cluster.ts"
import { parseFault } from "./faults.ts"
import {
  backendStates,
  HAPROXY_READ_PORT,
  HAPROXY_WRITE_PORT,
  startHaproxy,
  startHaproxyWriter,
} from "./haproxy.ts"
import { readWriterLog, writeDowntimeMs } from "./invariants.ts"
import { formatTopology, Lab } from "./lab.ts"
import { CLIENT_ADDRESS, VIP } from "./network.ts"

const ID = "sandbox"

/** One line per writer: acknowledged writes, failed attempts, the last one's age, the longest gap. */
const writersView = (lab: Lab): string =>
  [
    ["through the VIP", "writer.ndjson"],
    ["through HAProxy", "writer-haproxy.ndjson"],
  ]
    .map(([via, file]) => {
      const log = readWriterLog(join(lab.runDir(), file!))
      const last = log.acked.at(-1)
      const age =
        last === undefined ? "never" : `${((Date.now() - last.t) / 1000).toFixed(1)} s ago`
      const gap = (writeDowntimeMs(log, 0) / 1000).toFixed(1)
      return `writer ${via}: ${log.acked.length} acknowledged, ${log.errors} failed attempts, last ack ${age}, longest gap ${gap} s`
    })
    .join("\n")

const haproxyView = async (lab: Lab): Promise<string> => {
  const fmt = (s: Record<string, string>) =>
    Object.entries(s)
      .map(([n, st]) => `${n} ${st}`)
      .join(", ")
  try {
    return `HAProxy writes (:${HAPROXY_WRITE_PORT}, /primary): ${fmt(await backendStates(lab))}\nHAProxy reads  (:${HAPROXY_READ_PORT}, /replica): ${fmt(await backendStates(lab, "mysql_replicas"))}`
  } catch (e) {
    return `HAProxy: no answer (${e instanceof Error ? e.message : String(e)})`
  }
}

const overview = async (lab: Lab, agents: LabAgents): Promise<string> =>
  `${formatTopology(await lab.topology())}\n\n${await statusOf(agents)}\n\n${await haproxyView(lab)}\n${writersView(lab)}`

const primaryOf = async (lab: Lab): Promise<string | undefined> =>
  (await lab.topology()).find((v) => v.up && v.superReadOnly === false)?.host

/** `mha-agent status` from the primary's agent (the freshest view), else from any agent that answers. */
const statusOf = async (agents: LabAgents): Promise<string> => {
  const primary = await primaryOf(agents.lab)
  const hosts = agents.lab.hosts.map((h) => h.name)
  for (const h of primary === undefined
    ? hosts
    : [primary, ...hosts.filter((n) => n !== primary)]) {
    const r = await agents.cli(h, ["status"]).catch(() => undefined)
    if (r?.stdout) return r.stdout.trimEnd()
  }
  return "no agent answered"
}

const main = async (args: string[]) => {
  const [command, ...rest] = args
  if (command === "down") {
    await Lab.down(ID)
    console.log("sandbox removed")
    return
  }
  const running = (await Lab.list()).includes(ID)
  if (command === undefined || command === "up") {
    if (!running) {
      console.log("starting a 3-host MySQL 9.7 cluster with an agent per host (about a minute)...")
      const c = await LabCluster.up({ id: ID })
      await startHaproxy(c.lab)
      await startHaproxyWriter(c.lab, join(c.lab.runDir(), "writer-haproxy.ndjson"))
      await new Promise((r) => setTimeout(r, 3000)) // HAProxy's first checks
      console.log(`\n${await overview(c.lab, c.agents)}`)
    } else {
      const lab = await Lab.open(ID)
      console.log(await overview(lab, await LabAgents.open(lab)))
    }
    console.log(`
The VIP is ${VIP}; HAProxy listens on ${CLIENT_ADDRESS}:${HAPROXY_WRITE_PORT} (writes) and :${HAPROXY_READ_PORT} (reads).
Two writers in the client namespace insert a row every few milliseconds, one
through each; their logs are /run/mha-lab/${ID}/writer.ndjson and writer-haproxy.ndjson.
Pull the plug:
  npm run sandbox -- kill-primary        the primary's mysqld dies and cannot restart: watch the failover
  npm run sandbox -- isolate db2         cut a host off the network;  npm run sandbox -- heal
  npm run sandbox -- kill-mysqld db1     kill -9 a mysqld (it restarts: no failover)
  npm run sandbox -- status              the agents' view, HAProxy's view, the writers' counts
  npm run sandbox -- mha db2 switchover --to db3   any mha-agent command, inside a host
  npm run sandbox -- down                remove everything`)
    return
  }
  if (!running) throw new Error("the sandbox is not running: npm run sandbox")
  const lab = await Lab.open(ID)
  const agents = await LabAgents.open(lab)
  switch (command) {
    case "status":
      console.log(await overview(lab, agents))
      return
    case "kill-primary": {
      const primary = await primaryOf(lab)
      if (!primary) throw new Error("no writable primary right now")
      await lab.inject({ _tag: "StopMysqld", host: primary })
      console.log(
        `${primary}'s mysqld is down and cannot restart; 'npm run sandbox -- status' to watch, 'npm run sandbox -- start-mysqld ${primary}' to let it back`,
      )
      return
    }
    case "mha": {
      const [host, ...cli] = rest
      if (!host) throw new Error("usage: npm run sandbox -- mha HOST COMMAND...")
      const r = await agents.cli(host, cli)
      process.stdout.write(r.stdout)
      process.stderr.write(r.stderr)
      return
    }
    default:
      await lab.inject(parseFault(args))
      console.log(`${args.join(" ")}: done`)
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(`sandbox: ${e instanceof Error ? e.message : String(e)}`)
  process.exit(1)
})
