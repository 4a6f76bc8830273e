// Role changes go through core/roles.ts (issue 11 item 6): each `become…`
// clears what the role it enters does not carry, and nothing else in the
// core writes `role`.
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
} from "../../agent/src/core/roles.ts"
import type { Election } from "../../agent/src/core/types.ts"
import { settledCluster } from "../support/core-node.ts"

const coreDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../agent/src/core")

test("only core/roles.ts changes a role (and initialState sets the first)", () => {
  const writers: Array<string> = []
  for (const f of readdirSync(coreDir).filter((f) => f.endsWith(".ts"))) {
    const lines = readFileSync(path.join(coreDir, f), "utf8").split("\n")
    lines.forEach((l, i) => {
      if (/\brole: "/.test(l) && !l.trim().startsWith("//")) writers.push(`${f}:${i + 1}`)
    })
  }
  const outside = writers.filter((w) => !w.startsWith("roles.ts:"))
  assert.equal(outside.length, 1, `role written outside roles.ts: ${outside.join(", ")}`)
  assert.match(outside[0] ?? "", /^reducer\.ts:/, "initialState only")
})

test("a leader that becomes a follower keeps no promotion, switchover, lease or election", () => {
  const { primary } = settledCluster()
  assert.equal(primary.role, "leader")
  assert.ok(primary.promotion !== null && primary.lease.validUntil > 0)
  const f = becomeFollower(primary, { leader: null, leaderActive: false })
  assert.equal(f.role, "follower")
  assert.equal(f.promotion, null)
  assert.equal(f.switchover, null)
  assert.equal(f.election, null)
  assert.equal(f.lease, noLease)
  assert.equal(f.leader, null)
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
  assert.equal(pre.role, "pre-candidate")
  assert.equal(pre.hard.term, replica.hard.term, "a pre-vote does not change the term")
  const c = becomeCandidate(pre, election)
  assert.equal(c.role, "candidate")
  assert.deepEqual([c.hard.term, c.hard.votedFor], [replica.hard.term + 1, replica.self])
  assert.deepEqual([c.leader, c.leaderActive, c.electionDueAt], [null, false, null])
  const l = becomeLeader(c)
  assert.deepEqual([l.role, l.leader, l.election], ["leader", replica.self, null])
})
