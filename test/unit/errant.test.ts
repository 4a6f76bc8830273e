// Protocol section 10, errant transactions (core/local-node.ts errantOf):
// judged against the record's primary and its base, and, while no primary
// is ACTIVE and the record names a winner that never became ACTIVE, the last
// ACTIVE primary's own commits are of the lineage (sim seed 17153, scenario
// 33): that winner wrote nothing, so nothing diverges from them.
import assert from "node:assert/strict"
import { test } from "node:test"
import {
  formatGtidSet,
  type GtidSet,
  isEmpty,
  singleton,
  union,
  uuidsOf,
} from "../../agent/src/core/gtid.ts"
import { errantOf } from "../../agent/src/core/local-node.ts"
import type { AgentState } from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"

/**
 * db3, a replica: the record names db2, elected in term `term` with base
 * `base`, and db1 (last ACTIVE) or db2 as the last primary.
 */
const world = () => {
  const r = runScenario("cluster data=3 seed=5\nrun 6s\nexpect primary db1")
  assert.ok(r.ok, r.failures.join("\n"))
  const s = r.world!.node("db3").state
  const uuid = (name: string): string => {
    const v = name === "db3" ? s.local.probe?.serverUuid : s.peers.get(name)?.serverUuid
    assert.ok(typeof v === "string")
    return v
  }
  const base = s.local.probe!.executed
  const at = (lastActive: string, leaderActive: string | null): AgentState => ({
    ...s,
    role: { _tag: "Follower", leader: leaderActive, leaderActive: leaderActive !== null },
    hard: {
      ...s.hard,
      record: {
        ...s.hard.record,
        term: 2,
        seq: 1,
        primary: "db2",
        primaryUuid: uuid("db2"),
        lastActive,
        base: formatGtidSet(base),
        lineage: [uuid("db1"), uuid("db2")],
      },
    },
  })
  return { s, uuid, base, at }
}

const errant = (s: AgentState, executed: GtidSet, serverUuid: string): GtidSet =>
  errantOf(s, { executed, serverUuid })

test("no primary ACTIVE, the record's winner never was: the last primary's own commits are not errant", () => {
  const { uuid, base, at } = world()
  // db1's commits beyond db2's base (written cut off, acknowledged by no one), seen on db3.
  const cutOff = union(base, singleton(uuid("db1"), 1000, 1029))
  assert.ok(isEmpty(errant(at("db1", null), cutOff, uuid("db3"))))
})

test("the last primary judges its own commits so too (its uuid from its own probe)", () => {
  const { s, uuid, base, at } = world()
  // db3 as the last ACTIVE primary: its uuid is of the lineage.
  const state = at("db3", null)
  const asLast: AgentState = {
    ...state,
    hard: {
      ...state.hard,
      record: { ...state.hard.record, lineage: [uuid("db1"), uuid("db3"), uuid("db2")] },
    },
  }
  const own = union(base, singleton(uuid("db3"), 1, 30))
  assert.ok(isEmpty(errant(asLast, own, uuid("db3"))))
  // Not once a re-seeded server answers with a uuid that never wrote as primary.
  const fresh = "0000000f-0000-4000-8000-00000000f00f"
  const reseeded = union(base, singleton(fresh, 1, 3))
  assert.deepEqual([...uuidsOf(errant(asLast, reseeded, fresh))], [fresh])
  assert.equal(s.self, "db3")
})

test("commits of any other server stay errant: a replica's own, an earlier primary's", () => {
  const { uuid, base, at } = world()
  const byHand = union(base, singleton(uuid("db3"), 1, 2))
  assert.equal(formatGtidSet(errant(at("db1", null), byHand, uuid("db3"))), `${uuid("db3")}:1-2`)
  // db1 is not the last primary (db2 became ACTIVE): db1's commits beyond db2's base are errant.
  const cutOff = union(base, singleton(uuid("db1"), 1000, 1029))
  assert.equal(
    formatGtidSet(errant(at("db2", null), cutOff, uuid("db3"))),
    `${uuid("db1")}:1000-1029`,
  )
})

test("once the winner is known ACTIVE it is the reference, before the record says so", () => {
  const { s, uuid, base, at } = world()
  // db2 announced it is ACTIVE; the record naming it the last primary is not in yet.
  const state = at("db1", "db2")
  const db2 = s.peers.get("db2")!
  const withDb2: AgentState = {
    ...state,
    peers: new Map([...s.peers, ["db2", { ...db2, executed: base }]]),
  }
  const cutOff = union(base, singleton(uuid("db1"), 1000, 1029))
  assert.equal(formatGtidSet(errant(withDb2, cutOff, uuid("db3"))), `${uuid("db1")}:1000-1029`)
})
