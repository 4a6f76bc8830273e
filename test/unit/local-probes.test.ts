// Local probes by number (core/local-probes.ts): an answer counts as news of
// what happened before its probe was sent, never of what happened while it
// was out. Issue 11 item 7: any answer used to clear every awaited effect, so
// a probe sent before a restart finished passed for its result.
import assert from "node:assert/strict"
import { test } from "node:test"
import type { AgentState, Input, LocalProbeResult, Output } from "../../agent/src/core/types.ts"
import { CoreNode, settledCluster } from "../support/core-node.ts"

/** The numbers of the local probes asked for in `outputs`. */
const probesIn = (outputs: ReadonlyArray<Output>): Array<number> =>
  outputs.flatMap((o) => (o._tag === "ProbeLocal" ? [o.probe] : []))

const answer =
  (s: AgentState, probe: number, result: LocalProbeResult) =>
  (now: number): Input => ({ _tag: "LocalProbed", now, incarnation: s.bootId, probe, result })

const down: LocalProbeResult = { _tag: "Down", reason: "connect ECONNREFUSED", hung: false }

test("probes are numbered in the order asked; an answer older than one taken in is dropped", () => {
  const { replica } = settledCluster()
  const n = new CoreNode(replica)
  const first = n.s.probes.next
  n.tick(replica.config.timings.probeIntervalMs)
  assert.deepEqual(probesIn(n.out), [first], "the periodic probe carries the next number")
  const up = replica.local.probe!
  // Two probes out (the periodic one, and one asked for by a routine: here by hand).
  const second = first + 1
  n.s = { ...n.s, probes: { ...n.s.probes, next: second + 1 } }
  n.feed(answer(n.s, second, { _tag: "Up", mysql: { ...up, uptimeSeconds: 1234 } }), 5)
  assert.equal(n.s.probes.answered, second)
  assert.equal(n.s.local.probe?.uptimeSeconds, 1234)
  // The first one's answer comes last: older data, dropped whole (mysqld is not marked down).
  n.feed(answer(n.s, first, down), 5)
  assert.equal(n.s.local.up, true, "a stale Down does not mark mysqld down")
  assert.equal(n.s.local.probe?.uptimeSeconds, 1234)
  // An answer from an earlier run of the decision loop: dropped too.
  n.feed((now) => ({ ...answer(n.s, second + 5, down)(now), incarnation: "an-earlier-run" }), 5)
  assert.equal(n.s.local.up, true)
  assert.equal(n.s.probes.answered, second)
})

test("after a restart, the answer of a probe sent before it finished does not count as its result: no second restart", () => {
  const { primary } = settledCluster()
  const t = primary.config.timings
  const n = new CoreNode(primary)
  // mysqld dies: Down answers until the routine restarts it.
  for (let i = 0; i < 10 && !n.out.some((o) => o._tag === "RestartMysqld"); i++) {
    n.tick(t.probeIntervalMs)
    const asked = probesIn(n.out).at(-1) ?? n.s.probes.next - 1
    n.feed(answer(n.s, asked, down), 1)
  }
  assert.equal(n.out.filter((o) => o._tag === "RestartMysqld").length, 1, "one restart issued")
  // A periodic probe goes out while the restart runs.
  n.out.length = 0
  n.tick(t.probeIntervalMs)
  const during = probesIn(n.out)
  assert.equal(during.length, 1)
  // The service manager reports mysqld started: the core probes at once, and waits for it.
  n.out.length = 0
  n.feed((now) => ({ _tag: "RestartDone", now, ok: true }), 10)
  const after = probesIn(n.out)
  assert.equal(after.length, 1)
  assert.ok(after[0]! > during[0]!)
  assert.equal(n.s.awaitingProbe.get("Restart"), after[0])
  // The probe sent during the restart answers Down (it read the server before it came up),
  // long enough after for a retry: it is no news of the restart, nothing is restarted again.
  n.out.length = 0
  n.feed(answer(n.s, during[0]!, down), 1_000)
  n.tick(10)
  assert.equal(n.out.filter((o) => o._tag === "RestartMysqld").length, 0, "no second restart")
  assert.equal(n.s.awaitingProbe.has("Restart"), true, "still waiting for the restart's own probe")
  // Its own probe answers Up: the restart is seen.
  n.feed(answer(n.s, after[0]!, { _tag: "Up", mysql: primary.local.probe! }), 10)
  assert.equal(n.s.awaitingProbe.has("Restart"), false)
  assert.equal(n.s.local.up, true)
})
