// Issue 15 item 5: the core's rule for publishing the primary
// (core/discovery.ts): PublishPrimary while ACTIVE, once per term;
// WithdrawPrimary in the very step that ends ACTIVE (a fence for a lost
// lease, a higher term, a switchover's fence); nothing on a replica, nothing
// without the etcd section.
import assert from "node:assert/strict"
import { test } from "node:test"
import { leaseOf, roleName, withSwitchover } from "../../agent/src/core/roles.ts"
import { CoreNode, settledCluster } from "../support/core-node.ts"

const cluster = (publishPrimary: boolean | undefined) =>
  settledCluster(publishPrimary === undefined ? {} : { publishPrimary })

class Node extends CoreNode {
  discovery(): Array<string> {
    return this.out.flatMap((o) =>
      o._tag === "PublishPrimary" || o._tag === "WithdrawPrimary" ? [`${o._tag} ${o.term}`] : [],
    )
  }
  clear(): this {
    this.out.length = 0
    return this
  }
}

test("the ACTIVE primary is published once per term; a replica never", () => {
  const { primary, replica } = cluster(true)
  const p = new Node(primary).tick(10)
  const term = p.s.hard.term
  assert.deepEqual(p.discovery(), [`PublishPrimary ${term}`])
  p.tick(10).tick(10)
  assert.deepEqual(p.discovery(), [`PublishPrimary ${term}`], "not again in the same term")
  const r = new Node(replica).tick(10).tick(500)
  assert.deepEqual(r.discovery(), [])
})

test("without the etcd section (publishPrimary unset or false) nothing is emitted", () => {
  for (const flag of [undefined, false]) {
    const p = new Node(cluster(flag).primary).tick(10).tick(10)
    assert.deepEqual(p.discovery(), [], `publishPrimary ${flag}`)
  }
})

test("a primary that loses its lease withdraws in the step that fences it", () => {
  const p = new Node(cluster(true).primary).tick(10)
  const term = p.s.hard.term
  p.clear()
  // No acknowledgement arrives any more: the lease runs out.
  const until = leaseOf(p.s).validUntil
  p.feed((now) => ({ _tag: "Tick", now, random: 0.5 }), until - p.s.now + 1)
  const fence = p.out.findIndex((o) => o._tag === "Mysql" && o.action._tag === "Fence")
  assert.ok(fence >= 0, "fenced")
  assert.deepEqual(p.discovery(), [`WithdrawPrimary ${term}`])
  p.tick(100)
  assert.deepEqual(p.discovery(), [`WithdrawPrimary ${term}`], "once")
})

test("a higher term (a revoke) ends ACTIVE: withdrawn at once", () => {
  const p = new Node(cluster(true).primary).tick(10)
  const term = p.s.hard.term
  p.clear()
  p.feed((now) => ({
    _tag: "PeerReceived",
    now,
    from: "db2",
    message: { _tag: "Revoke", from: "db2", term: term + 1 },
  }))
  assert.notEqual(roleName(p.s), "leader")
  assert.deepEqual(p.discovery(), [`WithdrawPrimary ${term}`])
})

test("a switchover's fence withdraws: from the fencing phase on, the primary is not ACTIVE", () => {
  const p = new Node(cluster(true).primary).tick(10)
  const term = p.s.hard.term
  p.clear()
  // The switchover as it enters "fencing" (switchover.ts); only the phase matters here.
  p.s = withSwitchover(p.s, {
    phase: "fencing",
    requestId: 1,
    to: "db2",
    requestedAt: p.s.now,
    drainTimeoutMs: 0,
    reason: "test",
    resignIfRefused: false,
    deadline: p.s.now + 60_000,
    waitingFor: 999,
  })
  p.tick(1)
  assert.deepEqual(p.discovery(), [`WithdrawPrimary ${term}`])
})
