// "Semi-sync fell back to asynchronous" (agent/src/core/semi-sync-fallback.ts):
// the primary's own probe shows rpl_semi_sync_source_enabled ON but
// Rpl_semi_sync_source_status OFF. Reported after a grace period (alarm.ts,
// shared with writes-blocked.ts) in the log, status (its own and the
// replicas'), the mha_semi_sync_fallback metric and the on_semi_sync_fallback
// / on_semi_sync_restored hooks; its end once.
import assert from "node:assert/strict"
import { describe, test } from "node:test"
import { renderStatus } from "../../agent/src/cli/render.ts"
import type { Outputs } from "../../agent/src/core/outputs.ts"
import { step } from "../../agent/src/core/reducer.ts"
import {
  SEMI_SYNC_FALLBACK_GRACE_MS,
  semiSyncFallbackNow,
  watchSemiSyncFallback,
} from "../../agent/src/core/semi-sync-fallback.ts"
import { observation } from "../../agent/src/core/status.ts"
import type { AgentState, MysqlProbe } from "../../agent/src/core/types.ts"
import { renderMetrics } from "../../agent/src/daemon/metrics.ts"
import { statusView } from "../../agent/src/daemon/status-view.ts"
import { answering } from "../support/probe-answer.ts"
import { activeState, standbyState } from "./daemon-states.ts"
import { parsePromText, sampleValue } from "./prom-text.ts"

const onMode = (s: AgentState): AgentState => ({ ...s, config: { ...s.config, semiSync: "on" } })

const withProbe = (s: AgentState, over: Partial<MysqlProbe>, now = s.now): AgentState => ({
  ...s,
  now,
  local: { ...s.local, probe: { ...(s.local.probe as MysqlProbe), ...over } },
})

/** What MySQL shows after a commit timed out waiting: enabled, status OFF, no client. */
const fallenBack = {
  semiSyncSourceEnabled: true,
  semiSyncSourceOn: false,
  semiSyncClients: 0,
  semiSyncWaitCount: 1,
}
const restored = { ...fallenBack, semiSyncSourceOn: true, semiSyncClients: 2 }

const watch = (s: AgentState, over: Partial<MysqlProbe>, now: number) => {
  const out: Outputs = []
  const next = watchSemiSyncFallback(withProbe(s, over, now), out)
  return { s: next, out }
}

const hooksOf = (out: Outputs) => out.flatMap((o) => (o._tag === "RunHook" ? [o] : []))
const eventsOf = (out: Outputs) => out.flatMap((o) => (o._tag === "Event" ? [o.event] : []))

describe("semi-sync fallback", () => {
  test("the condition: writable primary, semi-sync enabled as a source but its status OFF", () => {
    const s = onMode(activeState())
    assert.deepEqual(semiSyncFallbackNow(withProbe(s, fallenBack)), { needed: 1, connected: 0 })
    assert.equal(semiSyncFallbackNow(withProbe(s, restored)), null, "waiting as it should")
    // Not enabled at all (semi_sync off, or not probed by an older prober): nothing claimed.
    assert.equal(
      semiSyncFallbackNow(withProbe(s, { ...fallenBack, semiSyncSourceEnabled: false })),
      null,
    )
    const { semiSyncSourceEnabled: _, ...unprobed } = fallenBack
    assert.equal(semiSyncFallbackNow(withProbe(s, unprobed)), null)
    assert.equal(
      semiSyncFallbackNow(
        withProbe({ ...s, config: { ...s.config, semiSync: "off" } }, fallenBack),
      ),
      null,
    )
    assert.equal(semiSyncFallbackNow(withProbe(s, { ...fallenBack, superReadOnly: true })), null)
    // A replica is never the one to judge it.
    assert.equal(semiSyncFallbackNow(withProbe(onMode(standbyState()), fallenBack)), null)
  })

  test("reported once after the grace period (event, hook, status, metric); its end once", () => {
    const t0 = activeState().now
    let r = watch(onMode(activeState()), fallenBack, t0)
    assert.equal(r.s.semiSyncFallback?.reported, false)
    r = watch(r.s, fallenBack, t0 + SEMI_SYNC_FALLBACK_GRACE_MS - 1)
    assert.equal(hooksOf(r.out).length, 0, "not during the grace period")
    r = watch(r.s, fallenBack, t0 + SEMI_SYNC_FALLBACK_GRACE_MS)
    const [hook] = hooksOf(r.out)
    assert.equal(hook?.hook, "on_semi_sync_fallback")
    assert.equal(hook?.env.MHA_REPLICAS_CONNECTED, "0")
    assert.match(hook?.env.MHA_REASON ?? "", /^semi-sync fell back to asynchronous replication/)
    assert.deepEqual(eventsOf(r.out), ["semi-sync-fallback"])
    const fallen = r.s
    r = watch(fallen, fallenBack, t0 + SEMI_SYNC_FALLBACK_GRACE_MS + 500)
    assert.equal(hooksOf(r.out).length, 0, "reported once")

    const view = statusView(fallen, "prod")
    assert.match(view.semiSyncFallback ?? "", /^semi-sync fell back to asynchronous/)
    const text = renderStatus(view)
    assert.match(text, /^prod: DEGRADED/)
    assert.match(text, /^primary db1: semi-sync fell back to asynchronous replication/m)
    assert.match(observation(fallen)?.semiSyncFallback ?? "", /^semi-sync fell back/)
    const families = parsePromText(renderMetrics({ cluster: "prod", node: "db1", state: fallen }))
    assert.equal(sampleValue(families, "mha_semi_sync_fallback", {}), 1)
    assert.equal(sampleValue(families, "mha_semi_sync_active", {}), 0)

    // A replica caught up: MySQL switched the status back on.
    r = watch(fallen, restored, t0 + 9_000)
    const [end] = hooksOf(r.out)
    assert.equal(end?.hook, "on_semi_sync_restored")
    assert.match(end?.env.MHA_REASON ?? "", /^semi-sync restored/)
    assert.deepEqual(eventsOf(r.out), ["semi-sync-restored"])
    assert.equal(r.s.semiSyncFallback, null)
    assert.equal(statusView(r.s, "prod").semiSyncFallback, undefined)
    const after = parsePromText(renderMetrics({ cluster: "prod", node: "db1", state: r.s }))
    assert.equal(sampleValue(after, "mha_semi_sync_fallback", {}), 0)
  })

  test("a short fallback (a new primary before its replicas repoint) is never reported", () => {
    const t0 = activeState().now
    let r = watch(onMode(activeState()), fallenBack, t0)
    r = watch(r.s, restored, t0 + 1_000)
    assert.equal(r.s.semiSyncFallback, null)
    assert.equal(hooksOf(r.out).length, 0)
  })

  test("the reducer watches it on every local probe", () => {
    const s0 = onMode(activeState())
    const probe = { ...(s0.local.probe as MysqlProbe), ...fallenBack }
    let s = step(s0, {
      _tag: "LocalProbed",
      ...answering(s0),
      now: s0.now + 100,
      result: { _tag: "Up", mysql: probe },
    }).state
    const r = step(s, {
      _tag: "LocalProbed",
      ...answering(s),
      now: s0.now + 100 + SEMI_SYNC_FALLBACK_GRACE_MS,
      result: { _tag: "Up", mysql: probe },
    })
    s = r.state
    assert.equal(s.semiSyncFallback?.reported, true)
    assert.ok(r.outputs.some((o) => o._tag === "RunHook" && o.hook === "on_semi_sync_fallback"))
  })

  test("replicas show the primary's report in status", () => {
    const s = standbyState()
    const leader = s.peers.get("db1")
    assert.ok(leader)
    const told: AgentState = {
      ...s,
      peers: new Map([
        ...s.peers,
        ["db1", { ...leader, semiSyncFallback: "semi-sync fell back to asynchronous replication" }],
      ]),
    }
    const view = statusView(told, "prod")
    assert.equal(view.semiSyncFallback, "semi-sync fell back to asynchronous replication")
    assert.match(renderStatus(view), /^primary db1: semi-sync fell back/m)
  })
})
