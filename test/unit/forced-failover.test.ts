// Issue 17 item 2: `failover --to db2 --force` against a live primary whose
// agent holds the lease. db2 asks the primary's agent, which fences itself
// and resigns naming db2 (TransferLeadership before Resign, after the
// fence); if it does not answer, db2 stands for a forced election after two
// rpc timeouts, which waits out the lease as before. A primary that resigned
// never reclaims the role in the same run, even while its fence is pending.
import assert from "node:assert/strict"
import { test } from "node:test"
import { electionTrigger } from "../../agent/src/core/election.ts"
import { step } from "../../agent/src/core/reducer.ts"
import { becomeFollower, leaderOf, roleName } from "../../agent/src/core/roles.ts"
import type { AgentState, Input, Output } from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"
import { answering } from "../support/probe-answer.ts"

const cluster = () => {
  const r = runScenario("cluster data=3 seed=11\nrun 6s\nexpect primary db1")
  assert.ok(r.ok, r.failures.join("\n"))
  return r.world!
}

const feed = (s: AgentState, input: Input): { s: AgentState; outputs: Output[] } => {
  const r = step(s, input)
  return { s: r.state, outputs: [...r.outputs] }
}

const sent = (outputs: Output[], tag: string): Array<{ to: string; message: { _tag: string } }> =>
  outputs.flatMap((o) => (o._tag === "Send" && o.message._tag === tag ? [o] : []))

test("the primary asked by the operator's target fences itself, then names it in TransferLeadership, then resigns; it does not reclaim", () => {
  const db1 = cluster().node("db1").state
  const { s, outputs } = feed(db1, {
    _tag: "PeerReceived",
    now: db1.now + 1,
    from: "db2",
    message: {
      _tag: "OperatorRequest",
      from: "db2",
      requestId: 0,
      request: { _tag: "Failover", to: "db2" },
    },
  })
  const order = outputs.flatMap((o) =>
    o._tag === "Mysql" && o.action._tag === "Fence"
      ? ["Fence"]
      : o._tag === "Send" && ["TransferLeadership", "Resign"].includes(o.message._tag)
        ? [o.message._tag]
        : [],
  )
  assert.deepEqual([...new Set(order)], ["Fence", "TransferLeadership", "Resign"])
  assert.ok(
    sent(outputs, "TransferLeadership").every((o) => (o.message as { to?: string }).to === "db2"),
  )
  assert.equal(roleName(s), "follower")
  // Its mysqld still writable (the fence pends): no reclaim, whatever the record says.
  let next = s
  const all: Output[] = []
  for (let i = 1; i <= 10; i++) {
    const r = feed(next, {
      _tag: "LocalProbed",
      ...answering(next),
      now: next.now + 500,
      result: {
        _tag: "Up",
        mysql: { ...db1.local.probe!, superReadOnly: false, readOnly: false },
      },
    })
    next = r.s
    all.push(...r.outputs)
  }
  assert.equal(sent(all, "PreVoteRequest").length, 0, "no reclaim while it resigned")
})

test("the target of a forced failover asks the live primary first, and stands by itself only when it does not resign in time", () => {
  const db2 = cluster().node("db2").state
  assert.equal(leaderOf(db2), "db1")
  const asked = feed(db2, {
    _tag: "Operator",
    now: db2.now + 1,
    requestId: 7,
    request: { _tag: "Failover", to: "db2" },
  })
  const request = sent(asked.outputs, "OperatorRequest")
  assert.equal(request.length, 1)
  assert.equal(request[0]!.to, "db1")
  assert.equal(sent(asked.outputs, "PreVoteRequest").length, 0, "no election yet")
  assert.equal(sent(asked.outputs, "VoteRequest").length, 0, "no election yet")
  // db1 does not answer: after a lease db2 stands (forced) as before.
  const wait = db2.config.timings.leaseDurationMs
  const late = feed(asked.s, { _tag: "Tick", now: asked.s.now + wait + 1, random: 0.5 })
  assert.ok(
    late.outputs.some((o) => o._tag === "Event" && /did not resign in time/.test(o.reason)),
    "falls back to a forced election",
  )
  assert.equal(late.s.forcedFailover, null)
})

test("the last primary reclaims the role only while its own health is OK (or INFO, a fresh start)", () => {
  const db1 = cluster().node("db1").state
  // db1's agent restarted: a follower that the record names as primary, its mysqld writable.
  const restarted = (level: AgentState["local"]["health"]["level"]): AgentState => ({
    ...becomeFollower(db1, { leader: null, leaderActive: false }),
    reclaimTried: false,
    local: { ...db1.local, health: { ...db1.local.health, level } },
  })
  for (const level of ["OK", "INFO"] as const) {
    assert.deepEqual(electionTrigger(restarted(level)), { ok: true, kind: "reclaim" }, level)
  }
  for (const level of ["WARN", "CRITICAL", "FAIL"] as const) {
    const t = electionTrigger(restarted(level))
    assert.equal(t.ok, false, level)
    assert.match(t.ok ? "" : t.why, new RegExp(`health ${level}: the last primary`))
  }
})
