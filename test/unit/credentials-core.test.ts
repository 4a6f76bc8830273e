// Issue 17 item 1, the core's part: a replica already pointed at the primary
// has its replication credentials applied again (the executor reads the
// password file afresh) when its IO thread cannot log in (1045, bounded),
// when a reload found the password file changed, and on `rejoin`.
import assert from "node:assert/strict"
import { test } from "node:test"
import { AUTH_RETRY_MS, MAX_AUTH_RETRIES } from "../../agent/src/core/credentials.ts"
import { step } from "../../agent/src/core/reducer.ts"
import type { AgentState, Input, MysqlProbe, Output } from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"
import { answering } from "../support/probe-answer.ts"

const run = (s: AgentState, input: Input): { s: AgentState; out: ReadonlyArray<Output> } => {
  const r = step(s, input)
  return { s: r.state, out: r.outputs }
}
const repoints = (out: ReadonlyArray<Output>) =>
  out.flatMap((o) => (o._tag === "Mysql" && o.action._tag === "ReplicateFrom" ? [o] : []))

const replicaOfDb1 = () => {
  const r = runScenario("cluster data=3 seed=5\nrun 6s\nexpect primary db1")
  assert.ok(r.ok, r.failures.join("\n"))
  const s = r.world!.node("db3").state
  const probe = s.local.probe
  assert.ok(probe?.replica?.source === "db1", "db3 replicates from db1")
  return { s, probe }
}

const denied = (probe: MysqlProbe, errno = 1045): MysqlProbe => ({
  ...probe,
  replica: {
    ...probe.replica!,
    ioRunning: false,
    ioErrno: errno,
    lastError: `IO error ${errno}: Access denied for user 'repl'`,
  },
})

/** Runs `input`, completing the repoints it issues (the action ran). */
const settle = (s: AgentState, input: Input) => {
  const r = run(s, input)
  const issued = repoints(r.out)
  let next = r.s
  for (const o of issued) {
    next = run(next, {
      _tag: "MysqlDone",
      now: input.now + 1,
      incarnation: next.bootId,
      id: o.id,
      ok: true,
      error: null,
    }).s
  }
  return { s: next, out: r.out, repoints: issued.length }
}

const probeAt = (s: AgentState, at: number, probe: MysqlProbe) =>
  settle(s, { _tag: "LocalProbed", ...answering(s), now: at, result: { _tag: "Up", mysql: probe } })

test("an IO thread denied by its source (1045) is repointed with fresh credentials, a bounded number of times", () => {
  const { s, probe } = replicaOfDb1()
  const bad = denied(probe)
  let state = s
  let t = s.now + 10
  let issued = 0
  const events: Array<string> = []
  for (let i = 0; i < 40; i++) {
    const r = probeAt(state, t, bad)
    state = r.s
    issued += r.repoints
    for (const o of r.out)
      if (o._tag === "Event" && o.event === "credentials") events.push(o.reason)
    t += 500
  }
  assert.equal(issued, MAX_AUTH_RETRIES, "bounded")
  assert.equal(
    events.filter((e) => e.startsWith("replication cannot log in to db1")).length,
    1,
    `says once why it stopped: ${events.join(" | ")}`,
  )
  // Spaced: 40 probes 500 ms apart see MAX_AUTH_RETRIES re-applies, not one per probe.
  assert.ok(AUTH_RETRY_MS > 500)
  // Running again: a later denial gets its retries again.
  state = probeAt(state, t, probe).s
  assert.equal(probeAt(state, t + 500, bad).repoints, 1)
})

test("other IO errors, and a running IO thread, are not re-applied", () => {
  const { s, probe } = replicaOfDb1()
  assert.equal(probeAt(s, s.now + 10, denied(probe, 1236)).repoints, 0)
  assert.equal(probeAt(s, s.now + 10, probe).repoints, 0)
})

test("a reload that changed the replication password re-applies it once on a running replica", () => {
  const { s, probe } = replicaOfDb1()
  const reloaded = settle(s, {
    _tag: "Reconfigure",
    now: s.now + 5,
    config: s.config,
    changedSecrets: ["replication"],
  })
  assert.equal(reloaded.repoints, 1)
  const after = probeAt(reloaded.s, s.now + 10, probe)
  assert.equal(after.repoints + probeAt(after.s, s.now + 600, probe).repoints, 0, "once")
  // The monitor password alone is not the channel's business.
  const monitor = run(s, {
    _tag: "Reconfigure",
    now: s.now + 5,
    config: s.config,
    changedSecrets: ["monitor"],
  }).s
  assert.equal(probeAt(monitor, s.now + 10, probe).repoints, 0)
})

test("rejoin on a replica that already follows the primary re-applies its credentials", () => {
  const { s } = replicaOfDb1()
  const asked = settle(s, {
    _tag: "Operator",
    now: s.now + 5,
    requestId: 1,
    request: { _tag: "Rejoin", node: null, force: false },
  })
  const reply = asked.out.find((o) => o._tag === "OperatorReply")
  assert.ok(reply !== undefined && reply._tag === "OperatorReply" && reply.ok)
  assert.match(reply.message, /credentials are applied again/)
  assert.equal(asked.repoints, 1)
  // Forced too (the issue's `rejoin db3 --force`).
  const forced = settle(s, {
    _tag: "Operator",
    now: s.now + 5,
    requestId: 2,
    request: { _tag: "Rejoin", node: null, force: true },
  })
  assert.equal(forced.repoints, 1)
})
