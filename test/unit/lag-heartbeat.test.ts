// Issue 15 item 7: lag from a heartbeat table (lag.source: heartbeat_table).
// The core's rule for writing (core/lag-heartbeat.ts: once a second, only
// while ACTIVE and probed writable, not while commits wait for an
// acknowledgement, never after a fence), the lag a replica reports from the
// rows (the current primary's row of its term, else Seconds_Behind_Source,
// said so), what it must not change (health, hence votes), the HTTP answer,
// the config section and the SQL the adapters run.
import assert from "node:assert/strict"
import { test } from "node:test"
import { createHeartbeatSql, writeHeartbeatSql } from "../../agent/src/adapters/lag-heartbeat.ts"
import {
  heartbeatSql,
  parseHeartbeats,
  toMysqlProbe,
} from "../../agent/src/adapters/mysql-prober.ts"
import { renderStatus } from "../../agent/src/cli/render.ts"
import { nextDeadline } from "../../agent/src/core/deadline.ts"
import { emptyGtidSet } from "../../agent/src/core/gtid.ts"
import {
  describeLagSource,
  LAG_HEARTBEAT_INTERVAL_MS,
  localReportedLag,
} from "../../agent/src/core/lag-heartbeat.ts"
import { leaseOf } from "../../agent/src/core/roles.ts"
import { stillWanted } from "../../agent/src/core/supersession.ts"
import type { AgentState, LagHeartbeatRow } from "../../agent/src/core/types.ts"
import { answerHttp, type HttpView } from "../../agent/src/daemon/http.ts"
import { statusView } from "../../agent/src/daemon/status-view.ts"
import { decodeConfig } from "../../shared/config.ts"
import { CoreNode, settledCluster } from "../support/core-node.ts"
import { answering } from "../support/probe-answer.ts"
import { standbyState } from "./daemon-states.ts"

/**
 * The settled cluster, its primary's last probe showing no commit waiting for
 * a semi-sync acknowledgement: the simulator's writer may have one in flight
 * at the moment it is taken, and these tests start from a quiet primary
 * (a waiting commit is a case of its own below).
 */
const cluster = (lagHeartbeat: boolean | undefined) => {
  const { primary, replica } = settledCluster(lagHeartbeat === undefined ? {} : { lagHeartbeat })
  const probe = primary.local.probe
  assert.ok(probe !== null)
  return {
    primary: { ...primary, local: { ...primary.local, probe: { ...probe, semiSyncWaiters: 0 } } },
    replica,
  }
}

class Node extends CoreNode {
  writes(): Array<number> {
    return this.out.flatMap((o) => (o._tag === "WriteLagHeartbeat" ? [o.term] : []))
  }
  probed(change: Partial<NonNullable<AgentState["local"]["probe"]>>): this {
    const p = this.s.local.probe
    assert.ok(p !== null)
    return this.feed((now) => ({
      _tag: "LocalProbed",
      ...answering(this.s),
      now,
      result: { _tag: "Up", mysql: { ...p, ...change } },
    }))
  }
}

test("the ACTIVE, writable primary asks for a heartbeat row once a second; a replica never", () => {
  const { primary, replica } = cluster(true)
  const p = new Node(primary).tick(10)
  const term = p.s.hard.term
  assert.deepEqual(p.writes(), [term])
  p.tick(300).tick(300)
  assert.deepEqual(p.writes(), [term], "not again within a second")
  p.tick(LAG_HEARTBEAT_INTERVAL_MS)
  assert.deepEqual(p.writes(), [term, term])
  const r = new Node(replica).tick(10).tick(1_000).tick(1_000)
  assert.deepEqual(r.writes(), [])
})

test("the decision loop wakes for the next row (deadline.ts), not only at the next probe", () => {
  const p = new Node(cluster(true).primary).tick(10)
  const at = p.s.lagHeartbeatAt
  assert.ok(at !== null && at !== undefined)
  assert.ok(nextDeadline(p.s) <= at + LAG_HEARTBEAT_INTERVAL_MS)
})

test("off by default (lagHeartbeat unset or false): no row is ever written", () => {
  for (const flag of [undefined, false]) {
    const p = new Node(cluster(flag).primary).tick(10).tick(1_000)
    assert.deepEqual(p.writes(), [], `lagHeartbeat ${flag}`)
  }
})

test("no row on a read-only or super_read_only server, nor while commits wait for an acknowledgement", () => {
  const { primary } = cluster(true)
  for (const change of [
    { readOnly: true },
    { superReadOnly: true },
    { semiSyncWaiters: 1 },
  ] as const) {
    const p = new Node(primary).probed(change)
    p.out.length = 0
    p.tick(1_000).tick(1_000)
    assert.deepEqual(p.writes(), [], JSON.stringify(change))
    // Writable again (and no waiters): a row at once.
    p.probed({ readOnly: false, superReadOnly: false, semiSyncWaiters: 0 })
    assert.deepEqual(p.writes(), [p.s.hard.term], `after ${JSON.stringify(change)}`)
  }
})

test("a primary that loses its lease writes no more rows, and a row it asked for before is withdrawn", () => {
  const p = new Node(cluster(true).primary).tick(10)
  const asked = p.out.find((o) => o._tag === "WriteLagHeartbeat")
  assert.ok(asked !== undefined)
  assert.equal(stillWanted(p.s, asked, p.s.bootId), true)
  p.out.length = 0
  const until = leaseOf(p.s).validUntil
  p.feed((now) => ({ _tag: "Tick", now, random: 0.5 }), until - p.s.now + 1)
  p.tick(1_000).tick(1_000)
  assert.deepEqual(p.writes(), [], "fenced: no row")
  assert.equal(stillWanted(p.s, asked, p.s.bootId), false, "the executor drops the old request")
})

/** A STANDBY of db1 in term 3 whose probe read these heartbeat rows; Seconds_Behind_Source 0. */
const replicaWith = (
  rows: ReadonlyArray<LagHeartbeatRow> | undefined,
  lagHeartbeat = true,
): AgentState => {
  const s = standbyState(0)
  const probe = s.local.probe
  assert.ok(probe !== null)
  return {
    ...s,
    config: { ...s.config, lagHeartbeat },
    local: { ...s.local, probe: { ...probe, ...(rows === undefined ? {} : { heartbeats: rows }) } },
  }
}

test("a replica reports the age of the current primary's row of its term", () => {
  const term = standbyState().hard.term
  const s = replicaWith([
    { member: "db2", term: term - 1, ageSeconds: 900 },
    { member: "db1", term, ageSeconds: 7.25 },
  ])
  const lag = localReportedLag(s)
  assert.equal(lag.seconds, 7.25)
  assert.equal(describeLagSource(lag.source), "heartbeat_table")
  // The peers hear it too (heartbeat observation) and status shows it with its source.
  const view = statusView(s, "prod")
  assert.equal(view.members.find((m) => m.name === "db2")?.lagSeconds, 7.25)
  assert.equal(view.lagSource, "heartbeat_table")
  // Clocks a little apart: a row from the future is fresh, not a negative lag.
  assert.equal(
    localReportedLag(replicaWith([{ member: "db1", term, ageSeconds: -0.4 }])).seconds,
    0,
  )
})

test("no row of the current primary in its term: Seconds_Behind_Source, and status says so", () => {
  const term = standbyState().hard.term
  for (const rows of [
    undefined,
    [],
    // db1 was primary before, in an older term: that row is stale by however long it was not.
    [{ member: "db1", term: term - 1, ageSeconds: 86_400 }],
    [{ member: "db3", term, ageSeconds: 1 }],
  ]) {
    const s = replicaWith(rows)
    const lag = localReportedLag(s)
    assert.equal(lag.seconds, 0, JSON.stringify(rows))
    assert.match(
      describeLagSource(lag.source),
      /^seconds_behind_source \(no heartbeat row of db1 in its term yet\)$/,
    )
    assert.match(statusView(s, "prod").lagSource ?? "", /no heartbeat row of db1/)
    assert.match(
      renderStatus(statusView(s, "prod")),
      /^this node's lag: from seconds_behind_source \(no heartbeat row of db1 in its term yet\)$/m,
    )
  }
  // Disabled: rows are ignored and status says nothing about a source.
  const off = replicaWith([{ member: "db1", term, ageSeconds: 30 }], false)
  assert.equal(localReportedLag(off).seconds, 0)
  assert.equal(statusView(off, "prod").lagSource, undefined)
})

test("/replica?max_lag answers on the heartbeat lag and names it", () => {
  const term = standbyState().hard.term
  const view = (s: AgentState): HttpView => ({
    cluster: "prod",
    node: s.self,
    state: s,
    loopAgeMs: 20,
    metrics: () => "",
  })
  const stuck = replicaWith([{ member: "db1", term, ageSeconds: 12 }])
  const r = answerHttp(view(stuck), "GET", "/replica?max_lag=5")
  assert.equal(r.status, 503)
  assert.match(r.body, /lag 12 s > max_lag 5 s \(from heartbeat_table\)/)
  assert.equal(answerHttp(view(stuck), "GET", "/replica?max_lag=20").status, 200)
  // Seconds_Behind_Source alone (0) would have let it through.
  assert.equal(answerHttp(view(replicaWith(undefined)), "GET", "/replica?max_lag=5").status, 200)
})

test("the heartbeat lag never moves the health ladder (and so never who counts in a vote)", () => {
  const { replica } = cluster(true)
  const r = new Node(replica)
  const before = r.s.local.health.level
  const p = r.s.local.probe
  assert.ok(p?.replica != null)
  const term = r.s.hard.term
  for (let i = 0; i < 5; i++) {
    r.probed({
      replica: { ...p.replica, lagSeconds: 0 },
      heartbeats: [{ member: "db1", term, ageSeconds: 3_600 }],
    })
  }
  assert.equal(localReportedLag(r.s).seconds, 3_600, "reported")
  assert.equal(r.s.local.health.level, before, "health unchanged")
})

test("config: lag.source and lag.table, default off, bad values name the key", () => {
  const base = {
    cluster: {
      name: "prod",
      members: [
        { name: "db1", address: "10.0.0.11", agent_port: 7946 },
        { name: "db2", address: "10.0.0.12", agent_port: 7946 },
      ],
    },
    node: "db1",
    mysql: {
      monitor: { user: "mha", password_file: "/etc/m" },
      replication: { user: "repl", password_file: "/etc/r" },
      get_source_public_key: true,
    },
    mesh: { ca: "/etc/ca", cert: "/etc/c", key: "/etc/k" },
  }
  const ok = decodeConfig(base)
  assert.equal(ok._tag, "Ok")
  if (ok._tag === "Ok")
    assert.deepEqual(ok.config.lag, {
      source: "seconds_behind_source",
      table: "mha_agent.heartbeat",
    })
  const on = decodeConfig({ ...base, lag: { source: "heartbeat_table", table: "ops.hb" } })
  assert.equal(on._tag === "Ok" ? on.config.lag.table : "", "ops.hb")
  const bad = decodeConfig({ ...base, lag: { source: "heartbeat", table: "hb" } })
  assert.equal(bad._tag, "Invalid")
  if (bad._tag === "Invalid") {
    const byKey = new Map(bad.problems.map((p) => [p.path.join("."), p.message]))
    assert.match(byKey.get("lag.source") ?? "", /seconds_behind_source.*heartbeat_table/)
    assert.match(byKey.get("lag.table") ?? "", /schema\.table/)
  }
  const typo = decodeConfig({ ...base, lag: { sorce: "heartbeat_table" } })
  assert.equal(typo._tag, "Invalid")
  if (typo._tag === "Invalid")
    assert.match(typo.problems[0]?.message ?? "", /did you mean "source"/)
})

test("the SQL: a row per primary (term, server_id, UTC microseconds), read with the age on the reader's clock", () => {
  assert.deepEqual(createHeartbeatSql("mha_agent.heartbeat").slice(0, 1), [
    "CREATE DATABASE IF NOT EXISTS `mha_agent`",
  ])
  assert.match(
    createHeartbeatSql("mha_agent.heartbeat")[1] ?? "",
    /^CREATE TABLE IF NOT EXISTS `mha_agent`\.`heartbeat` \(/,
  )
  assert.match(
    writeHeartbeatSql("a.b"),
    /^INSERT INTO `a`\.`b` .*UTC_TIMESTAMP\(6\).*ON DUPLICATE KEY UPDATE/s,
  )
  assert.equal(
    heartbeatSql("a.b"),
    "SELECT `member`, `term`, TIMESTAMPDIFF(MICROSECOND, `ts`, UTC_TIMESTAMP(6)) AS age_us FROM `a`.`b`",
  )
  assert.deepEqual(
    parseHeartbeats([
      { member: "db1", term: "4", age_us: "1500000" },
      { member: "", term: 1, age_us: 1 },
      { member: "db2", term: null, age_us: 1 },
    ]),
    [{ member: "db1", term: 4, ageSeconds: 1.5 }],
  )
})

test("the core's probe carries the rows only when they were read", () => {
  const observation = {
    serverUuid: "u",
    serverId: 1,
    version: "9.7.0",
    readOnly: true,
    superReadOnly: true,
    relayLogRecovery: false,
    executed: standbyState().local.probe!.executed,
    replica: null,
    semiSync: {
      sourcePluginLoaded: true,
      replicaPluginLoaded: true,
      sourceEnabled: false,
      sourceActive: false,
      sourceClients: 0,
      sourceWaitSessions: 0,
      sourceTimeoutMs: null,
      waitForReplicaCount: null,
      replicaEnabled: true,
      replicaActive: true,
    },
    uptimeSeconds: 10,
    commitWait: { sessions: 0, oldestSeconds: 0 },
    committing: emptyGtidSet,
    started: null,
    durationMs: 1,
    reconnected: false,
  }
  assert.equal(toMysqlProbe(observation, (h) => h).heartbeats, undefined)
  const rows = [{ member: "db1", term: 2, ageSeconds: 0.2 }]
  assert.deepEqual(toMysqlProbe({ ...observation, heartbeats: rows }, (h) => h).heartbeats, rows)
})

test("mysql-accounts grants the heartbeat schema when lag.source is heartbeat_table", async () => {
  const { accountsSql } = await import("../../agent/src/cli/mysql-setup.ts")
  const options = {
    monitorUser: "m",
    monitorPassword: "p",
    replicationUser: "r",
    replicationPassword: "q",
    host: "%",
    monitorPrivileges: ["PROCESS"],
  }
  assert.doesNotMatch(accountsSql(options), /mha_agent/)
  assert.match(
    accountsSql({ ...options, heartbeatTable: "mha_agent.heartbeat" }),
    /^GRANT CREATE, INSERT, UPDATE ON `mha_agent`\.\* TO 'm'@'%';$/m,
  )
})
