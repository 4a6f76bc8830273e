// Issue 12 item 6: a heartbeat carries the cluster record only to a peer that
// may lack it (core/heartbeat.ts mayLackRecord). Every heartbeat states the
// record's version (protocol 1.4); each peer view keeps the version its peer
// last stated (cluster-view.ts). A peer that stated ours gets no record; one
// that stated an older version, none (never heard, an older agent) or was not
// heard within the alive window gets it, and a record still spreads by gossip
// to a node that missed the primary's proposal.
import assert from "node:assert/strict"
import { test } from "node:test"
import { compareVersions, nextRecord } from "../../agent/src/core/cluster-record.ts"
import { aliveWindow } from "../../agent/src/core/cluster-view.ts"
import { buildHeartbeat } from "../../agent/src/core/heartbeat.ts"
import type { AgentState, Output } from "../../agent/src/core/types.ts"
import type { HeartbeatMessage } from "../../shared/peer-messages.ts"
import { CoreNode, settledCluster } from "../support/core-node.ts"

type Sent = { readonly to: string; readonly hb: HeartbeatMessage }

const heartbeats = (out: ReadonlyArray<Output>): Array<Sent> =>
  out.flatMap((o) =>
    o._tag === "Send" && o.message._tag === "Heartbeat" ? [{ to: o.to, hb: o.message }] : [],
  )

class Node extends CoreNode {
  /** Ticks to the next heartbeat round; returns the heartbeats it sent. */
  round(): Array<Sent> {
    const from = this.out.length
    const wait = Math.max(0, this.s.nextHeartbeatAt - this.s.now)
    this.tick(wait)
    const sent = heartbeats(this.out.slice(from))
    assert.ok(sent.length > 0, "a heartbeat round was due")
    return sent
  }
  /** Delivers a heartbeat from a peer, now. */
  hear(hb: HeartbeatMessage): this {
    return this.feed((now) => ({ _tag: "PeerReceived", now, from: hb.from, message: hb }))
  }
  persisted(): number {
    return this.out.filter((o) => o._tag === "PersistHardState").length
  }
}

const byPeer = (sent: ReadonlyArray<Sent>) => new Map(sent.map((x) => [x.to, x.hb]))

/** What `peer` states in a heartbeat: its own state, with the record it holds. */
const heartbeatOf = (s: AgentState, withRecord = true): HeartbeatMessage =>
  buildHeartbeat(s, s.round + 1, withRecord)

/** db1 (the primary) with db2 and db3 just heard stating db1's version. */
const settled = () => {
  const { primary, replica } = settledCluster()
  const p = new Node(primary)
  const db3 = { ...replica, self: "db3" }
  p.hear(heartbeatOf(replica)).hear(heartbeatOf(db3))
  return { p, replica, db3 }
}

const assertEncodeOnce = (sent: ReadonlyArray<Sent>) => {
  // At most two message objects, each sent to its peers one after the other.
  const objects: Array<HeartbeatMessage> = []
  for (const x of sent) if (objects.at(-1) !== x.hb) objects.push(x.hb)
  assert.ok(objects.length <= 2, `${objects.length} runs of heartbeat objects`)
  assert.equal(new Set(objects).size, objects.length, "an object's sends are consecutive")
  const rounds = new Set(sent.map((x) => x.hb.round))
  assert.equal(rounds.size, 1, "one round")
}

test("a peer that stated our record's version gets a heartbeat without the record, with its version", () => {
  const { p } = settled()
  assert.deepEqual(p.s.peers.get("db2")?.recordVersion, {
    term: p.s.hard.record.term,
    seq: p.s.hard.record.seq,
  })
  const sent = p.round()
  assertEncodeOnce(sent)
  const to = byPeer(sent)
  assert.deepEqual([...to.keys()].sort(), ["db2", "db3"])
  for (const [peer, hb] of to) {
    assert.equal(hb.record, undefined, `${peer} gets no record`)
    assert.deepEqual(hb.recordVersion, { term: p.s.hard.record.term, seq: p.s.hard.record.seq })
  }
  assert.equal(to.get("db2"), to.get("db3"), "one message object for both")
})

test("a peer that stated an older version gets the record, the others do not", () => {
  const { p, replica } = settled()
  const older = { ...replica.hard.record, seq: replica.hard.record.seq - 1 }
  assert.ok(compareVersions(older, p.s.hard.record) < 0)
  p.hear(heartbeatOf({ ...replica, hard: { ...replica.hard, record: older } }, false))
  const sent = p.round()
  assertEncodeOnce(sent)
  const to = byPeer(sent)
  assert.deepEqual(to.get("db2")?.record, p.s.hard.record, "db2 is behind: it gets the record")
  assert.equal(to.get("db3")?.record, undefined, "db3 stated ours: no record")
  assert.deepEqual(to.get("db3")?.recordVersion, to.get("db2")?.recordVersion)
  // Once it states our version again, it gets the lean heartbeat.
  p.hear(heartbeatOf(replica, false))
  assert.equal(byPeer(p.round()).get("db2")?.record, undefined)
})

test("a peer that stated no version (an agent older than 1.4) or was never heard gets the record", () => {
  const { p, replica } = settled()
  // An older agent: its record in every heartbeat, but no recordVersion.
  const { recordVersion: _, ...old } = heartbeatOf(replica)
  assert.ok(old.record !== undefined)
  p.hear(old)
  assert.equal(p.s.peers.get("db2")?.recordVersion, null, "a record alone states no version")
  let to = byPeer(p.round())
  assert.deepEqual(to.get("db2")?.record, p.s.hard.record, "an older agent always gets the record")
  assert.equal(to.get("db3")?.record, undefined)
  // Never heard (db3 unknown, as after this agent's restart).
  const peers = new Map(p.s.peers)
  peers.delete("db3")
  p.s = { ...p.s, peers }
  p.hear(heartbeatOf(replica, false))
  to = byPeer(p.round())
  assert.deepEqual(to.get("db3")?.record, p.s.hard.record, "never heard: it gets the record")
  assert.equal(to.get("db2")?.record, undefined)
})

test("a peer not heard within the alive window gets the record, whatever it last stated", () => {
  const { p, db3 } = settled()
  const window = aliveWindow(p.s.config)
  const heardDb2 = p.s.peers.get("db2")?.lastHeardAt ?? 0
  // db3 keeps talking, db2 falls silent.
  while (p.s.now - heardDb2 < window) {
    p.tick(Math.min(200, window))
    p.hear(heartbeatOf({ ...db3, now: p.s.now }, false))
  }
  const sent = p.round()
  assertEncodeOnce(sent)
  const to = byPeer(sent)
  assert.ok(p.s.now - heardDb2 >= window)
  assert.deepEqual(to.get("db2")?.record, p.s.hard.record, "silent: it gets the record")
  assert.equal(to.get("db3")?.record, undefined, "heard, stated ours: no record")
  assert.notEqual(to.get("db2"), to.get("db3"))
  assert.deepEqual(to.get("db2")?.recordVersion, to.get("db3")?.recordVersion)
})

test("a record spreads by gossip to a node that missed the primary's proposal, and then stops", () => {
  const { p, replica } = settled()
  const r = new Node(replica)
  // db1 and db3 committed a change that db2 missed (its RecordAppend was lost).
  const changed = nextRecord(p.s.hard.record, p.s.hard.term, { paused: true })
  p.s = { ...p.s, hard: { ...p.s.hard, record: changed } }
  assert.ok(compareVersions(r.s.hard.record, changed) < 0)
  // db2 last stated the older version: the next round carries the record to it.
  const first = byPeer(p.round())
  const toDb2 = first.get("db2")
  assert.ok(toDb2 !== undefined)
  assert.deepEqual(toDb2.record, changed)
  assert.deepEqual(first.get("db3")?.record, changed, "db3 too stated the older version")
  // A lean heartbeat (say the datagram copy) does not change db2's record...
  const { record: _, ...lean } = toDb2
  r.hear(lean)
  assert.ok(compareVersions(r.s.hard.record, changed) < 0)
  // ...the full one does: db2 adopts and persists it.
  const before = r.persisted()
  r.hear(toDb2)
  assert.deepEqual(r.s.hard.record, changed)
  assert.ok(r.persisted() > before, "the adopted record is persisted")
  // db2 now states the new version: db1's next round leaves the record out.
  const stated = heartbeatOf(r.s, false)
  assert.deepEqual(stated.recordVersion, { term: changed.term, seq: changed.seq })
  p.hear(stated)
  assert.equal(byPeer(p.round()).get("db2")?.record, undefined)
})

test("a heartbeat states its record's version with or without the record", () => {
  const { primary } = settledCluster()
  const full = buildHeartbeat(primary, 1)
  const lean = buildHeartbeat(primary, 1, false)
  const v = { term: primary.hard.record.term, seq: primary.hard.record.seq }
  assert.deepEqual(full.recordVersion, v)
  assert.deepEqual(full.record, primary.hard.record)
  assert.deepEqual(lean.recordVersion, v)
  assert.ok(!("record" in lean), "no record key at all")
})
