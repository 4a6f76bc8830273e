// Operator commands run where they belong (operations.md CLI): a command given
// to a replica's agent is forwarded over the mesh to the primary, which
// answers; the cluster record carries the pause flag and the history of
// switchovers to every node, and the history survives an agent restart.
// `reload` over the control socket applies a good config and refuses a bad one.
import assert from "node:assert/strict"
import { readFile, writeFile } from "node:fs/promises"
import { test } from "node:test"
import { parse, stringify } from "yaml"
import { request } from "../../agent/src/cli/socket.ts"
import type { ControlReply, ControlRequest } from "../../shared/control.ts"
import { runScenario } from "./cluster.ts"
import { waitFor } from "./exec.ts"

test(
  "pause, resume and switchover given to replicas are answered by the primary; history on every node, also after an agent restart; reload",
  { timeout: 300_000 },
  () =>
    runScenario({ slug: "forwarding" }, async (c) => {
      const hosts = c.lab.hosts.map((h) => h.name)
      const primary = await c.waitForPrimary(10_000)
      const [replica, other] = hosts.filter((h) => h !== primary) as [string, string]
      const ask = (host: string, req: ControlRequest): Promise<ControlReply> =>
        request(c.agents.socketPath(host), req, 30_000)
      const cli = async (host: string, args: ReadonlyArray<string>): Promise<ControlReply> =>
        JSON.parse((await c.agents.cli(host, [...args, "--json"])).stdout) as ControlReply
      const everyNode = (what: string, pred: (r: ControlReply) => boolean) =>
        waitFor(
          what,
          async () => {
            for (const h of hosts) if (!pred(await ask(h, { _tag: "Status" }))) return false
            return true
          },
          10_000,
        )

      const paused = await cli(replica, ["pause"])
      assert.equal(paused.ok, true, paused.message)
      assert.equal(paused.answeredBy, primary, JSON.stringify(paused))
      await everyNode("paused in every node's status", (r) => r.status?.paused === true)
      const resumed = await cli(other, ["resume"])
      assert.equal(resumed.ok, true, resumed.message)
      assert.equal(resumed.answeredBy, primary, JSON.stringify(resumed))
      await everyNode("resumed in every node's status", (r) => r.status?.paused === false)

      // A dry run from a replica: every check and step from the primary, nothing changes.
      // Asked again until its checks pass: this runs a second after the bootstrap, and the
      // replica's first heartbeats may still show its replication starting (CI of 164f0ff:
      // "db2 does not replicate from db1 with IO and SQL threads running", 0.5 s after the
      // agent had started it). A dry run changes nothing, so asking again is harmless.
      const dryRun = () =>
        ask(other, { _tag: "Switchover", to: replica, dryRun: true, drainTimeoutMs: 1000 })
      let dry = await dryRun()
      await waitFor(
        "a dry run whose checks pass",
        async () => {
          dry = await dryRun()
          return dry.ok
        },
        10_000,
      ).catch(() => undefined)
      assert.equal(dry.ok, true, `${dry.message}\n${dry.steps?.join("\n")}`)
      assert.equal(dry.answeredBy, primary)
      assert.ok((dry.steps ?? []).some((s) => s.startsWith(`check note: ${replica} has `)))
      assert.equal(await c.primary(), primary)

      const termBefore = c.term(primary)
      const faultAt = Date.now()
      // --drain-timeout: a statement running on the primary is let finish before the fence.
      const slow = c.lab.query(primary, "SELECT SLEEP(3) AS s").then(
        () => "finished",
        (e: unknown) => `failed: ${e instanceof Error ? e.message : String(e)}`,
      )
      await new Promise((r) => setTimeout(r, 300))
      const sw = await cli(other, ["switchover", "--to", replica, "--drain-timeout", "10"])
      const switchoverMs = Date.now() - faultAt
      assert.equal(sw.ok, true, sw.message)
      assert.equal(sw.answeredBy, primary)
      assert.equal(await slow, "finished", "the drain let the running statement finish")
      assert.ok(switchoverMs >= 2500, `the switchover waited for the drain (${switchoverMs} ms)`)
      console.log(`switchover with a 3 s statement drained: answered after ${switchoverMs} ms`)
      assert.equal(await c.waitForPrimary(20_000, primary), replica)
      await c.waitForWritesAfter(Date.now(), 30_000)

      const lastOf = async (host: string) => {
        const r = await ask(host, { _tag: "History" })
        assert.equal(r.ok, true, r.message)
        return r.history?.at(-1)
      }
      const isTheSwitchover = (e: Awaited<ReturnType<typeof lastOf>>) =>
        e?.kind === "switchover" &&
        e.term === termBefore + 1 &&
        e.oldPrimary === primary &&
        e.newPrimary === replica
      await waitFor(
        "the switchover in every node's history",
        async () => {
          for (const h of hosts) if (!isTheSwitchover(await lastOf(h))) return false
          return true
        },
        10_000,
      )
      const entry = await lastOf(replica)
      assert.ok(Math.abs(Date.parse(entry?.at ?? "") - Date.now()) < 120_000, entry?.at)
      assert.ok(entry?.durationMs !== null && (entry?.durationMs ?? 0) > 0, JSON.stringify(entry))
      console.log(`history entry: ${JSON.stringify(entry)}`)

      // The history is in the hard state: a restarted agent still lists it.
      await c.agents.stop(other)
      await c.agents.start(other)
      await waitFor(
        `${other}'s agent answering again`,
        async () => {
          try {
            return (await ask(other, { _tag: "Status" })).ok
          } catch {
            return false
          }
        },
        20_000,
      )
      assert.ok(isTheSwitchover(await lastOf(other)), JSON.stringify(await lastOf(other)))
      const text = (await c.agents.cli(other, ["history"])).stdout
      assert.match(text, new RegExp(`${primary}.*${replica}`, "s"))

      // reload: a live change is applied and named; a bad file is refused with its path.
      const path = c.agents.configPath(other)
      const good = await readFile(path, "utf8")
      await writeFile(path, good.replace(/level: info/, "level: debug"))
      const changed = await ask(other, { _tag: "Reload" })
      assert.equal(changed.ok, true, changed.message)
      assert.match(changed.message, /log\.level: "info" -> "debug"/)
      await writeFile(path, good.replace(/level: info/, "level: loud"))
      const refused = await ask(other, { _tag: "Reload" })
      assert.equal(refused.ok, false)
      assert.ok(refused.message.includes(path), refused.message)
      assert.match(refused.message, /log\.level/)
      // A lease timing never changes live (nodes reloaded one by one would disagree on leases).
      const doc = parse(good) as { timings?: Record<string, unknown> }
      await writeFile(
        path,
        stringify({ ...doc, timings: { ...doc.timings, lease_duration: "6s" } }),
      )
      const lease = await ask(other, { _tag: "Reload" })
      assert.equal(lease.ok, false, lease.message)
      assert.match(lease.message, /timings\.lease_duration: .*restart the agents one at a time/)
      await writeFile(path, good)

      const result = await c.check(faultAt)
      assert.deepEqual(result.problems, [], result.problems.join("; "))
      console.log(
        `forwarded switchover: write downtime ${result.downtimeMs} ms, ${result.acked} acknowledged writes, none lost`,
      )
    }),
)

test(
  "errant-gtid --fix --dry-run, demote and rejoin given to any node run where they belong",
  { timeout: 300_000 },
  () =>
    runScenario({ slug: "forwarding-node" }, async (c) => {
      const hosts = c.lab.hosts.map((h) => h.name)
      const primary = await c.waitForPrimary(10_000)
      const [a, b] = hosts.filter((h) => h !== primary) as [string, string]
      const ask = (host: string, req: ControlRequest): Promise<ControlReply> =>
        request(c.agents.socketPath(host), req, 30_000)
      const cli = async (host: string, args: ReadonlyArray<string>): Promise<ControlReply> =>
        JSON.parse((await c.agents.cli(host, [...args, "--json"])).stdout) as ControlReply
      const executed = async (host: string): Promise<string> => {
        const [row] = await c.lab.query<{ g: string }>(host, "SELECT @@gtid_executed AS g")
        return (row?.g ?? "").replace(/\n/g, "")
      }
      const subtract = async (x: string, y: string): Promise<string> => {
        const [row] = await c.lab.query<{ d: string }>(primary, "SELECT GTID_SUBTRACT(?, ?) AS d", [
          x,
          y,
        ])
        return (row?.d ?? "").replace(/\n/g, "")
      }

      // An errant transaction on b (written by hand; its agent fences again within a probe).
      await c.writeErrantTransaction(b)
      await new Promise((r) => setTimeout(r, 500))
      const errant = await subtract(await executed(b), await executed(primary))
      assert.notEqual(errant, "")
      await waitFor(
        `${primary}'s agent to see ${b}'s errant transaction`,
        async () =>
          (await ask(primary, { _tag: "Status" })).status?.members.find((m) => m.name === b)
            ?.errant === "yes",
        10_000,
      )

      const dry = await cli(a, ["errant-gtid", "--fix", "--dry-run"])
      assert.equal(dry.ok, true, dry.message)
      assert.equal(dry.answeredBy, primary)
      assert.ok(
        (dry.steps ?? []).some((s) => s.startsWith(`${b} holds ${errant}`)),
        (dry.steps ?? []).join("\n"),
      )
      await new Promise((r) => setTimeout(r, 1000))
      assert.equal(await subtract(errant, await executed(primary)), errant, "nothing injected")

      const demoted = await cli(a, ["demote", b, "--source", primary])
      assert.equal(demoted.ok, true, demoted.message)
      assert.equal(demoted.answeredBy, b)
      assert.match(demoted.message, new RegExp(`${b} fenced .*${primary}`))
      const [flags] = await c.lab.query<{ sro: number }>(b, "SELECT @@super_read_only AS sro")
      assert.equal(flags?.sro, 1)
      const refused = await ask(b, { _tag: "Demote", node: primary, source: a })
      assert.equal(refused.ok, false)
      assert.equal(refused.answeredBy, primary)
      assert.match(refused.message, /is the primary/)
      assert.equal(await c.primary(), primary)

      const rejoin = await ask(primary, { _tag: "Rejoin", node: a, force: false })
      assert.equal(rejoin.ok, true, rejoin.message)
      assert.equal(rejoin.answeredBy, a)
      assert.match(rejoin.message, new RegExp(`already replicates from ${primary}`))
      console.log(
        `dry run: ${dry.message}; demote: ${demoted.message}; refused: ${refused.message}; rejoin: ${rejoin.message}`,
      )
    }),
)
