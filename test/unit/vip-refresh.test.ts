// Section 11: the VIP's holder announces it again every garp_refresh; the core
// decides when (core/vip-refresh.ts), and the daemon wakes for it (deadline.ts).
import assert from "node:assert/strict"
import { test } from "node:test"
import { nextDeadline } from "../../agent/src/core/deadline.ts"
import { step } from "../../agent/src/core/reducer.ts"
import type { AgentState, Output } from "../../agent/src/core/types.ts"
import { settledCluster } from "../support/core-node.ts"

const primaryHoldingVip = (garpRefreshMs: number | undefined): AgentState => {
  const s = settledCluster(garpRefreshMs === undefined ? {} : { garpRefreshMs }).primary
  assert.equal(s.local.vip.held, true, "db1 holds the VIP")
  assert.equal(s.config.garpRefreshMs, garpRefreshMs)
  return { ...s, nextGarpRefreshAt: null }
}

const refreshes = (outputs: ReadonlyArray<Output>): number =>
  outputs.filter((o) => o._tag === "Vip" && o.op === "refresh").length

/** Steps ticks `everyMs` apart for `forMs`; counts the refreshes asked for. */
const run = (s: AgentState, forMs: number, everyMs = 250) => {
  let state = s
  let n = 0
  for (let t = everyMs; t <= forMs; t += everyMs) {
    const r = step(state, { _tag: "Tick", now: s.now + t, random: 0.5 })
    state = r.state
    n += refreshes(r.outputs)
  }
  return { state, refreshes: n }
}

test("the holder of the VIP asks for a gratuitous ARP burst every garp_refresh, the first one a period after it took the VIP", () => {
  const s = primaryHoldingVip(3_000)
  const first = step(s, { _tag: "Tick", now: s.now + 10, random: 0.5 })
  assert.equal(refreshes(first.outputs), 0, "none at once: acquiring the VIP announced it")
  assert.equal(first.state.nextGarpRefreshAt, s.now + 10 + 3_000)
  assert.ok(
    nextDeadline(first.state) <= s.now + 10 + 3_000,
    "the daemon is woken by the refresh at the latest",
  )
  assert.equal(run(first.state, 9_000).refreshes, 3)
})

test("no refresh without a vip section, while the VIP is kept only for a handover, or without the VIP", () => {
  assert.equal(run(primaryHoldingVip(undefined), 9_000).refreshes, 0)
  const s = primaryHoldingVip(3_000)
  const handover = { term: s.hard.term, until: s.now + 60_000, announced: false }
  // A handover is ended by the reconcile loop once the node is not certainly read-only: this
  // one is writable, so it ends at once; what matters is that no refresh comes while it lasts.
  const during = step(
    { ...s, vipHandover: handover },
    { _tag: "Tick", now: s.now + 10, random: 0.5 },
  )
  assert.equal(refreshes(during.outputs), 0)
  const released = { ...s, local: { ...s.local, vip: { ...s.local.vip, held: false } } }
  const r = run(released, 9_000)
  assert.equal(r.refreshes, 0)
  assert.equal(r.state.nextGarpRefreshAt, null)
})
