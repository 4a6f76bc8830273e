// The sandbox: a 3-host cluster of real MySQL 9.7 with an agent per host, the
// VIP and a small writer, left running so a newcomer can pull the plug.
//   npm run sandbox                     bring it up (or show it, if it is up)
//   npm run sandbox -- kill-primary     kill -9 the primary's mysqld and keep it down
//   npm run sandbox -- isolate db1      cut a host off; `-- heal` undoes every network fault
//   npm run sandbox -- status           the agents' view (mha-agent status on every host)
//   npm run sandbox -- mha db2 status   any mha-agent command, run inside a host
//   npm run sandbox -- down             remove everything
import { LabAgents } from "./agents.ts"
import { LabCluster } from "./cluster.ts"
import { parseFault } from "./faults.ts"
import { formatTopology, Lab } from "./lab.ts"

const ID = "sandbox"

const statusOf = async (agents: LabAgents): Promise<string> => {
  for (const h of agents.lab.hosts) {
    const r = await agents.cli(h.name, ["status"]).catch(() => undefined)
    if (r?.stdout) return r.stdout.trimEnd()
  }
  return "no agent answered"
}

const primaryOf = async (lab: Lab): Promise<string | undefined> =>
  (await lab.topology()).find((v) => v.up && v.superReadOnly === false)?.host

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
      console.log(`\n${formatTopology(await c.lab.topology())}\n\n${await statusOf(c.agents)}`)
    } else {
      const lab = await Lab.open(ID)
      console.log(
        `${formatTopology(await lab.topology())}\n\n${await statusOf(await LabAgents.open(lab))}`,
      )
    }
    console.log(`
VIP 10.88.0.100; a writer in the client namespace writes through it (log: /run/mha-lab/${ID}/writer.ndjson).
Pull the plug:
  npm run sandbox -- kill-primary        the primary's mysqld dies and cannot restart: watch the failover
  npm run sandbox -- isolate db2         cut a host off the network;  npm run sandbox -- heal
  npm run sandbox -- status              the agents' view
  npm run sandbox -- mha db2 switchover --to db3   any mha-agent command, inside a host
  npm run sandbox -- down                remove everything`)
    return
  }
  if (!running) throw new Error("the sandbox is not running: npm run sandbox")
  const lab = await Lab.open(ID)
  const agents = await LabAgents.open(lab)
  switch (command) {
    case "status":
      console.log(`${formatTopology(await lab.topology())}\n\n${await statusOf(agents)}`)
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
