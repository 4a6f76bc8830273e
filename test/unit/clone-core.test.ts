/**
 * `clone --recipient N [--donor M]` in the decision core: who may be re-seeded
 * and from whom, the order of the actions, the reply when the CLONE finished
 * (or failed), and the rejoin afterwards. States come from a simulated
 * cluster running the real reducer; the clone itself is driven by hand.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { chooseDonor } from "../../agent/src/core/clone.ts"
import { selfEligible } from "../../agent/src/core/election.ts"
import { step } from "../../agent/src/core/reducer.ts"
import type {
  AgentState,
  Input,
  MysqlProbe,
  OperatorRequest,
  Output,
} from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"
import type { World } from "../sim/world.ts"
import { answering } from "../support/probe-answer.ts"

const cluster = (script: string): World => {
  const r = runScenario(script)
  assert.ok(r.ok, r.failures.join("\n"))
  return r.world!
}

/** The reply of one operator request sent to `node` in the simulator. */
const ask = (w: World, node: string, request: OperatorRequest) => {
  const before = w.operatorReplies.length
  w.operator(node, request)
  w.runUntil(w.now + 500)
  const reply = w.operatorReplies.slice(before).find((r) => r.node === node)
  assert.ok(reply !== undefined, "no reply")
  return reply
}

const clone = (recipient: string, donor: string | null): OperatorRequest => ({
  _tag: "Clone",
  recipient,
  donor,
})

test("clone refuses the primary, an unknown donor, a witness, itself and an unhealthy donor, each with a reason", () => {
  const w = cluster("cluster data=3 witness=1 seed=5\nrun 6s\nexpect primary db1")
  const cases: Array<[string, OperatorRequest, RegExp]> = [
    ["db1", clone("db1", null), /db1 is the primary/],
    ["db3", clone("db3", "db9"), /unknown donor db9/],
    ["db3", clone("db3", "w1"), /w1 is a witness/],
    ["db3", clone("db3", "db3"), /cannot clone from itself/],
    ["w1", clone("w1", null), /w1 is a witness: it has no mysqld/],
  ]
  for (const [node, request, why] of cases) {
    const r = ask(w, node, request)
    assert.equal(r.ok, false, `${JSON.stringify(request)} on ${node}`)
    assert.match(r.message, why)
  }
  w.killMysqld("db2", true)
  w.runUntil(w.now + 4000)
  const r = ask(w, "db3", clone("db3", "db2"))
  assert.equal(r.ok, false)
  assert.match(r.message, /donor db2 is not healthy: its mysqld is down|donor db2 is not healthy/)
  // Nothing was done to db3's mysqld by any refusal.
  assert.equal(w.node("db3").state.clone, null)
})

test("the default donor is a caught-up STANDBY replica, else the primary", () => {
  const w = cluster("cluster data=3 seed=5\nrun 6s\nexpect primary db1")
  assert.deepEqual(chooseDonor(w.node("db3").state), { ok: true, donor: "db2" })
  assert.deepEqual(chooseDonor(w.node("db2").state), { ok: true, donor: "db3" })
  w.killMysqld("db2", true)
  w.runUntil(w.now + 4000)
  assert.deepEqual(chooseDonor(w.node("db3").state), { ok: true, donor: "db1" })
})

// ---------------------------------------------------------------------------
// The clone on db3, step by step.

const run = (s: AgentState, input: Input): { s: AgentState; out: ReadonlyArray<Output> } => {
  const r = step(s, input)
  return { s: r.state, out: r.outputs }
}
const mysqlOf = (out: ReadonlyArray<Output>) =>
  out.flatMap((o) =>
    o._tag === "Mysql" ? [{ id: o.id, tag: o.action._tag, action: o.action }] : [],
  )
const replyOf = (out: ReadonlyArray<Output>) => out.find((o) => o._tag === "OperatorReply")

const started = () => {
  const w = cluster("cluster data=3 seed=5\nrun 6s\nexpect primary db1")
  const s0 = w.node("db3").state
  const probe = s0.local.probe
  assert.ok(probe !== null)
  const primaryExecuted = s0.peers.get("db1")!.executed
  let now = s0.now + 10
  const r = run(s0, {
    _tag: "Operator",
    now,
    requestId: 7,
    request: clone("db3", "db2"),
  })
  return { s: r.s, out: r.out, probe, primaryExecuted, next: () => (now += 100) }
}

test("clone: fence, reset replication, CLONE from the donor; no fencing of the clone's read_only window, no restart of its mysqld", () => {
  const { s, out, probe, next } = started()
  assert.deepEqual(
    mysqlOf(out).map((m) => m.tag),
    ["Fence", "ResetReplicaAll", "Clone"],
  )
  const cloneAction = mysqlOf(out).find((m) => m.tag === "Clone")!
  assert.deepEqual(cloneAction.action, { _tag: "Clone", donor: "db2" })
  assert.equal(replyOf(out), undefined, "no reply before the CLONE finished")
  assert.equal(s.clone?.phase, "cloning")
  assert.equal(selfEligible(s).ok, false, "a node being re-seeded does not stand")
  // During the copy: super_read_only OFF, read_only ON. The split-brain guard leaves it.
  const copying: MysqlProbe = { ...probe, superReadOnly: false, readOnly: true, replica: null }
  const during = run(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: next(),
    result: { _tag: "Up", mysql: copying },
  })
  assert.ok(!mysqlOf(during.out).some((m) => m.tag === "Fence"), "no fence during the clone")
  assert.ok(!mysqlOf(during.out).some((m) => m.tag === "ReplicateFrom"), "no repoint during it")
  // Without a clone the same probe is fenced at once.
  const idle = run(
    { ...s, clone: null },
    { _tag: "LocalProbed", ...answering(s), now: next(), result: { _tag: "Up", mysql: copying } },
  )
  assert.ok(
    mysqlOf(idle.out).some((m) => m.tag === "Fence"),
    "the guard fences otherwise",
  )
  // mysqld restarts at the end of the clone: the agent does not restart it too.
  let down = during.s
  for (let i = 0; i < 8; i++) {
    const r = run(down, {
      _tag: "LocalProbed",
      ...answering(down),
      now: next(),
      result: { _tag: "Down", reason: "x", hung: false },
    })
    down = r.s
    assert.ok(!r.out.some((o) => o._tag === "RestartMysqld"), "no restart during the clone")
  }
  assert.equal(down.local.health.level, "FAIL")
})

test("clone done: reply ok, DIVERGED cleared, then it repoints to the primary with auto-position and the clone ends as STANDBY", () => {
  const { s: s1, out, probe, primaryExecuted, next } = started()
  const diverged: AgentState = { ...s1, local: { ...s1.local, diverged: true } }
  let s = diverged
  for (const m of mysqlOf(out)) {
    if (m.tag === "Clone") continue
    s = run(s, {
      _tag: "MysqlDone",
      now: next(),
      incarnation: s.bootId,
      id: m.id,
      ok: true,
      error: null,
    }).s
  }
  const cloneId = mysqlOf(out).find((m) => m.tag === "Clone")!.id
  const done = run(s, {
    _tag: "MysqlDone",
    now: next(),
    incarnation: s.bootId,
    id: cloneId,
    ok: true,
    error: null,
  })
  const reply = replyOf(done.out)
  assert.ok(reply?._tag === "OperatorReply")
  assert.equal(reply.ok, true)
  assert.equal(reply.requestId, 7)
  assert.match(reply.message, /cloned from db2; rejoining as a replica of db1/)
  assert.equal(done.s.local.diverged, false)
  assert.equal(done.s.clone?.phase, "rejoining")
  // The first probe after the restart: no replication configured, the donor's data.
  const back: MysqlProbe = { ...probe, executed: primaryExecuted, replica: null }
  const after = run(done.s, {
    _tag: "LocalProbed",
    ...answering(done.s),
    now: next(),
    result: { _tag: "Up", mysql: back },
  })
  const repoint = mysqlOf(after.out).find((m) => m.tag === "ReplicateFrom")
  assert.deepEqual(repoint?.action, { _tag: "ReplicateFrom", source: "db1" })
  assert.equal(after.s.local.diverged, false)
  // Once replicating from db1, the clone is over.
  let t = after.s
  for (const m of mysqlOf(after.out)) {
    t = run(t, {
      _tag: "MysqlDone",
      now: next(),
      incarnation: t.bootId,
      id: m.id,
      ok: true,
      error: null,
    }).s
  }
  const replicating: MysqlProbe = {
    ...back,
    replica: { ...probe.replica!, source: "db1", ioRunning: true, sqlRunning: true },
  }
  for (let i = 0; i < 4; i++) {
    t = run(t, {
      _tag: "LocalProbed",
      ...answering(t),
      now: next(),
      result: { _tag: "Up", mysql: replicating },
    }).s
  }
  assert.equal(t.clone, null)
})

test("a failed clone replies with MySQL's error and stays out of the way", () => {
  const { s, out, next } = started()
  const cloneId = mysqlOf(out).find((m) => m.tag === "Clone")!.id
  const failed = run(s, {
    _tag: "MysqlDone",
    now: next(),
    incarnation: s.bootId,
    id: cloneId,
    ok: false,
    error: "clone: ER 3862: Clone Donor Error: 1045 : Access denied",
  })
  const reply = replyOf(failed.out)
  assert.ok(reply?._tag === "OperatorReply")
  assert.equal(reply.ok, false)
  assert.match(reply.message, /clone from db2 failed: clone: ER 3862/)
  assert.equal(failed.s.clone, null)
})
