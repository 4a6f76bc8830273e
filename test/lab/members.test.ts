// Issue 15 item 1 on the lab: grow a 3-member cluster to 5 and back to 3, one
// member at a time with `mha-agent member add|remove` on the primary, while the
// client writes through the VIP. Hosts db4 and db5 exist from the start (their
// mysqld stopped replicating and not acknowledging: fresh spares); their agents
// start only after their add, with the members block the command printed.
// Asserted: every change is answered "committed"; the new members replicate
// from the primary; no failover (the primary and its term stay); never two
// writable nodes and no acknowledged write lost (c.check); the primary's strict
// semi-sync wait count follows the list (1 with 3 or 4 members, 2 with 5).
// Then, on the same cluster: a replica host dies (db3: agent and mysqld gone)
// and is replaced by a new one (db5, its agent's state wiped): remove, then
// add; and a witness (db4, no mysqld) is added and removed the same way.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { mkdir, rm } from "node:fs/promises"
import { join } from "node:path"
import { test } from "node:test"
import { runScenario } from "./cluster.ts"
import { sleep, waitFor } from "./exec.ts"

const FIRST = ["db1", "db2", "db3"]
/** Members listed as witnesses by the block `member add` printed. */
const witnesses = new Set<string>()
/** What each host's config file lists (the block `member add` printed when its agent started). */
const listed = new Map<string, ReadonlyArray<string>>([
  ["db1", FIRST],
  ["db2", FIRST],
  ["db3", FIRST],
  ["db4", FIRST],
  ["db5", FIRST],
])

test(
  "membership online: 3 -> 5 -> 3, a dead replica host replaced, a witness added and removed, one member at a time under the writer: no failover, nothing lost",
  { timeout: 600_000 },
  () =>
    runScenario(
      {
        slug: "members",
        hosts: 5,
        agentsOn: FIRST,
        configFor: (host, config) => {
          const cluster = config.cluster as { members: Array<{ name: string }> }
          const names = listed.get(host) ?? FIRST
          return {
            ...config,
            cluster: {
              ...cluster,
              members: cluster.members
                .filter((m) => names.includes(m.name))
                .map((m) => (witnesses.has(m.name) ? { ...m, kind: "witness" } : m)),
            },
          }
        },
        beforeAgents: async (lab) => {
          // Spare hosts: no replication, no semi-sync acknowledgement as non-members.
          for (const h of ["db4", "db5"]) {
            await lab.query(h, "STOP REPLICA")
            await lab.query(h, "RESET REPLICA ALL")
            await lab.query(h, "SET GLOBAL rpl_semi_sync_replica_enabled = OFF")
          }
        },
      },
      async (c) => {
        const timeline: Array<string> = []
        const started = Date.now()
        const note = (line: string) => {
          const at = `${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s`
          timeline.push(`${at}  ${line}`)
          console.log(`${at}  ${line}`)
        }
        const primary = await c.waitForPrimary(30_000)
        const term = c.term(primary)
        note(`${primary} ACTIVE in term ${term}, writer running`)
        const waitCount = async () =>
          Number(
            (
              await c.lab.query<{ v: string }>(
                primary,
                "SELECT @@GLOBAL.rpl_semi_sync_source_wait_for_replica_count AS v",
              )
            )[0]?.v,
          )
        const member = async (args: ReadonlyArray<string>) => {
          const r = await c.agents.cli(primary, ["member", ...args])
          note(`mha-agent member ${args.join(" ")}: ${r.stdout.split("\n")[0]}`)
          assert.match(r.stdout, /committed as record/)
          return r.stdout
        }
        const replicates = (host: string) =>
          waitFor(
            `${host} replicating from ${primary}`,
            async () => {
              const r = await c.lab.replicaStatus(host).catch(() => undefined)
              return (
                r?.sourceHost === c.lab.host(primary).address &&
                r.ioRunning === "Yes" &&
                r.sqlRunning === "Yes"
              )
            },
            60_000,
            250,
          )
        const faultAt = Date.now()
        for (const host of ["db4", "db5"]) {
          const out = await member(["add", host, "--address", c.lab.host(host).address])
          const names = [...out.matchAll(/- name: (\S+)/g)].map((m) => m[1] as string)
          listed.set(host, names)
          await c.agents.writeConfig(host)
          await c.agents.start(host)
          await replicates(host)
          note(
            `${host}'s agent started with members ${names.join(",")}; replicating from ${primary}`,
          )
          await sleep(2_000)
          note(`wait count on ${primary}: ${await waitCount()}`)
        }
        assert.equal(await waitCount(), 2, "5 members: a commit waits for 2 acknowledgements")
        for (const host of ["db5", "db4"]) {
          await member(["remove", host])
          await waitFor(
            `${host}'s agent to stop replicating`,
            async () => (await c.lab.replicaStatus(host))?.ioRunning !== "Yes",
            30_000,
            250,
          )
          note(`${host} stopped its replication`)
          // Its heartbeat says so: the primary no longer counts it as a possible acknowledger, and
          // 4 members as 3 need one acknowledgement (with it still counted: 2).
          const want = 1
          await waitFor(
            `${primary}'s wait count back to ${want} once ${host} left`,
            async () => (await waitCount()) === want,
            20_000,
            250,
          )
          note(`${host} left: wait count on ${primary} ${want}`)
          // Decommissioned: its agent and mysqld stop (as an operator would take the host away).
          await c.agents.stop(host)
          await c.lab.inject({ _tag: "StopMysqld", host })
          await sleep(2_000)
          note(`wait count on ${primary}: ${await waitCount()}`)
        }
        assert.equal(await waitCount(), 1, "3 members: one acknowledgement")
        // A replica host dies and is replaced: remove it, then add the new host.
        const dead = "db3"
        await c.agents.stop(dead)
        await c.lab.inject({ _tag: "StopMysqld", host: dead })
        note(`${dead}'s host died (agent and mysqld gone)`)
        await member(["remove", dead])
        const fresh = "db5"
        // A new host: its mysqld from an old copy of the data (it catches up by auto-position),
        // its agent with no state of its own.
        await rm(join(c.lab.runDir(), fresh, "state"), { recursive: true, force: true })
        await mkdir(join(c.lab.runDir(), fresh, "state"), { recursive: true, mode: 0o750 })
        await c.lab.inject({ _tag: "StartMysqld", host: fresh })
        await c.lab.waitMysqld(fresh)
        const out = await member(["add", fresh, "--address", c.lab.host(fresh).address])
        listed.set(
          fresh,
          [...out.matchAll(/- name: (\S+)/g)].map((m) => m[1] as string),
        )
        await c.agents.writeConfig(fresh)
        await c.agents.start(fresh)
        await replicates(fresh)
        // Its own agent took it over: a STANDBY in the primary's view, acknowledging semi-sync.
        await waitFor(
          `${fresh} a STANDBY acknowledging semi-sync`,
          async () => {
            const status = (await c.agents.cli(primary, ["status"])).stdout
            const [ack] = await c.lab.query<{ Value: string }>(
              fresh,
              "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_replica_status'",
            )
            return (
              new RegExp(`^${fresh}\\s+data\\s+STANDBY\\s`, "m").test(status) && ack?.Value === "ON"
            )
          },
          30_000,
          500,
        )
        note(`${fresh} replaced ${dead}: a STANDBY of ${primary}, acknowledging semi-sync`)
        assert.equal(await waitCount(), 1, "3 members again: one acknowledgement")
        // A witness joins and leaves the same way (db4: its mysqld stays stopped).
        const witness = "db4"
        witnesses.add(witness)
        const added = await member([
          "add",
          witness,
          "--address",
          c.lab.host(witness).address,
          "--kind",
          "witness",
        ])
        assert.match(added, new RegExp(`- name: ${witness}\\n(.*\\n){5}\\s+kind: witness`))
        listed.set(
          witness,
          [...added.matchAll(/- name: (\S+)/g)].map((m) => m[1] as string),
        )
        await rm(join(c.lab.runDir(), witness, "state"), { recursive: true, force: true })
        await mkdir(join(c.lab.runDir(), witness, "state"), { recursive: true, mode: 0o750 })
        await c.agents.writeConfig(witness)
        await c.agents.start(witness)
        await waitFor(
          `${witness} shown as a WITNESS by ${primary}`,
          async () =>
            new RegExp(`^${witness}\\s+witness\\s+WITNESS\\s`, "m").test(
              (await c.agents.cli(primary, ["status"])).stdout,
            ),
          30_000,
          500,
        )
        note(`${witness} is a WITNESS member`)
        await member(["remove", witness])
        await c.agents.stop(witness)
        note(`${witness} removed and its agent stopped`)
        const result = await c.check(faultAt)
        note(
          `checked: ${result.acked} acknowledged writes, longest write gap ${result.downtimeMs} ms`,
        )
        assert.deepEqual(result.problems, [])
        assert.equal(await c.primary(), primary, "no failover")
        assert.equal(c.term(primary), term, "the term never moved")
        const events = readFileSync(c.agents.logPath(primary), "utf8")
          .split("\n")
          .filter((l) =>
            /"event":"(member-change|member-change-committed|semi-sync-source)"/.test(l),
          )
          .map((l) => (JSON.parse(l) as { msg: string }).msg)
        console.log(
          `--- timeline\n${timeline.join("\n")}\n--- ${primary}'s member events\n${events.join("\n")}`,
        )
      },
    ),
)
