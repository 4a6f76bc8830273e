/**
 * The core's next deadline (core/deadline.ts, issue 12): at rest an agent
 * asks to be woken only for a real timer (its next probe and heartbeat, a
 * few per second instead of twenty ticks); while a routine runs, at least
 * every BUSY_TICK_MS as before. That a Tick before the deadline changes
 * nothing is checked for every Tick of every simulated seed (world.ts, D1).
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { BUSY_TICK_MS, nextDeadline, routineRunning } from "../../agent/src/core/deadline.ts"
import { step } from "../../agent/src/core/reducer.ts"
import { roleName } from "../../agent/src/core/roles.ts"
import { answering } from "../support/probe-answer.ts"
import { dataMembers, World } from "./world.ts"

test("at rest no agent runs a routine, and each sleeps until its next probe or heartbeat", () => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  let samples = 0
  for (let t = 6000; t < 16_000; t += 173) {
    w.runUntil(t)
    for (const n of w.nodes.values()) {
      const s = n.state
      assert.equal(routineRunning(s), false, `${n.name} at ${t} ms runs a routine at rest`)
      const d = nextDeadline(s)
      assert.ok(d > s.now, `${n.name}: the deadline is ahead`)
      assert.ok(
        d <= Math.min(s.nextProbeAt, s.nextHeartbeatAt),
        `${n.name}: woken no later than its next probe and heartbeat`,
      )
      samples++
    }
  }
  assert.deepEqual(w.violations, [])
  assert.ok(samples > 100)
})

test("a candidate is ticked at least every BUSY_TICK_MS", () => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(6000)
  const s = w.nodes.get("db2")!.state
  // The operator forces an election on db2 through the local input path.
  const handed = step(s, {
    _tag: "PeerReceived",
    now: s.now + 1,
    from: "db1",
    message: { _tag: "TransferLeadership", from: "db1", term: s.hard.term, to: "db2" },
  })
  // It stands once a probe of its own is in (transfer-standing.ts); it is busy meanwhile.
  assert.equal(routineRunning(handed.state), true)
  assert.ok(nextDeadline(handed.state) <= handed.state.now + BUSY_TICK_MS)
  const r = step(handed.state, {
    _tag: "LocalProbed",
    ...answering(handed.state),
    now: s.now + 3,
    result: { _tag: "Up", mysql: s.local.probe! },
  })
  assert.equal(roleName(r.state), "candidate")
  assert.equal(routineRunning(r.state), true)
  assert.ok(nextDeadline(r.state) <= r.state.now + BUSY_TICK_MS)
})
