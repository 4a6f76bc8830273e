// The leader's lease rounds (core/lease.ts): a round a quorum acknowledged
// extends the lease from its send time, and it and every older round are then
// forgotten (none of them can extend the lease further).
import assert from "node:assert/strict"
import { test } from "node:test"
import { leaseLength, noLease, roundAcked, roundSent } from "../../agent/src/core/lease.ts"
import { dataMembers, World } from "../sim/world.ts"

const config = () => {
  const w = new World({ seed: 1, members: dataMembers(3) })
  return w.node("db1").state.config
}

test("a round acknowledged by a quorum extends the lease and forgets itself and older rounds", () => {
  const c = config()
  let lease = roundSent(noLease, 1, 1_000)
  lease = roundSent(lease, 2, 1_500)
  lease = roundSent(lease, 3, 2_000)
  assert.deepEqual([...lease.rounds.keys()], [1, 2, 3])
  lease = roundAcked(lease, c, 2, "db2")
  assert.equal(lease.validUntil, 1_500 + leaseLength(c))
  assert.deepEqual([...lease.rounds.keys()], [3], "rounds 1 and 2 can no longer extend the lease")
  // A late acknowledgement of a forgotten round changes nothing.
  const late = roundAcked(lease, c, 1, "db3")
  assert.equal(late, lease)
  // The newer round still extends it.
  lease = roundAcked(lease, c, 3, "db3")
  assert.equal(lease.validUntil, 2_000 + leaseLength(c))
  assert.equal(lease.rounds.size, 0)
})

test("a round short of a quorum is kept with its acknowledgements, and the lease stays", () => {
  const w = new World({ seed: 1, members: dataMembers(5) })
  const c = w.node("db1").state.config
  let lease = roundSent(noLease, 7, 3_000)
  lease = roundAcked(lease, c, 7, "db2")
  assert.equal(lease.validUntil, 0, "2 of 5 is no quorum")
  assert.deepEqual([...(lease.rounds.get(7)?.acks ?? [])], ["db2"])
  assert.equal(roundAcked(lease, c, 7, "db2"), lease, "the same member twice counts once")
  lease = roundAcked(lease, c, 7, "db4")
  assert.equal(lease.validUntil, 3_000 + leaseLength(c))
  assert.equal(lease.rounds.size, 0)
})
