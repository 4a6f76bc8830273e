// Issue 12's at-rest targets as the report judges them (no lab needed):
//   bash scripts/node24.sh --test test/bench/report.test.ts
import assert from "node:assert/strict"
import { test } from "node:test"
import { issue12Targets, type RunRecord } from "./report.ts"

const rest = (
  scenario: string,
  commit: string,
  agents: ReadonlyArray<{ cpu: number; rssMiB: number; first?: number; p99?: number }>,
): RunRecord => ({
  scenario,
  run: 1,
  commit,
  at: "2026-12-07T11:00:00.000Z",
  loadavg: [0.1],
  ok: true,
  agents: agents.map((a, i) => ({
    host: `db${i + 1}`,
    cpuPercent: a.cpu,
    rssMiB: a.rssMiB,
    ...(a.first === undefined ? {} : { firstMinuteCpuPercent: a.first }),
    ...(a.p99 === undefined ? {} : { loopDelayP99Ms: a.p99, loopDelayMaxMs: a.p99 * 2 }),
  })),
})

test("issue 12: met only when every agent of every steady-state run of a commit is within both limits", () => {
  const rows = issue12Targets([
    rest("rest-7-bin-warm180", "aaa (packaged)", [
      { cpu: 0.55, rssMiB: 84, first: 0.7, p99: 4 },
      { cpu: 0.8, rssMiB: 91.5, first: 0.9, p99: 6.5 },
    ]),
    rest("rest-7-bin-warm180", "aaa (packaged)", [{ cpu: 0.6, rssMiB: 85 }]),
    // One agent over the CPU limit in a second run of another commit.
    rest("rest-7-bin-warm180", "bbb (packaged)", [{ cpu: 0.6, rssMiB: 85 }]),
    rest("rest-7-bin-warm180", "bbb (packaged)", [{ cpu: 0.81, rssMiB: 85 }]),
    // 92 MiB is 96.5 MB: over the RSS limit.
    rest("rest-3-bin-warm180", "ccc (packaged)", [{ cpu: 0.5, rssMiB: 92 }]),
    // The first minute's rows (no "-warm180") are not judged.
    rest("rest-7-bin", "ddd (packaged)", [{ cpu: 2.5, rssMiB: 200 }]),
  ])
  const row = (commit: string) => rows.find((r) => r.includes(`| ${commit} |`)) ?? ""
  assert.match(row("aaa (packaged)"), /\*\*met\*\*/)
  assert.match(row("aaa (packaged)"), /2 runs, 3 agents/)
  assert.match(
    row("aaa (packaged)"),
    /first minute after start \(median \/ max\): 0\.70 \/ 0\.90 %/,
  )
  const delay = rows.find((r) => r.includes("event-loop delay") && r.includes("| aaa")) ?? ""
  assert.match(delay, /max 6\.5 ms \(longest single delay 13\.0 ms\).*\*\*met\*\*/)
  assert.ok(
    !rows.some((r) => r.includes("event-loop delay") && r.includes("| bbb")),
    "no delay recorded, no row",
  )
  assert.match(row("bbb (packaged)"), /\*\*missed\*\*/)
  assert.match(row("bbb (packaged)"), /max 0\.81 %/)
  assert.match(row("ccc (packaged)"), /3 members.*\*\*missed\*\*/)
  assert.match(row("ccc (packaged)"), /RSS max 96\.5 MB/)
  assert.equal(row("ddd (packaged)"), "", "rows outside the steady state are not judged")
})

test("issue 12: no steady-state rows, no section", () => {
  assert.deepEqual(issue12Targets([rest("rest-7-bin", "x", [{ cpu: 0.5, rssMiB: 80 }])]), [])
})
