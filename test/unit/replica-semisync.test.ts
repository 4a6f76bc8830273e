// A replica whose mysqld restarts keeps following the same source but loses
// the runtime rpl_semi_sync_replica_enabled: the agent turns it back on, or a
// strict-semi-sync primary with every replica in that state blocks all commits.
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
const semiSyncActions = (out: ReadonlyArray<Output>) =>
  out.flatMap((o) => (o._tag === "Mysql" && o.action._tag === "SetSemiSync" ? [o] : []))

const replicaOfDb1 = () => {
  const r = runScenario("cluster data=3 seed=5\nrun 6s\nexpect primary db1")
  assert.ok(r.ok, r.failures.join("\n"))
  const s = r.world!.node("db3").state
  const probe = s.local.probe
  assert.ok(probe?.replica?.source === "db1", "db3 replicates from db1")
  return { s, probe }
}

test("a replica following the primary with semi-sync off (mysqld restarted) turns it back on, once", () => {
  const { s, probe } = replicaOfDb1()
  const off: MysqlProbe = { ...probe, semiSyncReplicaOn: false }
  const first = run(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + 10,
    result: { _tag: "Up", mysql: off },
  })
  const actions = semiSyncActions(first.out)
  assert.equal(actions.length, 1)
  assert.ok(actions[0]?._tag === "Mysql" && actions[0].action._tag === "SetSemiSync")
  assert.equal(actions[0].action.replica, true)
  assert.equal(actions[0].action.source, false)
  // While it runs (and until a probe after it), no second one.
  const again = run(first.s, {
    _tag: "LocalProbed",
    ...answering(first.s),
    now: s.now + 20,
    result: { _tag: "Up", mysql: off },
  })
  assert.equal(semiSyncActions(again.out).length, 0)
})

test("semi-sync already on, or configured off: nothing to do", () => {
  const { s, probe } = replicaOfDb1()
  const on = run(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + 10,
    result: { _tag: "Up", mysql: probe },
  })
  assert.equal(semiSyncActions(on.out).length, 0)
  const asyncCluster: AgentState = { ...s, config: { ...s.config, semiSync: "off" } }
  const off: MysqlProbe = { ...probe, semiSyncReplicaOn: false }
  const r = run(asyncCluster, {
    _tag: "LocalProbed",
    ...answering(asyncCluster),
    now: s.now + 10,
    result: { _tag: "Up", mysql: off },
  })
  assert.equal(semiSyncActions(r.out).length, 0)
})

test("a returning node repoints only with the record that names the new primary", () => {
  const { s, probe } = replicaOfDb1()
  const unpointed: MysqlProbe = { ...probe, replica: null }
  // An older record (still naming another primary): wait for the new one.
  const stale: AgentState = {
    ...s,
    hard: { ...s.hard, record: { ...s.hard.record, primary: "db2" } },
  }
  const waiting = run(stale, {
    _tag: "LocalProbed",
    ...answering(stale),
    now: s.now + 10,
    result: { _tag: "Up", mysql: unpointed },
  })
  const repoints = (out: ReadonlyArray<Output>) =>
    out.filter((o) => o._tag === "Mysql" && o.action._tag === "ReplicateFrom").length
  assert.equal(repoints(waiting.out), 0)
  // With the record naming db1, it repoints.
  const current = run(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + 10,
    result: { _tag: "Up", mysql: unpointed },
  })
  assert.equal(repoints(current.out), 1)
})

// Issue 16 item 3: every repair is an event with its reason, and an excluded
// node (maintenance) is left as the operator put it.
const startReplicas = (out: ReadonlyArray<Output>) =>
  out.filter((o) => o._tag === "Mysql" && o.action._tag === "StartReplica").length
const eventsNamed = (out: ReadonlyArray<Output>, name: string) =>
  out.flatMap((o) => (o._tag === "Event" && o.event === name ? [o] : []))

test("a stopped SQL thread is started again, with an event that says which thread and why", () => {
  const { s, probe } = replicaOfDb1()
  assert.ok(probe.replica !== null)
  const stopped: MysqlProbe = { ...probe, replica: { ...probe.replica, sqlRunning: false } }
  const r = run(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + 10,
    result: { _tag: "Up", mysql: stopped },
  })
  assert.equal(startReplicas(r.out), 1)
  const events = eventsNamed(r.out, "replication-restart")
  assert.equal(events.length, 1)
  assert.match(events[0]?.reason ?? "", /SQL thread of replication from db1 stopped with no error/)
  assert.match(events[0]?.reason ?? "", /exclude db3/)
})

test("an IO thread that is connecting is left to retry by itself; a stopped one is started", () => {
  const { s, probe } = replicaOfDb1()
  assert.ok(probe.replica !== null)
  const probed = (replica: NonNullable<MysqlProbe["replica"]>) =>
    run(s, {
      _tag: "LocalProbed",
      ...answering(s),
      now: s.now + 10,
      result: { _tag: "Up", mysql: { ...probe, replica } },
    })
  // Right after a START REPLICA towards an unreachable source: Connecting, no error yet.
  const connecting = probed({ ...probe.replica, ioRunning: false, ioConnecting: true })
  assert.equal(startReplicas(connecting.out), 0)
  assert.equal(eventsNamed(connecting.out, "replication-restart").length, 0)
  const stopped = probed({ ...probe.replica, ioRunning: false })
  assert.equal(startReplicas(stopped.out), 1)
  assert.match(eventsNamed(stopped.out, "replication-restart")[0]?.reason ?? "", /^I\/O thread/)
})

test("an excluded node's stopped replication, semi-sync and source are left alone; rejoin still repoints", () => {
  const { s, probe } = replicaOfDb1()
  assert.ok(probe.replica !== null)
  const excluded: AgentState = {
    ...s,
    hard: { ...s.hard, record: { ...s.hard.record, excluded: ["db3"] } },
  }
  const broken: ReadonlyArray<MysqlProbe> = [
    { ...probe, replica: { ...probe.replica, sqlRunning: false, ioRunning: false } },
    { ...probe, semiSyncReplicaOn: false },
    { ...probe, replica: null },
  ]
  for (const mysql of broken) {
    const r = run(excluded, {
      _tag: "LocalProbed",
      ...answering(excluded),
      now: s.now + 10,
      result: { _tag: "Up", mysql },
    })
    const repairs = r.out.filter(
      (o) =>
        o._tag === "Mysql" &&
        (o.action._tag === "StartReplica" ||
          o.action._tag === "SetSemiSync" ||
          o.action._tag === "ReplicateFrom"),
    )
    assert.deepEqual(repairs, [], JSON.stringify(mysql.replica))
  }
  // The operator's rejoin is an explicit request: it repoints even while excluded.
  const asked: AgentState = { ...excluded, local: { ...excluded.local, rejoinRequested: true } }
  const r = run(asked, {
    _tag: "LocalProbed",
    ...answering(asked),
    now: s.now + 10,
    result: { _tag: "Up", mysql: { ...probe, replica: null } },
  })
  assert.equal(
    r.out.filter((o) => o._tag === "Mysql" && o.action._tag === "ReplicateFrom").length,
    1,
  )
  assert.match(eventsNamed(r.out, "repoint")[0]?.reason ?? "", /it replicated from no source/)
})
