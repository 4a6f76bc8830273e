// A real agent keeps running (or refuses to start, for its config) with a
// clear log line when given bad input: a broken config, a peer with a wrong
// certificate, a malformed peer message, a bad config on SIGHUP, or a fiber
// that dies of a defect.
import assert from "node:assert/strict"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { agentCommand, LabAgents } from "./agents.ts"
import { type AbuseResult, abuseControlSocket } from "./control-abuse.ts"
import { alive, sleep, tryRun, waitFor } from "./exec.ts"
import { agentHttp } from "./http-client.ts"
import { Lab } from "./lab.ts"
import { AGENT_PORT, VIP } from "./network.ts"

const here = import.meta.dirname
const CHILDREN = ["decision-loop", "ticker", "mesh-inbound"]

const agentPid = (lab: Lab, host: string): number =>
  Number(readFileSync(join(lab.runDir(), host, "agent.pid"), "utf8"))
const logOf = (agents: LabAgents, host: string): string =>
  readFileSync(agents.logPath(host), "utf8")

/** The one node that is writable, once there is exactly one. */
const waitForWritable = async (lab: Lab): Promise<string> => {
  let primary = ""
  await waitFor(
    "one writable primary",
    async () => {
      const writable = (await lab.topology()).filter((v) => v.up && v.superReadOnly === false)
      primary = writable[0]?.host ?? ""
      return writable.length === 1
    },
    30_000,
  )
  return primary
}

describe("a running cluster of agents under bad input", () => {
  let lab: Lab
  let agents: LabAgents

  before(async () => {
    lab = await Lab.up({ hosts: 3, replication: true, semiSync: true })
    // Every supervised fiber of every agent dies once, early on.
    agents = await LabAgents.prepare(lab, {
      env: {
        MHA_AGENT_INJECT_DEFECT: "decision-loop:40,ticker:1500,mesh-inbound:2500",
        // The packaged binary's young generation (packaging/build.sh), so the
        // control socket's RSS bound is the one a packaged agent has; the
        // other flags are not allowed in NODE_OPTIONS.
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --max-semi-space-size=1`.trim(),
      },
      timings: { recovery_block_period: "1m" },
      extra: { vip: { address: "10.88.0.100/24", interface: "eth0", garp_refresh: "3s" } },
    })
    await agents.startAll()
  })
  after(async () => {
    await lab?.down()
  })

  test("a fiber killed by a defect is restarted and the agent carries on", async () => {
    await waitFor(
      "every fiber's crash and restart in every agent's log",
      () =>
        lab.hosts.every((h) =>
          CHILDREN.every((c) =>
            new RegExp(`"child":"${c}".*crashed: .*injected defect`).test(logOf(agents, h.name)),
          ),
        ),
      30_000,
    )
    const primary = await waitForWritable(lab)
    for (const h of lab.hosts) {
      assert.ok(alive(agentPid(lab, h.name)), `${h.name}'s agent still runs`)
      const lines = logOf(agents, h.name)
        .split("\n")
        .filter((l) => l.includes('"event":"fiber-restart"'))
      assert.equal(lines.length, CHILDREN.length, lines.join("\n"))
    }
    console.log(
      `restart log lines on db1:\n${logOf(agents, "db1")
        .split("\n")
        .filter((l) => l.includes("fiber-restart"))
        .join("\n")}\nprimary afterwards: ${primary}`,
    )
  })

  test("the primary announces its VIP again every garp_refresh (3 s): arping runs again and again", async () => {
    const primary = await waitForWritable(lab)
    await waitFor(
      `${primary} to hold the VIP`,
      async () =>
        (
          await lab.exec(primary, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        ).stdout.includes(` ${VIP}/`),
      20_000,
    )
    // Each burst is one arping run, counted by the agent's VIP adapter.
    const bursts = async (): Promise<number> => {
      const page = (await agentHttp(lab, primary, "/metrics")).body
      return Number(
        /^mha_vip_garp_bursts_total\{result="ok"\} (\d+)$/m.exec(page)?.[1] ?? Number.NaN,
      )
    }
    // Past the acquisition's own bursts (now and garp_delay, 5 s, later): what follows is refresh.
    await sleep(6_000)
    const before = await bursts()
    assert.ok(Number.isFinite(before), "the primary's /metrics shows mha_vip_garp_bursts_total")
    // The core asks for a burst every garp_refresh (vip-refresh.ts); garp_count 5 is about 4 s
    // of arping, and a refresh while a burst runs is skipped: a burst every 6 s or so.
    await sleep(15_000)
    const after = await bursts()
    assert.ok(after - before >= 2, `garp bursts ${before} -> ${after} on ${primary} in 15 s`)
    console.log(`garp bursts on ${primary}: ${before} -> ${after} in 15 s (garp_refresh 3 s)`)
  })

  test("a peer with a certificate from another CA, or of a non-member, is refused; the agent runs on", async () => {
    const target = lab.host("db3")
    for (const [who, files] of [
      ["rogue", agents.certs.rogue],
      ["outsider", agents.certs.outsider],
    ] as const) {
      const r = await lab.exec("client", [
        process.execPath,
        join(here, "mesh-raw.ts"),
        JSON.stringify({
          address: target.address,
          port: AGENT_PORT,
          servername: "db3",
          ca: agents.certs.ca,
          cert: files.cert,
          key: files.key,
          frames: [{ kind: "json", value: { _tag: "Heartbeat", from: "db1" } }],
          lingerMs: 300,
        }),
      ])
      const result = JSON.parse(r.stdout) as { opened: boolean }
      assert.equal(
        result.opened && who === "outsider",
        false,
        `${who} must not get a working connection`,
      )
    }
    await waitFor(
      "db3 to log both refusals",
      () => {
        const log = logOf(agents, "db3")
        return /bad-certificate/.test(log) && /not-a-member/.test(log)
      },
      10_000,
    )
    assert.ok(alive(agentPid(lab, "db3")))
  })

  test("malformed peer messages are dropped and logged; the agent runs on", async () => {
    // db1's own certificate, dialling db3 (db1 dials db3 in this mesh): a real member sending garbage.
    const r = await lab.exec("db1", [
      process.execPath,
      join(here, "mesh-raw.ts"),
      JSON.stringify({
        address: lab.host("db3").address,
        port: AGENT_PORT,
        servername: "db3",
        ca: agents.certs.ca,
        cert: agents.certs.members.db1?.cert,
        key: agents.certs.members.db1?.key,
        frames: [
          { kind: "text", data: "{not json" },
          { kind: "json", value: { _tag: "Heartbeat", from: "db1", term: "not a number" } },
          { kind: "json", value: { _tag: "NoSuchMessage" } },
          { kind: "binary", bytes: 64 },
        ],
        lingerMs: 300,
      }),
    ])
    assert.equal((JSON.parse(r.stdout) as { opened: boolean }).opened, true)
    await waitFor(
      "db3 to log the dropped messages",
      () => /mesh-message-dropped|dropped/.test(logOf(agents, "db3")),
      10_000,
    )
    assert.ok(alive(agentPid(lab, "db3")))
    // The mesh heals (db1 dials db3 again) and the cluster still has one primary.
    await sleep(2000)
    await waitForWritable(lab)
  })

  test("SIGHUP with a broken config keeps the running one and says why", async () => {
    const file = agents.configPath("db2")
    const good = readFileSync(file, "utf8")
    writeFileSync(
      file,
      good.replace(/lease_duration: .*|timings:\n/, "timings:\n  lease_duration: banana\n"),
    )
    try {
      process.kill(agentPid(lab, "db2"), "SIGHUP")
      await waitFor(
        "db2 to refuse the reload",
        () => /reload-refused/.test(logOf(agents, "db2")),
        10_000,
      )
      assert.match(logOf(agents, "db2"), /timings\.lease_duration/)
      assert.ok(alive(agentPid(lab, "db2")))
    } finally {
      writeFileSync(file, good)
    }
  })

  test("a replica's stopped SQL thread is started again, logged with its reason and counted; excluded, it is left stopped", async () => {
    const primary = await waitForWritable(lab)
    const replica = lab.hosts.map((h) => h.name).find((n) => n !== primary) ?? ""
    const sqlRunning = async (): Promise<boolean> => {
      const [row] = await lab.query<{ Replica_SQL_Running: string }>(replica, "SHOW REPLICA STATUS")
      return row?.Replica_SQL_Running === "Yes"
    }
    const metric = async (re: RegExp): Promise<number> =>
      Number(re.exec((await agentHttp(lab, replica, "/metrics")).body)?.[1] ?? Number.NaN)
    const restarts = () => metric(/^mha_replication_repairs_total\{kind="start_replica"\} (\d+)$/m)
    const excluded = () =>
      metric(new RegExp(`^mha_node_excluded\\{node="${replica}"\\} (\\d)$`, "m"))
    const logged = () =>
      logOf(agents, replica)
        .split("\n")
        .filter((l) => l.includes('"event":"replication-restart"'))
    await waitFor(
      `${replica}'s /metrics to show mha_replication_repairs_total`,
      async () => Number.isFinite(await restarts().catch(() => Number.NaN)),
      30_000,
    )
    const before = await restarts()
    const loggedBefore = logged().length
    // 1. The agent repairs it, and says so.
    await lab.query(replica, "STOP REPLICA SQL_THREAD")
    await waitFor(`${replica}'s SQL thread to run again`, sqlRunning, 10_000)
    await waitFor("the repair counted", async () => (await restarts()) >= before + 1, 5_000)
    const sqlOnly = new RegExp(
      `"msg":"(I/O and )?SQL threads? of replication from ${primary} stopped with no error: starting replication`,
    )
    const line = logged()
      .slice(loggedBefore)
      .find((l) => sqlOnly.test(l))
    assert.ok(
      line !== undefined,
      `a replication-restart line for the SQL thread in ${replica}'s log`,
    )
    console.log(`repair logged on ${replica}: ${line}`)
    // 2. Excluded for maintenance: the operator's STOP stays.
    await agents.cli(replica, ["exclude", replica])
    await waitFor(`${replica} to know it is excluded`, async () => (await excluded()) === 1, 10_000)
    const counted = await restarts()
    await lab.query(replica, "STOP REPLICA SQL_THREAD")
    await sleep(3_000)
    assert.equal(await sqlRunning(), false, "an excluded node's stopped SQL thread stays stopped")
    assert.equal(await restarts(), counted)
    // 3. Included again: repaired.
    await agents.cli(replica, ["include", replica])
    await waitFor(`${replica}'s SQL thread to run again after include`, sqlRunning, 10_000)
    assert.equal(await restarts(), counted + 1)
  })

  test("the control socket under 200 clients looping status and 50 sending garbage: answered or refused with a reason, lease kept, RSS bounded", async () => {
    const primary = await waitForWritable(lab)
    await waitFor(
      `${primary}'s agent to publish its state`,
      async () =>
        /^mha_state_published 1$/m.test(
          (await agentHttp(lab, primary, "/metrics").catch(() => ({ body: "" }))).body,
        ),
      30_000,
    )
    const pid = agentPid(lab, primary)
    const rss = (): number =>
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024
    const rssBefore = rss()
    let rssMax = rssBefore
    const sampler = setInterval(() => {
      rssMax = Math.max(rssMax, rss())
    }, 100)
    const started = Date.now()
    let result: AbuseResult
    try {
      result = await abuseControlSocket({
        socketPath: agents.socketPath(primary),
        statusClients: 200,
        garbageClients: 50,
        durationMs: 6_000,
      })
    } finally {
      clearInterval(sampler)
    }
    const took = Date.now() - started
    await sleep(5_000)
    const rssAfter = rss()
    console.log(
      `control socket abuse on ${primary} for ${took} ms: ${result.statusOk} statuses, refused ${JSON.stringify([...result.refused])}, ` +
        `garbage answered ${JSON.stringify([...result.garbageAnswered])}, closed ${result.garbageClosed}; ` +
        `client socket errors ${JSON.stringify([...result.errors])}; ` +
        `RSS ${rssBefore.toFixed(1)} -> max ${rssMax.toFixed(1)} -> ${rssAfter.toFixed(1)} MiB 5 s later`,
    )
    assert.deepEqual(
      result.wrong.slice(0, 5),
      [],
      "every reply a status or a refusal that says why",
    )
    // Throughput depends on the machine (185 in 6 s on a loaded 2-core one): served, not fast.
    assert.ok(result.statusOk >= 50, `statuses answered: ${result.statusOk}`)
    // A flooding client may see its write fail (EPIPE) before it reads the
    // refusal, more so on a loaded machine: each refusal must be seen, not by every client.
    const answered = [...result.garbageAnswered.keys()]
    for (const why of ["request too long", "malformed request"]) {
      assert.ok(
        answered.some((k) => k.includes(`: ${why}`)),
        `a garbage client was told "${why}"`,
      )
    }
    // The bound is the packaged agent's (its 64 MB heap: +23.6 MiB peak seen);
    // run from source V8's old generation is not capped and grows further:
    // +47 to +75 at earlier stops; at stop 22 on a quiet machine +58, +64,
    // +109 in fresh-clone CI runs and +114, +89 alone, the same at 9c0e99d
    // (+107, +100) as at 164f0ff, so no change of the agent's. There the test
    // checks a bound against runaway growth, not the packaged figure.
    const bound = process.env.MHA_AGENT_BIN ? 50 : 150
    assert.ok(
      rssMax - rssBefore < bound,
      `RSS grew by ${(rssMax - rssBefore).toFixed(1)} MiB (bound ${bound})`,
    )
    // Run from source the heap is not the binary's (only its young generation
    // is): RSS stays near its peak for a while (+42 MiB 5 s later once); the
    // packaged agent came back to +13.5 MiB. Bounded, and not growing afterwards.
    assert.ok(
      rssAfter <= rssMax + 5,
      `RSS after: ${rssAfter.toFixed(1)} MiB, peak ${rssMax.toFixed(1)}`,
    )
    assert.ok(alive(pid))
    // It kept its lease: still the one writable primary, with the same agent.
    assert.equal(await waitForWritable(lab), primary)
    const status = await agents.cli(primary, ["status", "--json"])
    assert.equal((JSON.parse(status.stdout) as { ok: boolean }).ok, true)
  })
})

test("an agent with a broken config refuses to start and names file, path and expectation", async () => {
  const dir = join("/tmp", `mha-badcfg-${process.pid}`)
  const file = join(dir, "config.yaml")
  await import("node:fs/promises").then((fs) => fs.mkdir(dir, { recursive: true }))
  writeFileSync(
    file,
    "cluster:\n  name: c\n  members:\n    - name: db1\n      address: 10.0.0.1\n      agent_port: 7400\n      priority: high\nnode: db1\n",
  )
  try {
    const r = await tryRun(agentCommand()[0]!, [
      ...agentCommand().slice(1),
      "run",
      "--config",
      file,
    ])
    assert.equal(r.ok, false)
    assert.match(r.stderr, /exited 78/, "EX_CONFIG, so that systemd does not retry")
    assert.match(r.stderr, /the config is invalid; not starting/)
    assert.match(r.stderr, new RegExp(`${file}:7:\\d+: cluster\\.members\\[0\\]\\.priority`))
  } finally {
    await import("node:fs/promises").then((fs) => fs.rm(dir, { recursive: true, force: true }))
  }
})
