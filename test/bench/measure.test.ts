// The benchmark's interval definitions on hand-made logs (no lab needed):
//   bash scripts/node24.sh --test test/bench/measure.test.ts
import assert from "node:assert/strict"
import { test } from "node:test"
import {
  cpuPercent,
  failoverTimes,
  heapAllocKiBPerSecond,
  loopDelayMs,
  machineBusyTicks,
  parseAgentLog,
  parseTraceGc,
  quantile,
  rssMiB,
  statTicks,
  switchoverBlocks,
  switchoverPhases,
  writeBlockMs,
} from "./measure.ts"

const T0 = Date.parse("2026-11-22T06:00:00.000Z")
const line = (ms: number, event: string, msg = "") =>
  JSON.stringify({ level: 30, time: new Date(T0 + ms).toISOString(), event, msg })
const acks = (...ts: number[]) => ({ acked: ts.map((t, i) => ({ id: i, t: T0 + t })), errors: 0 })

test("a failover's phases come from the first lines after the fault", () => {
  const db1 = parseAgentLog(
    "db1",
    [
      line(-5000, "pre-vote", "bootstrap"),
      line(-4990, "elected"),
      "not json",
      line(300, "mysqld-failed"),
      line(310, "restart-failed", "attempt 1"),
      line(330, "restart-failed", "attempt 2"),
      line(350, "resigned"),
    ].join("\n"),
  )
  const db2 = parseAgentLog(
    "db2",
    [
      line(360, "primary-resigned"),
      line(1100, "pre-vote"),
      line(1105, "election"),
      line(1130, "elected"),
      line(1190, "vip-acquired"),
      line(1191, "promoted"),
    ].join("\n"),
  )
  const t = failoverTimes([...db2, ...db1], acks(-20, 0, 1400, 1420), T0 + 10)
  assert.deepEqual(t, {
    detectionMs: 290,
    detectedBy: "db1 mysqld-failed",
    waitMs: 800,
    electionMs: 30,
    promotionMs: 61,
    newPrimary: "db2",
    vipMoveMs: 210,
    faultToAckMs: 1390,
    afterRestartGaveUpMs: 1070,
  })
})

test("an election-status line counts as detection only when it says an election is due", () => {
  const lines = parseAgentLog(
    "db3",
    [
      line(100, "election-status", "db1 leads term 1"),
      line(3900, "election-status", "election due (election)"),
    ].join("\n"),
  )
  assert.equal(failoverTimes(lines, acks(), T0).detectionMs, 3900)
})

test("write blocks: the longest gap ending in the window, clipped at its start", () => {
  const log = acks(0, 20, 40, 900, 920, 5000, 5020, 5700, 5720)
  assert.equal(writeBlockMs(log, T0 + 100), 4080)
  assert.equal(writeBlockMs(log, T0 + 100, T0 + 4000), 800)
  const lines = parseAgentLog(
    "db1",
    [line(50, "switchover", "to db2 requested"), line(5030, "switchover", "to db1 requested")].join(
      "\n",
    ),
  )
  assert.deepEqual(switchoverBlocks(lines, log, T0 + 45), [4080, 670])
  const more = parseAgentLog(
    "db2",
    [line(600, "transfer"), line(880, "vip-acquired"), line(890, "promoted")].join("\n"),
  )
  assert.deepEqual(switchoverPhases([...lines, ...more], log, T0 + 45), [
    { blockMs: 4080, drainMs: 550, handoverMs: 290, vipMoveMs: 20 },
    { blockMs: 670 },
  ])
})

test("quantiles are nearest-rank", () => {
  assert.equal(quantile([5, 1, 3, 2, 4], 0.5), 3)
  assert.equal(quantile([5, 1, 3, 2, 4], 0.95), 5)
  assert.equal(quantile([1, 2], 0.5), 1)
  assert.ok(Number.isNaN(quantile([], 0.5)))
})

test("CPU ticks and RSS from /proc", () => {
  const stat =
    "1234 (node (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 11 0 100 1000 5000"
  assert.equal(statTicks(stat), 300)
  assert.equal(cpuPercent(100, 160, 60_000, 100), 1)
  assert.equal(rssMiB("Name:\tnode\nVmRSS:\t   81920 kB\n"), 80)
})

test("heap allocation from --trace-gc lines: in use before each collection minus what the one before left, over the time between", () => {
  const gcs = parseTraceGc(
    [
      "[4242:0x2a5e3000]     1000 ms: Scavenge 4.8 (5.8) -> 3.9 (6.8) MB, pooled: 0 MB, 0.40 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ",
      line(1500, "heartbeat"),
      "[4242:0x2a5e3000]     2000 ms: Scavenge 4.9 (6.8) -> 3.9 (6.8) MB, pooled: 0 MB, 0.23 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ",
      "[4242:0x2a5e3000]     3000 ms: Mark-Compact (reduce) 5.0 (6.8) -> 3.0 (5.8) MB, pooled: 0 MB, 2.10 / 0.00 ms  (+ 1.2 ms in 3 steps since start of marking, biggest step 0.5 ms, walltime since start of marking 40 ms) finalize incremental marking via task; GC in old space requested",
      "[4242:0x2a5e3000]     5000 ms: Scavenge 5.0 (5.8) -> 4.1 (6.8) MB, pooled: 0 MB, 0.30 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ",
      "not a collection: 9000 ms: Scavenge 1.0 (1.0) -> 0.5 (1.0) MB",
    ].join("\n"),
  )
  assert.deepEqual(
    gcs.map((g) => [g.ms, g.beforeMiB, g.afterMiB]),
    [
      [1000, 4.8, 3.9],
      [2000, 4.9, 3.9],
      [3000, 5.0, 3.0],
      [5000, 5.0, 4.1],
    ],
  )
  // From the first: (4.9-3.9) + (5.0-3.9) + (5.0-3.0) = 4.1 MiB in 4 s.
  assert.ok(Math.abs((heapAllocKiBPerSecond(gcs, 0) as number) - (4.1 * 1024) / 4) < 1e-9)
  // From the third: 2.0 MiB in 2 s.
  assert.ok(Math.abs((heapAllocKiBPerSecond(gcs, 2) as number) - 1024) < 1e-9)
  assert.equal(heapAllocKiBPerSecond(gcs, 3), undefined, "one collection gives no interval")
  assert.equal(heapAllocKiBPerSecond([], 0), undefined)
  // An agent restarted inside the window: two processes' collections give no rate.
  const restarted = parseTraceGc(
    [
      "[4242:0x2a5e3000]     1000 ms: Scavenge 4.8 (5.8) -> 3.9 (6.8) MB, pooled: 0 MB, 0.40 / 0.00 ms",
      "[4242:0x2a5e3000]     2000 ms: Scavenge 4.9 (6.8) -> 3.9 (6.8) MB, pooled: 0 MB, 0.23 / 0.00 ms",
      "[5151:0x3b000000]     3000 ms: Scavenge 4.9 (6.8) -> 3.9 (6.8) MB, pooled: 0 MB, 0.23 / 0.00 ms",
    ].join("\n"),
  )
  assert.deepEqual(
    restarted.map((g) => g.pid),
    [4242, 4242, 5151],
  )
  assert.equal(heapAllocKiBPerSecond(restarted, 0), undefined)
  assert.ok(heapAllocKiBPerSecond(restarted.slice(0, 2), 0) !== undefined)
})

test("machineBusyTicks: user, nice, system, irq, softirq and steal of /proc/stat's first line", () => {
  const stat = "cpu  100 5 40 9000 70 3 2 1 0 0\ncpu0 50 2 20 4500 35 1 1 0 0 0\n"
  assert.equal(machineBusyTicks(stat), 151)
  assert.ok(Number.isNaN(machineBusyTicks("intr 1 2 3\n")))
})

test("the event-loop delay comes from the agent's /metrics page, in ms", () => {
  const page = [
    "# TYPE mha_event_loop_delay_seconds summary",
    'mha_event_loop_delay_seconds{quantile="0.5"} 0.0011',
    'mha_event_loop_delay_seconds{quantile="0.99"} 0.0123',
    "mha_event_loop_delay_seconds_sum 1.5",
    "mha_event_loop_delay_max_seconds 0.0456",
  ].join("\n")
  const d = loopDelayMs(page)
  assert.ok(Math.abs(d.p99 - 12.3) < 1e-9 && Math.abs(d.max - 45.6) < 1e-9)
  assert.ok(Number.isNaN(loopDelayMs("mha_up 1").p99), "a page without it gives NaN")
})
