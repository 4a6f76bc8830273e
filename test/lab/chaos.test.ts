// The chaos run (test/chaos): first, without a lab, that its fault schedule
// is a pure function of the seed and keeps the rules (at most two faults at
// once, each undone after its duration); then a short run on a real 3-host
// cluster with a fixed seed whose schedule causes failovers, asserting the
// invariants of lab.md.
import assert from "node:assert/strict"
import { test } from "node:test"
import { formatReport, runChaos } from "../chaos/chaos.ts"
import {
  formatSchedule,
  generateSchedule,
  hostsOf,
  MAX_CONCURRENT,
  type ScheduleOptions,
  scheduleViolations,
} from "../chaos/schedule.ts"

/**
 * The CI seed: its 3-minute schedule on 3 hosts aims six failover-causing
 * faults at the primary (isolate, stop or pause its mysqld); three runs each
 * saw 5 failovers (terms 1 -> 10), 4 primary changes seen by the client.
 */
const CI_SEED = 7

const options = (seed: number, hosts = 3, minutes = 3): ScheduleOptions => ({
  seed,
  totalMs: minutes * 60_000,
  hosts,
})

test("the chaos schedule is a pure function of the seed and keeps the rules", () => {
  const seeds = Array.from({ length: 200 }, (_, i) => i)
  const printed = new Set<string>()
  const tags = new Set<string>()
  for (const hosts of [3, 5]) {
    for (const seed of seeds) {
      const o = options(seed, hosts)
      const a = generateSchedule(o)
      const b = generateSchedule(o)
      assert.deepEqual(a, b, `seed ${seed}: the same schedule twice`)
      assert.equal(formatSchedule(o, a), formatSchedule(o, b))
      assert.deepEqual(scheduleViolations(o, a), [], `seed ${seed}, ${hosts} hosts`)
      assert.ok(a.length >= 5, `seed ${seed}: ${a.length} faults in 3 minutes`)
      printed.add(`${hosts} ${JSON.stringify(a)}`)
      for (const e of a)
        tags.add(`${e.fault._tag}${"process" in e.fault ? `-${e.fault.process}` : ""}`)
      // Concurrency, checked independently of scheduleViolations: sweep the start and end events.
      const events = a
        .flatMap((e) => [
          { t: e.atMs, d: 1, w: hostsOf(e.fault).length || hosts },
          { t: e.atMs + e.durationMs, d: -1, w: -(hostsOf(e.fault).length || hosts) },
        ])
        .sort((x, y) => x.t - y.t || x.d - y.d)
      let active = 0
      let width = 0
      for (const ev of events) {
        active += ev.d
        width += ev.w
        assert.ok(active <= MAX_CONCURRENT, `seed ${seed}: ${active} faults active at once`)
        assert.ok(width <= hosts, `seed ${seed}: ${width} hosts taken of ${hosts}`)
      }
    }
  }
  assert.equal(printed.size, seeds.length * 2, "different seeds give different schedules")
  assert.deepEqual(
    [...tags].sort(),
    [
      "CutAgent",
      "CutOneWay",
      "CutReplication",
      "Isolate",
      "KillAgent",
      "KillMysqld",
      "Loss",
      "Pause-agent",
      "Pause-mysqld",
      "StopMysqld",
    ],
    "every fault of the lab's list is drawn",
  )
  // Every fault carries the undo the rules ask for.
  for (const e of generateSchedule(options(CI_SEED))) {
    const expected = {
      KillMysqld: "SelfHealing",
      StopMysqld: "Inject:StartMysqld",
      Pause: "Inject:Resume",
      KillAgent: "RestartAgent",
      Isolate: "Inject:Heal",
      CutOneWay: "Inject:Heal",
      CutAgent: "Inject:Heal",
      CutReplication: "Inject:Heal",
      Loss: "Inject:Heal",
    }[e.fault._tag as string]
    const got = e.undo._tag === "Inject" ? `Inject:${e.undo.fault._tag}` : e.undo._tag
    assert.equal(got, expected, `${e.fault._tag} is undone by ${expected}`)
  }
})

test(`chaos: 3 minutes of random faults on 3 hosts (seed ${CI_SEED}) keep the invariants`, {
  timeout: 12 * 60_000,
}, async () => {
  const result = await runChaos({ seed: CI_SEED, minutes: 3, hosts: 3 })
  console.log(formatReport(result))
  assert.deepEqual(result.problems, [], `the invariants hold (logs: ${result.logs ?? "-"})`)
  assert.equal(result.lostWrites, 0)
  assert.equal(result.splitBrainRounds, 0)
  assert.ok(result.applied >= 5, `${result.applied} faults applied`)
  const failovers = result.promotions.filter((p) => p.includes("(election)")).length
  assert.ok(
    failovers >= 2,
    `the seed's schedule exercises failovers (${failovers}): ${result.promotions.join(", ")}`,
  )
})
