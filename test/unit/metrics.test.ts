// The /metrics page (agent/src/daemon/metrics.ts) read back with a strict
// parser of the Prometheus text format: every metric of operations.md is
// there, well-formed, with the values the state and the counters say.
import assert from "node:assert/strict"
import { beforeEach, describe, test } from "node:test"
import type { HookStats } from "../../agent/src/adapters/hook-runner.ts"
import type { MeshMetrics, PeerState } from "../../agent/src/adapters/mesh.ts"
import type { VipMetrics } from "../../agent/src/adapters/vip.ts"
import {
  countEvent,
  countOutputs,
  Exposition,
  escapeLabelValue,
  type MetricsSources,
  noteLoopDelay,
  notePublished,
  renderMetrics,
  resetCounters,
} from "../../agent/src/daemon/metrics.ts"
import { activeState, failState, standbyState } from "./daemon-states.ts"
import { type PromFamily, parsePromText, sampleValue } from "./prom-text.ts"

const mesh: MeshMetrics = {
  messagesIn: 10,
  messagesOut: 12,
  bytesIn: 1000,
  bytesOut: 1200,
  droppedBad: 1,
  droppedBadByReason: {
    oversize: 0,
    "frame-too-large": 0,
    binary: 0,
    "malformed-json": 1,
    schema: 0,
    "sender-mismatch": 0,
  },
  droppedQueueFull: 2,
  droppedExpired: 3,
  refusedPeers: 0,
  refusedByReason: {} as MeshMetrics["refusedByReason"],
  connects: 2,
  reconnects: 0,
  disconnects: 0,
  dialAttempts: 2,
  dialFailures: 0,
  replaced: 0,
  datagramsIn: 7,
  datagramsOut: 8,
  droppedDatagramsByReason: { malformed: 0, "unknown-key": 1, "bad-mac": 2, replay: 0 },
  duplicates: 5,
}
const peers: ReadonlyArray<PeerState> = ["db2", "db3"].map((name) => ({
  name,
  status: name === "db2" ? "connected" : "disconnected",
  direction: "outbound",
  connectedSince: null,
  lastSeenAt: null,
  tlsProtocol: null,
  queued: 0,
  reconnects: 0,
  lastError: null,
}))
const vip: VipMetrics = { bursts: 3, burstFailures: 1, duplicatesSeen: 0, adds: 1, removes: 0 }
const hooks: HookStats = {
  pending: 0,
  dropped: 1,
  runs: { succeeded: 4, failed: 1, timed_out: 0, refused: 0, spawn_failed: 0 },
}

const full = (over: Partial<MetricsSources> = {}): MetricsSources => ({
  cluster: "prod",
  node: "db1",
  state: activeState(),
  mesh: { metrics: mesh, peers },
  vip,
  hooks,
  ...over,
})

/** The metrics operations.md lists, by the name this agent gives them, and their types. */
const REQUIRED: ReadonlyArray<readonly [string, PromFamily["type"]]> = [
  ["mha_node_role", "gauge"],
  ["mha_node_health", "gauge"],
  ["mha_term", "gauge"],
  ["mha_lease_remaining_seconds", "gauge"],
  ["mha_peers_reachable", "gauge"],
  ["mha_replication_lag_seconds", "gauge"],
  ["mha_replication_backlog_transactions", "gauge"],
  ["mha_probe_failures_total", "counter"],
  ["mha_elections_total", "counter"],
  ["mha_failovers_total", "counter"],
  ["mha_switchovers_total", "counter"],
  ["mha_fencing_actions_total", "counter"],
  ["mha_vip_state", "gauge"],
  ["mha_semi_sync_active", "gauge"],
  ["mha_errant_transactions", "gauge"],
  ["mha_paused", "gauge"],
  ["mha_recovery_blocked", "gauge"],
  ["mha_hook_runs_total", "counter"],
  ["mha_mesh_messages_total", "counter"],
  ["mha_mesh_dropped_total", "counter"],
  ["mha_mesh_datagrams_total", "counter"],
  ["mha_mesh_datagrams_dropped_total", "counter"],
  ["mha_process_cpu_seconds_total", "counter"],
  ["mha_process_resident_memory_bytes", "gauge"],
  ["mha_event_loop_delay_seconds", "summary"],
]

beforeEach(() => resetCounters())

describe("the /metrics page", () => {
  test("has every metric of operations.md, typed, with HELP, and parses strictly", () => {
    const families = parsePromText(renderMetrics(full()))
    for (const [name, type] of REQUIRED) {
      const f = families.get(name)
      assert.ok(f, `${name} is missing`)
      assert.equal(f.type, type, `${name} type`)
      assert.ok(f.help !== undefined && f.help.length > 10, `${name} has a HELP line`)
    }
    for (const f of families.values()) {
      assert.match(f.name, /^mha_/, "every metric has the mha_ prefix")
      assert.notEqual(f.type, "untyped", `${f.name} has a TYPE`)
      if (f.type === "counter") assert.match(f.name, /_total$/, `${f.name}: counters end in _total`)
    }
  })

  test("also parses before the first state and without adapters", () => {
    const families = parsePromText(
      renderMetrics({ cluster: "prod", node: "db1", state: undefined }),
    )
    for (const [name] of REQUIRED) assert.ok(families.has(name), `${name} is missing`)
    assert.equal(sampleValue(families, "mha_state_published"), 0)
  })

  test("the leader: ACTIVE, lease, VIP, semi-sync, peers", () => {
    const f = parsePromText(renderMetrics(full()))
    assert.equal(sampleValue(f, "mha_node_role", { node: "db1", role: "ACTIVE" }), 1)
    assert.equal(sampleValue(f, "mha_node_role", { node: "db1", role: "STANDBY" }), 0)
    assert.equal(sampleValue(f, "mha_node_role", { node: "db2", role: "STANDBY" }), 1)
    assert.equal(sampleValue(f, "mha_node_health", { node: "db1", level: "OK" }), 1)
    assert.equal(sampleValue(f, "mha_node_health", { node: "db3", level: "FAIL" }), 1)
    // Exactly one role and one level per node.
    for (const node of ["db1", "db2", "db3"]) {
      const roles = f.get("mha_node_role")?.samples.filter((s) => s.labels.node === node) ?? []
      assert.equal(
        roles.reduce((a, s) => a + s.value, 0),
        1,
        `${node}: one role`,
      )
    }
    assert.equal(sampleValue(f, "mha_term"), 3)
    assert.equal(sampleValue(f, "mha_lease_remaining_seconds"), 3)
    assert.equal(sampleValue(f, "mha_agent_role", { role: "leader" }), 1)
    assert.equal(sampleValue(f, "mha_is_active"), 1)
    assert.equal(sampleValue(f, "mha_peers_reachable"), 1, "db2 heard, db3 not for a minute")
    assert.equal(sampleValue(f, "mha_vip_state", { state: "held" }), 1)
    assert.equal(sampleValue(f, "mha_semi_sync_active"), 1)
    assert.equal(sampleValue(f, "mha_semi_sync_mode", { mode: "strict" }), 1)
    assert.equal(sampleValue(f, "mha_paused"), 0)
    assert.equal(sampleValue(f, "mha_recovery_blocked"), 0)
    assert.equal(sampleValue(f, "mha_replication_backlog_transactions", { node: "db2" }), 2)
    assert.equal(sampleValue(f, "mha_mesh_messages_total", { direction: "in" }), 10)
    assert.equal(sampleValue(f, "mha_mesh_dropped_total", { reason: "malformed-json" }), 1)
    assert.equal(sampleValue(f, "mha_mesh_dropped_total", { reason: "queue-full" }), 2)
    assert.equal(sampleValue(f, "mha_mesh_datagrams_total", { direction: "out" }), 8)
    assert.equal(sampleValue(f, "mha_mesh_datagrams_dropped_total", { reason: "bad-mac" }), 2)
    assert.equal(sampleValue(f, "mha_mesh_peer_connected", { node: "db2" }), 1)
    assert.equal(sampleValue(f, "mha_hook_runs_total", { result: "succeeded" }), 4)
    assert.equal(sampleValue(f, "mha_vip_operations_total", { op: "add" }), 1)
    assert.ok((sampleValue(f, "mha_process_resident_memory_bytes") ?? 0) > 1_000_000)
    assert.ok((sampleValue(f, "mha_process_cpu_seconds_total") ?? 0) > 0)
    assert.ok(sampleValue(f, "mha_event_loop_delay_seconds_count") !== undefined)
  })

  test("a replica: lag, errant transactions, no VIP, no lease", () => {
    const f = parsePromText(renderMetrics(full({ node: "db2", state: standbyState(7) })))
    assert.equal(sampleValue(f, "mha_node_role", { node: "db2", role: "STANDBY" }), 1)
    assert.equal(sampleValue(f, "mha_replication_lag_seconds", { node: "db2" }), 7)
    // Peers' lag from their heartbeats; none for the primary.
    assert.equal(sampleValue(f, "mha_replication_lag_seconds", { node: "db3" }), 1)
    assert.equal(sampleValue(f, "mha_replication_lag_seconds", { node: "db1" }), undefined)
    assert.equal(sampleValue(f, "mha_replication_backlog_transactions", { node: "db2" }), 3)
    assert.equal(sampleValue(f, "mha_replication_running", { node: "db2" }), 1)
    assert.equal(sampleValue(f, "mha_errant_transactions", { node: "db2" }), 3)
    assert.equal(sampleValue(f, "mha_node_errant", { node: "db2" }), 1)
    assert.equal(sampleValue(f, "mha_lease_remaining_seconds"), 0)
    assert.equal(sampleValue(f, "mha_lease_promise_remaining_seconds"), 3.5)
    assert.equal(sampleValue(f, "mha_vip_state", { state: "not_held" }), 1)
    assert.equal(sampleValue(f, "mha_semi_sync_active"), 0)
  })

  test("a failed node: FAIL, mysqld down, probe failures counted from the published states", () => {
    const s = failState()
    for (let n = 0; n <= 5; n++)
      notePublished({
        ...s,
        local: { ...s.local, health: { ...s.local.health, consecutiveFailures: n } },
      })
    notePublished({
      ...s,
      local: { ...s.local, health: { ...s.local.health, consecutiveFailures: 0 } },
    })
    notePublished({
      ...s,
      local: { ...s.local, health: { ...s.local.health, consecutiveFailures: 2 } },
    })
    const f = parsePromText(renderMetrics(full({ node: "db3", state: s })))
    assert.equal(sampleValue(f, "mha_node_role", { node: "db3", role: "FAIL" }), 1)
    assert.equal(sampleValue(f, "mha_mysqld_up"), 0)
    assert.equal(sampleValue(f, "mha_probe_failures_total"), 7)
    assert.ok((sampleValue(f, "mha_decision_loop_age_seconds") ?? -1) >= 0)
  })

  test("the counters come from the outputs the executor runs", () => {
    countOutputs([
      { _tag: "Event", level: "info", event: "election", reason: "standing for term 4 (election)" },
      { _tag: "Event", level: "info", event: "elected", reason: "won term 4" },
      { _tag: "Mysql", id: 1, action: { _tag: "FenceRemote", target: "db1" } },
      { _tag: "RunHook", id: 2, hook: "fence_command", env: {} },
      // Counted from the event's typed kind, whatever its text says (no kind here).
      { _tag: "Event", level: "info", event: "promoted", kind: "election", term: 4, reason: "x" },
      { _tag: "Event", level: "info", event: "promoted", kind: "transfer", term: 5, reason: "y" },
      {
        _tag: "Event",
        level: "error",
        event: "promotion-aborted",
        kind: "election",
        term: 6,
        reason: "x",
      },
      { _tag: "Event", level: "info", event: "switchover", reason: "to db3 requested" },
      { _tag: "Event", level: "warn", event: "switchover-rollback", reason: "x" },
      { _tag: "Event", level: "warn", event: "switchover-refused", reason: "x" },
      { _tag: "Event", level: "info", event: "election-timeout", reason: "no quorum" },
      { _tag: "Mysql", id: 3, action: { _tag: "Fence", until: "pending" } },
      { _tag: "Event", level: "warn", event: "self-fenced", reason: "lease lost" },
      { _tag: "Mysql", id: 4, action: { _tag: "KillSessions" } },
      { _tag: "Event", level: "warn", event: "replication-restart", reason: "SQL thread" },
      { _tag: "Event", level: "warn", event: "replication-restart", reason: "I/O thread" },
      { _tag: "Event", level: "info", event: "repoint", reason: "replicating from db1" },
    ])
    countEvent({ event: "mysqld-failed" })
    const f = parsePromText(renderMetrics(full()))
    assert.equal(sampleValue(f, "mha_elections_started_total"), 1)
    assert.equal(sampleValue(f, "mha_elections_total", { result: "won" }), 1)
    assert.equal(sampleValue(f, "mha_elections_total", { result: "timed_out" }), 1)
    assert.equal(sampleValue(f, "mha_failovers_total", { result: "succeeded" }), 1)
    assert.equal(sampleValue(f, "mha_failovers_total", { result: "aborted" }), 1)
    assert.equal(sampleValue(f, "mha_switchovers_total", { result: "requested" }), 1)
    assert.equal(sampleValue(f, "mha_switchovers_total", { result: "succeeded" }), 1)
    assert.equal(sampleValue(f, "mha_switchovers_total", { result: "rolled_back" }), 1)
    assert.equal(sampleValue(f, "mha_switchovers_total", { result: "refused" }), 1)
    assert.equal(sampleValue(f, "mha_promotions_total", { kind: "transfer" }), 1)
    assert.equal(sampleValue(f, "mha_fencing_actions_total", { action: "remote_fence" }), 1)
    assert.equal(sampleValue(f, "mha_fencing_actions_total", { action: "fence_command" }), 1)
    assert.equal(sampleValue(f, "mha_fencing_actions_total", { action: "local_fence" }), 1)
    assert.equal(sampleValue(f, "mha_mysqld_failures_total"), 1)
    assert.equal(sampleValue(f, "mha_events_total", { event: "self-fenced" }), 1)
    assert.equal(sampleValue(f, "mha_events_total", { event: "promoted" }), 2)
    assert.equal(sampleValue(f, "mha_replication_repairs_total", { kind: "start_replica" }), 2)
    assert.equal(sampleValue(f, "mha_replication_repairs_total", { kind: "repoint" }), 1)
    assert.equal(sampleValue(f, "mha_replication_repairs_total", { kind: "semi_sync" }), 0)
  })

  test("a scrape compares no text by locale: a collator would load ICU's data into the agent (+4 MB RSS)", () => {
    countEvent({ event: "self-fenced" })
    countEvent({ event: "election" })
    countEvent({ event: "repoint" })
    const localeCompare = String.prototype.localeCompare
    String.prototype.localeCompare = () => {
      throw new Error("localeCompare called while rendering /metrics")
    }
    let text: string
    try {
      text = renderMetrics(full())
    } finally {
      String.prototype.localeCompare = localeCompare
    }
    const events = parsePromText(text)
      .get("mha_events_total")
      ?.samples.map((x) => x.labels.event ?? "")
      .filter((e) => e !== "")
    assert.ok(events !== undefined && events.length >= 3)
    assert.deepEqual(events, [...events].sort(), "by code unit")
  })

  test("label values are escaped and read back unchanged", () => {
    const weird = 'a "quoted" back\\slash\nnew line, {braces}=x'
    const f = parsePromText(renderMetrics(full({ cluster: weird })))
    assert.equal(f.get("mha_agent_info")?.samples[0]?.labels.cluster, weird)
    assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd')
  })

  test("the exposition refuses bad names and a family twice; the parser refuses broken text", () => {
    assert.throws(() => new Exposition().gauge("1bad", "x", 1))
    assert.throws(() =>
      new Exposition().gauge("ok", "x", [{ labels: { "bad-label": "v" }, value: 1 }]),
    )
    assert.throws(() => new Exposition().gauge("ok", "x", 1).gauge("ok", "x", 2))
    const bad = [
      "# TYPE a gauge\na 1", // no final line feed
      '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n', // duplicate series
      "# TYPE a counter\na -1\n", // negative counter
      '# TYPE a gauge\na{x="\\q"} 1\n', // bad escape
      "# TYPE a gauge\na one\n", // not a float
      "a 1\n", // no TYPE
      "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n", // not contiguous
      "# TYPE s summary\ns 1\n", // summary without quantile
    ]
    for (const text of bad)
      assert.throws(() => parsePromText(text), `should refuse ${JSON.stringify(text)}`)
  })

  test("event-loop delay: from the decision loop's alarm, no sampler of its own (a cheap idle agent)", async () => {
    const read = () => parsePromText(renderMetrics(full()))
    const count = (f: ReturnType<typeof read>) =>
      sampleValue(f, "mha_event_loop_delay_seconds_count") ?? 0
    // Node's sampler woke the agent every 10 ms: 0.28 % of a core at rest (issue 12).
    const before = count(read())
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(count(read()), before, "no wake-up of its own")
    noteLoopDelay(0.4)
    noteLoopDelay(250)
    noteLoopDelay(Number.NaN)
    const f = read()
    assert.equal(count(f), before + 2)
    const max = sampleValue(f, "mha_event_loop_delay_max_seconds") ?? 0
    assert.ok(max >= 0.249 && max < 0.26, `max ${max} s`)
  })
})
