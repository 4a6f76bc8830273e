/**
 * The hooks the decision core runs (operations.md, Hooks) on the simulator:
 * on_failure_detected once per failure, pre_failover that can abort a
 * promotion (and what follows), post_failover, post_unsuccessful_failover,
 * on_role_change, and the lag pair with hysteresis.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { whyNoElection } from "../../agent/src/core/election.ts"
import { parseGtidSet } from "../../agent/src/core/gtid.ts"
import { initialState, step } from "../../agent/src/core/reducer.ts"
import { leaderActiveOf, leaderOf } from "../../agent/src/core/roles.ts"
import type { AgentState, HookName, Input, MysqlProbe } from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"
import { dataMembers, makeConfig, simTimings } from "../sim/world.ts"
import { answering } from "../support/probe-answer.ts"

interface HookRun {
  readonly node: string
  readonly hook: HookName
  readonly env: Readonly<Record<string, string>>
}

/** Runs a scenario script with the real reducer, recording every RunHook and every MakeWritable. */
const recorded = (script: string) => {
  const hooks: Array<HookRun> = []
  const writable: Array<string> = []
  const result = runScenario(script, (s: AgentState, i: Input) => {
    const r = step(s, i)
    for (const o of r.outputs) {
      if (o._tag === "RunHook") hooks.push({ node: s.self, hook: o.hook, env: o.env })
      if (o._tag === "Mysql" && o.action._tag === "MakeWritable") writable.push(s.self)
    }
    return r
  })
  assert.ok(result.ok, `${result.failures.join("\n")}\n${result.world?.renderTrace(25) ?? ""}`)
  const of = (node: string, hook?: HookName) =>
    hooks.filter((h) => h.node === node && (hook === undefined || h.hook === hook))
  return { hooks, writable, of, world: result.world! }
}

test("a failover runs on_failure_detected (once per agent), pre_failover, post_failover and on_role_change with MHA_* values", () => {
  const { of } = recorded(`
    cluster data=3 seed=12
    run 5s
    kill-mysqld db1 restart=fail
    run 10s
    expect primary db2
    expect no-violations
  `)
  for (const n of ["db2", "db3"]) {
    const detected = of(n, "on_failure_detected")
    assert.equal(detected.length, 1, `${n}: ${JSON.stringify(detected)}`)
    assert.equal(detected[0]!.env.MHA_OLD_PRIMARY, "db1")
    assert.match(detected[0]!.env.MHA_REASON!, /db1 resigned term 1/)
  }
  const [pre] = of("db2", "pre_failover")
  assert.deepEqual(
    { old: pre?.env.MHA_OLD_PRIMARY, new: pre?.env.MHA_NEW_PRIMARY, term: pre?.env.MHA_TERM },
    { old: "db1", new: "db2", term: "2" },
  )
  assert.equal(of("db3", "pre_failover").length, 0, "only the winner runs pre_failover")
  const [post] = of("db2", "post_failover")
  assert.deepEqual(
    { old: post?.env.MHA_OLD_PRIMARY, new: post?.env.MHA_NEW_PRIMARY, term: post?.env.MHA_TERM },
    { old: "db1", new: "db2", term: "2" },
  )
  const active = of("db2", "on_role_change").find((h) => h.env.MHA_NEW_ROLE === "ACTIVE")
  assert.equal(active?.env.MHA_OLD_PRIMARY, "db1")
  assert.equal(active?.env.MHA_NEW_PRIMARY, "db2")
  const db1Roles = of("db1", "on_role_change").map((h) => h.env.MHA_REASON)
  assert.ok(db1Roles.includes("ACTIVE -> FAIL"), JSON.stringify(db1Roles))
  assert.equal(of("db2", "post_unsuccessful_failover").length, 0)
})

test("pre_failover exit 1 aborts the promotion there: fenced and resigned, never writable; the next node wins", () => {
  const { of, writable, world } = recorded(`
    cluster data=3 seed=12
    run 5s
    hook db2 pre_failover exit=1
    kill-mysqld db1 restart=fail
    run 15s
    expect primary db3
    expect no-violations
  `)
  assert.equal(of("db2", "pre_failover").length, 1, "db2 stood once and did not try again")
  const [unsuccessful] = of("db2", "post_unsuccessful_failover")
  assert.match(unsuccessful?.env.MHA_REASON ?? "", /pre_failover hook: exit 1/)
  assert.equal(unsuccessful?.env.MHA_TERM, "2")
  assert.ok(of("db2", "on_fence").length >= 1, "the candidate fenced itself")
  assert.ok(!writable.includes("db2"), "db2 never made its mysqld writable")
  assert.equal(of("db2", "post_failover").length, 0)
  const [post] = of("db3", "post_failover")
  assert.equal(post?.env.MHA_TERM, "3")
  // Its status says why it does not stand.
  const s = world.node("db2").state
  assert.equal(s.preFailoverRefused, null, "cleared once a primary is ACTIVE")
})

test("pre_failover refused on every candidate: no primary, nobody writable; ack-recovery after the fix lets one win", () => {
  const { of, writable } = recorded(`
    cluster data=3 seed=12
    run 5s
    hook db2 pre_failover exit=1
    hook db3 pre_failover exit=1
    kill-mysqld db1 restart=fail
    run 15s
    expect primary none
    expect no-violations
    hook db3 pre_failover exit=0
    op db3 ack-recovery
    run 10s
    expect primary db3
    expect no-violations
  `)
  assert.equal(of("db2", "pre_failover").length, 1)
  assert.equal(
    of("db3", "pre_failover").length,
    2,
    "refused once, then after ack-recovery ran again",
  )
  assert.ok(!writable.includes("db2"))
  assert.equal(of("db3", "post_unsuccessful_failover").length, 1)
  assert.equal(of("db3", "post_failover").length, 1)
})

test("the refusal shows in the election status until a primary is ACTIVE", () => {
  const { world } = recorded(`
    cluster data=3 seed=12
    run 5s
    hook db2 pre_failover exit=1
    hook db3 pre_failover exit=1
    kill-mysqld db1 restart=fail
    run 15s
    expect primary none
  `)
  for (const n of ["db2", "db3"]) {
    const s = world.node(n).state
    assert.ok(s.preFailoverRefused !== null, n)
    assert.match(s.preFailoverRefused.reason, /pre_failover hook: exit 1/)
    assert.match(whyNoElection(s), /promotion aborted by pre_failover hook: exit 1/)
  }
})

// ---------------------------------------------------------------------------
// Lag hooks: one replica's agent fed probes with chosen lags.

const lagConfig = makeConfig(dataMembers(3), { timings: simTimings })
const empty = (() => {
  const p = parseGtidSet("")
  if (p._tag !== "Ok") throw new Error("gtid")
  return p.set
})()

const probeWithLag = (lag: number | null): MysqlProbe => ({
  serverUuid: "00000000-0000-0000-0000-000000000002",
  readOnly: true,
  superReadOnly: true,
  executed: empty,
  replica: {
    source: "db1",
    ioRunning: true,
    sqlRunning: true,
    retrieved: empty,
    lagSeconds: lag,
    lastError: null,
  },
  semiSyncSourceOn: false,
  semiSyncReplicaOn: true,
  semiSyncWaiters: 0,
})

const lagHooks = (lags: ReadonlyArray<number | null>): Array<string> => {
  let s = step(initialState(lagConfig, "db2"), {
    _tag: "Start",
    now: 0,
    hard: null,
    bootId: "b",
    random: 0.5,
  }).state
  const seen: Array<string> = []
  let now = 0
  for (const lag of lags) {
    now += 500
    const r = step(s, {
      _tag: "LocalProbed",
      ...answering(s),
      now,
      result: { _tag: "Up", mysql: probeWithLag(lag) },
    })
    s = r.state
    for (const o of r.outputs) {
      if (o._tag === "RunHook" && o.hook.startsWith("on_lag"))
        seen.push(`${o.hook}@${o.env.MHA_LAG_SECONDS}`)
    }
  }
  return seen
}

test("lag hooks: once per crossing of lag_warn, recovered only below the INFO band for recover_after probes", () => {
  // Defaults: INFO from 5 s, WARN (the threshold) from 10 s, 3 good probes to recover.
  assert.deepEqual(lagHooks([0, 2, 12, 30, 11, 12]), ["on_lag_threshold_exceeded@12"])
  // 7 s is under the threshold but inside the INFO band: not recovered (hysteresis).
  assert.deepEqual(lagHooks([12, 7, 7, 7, 7, 7]), ["on_lag_threshold_exceeded@12"])
  // Two good probes, one bad, then three good: recovered once, at the third in a row.
  assert.deepEqual(lagHooks([12, 1, 1, 6, 1, 1, 1, 1, 1]), [
    "on_lag_threshold_exceeded@12",
    "on_lag_recovered@1",
  ])
  // An unknown lag (replication stopped) changes nothing; a new crossing fires again.
  assert.deepEqual(lagHooks([12, null, null, 0, 0, 0, 15]), [
    "on_lag_threshold_exceeded@12",
    "on_lag_recovered@0",
    "on_lag_threshold_exceeded@15",
  ])
})

test("on_failure_detected is not run for the winner of a failover while it promotes (read-only on purpose until it announces)", () => {
  const w = runScenario("cluster data=3 seed=12\nrun 5s\nkill-mysqld db1 restart=fail").world!
  // db3 once db2 has won term 2 and before db2 announced that it is writable.
  let db3: AgentState | null = null
  for (let t = 5_000; t < 15_000 && db3 === null; t += 5) {
    w.runUntil(t)
    const s = w.node("db3").state
    if (leaderOf(s) === "db2" && !leaderActiveOf(s)) db3 = s
  }
  assert.ok(db3 !== null, "db3 saw db2 lead term 2 before it announced")
  // Its lease promise to db2 not (yet) made, db2's mysqld read-only as every peer sees it:
  // the failure rule alone would call db2 lost.
  const peers = new Map(
    [...db3.peers].map(([name, v]) => [
      name,
      { ...v, probedPrimary: "db2", primaryReachable: true, primaryFenced: true },
    ]),
  )
  const quiet: AgentState = {
    ...db3,
    promise: null,
    failureSeen: null,
    peers,
    primaryProbe: { target: "db2", reachable: true, fenced: true, at: db3.now },
  }
  const ran = (s: AgentState) =>
    step(s, { _tag: "Tick", now: s.now + 1, random: 0.5 }).outputs.filter(
      (o) => o._tag === "RunHook" && o.hook === "on_failure_detected",
    )
  assert.deepEqual(ran(quiet), [])
  // Its agent silent for the alive window: a failure after all.
  const silent = new Map(
    [...peers].map(([name, v]) => [name, name === "db2" ? { ...v, lastHeardAt: -1e9 } : v]),
  )
  assert.equal(ran({ ...quiet, peers: silent }).length, 1)
})
