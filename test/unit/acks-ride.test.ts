// A follower's acknowledgement rides on its heartbeat to the leader when both
// leave in one step (core/heartbeat.ts acksRideHeartbeats, protocol 1.5,
// issue 12), and the leader counts it for its lease as it counts a
// HeartbeatAck. The daemon's split for older peers: test/unit/mesh-datagram.test.ts.
import assert from "node:assert/strict"
import { test } from "node:test"
import { acksRideHeartbeats, buildHeartbeat } from "../../agent/src/core/heartbeat.ts"
import type { Outputs } from "../../agent/src/core/outputs.ts"
import type { AgentState, Output } from "../../agent/src/core/types.ts"
import type { PeerMessage } from "../../shared/peer-messages.ts"
import { CoreNode, settledCluster } from "../support/core-node.ts"

const { primary, replica } = settledCluster()
const hb = buildHeartbeat(replica, replica.round + 1, false)
const ack: PeerMessage = { _tag: "HeartbeatAck", from: "db2", term: 4, round: 9 }
const send = (to: string, message: PeerMessage): Output => ({ _tag: "Send", to, message })
const shown = (out: Outputs) =>
  out.map((o) =>
    o._tag === "Send"
      ? `${o.to} ${o.message._tag}${o.message._tag === "Heartbeat" && o.message.ack !== undefined ? ` ack=${o.message.ack.term}.${o.message.ack.round}` : ""}`
      : o._tag,
  )

test("the acknowledgement rides on the next heartbeat to the same peer; the other peers' heartbeat stays as it was", () => {
  const out: Outputs = [
    send("db1", ack),
    { _tag: "ProbeLocal" } as Output,
    send("db1", hb),
    send("db3", hb),
  ]
  const merged = acksRideHeartbeats(out)
  assert.deepEqual(shown(merged), ["ProbeLocal", "db1 Heartbeat ack=4.9", "db3 Heartbeat"])
  const third = merged[2]
  assert.ok(third?._tag === "Send" && third.message === hb, "db3 gets the same object (one frame)")
  assert.deepEqual(
    shown(out),
    ["db1 HeartbeatAck", "ProbeLocal", "db1 Heartbeat", "db3 Heartbeat"],
    "the input is not changed",
  )
})

test("the acknowledgement goes alone when no heartbeat to its peer follows, another message to that peer or a hard-state write comes between, or it came after the heartbeat", () => {
  const cases: ReadonlyArray<Outputs> = [
    [send("db1", ack), send("db3", hb)],
    [
      send("db1", ack),
      send("db1", { _tag: "PreVoteResponse", from: "db2", term: 4, granted: true, reason: "" }),
      send("db1", hb),
    ],
    [
      send("db1", ack),
      { _tag: "PersistHardState", seq: 3, hard: primary.hard } as Output,
      send("db1", hb),
    ],
    [send("db1", hb), send("db1", ack)],
  ]
  for (const out of cases) assert.equal(acksRideHeartbeats(out), out, shown(out).join(", "))
  // Of two acknowledgements in a row, the later one rides (the first goes alone, first).
  assert.deepEqual(
    shown(
      acksRideHeartbeats([
        send("db1", ack),
        send("db1", { _tag: "HeartbeatAck", from: "db2", term: 4, round: 10 }),
        send("db1", hb),
      ]),
    ),
    ["db1 HeartbeatAck", "db1 Heartbeat ack=4.10"],
  )
})

test("the leader renews its lease from an acknowledgement riding on a heartbeat, as from a HeartbeatAck", () => {
  const leaderRounds = (s: AgentState) => (s.role._tag === "Leader" ? s.role.lease : null)
  // The leader sends a round, then hears db2's heartbeat carrying the acknowledgement of it.
  const node = new CoreNode({
    ...primary,
    nextHeartbeatAt: primary.now,
    nextProbeAt: primary.now + 400,
  })
  node.tick(0)
  const round = node.s.round
  const before = leaderRounds(node.s)
  assert.ok(before !== null && before.rounds.has(round))
  const from2 = buildHeartbeat({ ...replica, now: node.s.now }, replica.round + 1, false)
  node.feed((now) => ({
    _tag: "PeerReceived",
    now,
    from: "db2",
    message: { ...from2, ack: { term: node.s.hard.term, round } },
  }))
  const after = leaderRounds(node.s)
  assert.ok(after !== null)
  // Three members: db2's acknowledgement makes the quorum, so the round renews the lease.
  assert.ok(
    after.validUntil > before.validUntil,
    `lease ${before.validUntil} -> ${after.validUntil}`,
  )
  // The same heartbeat without the acknowledgement renews nothing.
  const other = new CoreNode({
    ...primary,
    nextHeartbeatAt: primary.now,
    nextProbeAt: primary.now + 400,
  })
  other.tick(0)
  other.feed((now) => ({ _tag: "PeerReceived", now, from: "db2", message: from2 }))
  assert.equal(leaderRounds(other.s)?.validUntil, before.validUntil)
})
