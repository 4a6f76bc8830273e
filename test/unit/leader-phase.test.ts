// A follower's own heartbeat round and probes ride on its leader's heartbeat
// (core/heartbeat.ts followLeaderPhase, issue 12): due within half an
// interval, they go in the same step as the acknowledgement; while it
// follows a live leader its own timer waits a quarter interval more, so the
// leader's next heartbeat, a little late, still starts them. A member's own
// round and probe go in one step (roundWithProbe): the leader's keep one phase.
// In that step the acknowledgement rides on the heartbeat to the leader
// (acksRideHeartbeats, protocol 1.5); otherwise it goes alone.
import assert from "node:assert/strict"
import { test } from "node:test"
import { buildHeartbeat } from "../../agent/src/core/heartbeat.ts"
import type { AgentState, Output } from "../../agent/src/core/types.ts"
import { CoreNode, settledCluster } from "../support/core-node.ts"

const roundTo = (out: ReadonlyArray<Output>) =>
  out.flatMap((o) => (o._tag === "Send" && o.message._tag === "Heartbeat" ? [o.to] : [])).sort()
/** How db2's acknowledgement of db1's heartbeat left: alone, riding on its own heartbeat, or not. */
const acked = (out: ReadonlyArray<Output>): "alone" | "riding" | "no" =>
  out.some((o) => o._tag === "Send" && o.message._tag === "HeartbeatAck" && o.to === "db1")
    ? "alone"
    : out.some(
          (o) =>
            o._tag === "Send" &&
            o.message._tag === "Heartbeat" &&
            o.message.ack !== undefined &&
            o.to === "db1",
        )
      ? "riding"
      : "no"
const probed = (out: ReadonlyArray<Output>) => out.some((o) => o._tag === "ProbeLocal")

/** db2 following db1, its own round and probe due in `dueInMs`, hearing db1's heartbeat now. */
const hearLeader = (dueInMs: number) => {
  const { primary, replica } = settledCluster()
  assert.equal(replica.role._tag, "Follower")
  const s: AgentState = {
    ...replica,
    nextHeartbeatAt: replica.now + dueInMs,
    nextProbeAt: replica.now + dueInMs,
  }
  const node = new CoreNode(s)
  const hb = buildHeartbeat({ ...primary, now: s.now }, primary.round + 1, false)
  node.feed((now) => ({ _tag: "PeerReceived", now, from: "db1", message: hb }))
  return { node, t: s.config.timings, at: s.now }
}

test("a round and a probe due within half an interval go with the leader's heartbeat", () => {
  const { node, t, at } = hearLeader(200)
  assert.equal(acked(node.out), "riding")
  assert.deepEqual(roundTo(node.out), ["db1", "db3"])
  assert.ok(probed(node.out))
  // The next ones wait a quarter interval more for the leader's next heartbeat.
  assert.equal(node.s.nextHeartbeatAt, at + t.heartbeatIntervalMs * 1.25)
  assert.equal(node.s.nextProbeAt, at + t.probeIntervalMs * 1.25)
})

test("a round due later than half an interval keeps its own time", () => {
  const { node, at } = hearLeader(300)
  assert.equal(acked(node.out), "alone")
  assert.deepEqual(roundTo(node.out), [])
  assert.ok(!probed(node.out))
  assert.equal(node.s.nextHeartbeatAt, at + 300)
  assert.equal(node.s.nextProbeAt, at + 300)
})

test("with no live leader promised, a round's own timer has no slack", () => {
  const { replica } = settledCluster()
  const node = new CoreNode({ ...replica, promise: null, nextHeartbeatAt: replica.now })
  node.tick(0)
  assert.deepEqual(roundTo(node.out), ["db1", "db3"])
  assert.equal(node.s.nextHeartbeatAt, replica.now + replica.config.timings.heartbeatIntervalMs)
})

// The leader's own round and probe go in one step (core/heartbeat.ts roundWithProbe).
const leaderStep = (roundInMs: number, probeInMs: number, probeIntervalMs?: number) => {
  const { primary } = settledCluster()
  assert.equal(primary.role._tag, "Leader")
  const config =
    probeIntervalMs === undefined
      ? primary.config
      : { ...primary.config, timings: { ...primary.config.timings, probeIntervalMs } }
  const node = new CoreNode({
    ...primary,
    config,
    nextHeartbeatAt: primary.now + roundInMs,
    nextProbeAt: primary.now + probeInMs,
  })
  node.tick(0)
  return { node, at: primary.now, t: primary.config.timings }
}

test("a leader's round takes along a probe due within half an interval, and the other way round", () => {
  for (const [round, probe] of [
    [0, 200],
    [200, 0],
  ] as const) {
    const { node, at, t } = leaderStep(round, probe)
    assert.deepEqual(roundTo(node.out), ["db2", "db3"], `round in ${round}, probe in ${probe}`)
    assert.ok(probed(node.out), `round in ${round}, probe in ${probe}`)
    // From now on both keep the same phase.
    assert.equal(node.s.nextHeartbeatAt, at + t.heartbeatIntervalMs)
    assert.equal(node.s.nextProbeAt, at + t.probeIntervalMs)
  }
})

test("a leader's probe due later than half an interval keeps its own time", () => {
  const { node, at } = leaderStep(0, 300)
  assert.deepEqual(roundTo(node.out), ["db2", "db3"])
  assert.ok(!probed(node.out))
  assert.equal(node.s.nextProbeAt, at + 300)
})

test("with a probe interval other than the heartbeat interval, neither pulls the other (each keeps its own rate)", () => {
  // Probes every 1000 ms, rounds every 500: a pull at each round would probe every 500 ms.
  const { node, at } = leaderStep(0, 400, 1000)
  assert.deepEqual(roundTo(node.out), ["db2", "db3"])
  assert.ok(!probed(node.out))
  assert.equal(node.s.nextProbeAt, at + 400)
})
