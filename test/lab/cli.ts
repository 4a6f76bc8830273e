// The lab's command line: `npm run lab -- <command>`.

import { BootedCluster } from "./booted-cluster.ts"
import { ensureBootedRootfs } from "./booted-rootfs.ts"
import { FAULT_USAGE, parseFault } from "./faults.ts"
import { formatTopology, Lab } from "./lab.ts"
import { ensureRootfs } from "./rootfs.ts"

const USAGE = `usage: npm run lab -- <command> [--id ID]
  up [--hosts N] [--no-replication] [--semi-sync]   create a lab (default: 3 hosts, db1 the source)
  up --booted [--hosts N]                          booted hosts (systemd, mysql.service, the .deb's agent
                                                   under systemctl), semi-sync from db1, a writer (random id)
  down [--all] [--prefix P]                        remove a lab (or every lab, or those whose id starts with P)
  list                                             labs with anything left on this machine
  topology                                         each host's role, read-only flags, GTIDs and replication
  rootfs                                           build the MySQL 9.7 root filesystem if missing
  booted-rootfs                                    build the booted hosts' root (systemd, mysql-server) if missing
  fault <fault...>                                 inject a fault (see below)
  mysql H "SQL"                                    run SQL as root on host H
  exec H|client CMD...                             run a command inside a host's namespace
The lab id defaults to $MHA_LAB_ID or 'dev'.
${FAULT_USAGE}`

const takeFlag = (args: string[], flag: string): boolean => {
  const i = args.indexOf(flag)
  if (i < 0) return false
  args.splice(i, 1)
  return true
}
const takeOption = (args: string[], option: string): string | undefined => {
  const i = args.indexOf(option)
  if (i < 0) return undefined
  const value = args[i + 1]
  if (value === undefined || value.startsWith("--")) throw new Error(`${option} needs a value`)
  args.splice(i, 2)
  return value
}

const main = async (argv: string[]): Promise<void> => {
  const args = [...argv]
  const id = takeOption(args, "--id") ?? process.env.MHA_LAB_ID ?? "dev"
  const [command, ...rest] = args
  const log = (line: string) => console.error(line)
  switch (command) {
    case "up": {
      const hosts = Number(takeOption(rest, "--hosts") ?? "3")
      if (takeFlag(rest, "--booted")) {
        const c = await BootedCluster.up({ hosts, log })
        console.log(
          `booted lab ${c.lab.id} is up (apt-get install to an ACTIVE primary: ${(c.times.installToActiveMs / 1000).toFixed(1)} s)`,
        )
        for (const h of c.lab.hosts)
          console.log(
            `  ${h.name}  ${h.address}  nsenter -t ${c.leader(h.name)} -a  (systemd's pid)`,
          )
        console.log(formatTopology(await c.lab.topology()))
        return
      }
      const replication = !takeFlag(rest, "--no-replication")
      const semiSync = takeFlag(rest, "--semi-sync")
      const started = Date.now()
      const lab = await Lab.up({ id, hosts, replication, semiSync, log })
      console.log(`lab ${lab.id} is up (${((Date.now() - started) / 1000).toFixed(1)} s):`)
      for (const h of lab.hosts) console.log(`  ${h.name}  ${h.address}  namespace ${h.ns}`)
      console.log(`  client  ${lab.state.client.address}  namespace ${lab.state.client.ns}`)
      console.log(formatTopology(await lab.topology()))
      return
    }
    case "down": {
      const prefix = takeOption(rest, "--prefix")
      const ids = takeFlag(rest, "--all")
        ? await Lab.list()
        : prefix
          ? await Lab.list(prefix)
          : [id]
      for (const x of ids) {
        await Lab.down(x)
        console.log(`lab ${x} removed`)
      }
      return
    }
    case "list":
      for (const x of await Lab.list()) console.log(x)
      return
    case "topology":
      console.log(formatTopology(await (await Lab.open(id)).topology()))
      return
    case "rootfs":
      console.log(await ensureRootfs(log))
      return
    case "booted-rootfs":
      console.log(await ensureBootedRootfs(log))
      return
    case "fault": {
      const lab = await Lab.open(id)
      await lab.inject(parseFault(rest))
      console.log(`${rest.join(" ")}: done`)
      return
    }
    case "mysql": {
      const [host, sql] = rest
      if (!host || !sql) throw new Error('usage: mysql HOST "SQL"')
      console.table(await (await Lab.open(id)).query(host, sql))
      return
    }
    case "exec": {
      const [where, ...cmd] = rest
      if (!where || cmd.length === 0) throw new Error("usage: exec HOST|client CMD...")
      const r = await (await Lab.open(id)).exec(where, cmd)
      process.stdout.write(r.stdout)
      process.stderr.write(r.stderr)
      return
    }
    case undefined:
    case "help":
    case "--help":
      console.log(USAGE)
      return
    default:
      throw new Error(`unknown command '${command}'\n${USAGE}`)
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(`lab: ${e instanceof Error ? e.message : String(e)}`)
  process.exit(1)
})
