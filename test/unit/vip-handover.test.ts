// Issue 13: the old primary's write downtime. A make-before-break VIP
// handover (core/vip-handover.ts): a resigning primary whose mysqld refuses
// connections keeps the VIP until the next primary announced itself; and the
// winner of an election does not wait for the remote fence of an old primary
// it found unreachable (core/promotion.ts).
import assert from "node:assert/strict"
import { test } from "node:test"
import { runScenario } from "../sim/scenario.ts"
import { CoreNode, settledCluster } from "../support/core-node.ts"
import { answering } from "../support/probe-answer.ts"

const cluster = () => settledCluster()

class Node extends CoreNode {
  probeDown(reason: string, hung = false, afterMs = 10): this {
    return this.feed(
      (now) => ({
        _tag: "LocalProbed",
        ...answering(this.s),
        now,
        result: { _tag: "Down", reason, hung },
      }),
      afterMs,
    )
  }
  vipRemoves(): number {
    return this.out.filter((o) => o._tag === "Vip" && o.op === "remove").length
  }
  resigned(): boolean {
    return this.out.some((o) => o._tag === "Send" && o.message._tag === "Resign")
  }
}

/** The primary's mysqld refuses connections and its restart command fails at once: it resigns. */
const resignedWithDeadMysqld = (): Node => {
  const n = new Node(cluster().primary).probeDown("connect ECONNREFUSED 10.0.0.11:3306")
  assert.ok(n.out.some((o) => o._tag === "RestartMysqld"))
  n.feed((now) => ({ _tag: "RestartDone", now, ok: false }), 60)
  assert.ok(n.resigned(), "resigned at once")
  return n
}

test("a resigning primary whose mysqld refuses connections keeps the VIP until the next primary announced itself", () => {
  const n = resignedWithDeadMysqld()
  const term = n.s.hard.term
  assert.equal(n.vipRemoves(), 0, "no VIP removal at the resignation")
  assert.ok(n.out.some((o) => o._tag === "Mysql" && o.action._tag === "Fence"))
  n.tick(300)
  assert.equal(n.vipRemoves(), 0, "kept while no one else is primary")
  n.feed((now) => ({
    _tag: "PeerReceived",
    now,
    from: "db2",
    message: { _tag: "LeaderAnnounce", from: "db2", term: term + 1, executed: "" },
  }))
  assert.equal(n.vipRemoves(), 0, "the new primary's gratuitous ARP lands first")
  n.tick(n.s.config.timings.heartbeatIntervalMs)
  assert.equal(n.vipRemoves(), 1, "removed a heartbeat interval after the announce")
})

test("without a new primary the kept VIP goes at the bound (lease_duration)", () => {
  const n = resignedWithDeadMysqld()
  n.tick(n.s.config.timings.leaseDurationMs - 200)
  assert.equal(n.vipRemoves(), 0)
  n.tick(300)
  assert.equal(n.vipRemoves(), 1)
})

test("a hung mysqld (it may still take writes) loses the VIP at once when its primary resigns", () => {
  const n = new Node(cluster().primary)
  for (let i = 0; i < 4; i++) n.probeDown("the probe did not finish within 2000 ms", true, 500)
  n.feed((now) => ({ _tag: "RestartDone", now, ok: false }), 60)
  assert.ok(n.resigned())
  assert.equal(n.vipRemoves(), 1)
})

test("the winner does not wait for the remote fence of an old primary it found unreachable", () => {
  // The whole failover in the simulator: db1 isolated, db2 or db3 wins without the fence.
  const r = runScenario(
    "cluster data=3 seed=11\nrun 6s\nexpect primary db1\nisolate db1\nrun 12s\nexpect primary-not db1",
  )
  assert.ok(r.ok, r.failures.join("\n"))
  assert.ok(r.world!.eventsSeen.has("fence-not-awaited"), "the promotion went on without the fence")
})
