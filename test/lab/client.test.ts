// The lab's measuring instruments on real MySQL: a client writing through the
// VIP from its own namespace, a writability sampler, and the invariant checks.
// The handover here is done by hand (what the agents will automate), which
// shows that the instruments see a real VIP move, and catch a split brain.
import assert from "node:assert/strict"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { run, sleep, waitFor } from "./exec.ts"
import {
  convergenceProblems,
  missingAckedWrites,
  readSamplerLog,
  readWriterLog,
  splitBrainRounds,
  writeDowntimeMs,
} from "./invariants.ts"
import { Lab } from "./lab.ts"
import { PREFIX_LEN, VIP } from "./network.ts"

const here = import.meta.dirname

const takeVip = async (lab: Lab, host: string) => {
  const ns = lab.host(host).ns
  await run("ip", ["-n", ns, "addr", "add", `${VIP}/${PREFIX_LEN}`, "dev", "eth0"])
  await run("ip", [
    "netns",
    "exec",
    ns,
    "arping",
    "-q",
    "-U",
    "-c",
    "2",
    "-w",
    "2",
    "-I",
    "eth0",
    VIP,
  ]).catch(() => {})
  await run("ip", [
    "netns",
    "exec",
    ns,
    "arping",
    "-q",
    "-A",
    "-c",
    "2",
    "-w",
    "2",
    "-I",
    "eth0",
    VIP,
  ]).catch(() => {})
}
const dropVip = (lab: Lab, host: string) =>
  run("ip", ["-n", lab.host(host).ns, "addr", "del", `${VIP}/${PREFIX_LEN}`, "dev", "eth0"])

const clientMacOfVip = async (lab: Lab): Promise<string> => {
  const { stdout } = await run("ip", ["-n", lab.state.client.ns, "neigh", "show", VIP])
  return /lladdr ([0-9a-f:]+)/.exec(stdout)?.[1] ?? ""
}
const macOf = async (lab: Lab, host: string): Promise<string> => {
  const { stdout } = await run("ip", ["-n", lab.host(host).ns, "link", "show", "eth0"])
  return /link\/ether ([0-9a-f:]+)/.exec(stdout)?.[1] ?? ""
}

describe("client, sampler and invariants across a handover by hand", () => {
  let lab: Lab
  let writerLog: string
  let samplerLog: string

  before(async () => {
    lab = await Lab.up({ hosts: 3, replication: true, semiSync: true })
    await lab.query("db1", "CREATE DATABASE app")
    await lab.query(
      "db1",
      "CREATE TABLE app.writes (id BIGINT PRIMARY KEY, client_ms BIGINT, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    )
    await lab.waitReplicasCaughtUp("db1")
    await takeVip(lab, "db1")
    writerLog = join(lab.runDir(), "writer.ndjson")
    samplerLog = join(lab.runDir(), "sampler.ndjson")
    await lab.spawn("client", "writer", [
      process.execPath,
      join(here, "client/writer.ts"),
      "--host",
      VIP,
      "--out",
      writerLog,
    ])
    await lab.spawn("client", "sampler", [
      process.execPath,
      join(here, "client/sampler.ts"),
      "--hosts",
      lab.hosts.map((h) => `${h.name}=${h.address}`).join(","),
      "--out",
      samplerLog,
    ])
  })
  after(async () => {
    await lab?.down()
  })

  test("the writer's acknowledged writes survive a handover, the VIP moves, no split brain", async () => {
    await waitFor(
      "the first acknowledged writes",
      () => readWriterLog(writerLog).acked.length > 20,
      20_000,
    )
    assert.equal(
      await clientMacOfVip(lab),
      await macOf(lab, "db1"),
      "the client reaches the VIP at db1",
    )

    const handoverStart = Date.now()
    // The steps of protocol.md section 13, by hand.
    await lab.query("db1", "SET GLOBAL super_read_only = ON")
    await dropVip(lab, "db1")
    const [row] = await lab.query<{ g: string }>("db1", "SELECT @@gtid_executed AS g")
    await lab.query("db2", "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, 10)", [row?.g ?? ""])
    await lab.query("db2", "STOP REPLICA")
    await lab.query("db2", "RESET REPLICA ALL")
    await lab.query("db2", "SET GLOBAL rpl_semi_sync_replica_enabled = OFF")
    await lab.query("db2", "SET GLOBAL rpl_semi_sync_source_enabled = ON")
    await lab.query("db2", "SET GLOBAL super_read_only = OFF")
    await lab.query("db2", "SET GLOBAL read_only = OFF")
    await takeVip(lab, "db2")
    for (const replica of ["db1", "db3"]) {
      await lab.query(replica, "STOP REPLICA")
      await lab.query(replica, "SET GLOBAL rpl_semi_sync_source_enabled = OFF")
      await lab.query(replica, "SET GLOBAL rpl_semi_sync_replica_enabled = ON")
      await lab.query(
        replica,
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = 3306, SOURCE_USER = 'repl', SOURCE_PASSWORD = 'mha-lab-repl', SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, GET_SOURCE_PUBLIC_KEY = 1",
        [lab.host("db2").address],
      )
      await lab.query(replica, "START REPLICA")
    }
    await waitFor(
      "acknowledged writes through the VIP at db2",
      () => readWriterLog(writerLog).acked.some((a) => a.t > handoverStart + 200),
      20_000,
    )
    // Real ARP: the client's neighbour entry moved by gratuitous ARP alone.
    assert.equal(await clientMacOfVip(lab), await macOf(lab, "db2"))
    await sleep(500)
    await lab.stopProcess("client", "writer")

    const log = readWriterLog(writerLog)
    assert.ok(log.acked.length > 20, `${log.acked.length} acknowledged writes`)
    assert.deepEqual(await missingAckedWrites(lab, "db2", log), [], "no acknowledged write lost")
    await waitFor(
      "replicas to converge on db2",
      async () => (await convergenceProblems(lab)).length === 0,
      20_000,
    )
    const downtime = writeDowntimeMs(log, handoverStart)
    assert.ok(downtime > 0 && downtime < 15_000, `write downtime ${downtime} ms`)
    const rounds = readSamplerLog(samplerLog)
    assert.ok(rounds.length > 10)
    assert.deepEqual(splitBrainRounds(rounds), [])
    console.log(
      `handover by hand: write downtime ${downtime} ms, ${log.acked.length} acked, ${log.errors} errors`,
    )
  })

  test("the sampler and the convergence check catch two writable nodes", async () => {
    const before = readSamplerLog(samplerLog).length
    await lab.query("db3", "SET GLOBAL super_read_only = OFF")
    await lab.query("db3", "SET GLOBAL read_only = OFF")
    try {
      await waitFor(
        "the sampler to see db3 writable",
        () => splitBrainRounds(readSamplerLog(samplerLog).slice(before)).length > 0,
        5000,
      )
      assert.match(
        (await convergenceProblems(lab)).join(),
        /expected one writable node, found db2, db3/,
      )
    } finally {
      await lab.query("db3", "SET GLOBAL super_read_only = ON")
    }
    const caught = splitBrainRounds(readSamplerLog(samplerLog).slice(before))
    assert.equal(caught[0]?.nodes.db2, "writable")
    assert.equal(caught[0]?.nodes.db3, "writable")
  })
})
