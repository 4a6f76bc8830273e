/**
 * Issue 10 item 3 in the decision core: a node whose agent's MySQL user lacks
 * a privilege its actions need never stands (it still votes); when the grants
 * are checked; what is said. States come from a simulated cluster running the
 * real reducer; the checks' answers are fed by hand.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import {
  candidateData,
  decideVote,
  electionTrigger,
  selfEligible,
  whyNoElection,
} from "../../agent/src/core/election.ts"
import { PRIVILEGE_RECHECK_MS, PRIVILEGE_RETRY_MS } from "../../agent/src/core/privileges.ts"
import { step } from "../../agent/src/core/reducer.ts"
import { roleName, withLeader } from "../../agent/src/core/roles.ts"
import { observation } from "../../agent/src/core/status.ts"
import type {
  AgentState,
  Input,
  MissingPrivilege,
  Output,
  PrivilegeCheckResult,
} from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"
import type { World } from "../sim/world.ts"
import { answering } from "../support/probe-answer.ts"

const cluster = (): World => {
  const r = runScenario("cluster data=3 seed=5\nrun 6s\nexpect primary db1")
  assert.ok(r.ok, r.failures.join("\n"))
  return r.world!
}

const run = (s: AgentState, input: Input): { s: AgentState; out: ReadonlyArray<Output> } => {
  const r = step(s, input)
  return { s: r.state, out: r.outputs }
}
const checks = (out: ReadonlyArray<Output>) => out.filter((o) => o._tag === "CheckPrivileges")
const events = (out: ReadonlyArray<Output>, name: string) =>
  out.flatMap((o) => (o._tag === "Event" && o.event === name ? [o.reason] : []))

const SVA: MissingPrivilege = {
  privilege: "SYSTEM_VARIABLES_ADMIN",
  neededBy: ["fence", "unfence", "setSemiSyncSource"],
}
const checked = (s: AgentState, missing: ReadonlyArray<MissingPrivilege>, dt = 10) =>
  run(s, {
    _tag: "PrivilegesChecked",
    now: s.now + dt,
    result: { _tag: "Checked", user: "mha@%", missing } satisfies PrivilegeCheckResult,
  })

test("grants are checked once mysqld answers at start; a complete set leaves the node eligible", () => {
  const w = cluster()
  const db2 = w.node("db2").state
  assert.deepEqual(db2.local.privileges.missing, [])
  assert.equal(db2.local.privileges.user, "mha@%")
  assert.ok(selfEligible(db2).ok)
  assert.equal(observation(db2)?.eligible, true)
})

test("a missing privilege: logged by name once, the node is not eligible (status says why, heartbeats carry it), and it still votes", () => {
  const w = cluster()
  const db2 = w.node("db2").state
  const a = checked(db2, [SVA])
  assert.deepEqual(events(a.out, "privilege-missing"), [
    "mha@% lacks SYSTEM_VARIABLES_ADMIN, needed by fence, unfence, setSemiSyncSource: this node will not stand for election",
  ])
  const verdict = selfEligible(a.s)
  assert.equal(verdict.ok, false)
  assert.match(
    verdict.ok ? "" : verdict.why,
    /mha@% lacks SYSTEM_VARIABLES_ADMIN: it could not promote/,
  )
  assert.match(whyNoElection(a.s), /lacks SYSTEM_VARIABLES_ADMIN/)
  assert.equal(observation(a.s)?.eligible, false, "its heartbeats say it cannot stand")
  // Even with the primary gone and every other reason out of the way, it does not stand.
  const alone: AgentState = {
    ...withLeader(a.s, null, false),
    promise: null,
    resignedTerm: a.s.hard.term,
  }
  assert.equal(electionTrigger(alone).ok, false)
  // It still votes for a healthy replica.
  const db3 = w.node("db3").state
  assert.deepEqual(decideVote(alone, "db3", "election", candidateData(db3)), { ok: true })
  // A re-check with the same gap says nothing new; once granted, it says so and may stand.
  const b = checked(a.s, [SVA], PRIVILEGE_RECHECK_MS)
  assert.deepEqual(events(b.out, "privilege-missing"), [])
  const c = checked(b.s, [])
  assert.equal(events(c.out, "privileges-complete").length, 1)
  assert.ok(selfEligible(c.s).ok)
})

test("not checked yet, or the check failed: the node does not stand and the check is retried", () => {
  const w = cluster()
  const db2 = w.node("db2").state
  const unchecked: AgentState = {
    ...db2,
    local: {
      ...db2.local,
      privileges: { ...db2.local.privileges, missing: null, inFlight: true },
    },
  }
  assert.match(whyNoElection(unchecked), /privileges are not checked yet/)
  const failed = run(unchecked, {
    _tag: "PrivilegesChecked",
    now: unchecked.now + 5,
    result: { _tag: "Failed", reason: "Lost connection to MySQL server" },
  })
  assert.equal(events(failed.out, "privilege-check-failed").length, 1)
  assert.match(whyNoElection(failed.s), /could not be checked: Lost connection/)
  const early = run(failed.s, {
    _tag: "Tick",
    now: failed.s.now + PRIVILEGE_RETRY_MS - 10,
    random: 0,
  })
  assert.equal(checks(early.out).length, 0)
  const retry = run(early.s, { _tag: "Tick", now: failed.s.now + PRIVILEGE_RETRY_MS, random: 0 })
  assert.equal(checks(retry.out).length, 1)
  // One at a time.
  const again = run(retry.s, { _tag: "Tick", now: retry.s.now + PRIVILEGE_RETRY_MS, random: 0 })
  assert.equal(checks(again.out).length, 0)
})

test("re-checked when mysqld answers again (restart), on reload, and periodically; when probes start failing", () => {
  const w = cluster()
  const s0 = w.node("db2").state
  const at = s0.local.privileges.checkedAt!
  const probe = s0.local.probe!
  // Periodic.
  const before = run(s0, { _tag: "Tick", now: at + PRIVILEGE_RECHECK_MS - 10, random: 0 })
  assert.equal(checks(before.out).length, 0)
  const due = run(before.s, { _tag: "Tick", now: at + PRIVILEGE_RECHECK_MS, random: 0 })
  assert.equal(checks(due.out).length, 1)
  const done = checked(due.s, [])
  // Probes fail: checked at once (a denied probe is not a mysqld down); no warning while down.
  const down = run(done.s, {
    _tag: "LocalProbed",
    ...answering(done.s),
    now: done.s.now + 10,
    result: { _tag: "Down", reason: "connection refused", hung: false },
  })
  assert.equal(checks(down.out).length, 1)
  const refused = run(down.s, {
    _tag: "PrivilegesChecked",
    now: down.s.now + 5,
    result: { _tag: "Failed", reason: "connect ECONNREFUSED" },
  })
  assert.equal(events(refused.out, "privilege-check-failed").length, 0)
  // Back up: checked at once.
  const up = run(refused.s, {
    _tag: "LocalProbed",
    ...answering(refused.s),
    now: refused.s.now + 10,
    result: { _tag: "Up", mysql: probe },
  })
  assert.equal(checks(up.out).length, 1)
  const done2 = checked(up.s, [])
  // Reload.
  const reload = run(done2.s, { _tag: "Reconfigure", now: done2.s.now + 10, config: s0.config })
  assert.equal(checks(reload.out).length, 1)
})

test("a forced failover and a switchover handover are refused on a node that lacks a privilege", () => {
  const w = cluster()
  const a = checked(w.node("db2").state, [SVA])
  const forced = run(
    { ...withLeader(a.s, null, false), promise: null },
    {
      _tag: "Operator",
      now: a.s.now + 10,
      requestId: 3,
      request: { _tag: "Failover", to: null },
    },
  )
  const reply = forced.out.find((o) => o._tag === "OperatorReply")
  assert.ok(reply?._tag === "OperatorReply" && !reply.ok)
  assert.match(reply.message, /cannot stand: .*lacks SYSTEM_VARIABLES_ADMIN/)
  assert.equal(roleName(forced.s), "follower")
  const handover = run(a.s, {
    _tag: "PeerReceived",
    now: a.s.now + 10,
    from: "db1",
    message: { _tag: "TransferLeadership", from: "db1", term: a.s.hard.term, to: "db2" },
  })
  assert.equal(roleName(handover.s), "follower")
  assert.equal(events(handover.out, "transfer-refused").length, 1)
})

test("a switchover to a node that lacks a privilege is refused by the primary (its heartbeat says it cannot stand)", () => {
  const w = cluster()
  const db2 = w.node("db2")
  db2.missingPrivileges.add("SYSTEM_VARIABLES_ADMIN")
  w.input(db2, (now) => ({ _tag: "Reconfigure", now, config: db2.state.config }))
  w.runUntil(w.now + 2000)
  assert.equal(w.node("db1").state.peers.get("db2")?.eligible, false)
  const before = w.operatorReplies.length
  w.operator("db1", { _tag: "Switchover", to: "db2", dryRun: false, drainTimeoutMs: 0 })
  w.runUntil(w.now + 500)
  const reply = w.operatorReplies.slice(before).find((r) => r.node === "db1")
  assert.ok(reply !== undefined && !reply.ok, JSON.stringify(reply))
  assert.match(reply.message, /db2 cannot stand for election now/)
})

test("a replica whose probe is denied for lack of REPLICATION CLIENT is not restarted: mysqld runs", () => {
  const w = cluster()
  let s = w.node("db2").state
  const rc: MissingPrivilege = {
    privilege: "REPLICATION CLIENT",
    neededBy: ["probe (SHOW REPLICA STATUS)"],
    forProbe: true,
  }
  const all: Array<Output> = []
  for (let i = 0; i < 10; i++) {
    const r = run(s, {
      _tag: "LocalProbed",
      ...answering(s),
      now: s.now + 1000,
      result: {
        _tag: "Down",
        reason: "Access denied; you need the REPLICATION CLIENT privilege",
        hung: false,
      },
    })
    all.push(...r.out)
    s = r.s
    if (checks(r.out).length > 0) {
      const c = checked(s, [rc], 5)
      all.push(...c.out)
      s = c.s
    }
  }
  assert.equal(s.local.health.level, "FAIL")
  assert.equal(all.filter((o) => o._tag === "RestartMysqld").length, 0)
  assert.ok(
    events(all, "restart-held").some((r) => /lack of REPLICATION CLIENT/.test(r)),
    JSON.stringify(events(all, "restart-held")),
  )
  assert.match(whyNoElection(s), /mysqld is not up|REPLICATION CLIENT/)
})
