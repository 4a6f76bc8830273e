// Protocol section 9, "never release a waiting commit": an old primary that
// learns of a new one is fenced before anything touches its replication or
// its semi-sync settings (turning semi-sync off as a source gives a waiting
// client OK: test/lab/semisync-behaviour.test.ts), and a fence that cannot
// complete is escalated to a hard stop of mysqld, never to a release.
import assert from "node:assert/strict"
import { test } from "node:test"
import { step } from "../../agent/src/core/reducer.ts"
import type { AgentState, Input, MysqlProbe, Output } from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"
import { answering } from "../support/probe-answer.ts"

const run = (s: AgentState, input: Input): { s: AgentState; out: ReadonlyArray<Output> } => {
  const r = step(s, input)
  return { s: r.state, out: r.outputs }
}
const probed = (s: AgentState, mysql: MysqlProbe, dt = 10): Input => ({
  _tag: "LocalProbed",
  ...answering(s),
  now: s.now + dt,
  result: { _tag: "Up", mysql },
})
const replicationActions = (out: ReadonlyArray<Output>) =>
  out.flatMap((o) =>
    o._tag === "Mysql" && (o.action._tag === "ReplicateFrom" || o.action._tag === "SetSemiSync")
      ? [o.action._tag]
      : [],
  )

/** db3, a follower of db1, whose mysqld looks like an old primary's (no replication configured). */
const returningOldPrimary = () => {
  const r = runScenario("cluster data=3 seed=5\nrun 6s\nexpect primary db1")
  assert.ok(r.ok, r.failures.join("\n"))
  const s = r.world!.node("db3").state
  const probe = s.local.probe
  assert.ok(probe !== null && probe.replica?.source === "db1")
  return { s, probe: { ...probe, replica: null } satisfies MysqlProbe }
}

test("an old primary still writable is not repointed and keeps semi-sync as a source", () => {
  const { s, probe } = returningOldPrimary()
  const writable: MysqlProbe = { ...probe, superReadOnly: false, readOnly: false }
  const r = run(s, probed(s, writable))
  assert.deepEqual(replicationActions(r.out), [])
  // The split-brain guard fences it instead.
  assert.ok(r.out.some((o) => o._tag === "Mysql" && o.action._tag === "Fence"))
})

test("an old primary fenced but with a commit waiting for an acknowledgement is left alone", () => {
  const { s, probe } = returningOldPrimary()
  const waiting: MysqlProbe = { ...probe, semiSyncWaiters: 1 }
  const r = run(s, probed(s, waiting))
  assert.deepEqual(replicationActions(r.out), [])
})

test("fenced and quiet: it repoints and turns semi-sync off as a source", () => {
  const { s, probe } = returningOldPrimary()
  const r = run(s, probed(s, probe))
  assert.deepEqual(replicationActions(r.out), ["ReplicateFrom", "SetSemiSync"])
})

test("a fence that failed on a writable old primary stops mysqld hard; never on a fenced one", () => {
  const { s, probe } = returningOldPrimary()
  const writable: MysqlProbe = {
    ...probe,
    superReadOnly: false,
    readOnly: false,
    semiSyncWaiters: 1,
  }
  const fencing = run(s, probed(s, writable))
  const fence = fencing.out.find((o) => o._tag === "Mysql" && o.action._tag === "Fence")
  assert.ok(fence?._tag === "Mysql")
  const failed = run(fencing.s, {
    _tag: "MysqlDone",
    now: fencing.s.now + 10_000,
    incarnation: fencing.s.bootId,
    id: fence.id,
    ok: false,
    error: "Lock wait timeout exceeded",
  })
  const kills = failed.out.filter((o) => o._tag === "KillMysqld")
  assert.equal(kills.length, 1, JSON.stringify(failed.out))
  assert.ok(
    failed.out.some((o) => o._tag === "Event" && o.event === "fence-escalated"),
    "the escalation is logged with its reason",
  )
  assert.deepEqual(replicationActions(failed.out), [])
  // The same failure reported when the last probe shows it fenced (it went through late): no kill.
  const fenced = run(s, probed(s, probe))
  const again = run(fenced.s, probed(fenced.s, writable, 20))
  const fence2 = again.out.find((o) => o._tag === "Mysql" && o.action._tag === "Fence")
  assert.ok(fence2?._tag === "Mysql")
  const late = run(run(again.s, probed(again.s, probe, 30)).s, {
    _tag: "MysqlDone",
    now: again.s.now + 10_000,
    incarnation: again.s.bootId,
    id: fence2.id,
    ok: false,
    error: "Lock wait timeout exceeded",
  })
  assert.equal(late.out.filter((o) => o._tag === "KillMysqld").length, 0)
})
