// HAProxy (Debian's) as the real load balancer in front of a lab cluster:
// its write frontend checks every agent's /primary (test/lab/haproxy.ts, after
// packaging/haproxy.cfg.example)
// and a client writes through it instead of the VIP. The primary's mysqld is
// stopped so that it cannot restart: the agents fail over, HAProxy follows
// /primary to the new primary by itself, the client keeps writing with no
// manual step, and no acknowledged write is lost. Reports the downtime.
import assert from "node:assert/strict"
import { join } from "node:path"
import { test } from "node:test"
import { LabCluster } from "./cluster.ts"
import { sleep, waitFor } from "./exec.ts"
import { backendStates, startHaproxy, startHaproxyWriter } from "./haproxy.ts"
import { missingAckedWrites, readWriterLog, writeDowntimeMs } from "./invariants.ts"

test("HAProxy follows /primary across a failover: the client keeps writing, nothing lost", {
  timeout: 300_000,
}, async () => {
  const c = await LabCluster.up({ timings: { restart_timeout: "10s", apply_timeout: "10s" } })
  let failed = true
  let sampling = true
  try {
    await startHaproxy(c.lab)
    const primary = await c.waitForPrimary(10_000)
    await waitFor(
      `HAProxy to see only ${primary} UP`,
      async () => {
        const s = await backendStates(c.lab).catch(() => ({}) as Record<string, string>)
        return (
          Object.entries(s).every(([n, st]) => (n === primary) === st.startsWith("UP")) &&
          s[primary] !== undefined
        )
      },
      20_000,
      200,
    )

    // Sample HAProxy's view all along: never two servers UP in the write backend.
    const samples: Array<{ t: number; up: string[] }> = []
    const sampler = (async () => {
      while (sampling) {
        const s = await backendStates(c.lab).catch(() => undefined)
        if (s !== undefined)
          samples.push({
            t: Date.now(),
            up: Object.entries(s)
              .filter(([, st]) => st.startsWith("UP"))
              .map(([n]) => n),
          })
        await sleep(100)
      }
    })()

    const out = join(c.lab.runDir(), "writer-haproxy.ndjson")
    await startHaproxyWriter(c.lab, out)
    await waitFor(
      "the first acknowledged writes through HAProxy",
      () => readWriterLog(out).acked.length > 20,
      30_000,
    )

    const faultAt = Date.now()
    await c.lab.inject({ _tag: "StopMysqld", host: primary })
    const next = await c.waitForPrimary(60_000, primary)
    assert.notEqual(next, primary)
    await waitFor(
      "acknowledged writes through HAProxy after the failover",
      () => readWriterLog(out).acked.filter((a) => a.t > faultAt).length > 20,
      30_000,
    )
    await sleep(1_000)
    await c.lab.stopProcess("client", "writer-haproxy")
    sampling = false
    await sampler

    const log = readWriterLog(out)
    const missing = await missingAckedWrites(c.lab, next, log)
    assert.deepEqual(missing, [], "every write acknowledged through HAProxy is on the new primary")
    const downtime = writeDowntimeMs(log, faultAt)
    const firstUp = samples.find((s) => s.t > faultAt && s.up.includes(next))
    const firstDown = samples.find((s) => s.t > faultAt && !s.up.includes(primary))
    const doubles = samples.filter((s) => s.up.length > 1)
    assert.deepEqual(
      doubles,
      [],
      `HAProxy never had two write servers UP: ${JSON.stringify(doubles.map((d) => ({ ms: d.t - faultAt, up: d.up })))}`,
    )
    assert.ok(
      samples.filter((s) => s.t > faultAt + 2_000).every((s) => !s.up.includes(primary)),
      "the old primary stays DOWN",
    )
    const vip = await c.check(faultAt)
    assert.deepEqual(vip.problems, [], "the invariants hold")
    console.log(
      `HAProxy failover ${primary} -> ${next}: client-observed write downtime through HAProxy ${downtime} ms ` +
        `(${log.acked.length} acknowledged, ${log.errors} failed attempts, none lost); ` +
        `HAProxy marked ${primary} DOWN after ${firstDown === undefined ? "?" : firstDown.t - faultAt} ms ` +
        `and ${next} UP after ${firstUp === undefined ? "?" : firstUp.t - faultAt} ms; ` +
        `through the VIP: ${vip.downtimeMs} ms`,
    )
    failed = false
  } finally {
    sampling = false
    if (failed) console.log(`logs kept in ${c.keepLogs("haproxy")}`)
    await c.lab.stopProcess("client", "haproxy").catch(() => {})
    await c.down()
  }
})
