import assert from "node:assert/strict"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type TestContext, test } from "node:test"
import { Effect, Exit } from "effect"
import {
  type ConfigError,
  configWarnings,
  diffForReload,
  formatReloadPlan,
  loadConfig,
  parseConfigText,
} from "../../agent/src/daemon/config-load.ts"
import { toClusterConfig } from "../../agent/src/daemon/core-config.ts"
import { type Config, decodeConfig, parseDurationMs } from "../../shared/config.ts"
import { minimal } from "../support/config-text.ts"

const tempDir = async (t: TestContext): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), "mha-config-"))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Loads `text` from a real file; returns the config or the ConfigError. */
const load = async (t: TestContext, text: string) => {
  const dir = await tempDir(t)
  const file = join(dir, "config.yaml")
  await writeFile(file, text)
  const exit = await Effect.runPromiseExit(loadConfig(file))
  return { file, exit }
}

const loadError = async (
  t: TestContext,
  text: string,
): Promise<{ file: string; error: ConfigError }> => {
  const { file, exit } = await load(t, text)
  if (Exit.isSuccess(exit)) assert.fail("expected the config to be refused")
  const reason = exit.cause.reasons[0]
  assert.ok(reason && reason._tag === "Fail", "expected a typed failure")
  assert.equal(reason.error._tag, "ConfigError")
  return { file, error: reason.error }
}

const loadOk = async (t: TestContext, text: string): Promise<Config> => {
  const { exit } = await load(t, text)
  if (Exit.isFailure(exit)) assert.fail(`expected the config to load: ${String(exit.cause)}`)
  return exit.value
}

test("the shipped example config loads", async () => {
  const config = await Effect.runPromise(loadConfig("packaging/config.example.yaml"))
  assert.equal(config.cluster.name, "prod-db")
  assert.deepEqual(
    config.cluster.members.map((m) => m.name),
    ["db1", "db2", "db3"],
  )
  assert.equal(config.node, "db1")
  assert.equal(config.timings.lease_duration, 4_000)
  assert.equal(config.timings.recovery_block_period, 600_000)
  assert.equal(config.timings.drift_margin, 0.1)
  assert.equal(config.semi_sync.mode, "on")
  assert.equal(config.vip?.address, "10.0.0.100/24")
})

test("a minimal config gets the documented defaults", async (t) => {
  const c = await loadOk(t, minimal())
  assert.deepEqual(c.cluster.members[0], {
    name: "db1",
    address: "10.0.0.11",
    mysql_port: 3306,
    agent_port: 7946,
    priority: 0,
    promotable: true,
    kind: "data",
  })
  assert.equal(c.timings.probe_interval, 500)
  assert.equal(c.timings.heartbeat_interval, 500)
  assert.equal(c.timings.rpc_timeout, 1_000)
  assert.equal(c.timings.lease_duration, 4_000)
  assert.equal(c.timings.drift_margin, 0.1)
  assert.equal(c.timings.recovery_block_period, 600_000)
  assert.equal(c.timings.restart_stable_period, 10_000)
  assert.equal(c.timings.restart_window, 300_000)
  assert.equal(c.semi_sync.mode, "off")
  assert.equal(c.service.restart_command, "systemctl restart mysql")
  assert.equal(c.control.socket, "/run/mha-agent/agent.sock")
  assert.equal(c.state_dir, "/var/lib/mha-agent")
  assert.equal(c.auto_rejoin, true)
  assert.equal(c.failback, false)
  assert.equal(c.allow_errant_promotion, false)
  assert.equal(c.fence_required, false)
  assert.equal(c.hooks.queue_size, 64)
  assert.equal(c.log.level, "info")
  assert.equal(c.vip, undefined)
  assert.equal(c.initial_primary, undefined)
})

test("durations: units, compound, plain numbers are milliseconds", async (t) => {
  assert.equal(parseDurationMs("500ms"), 500)
  assert.equal(parseDurationMs("4s"), 4_000)
  assert.equal(parseDurationMs("10m"), 600_000)
  assert.equal(parseDurationMs("1h"), 3_600_000)
  assert.equal(parseDurationMs("1m30s"), 90_000)
  assert.equal(parseDurationMs("1.5s"), 1_500)
  assert.equal(parseDurationMs("250"), 250)
  assert.equal(parseDurationMs("5 minutes"), undefined)
  const c = await loadOk(
    t,
    minimal("timings:\n  probe_interval: 250\n  failback_delay: 1m30s\n  drift_margin: 5%\n"),
  )
  assert.equal(c.timings.probe_interval, 250)
  assert.equal(c.timings.failback_delay, 90_000)
  assert.equal(c.timings.drift_margin, 0.05)
})

test("a bad duration names the key, the line and what was expected", async (t) => {
  const { file, error } = await loadError(t, minimal("timings:\n  probe_interval: 5 minutes\n"))
  assert.equal(error.file, file)
  assert.equal(error.problems.length, 1)
  const [line] = error.lines
  assert.match(line ?? "", /config\.yaml:\d+:\d+: timings\.probe_interval: /)
  assert.match(line ?? "", /Expected a duration like "500ms"/)
  assert.match(line ?? "", /got "5 minutes"/)
})

test("wrong type: the message names file, line:column, path and expectation", async (t) => {
  const members = `    - name: db1
      address: 10.0.0.11
      agent_port: 7946
    - name: db2
      address: 10.0.0.12
      agent_port: 7946
    - name: db3
      address: 10.0.0.13
      agent_port: 7946
      priority: high
`
  const { file, error } = await loadError(t, minimal("", members))
  assert.deepEqual(error.problems[0]?.path, ["cluster", "members", 2, "priority"])
  // "priority: high" is line 13, its value starts in column 17.
  assert.equal(
    error.lines[0],
    `${file}:13:17: cluster.members[2].priority: Expected number, got "high"`,
  )
  assert.ok(error.message.includes(file))
  assert.ok(error.message.includes("cluster.members[2].priority"))

  const frac = await loadError(t, minimal("", members.replace("high", "1.5")))
  assert.match(
    frac.error.lines[0] ?? "",
    /cluster\.members\[2\]\.priority: Expected an integer, got 1\.5/,
  )
})

test("unknown keys are errors, with a suggestion for a typo", async (t) => {
  const { file, error } = await loadError(
    t,
    minimal("timings:\n  heartbeat_intreval: 1s\nfailbak: true\n"),
  )
  const lines = error.lines.join("\n")
  assert.equal(error.problems.length, 2)
  assert.ok(
    lines.includes(
      `${file}:27:3: timings.heartbeat_intreval: unknown key (did you mean "heartbeat_interval"?)`,
    ),
    lines,
  )
  assert.ok(lines.includes(`${file}:28:1: failbak: unknown key (did you mean "failback"?)`), lines)
})

test("a missing required key is named", async (t) => {
  const text = minimal().replace("  ca: /etc/mha-agent/tls/ca.pem\n", "")
  const { error } = await loadError(t, text)
  assert.equal(error.problems.length, 1)
  assert.match(error.lines[0] ?? "", /config\.yaml:\d+:\d+: mesh\.ca: missing \(required\)/)
})

test("several problems are all reported, in file order", async (t) => {
  const text = minimal("log:\n  level: loud\n")
    .replace("agent_port: 7946\n    - name: db2", "agent_port: 70000\n    - name: db2")
    .replace("password_file: /etc/mha-agent/replication.password", "password_file: repl.pw")
  const { error } = await loadError(t, text)
  assert.deepEqual(
    error.problems.map((p) => p.path.join(".")),
    ["cluster.members.0.agent_port", "mysql.replication.password_file", "log.level"],
  )
  assert.match(error.lines[1] ?? "", /Expected an absolute path/)
  assert.match(error.lines[2] ?? "", /Expected "trace" \| "debug" \| "info"/)
})

test("the lease timing rule of protocol.md section 5 shows the numbers", async (t) => {
  const { error } = await loadError(
    t,
    minimal("timings:\n  heartbeat_interval: 1s\n  rpc_timeout: 2s\n  lease_duration: 4s\n"),
  )
  assert.equal(error.problems.length, 1)
  const [line] = error.lines
  assert.match(line ?? "", /:\d+:\d+: timings\.lease_duration: /)
  assert.ok(
    line?.includes(
      "heartbeat_interval * 2 + rpc_timeout must be less than lease_duration: 1s * 2 + 2s = 4s, which is not below lease_duration 4s",
    ),
    line,
  )
  // Just inside the rule is fine.
  await loadOk(
    t,
    minimal("timings:\n  heartbeat_interval: 1s\n  rpc_timeout: 1999ms\n  lease_duration: 4s\n"),
  )
})

test("the crash-loop bounds of protocol.md section 12 name the keys and the numbers", async (t) => {
  const short = await loadError(
    t,
    minimal("timings:\n  probe_interval: 1s\n  restart_stable_period: 1500ms\n"),
  )
  assert.equal(short.error.problems.length, 1)
  assert.match(short.error.lines[0] ?? "", /:\d+:\d+: timings\.restart_stable_period: /)
  assert.match(
    short.error.lines[0] ?? "",
    /restart_stable_period \(1500ms\) must be at least two probe intervals \(2 \* 1s\)/,
  )
  const window = await loadError(
    t,
    minimal("timings:\n  restart_stable_period: 1m\n  restart_window: 1m\n"),
  )
  assert.equal(window.error.problems.length, 1)
  assert.match(
    window.error.lines[0] ?? "",
    /timings\.restart_window: restart_window \(1m\) must be longer than restart_stable_period \(1m\)/,
  )
  const c = await loadOk(
    t,
    minimal("timings:\n  restart_stable_period: 30s\n  restart_window: 10m\n"),
  )
  assert.equal(c.timings.restart_stable_period, 30_000)
  assert.equal(c.timings.restart_window, 600_000)
})

test("node must be a member", async (t) => {
  const { file, error } = await loadError(t, minimal().replace("node: db1", "node: db9"))
  assert.equal(
    error.lines[0],
    `${file}:13:7: node: "db9" is not a member; expected one of db1, db2, db3`,
  )
})

test("member names must be unique", async (t) => {
  const members = `    - name: db1
      address: 10.0.0.11
      agent_port: 7946
    - name: db1
      address: 10.0.0.12
      agent_port: 7946
`
  const { error } = await loadError(t, minimal("", members))
  assert.equal(error.problems.length, 1)
  assert.match(
    error.lines[0] ?? "",
    /config\.yaml:7:13: cluster\.members\[1\]\.name: duplicate member name "db1" \(also members\[0\]\)/,
  )
})

test("at least one member; same agent endpoint twice is refused", async (t) => {
  const none = await loadError(
    t,
    minimal("", "    []\n").replace("  members:\n    []", "  members: []"),
  )
  assert.ok(none.error.lines.some((l) => l.includes("cluster.members: Expected at least 1 member")))
  const twice = `    - name: db1
      address: 10.0.0.11
      agent_port: 7946
    - name: db2
      address: 10.0.0.11
      agent_port: 7946
      mysql_port: 3307
`
  const { error } = await loadError(t, minimal("", twice))
  assert.match(
    error.lines[0] ?? "",
    /cluster\.members\[1\]\.agent_port: 10\.0\.0\.11:7946 is already used/,
  )
})

test("initial_primary must be a data member, never a witness", async (t) => {
  const members = `    - name: db1
      address: 10.0.0.11
      agent_port: 7946
    - name: db2
      address: 10.0.0.12
      agent_port: 7946
    - name: w1
      address: 10.0.0.13
      agent_port: 7946
      kind: witness
`
  const ok = await loadOk(t, minimal("initial_primary: db2\n", members))
  assert.equal(ok.initial_primary, "db2")
  const witness = await loadError(t, minimal("initial_primary: w1\n", members))
  assert.match(witness.error.lines[0] ?? "", /initial_primary: "w1" is a witness/)
  const stranger = await loadError(t, minimal("initial_primary: db7\n", members))
  assert.match(stranger.error.lines[0] ?? "", /initial_primary: "db7" is not a member/)
})

test("other cross-field rules: positive intervals, mysql auth, fence, strict semi-sync", async (t) => {
  const zero = await loadError(t, minimal("timings:\n  probe_interval: 0\n"))
  assert.match(
    zero.error.lines[0] ?? "",
    /timings\.probe_interval: Expected a duration greater than zero/,
  )

  const noAuth = await loadError(t, minimal().replace("  get_source_public_key: true\n", ""))
  assert.match(
    noAuth.error.lines[0] ?? "",
    /mysql: replication with caching_sha2_password needs TLS/,
  )

  const fence = await loadError(t, minimal("fence_required: true\n"))
  assert.match(
    fence.error.lines[0] ?? "",
    /fence_required: fence_required is true but no fence_command/,
  )

  const single = `    - name: db1
      address: 10.0.0.11
      agent_port: 7946
    - name: w1
      address: 10.0.0.13
      agent_port: 7946
      kind: witness
`
  const strict = await loadError(t, minimal("semi_sync:\n  mode: strict\n", single))
  assert.match(
    strict.error.lines[0] ?? "",
    /semi_sync\.mode: strict semi-sync needs at least 2 data members/,
  )
  // 2 data + 3 witnesses: quorum 3 of 5, each commit would wait for 2 acknowledgements, 1 replica exists.
  const witnesses = [1, 2, 3]
    .map(
      (i) =>
        `    - name: w${i}\n      address: 10.0.1.${i}\n      agent_port: 7946\n      kind: witness\n`,
    )
    .join("")
  const tooMany = await loadError(
    t,
    minimal(
      "semi_sync:\n  mode: strict\n",
      `    - name: db1\n      address: 10.0.0.11\n      agent_port: 7946\n    - name: db2\n      address: 10.0.0.12\n      agent_port: 7946\n${witnesses}`,
    ),
  )
  assert.match(
    tooMany.error.lines[0] ?? "",
    /semi_sync\.mode: strict semi-sync with 5 members waits for 2 acknowledgements per commit \(members - quorum: witnesses vote but hold no data\), but only 1 data replicas exist/,
  )
})

test("health thresholds must climb the ladder", async (t) => {
  const ladder = await loadError(t, minimal("health:\n  warn_after: 5\n  critical_after: 3\n"))
  assert.match(
    ladder.error.lines[0] ?? "",
    /health\.critical_after: critical_after \(3\) must not be below warn_after \(5\)/,
  )
  const lag = await loadError(t, minimal("health:\n  lag_warn: 2m\n"))
  assert.match(
    lag.error.lines[0] ?? "",
    /health\.lag_critical: lag_critical \(1m\) must not be below lag_warn \(2m\)/,
  )
})

test("the core's cluster config is derived from the file's", async () => {
  const config = await Effect.runPromise(loadConfig("packaging/config.example.yaml"))
  const core = toClusterConfig(config)
  assert.deepEqual(core.members[2], {
    name: "db3",
    priority: 50,
    promotable: true,
    kind: "data",
    // Where to reach it: a membership change seeds the cluster record's list with these.
    address: "10.0.0.13",
    agentPort: 7946,
    mysqlPort: 3306,
  })
  assert.equal(core.timings.leaseDurationMs, 4_000)
  assert.equal(core.timings.recoveryBlockPeriodMs, 600_000)
  assert.deepEqual(
    [core.health.lagInfoSeconds, core.health.lagWarnSeconds, core.health.lagCriticalSeconds],
    [5, 10, 60],
  )
  assert.equal(core.semiSync, "on")
  assert.equal(core.initialPrimary, null)
  assert.equal(core.fenceCommand, null)
})

test("YAML syntax errors and duplicate keys carry a line", async (t) => {
  const syntax = await loadError(t, minimal("vip: [1\n"))
  assert.match(syntax.error.lines[0] ?? "", /config\.yaml:\d+:\d+: \(top level\): YAML syntax: /)
  const dup = await loadError(t, minimal("node: db2\n"))
  assert.match(
    dup.error.lines[0] ?? "",
    /config\.yaml:26:1: \(top level\): YAML syntax: Map keys must be unique/,
  )
  const empty = await loadError(t, "# nothing here\n")
  assert.match(empty.error.lines[0] ?? "", /the document is empty/)
})

test("an unreadable file is a ConfigError naming it", async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, "missing.yaml")
  const exit = await Effect.runPromiseExit(loadConfig(file))
  assert.ok(Exit.isFailure(exit))
  const reason = exit.cause.reasons[0]
  assert.ok(reason?._tag === "Fail")
  assert.match(
    reason.error.message,
    new RegExp(`${file}: \\(top level\\): cannot read the file: ENOENT`),
  )
})

test("decodeConfig works on parsed documents without positions", () => {
  const r = decodeConfig({ cluster: { name: "x", members: [] }, node: "a" })
  assert.equal(r._tag, "Invalid")
  if (r._tag === "Invalid") {
    assert.deepEqual(
      r.problems.map((p) => p.path.join(".")),
      ["mysql", "mesh"],
    )
    assert.equal(r.problems[0]?.line, undefined)
  }
})

const parsed = (text: string): Config => {
  const r = parseConfigText(text)
  if (r._tag !== "Ok") assert.fail(JSON.stringify(r.problems))
  return r.config
}

test("reload: timings, hooks and log level change live", () => {
  const before = parsed(minimal())
  const after = parsed(
    minimal(
      "timings:\n  probe_interval: 1s\nhooks:\n  post_failover: /usr/local/bin/notify\nlog:\n  level: debug\n",
    ),
  )
  const plan = diffForReload(before, after)
  assert.equal(plan.ok, true)
  assert.deepEqual(plan.live.map((c) => c.path).sort(), [
    "hooks.post_failover",
    "log.level",
    "timings.probe_interval",
  ])
  assert.deepEqual(plan.refused, [])
  const probe = plan.live.find((c) => c.path === "timings.probe_interval")
  assert.deepEqual([probe?.from, probe?.to], [500, 1_000])
  assert.ok(formatReloadPlan(plan).some((l) => l.includes("timings.probe_interval: 500 -> 1000")))
  assert.deepEqual(formatReloadPlan(diffForReload(before, before)), ["reload: no changes"])
})

test("reload: members and identity changes are refused with a reason", () => {
  const before = parsed(minimal())
  const added = parsed(
    minimal().replace(
      "node: db1",
      "    - name: db4\n      address: 10.0.0.14\n      agent_port: 7946\nnode: db1",
    ),
  )
  const plan = diffForReload(before, added)
  assert.equal(plan.ok, false)
  assert.equal(plan.refused[0]?.path, "cluster.members")
  assert.match(plan.refused[0]?.reason ?? "", /membership cannot change.*added db4/)

  const renamed = diffForReload(before, parsed(minimal().replace("node: db1", "node: db2")))
  assert.equal(renamed.ok, false)
  assert.equal(renamed.refused[0]?.path, "node")
  assert.match(renamed.refused[0]?.reason ?? "", /identity/)

  const cluster = diffForReload(before, parsed(minimal().replace("name: prod", "name: other")))
  assert.equal(cluster.refused[0]?.path, "cluster.name")

  const priority = diffForReload(
    before,
    parsed(
      minimal().replace("agent_port: 7946\nnode", "agent_port: 7946\n      priority: 5\nnode"),
    ),
  )
  assert.match(priority.refused[0]?.reason ?? "", /changed db3/)

  // A refused change refuses the whole reload, even with live changes beside it.
  const mixed = diffForReload(
    before,
    parsed(minimal("timings:\n  probe_interval: 1s\n").replace("/etc/mha-agent/tls/db1.key", "/k")),
  )
  assert.equal(mixed.ok, false)
  assert.deepEqual(
    mixed.refused.map((r) => r.path),
    ["mesh.key"],
  )
  assert.deepEqual(
    mixed.live.map((c) => c.path),
    ["timings.probe_interval"],
  )
  assert.match(formatReloadPlan(mixed)[0] ?? "", /reload refused/)
})

test("reload: the lease timings are refused (restart every agent, one at a time); other timings stay live", () => {
  const before = parsed(minimal())
  for (const [key, value] of [
    ["lease_duration", "6s"],
    ["drift_margin", "0.2"],
    ["heartbeat_interval", "400ms"],
    ["rpc_timeout", "800ms"],
  ] as const) {
    const plan = diffForReload(before, parsed(minimal(`timings:\n  ${key}: ${value}\n`)))
    assert.equal(plan.ok, false, `${key} must not change live`)
    assert.deepEqual(
      plan.refused.map((r) => r.path),
      [`timings.${key}`],
    )
    assert.match(plan.refused[0]?.reason ?? "", /restart the agents one at a time/)
    assert.match(formatReloadPlan(plan).join("\n"), new RegExp(`timings\\.${key}: .*lease`))
  }
  // Beside a live change, the lease timing still refuses the whole reload.
  const mixed = diffForReload(
    before,
    parsed(minimal("timings:\n  probe_interval: 1s\n  lease_duration: 6s\n")),
  )
  assert.equal(mixed.ok, false)
  assert.deepEqual(
    mixed.live.map((c) => c.path),
    ["timings.probe_interval"],
  )
})

test("check-config and the agent's start warn when strict semi-sync blocks writes before the quorum goes (witnesses)", async (t) => {
  const member = (name: string, i: number, witness = false) =>
    `    - name: ${name}\n      address: 10.0.2.${i}\n      agent_port: 7946\n${witness ? "      kind: witness\n" : ""}`
  const threeData = [member("db1", 1), member("db2", 2), member("db3", 3)].join("")
  const strict = "semi_sync:\n  mode: strict\n"
  // 3 data nodes: one acknowledgement, two replicas: one data node may go, as may one member.
  assert.deepEqual(configWarnings(await loadOk(t, minimal(strict, threeData))), [])
  // 3 data + 2 witnesses: two acknowledgements from two replicas: one lost data node blocks
  // every write, while the quorum (3 of 5) survives two lost members.
  const withWitnesses = `${threeData}${member("w1", 4, true)}${member("w2", 5, true)}`
  const warnings = configWarnings(await loadOk(t, minimal(strict, withWitnesses)))
  assert.equal(warnings.length, 1)
  assert.match(
    warnings[0] ?? "",
    /waits for 2 acknowledgements and only the 2 data replicas can send them \(witnesses never acknowledge\): with 1 data node lost every write blocks .* survives 2 lost members/,
  )
  // Mode "on" falls back to asynchronous instead of blocking: nothing to warn about.
  assert.deepEqual(
    configWarnings(await loadOk(t, minimal('semi_sync:\n  mode: "on"\n', withWitnesses))),
    [],
  )
})
