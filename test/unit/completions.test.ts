/**
 * Typed completions (issue 11 item 7): a MysqlDone or HookDone goes back to
 * the routine named by its action's purpose (core/completions.ts), and the
 * finished action is awaited by the next probe answer (awaitingProbe).
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { purposeLabel } from "../../agent/src/core/completions.ts"
import { probeLocal } from "../../agent/src/core/local-probes.ts"
import { isInFlight, issueMysql, type Outputs, runHook } from "../../agent/src/core/outputs.ts"
import { step } from "../../agent/src/core/reducer.ts"
import type { ActionPurpose, AgentState } from "../../agent/src/core/types.ts"
import { dataMembers, World } from "../sim/world.ts"
import { answering } from "../support/probe-answer.ts"

const replica = (): AgentState => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  return w.node("db3").state
}

test("every purpose keeps the label the log gave it as a string (mysql-action-failed)", () => {
  // A Record over every tag: a new purpose does not compile until it is listed here too.
  const labels: Record<ActionPurpose["_tag"], string> = {
    Promotion: "promotion",
    Revoke: "revoke",
    VoteFreeze: "vote-freeze",
    Switchover: "switchover",
    DrainSessions: "drain-sessions",
    SwitchoverKillSessions: "switchover-kill-sessions",
    SwitchoverCatchUp: "switchover-catch-up",
    Fence: "fence",
    KillSessions: "kill-sessions",
    MakeWritable: "make-writable",
    SemiSyncSource: "semi-sync-source",
    Replication: "replication",
    SemiSync: "semi-sync",
    CloneFence: "clone-fence",
    CloneReset: "clone-reset",
    Clone: "clone",
    FixErrant: "fix-errant",
    Hook: "hook",
  }
  for (const [tag, label] of Object.entries(labels)) {
    const p = (
      tag === "Promotion" || tag === "Revoke" || tag === "VoteFreeze"
        ? { _tag: tag, term: 3 }
        : { _tag: tag }
    ) as ActionPurpose
    assert.equal(purposeLabel(p), label)
  }
})

test("a failed fire-and-forget action is logged by its purpose and awaited by a probe sent after it; an older probe's answer does not clear it", () => {
  const s0 = replica()
  const out: Outputs = []
  const [s1, id] = issueMysql(s0, out, { _tag: "StartReplica" }, { _tag: "Replication" })
  assert.deepEqual(s1.inFlight.get(id), { _tag: "Replication" })
  assert.equal(isInFlight(s1, "Replication"), true)
  const now = s1.now + 10
  const fail = (s: typeof s1) =>
    step(s, { _tag: "MysqlDone", now, incarnation: s1.bootId, id, ok: false, error: "boom" })
  const done = fail(s1)
  const failed = done.outputs.find((o) => o._tag === "Event" && o.event === "mysql-action-failed")
  assert.ok(failed !== undefined && failed._tag === "Event")
  assert.equal(failed.reason, "replication: boom")
  assert.equal(done.state.inFlight.has(id), false)
  // Finished, not yet visible: the replication guard does not repoint again meanwhile.
  assert.equal(isInFlight(done.state, "Replication"), true)
  assert.deepEqual([...done.state.awaitingProbe.keys()], ["Replication"])
  const probe = s0.local.probe
  assert.ok(probe !== null)
  // The answer to a probe sent before the action finished shows nothing of it.
  const before = fail(probeLocal(s1, []))
  const stale = step(before.state, {
    _tag: "LocalProbed",
    ...answering(before.state),
    now: now + 10,
    result: { _tag: "Up", mysql: probe },
  })
  assert.equal(stale.state.awaitingProbe.has("Replication"), true, "a probe sent before it")
  // One sent after it does.
  const asked = probeLocal(stale.state, [])
  const probed = step(asked, {
    _tag: "LocalProbed",
    ...answering(asked),
    now: now + 20,
    result: { _tag: "Up", mysql: probe },
  })
  assert.equal(probed.state.awaitingProbe.has("Replication"), false)
})

test("a hook nobody waits for completes quietly; an unknown id changes nothing", () => {
  const s0 = replica()
  const out: Outputs = []
  const [s1, id] = runHook(s0, out, "on_fence", { MHA_REASON: "test" }, { _tag: "Hook" })
  const done = step(s1, {
    _tag: "HookDone",
    now: s1.now + 1,
    incarnation: s1.bootId,
    id,
    exitCode: 1,
  })
  assert.equal(done.state.inFlight.has(id), false)
  assert.equal(
    done.outputs.some((o) => o._tag === "Event" && o.event === "mysql-action-failed"),
    false,
  )
  const unknown = step(s0, {
    _tag: "MysqlDone",
    now: s0.now + 1,
    incarnation: s0.bootId,
    id: s0.nextId + 100,
    ok: false,
    error: "late",
  })
  assert.deepEqual(unknown.state.inFlight, s0.inFlight)
  assert.deepEqual(unknown.state.awaitingProbe, s0.awaitingProbe)
})
