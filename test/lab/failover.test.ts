// The first real failovers: three agents on three lab hosts, real MySQL with
// semi-sync, a client writing through the VIP. Each scenario asserts that no
// acknowledged write is lost, that two nodes are never writable at once, and
// that the cluster converges to one primary that everyone replicates from.
import assert from "node:assert/strict"
import { test } from "node:test"
import { LabCluster } from "./cluster.ts"
import {
  mysqldCannotRestart,
  mysqldKilledRestarts,
  primaryAgentStopped,
  primaryIsolated,
  type Scenario,
  switchoverThereAndBack,
} from "./scenarios.ts"

const scenario = (name: string, slug: string, body: Scenario) =>
  test(name, { timeout: 240_000 }, async () => {
    const c = await LabCluster.up({ timings: { restart_timeout: "10s", apply_timeout: "10s" } })
    let failed = true
    try {
      const faultAt = await body(c)
      const result = await c.check(faultAt)
      assert.deepEqual(result.problems, [], "the invariants hold")
      console.log(
        `${name}: client-observed write downtime ${result.downtimeMs} ms, ${result.acked} acknowledged writes, none lost`,
      )
      failed = false
    } finally {
      if (failed) console.log(`logs kept in ${c.keepLogs(slug)}`)
      await c.down()
    }
  })

scenario(
  "scenario 1: the primary's mysqld is killed and restarts: no failover",
  "scenario1",
  mysqldKilledRestarts,
)
scenario(
  "scenario 2: the primary's mysqld cannot restart: failover without lease wait",
  "scenario2",
  mysqldCannotRestart,
)
scenario(
  "scenario 3: the primary host is isolated: it fences itself, a replica takes over, the VIP moves",
  "scenario3",
  primaryIsolated,
)
scenario("scenario 8: a planned switchover there and back", "scenario8", switchoverThereAndBack)
scenario(
  "section 14: SIGTERM to the primary's agent hands over by switchover, then it exits",
  "graceful-stop",
  primaryAgentStopped,
)
