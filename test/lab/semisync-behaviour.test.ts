// What MySQL 9.7 really does to a commit that waits for a semi-sync
// acknowledgement, checked before the agent relies on it (protocol.md
// section 9, "Never release a waiting commit"). The demotion of an old
// primary is built on these facts:
// - disabling rpl_semi_sync_source_enabled releases a waiting commit and its
//   client gets OK (so a node that is not the lease holder must never do it
//   while a live client waits);
// - `SET GLOBAL super_read_only = ON` pends behind such a commit, and when
//   its lock wait times out the old value stays;
// - KILL CONNECTION of a waiting session gives its client an error at once;
//   released later, the commit lands on the server but the client never saw OK;
// - kill -9 of mysqld while a commit waits gives the client an error, and the
//   restarted server holds the transaction (unacknowledged: the node is
//   DIVERGED afterwards) and is read-only;
// - lowering rpl_semi_sync_source_wait_for_replica_count releases a waiting
//   commit that has that many acknowledgements, like disabling semi-sync: its
//   client gets OK; lowering rpl_semi_sync_source_timeout does not release a
//   commit already waiting (its deadline was set when it began to wait).
import assert from "node:assert/strict"
import { after, before, describe, test } from "node:test"
import mysql from "mysql2/promise"
import { waitFor } from "./exec.ts"
import { LAB_USERS, Lab } from "./lab.ts"

/** The outcome of a statement, recorded when it settles (never awaited blindly). */
interface Settled {
  readonly ok: boolean
  readonly error?: string
  readonly at: number
}
interface Pending {
  readonly id: number
  settled: Settled | undefined
  readonly done: Promise<void>
}
/** Read through a function: the compiler must not narrow a field that a callback sets. */
const outcome = (p: Pending): Settled | undefined => p.settled

describe("semi-sync waiters on real MySQL 9.7 (what the demotion relies on)", {
  timeout: 120_000,
}, () => {
  let lab: Lab
  const apps: mysql.Connection[] = []

  const appConnection = async (): Promise<mysql.Connection> => {
    const c = await mysql.createConnection({
      socketPath: lab.hostPath("db1", "mysqld.sock"),
      user: LAB_USERS.app.user,
      password: LAB_USERS.app.password,
      database: "app",
    })
    // An error event on a killed connection must not crash the test process.
    c.on("error", () => {})
    apps.push(c)
    return c
  }
  const threadId = async (c: mysql.Connection): Promise<number> => {
    const [rows] = await c.query("SELECT CONNECTION_ID() AS id")
    return Number((rows as Array<{ id: number }>)[0]?.id)
  }
  /** Starts an INSERT that will wait for an acknowledgement; records how it settles. */
  const insertPending = (c: mysql.Connection, id: number): Pending => {
    const p: Pending = {
      id,
      settled: undefined,
      done: c.query("INSERT INTO t VALUES (?)", [id]).then(
        () => {
          p.settled = { ok: true, at: Date.now() }
        },
        (e: unknown) => {
          p.settled = { ok: false, error: String(e), at: Date.now() }
        },
      ),
    }
    return p
  }
  const stateOf = async (thread: number): Promise<{ state: string; command: string } | null> => {
    const rows = await lab.query<{ Id: number; State: string | null; Command: string }>(
      "db1",
      "SHOW FULL PROCESSLIST",
    )
    const r = rows.find((x) => Number(x.Id) === thread)
    return r === undefined ? null : { state: r.State ?? "", command: r.Command }
  }
  const waitsForAck = (thread: number) =>
    waitFor(
      `session ${thread} to wait for a semi-sync ACK`,
      async () => /semi-sync ACK/i.test((await stateOf(thread))?.state ?? ""),
      10_000,
      50,
    )
  const rowExists = async (id: number): Promise<boolean> =>
    (await lab.query<{ n: number }>("db1", "SELECT COUNT(*) AS n FROM app.t WHERE id = ?", [id]))
      .map((r) => Number(r.n))
      .includes(1)
  const semiSyncSource = async (on: boolean) =>
    lab.query("db1", `SET GLOBAL rpl_semi_sync_source_enabled = ${on ? "ON" : "OFF"}`)

  before(async () => {
    lab = await Lab.up({ hosts: 2, replication: true, semiSync: true })
    // Strict, as the agent sets it: a commit never falls back to async by itself.
    await lab.query("db1", "SET GLOBAL rpl_semi_sync_source_timeout = 3600000")
    await lab.query("db1", "CREATE DATABASE app")
    await lab.query("db1", "CREATE TABLE app.t (id INT PRIMARY KEY)")
    await lab.waitReplicasCaughtUp("db1")
    // Nobody acknowledges from now on: every commit on db1 waits.
    await lab.query("db2", "STOP REPLICA IO_THREAD")
  })
  after(async () => {
    for (const c of apps) c.destroy()
    await lab?.down()
  })

  test("super_read_only = ON pends behind a waiting commit and reverts at its timeout; disabling semi-sync gives the waiter OK", async () => {
    const app = await appConnection()
    const thread = await threadId(app)
    const waiter = insertPending(app, 1)
    await waitsForAck(thread)
    const admin = await lab.connect("db1")
    try {
      await admin.query("SET SESSION lock_wait_timeout = 1")
      await assert.rejects(
        admin.query("SET GLOBAL super_read_only = ON"),
        /lock wait timeout/i,
        "the fence waits for the commit that waits for its acknowledgement",
      )
      const [rows] = await admin.query("SELECT @@super_read_only AS sro")
      assert.equal(
        Number((rows as Array<{ sro: number }>)[0]?.sro),
        0,
        "a fence aborted by its timeout leaves the server writable",
      )
    } finally {
      await admin.end()
    }
    assert.equal(outcome(waiter), undefined, "the commit still waits")
    const released = Date.now()
    await semiSyncSource(false)
    await waitFor("the waiter to settle", async () => outcome(waiter) !== undefined, 5_000, 20)
    assert.equal(outcome(waiter)?.ok, true, "its client got OK: an acknowledgement nobody gave")
    assert.ok((outcome(waiter)?.at ?? 0) - released < 2_000)
    assert.ok(await rowExists(1))
    await semiSyncSource(true)
  })

  test("KILL CONNECTION of a waiting session: its client gets an error at once and never OK, even when the wait is released", async () => {
    const app = await appConnection()
    const thread = await threadId(app)
    const waiter = insertPending(app, 2)
    await waitsForAck(thread)
    const killedAt = Date.now()
    await lab.query("db1", `KILL CONNECTION ${thread}`)
    await waitFor(
      "the killed client to settle",
      async () => outcome(waiter) !== undefined,
      5_000,
      20,
    )
    assert.equal(outcome(waiter)?.ok, false, "the client of a killed session gets an error")
    assert.ok((outcome(waiter)?.at ?? 0) - killedAt < 2_000, "at once, not when released")
    // Server side the killed session still waits for its acknowledgement.
    const s = await stateOf(thread)
    assert.equal(s?.command, "Killed", JSON.stringify(s))
    assert.match(s?.state ?? "", /semi-sync ACK/i)
    // Released: the commit lands on this server, yet its client saw only the error.
    await semiSyncSource(false)
    await waitFor("the killed session to end", async () => (await stateOf(thread)) === null, 5_000)
    assert.ok(await rowExists(2), "the released commit is on the server (unacknowledged)")
    assert.equal(outcome(waiter)?.ok, false)
    await semiSyncSource(true)
  })

  /** A client account the agent may not KILL (SYSTEM_USER), made without binlogging it. */
  const sysConnection = async (): Promise<mysql.Connection> => {
    const root = await lab.connect("db1")
    try {
      await root.query("SET SESSION sql_log_bin = 0")
      await root.query("CREATE USER IF NOT EXISTS 'sys'@'%' IDENTIFIED BY 'sys-pass-1'")
      await root.query("GRANT ALL ON app.* TO 'sys'@'%'")
      await root.query("GRANT SYSTEM_USER ON *.* TO 'sys'@'%'")
    } finally {
      await root.end()
    }
    const c = await mysql.createConnection({
      socketPath: lab.hostPath("db1", "mysqld.sock"),
      user: "sys",
      password: "sys-pass-1",
      database: "app",
    })
    c.on("error", () => {})
    apps.push(c)
    return c
  }
  const agentConnection = () =>
    mysql.createConnection({
      socketPath: lab.hostPath("db1", "mysqld.sock"),
      user: LAB_USERS.agent.user,
      password: LAB_USERS.agent.password,
    })

  test("while a fence pends behind a waiter: super_read_only reads ON, read_only OFF, the waiter is counted; the agent may not KILL a SYSTEM_USER session", async () => {
    const sys = await sysConnection()
    const sysThread = await threadId(sys)
    const waiter = insertPending(sys, 4)
    await waitsForAck(sysThread)
    const agent = await agentConnection()
    const fencer = await lab.connect("db1")
    try {
      await assert.rejects(agent.query(`KILL CONNECTION ${sysThread}`), {
        code: "ER_KILL_DENIED_ERROR",
      })
      const pending = fencer.query("SET GLOBAL super_read_only = ON").then(
        () => "done",
        (e: unknown) => String(e),
      )
      await new Promise((r) => setTimeout(r, 500))
      const [flags] = (await agent.query(
        "SELECT @@super_read_only AS sro, @@read_only AS ro",
      )) as unknown as [Array<{ sro: number; ro: number }>]
      assert.deepEqual(
        { sro: Number(flags[0]?.sro), ro: Number(flags[0]?.ro) },
        { sro: 1, ro: 0 },
        "a pending fence already reads super_read_only = ON: only read_only = ON shows it done",
      )
      const [status] = (await agent.query(
        "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_source_wait_sessions'",
      )) as unknown as [Array<{ Value: string }>]
      assert.equal(Number(status[0]?.Value), 1, "the probe's waiter count sees it")
      await semiSyncSource(false)
      assert.equal(await pending, "done")
      await waitFor("the waiter to settle", async () => outcome(waiter) !== undefined, 5_000, 20)
      assert.equal(outcome(waiter)?.ok, true)
      await semiSyncSource(true)
    } finally {
      await agent.end()
      await fencer.end()
      // Writable again for the next test.
      await lab.query("db1", "SET GLOBAL super_read_only = OFF")
      await lab.query("db1", "SET GLOBAL read_only = OFF")
    }
  })

  test("two commits in one binlog group: only the group's leader shows the semi-sync wait, so releasing 'killed waiters' gives the other client OK", async () => {
    const app = await appConnection()
    const sys = await sysConnection()
    const appThread = await threadId(app)
    const sysThread = await threadId(sys)
    // Both commits join one group: its leader waits for the acknowledgement for the group.
    await lab.query("db1", "SET GLOBAL binlog_group_commit_sync_delay = 200000")
    try {
      const a = insertPending(app, 5)
      const b = insertPending(sys, 6)
      await waitFor(
        "one of them to wait for a semi-sync ACK",
        async () =>
          /semi-sync ACK/i.test((await stateOf(appThread))?.state ?? "") ||
          /semi-sync ACK/i.test((await stateOf(sysThread))?.state ?? ""),
        10_000,
        50,
      )
      await new Promise((r) => setTimeout(r, 500))
      const states = { app: await stateOf(appThread), sys: await stateOf(sysThread) }
      const waiting = Object.values(states).filter((x) => /semi-sync ACK/i.test(x?.state ?? ""))
      assert.equal(
        waiting.length,
        1,
        `one waiter shows the semi-sync state: ${JSON.stringify(states)}`,
      )
      // The old fence helper: kill what it may, then release if every semi-sync waiter is killed.
      const killable = /semi-sync ACK/i.test(states.app?.state ?? "") ? appThread : sysThread
      await lab.query("db1", `KILL CONNECTION ${killable}`)
      const rows = await lab.query<{ State: string | null; Command: string }>(
        "db1",
        "SHOW FULL PROCESSLIST",
      )
      const shown = rows.filter((r) => /semi-sync ACK/i.test(r.State ?? ""))
      assert.ok(
        shown.length > 0 && shown.every((r) => r.Command === "Killed"),
        "every session in the semi-sync state is a killed one",
      )
      await semiSyncSource(false)
      await waitFor(
        "both to settle",
        async () => outcome(a) !== undefined && outcome(b) !== undefined,
        5_000,
        20,
      )
      const other = killable === appThread ? b : a
      assert.equal(
        outcome(other)?.ok,
        true,
        `the commit that never showed the semi-sync state got OK without any acknowledgement (${JSON.stringify(states)})`,
      )
      await semiSyncSource(true)
    } finally {
      await lab.query("db1", "SET GLOBAL binlog_group_commit_sync_delay = 0")
    }
  })

  const gtidsOf = async (): Promise<{ executed: string; owned: string; uuid: string }> => {
    const [row] = await lab.query<{ executed: string; owned: string; uuid: string }>(
      "db1",
      "SELECT @@GLOBAL.gtid_executed AS executed, @@GLOBAL.gtid_owned AS owned, @@server_uuid AS uuid",
    )
    return { executed: row?.executed ?? "", owned: row?.owned ?? "", uuid: row?.uuid ?? "" }
  }
  const gtidIn = async (gtid: string, set: string): Promise<boolean> => {
    const [row] = await lab.query<{ sub: number }>("db1", "SELECT GTID_SUBSET(?, ?) AS sub", [
      gtid,
      set,
    ])
    return Number(row?.sub) === 1
  }

  test("kill -9 of mysqld while a commit waits: its GTID is owned, not executed; the client gets an error; the restarted server holds the transaction, read-only", async () => {
    const app = await appConnection()
    const thread = await threadId(app)
    const before = await gtidsOf()
    const waiter = insertPending(app, 3)
    await waitsForAck(thread)
    // The waiting commit is in the binlog (the replica could have it) but not in gtid_executed.
    const during = await gtidsOf()
    console.log(`waiting: executed ${during.executed} owned ${JSON.stringify(during.owned)}`)
    assert.equal(during.executed, before.executed, "a waiting commit is not in gtid_executed")
    const ownedHere = during.owned
      .split(/,\s*/)
      .map((g) => g.trim())
      .filter((g) => g.startsWith(during.uuid))
    assert.equal(ownedHere.length, 1, `one GTID owned: ${during.owned}`)
    const waitingGtid = ownedHere[0]!.replace(/#.*$/, "")
    assert.ok(!(await gtidIn(waitingGtid, during.executed)))
    await lab.inject({ _tag: "KillMysqld", host: "db1" })
    await waitFor("the client to settle", async () => outcome(waiter) !== undefined, 5_000, 20)
    assert.equal(outcome(waiter)?.ok, false, "no OK from a killed server")
    await lab.waitMysqld("db1")
    const [flags] = await lab.query<{ sro: number }>("db1", "SELECT @@super_read_only AS sro")
    assert.equal(Number(flags?.sro), 1, "it boots read-only (my.cnf)")
    assert.ok(
      await rowExists(3),
      "crash recovery commits the transaction it had written to its binlog",
    )
    assert.ok(
      await gtidIn(waitingGtid, (await gtidsOf()).executed),
      "its GTID is executed after the restart",
    )
  })

  const sourceStatus = async (name: string): Promise<string> =>
    (await lab.query<{ Value: string }>("db1", "SHOW GLOBAL STATUS LIKE ?", [name]))[0]?.Value ?? ""

  test("lowering rpl_semi_sync_source_wait_for_replica_count releases a waiting commit with OK; lowering rpl_semi_sync_source_timeout does not", async () => {
    // db1 is back from the kill -9 above: writable again, semi-sync strict, waiting for 2.
    await lab.query("db1", "SET GLOBAL super_read_only = OFF")
    await lab.query("db1", "SET GLOBAL read_only = OFF")
    await lab.query("db1", "SET GLOBAL rpl_semi_sync_source_timeout = 3600000")
    await lab.query("db1", "SET GLOBAL rpl_semi_sync_source_wait_for_replica_count = 2")
    await semiSyncSource(true)
    await lab.query("db2", "START REPLICA IO_THREAD")
    await waitFor(
      "db2 a semi-sync client of db1",
      async () => (await sourceStatus("Rpl_semi_sync_source_clients")) === "1",
      30_000,
      100,
    )
    // One acknowledgement (db2's) of the two it waits for.
    const app = await appConnection()
    const thread = await threadId(app)
    const waiter = insertPending(app, 7)
    await waitsForAck(thread)
    await new Promise((r) => setTimeout(r, 500))
    assert.equal(outcome(waiter), undefined, "one acknowledgement of two: the commit waits")
    const lowered = Date.now()
    await lab.query("db1", "SET GLOBAL rpl_semi_sync_source_wait_for_replica_count = 1")
    await waitFor("the waiter to settle", async () => outcome(waiter) !== undefined, 5_000, 20)
    assert.equal(outcome(waiter)?.ok, true, "lowering the wait count gives the waiter OK")
    const countMs = (outcome(waiter)?.at ?? 0) - lowered
    assert.ok(countMs < 2_000, `at once (${countMs} ms)`)

    // Nobody acknowledges now: a commit waits (timeout one hour), then the timeout is lowered.
    // (MySQL computes a waiter's deadline when it starts waiting.)
    await lab.query("db2", "STOP REPLICA IO_THREAD")
    const app2 = await appConnection()
    const thread2 = await threadId(app2)
    const waiter2 = insertPending(app2, 8)
    await waitsForAck(thread2)
    await lab.query("db1", "SET GLOBAL rpl_semi_sync_source_timeout = 500")
    await new Promise((r) => setTimeout(r, 3_000))
    assert.equal(outcome(waiter2), undefined, "a lowered timeout does not release a waiter")
    await semiSyncSource(false)
    await waitFor("the old waiter to settle", async () => outcome(waiter2) !== undefined, 5_000, 20)
    assert.equal(outcome(waiter2)?.ok, true, "released by disabling semi-sync")
    console.log(
      `wait count 2 -> 1 released the waiter in ${countMs} ms; timeout 3600 s -> 0.5 s left the waiting commit waiting (3 s)`,
    )
  })
})
