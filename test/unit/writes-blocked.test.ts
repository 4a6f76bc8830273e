// "Writes are blocked" (agent/src/core/writes-blocked.ts): the primary's own
// probe shows fewer semi-sync replicas connected than the acknowledgements a
// commit waits for. Reported after a grace period in status, /health, a
// metric and the on_writes_blocked / on_writes_unblocked hooks.
import assert from "node:assert/strict"
import { describe, test } from "node:test"
import { renderStatus } from "../../agent/src/cli/render.ts"
import type { Outputs } from "../../agent/src/core/outputs.ts"
import type { AgentState, MysqlProbe } from "../../agent/src/core/types.ts"
import {
  WRITES_BLOCKED_GRACE_MS,
  watchWritesBlocked,
  writesBlockedNow,
} from "../../agent/src/core/writes-blocked.ts"
import { answerHttp } from "../../agent/src/daemon/http.ts"
import { renderMetrics } from "../../agent/src/daemon/metrics.ts"
import { statusView } from "../../agent/src/daemon/status-view.ts"
import { activeState, standbyState } from "./daemon-states.ts"
import { parsePromText, sampleValue } from "./prom-text.ts"

const withProbe = (s: AgentState, over: Partial<MysqlProbe>, now = s.now): AgentState => ({
  ...s,
  now,
  local: { ...s.local, probe: { ...(s.local.probe as MysqlProbe), ...over } },
})

const blockedProbe = { semiSyncClients: 1, semiSyncWaitCount: 2, semiSyncWaiters: 3 }

/** Feeds the probe at `now` and returns the state and what it emitted. */
const watch = (s: AgentState, over: Partial<MysqlProbe>, now: number) => {
  const out: Outputs = []
  const next = watchWritesBlocked(withProbe(s, over, now), out)
  return { s: next, out }
}

const hooksOf = (out: Outputs) => out.flatMap((o) => (o._tag === "RunHook" ? [o] : []))

describe("writes blocked", () => {
  test("the condition: writable primary, semi-sync on, fewer clients than the wait count", () => {
    const s = activeState()
    assert.deepEqual(writesBlockedNow(withProbe(s, blockedProbe)), {
      needed: 2,
      connected: 1,
      waiting: 3,
    })
    assert.equal(writesBlockedNow(withProbe(s, { ...blockedProbe, semiSyncClients: 2 })), null)
    // Semi-sync off as a source (mode on after its timeout): commits go on, not blocked.
    assert.equal(writesBlockedNow(withProbe(s, { ...blockedProbe, semiSyncSourceOn: false })), null)
    assert.equal(writesBlockedNow(withProbe(s, { ...blockedProbe, superReadOnly: true })), null)
    // Unknown counts (an older probe): nothing is claimed.
    assert.equal(writesBlockedNow(withProbe(s, { semiSyncWaitCount: 2 })), null)
    // A replica is never the one to judge it.
    assert.equal(writesBlockedNow(withProbe(standbyState(), blockedProbe)), null)
  })

  test("reported once after the grace period, with a hook; and its end once", () => {
    const t0 = activeState().now
    let r = watch(activeState(), blockedProbe, t0)
    assert.equal(r.s.writesBlocked?.reported, false)
    assert.equal(hooksOf(r.out).length, 0, "not during the grace period")
    r = watch(r.s, blockedProbe, t0 + WRITES_BLOCKED_GRACE_MS - 1)
    assert.equal(hooksOf(r.out).length, 0)
    r = watch(r.s, blockedProbe, t0 + WRITES_BLOCKED_GRACE_MS)
    const [hook] = hooksOf(r.out)
    assert.equal(hook?.hook, "on_writes_blocked")
    assert.equal(hook?.env.MHA_ACKS_NEEDED, "2")
    assert.equal(hook?.env.MHA_REPLICAS_CONNECTED, "1")
    assert.match(
      hook?.env.MHA_REASON ?? "",
      /^writes are blocked: 2 acknowledgements needed, 1 replica connected \(3 commits waiting\)$/,
    )
    assert.ok(r.out.some((o) => o._tag === "Event" && o.event === "writes-blocked"))
    const blocked = r.s
    r = watch(blocked, blockedProbe, t0 + WRITES_BLOCKED_GRACE_MS + 500)
    assert.equal(hooksOf(r.out).length, 0, "reported once")

    // status, /health and the metric say it.
    const view = statusView(blocked, "prod")
    assert.match(view.writesBlocked ?? "", /^writes are blocked: 2 acknowledgements needed/)
    const text = renderStatus(view)
    assert.match(text, /^prod: WRITES BLOCKED/)
    assert.match(text, /primary db1: writes are blocked: 2 acknowledgements needed, 1 replica/)
    const health = answerHttp(
      { cluster: "prod", node: "db1", state: blocked, loopAgeMs: 10, metrics: () => "" },
      "GET",
      "/health",
    )
    assert.equal(health.status, 503)
    assert.match(health.body, /writes are blocked: 2 acknowledgements needed, 1 replica connected/)
    const families = parsePromText(renderMetrics({ cluster: "prod", node: "db1", state: blocked }))
    assert.equal(sampleValue(families, "mha_writes_blocked", {}), 1)
    assert.equal(sampleValue(families, "mha_semi_sync_acks_needed", {}), 2)
    assert.equal(sampleValue(families, "mha_semi_sync_replicas_connected", {}), 1)

    // A replica reconnects: the end is reported once.
    r = watch(blocked, { ...blockedProbe, semiSyncClients: 2, semiSyncWaiters: 0 }, t0 + 9_000)
    const [end] = hooksOf(r.out)
    assert.equal(end?.hook, "on_writes_unblocked")
    assert.equal(r.s.writesBlocked, null)
    assert.equal(statusView(r.s, "prod").writesBlocked, undefined)
  })

  test("a short gap (replicas repointing after a promotion) is never reported", () => {
    const t0 = activeState().now
    let r = watch(activeState(), blockedProbe, t0)
    r = watch(r.s, { ...blockedProbe, semiSyncClients: 2 }, t0 + 1_000)
    assert.equal(r.s.writesBlocked, null)
    assert.equal(hooksOf(r.out).length, 0)
  })

  test("replicas and witnesses show the primary's report; witnesses are WITNESS, not UNKNOWN/FAIL", () => {
    const s = standbyState()
    const leader = s.peers.get("db1")
    assert.ok(leader)
    const told: AgentState = {
      ...s,
      config: {
        ...s.config,
        members: [
          ...s.config.members,
          { name: "w1", priority: 0, promotable: false, kind: "witness" },
        ],
      },
      peers: new Map([
        ...s.peers,
        [
          "db1",
          {
            ...leader,
            writesBlocked:
              "writes are blocked: 2 acknowledgements needed, 1 replica connected (0 commits waiting)",
          },
        ],
        ["w1", { ...leader, lastHeardAt: s.now - 100, role: null, healthy: false }],
      ]),
    }
    const view = statusView(told, "prod")
    assert.match(view.writesBlocked ?? "", /^writes are blocked/)
    const w1 = view.members.find((m) => m.name === "w1")
    assert.equal(w1?.role, "WITNESS")
    assert.equal(w1?.health, "OK")
    const health = answerHttp(
      { cluster: "prod", node: "db2", state: told, loopAgeMs: 10, metrics: () => "" },
      "GET",
      "/health",
    )
    assert.equal(health.status, 200, "the replica's own mysqld is fine")
    assert.match(health.body, /the primary db1 says writes are blocked/)
  })
})
