// Issue 17 item 1: rotating the MySQL passwords (replication and monitor) on
// a running cluster. One cluster, in order:
// 0. what MySQL 9.7 does (db3's agent stopped, so that only the test touches
//    its channel): an IO thread that connects with a password the source no
//    longer accepts retries ("Connecting", Last_IO_Errno 1045) for ever; a
//    connected one keeps running; CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD
//    alone (auto-position kept) fixes it; dual passwords (RETAIN CURRENT
//    PASSWORD / DISCARD OLD PASSWORD) with caching_sha2_password.
// 1. the failure: ALTER USER repl without RETAIN, the replicas
//    reconnect and are denied; the operator writes the new password into
//    every agent's file and reloads: replication is back within seconds
//    (before the fix: "reload: no changes", never).
// 2. the zero-downtime rotation of the replication password with the writer
//    running: RETAIN CURRENT PASSWORD, files, reload, DISCARD OLD PASSWORD,
//    then every replica reconnects: no failed write, replication never stops
//    for more than a few seconds.
// 3. the same for the monitor account (the agent's own user); a monitor
//    password that does not log in is refused by the reload.
// Then the invariants: nothing acknowledged lost, never two writable, convergence.
import assert from "node:assert/strict"
import { readFileSync, statSync } from "node:fs"
import { writeFile } from "node:fs/promises"
import { join } from "node:path"
import { test } from "node:test"
import { type LabCluster, runScenario } from "./cluster.ts"
import { waitFor } from "./exec.ts"
import { LAB_USERS } from "./lab.ts"

const REPL = `'${LAB_USERS.replication.user}'@'%'`
const MONITOR = `'${LAB_USERS.agent.user}'@'%'`

interface Channel {
  readonly io: string
  readonly errno: number
  readonly error: string
}

const channel = async (c: LabCluster, host: string): Promise<Channel> => {
  const [r] = await c.lab.query(host, "SHOW REPLICA STATUS")
  return {
    io: String(r?.Replica_IO_Running ?? ""),
    errno: Number(r?.Last_IO_Errno ?? 0),
    error: String(r?.Last_IO_Error ?? ""),
  }
}

/** The password the replica's channel holds (its connection metadata). */
const storedPassword = async (c: LabCluster, host: string): Promise<string> => {
  const [r] = await c.lab.query(host, "SELECT User_password AS p FROM mysql.slave_master_info")
  return String(r?.p ?? "")
}

const waitChannel = async (
  c: LabCluster,
  host: string,
  what: string,
  ok: (ch: Channel) => boolean,
  timeoutMs: number,
): Promise<Channel> => {
  let last: Channel | undefined
  await waitFor(
    `${host}'s IO thread: ${what}`,
    async () => {
      last = await channel(c, host)
      return ok(last)
    },
    timeoutMs,
    200,
  ).catch((e) => {
    throw new Error(`${String(e)}; last ${JSON.stringify(last)}`)
  })
  return last!
}

/** The test's own SQL on the replica's channel (only with its agent stopped). */
const setChannelPassword = async (c: LabCluster, host: string, password: string) => {
  await c.lab.query(host, "STOP REPLICA IO_THREAD")
  await c.lab.query(host, "CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = ?", [password])
  await c.lab.query(host, "START REPLICA IO_THREAD")
}

/** Kills the primary's binlog dump threads: every replica connects (and logs in) again. */
const reconnectReplicas = async (c: LabCluster, primary: string) => {
  const rows = await c.lab.query<{ Id: number; Command: string }>(primary, "SHOW PROCESSLIST")
  for (const r of rows.filter((x) => x.Command.startsWith("Binlog Dump"))) {
    await c.lab.query(primary, `KILL ${Number(r.Id)}`).catch(() => {})
  }
}

/** What an operator does: the new password into every agent's file. */
const writePasswordFiles = async (c: LabCluster, which: "monitor" | "replication", pw: string) => {
  for (const h of c.lab.hosts) {
    await writeFile(join(c.agents.configDir(h.name), `${which}.password`), `${pw}\n`, {
      mode: 0o600,
    })
  }
}

/** `mha-agent reload` on every agent at once: when each answered, and what. */
const reloadAll = async (c: LabCluster): Promise<Map<string, { at: number; out: string }>> =>
  new Map(
    await Promise.all(
      c.lab.hosts.map(async (h) => {
        const r = await c.agents.cli(h.name, ["reload"])
        const out = `${h.name}: ${r.stdout.trim()}${r.stderr.trim()}`
        return [h.name, { at: Date.now(), out }] as const
      }),
    ),
  )

/** Samples every replica's IO thread; the longest stretch each spent not running. */
const watchChannels = (c: LabCluster, hosts: ReadonlyArray<string>) => {
  const since = new Map<string, number | null>(hosts.map((h) => [h, null]))
  const worst = new Map<string, number>(hosts.map((h) => [h, 0]))
  let stop = false
  const loop = (async () => {
    while (!stop) {
      for (const h of hosts) {
        const now = Date.now()
        const io = await channel(c, h).catch(() => ({ io: "unknown" }))
        const down = since.get(h) ?? null
        if (io.io === "Yes") {
          if (down !== null) worst.set(h, Math.max(worst.get(h)!, now - down))
          since.set(h, null)
        } else if (down === null) since.set(h, now)
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  return async (): Promise<Map<string, number>> => {
    stop = true
    await loop
    const now = Date.now()
    for (const [h, down] of since)
      if (down !== null) worst.set(h, Math.max(worst.get(h)!, now - down))
    return worst
  }
}

/** Failed writes (the writer's "err" lines) at or after `from`. */
const writeErrorsAfter = (c: LabCluster, from: number): string[] =>
  readFileSync(c.writerLog, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as { err?: string; t: number })
    .filter((e) => e.err !== undefined && e.t >= from)
    .map((e) => e.err!)

const statusOf = async (c: LabCluster, host: string) => {
  const r = await c.agents.cli(host, ["status", "--json"])
  return (
    JSON.parse(r.stdout) as {
      status: {
        role: string
        replicationError?: string
        members: Array<{ name: string; role: string; health: string }>
      }
    }
  ).status
}

test(
  "issue 17.1: rotating the replication and monitor passwords, with and without dual passwords",
  { timeout: 600_000 },
  () =>
    runScenario({ slug: "credential-rotation" }, async (c) => {
      const primary = await c.waitForPrimary(10_000)
      const replicas = c.lab.hosts.map((h) => h.name).filter((h) => h !== primary)
      const [r1, r2] = replicas as [string, string]
      const pw0 = LAB_USERS.replication.password

      // 0. MySQL's behaviour, on r2's channel with its agent stopped. The lab's
      // password stays valid throughout, so r1 (and the strict semi-sync ack
      // that every ALTER USER waits for) is never cut off.
      await c.agents.stop(r2)
      await c.lab.query(
        primary,
        `ALTER USER ${REPL} IDENTIFIED BY 'repl-2' RETAIN CURRENT PASSWORD`,
      )
      await setChannelPassword(c, r2, pw0)
      await waitChannel(c, r2, "the retained password logs in", (x) => x.io === "Yes", 10_000)
      await setChannelPassword(c, r2, "repl-2")
      await waitChannel(
        c,
        r2,
        "the new password logs in (RSA key, no TLS)",
        (x) => x.io === "Yes",
        10_000,
      )
      await setChannelPassword(c, r2, "not-the-password")
      const denied = await waitChannel(
        c,
        r2,
        "a wrong password is denied",
        (x) => x.errno !== 0,
        10_000,
      )
      assert.equal(denied.errno, 1045, `Last_IO_Errno: ${JSON.stringify(denied)}`)
      assert.equal(denied.io, "Connecting", "a denied IO thread keeps retrying")
      await new Promise((r) => setTimeout(r, 3_000))
      const still = await channel(c, r2)
      assert.deepEqual([still.io, still.errno], ["Connecting", 1045], "and stays denied")
      // CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD alone (auto-position kept) fixes it.
      await setChannelPassword(c, r2, "repl-2")
      const fixed = await waitChannel(
        c,
        r2,
        "SOURCE_PASSWORD alone fixes it",
        (x) => x.io === "Yes",
        10_000,
      )
      assert.equal(fixed.errno, 0, "START REPLICA cleared the error")
      // DISCARD OLD PASSWORD: a connected IO thread survives it, its next login is denied.
      await c.lab.query(
        primary,
        `ALTER USER ${REPL} IDENTIFIED BY '${pw0}' RETAIN CURRENT PASSWORD`,
      )
      await c.lab.query(primary, `ALTER USER ${REPL} DISCARD OLD PASSWORD`)
      await new Promise((r) => setTimeout(r, 3_000))
      assert.equal((await channel(c, r2)).io, "Yes", "a connected IO thread is not cut off")
      await c.lab.query(r2, "STOP REPLICA IO_THREAD")
      await c.lab.query(r2, "START REPLICA IO_THREAD")
      await waitChannel(
        c,
        r2,
        "the discarded password denied at the next login",
        (x) => x.errno === 1045,
        10_000,
      )
      // The source accepts its password again: the retrying thread connects by itself.
      await c.lab.query(
        primary,
        `ALTER USER ${REPL} IDENTIFIED BY 'repl-2' RETAIN CURRENT PASSWORD`,
      )
      const back = await waitChannel(
        c,
        r2,
        "connects on its own retry",
        (x) => x.io === "Yes",
        10_000,
      )
      console.log(`0. after its own retry connected: Last_IO_Errno ${back.errno} ${back.error}`)
      await c.lab.query(
        primary,
        `ALTER USER ${REPL} IDENTIFIED BY '${pw0}' RETAIN CURRENT PASSWORD`,
      )
      await c.lab.query(primary, `ALTER USER ${REPL} DISCARD OLD PASSWORD`)
      await setChannelPassword(c, r2, pw0)
      await waitChannel(c, r2, "back to the lab's password", (x) => x.io === "Yes", 10_000)
      await c.agents.start(r2)
      console.log(
        "0. MySQL 9.7: denied IO thread = Connecting + 1045, retrying for ever; connected threads survive; SOURCE_PASSWORD alone fixes it",
      )

      // 1. The failure: a new password without RETAIN, the replicas reconnect.
      const logFrom = new Map(replicas.map((h) => [h, statSync(c.agents.logPath(h)).size]))
      await c.lab.query(primary, `ALTER USER ${REPL} IDENTIFIED BY 'repl-3'`)
      await reconnectReplicas(c, primary)
      for (const h of replicas) {
        await waitChannel(c, h, "denied (1045)", (x) => x.io !== "Yes" && x.errno === 1045, 15_000)
      }
      // Each agent re-applies the (unchanged) file a bounded number of times, names the error.
      for (const h of replicas) {
        await waitFor(
          `${h}'s agent to give up re-applying and say why`,
          () =>
            readFileSync(c.agents.logPath(h), "utf8")
              .slice(logFrom.get(h))
              .includes("replication cannot log in to"),
          30_000,
          500,
        )
        const st = await statusOf(c, h)
        assert.match(
          st.replicationError ?? "",
          /1045/,
          `${h}: status names the error: ${JSON.stringify(st)}`,
        )
      }
      assert.equal((await channel(c, r1)).io, "Connecting", "still denied with the old file")
      await writePasswordFiles(c, "replication", "repl-3")
      const reloaded = await reloadAll(c)
      const outputs = [...reloaded.values()].map((r) => r.out)
      for (const line of outputs)
        assert.match(line, /mysql\.replication\.password_file: the password changed/, line)
      assert.ok(!outputs.join("\n").includes("repl-3"), "the password is never shown")
      // From each replica's reload to its IO thread running again.
      const recovered = await Promise.all(
        replicas.map(async (h) => {
          await waitChannel(c, h, "back after the reload", (x) => x.io === "Yes", 15_000)
          return Date.now() - reloaded.get(h)!.at
        }),
      )
      const recoveredMs = Math.max(...recovered)
      await c.waitForWritesAfter(Date.now(), 30_000)
      for (const h of replicas) {
        await waitFor(
          `${h}'s status without the error`,
          async () => (await statusOf(c, h)).replicationError === undefined,
          10_000,
          300,
        )
      }
      console.log(
        `1. ALTER USER without RETAIN: replicas denied; files + reload: replication back in ${recoveredMs} ms`,
      )
      assert.ok(
        recoveredMs < 10_000,
        `replication back within seconds of the reload (${recoveredMs} ms)`,
      )

      // 2. Zero-downtime rotation of the replication password, the writer running.
      const rotationAt = Date.now()
      const watch = watchChannels(c, replicas)
      await c.lab.query(
        primary,
        `ALTER USER ${REPL} IDENTIFIED BY 'repl-4' RETAIN CURRENT PASSWORD`,
      )
      await writePasswordFiles(c, "replication", "repl-4")
      await reloadAll(c)
      for (const h of replicas) {
        await waitFor(
          `${h}'s channel to hold the new password`,
          async () => (await storedPassword(c, h)) === "repl-4",
          15_000,
          200,
        )
        await waitChannel(c, h, "running with the new password", (x) => x.io === "Yes", 10_000)
      }
      await c.lab.query(primary, `ALTER USER ${REPL} DISCARD OLD PASSWORD`)
      await reconnectReplicas(c, primary)
      await new Promise((r) => setTimeout(r, 3_000))
      for (const h of replicas)
        await waitChannel(
          c,
          h,
          "reconnected after DISCARD OLD PASSWORD",
          (x) => x.io === "Yes",
          5_000,
        )
      const stopped = await watch()
      const errors = writeErrorsAfter(c, rotationAt)
      const gap = Math.max(
        0,
        ...c
          .writes()
          .acked.filter((a) => a.t >= rotationAt)
          .map((a, i, all) => (i === 0 ? 0 : a.t - all[i - 1]!.t)),
      )
      console.log(
        `2. dual-password rotation: IO thread stopped at most ${JSON.stringify(Object.fromEntries(stopped))} ms, ${errors.length} failed writes, longest gap between acknowledged writes ${gap} ms`,
      )
      assert.deepEqual(errors, [], "no failed write")
      for (const [h, ms] of stopped) assert.ok(ms < 5_000, `${h}'s IO thread stopped for ${ms} ms`)
      assert.ok(gap < 5_000, `writes paused for ${gap} ms`)

      // 3. The monitor account: a password that does not log in is refused; then the rotation.
      const monitorAt = Date.now()
      await c.lab.query(
        primary,
        `ALTER USER ${MONITOR} IDENTIFIED BY 'mha-2' RETAIN CURRENT PASSWORD`,
      )
      await writeFile(join(c.agents.configDir(r2), "monitor.password"), "not-the-password\n")
      // `mha-agent reload` exits 1 when refused.
      const refused = await c.agents.cli(r2, ["reload"]).then(
        (r) => `accepted: ${r.stdout}`,
        (e: unknown) => String(e),
      )
      assert.match(refused, /refused.*mysql\.monitor\.password_file does not log in/s)
      assert.ok(!refused.includes("not-the-password"), "never shown")
      await writePasswordFiles(c, "monitor", "mha-2")
      for (const { out } of (await reloadAll(c)).values())
        assert.match(out, /mysql\.monitor\.password_file: the password changed/, out)
      await c.lab.query(primary, `ALTER USER ${MONITOR} DISCARD OLD PASSWORD`)
      const logAt = new Map(
        c.lab.hosts.map((h) => [h.name, statSync(c.agents.logPath(h.name)).size]),
      )
      // Every session of the agent's user is cut: the agents must log in again, with the new password.
      for (const h of c.lab.hosts) {
        const rows = await c.lab.query<{ Id: number; User: string }>(h.name, "SHOW PROCESSLIST")
        for (const r of rows.filter((x) => x.User === LAB_USERS.agent.user)) {
          await c.lab.query(h.name, `KILL ${Number(r.Id)}`).catch(() => {})
        }
      }
      // Longer than the remote probe's kept connection lives (5 s): its renewal logs in too.
      await new Promise((r) => setTimeout(r, 8_000))
      for (const h of c.lab.hosts) {
        const st = await statusOf(c, h.name)
        assert.deepEqual(
          st.members.map((m) => [m.name, m.health]),
          c.lab.hosts.map((x) => [x.name, "OK"]),
          `${h.name}: every member healthy after DISCARD OLD PASSWORD: ${JSON.stringify(st.members)}`,
        )
        const denied = readFileSync(c.agents.logPath(h.name), "utf8")
          .slice(logAt.get(h.name))
          .split("\n")
          .filter((l) => l.includes("Access denied"))
        assert.deepEqual(denied, [], `${h.name}: no login denied after the rotation`)
      }
      assert.equal(await c.primary(), primary, "no failover")
      assert.deepEqual(writeErrorsAfter(c, monitorAt), [], "no failed write")
      console.log(
        "3. monitor rotation: wrong password refused by reload; after DISCARD OLD PASSWORD every agent logs in with the new one",
      )

      const result = await c.check(rotationAt)
      assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
      console.log(
        `invariants: ${result.acked} acknowledged writes, none lost; write downtime from the rotations ${result.downtimeMs} ms`,
      )
    }),
)
