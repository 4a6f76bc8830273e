// A replica's relay log across a restart of its agent (core/relay-intact.ts):
// the agent records which mysqld process holds everything it received, and an
// agent that starts and finds that process still running needs no resync.
import assert from "node:assert/strict"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { test } from "node:test"
import pino from "pino"
import { mysqldStart } from "../../agent/src/adapters/host-boot.ts"
import {
  loadRelayIntact,
  makeRelayIntactRecorder,
  RELAY_INTACT_FILE,
} from "../../agent/src/adapters/relay-intact-file.ts"
import { initialState } from "../../agent/src/core/reducer.ts"
import { RECORD_AFTER_UPTIME_S, sameProcess } from "../../agent/src/core/relay-intact.ts"
import type { AgentState, MysqlProbe, Output } from "../../agent/src/core/types.ts"
import { dataMembers, World } from "../sim/world.ts"
import { answering } from "../support/probe-answer.ts"
import { stepWritten as step } from "../support/written-step.ts"

const running = (): World => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(8000)
  assert.equal(w.primary(), "db1")
  return w
}

const events = (outputs: ReadonlyArray<Output>, name: string) =>
  outputs.filter((o) => o._tag === "Event" && o.event === name)

/** db3's agent started afresh from its files, as after a crash of the agent alone. */
const restarted = (w: World): AgentState => {
  const n = w.node("db3")
  const r = step(initialState(n.state.config, "db3"), {
    _tag: "Start",
    now: n.state.now + 1000,
    hard: n.disk,
    bootId: "db3-again",
    random: 0.5,
    relayIntact: n.relayIntact,
  })
  assert.equal(r.state.local.resyncNeeded, true, "an agent that starts assumes a resync")
  return r.state
}

const probed = (s: AgentState, mysql: MysqlProbe) =>
  step(s, { _tag: "LocalProbed", ...answering(s), now: s.now + 10, result: { _tag: "Up", mysql } })

test("a replica's agent records its mysqld process once it ran long enough, once", () => {
  const w = running()
  const n = w.node("db3")
  assert.ok(n.relayIntact !== null, "recorded in the simulated file")
  assert.ok(sameProcess(n.relayIntact, n.state.local.probe!.started!))
  // Another probe of the same process records nothing again.
  const again = probed(n.state, n.state.local.probe!)
  assert.equal(
    again.outputs.filter((o) => o._tag === "RecordRelayIntact").length,
    0,
    "nothing new to record",
  )
  // A process that has not yet run RECORD_AFTER_UPTIME_S is not recorded.
  const fresh = probed(
    { ...n.state, local: { ...n.state.local, relayIntact: { recorded: null, atStart: null } } },
    {
      ...n.state.local.probe!,
      uptimeSeconds: RECORD_AFTER_UPTIME_S - 1,
      started: { boot: "b", sinceBootSeconds: 100 },
    },
  )
  assert.equal(fresh.outputs.filter((o) => o._tag === "RecordRelayIntact").length, 0)
})

test("an agent that starts beside the process it recorded: its relay log is intact, no resync", () => {
  const w = running()
  const s = restarted(w)
  const probe = w.node("db3").state.local.probe!
  const r = probed(s, probe)
  assert.equal(r.state.local.resyncNeeded, false)
  assert.equal(events(r.outputs, "relay-log-intact").length, 1)
  assert.equal(r.state.local.relayIntact.atStart, null, "checked once, at the first answer")
})

test("an agent that starts beside another mysqld process (it restarted meanwhile) resyncs", () => {
  const w = running()
  const s = restarted(w)
  const probe = w.node("db3").state.local.probe!
  const other = {
    ...probe,
    uptimeSeconds: 1,
    started: { ...probe.started!, sinceBootSeconds: probe.started!.sinceBootSeconds + 7 },
  }
  const r = probed(s, other)
  assert.equal(r.state.local.resyncNeeded, true)
  assert.equal(events(r.outputs, "relay-log-intact").length, 0)
  // Nor after a reboot of the host, whatever the times.
  const rebooted = probed(restarted(w), { ...probe, started: { ...probe.started!, boot: "x" } })
  assert.equal(rebooted.state.local.resyncNeeded, true)
})

test("a restart between two probes that both answered is seen by its start: resync", () => {
  const w = running()
  const s = w.node("db3").state
  const probe = s.local.probe!
  assert.equal(s.local.resyncNeeded, false)
  assert.equal(probe.replica?.ioRunning, true, "it was receiving")
  const r = probed(s, {
    ...probe,
    uptimeSeconds: 0,
    started: { ...probe.started!, sinceBootSeconds: probe.started!.sinceBootSeconds + 30 },
  })
  assert.equal(events(r.outputs, "mysqld-restarted").length, 1)
  assert.equal(r.state.local.resyncNeeded, true)
})

/** db3's agent restarts; right after, db1 (the primary's host: agent and mysqld) is cut off. */
const primaryLostAfterAgentRestart = (withFile: boolean): World => {
  const w = running()
  w.killAgent("db3", 500)
  if (!withFile) w.node("db3").relayIntact = null
  w.runUntil(w.now + 520)
  assert.equal(w.node("db3").agentUp, true)
  w.net.isolate("db1", w.names, ["agent", "mysql"])
  w.runUntil(w.now + 30_000)
  return w
}

test("simulator: a replica's agent restarts and the primary's host is lost right after: the other replica is elected", () => {
  const w = primaryLostAfterAgentRestart(true)
  assert.equal(w.primary(), "db2")
  // Without the file, db3 votes only for the lost primary until it has caught up with it:
  // never, so no quorum forms (the stall this removes).
  const stalled = primaryLostAfterAgentRestart(false)
  assert.equal(stalled.primary(), null)
  assert.ok(stalled.node("db3").trace.some((l) => /pre-vote-refused: .*relay logs/.test(l)))
})

test("the relay-intact file: missing or unreadable is none; a record survives a reload", async () => {
  const dir = mkdtempSync(join(tmpdir(), "relay-intact-"))
  const lines: string[] = []
  const log = pino({ level: "warn" }, { write: (l: string) => void lines.push(l) })
  try {
    assert.equal(loadRelayIntact(dir, log), null)
    assert.equal(lines.length, 0, "a missing file is no news")
    writeFileSync(join(dir, RELAY_INTACT_FILE), "{not json")
    assert.equal(loadRelayIntact(dir, log), null)
    assert.match(lines.join(""), /relay-intact-unreadable/)
    const recorder = makeRelayIntactRecorder(dir, log)
    recorder.record({ boot: "b1", sinceBootSeconds: 10.5 })
    recorder.record({ boot: "b1", sinceBootSeconds: 99.25 })
    for (
      let i = 0;
      i < 50 && !readFileSync(join(dir, RELAY_INTACT_FILE), "utf8").includes("99.25");
      i++
    )
      await new Promise((r) => setTimeout(r, 10))
    assert.deepEqual(loadRelayIntact(dir, log), { boot: "b1", sinceBootSeconds: 99.25 })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test("mysqldStart: this host's clock since boot less the server's Uptime", () => {
  assert.deepEqual(mysqldStart({ bootId: "b", uptimeSeconds: 1000.37 }, 400), {
    boot: "b",
    sinceBootSeconds: 600.37,
  })
  assert.equal(mysqldStart(null, 400), null)
  assert.equal(mysqldStart({ bootId: "b", uptimeSeconds: 1 }, null), null)
})
