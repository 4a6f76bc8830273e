/**
 * catch-up.ts: which peer a standing node fetches what it lacks from, on a
 * state taken out of a running simulation (scenario 32 runs it whole).
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { catchUpFrom, guardCatchUp } from "../../agent/src/core/catch-up.ts"
import { formatGtidSet, type GtidSet, singleton, union } from "../../agent/src/core/gtid.ts"
import type { AgentState, Output, PeerView } from "../../agent/src/core/types.ts"
import { dataMembers, World } from "./world.ts"

/** db3 of a healthy 3-node cluster, 6 s in, and the server_uuids of db1 and db2. */
const replica = (): { s: AgentState; db1: string; db2: string } => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  return {
    s: w.node("db3").state,
    db1: w.node("db1").mysqld!.uuid,
    db2: w.node("db2").mysqld!.uuid,
  }
}

/** `s` with `peer` heard just now, holding `received`, fenced, its mysqld up. */
const withPeer = (
  s: AgentState,
  peer: string,
  received: GtidSet,
  change: Partial<PeerView> = {},
): AgentState => {
  const v = s.peers.get(peer)!
  const peers = new Map(s.peers)
  peers.set(peer, {
    ...v,
    lastHeardAt: s.now,
    mysqlUp: true,
    writable: false,
    errant: false,
    received,
    ...change,
  })
  return { ...s, peers }
}

const lastOf = (s: AgentState, uuid: string): number => s.local.received.sids.get(uuid)!.at(-1)!.end

test("catch-up: a fenced peer holding lineage transactions this node lacks is the holder; what it lacks is named", () => {
  const { s, db1 } = replica()
  const last = lastOf(s, db1)
  const more = union(s.local.received, singleton(db1, last + 1, last + 5))
  const c = catchUpFrom(withPeer(s, "db2", more), "db1", new Set([db1]))
  assert.equal(c?.holder, "db2")
  assert.equal(formatGtidSet(c!.missing), formatGtidSet(singleton(db1, last + 1, last + 5)))
  // Nothing missing: no holder.
  assert.equal(catchUpFrom(withPeer(s, "db2", s.local.received), "db1", new Set([db1])), null)
})

test("catch-up: never from the failed primary, a writable or DIVERGED or errant peer, or one whose mysqld is down", () => {
  const { s, db1 } = replica()
  const last = lastOf(s, db1)
  const more = union(s.local.received, singleton(db1, last + 1, last + 5))
  const lineage = new Set([db1])
  assert.equal(catchUpFrom(withPeer(s, "db2", more), "db2", lineage), null, "the lost primary")
  for (const change of [
    { writable: true },
    { role: "DIVERGED" as const },
    { errant: true },
    { mysqlUp: false },
  ]) {
    assert.equal(
      catchUpFrom(withPeer(s, "db2", more, change), "db1", lineage),
      null,
      JSON.stringify(change),
    )
  }
  // Not heard within a lease: not live.
  const stale = withPeer(s, "db2", more, { lastHeardAt: s.now - s.config.timings.leaseDurationMs })
  assert.equal(catchUpFrom(stale, "db1", lineage), null, "not heard within a lease")
})

test("catch-up: nothing foreign comes in: not when the holder's extra includes its own commits or another lineage's", () => {
  const { s, db1, db2 } = replica()
  const last = lastOf(s, db1)
  const lineage = new Set([db1, db2])
  // db2 was a primary once (its uuid is lineage), and holds commits of its own this node lacks:
  // an old primary's unacknowledged commits; auto-position would bring them along.
  const own = union(
    union(s.local.received, singleton(db1, last + 1, last + 5)),
    singleton(db2, 1, 3),
  )
  assert.equal(catchUpFrom(withPeer(s, "db2", own, { serverUuid: db2 }), "db1", lineage), null)
  const foreign = union(
    union(s.local.received, singleton(db1, last + 1, last + 5)),
    singleton("00000000-0000-4000-8000-00000000dead", 1, 3),
  )
  assert.equal(catchUpFrom(withPeer(s, "db2", foreign), "db1", new Set([db1])), null)
})

test("catch-up: not from a holder that lacks commits this node holds (two histories, never merged)", () => {
  const { s, db1 } = replica()
  const last = lastOf(s, db1)
  // This node holds db1's last commits; db2 lacks them but holds commits of another primary
  // of the lineage: each has what the other lacks.
  const other = "00000000-0000-4000-8000-0000000e1de7"
  const mine = union(s.local.received, singleton(db1, last + 1, last + 3))
  const theirs = union(s.local.received, singleton(other, 1, 2))
  const lineage = new Set([db1, other])
  const node = { ...s, local: { ...s.local, received: mine } }
  assert.equal(catchUpFrom(withPeer(node, "db2", theirs), null, lineage), null)
  // Once the holder has this node's commits too, it is a holder again.
  assert.equal(
    catchUpFrom(withPeer(node, "db2", union(theirs, mine)), null, lineage)?.holder,
    "db2",
  )
})

test("catch-up: of two holders, the more complete", () => {
  const { s, db1 } = replica()
  // Commits of an earlier primary (lineage), which neither holder wrote itself.
  const earlier = "00000000-0000-4000-8000-0000000e1de7"
  const lineage = new Set([db1, earlier])
  const two = union(s.local.received, singleton(earlier, 1, 2))
  const five = union(s.local.received, singleton(earlier, 1, 5))
  const both = withPeer(withPeer(s, "db1", two), "db2", five)
  assert.equal(catchUpFrom(both, null, lineage)?.holder, "db2")
  const reversed = withPeer(withPeer(s, "db1", five), "db2", two)
  assert.equal(catchUpFrom(reversed, null, lineage)?.holder, "db1")
})

test("catch-up: a follower of an active primary does nothing (at rest it costs no election check)", () => {
  const { s, db1 } = replica()
  const last = lastOf(s, db1)
  const more = union(s.local.received, singleton(db1, last + 1, last + 5))
  const out: Array<Output> = []
  const next = guardCatchUp(withPeer(s, "db2", more), out)
  assert.equal(s.role._tag === "Follower" && s.role.leaderActive, true)
  assert.deepEqual(out, [])
  assert.equal(next.catchingUpFrom ?? null, null)
})
