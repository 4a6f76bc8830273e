// Both replicas' mysqld killed at once (kill -9, the supervisor restarts them):
// they come back replicating from the same primary but without the runtime
// rpl_semi_sync_replica_enabled, and with strict semi-sync the primary would
// then block every commit while every node looks healthy. The agents turn
// semi-sync back on; writes through the VIP resume; no failover happens.
import assert from "node:assert/strict"
import { test } from "node:test"
import { runScenario } from "./cluster.ts"
import { waitFor } from "./exec.ts"

test(
  "both replicas' mysqld restart: their agents re-enable semi-sync and writes resume, no failover",
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
      const result = await c.check(faultAt)
      assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
      console.log(
        `both replicas restarted: client-observed write downtime ${result.downtimeMs} ms, ${result.acked} acknowledged writes, none lost`,
      )
    }),
)
