// The mysql2 adapters (prober and actuator) against real MySQL 9.7 on the lab.
// The test process reaches each mysqld through its Unix socket; the TCP path
// the agent uses (127.0.0.1 and the other members' addresses, with
// caching_sha2_password and the server's RSA key, no TLS) is exercised by a
// script run inside a host's namespace (mysql-adapters-ns.ts).
import assert from "node:assert/strict"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { fileURLToPath } from "node:url"
import { Effect, ManagedRuntime, Redacted } from "effect"
import mysql from "mysql2/promise"
import { type MysqlActions, mysqlActions } from "../../agent/src/adapters/mysql-actuator.ts"
import type { MysqlClientSettings, MysqlError } from "../../agent/src/adapters/mysql-connection.ts"
import { type LocalObservation, MysqlProber } from "../../agent/src/adapters/mysql-prober.ts"
import {
  formatGtidSet,
  isEmpty,
  isSubset,
  subtract,
  unsafeParseGtidSet,
} from "../../agent/src/core/gtid.ts"
import { sameProcess } from "../../agent/src/core/relay-intact.ts"
import { sleep, waitFor } from "./exec.ts"
import { LAB_USERS, Lab } from "./lab.ts"
import { MYSQL_PORT } from "./network.ts"

const NS_SCRIPT = join(fileURLToPath(new URL(".", import.meta.url)), "mysql-adapters-ns.ts")

const CONNECT_TIMEOUT = 1000
const QUERY_TIMEOUT = 1000
const PROBE_BOUND = CONNECT_TIMEOUT + QUERY_TIMEOUT

const agentSettings = (
  user: string = LAB_USERS.agent.user,
  password: string = LAB_USERS.agent.password,
): MysqlClientSettings => ({
  user,
  password: Redacted.make(password),
  connectTimeoutMs: CONNECT_TIMEOUT,
  queryTimeoutMs: QUERY_TIMEOUT,
})

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
const fails = <A>(effect: Effect.Effect<A, MysqlError>): Promise<MysqlError> =>
  Effect.runPromise(Effect.flip(effect))
const timed = async <A>(f: () => Promise<A>): Promise<{ value: A; ms: number }> => {
  const start = performance.now()
  const value = await f()
  return { value, ms: performance.now() - start }
}
const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? Number.NaN
}
const pct = (xs: ReadonlyArray<number>, p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? Number.NaN
}

describe("mysql2 adapters on real MySQL 9.7", () => {
  let lab: Lab
  const probers = new Map<string, ManagedRuntime.ManagedRuntime<MysqlProber, never>>()
  const sock = (host: string) => ({ socketPath: lab.hostPath(host, "mysqld.sock") })
  const actions = (host: string, settings = agentSettings()): MysqlActions =>
    mysqlActions(sock(host), settings, 10_000)
  /** One prober (kept connection) per host, built from its layer as the daemon would. */
  const prober = (host: string) => {
    let rt = probers.get(host)
    if (rt === undefined) {
      rt = ManagedRuntime.make(MysqlProber.layer({ local: sock(host), settings: agentSettings() }))
      probers.set(host, rt)
    }
    return rt
  }
  const probe = (host: string): Promise<LocalObservation> =>
    prober(host).runPromise(MysqlProber.use((p) => p.probeLocal))
  const probeFails = (host: string): Promise<MysqlError> =>
    prober(host).runPromise(Effect.flip(MysqlProber.use((p) => p.probeLocal)))
  /** Runs the TCP script inside `host`'s namespace. */
  const inNamespace = async (
    host: string,
    input: {
      local: boolean
      remotes: ReadonlyArray<string>
      probes?: number
      extraRemotes?: ReadonlyArray<{ host: string; port: number }>
      pinCheck?: boolean
    },
  ) => {
    const arg = {
      local: input.local ? { host: "127.0.0.1", port: MYSQL_PORT } : null,
      remotes: [
        ...input.remotes.map((h) => ({ host: lab.host(h).address, port: MYSQL_PORT })),
        ...(input.extraRemotes ?? []),
      ],
      user: LAB_USERS.agent.user,
      password: LAB_USERS.agent.password,
      connectTimeoutMs: CONNECT_TIMEOUT,
      queryTimeoutMs: QUERY_TIMEOUT,
      probes: input.probes ?? 2,
      pinCheck: input.pinCheck ?? false,
    }
    const { stdout } = await lab.exec(host, [
      process.execPath,
      "--disable-warning=ExperimentalWarning",
      NS_SCRIPT,
      JSON.stringify(arg),
    ])
    return JSON.parse(stdout) as {
      local: {
        pin: {
          keyLength: number
          right: { ok: boolean; kind?: string; errno?: number | null }
          wrong: { ok: boolean; kind?: string; errno?: number | null }
        } | null
        session: { ok: boolean; sslCipher?: string; currentUser?: string; error?: string }
        probes: Array<{
          ok: boolean
          serverUuid?: string
          superReadOnly?: boolean
          sourceHost?: string | null
          reconnected?: boolean
          error?: string
        }>
        costs: Array<number>
      } | null
      remotes: Array<{
        _tag: "Reachable" | "Unreachable"
        target: string
        superReadOnly?: boolean
        serverUuid?: string
        kind?: string
        elapsedMs: number
      }>
    }
  }
  const executed = async (host: string) => {
    const [row] = await lab.query<{ g: string }>(host, "SELECT @@gtid_executed AS g")
    return unsafeParseGtidSet(row?.g ?? "")
  }
  const appConnection = (host: string) =>
    mysql.createConnection({
      socketPath: lab.hostPath(host, "mysqld.sock"),
      user: LAB_USERS.app.user,
      password: LAB_USERS.app.password,
    })

  before(async () => {
    lab = await Lab.up({ hosts: 3, replication: true })
    await lab.query("db1", "CREATE DATABASE app")
    await lab.query("db1", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
    await lab.query("db1", "INSERT INTO app.t VALUES (1, 'one'), (2, 'two')")
    await lab.waitReplicasCaughtUp("db1")
  })
  after(async () => {
    for (const rt of probers.values()) await rt.dispose().catch(() => {})
    await lab?.down()
  })

  test("probes of the source and of a replica return the right fields", async () => {
    const src = await probe("db1")
    const rep = await probe("db2")
    const [v1] = await lab.query<{ u: string }>("db1", "SELECT @@server_uuid AS u")
    const [v2] = await lab.query<{ u: string }>("db2", "SELECT @@server_uuid AS u")
    assert.equal(src.serverUuid, v1?.u)
    assert.equal(rep.serverUuid, v2?.u)
    assert.equal(src.serverId, 1)
    assert.match(src.version, /^9\.7\./)
    assert.equal(src.readOnly, false)
    assert.equal(src.superReadOnly, false)
    assert.equal(src.replica, null, "the source replicates from nobody")
    assert.equal(rep.readOnly, true)
    assert.equal(rep.superReadOnly, true)
    assert.equal(formatGtidSet(src.executed), formatGtidSet(await executed("db1")))
    assert.ok(!isEmpty(src.executed), "the setup wrote transactions")
    assert.ok(rep.replica !== null)
    assert.equal(rep.replica.sourceHost, lab.host("db1").address)
    assert.equal(rep.replica.sourcePort, MYSQL_PORT)
    assert.equal(rep.replica.sourceUuid, src.serverUuid)
    assert.equal(rep.replica.ioState, "Yes")
    assert.equal(rep.replica.ioRunning, true)
    assert.equal(rep.replica.sqlRunning, true)
    assert.equal(rep.replica.autoPosition, true)
    assert.equal(rep.replica.lastIoError, null)
    assert.equal(rep.replica.lastSqlError, null)
    assert.equal(typeof rep.replica.secondsBehindSource, "number")
    assert.ok((rep.replica.secondsBehindSource ?? 99) <= 2, "caught up")
    assert.equal(
      formatGtidSet(rep.replica.retrieved),
      formatGtidSet(src.executed),
      "everything was received",
    )
    assert.equal(formatGtidSet(rep.executed), formatGtidSet(src.executed), "and applied")
    assert.equal(formatGtidSet(rep.replica.executed), formatGtidSet(rep.executed))
    assert.equal(src.semiSync.sourcePluginLoaded, true)
    assert.equal(src.semiSync.sourceEnabled, false)
    assert.equal(src.semiSync.sourceActive, false)
    assert.equal(rep.semiSync.replicaEnabled, false)
    // The processlist statement rides in the probe's one batch (issue 12): nothing stuck in commit.
    assert.deepEqual(src.commitWait, { sessions: 0, oldestSeconds: 0 })
    assert.deepEqual(rep.commitWait, { sessions: 0, oldestSeconds: 0 })
    // A write shows up in the next probes.
    await lab.query("db1", "INSERT INTO app.t VALUES (3, 'three')")
    await lab.waitReplicasCaughtUp("db1")
    const src2 = await probe("db1")
    const rep2 = await probe("db2")
    assert.ok(isSubset(src.executed, src2.executed) && !isSubset(src2.executed, src.executed))
    assert.equal(formatGtidSet(rep2.executed), formatGtidSet(src2.executed))
  })

  test("the local probe keeps its connection; its cost per probe", async () => {
    const mhaSessions = async () =>
      Number(
        (
          await lab.query<{ n: number }>(
            "db2",
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'mha'",
          )
        )[0]?.n,
      )
    const others = await mhaSessions()
    const fresh = ManagedRuntime.make(
      MysqlProber.layer({ local: sock("db2"), settings: agentSettings() }),
    )
    try {
      const runProbe = () => fresh.runPromise(MysqlProber.use((p) => p.probeLocal))
      const first = await runProbe()
      assert.equal(first.reconnected, true)
      const costs: Array<number> = []
      for (let i = 0; i < 200; i++) {
        const o = await runProbe()
        assert.equal(o.reconnected, false, "the connection is reused")
        costs.push(o.durationMs)
      }
      assert.equal(await mhaSessions(), others + 1, "one connection for 201 probes")
      console.log(
        `probe cost over a kept Unix-socket connection: first (with connect) ${first.durationMs.toFixed(2)} ms, ` +
          `then median ${median(costs).toFixed(2)} ms, p95 ${pct(costs, 0.95).toFixed(2)} ms, max ${Math.max(...costs).toFixed(2)} ms`,
      )
    } finally {
      await fresh.dispose()
    }
    await waitFor(
      "the prober's connection to close on dispose",
      async () => (await mhaSessions()) === others,
      5000,
    )
  })

  test("over TCP inside the host: caching_sha2_password without TLS, remote reachability", async () => {
    // An empty authentication cache forces the full caching_sha2 exchange
    // (password encrypted with the server's RSA key). LOCAL: a plain FLUSH
    // is binlogged, an errant transaction on a replica.
    await lab.query("db2", "FLUSH LOCAL PRIVILEGES")
    const out = await inNamespace("db2", {
      local: true,
      remotes: ["db1", "db3"],
      probes: 100,
      pinCheck: true,
      extraRemotes: [
        { host: "10.88.0.99", port: MYSQL_PORT }, // nobody there
        { host: lab.host("db1").address, port: 3307 }, // nothing listening
      ],
    })
    assert.ok(out.local !== null)
    assert.equal(out.local.session.ok, true, out.local.session.error)
    assert.equal(out.local.session.sslCipher, "", "plain TCP, no TLS")
    assert.equal(out.local.session.currentUser, "mha@%")
    // Pinning the server's RSA key (serverPublicKey): the right key logs in
    // after the cache was flushed, a wrong one is refused (the server cannot
    // decrypt the password).
    assert.ok(out.local.pin !== null)
    assert.ok(out.local.pin.keyLength > 200, "the server published its RSA key")
    assert.deepEqual(out.local.pin.right, { ok: true })
    assert.equal(out.local.pin.wrong.ok, false)
    assert.equal(out.local.pin.wrong.errno, 1045, JSON.stringify(out.local.pin.wrong))
    const [p1, p2] = out.local.probes
    assert.equal(p1?.ok, true, p1?.error)
    assert.equal(p1?.reconnected, true)
    assert.equal(p2?.reconnected, false)
    assert.equal(p1?.sourceHost, lab.host("db1").address)
    assert.equal(p1?.superReadOnly, true)
    console.log(
      `probe cost over kept TCP 127.0.0.1: median ${median(out.local.costs.slice(1)).toFixed(2)} ms, p95 ${pct(out.local.costs.slice(1), 0.95).toFixed(2)} ms (${out.local.costs.length} probes; first with connect + RSA login ${out.local.costs[0]?.toFixed(2)} ms)`,
    )
    const [r1, r3, nobody, closed] = out.remotes
    assert.equal(r1?._tag, "Reachable")
    assert.equal(r1?.superReadOnly, false, "db1 is the writable source")
    assert.equal(r1?.serverUuid, (await probe("db1")).serverUuid)
    assert.equal(r3?._tag, "Reachable")
    assert.equal(r3?.superReadOnly, true, "db3 is fenced (a replica)")
    assert.equal(nobody?._tag, "Unreachable")
    assert.equal(nobody?.kind, "timeout")
    assert.ok((nobody?.elapsedMs ?? 0) < PROBE_BOUND * 2, `bounded: ${nobody?.elapsedMs} ms`)
    assert.equal(closed?._tag, "Unreachable")
    assert.equal(closed?.kind, "connect")
    assert.ok((closed?.elapsedMs ?? Infinity) < 500, "a refused connection fails fast")
  })

  test("a SIGSTOPped mysqld fails the probe within the timeout, locally and remotely; resumed, it is the same process", async () => {
    const first = await probe("db3") // the kept connection exists before the hang
    await lab.inject({ _tag: "Pause", host: "db3", process: "mysqld" })
    try {
      const a = await timed(() => probeFails("db3"))
      assert.equal(a.value.kind, "timeout", a.value.message)
      assert.equal(a.value.action, "probe")
      assert.ok(a.ms >= QUERY_TIMEOUT * 0.9, `it did wait for the query timeout (${a.ms} ms)`)
      assert.ok(a.ms < PROBE_BOUND * 2, `bounded by the timeouts: ${a.ms.toFixed(0)} ms`)
      // The next probe must reconnect: the socket accepts, the handshake never comes.
      const b = await timed(() => probeFails("db3"))
      assert.equal(b.value.kind, "timeout", b.value.message)
      assert.ok(b.ms < PROBE_BOUND * 2, `bounded by the timeouts: ${b.ms.toFixed(0)} ms`)
      // Over TCP from another host (the remote reachability probe).
      const out = await inNamespace("db1", { local: false, remotes: ["db3"] })
      assert.equal(out.remotes[0]?._tag, "Unreachable")
      assert.equal(out.remotes[0]?.kind, "timeout")
      assert.ok((out.remotes[0]?.elapsedMs ?? Infinity) < PROBE_BOUND * 2)
      // And an action on a hung server times out too.
      const c = await timed(() => fails(mysqlActions(sock("db3"), agentSettings(), 1500).fence))
      assert.equal(c.value.kind, "timeout")
      assert.equal(c.value.action, "fence")
      assert.ok(
        c.ms < (1500 + CONNECT_TIMEOUT) * 2 + PROBE_BOUND,
        `fence bounded: ${c.ms.toFixed(0)} ms`,
      )
      console.log(
        `hung mysqld: kept-connection probe failed after ${a.ms.toFixed(0)} ms, reconnecting probe after ${b.ms.toFixed(0)} ms, remote TCP probe after ${out.remotes[0]?.elapsedMs.toFixed(0)} ms`,
      )
    } finally {
      await lab.inject({ _tag: "Resume", host: "db3", process: "mysqld" })
    }
    const back = await probe("db3")
    assert.equal(back.reconnected, true)
    // Paused, not restarted: its start did not move (its relay log is intact).
    assert.ok(
      first.started !== null && back.started !== null && sameProcess(first.started, back.started),
      `the same process: ${JSON.stringify(first.started)} then ${JSON.stringify(back.started)}`,
    )
    assert.equal(back.superReadOnly, true)
  })

  test("a killed mysqld fails the probe fast; the probe recovers after the restart, which moved the process's start", async () => {
    const first = await probe("db3")
    // One process, one start on this host's clock since boot, probe after probe (relay-intact.ts).
    assert.ok(first.started !== null, "the start is known")
    await sleep(1_100)
    const again = await probe("db3")
    assert.ok(
      first.started !== null && again.started !== null && sameProcess(first.started, again.started),
      `the same process: ${JSON.stringify(first.started)} ${JSON.stringify(again.started)}`,
    )
    await lab.inject({ _tag: "KillMysqld", host: "db3" })
    const a = await timed(() => probeFails("db3"))
    assert.ok(a.value.kind === "connection-lost" || a.value.kind === "connect", a.value.message)
    assert.ok(a.ms < 500, `fast: ${a.ms.toFixed(0)} ms`)
    const b = await timed(() => probeFails("db3"))
    assert.equal(b.value.kind, "connect", b.value.message)
    assert.ok(b.ms < 500, `fast: ${b.ms.toFixed(0)} ms`)
    await lab.waitMysqld("db3")
    const back = await probe("db3")
    assert.equal(back.reconnected, true)
    assert.ok(
      first.started !== null && back.started !== null && !sameProcess(first.started, back.started),
      `a new process: ${JSON.stringify(first.started)} then ${JSON.stringify(back.started)}`,
    )
    await waitFor(
      "db3 to replicate again",
      async () => (await probe("db3")).replica?.ioRunning === true,
      30_000,
    )
  })

  test("fence and unfence flip the flags; the app cannot write while fenced; fenced is visible remotely", async () => {
    const db1 = actions("db1")
    await run(db1.fence)
    let o = await probe("db1")
    assert.equal(o.superReadOnly, true)
    assert.equal(o.readOnly, true)
    const app = await appConnection("db1")
    try {
      await assert.rejects(
        app.query("INSERT INTO app.t VALUES (10, 'fenced')"),
        (e: { errno?: number }) => {
          assert.equal(e.errno, 1290, "ER_OPTION_PREVENTS_STATEMENT")
          return true
        },
      )
      const out = await inNamespace("db2", { local: false, remotes: ["db1"] })
      assert.equal(out.remotes[0]?._tag, "Reachable")
      assert.equal(out.remotes[0]?.superReadOnly, true, "the fence is verified over the network")
      await run(db1.fence) // idempotent
      await run(db1.unfence)
      o = await probe("db1")
      assert.equal(o.superReadOnly, false)
      assert.equal(o.readOnly, false)
      await app.query("INSERT INTO app.t VALUES (10, 'unfenced')")
    } finally {
      await app.end().catch(() => {})
    }
    const out = await inNamespace("db2", { local: false, remotes: ["db1"] })
    assert.equal(out.remotes[0]?.superReadOnly, false)
  })

  test("a fence blocked by a table lock times out and is killed server side: it never applies late", async () => {
    const app = await appConnection("db1")
    try {
      await app.query("LOCK TABLES app.t WRITE")
      const e = await timed(() => fails(mysqlActions(sock("db1"), agentSettings(), 1500).fence))
      assert.equal(e.value.action, "fence")
      assert.equal(e.value.kind, "timeout", e.value.message)
      assert.ok(e.ms < 1500 + PROBE_BOUND * 2, `bounded: ${e.ms.toFixed(0)} ms`)
      // lock_wait_timeout (2 s here) would end it later by itself; the
      // server-side KILL ends it at once.
      const gone = await timed(() =>
        waitFor(
          "our SET GLOBAL to be gone from the server",
          async () =>
            (
              await lab.query(
                "db1",
                "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SET GLOBAL super_read_only%'",
              )
            ).length === 0,
          300,
          20,
        ),
      )
      console.log(
        `timed-out fence: its statement was gone from the server ${gone.ms.toFixed(0)} ms after the error`,
      )
      await app.query("UNLOCK TABLES")
      await sleep(500)
      assert.equal(
        (await probe("db1")).superReadOnly,
        false,
        "the abandoned statement did not apply after the lock went",
      )
    } finally {
      await app.end().catch(() => {})
    }
  })

  test("killClientSessions kills an app session, spares skipped users, replication and system threads", async () => {
    const app = await appConnection("db1")
    const agentConn = await mysql.createConnection({
      socketPath: lab.hostPath("db1", "mysqld.sock"),
      user: LAB_USERS.agent.user,
      password: LAB_USERS.agent.password,
    })
    app.on("error", () => {})
    try {
      const [appId] = (await app.query("SELECT CONNECTION_ID() AS id")) as unknown as [
        Array<{ id: number }>,
      ]
      const killed = await run(
        actions("db1").killClientSessions({ skipUsers: [LAB_USERS.agent.user] }),
      )
      assert.ok(
        killed.some((k) => k.id === Number(appId[0]?.id) && k.user === "app"),
        JSON.stringify(killed),
      )
      assert.ok(
        killed.every(
          (k) => k.user !== "mha" && k.user !== "system user" && k.user !== "event_scheduler",
        ),
      )
      assert.ok(killed.every((k) => !k.command.startsWith("Binlog Dump")))
      await assert.rejects(app.query("SELECT 1"), "the app's session is gone")
      await agentConn.query("SELECT 1") // spared
      const dumps = await lab.query<{ n: number }>(
        "db1",
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
      )
      assert.equal(Number(dumps[0]?.n), 2, "both replicas still connected")
      const events = await lab.query(
        "db1",
        "SELECT 1 FROM information_schema.PROCESSLIST WHERE USER = 'event_scheduler'",
      )
      assert.equal(events.length, 1)
    } finally {
      await app.end().catch(() => {})
      await agentConn.end().catch(() => {})
    }
    // On a replica its replication threads survive. Without skipUsers the
    // agent's own kept probe connection is killed too: the next probe reconnects.
    await probe("db2")
    const killed2 = await run(actions("db2").killClientSessions())
    assert.ok(
      killed2.some((k) => k.user === "mha"),
      JSON.stringify(killed2),
    )
    await sleep(200)
    const r = await probe("db2")
    assert.equal(r.reconnected, true)
    assert.equal(r.replica?.ioRunning, true)
    assert.equal(r.replica?.sqlRunning, true)
  })

  test("stopReplicaIoThread, waitForExecutedGtidSet applied and timed out, startReplica", async () => {
    const db2 = actions("db2")
    await run(db2.stopReplicaIoThread)
    let o = await probe("db2")
    assert.equal(o.replica?.ioRunning, false)
    assert.equal(o.replica?.sqlRunning, true)
    await lab.query("db1", "INSERT INTO app.t VALUES (20, 'not yet on db2')")
    const target = await executed("db1")
    assert.ok(!isSubset(target, o.executed))
    const w = await timed(() => run(db2.waitForExecutedGtidSet(target, 1)))
    assert.equal(w.value._tag, "TimedOut")
    assert.ok(w.ms >= 900 && w.ms < 5000, `waited about 1 s: ${w.ms.toFixed(0)} ms`)
    await run(db2.startReplica)
    const w2 = await run(db2.waitForExecutedGtidSet(target, 10))
    assert.equal(w2._tag, "Applied")
    o = await probe("db2")
    assert.ok(isSubset(target, o.executed))
    assert.equal(o.replica?.ioRunning, true)
    // Promotion step 4: what was received is applied (or the wait times out).
    await lab.query("db2", "STOP REPLICA SQL_THREAD")
    await lab.query("db1", "INSERT INTO app.t VALUES (21, 'relay log only')")
    const target2 = await executed("db1")
    await waitFor(
      "db2 to receive the write",
      async () => {
        const r = (await probe("db2")).replica
        return r !== null && isSubset(target2, r.retrieved)
      },
      10_000,
    )
    const stuck = await run(db2.waitForRelayLog(1))
    assert.equal(stuck.result._tag, "TimedOut", "the SQL thread is stopped")
    assert.ok(isSubset(target2, stuck.retrieved))
    await run(db2.startReplica)
    const done = await run(db2.waitForRelayLog(10))
    assert.equal(done.result._tag, "Applied")
    assert.ok(isSubset(done.retrieved, (await probe("db2")).executed))
    // stopReplica stops both threads.
    await run(db2.stopReplica)
    o = await probe("db2")
    assert.equal(o.replica?.ioRunning, false)
    assert.equal(o.replica?.sqlRunning, false)
    assert.equal(o.replica?.secondsBehindSource, null, "no lag figure while stopped")
    await run(db2.startReplica)
    await waitFor(
      "db2 IO thread",
      async () => (await probe("db2")).replica?.ioRunning === true,
      10_000,
    )
  })

  test("repoint a replica to another source with auto-position: writes flow", async () => {
    const db3 = actions("db3")
    await run(
      db3.repoint({
        host: lab.host("db2").address,
        port: MYSQL_PORT,
        user: LAB_USERS.replication.user,
        password: Redacted.make(LAB_USERS.replication.password),
        auth: { _tag: "GetSourcePublicKey" },
      }),
    )
    // Source_UUID is read by the IO thread after it reports "Yes" (MySQL sets the
    // thread running on connect, then asks the source for its UUID): wait for both.
    await waitFor(
      "db3 to connect to db2 and read its UUID",
      async () => {
        const r = (await probe("db3")).replica
        return r?.ioRunning === true && r.sourceUuid !== ""
      },
      15_000,
    )
    const o = await probe("db3")
    assert.equal(o.replica?.sourceHost, lab.host("db2").address)
    assert.equal(o.replica?.autoPosition, true)
    assert.equal(o.replica?.sourceUuid, (await probe("db2")).serverUuid)
    await lab.query("db1", "INSERT INTO app.t VALUES (30, 'via db2')")
    const target = await executed("db1")
    assert.equal((await run(db3.waitForExecutedGtidSet(target, 10)))._tag, "Applied")
    const rows = await lab.query<{ v: string }>("db3", "SELECT v FROM app.t WHERE id = 30")
    assert.equal(rows[0]?.v, "via db2")
    // Back to db1 for the tests that follow.
    await run(
      db3.repoint({
        host: lab.host("db1").address,
        port: MYSQL_PORT,
        user: LAB_USERS.replication.user,
        password: LAB_USERS.replication.password,
        auth: { _tag: "GetSourcePublicKey" },
      }),
    )
    await waitFor(
      "db3 back on db1",
      async () =>
        (await probe("db3")).replica?.sourceHost === lab.host("db1").address &&
        (await probe("db3")).replica?.ioRunning === true,
      15_000,
    )
  })

  test("injectEmptyTransactions on the (fenced) primary makes an errant set disappear", async () => {
    // An errant transaction on db2: a GTID of its own that db1 never had.
    const uuid2 = (await probe("db2")).serverUuid
    assert.ok(
      isEmpty(subtract(await executed("db2"), await executed("db1"))),
      "no errant transaction so far",
    )
    const conn = await lab.connect("db2")
    try {
      await conn.query(`SET GTID_NEXT = '${uuid2}:1'`)
      await conn.query("BEGIN")
      await conn.query("COMMIT")
      await conn.query("SET GTID_NEXT = 'AUTOMATIC'")
    } finally {
      await conn.end()
    }
    const errant = subtract(await executed("db2"), await executed("db1"))
    assert.equal(formatGtidSet(errant), `${uuid2}:1`)
    const db1 = actions("db1")
    // Decision under test: no unfence needed, an empty transaction commits under super_read_only.
    await run(db1.fence)
    try {
      const n = await run(db1.injectEmptyTransactions(errant))
      assert.equal(n, 1)
    } finally {
      await run(db1.unfence)
    }
    const after1 = await executed("db1")
    assert.ok(isSubset(errant, after1))
    const [subset] = await lab.query<{ s: number }>(
      "db1",
      "SELECT GTID_SUBSET(?, @@gtid_executed) AS s",
      [formatGtidSet(await executed("db2"))],
    )
    assert.equal(Number(subset?.s), 1, "db2's executed set is now a subset of the primary's")
    await lab.waitReplicasCaughtUp("db1")
    assert.ok(
      isSubset(errant, await executed("db3")),
      "the empty transaction reached the other replica",
    )
    const r2 = await probe("db2")
    assert.equal(r2.replica?.sqlRunning, true, "db2 skipped the GTID it already had")
    assert.equal(r2.replica?.lastSqlError, null)
  })

  test("semi-sync settings take effect: the source waits for an attached replica's ack", async () => {
    await run(
      actions("db1").setSemiSyncSource({
        enabled: true,
        timeoutMs: 10_000,
        waitForReplicaCount: 1,
      }),
    )
    // MySQL reads rpl_semi_sync_replica_enabled when the receiver connects: turned on while it
    // runs, the live connection stays asynchronous (Rpl_semi_sync_replica_status OFF, not a
    // semi-sync client of the source) until the IO thread restarts.
    await lab.query("db2", "SET GLOBAL rpl_semi_sync_replica_enabled = ON")
    await new Promise((r) => setTimeout(r, 300))
    assert.equal((await probe("db2")).semiSync.replicaActive, false)
    assert.equal((await probe("db1")).semiSync.sourceClients, 0)
    const r = await run(actions("db2").setSemiSyncReplica(true))
    assert.equal(r.ioThreadRestarted, true)
    await waitFor(
      "Rpl_semi_sync_source_status ON with a replica attached",
      async () => {
        const o = await probe("db1")
        return o.semiSync.sourceActive && o.semiSync.sourceClients >= 1
      },
      10_000,
    )
    const src = await probe("db1")
    assert.equal(src.semiSync.sourceEnabled, true)
    assert.equal(src.semiSync.sourceTimeoutMs, 10_000)
    assert.equal(src.semiSync.waitForReplicaCount, 1)
    assert.equal(src.semiSync.sourceClients, 1, "only db2 acknowledges")
    const rep = await probe("db2")
    assert.equal(rep.semiSync.replicaEnabled, true)
    assert.equal(rep.semiSync.replicaActive, true)
    const yes = async () =>
      Number(
        (
          await lab.query<{ Value: string }>(
            "db1",
            "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_source_yes_tx'",
          )
        )[0]?.Value,
      )
    const before1 = await yes()
    await lab.query("db1", "INSERT INTO app.t VALUES (40, 'acked')")
    assert.equal(await yes(), before1 + 1, "the commit was acknowledged by a replica")
    // Issue 13: already connected as wanted, it is not restarted (a restart drops the connection
    // and the source's next commits wait until it is back).
    assert.equal((await run(actions("db2").setSemiSyncReplica(true))).ioThreadRestarted, false)
    // Enabled before START REPLICA (as repoint does): semi-sync from its first connection.
    await lab.query("db2", "STOP REPLICA")
    await lab.query("db2", "START REPLICA")
    await waitFor(
      "db2 a semi-sync client again after START REPLICA",
      async () => (await probe("db1")).semiSync.sourceClients === 1,
      10_000,
    )
    assert.equal((await probe("db2")).semiSync.replicaActive, true)
    assert.equal((await run(actions("db2").setSemiSyncReplica(true))).ioThreadRestarted, false)
    await lab.query("db1", "INSERT INTO app.t VALUES (41, 'acked')")
    assert.equal(await yes(), before1 + 2, "acknowledged on that first connection")
    // Off again, both sides.
    assert.equal((await run(actions("db2").setSemiSyncReplica(false))).ioThreadRestarted, true)
    await run(
      actions("db1").setSemiSyncSource({
        enabled: false,
        timeoutMs: 10_000,
        waitForReplicaCount: 1,
      }),
    )
    const off = await probe("db1")
    assert.equal(off.semiSync.sourceEnabled, false)
    assert.equal(off.semiSync.sourceActive, false)
    assert.equal((await probe("db2")).semiSync.replicaEnabled, false)
  })

  test("typed errors name the action, MySQL's code and message, never the password", async () => {
    const e1 = await fails(actions("db1").startReplica)
    assert.equal(e1.action, "start-replica")
    assert.equal(e1.kind, "server")
    assert.equal(typeof e1.errno, "number")
    assert.ok(e1.message.includes(String(e1.errno)), e1.message)
    const e2 = await fails(actions("db1", agentSettings("mha", "wrong-password-xyz")).fence)
    assert.equal(e2.kind, "connect")
    assert.equal(e2.errno, 1045)
    assert.equal(e2.code, "ER_ACCESS_DENIED_ERROR")
    assert.ok(!e2.message.includes("wrong-password-xyz"))
    // A server error in a statement that carries a password (the replication one).
    const e3 = await fails(
      actions("db2").repoint({
        host: "10.88.0.11",
        port: MYSQL_PORT,
        user: "repl",
        // Longer than the 32 characters MySQL accepts: it refuses the statement.
        password: `secret-in-sql-xyz-${"x".repeat(40)}`,
        auth: { _tag: "GetSourcePublicKey" },
      }),
    )
    assert.equal(e3.action, "repoint")
    assert.equal(e3.kind, "server", e3.message)
    assert.ok(!JSON.stringify(e3).includes("secret-in-sql-xyz"), JSON.stringify(e3))
    assert.ok(!e3.message.includes("secret-in-sql-xyz"))
    await run(actions("db2").startReplica)
  })

  test("clone re-seeds a detached replica from a donor", async () => {
    const db3 = actions("db3")
    await run(db3.resetReplicaAll)
    assert.equal((await probe("db3")).replica, null, "RESET REPLICA ALL forgot the source")
    await lab.query(
      "db1",
      "CREATE TABLE app.big (id INT PRIMARY KEY AUTO_INCREMENT, pad CHAR(200))",
    )
    await lab.query(
      "db1",
      "INSERT INTO app.big (pad) VALUES " +
        Array.from({ length: 2000 }, () => "(REPEAT('x', 200))").join(","),
    )
    const donorSet = await executed("db1")
    assert.ok(!isSubset(donorSet, await executed("db3")), "db3 misses the donor's latest writes")
    const before1 = await probe("db3")
    // A clone that cannot reach its donor fails with MySQL's error and leaves the recipient fenced.
    const bad = await fails(
      db3.clone({
        donorHost: lab.host("db1").address,
        donorPort: 3307,
        user: LAB_USERS.agent.user,
        password: LAB_USERS.agent.password,
        timeoutMs: 30_000,
      }),
    )
    assert.equal(bad.action, "clone")
    assert.equal(bad.kind, "server", bad.message)
    assert.equal(typeof bad.errno, "number")
    assert.equal((await probe("db3")).superReadOnly, true, "fenced again after the failed clone")
    console.log(`a clone from a closed port fails with: ${bad.message}`)
    const starts = async () =>
      (await lab.supervisorEvents("db3")).filter((l) => l.includes(" started ")).length
    const startsBefore = await starts()
    const { value: result, ms } = await timed(() =>
      run(
        db3.clone({
          donorHost: lab.host("db1").address,
          donorPort: MYSQL_PORT,
          user: LAB_USERS.agent.user,
          password: Redacted.make(LAB_USERS.agent.password),
          timeoutMs: 120_000,
          restartTimeoutMs: 60_000,
        }),
      ),
    )
    console.log(
      `clone: ${ms.toFixed(0)} ms in all, the CLONE statement ${result.copyMs} ms, then the restart (${result.ending})`,
    )
    assert.ok(isSubset(donorSet, result.executed), "the clone has the donor's transactions")
    const rows = await lab.query<{ n: number }>("db3", "SELECT COUNT(*) AS n FROM app.big")
    assert.equal(Number(rows[0]?.n), 2000)
    assert.equal(await starts(), startsBefore + 1, "mysqld was restarted once, by the supervisor")
    const after1 = await probe("db3")
    assert.equal(after1.serverUuid, before1.serverUuid, "a clone keeps the recipient's server_uuid")
    assert.equal(after1.superReadOnly, true, "it boots fenced")
    // Then it replicates again.
    await run(
      db3.repoint({
        host: lab.host("db1").address,
        port: MYSQL_PORT,
        user: LAB_USERS.replication.user,
        password: LAB_USERS.replication.password,
        auth: { _tag: "GetSourcePublicKey" },
      }),
    )
    await lab.query("db1", "INSERT INTO app.t VALUES (50, 'after clone')")
    assert.equal((await run(db3.waitForExecutedGtidSet(await executed("db1"), 15)))._tag, "Applied")
  })

  test("checkGrants: nothing missing for the agent's user; names what a weaker user lacks, and it matters", async () => {
    const full = await run(actions("db1").checkGrants)
    assert.equal(full.user, "mha@%")
    assert.deepEqual(full.missing, [], JSON.stringify(full))
    // The same grants without CONNECTION_ADMIN.
    await lab.query("db1", "CREATE USER 'weak'@'%' IDENTIFIED BY 'weak-pass'")
    await lab.query(
      "db1",
      "GRANT SELECT, RELOAD, PROCESS, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'weak'@'%'",
    )
    await lab.query(
      "db1",
      "GRANT SYSTEM_VARIABLES_ADMIN, SESSION_VARIABLES_ADMIN, REPLICATION_SLAVE_ADMIN, BACKUP_ADMIN, CLONE_ADMIN ON *.* TO 'weak'@'%'",
    )
    const weak = actions("db1", agentSettings("weak", "weak-pass"))
    const report = await run(weak.checkGrants)
    assert.deepEqual(
      report.missing.map((m) => m.privilege),
      ["CONNECTION_ADMIN"],
    )
    assert.ok(report.missing[0]?.neededBy.some((n) => n.startsWith("killClientSessions")))
    // A privilege held through a default role counts (SHOW GRANTS alone does not list it).
    await lab.query("db1", "CREATE ROLE 'killer'")
    await lab.query("db1", "GRANT CONNECTION_ADMIN ON *.* TO 'killer'")
    await lab.query("db1", "GRANT 'killer' TO 'weak'@'%'")
    await lab.query("db1", "SET DEFAULT ROLE 'killer' TO 'weak'@'%'")
    const viaRole = await run(weak.checkGrants)
    assert.deepEqual(viaRole.roles, ["`killer`@`%`"])
    assert.deepEqual(viaRole.missing, [], JSON.stringify(viaRole))
    // Granted but not active (no default role): it does not count.
    await lab.query("db1", "SET DEFAULT ROLE NONE TO 'weak'@'%'")
    const inactive = await run(weak.checkGrants)
    assert.deepEqual(
      inactive.missing.map((m) => m.privilege),
      ["CONNECTION_ADMIN"],
    )
    // It matters: without CONNECTION_ADMIN the kill of another user's session fails.
    const app = await appConnection("db1")
    app.on("error", () => {})
    try {
      const e = await fails(weak.killClientSessions())
      assert.equal(e.action, "kill-sessions")
      assert.equal(e.errno, 1095, `ER_KILL_DENIED_ERROR: ${e.message}`)
      await app.query("SELECT 1")
    } finally {
      await app.end().catch(() => {})
    }
  })

  // Last: it restarts the source (read-only when it comes back).
  test("a replica whose source went away shows Connecting and reconnects by itself once it is back, without START REPLICA", async () => {
    assert.equal((await probe("db3")).replica?.ioState, "Yes")
    await lab.inject({ _tag: "KillMysqld", host: "db1" })
    let seen = ""
    await waitFor(
      "db3's IO thread to retry (Connecting)",
      async () => {
        const r = (await probe("db3")).replica
        seen = `${r?.ioState} ${r?.lastIoError?.errno ?? "no error"}`
        return r?.ioState === "Connecting"
      },
      10_000,
      50,
    )
    await lab.waitMysqld("db1")
    // Nobody starts replication on db3: MySQL retries every SOURCE_CONNECT_RETRY (1 s) itself.
    await waitFor(
      "db3's IO thread to reconnect by itself",
      async () => (await probe("db3")).replica?.ioState === "Yes",
      20_000,
    )
    console.log(`source killed: the replica read "${seen}" while retrying, then Yes by itself`)
  })
})
