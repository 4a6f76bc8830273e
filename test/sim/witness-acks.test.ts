/**
 * Issue 18 item 2: how many acknowledgements strict semi-sync needs with
 * witnesses (protocol.md section 9). Witnesses vote but hold no data, so a
 * vote quorum may be both witnesses and one replica: for I3 every such
 * quorum must hold a replica that acknowledged, which needs
 * members - quorum acknowledgements, not a count taken from the data nodes
 * alone. This shows the bound is tight: the same run with the count taken
 * from the data nodes (3 data -> 1) loses an acknowledged write (I3), with
 * the real count it loses nothing (writes block instead, and say so).
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { strictAckCount } from "../../agent/src/core/config.ts"
import { step } from "../../agent/src/core/reducer.ts"
import { runScenario } from "./scenario.ts"
import { dataMembers, makeConfig, type Reducer } from "./world.ts"

/** The primary's commits wait for one acknowledgement, as if witnesses were not members. */
const dataOnlyAckCount: Reducer = (s, i) => {
  const r = step(s, i)
  return {
    state: r.state,
    outputs: r.outputs.map((o) =>
      o._tag === "Mysql" && o.action._tag === "SetSemiSync"
        ? { ...o, action: { ...o.action, waitForReplicaCount: 1 } }
        : o,
    ),
  }
}

// db3 cannot replicate (its mysql traffic is cut, its agent still talks):
// only db2 can acknowledge. Then db2 is lost and db1's mysqld dies for good:
// db3 and the two witnesses are a quorum and elect db3.
const script = `
cluster data=3 witness=2 seed=31
run 5s
expect primary db1
cut-mysql db3
run 4s
isolate db2
kill-mysqld db1 restart=fail
run 15s
expect primary db3
`

test("3 data + 2 witnesses: strict waits for members - quorum = 2 acknowledgements", () => {
  assert.equal(strictAckCount(makeConfig(dataMembers(3, 2))), 2)
})

test("the real count: while db3 cannot replicate nothing is acknowledged, so db3's election loses nothing", () => {
  const r = runScenario(script)
  assert.ok(r.ok, `${r.failures.join("\n")}\n${r.world?.renderTrace(25) ?? ""}`)
})

test("a count from the data nodes only (1): db2 alone acknowledged, db3 is elected without those writes (I3)", () => {
  const r = runScenario(script, dataOnlyAckCount)
  assert.ok(
    r.failures.some((f) => f.startsWith("I3")),
    `expected an I3 violation, got: ${r.failures.join("; ") || "none"}`,
  )
})
