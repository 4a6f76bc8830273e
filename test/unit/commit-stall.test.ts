// A primary that answers reads but cannot commit (issue 16 item 1): its
// commits wait in "waiting for handler commit" and gtid_executed stands
// still (test/lab/disk-full-primary.test.ts). The core resigns after
// commit_stall_timeout, names the cause, and stands for nothing until the
// server commits again; commits that wait for a semi-sync acknowledgement
// are another fault and never make it resign.
import assert from "node:assert/strict"
import { test } from "node:test"
import { defaultCommitStallMs } from "../../agent/src/core/commit-stall.ts"
import { selfEligible } from "../../agent/src/core/election.ts"
import { parseGtidSet } from "../../agent/src/core/gtid.ts"
import { step } from "../../agent/src/core/reducer.ts"
import { asLeader, roleName } from "../../agent/src/core/roles.ts"
import type { AgentState, MysqlProbe, Output } from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"
import { answering } from "../support/probe-answer.ts"

const primary = (commitStallMs?: number): AgentState => {
  const r = runScenario("cluster data=3 seed=11\nrun 6s\nexpect primary db1")
  assert.ok(r.ok, r.failures.join("\n"))
  const s = r.world!.node("db1").state
  assert.equal(roleName(s), "leader")
  return {
    ...s,
    local: { ...s.local, probeSentAt: null },
    config: {
      ...s.config,
      timings: {
        ...s.config.timings,
        ...(commitStallMs === undefined ? {} : { commitStallMs }),
      },
    },
  }
}

/**
 * One probe every 500 ms for `ms`, showing `probe` with commits stuck since
 * the start; the lease is kept valid (peers' acknowledgements are not what is
 * tested here).
 */
const stuck = (
  s0: AgentState,
  ms: number,
  probe: (waitedSeconds: number) => MysqlProbe,
): { s: AgentState; outputs: Output[] } => {
  let s = s0
  const outputs: Output[] = []
  const start = s.now
  while (s.now - start < ms) {
    const now = s.now + 500
    s = asLeader(s, (r) => ({ lease: { ...r.lease, validUntil: now + 3_000 } }))
    const r = step(s, {
      _tag: "LocalProbed",
      ...answering(s),
      now,
      result: { _tag: "Up", mysql: probe(Math.floor((now - start) / 1000)) },
    })
    s = r.state
    outputs.push(...r.outputs)
  }
  return { s, outputs }
}

const withWait =
  (base: MysqlProbe, ackWaiters = 0, sinceSeconds = 0) =>
  (waited: number): MysqlProbe => ({
    ...base,
    semiSyncWaiters: ackWaiters,
    commitWait: {
      sessions: waited + sinceSeconds > 0 ? 2 : 0,
      oldestSeconds: waited + sinceSeconds,
    },
  })

const resigned = (outputs: Output[]): string | undefined => {
  const o = outputs.find((x) => x._tag === "Send" && x.message._tag === "Resign")
  return o?._tag === "Send" && o.message._tag === "Resign" ? o.message.reason : undefined
}

test("commits stuck (not for an ack) with gtid_executed still: CRITICAL, resigns with the cause within the timeout, stands for nothing until it commits again", () => {
  const s0 = primary()
  const base = s0.local.probe!
  const before = stuck(s0, defaultCommitStallMs - 1_000, withWait(base))
  assert.equal(roleName(before.s), "leader", "not before commit_stall_timeout")
  const { s, outputs } = stuck(
    before.s,
    2_000,
    withWait(base, 0, (defaultCommitStallMs - 1_000) / 1000),
  )
  assert.match(resigned(outputs) ?? "", /mysqld cannot commit: 2 client commit\(s\) stuck/)
  assert.ok(
    outputs.some((o) => o._tag === "Event" && o.event === "commit-stalled"),
    "logged as commit-stalled",
  )
  assert.equal(roleName(s), "follower")
  assert.equal(s.local.health.level, "CRITICAL")
  const verdict = selfEligible(s)
  assert.ok(!verdict.ok && /could not commit/.test(verdict.why), JSON.stringify(verdict))
  // Stuck sessions gone (killed), nothing committed: still not standing.
  const quiet = stuck(s, 1_000, withWait(base)).s
  assert.equal(selfEligible({ ...quiet, local: { ...quiet.local } }).ok, false)
  // It commits again (applied a transaction): it may stand.
  const grown = parseGtidSet(`${s.local.executedText},00000000-0000-0000-0000-0000000000ff:1`)
  assert.equal(grown._tag, "Ok")
  const r = step(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + 500,
    result: {
      _tag: "Up",
      mysql: { ...base, executed: grown._tag === "Ok" ? grown.set : base.executed },
    },
  })
  assert.equal(r.state.commitStall, null)
  assert.ok(r.outputs.some((o) => o._tag === "Event" && o.event === "commits-resumed"))
})

test("commits that wait for a semi-sync acknowledgement never make the primary resign (failing over would not help)", () => {
  const s0 = primary()
  const { s, outputs } = stuck(s0, 3 * defaultCommitStallMs, withWait(s0.local.probe!, 1))
  assert.equal(resigned(outputs), undefined)
  assert.equal(roleName(s), "leader")
})

test("commit_stall_timeout 0 turns the check off", () => {
  const s0 = primary(0)
  const { s, outputs } = stuck(s0, 3 * defaultCommitStallMs, withWait(s0.local.probe!))
  assert.equal(resigned(outputs), undefined)
  assert.equal(roleName(s), "leader")
})
