// Both replicas' mysqld killed at once (kill -9, the supervisor restarts them):
// they come back replicating from the same primary but without the runtime
// rpl_semi_sync_replica_enabled, and with strict semi-sync the primary would
// then block every commit while every node looks healthy. The agents turn
// semi-sync back on; writes through the VIP resume; no failover happens.
// Then one replica's agent restarts while the primary's host is cut off: its
// mysqld is the process it recorded intact, so it votes and a replica is
// elected (core/relay-intact.ts).
import assert from "node:assert/strict"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import { makeHostBoot, mysqldStart } from "../../agent/src/adapters/host-boot.ts"
import { RELAY_INTACT_FILE } from "../../agent/src/adapters/relay-intact-file.ts"
import { sameProcess } from "../../agent/src/core/relay-intact.ts"
import { runScenario } from "./cluster.ts"
import { waitFor } from "./exec.ts"

test(
  "both replicas' mysqld restart: their agents re-enable semi-sync and writes resume, no failover; then a replica's agent restarts while the primary is cut off: a replica is elected",
  {
    timeout: 240_000,
  },
  () =>
    runScenario({ slug: "replica-restart" }, async (c) => {
      const primary = await c.waitForPrimary(10_000)
      const replicas = c.lab.hosts.map((h) => h.name).filter((n) => n !== primary)
      const termBefore = c.term(primary)
      const faultAt = Date.now()
      for (const host of replicas) await c.lab.inject({ _tag: "KillMysqld", host })
      await c.waitForWritesAfter(faultAt + 1_000, 60_000)
      for (const host of replicas) {
        await waitFor(
          `${host}: rpl_semi_sync_replica_enabled back on`,
          async () => {
            const [row] = await c.lab
              .query<{ on: number }>(host, "SELECT @@rpl_semi_sync_replica_enabled AS `on`")
              .catch(() => [])
            return Number(row?.on) === 1
          },
          30_000,
        )
      }
      assert.equal(await c.primary(), primary, "no failover")
      assert.equal(c.term(primary), termBefore, "same term")
      // (The invariants are checked once, over both steps, at the end: the check stops the writer.)
      console.log(
        `both replicas restarted: writes resumed ${c.writesAfter(faultAt + 1_000)} acknowledged, no failover`,
      )

      // 2. A replica's agent is killed; while it is down the primary's host is cut off; the
      //    agent starts again beside the same mysqld process it recorded as holding all it
      //    received, so it needs no resync and votes: a replica is elected. Before
      //    (core/relay-intact.ts), it voted only for the lost primary until it had caught up
      //    with it, never, and no quorum formed.
      const [restarted] = replicas as [string, string]
      const record = join(c.lab.runDir(), restarted, "state", RELAY_INTACT_FILE)
      // The process that restarted in step 1, once it ran RECORD_AFTER_UPTIME_S.
      const boot = makeHostBoot()
      await waitFor(
        `${restarted}'s agent to record its current mysqld process`,
        async () => {
          if (!existsSync(record)) return false
          const [row] = await c.lab
            .query<{ Value: string }>(restarted, "SHOW GLOBAL STATUS LIKE 'Uptime'")
            .catch(() => [])
          const now = mysqldStart(boot(), row === undefined ? null : Number(row.Value))
          return now !== null && sameProcess(JSON.parse(readFileSync(record, "utf8")), now)
        },
        30_000,
      )
      const secondAt = Date.now()
      await c.lab.inject({ _tag: "KillAgent", host: restarted })
      await c.lab.inject({ _tag: "Isolate", host: primary })
      await c.agents.start(restarted)
      const next = await c.waitForPrimary(30_000, primary)
      const log = readFileSync(c.agents.logPath(restarted), "utf8")
      assert.match(log, /"event":"relay-log-intact"/, `${restarted} found its relay log intact`)
      assert.doesNotMatch(log, /pre-vote-refused.*relay logs/)
      await c.lab.inject({ _tag: "Heal", hosts: [] })
      await c.waitForWritesAfter(Date.now(), 30_000)
      const electedMs = Date.now() - secondAt
      const result = await c.check(faultAt)
      assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
      console.log(
        `${restarted}'s agent restarted, ${primary} cut off: ${next} primary within ${electedMs} ms of the agent kill; ${result.acked} acknowledged writes over both steps, none lost`,
      )
    }),
)
