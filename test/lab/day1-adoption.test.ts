// Issue 14 items 3 and 4 on the plain lab (network namespaces and chrooted
// mysqld, not booted hosts), one short cluster:
// - the agent's MySQL account is made with `mha-agent mysql-accounts` (exactly
//   the privileges it checks), and `mha-agent check-mysql` passes on every
//   lab mysqld, then names a missing PROCESS and a duplicate server_id;
// - adoption: db1 is a semi-sync source taking writes (super_read_only OFF),
//   db2 and db3 replicate from it, db2 naming it by another address form
//   (IPv4-mapped IPv6); the agents start one host at a time, the source's
//   first, with a writer on db1's address throughout: db1 is never read-only,
//   never two nodes are writable, no write fails, and db1 is ACTIVE in term 1
//   once db2's agent runs (a quorum: which needs db2's source recognised).
import assert from "node:assert/strict"
import { execFile } from "node:child_process"
import { mkdir, readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { test } from "node:test"
import { agentCommand, LabAgents } from "./agents.ts"
import { sleep, tryRun, waitFor } from "./exec.ts"
import {
  convergenceProblems,
  missingAckedWrites,
  readSamplerLog,
  readWriterLog,
  splitBrainRounds,
  writeDowntimeMs,
} from "./invariants.ts"
import { LAB_USERS, Lab } from "./lab.ts"

const here = import.meta.dirname
const MONITOR = { user: "mha_monitor", password: "mha-lab-monitor" }

interface Status {
  readonly term: number
  readonly leader: string | null
  readonly leaderActive: boolean
  readonly members: ReadonlyArray<{ readonly name: string; readonly role: string }>
}

test("day-1 on the plain lab: mysql-accounts and check-mysql, then adoption of a running semi-sync set with no write lost, failed or blocked by a fence", async () => {
  const t0 = Date.now()
  const lab = await Lab.up({ hosts: 3, replication: true, semiSync: true })
  let agents: LabAgents | undefined
  // Like tryRun, but keeps what a failing command printed.
  const inNs = (host: string, argv: ReadonlyArray<string>) =>
    new Promise<{ ok: boolean; stdout: string; stderr: string }>((resolve) => {
      execFile(
        "ip",
        ["netns", "exec", lab.host(host).ns, ...argv],
        { timeout: 60_000, encoding: "utf8" },
        (error, stdout, stderr) => resolve({ ok: error === null, stdout, stderr }),
      )
    })
  const cli = (host: string, args: ReadonlyArray<string>) =>
    inNs(host, [...agentCommand(), ...args])
  const status = async (host: string): Promise<Status | null> => {
    const r = await tryRun("ip", [
      "netns",
      "exec",
      lab.host(host).ns,
      ...agentCommand(),
      "status",
      "--json",
      "--socket",
      agents!.socketPath(host),
    ])
    if (!r.ok) return null
    return (JSON.parse(r.stdout) as { status: Status }).status
  }
  try {
    const db1 = lab.host("db1")
    // db2 names its source by another address form than the config's.
    await lab.query("db2", "STOP REPLICA")
    await lab.query("db2", "CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?", [
      `::ffff:${db1.address}`,
    ])
    await lab.query("db2", "START REPLICA")
    await waitFor(
      "db2 to replicate from ::ffff:db1",
      async () => (await lab.replicaStatus("db2"))?.ioRunning === "Yes",
      30_000,
    )
    await lab.query("db1", "CREATE DATABASE app")
    await lab.query(
      "db1",
      "CREATE TABLE app.writes (id BIGINT PRIMARY KEY, client_ms BIGINT, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    )

    // The accounts, as an operator makes them: the config's password files, mysql-accounts.
    const secrets = join(lab.runDir(), "day1")
    await mkdir(secrets, { recursive: true })
    await writeFile(join(secrets, "monitor.password"), `${MONITOR.password}\n`, { mode: 0o600 })
    await writeFile(join(secrets, "replication.password"), `${LAB_USERS.replication.password}\n`, {
      mode: 0o600,
    })
    agents = await LabAgents.prepare(lab, {
      timings: { restart_timeout: "10s", apply_timeout: "10s" },
      extra: {
        mysql: {
          monitor: { user: MONITOR.user, password_file: join(secrets, "monitor.password") },
          replication: {
            user: LAB_USERS.replication.user,
            password_file: join(secrets, "replication.password"),
          },
          get_source_public_key: true,
          connect_timeout: "1s",
          query_timeout: "1s",
        },
      },
    })
    const config = agents.configPath("db1")
    const accounts = await cli("db1", ["mysql-accounts", "--config", config])
    assert.ok(accounts.ok, accounts.stderr)
    const grant = /^GRANT (.+) ON \*\.\* TO 'mha_monitor'@'%';$/m.exec(accounts.stdout)?.[1]
    assert.ok(grant?.split(", ").includes("PROCESS"), accounts.stdout)
    const statements = accounts.stdout
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("--"))
      .map((l) => l.replace(/;$/, ""))
    for (const sql of statements) await lab.query("db1", sql) // replicated to db2 and db3
    // A second account with every privilege but PROCESS, for the negative check below.
    await lab.query("db1", `CREATE USER 'mha_partial'@'%' IDENTIFIED BY '${MONITOR.password}'`)
    const partial = grant!
      .split(", ")
      .filter((p) => p !== "PROCESS")
      .join(", ")
    await lab.query("db1", `GRANT ${partial} ON *.* TO 'mha_partial'@'%'`)
    await lab.waitReplicasCaughtUp("db1")

    // check-mysql passes on every lab mysqld (its my.cnf says super_read_only=ON at boot).
    for (const h of lab.hosts) {
      const r = await cli(h.name, [
        "check-mysql",
        "--config",
        agents.configPath(h.name),
        "--my-cnf",
        lab.hostPath(h.name, "my.cnf"),
      ])
      assert.ok(r.ok, `check-mysql on ${h.name}: ${r.stderr}`)
      assert.match(r.stdout, /no problems\n$/)
      assert.match(r.stdout, / ok +super_read_only: ON at boot/)
      assert.match(r.stdout, / ok +privileges: mha_monitor@% has every privilege/)
    }
    const setupMs = Date.now() - t0

    // The writer on db1's own address (no VIP before the agents), the sampler on every node.
    const writerLog = join(lab.runDir(), "writer.ndjson")
    const samplerLog = join(lab.runDir(), "sampler.ndjson")
    await lab.spawn("client", "sampler", [
      process.execPath,
      join(here, "client/sampler.ts"),
      "--hosts",
      lab.hosts.map((h) => `${h.name}=${h.address}`).join(","),
      "--out",
      samplerLog,
    ])
    await lab.spawn("client", "writer", [
      process.execPath,
      join(here, "client/writer.ts"),
      "--host",
      db1.address,
      "--out",
      writerLog,
    ])
    await waitFor("writes on db1", () => readWriterLog(writerLog).acked.length > 20, 30_000)
    const agentsFrom = Date.now()

    // 1. The source's agent alone: no quorum, no term; the source stays writable.
    await agents.start("db1")
    await sleep(8_000) // two lease durations
    assert.equal((await lab.view("db1")).superReadOnly, false, "db1 fenced by its own agent")
    const alone = await status("db1")
    assert.equal(alone?.term, 0, JSON.stringify(alone))
    assert.equal(alone?.leader, null)

    // 2. A replica's agent: a quorum. db1 is ACTIVE in term 1 (db2's ::ffff: source recognised).
    const quorumAt = Date.now()
    await agents.start("db2")
    await waitFor(
      "db1 ACTIVE in term 1",
      async () => {
        const s = await status("db1")
        return (
          s?.term === 1 &&
          s.leader === "db1" &&
          s.members.find((m) => m.name === "db1")?.role === "ACTIVE"
        )
      },
      40_000,
      250,
    )
    const activeMs = Date.now() - quorumAt

    // 3. The last agent joins the term.
    await agents.start("db3")
    await waitFor(
      "db3's agent to follow db1 in term 1",
      async () => {
        const s = await status("db3")
        return s?.term === 1 && s.leader === "db1" && s.leaderActive
      },
      30_000,
      250,
    )
    await sleep(3_000)
    await lab.stopProcess("client", "writer")
    await lab.stopProcess("client", "sampler")

    const log = readWriterLog(writerLog)
    assert.equal(log.errors, 0, "writes failed")
    const rounds = readSamplerLog(samplerLog)
    const during = rounds.filter((r) => r.t >= agentsFrom)
    assert.ok(during.length > 50, `only ${during.length} sampler rounds`)
    assert.deepEqual(splitBrainRounds(rounds), [], "two writable nodes")
    const db1ReadOnly = during.filter((r) => r.nodes.db1 !== "writable")
    assert.deepEqual(
      db1ReadOnly.slice(0, 3),
      [],
      `db1 not writable in ${db1ReadOnly.length} rounds`,
    )
    assert.deepEqual(await missingAckedWrites(lab, "db1", log), [])
    // Convergence, with db2's source in either address form (convergenceProblems wants the config's).
    let problems: string[] = []
    await waitFor(
      "convergence",
      async () => {
        problems = (await convergenceProblems(lab)).filter(
          (p) => !p.startsWith(`db2 replicates from ::ffff:${db1.address}, not db1`),
        )
        const r = await lab.replicaStatus("db2")
        if (r?.ioRunning !== "Yes" || r.sqlRunning !== "Yes")
          problems.push(`db2: ${JSON.stringify(r)}`)
        return problems.length === 0
      },
      20_000,
    ).catch(() => assert.fail(problems.join("; ")))
    const gapMs = writeDowntimeMs(log, agentsFrom)
    assert.ok(gapMs < 2_000, `longest time between two acknowledged writes: ${gapMs} ms`)
    const db2Source = (await lab.replicaStatus("db2"))?.sourceHost

    // check-mysql names one missing privilege and one broken setting, with the fix.
    const partialConfig = join(secrets, "partial.yaml")
    await writeFile(
      partialConfig,
      (await readFile(config, "utf8")).replace(`user: ${MONITOR.user}`, "user: mha_partial"),
    )
    const noProcess = await cli("db1", ["check-mysql", "--config", partialConfig])
    assert.equal(noProcess.ok, false)
    assert.match(
      noProcess.stdout,
      /PROBLEM privileges: mha_partial@% lacks PROCESS: GRANT PROCESS ON \*\.\* TO mha_partial@%/,
    )
    assert.match(noProcess.stdout, /1 problem: fix it/)
    await lab.query("db3", "SET GLOBAL server_id = 1")
    const dupId = await cli("db1", ["check-mysql", "--config", config, "--member", "db3"])
    await lab.query("db3", "SET GLOBAL server_id = 3")
    assert.equal(dupId.ok, false)
    assert.match(
      dupId.stdout,
      /PROBLEM server_id: 1 is also the server_id of db1: give each mysqld its own/,
    )
    console.log(
      `day1-adoption: setup ${setupMs} ms; ${log.acked.length} writes acknowledged, ${log.errors} failed; ` +
        `db1 ACTIVE in term 1 ${activeMs} ms after db2's agent started; longest gap between acknowledged writes ` +
        `since the first agent ${gapMs} ms; ${during.length} sampler rounds, db1 writable in all; ` +
        `db2 Source_Host at the end: ${db2Source}; total ${Date.now() - t0} ms`,
    )
  } catch (e) {
    const kept = join("/tmp", `mha-lab-day1-${lab.id}`)
    await tryRun("cp", ["-r", lab.runDir(), kept])
    throw new Error(`${e instanceof Error ? e.message : String(e)} (logs in ${kept})`)
  } finally {
    await lab.down()
  }
})
