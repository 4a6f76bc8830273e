// Tests of the lab itself, on real MySQL 9.7 in real network namespaces.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { run, sleep, tryRun, waitFor } from "./exec.ts"
import { Lab, newLabId, runRoot } from "./lab.ts"
import { AGENT_PORT, listNamespaces } from "./network.ts"
import { rootfsPath } from "./rootfs.ts"

const node = process.execPath

/** Everything on this machine that still belongs to lab `id`. */
const leftovers = async (id: string) => {
  const namespaces = (await listNamespaces()).filter((ns) => ns.startsWith(`mhl-${id}-`))
  const ps = spawnSync("ps", ["-eo", "pid,args"], { encoding: "utf8" }).stdout
  const processes = ps.split("\n").filter((l) => l.includes(`/mha-lab/${id}/`))
  const dirs = [join(runRoot(), id), join(rootfsPath(), "var/lib/mha-lab", id)].filter(existsSync)
  return { namespaces, processes, dirs }
}

describe("a three-host lab with replication", () => {
  let lab: Lab

  before(async () => {
    lab = await Lab.up({ hosts: 3, replication: true })
  })
  after(async () => {
    await lab?.down()
  })

  test("every host runs MySQL 9.7 with GTIDs, semi-sync and clone plugins, read-only at boot", async () => {
    for (const h of lab.hosts) {
      const [v] = await lab.query<Record<string, unknown>>(
        h.name,
        "SELECT @@version AS version, @@gtid_mode AS gtid, @@server_id AS id, @@log_bin AS binlog",
      )
      assert.match(String(v?.version), /^9\.7\./)
      assert.equal(v?.gtid, "ON")
      assert.equal(Number(v?.id), h.serverId)
      assert.equal(Number(v?.binlog), 1)
      const plugins = await lab.query<{ name: string }>(
        h.name,
        "SELECT plugin_name AS name FROM information_schema.plugins WHERE plugin_status = 'ACTIVE' AND plugin_name IN ('rpl_semi_sync_source', 'rpl_semi_sync_replica', 'clone')",
      )
      assert.equal(plugins.length, 3, `${h.name}: ${JSON.stringify(plugins)}`)
      const users = await lab.query<{ user: string; plugin: string }>(
        h.name,
        "SELECT user, plugin FROM mysql.user WHERE user IN ('mha', 'repl', 'app')",
      )
      assert.deepEqual(
        users.map((u) => u.plugin),
        ["caching_sha2_password", "caching_sha2_password", "caching_sha2_password"],
      )
    }
    const views = await lab.topology()
    assert.equal(views[0]?.superReadOnly, false, "db1 was made the writable source")
    assert.equal(views[1]?.superReadOnly, true)
    assert.equal(views[2]?.superReadOnly, true)
  })

  test("a write on the source is visible on both replicas", async () => {
    await lab.query("db1", "CREATE DATABASE IF NOT EXISTS app")
    await lab.query("db1", "CREATE TABLE app.lab_check (id INT PRIMARY KEY, note VARCHAR(64))")
    await lab.query("db1", "INSERT INTO app.lab_check VALUES (1, 'from db1')")
    await lab.waitReplicasCaughtUp("db1")
    for (const replica of ["db2", "db3"]) {
      const rows = await lab.query<{ note: string }>(
        replica,
        "SELECT note FROM app.lab_check WHERE id = 1",
      )
      assert.deepEqual(
        rows.map((r) => r.note),
        ["from db1"],
        replica,
      )
      const status = await lab.replicaStatus(replica)
      assert.equal(status?.sourceHost, lab.host("db1").address)
      assert.equal(status?.ioRunning, "Yes")
    }
  })

  test("isolating a host blocks its traffic and heal restores it", async () => {
    assert.equal(await lab.canReach("db2", "db1"), true)
    await lab.inject({ _tag: "Isolate", host: "db2" })
    assert.equal(await lab.canReach("db2", "db1"), false, "db2 must not reach db1")
    assert.equal(await lab.canReach("db1", "db2"), false, "db1 must not reach db2")
    assert.equal(await lab.canReach("db3", "db1"), true, "db3 is not isolated")
    // Replication really stops: a write on db1 does not arrive on db2.
    await lab.query("db1", "INSERT INTO app.lab_check VALUES (2, 'during isolation')")
    await sleep(1000)
    assert.equal((await lab.query("db2", "SELECT id FROM app.lab_check WHERE id = 2")).length, 0)
    await lab.inject({ _tag: "Heal", hosts: [] })
    assert.equal(await lab.canReach("db2", "db1"), true)
    await waitFor(
      "db2 to receive the write made during its isolation",
      async () =>
        (await lab.query("db2", "SELECT id FROM app.lab_check WHERE id = 2")).length === 1,
      30_000,
    )
  })

  test("a one-way cut drops only one direction", async () => {
    // db2 -> db1 dropped: db2's SYN never arrives; db1's SYN arrives at db2 but the SYN-ACK is dropped.
    await lab.inject({ _tag: "CutOneWay", from: "db2", to: "db1" })
    const r = await tryRun("ip", [
      "netns",
      "exec",
      lab.host("db1").ns,
      "ping",
      "-c",
      "1",
      "-W",
      "1",
      lab.host("db2").address,
    ])
    assert.equal(r.ok, false, "db1's ping gets no reply from db2")
    const counters = await run("ip", [
      "netns",
      "exec",
      lab.host("db1").ns,
      "nft",
      "list",
      "table",
      "inet",
      "mhalab",
    ])
    assert.doesNotMatch(counters.stdout, /drop/, "db1 itself drops nothing")
    assert.equal(await lab.canReach("db3", "db1"), true)
    await lab.inject({ _tag: "Heal", hosts: [] })
    assert.equal(await lab.canReach("db2", "db1"), true)
  })

  test("cutting agent traffic leaves MySQL traffic alone, and the reverse", async () => {
    // Something listening on the agent port of db1, as the agent will.
    await lab.spawn("db1", "listener", [
      node,
      "-e",
      `require("node:net").createServer((s) => s.end()).listen(${AGENT_PORT})`,
    ])
    await waitFor("the listener on db1", () => lab.canReach("db2", "db1", AGENT_PORT), 10_000)
    await lab.inject({ _tag: "CutAgent", a: "db1", b: "db2" })
    assert.equal(await lab.canReach("db2", "db1", AGENT_PORT), false)
    assert.equal(await lab.canReach("db2", "db1"), true, "MySQL still reachable")
    assert.equal(await lab.canReach("db3", "db1", AGENT_PORT), true, "db3 not cut")
    await lab.inject({ _tag: "Heal", hosts: [] })

    await lab.inject({ _tag: "CutReplication", a: "db1", b: "db3" })
    assert.equal(await lab.canReach("db3", "db1"), false)
    assert.equal(await lab.canReach("db3", "db1", AGENT_PORT), true, "agent port still reachable")
    await lab.inject({ _tag: "Heal", hosts: [] })
    assert.equal(await lab.canReach("db3", "db1"), true)
  })

  test("random loss drops a share of packets", async () => {
    await lab.inject({ _tag: "Loss", percent: 50, hosts: ["db3"] })
    const r = await tryRun("ip", [
      "netns",
      "exec",
      lab.host("db1").ns,
      "ping",
      "-c",
      "40",
      "-i",
      "0.01",
      "-W",
      "1",
      "-q",
      lab.host("db3").address,
    ])
    await lab.inject({ _tag: "Heal", hosts: [] })
    const m = /(\d+) received/.exec(r.stdout || r.stderr)
    const received = Number(m?.[1] ?? "0")
    // Only db3's input drops, so about half of the echo requests arrive and are answered.
    assert.ok(received > 5 && received < 35, `received ${received} of 40 with 50 % loss`)
  })

  test("a killed mysqld is restarted by the supervisor and keeps its data", async () => {
    const before = lab.mysqldPid("db2")
    assert.ok(before !== undefined)
    await lab.inject({ _tag: "KillMysqld", host: "db2" })
    await waitFor(
      "a new mysqld on db2",
      () => {
        const now = lab.mysqldPid("db2")
        return now !== undefined && now !== before
      },
      20_000,
    )
    await lab.waitMysqld("db2")
    const rows = await lab.query("db2", "SELECT id FROM app.lab_check WHERE id = 1")
    assert.equal(rows.length, 1)
    const events = await lab.supervisorEvents("db2")
    assert.ok(
      events.some((e) => e.includes(`exited ${before} status 137`)),
      events.join("\n"),
    )
    // A restarted replica resumes replication by itself.
    await waitFor(
      "db2 to replicate again",
      async () => (await lab.replicaStatus("db2"))?.ioRunning === "Yes",
      30_000,
    )
  })

  test("a stopped mysqld cannot restart until started, and the restart command says so", async () => {
    await lab.inject({ _tag: "StopMysqld", host: "db3" })
    await sleep(1500)
    assert.equal(await lab.isMysqldUp("db3"), false)
    const restart = await tryRun("bash", ["-c", `timeout 10 ${lab.restartCommand("db3")}`])
    assert.equal(restart.ok, false)
    assert.match(restart.stderr, /disabled and cannot start/)
    await lab.inject({ _tag: "StartMysqld", host: "db3" })
    assert.equal(await lab.isMysqldUp("db3"), true)
    // The restart command of a healthy host restarts it and succeeds.
    const pid = lab.mysqldPid("db3")
    const ok = await tryRun("bash", ["-c", lab.restartCommand("db3")])
    assert.equal(ok.ok, true, ok.stderr)
    assert.notEqual(lab.mysqldPid("db3"), pid)
  })

  test("a paused mysqld hangs clients and answers again after resume", async () => {
    await lab.inject({ _tag: "Pause", host: "db3", process: "mysqld" })
    try {
      assert.equal(await lab.isMysqldUp("db3"), false, "a SIGSTOPped mysqld does not answer")
    } finally {
      await lab.inject({ _tag: "Resume", host: "db3", process: "mysqld" })
    }
    await lab.waitMysqld("db3", 10_000)
  })
})

describe("teardown", () => {
  test("down removes every namespace, process and directory of the lab", async () => {
    const lab = await Lab.up({ hosts: 2 })
    const present = await leftovers(lab.id)
    assert.equal(present.namespaces.length, 4, "2 hosts, a client and a bridge")
    assert.ok(present.processes.length >= 2, "two mysqld processes")
    await lab.down()
    assert.deepEqual(await leftovers(lab.id), { namespaces: [], processes: [], dirs: [] })
    await Lab.down(lab.id) // idempotent
  })

  test("down cleans up after a test process that crashed midway", async () => {
    const id = newLabId()
    // A child process brings a lab up and dies by SIGKILL without tearing down.
    const script = `import { Lab } from ${JSON.stringify(join(import.meta.dirname, "lab.ts"))}
await Lab.up({ id: ${JSON.stringify(id)}, hosts: 1 })
process.kill(process.pid, "SIGKILL")`
    const child = spawnSync(node, ["--input-type=module", "-e", script], { encoding: "utf8" })
    assert.equal(child.signal, "SIGKILL", child.stderr)
    const orphaned = await leftovers(id)
    assert.equal(orphaned.namespaces.length, 3, "the crashed test left its lab behind")
    assert.ok(orphaned.processes.length >= 1)
    assert.ok((await Lab.list()).includes(id))
    await Lab.down(id)
    assert.deepEqual(await leftovers(id), { namespaces: [], processes: [], dirs: [] })
  })
})
