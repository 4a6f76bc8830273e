// The Ready/Advance seam (core/durability.ts, issue 11 item 1): a message
// that depends on a hard state leaves only once the core has heard that the
// state is on disk; a failed write halts the agent and nothing more leaves.
import assert from "node:assert/strict"
import { test } from "node:test"
import { step } from "../../agent/src/core/reducer.ts"
import type { AgentState, Input, Output } from "../../agent/src/core/types.ts"
import { settledCluster } from "../support/core-node.ts"

const voteRequest = (s: AgentState, from: string, dt = 1, term = s.hard.term + 1): Input => ({
  _tag: "PeerReceived",
  now: s.now + dt,
  from,
  message: {
    _tag: "VoteRequest",
    from,
    term,
    kind: "election",
    data: { serverUuid: "", received: "", backlog: 0, errant: "", replicationError: null },
  },
})

const sends = (outputs: ReadonlyArray<Output>, tag: string) =>
  outputs.filter((o) => o._tag === "Send" && o.message._tag === tag)

const persists = (outputs: ReadonlyArray<Output>) =>
  outputs.flatMap((o) => (o._tag === "PersistHardState" ? [o] : []))

const written = (s: AgentState, seq: number, incarnation = s.bootId): Input => ({
  _tag: "Persisted",
  now: s.now + 1,
  incarnation,
  seq,
})

test("a vote answer waits in the core for its term to be written, and leaves when the core hears it is", () => {
  const { replica } = settledCluster()
  const r = step(replica, voteRequest(replica, "db3"))
  const [p] = persists(r.outputs)
  assert.ok(p !== undefined, "the new term is written")
  assert.equal(p.hard.term, replica.hard.term + 1)
  assert.equal(p.seq, replica.durability.emitted + 1, "numbered in order")
  assert.equal(sends(r.outputs, "VoteResponse").length, 0, "not before the term is on disk")
  assert.equal(r.state.durability.held.length, 1)
  // A report from an earlier run of the decision loop says nothing of this one's writes.
  const stale = step(r.state, written(r.state, p.seq, "an-earlier-run"))
  assert.equal(sends(stale.outputs, "VoteResponse").length, 0)
  const w = step(stale.state, written(stale.state, p.seq))
  assert.equal(sends(w.outputs, "VoteResponse").length, 1, "released once written")
  assert.equal(w.state.durability.held.length, 0)
  assert.equal(w.state.durability.written, p.seq)
  // A message with nothing unwritten behind it leaves in its own step.
  const answered = step(w.state, voteRequest(w.state, "db3", 2, w.state.hard.term))
  assert.equal(persists(answered.outputs).length, 0, "the same term again: nothing to write")
  assert.equal(sends(answered.outputs, "VoteResponse").length, 1)
})

test("held messages leave in their order, each once the state it depends on is written", () => {
  const { replica } = settledCluster()
  const first = step(replica, voteRequest(replica, "db3"))
  const second = step(first.state, voteRequest(first.state, "db1", 2))
  const seqs = [...persists(first.outputs), ...persists(second.outputs)].map((p) => p.seq)
  assert.equal(seqs.length, 2)
  assert.equal(second.state.durability.held.length, 2)
  // The first write reported: only the first answer leaves.
  const one = step(second.state, written(second.state, seqs[0]!))
  assert.deepEqual(
    sends(one.outputs, "VoteResponse").map((o) => (o._tag === "Send" ? o.to : "")),
    ["db3"],
  )
  // The second covers it all (each holds the whole state).
  const two = step(one.state, written(one.state, seqs[1]!))
  assert.deepEqual(
    sends(two.outputs, "VoteResponse").map((o) => (o._tag === "Send" ? o.to : "")),
    ["db1"],
  )
})

test("a failed write: the agent halts, and neither the held answer nor any later message leaves", () => {
  const { replica } = settledCluster()
  const r = step(replica, voteRequest(replica, "db3"))
  const [p] = persists(r.outputs)
  assert.ok(p !== undefined)
  const failed = step(r.state, {
    _tag: "PersistFailed",
    now: r.state.now + 1,
    incarnation: r.state.bootId,
    seq: p.seq,
    error: "ENOSPC: no space left on device",
  })
  const halt = failed.outputs.find((o) => o._tag === "Halt")
  assert.ok(halt?._tag === "Halt", "the agent is asked to exit")
  assert.match(halt.reason, /could not be written: ENOSPC.*restarts it from the file/)
  assert.ok(failed.outputs.some((o) => o._tag === "Event" && o.event === "hard-state-write-failed"))
  assert.equal(sends(failed.outputs, "VoteResponse").length, 0)
  // Whatever comes after: a late report of the write, ticks with heartbeats due.
  let s = step(failed.state, written(failed.state, p.seq)).state
  const later: Array<Output> = []
  for (let i = 1; i <= 10; i++) {
    const t = step(s, { _tag: "Tick", now: s.now + 500, random: 0.5 })
    s = t.state
    later.push(...t.outputs)
  }
  assert.equal(
    later.filter((o) => o._tag === "Send").length,
    0,
    "no message leaves after a failed write",
  )
})
