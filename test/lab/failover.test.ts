// The first real failovers: three agents on three lab hosts, real MySQL with
// semi-sync, a client writing through the VIP. Each scenario asserts that no
// acknowledged write is lost, that two nodes are never writable at once, and
// that the cluster converges to one primary that everyone replicates from.
import assert from "node:assert/strict"
import { test } from "node:test"
import { runScenario } from "./cluster.ts"
import {
  mysqldCannotRestart,
  mysqldKilledRestarts,
  primaryAgentStopped,
  primaryIsolated,
  type Scenario,
  switchoverThereAndBack,
} from "./scenarios.ts"

const scenario = (name: string, slug: string, body: Scenario) =>
  test(name, { timeout: 240_000 }, () =>
    runScenario({ slug, timings: { restart_timeout: "10s", apply_timeout: "10s" } }, async (c) => {
      const faultAt = await body(c)
      const result = await c.check(faultAt)
      assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
      const diverged =
        result.diverged.length > 0
          ? `; ${result.diverged.join(", ")} left DIVERGED (unacknowledged transactions of its own, reported by its agent)`
          : ""
      console.log(
        `${name}: client-observed write downtime ${result.downtimeMs} ms, ${result.acked} acknowledged writes, none lost${diverged}`,
      )
    }),
  )

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
