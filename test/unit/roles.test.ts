// Role changes go through core/roles.ts (issue 11 item 6): the role is a
// tagged union, each `become…` builds one variant, which carries nothing of
// another role, and nothing else in the core writes `role`.
import assert from "node:assert/strict"
import { readdirSync, readFileSync } from "node:fs"
import path from "node:path"
import { test } from "node:test"
import { fileURLToPath } from "node:url"
import { noLease } from "../../agent/src/core/lease.ts"
import {
  becomeCandidate,
  becomeFollower,
  becomeLeader,
  becomePreCandidate,
  electionOf,
  leaderActiveOf,
  leaderOf,
  leaseOf,
  promotionOf,
  roleName,
  switchoverOf,
} from "../../agent/src/core/roles.ts"
import type { Election } from "../../agent/src/core/types.ts"
import { settledCluster } from "../support/core-node.ts"

const coreDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../agent/src/core")

test("only core/roles.ts changes a role (and initialState sets the first)", () => {
  const writers: Array<string> = []
  for (const f of readdirSync(coreDir).filter((f) => f.endsWith(".ts"))) {
    const lines = readFileSync(path.join(coreDir, f), "utf8").split("\n")
    lines.forEach((l, i) => {
      // A role written (`role: {`) or a variant built (`_tag: "Leader"`, ...); types.ts declares them.
      const writes =
        /\brole: [{"]/.test(l) || /\b_tag: "(Follower|PreCandidate|Candidate|Leader)"/.test(l)
      if (writes && f !== "types.ts" && !l.trim().startsWith("//")) writers.push(`${f}:${i + 1}`)
    })
  }
  const outside = writers.filter((w) => !w.startsWith("roles.ts:"))
  assert.equal(outside.length, 1, `role written outside roles.ts: ${outside.join(", ")}`)
  assert.match(outside[0] ?? "", /^reducer\.ts:/, "initialState only")
})

test("a leader that becomes a follower keeps no promotion, switchover, lease or election", () => {
  const { primary } = settledCluster()
  assert.equal(roleName(primary), "leader")
  assert.ok(promotionOf(primary) !== null && leaseOf(primary).validUntil > 0)
  const f = becomeFollower(primary, { leader: null, leaderActive: false })
  assert.equal(roleName(f), "follower")
  assert.equal(promotionOf(f), null)
  assert.equal(switchoverOf(f), null)
  assert.equal(electionOf(f), null)
  assert.equal(leaseOf(f), noLease)
  assert.equal(leaderOf(f), null)
})

test("a candidate stands with its own vote in the election's term and follows nobody; a leader leads itself", () => {
  const { replica } = settledCluster()
  const election: Election = {
    kind: "election",
    phase: "vote",
    term: replica.hard.term + 1,
    granted: new Set([replica.self]),
    records: [],
    deadline: replica.now + 1_000,
    resentAt: null,
    triggeredAt: replica.now,
    reason: "test",
  }
  const pre = becomePreCandidate(replica, { ...election, phase: "pre" })
  assert.equal(roleName(pre), "pre-candidate")
  assert.equal(pre.hard.term, replica.hard.term, "a pre-vote does not change the term")
  assert.equal(leaderOf(pre), leaderOf(replica), "a pre-candidate still follows its leader")
  const c = becomeCandidate(pre, election)
  assert.equal(roleName(c), "candidate")
  assert.deepEqual([c.hard.term, c.hard.votedFor], [replica.hard.term + 1, replica.self])
  assert.deepEqual([leaderOf(c), leaderActiveOf(c), c.electionDueAt], [null, false, null])
  const l = becomeLeader(c)
  assert.deepEqual([roleName(l), leaderOf(l), electionOf(l)], ["leader", replica.self, null])
  assert.deepEqual([leaseOf(l), promotionOf(l), switchoverOf(l)], [noLease, null, null])
})
