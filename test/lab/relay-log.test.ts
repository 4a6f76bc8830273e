// Issue 10 item 4: a replica that cannot freeze or lost its relay log.
//
// (a) A replica whose relay log disk is full (a 64 MB tmpfs, filled): its
//     agent shows CRITICAL with the cause, it is never promoted, and it
//     cannot freeze (STOP REPLICA IO_THREAD waits with the IO thread). One
//     cluster, three checks:
//     1. MySQL acknowledges only after the relay-log write: with the other
//        replica's MySQL port cut, a commit waits while the disk is full and
//        gets OK once it is freed, the row then on the stuck replica only.
//     2. The primary's mysqld stops for good (its agent alive): the agent
//        resigns and reports its mysqld refused, so the stuck voter's
//        acknowledgements can release nothing; it votes on its last probe
//        without freezing, and the healthy replica is ACTIVE within
//        restart_timeout + 15 s, the disk still full (protocol.md section 7).
//     3. The same with the primary's agent gone too (no report): the stuck
//        voter refuses at PreVote (no climbing terms), nothing is elected;
//        `failover --force` elects the healthy replica, the voter logging
//        what it waived.
// (b) A replica's mysqld killed during an election:
// 1. What MySQL 9.7 really does with the relay log across kill -9 of a
//    replica's mysqld, checked before the agent relies on it: with
//    relay_log_recovery=OFF (the lab's my.cnf, the recommended setting) the
//    received transactions survive (Retrieved_Gtid_Set and the applier work
//    from the kept relay log even with the source down); with ON they are
//    discarded at start, so a replica holding the only copy of an
//    acknowledged write loses it.
// 2. The primary's mysqld stops for good and the best replica's mysqld is
//    killed at once: a primary again within a bounded time, nothing
//    acknowledged lost, and the terms do not climb (before: "relay logs ...
//    may have held acknowledged transactions" at every vote, terms 1 -> 56).
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { mkdir, readFile, writeFile } from "node:fs/promises"
import { test } from "node:test"
import { count, type GtidSet, isSubset, parseGtidSet, subtract } from "../../agent/src/core/gtid.ts"
import { agentStatus, bringBackOldPrimary } from "./acceptance-scenarios.ts"
import { type LabCluster, runScenario } from "./cluster.ts"
import { run, sleep, waitFor } from "./exec.ts"
import { agentHttp } from "./http-client.ts"
import { LAB_USERS, Lab } from "./lab.ts"

const gtids = (text: string): GtidSet => {
  const r = parseGtidSet(text.replace(/\s+/g, ""))
  if (r._tag !== "Ok") throw new Error(`bad GTID set ${text}: ${r.message}`)
  return r.set
}

interface Received {
  readonly retrieved: GtidSet
  readonly executed: GtidSet
}

const received = async (lab: Lab, host: string): Promise<Received> => {
  const [r] = await lab.query<Record<string, unknown>>(host, "SHOW REPLICA STATUS")
  return {
    retrieved: gtids(String(r?.Retrieved_Gtid_Set ?? "")),
    executed: gtids(String(r?.Executed_Gtid_Set ?? "")),
  }
}

/** kill -9 of mysqld; the supervisor starts it again. */
const killAndWaitBack = async (lab: Lab, host: string): Promise<void> => {
  await lab.inject({ _tag: "KillMysqld", host })
  await waitFor(`${host}'s mysqld down`, async () => !(await lab.isMysqldUp(host)), 10_000, 50)
  await lab.waitMysqld(host)
}

test("MySQL 9.7: relay_log_recovery=OFF keeps a killed replica's relay log, ON discards it", {
  timeout: 240_000,
}, async () => {
  const lab = await Lab.up({ hosts: 2, replication: true, semiSync: true })
  try {
    const [v] = await lab.query<{ r: number }>("db2", "SELECT @@relay_log_recovery AS r")
    assert.equal(Number(v?.r), 0, "the lab's my.cnf sets relay_log_recovery=OFF")
    await lab.query("db1", "CREATE DATABASE app")
    await lab.query("db1", "CREATE TABLE app.t (id INT PRIMARY KEY)")
    await lab.waitReplicasCaughtUp("db1")
    // Received (acknowledged by db2, strict semi-sync) but not applied.
    const relayOnly = async (from: number): Promise<Received> => {
      await lab.query("db2", "STOP REPLICA SQL_THREAD")
      for (let i = from; i < from + 20; i++)
        await lab.query("db1", `INSERT INTO app.t VALUES (${i})`)
      let before = await received(lab, "db2")
      await waitFor(
        "db2 to receive 20 transactions it does not apply",
        async () => {
          before = await received(lab, "db2")
          return count(subtract(before.retrieved, before.executed)) >= 20
        },
        10_000,
      )
      // The source goes away: whatever db2 has after its restart came from its own relay log.
      await lab.inject({ _tag: "StopMysqld", host: "db1" })
      await killAndWaitBack(lab, "db2")
      return before
    }

    const kept = await relayOnly(1)
    await waitFor(
      "db2 to apply its kept relay log with db1 down",
      async () => isSubset(kept.retrieved, (await received(lab, "db2")).executed),
      30_000,
    )
    const afterOff = await received(lab, "db2")
    assert.ok(isSubset(kept.retrieved, afterOff.retrieved), "Retrieved_Gtid_Set survived")
    const [n] = await lab.query<{ n: number }>("db2", "SELECT COUNT(*) AS n FROM app.t")
    assert.equal(Number(n?.n), 20, "every received row applied once")
    // db1 comes back read-only (my.cnf) without semi-sync (runtime only): a plain source here.
    const sourceBack = async (): Promise<void> => {
      await lab.inject({ _tag: "StartMysqld", host: "db1" })
      await lab.query("db1", "SET GLOBAL super_read_only = OFF")
      await lab.query("db1", "SET GLOBAL read_only = OFF")
      await lab.query("db2", "STOP REPLICA")
      await lab.query("db2", "START REPLICA")
    }
    await sourceBack()
    await lab.query("db1", "INSERT INTO app.t VALUES (100)")
    await lab.waitReplicasCaughtUp("db1")
    const status = await lab.replicaStatus("db2")
    assert.equal(status?.lastError, "", "replication resumes without error")
    assert.equal(status?.ioRunning, "Yes")

    // Before: relay_log_recovery=ON throws the received transactions away at start.
    await lab.query("db2", "SET PERSIST_ONLY relay_log_recovery = ON")
    const lost = await relayOnly(200)
    const afterOn = await received(lab, "db2")
    const mine = subtract(lost.retrieved, lost.executed)
    assert.ok(
      !isSubset(mine, afterOn.retrieved) && !isSubset(mine, afterOn.executed),
      "with relay_log_recovery=ON the received, unapplied transactions are gone",
    )
    console.log(
      `relay_log_recovery OFF: ${count(subtract(kept.retrieved, kept.executed))} received transactions kept across kill -9; ON: ${count(subtract(mine, afterOn.executed))} of ${count(mine)} lost`,
    )
    await lab.query("db2", "RESET PERSIST relay_log_recovery")
    await sourceBack()
  } finally {
    await lab.down()
  }
})

test(
  "the primary's mysqld stops and the best replica's mysqld is killed at once: a primary again, nothing acknowledged lost",
  { timeout: 300_000 },
  () =>
    runScenario({ slug: "lost-relay-log", timings: { restart_timeout: "5s" } }, async (c) => {
      const primary = await c.waitForPrimary(10_000)
      const replicas = c.lab.hosts.map((h) => h.name).filter((n) => n !== primary)
      const termBefore = c.term(replicas[0]!)
      const faultAt = Date.now()
      await c.lab.inject({ _tag: "StopMysqld", host: primary })
      // The best replica: the one that received most (it is the one that stands).
      const counts = await Promise.all(
        replicas.map(async (h) => {
          const r = await received(c.lab, h)
          return count(r.retrieved) + count(r.executed)
        }),
      )
      const best = counts[1]! > counts[0]! ? replicas[1]! : replicas[0]!
      await c.lab.inject({ _tag: "KillMysqld", host: best })
      const next = await c.waitForPrimary(60_000, primary)
      const failoverMs = Date.now() - faultAt
      const terms = Math.max(...replicas.map((h) => c.term(h))) - termBefore
      const view = await agentStatus(c, next)
      assert.equal(view.leader, next)
      await bringBackOldPrimary(c, primary, next)
      const result = await c.check(faultAt)
      assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
      console.log(
        `primary ${primary} stopped, ${best}'s mysqld killed: ${next} ACTIVE after ${failoverMs} ms, ${terms} term(s), write downtime ${result.downtimeMs} ms, ${result.acked} acknowledged writes, none lost`,
      )
      assert.ok(failoverMs < 30_000, `a primary again within 30 s (took ${failoverMs} ms)`)
      assert.ok(terms <= 4, `terms do not climb at every attempt (${terms})`)
    }),
)

/** `p`, or `fallback` after `ms` (queries on a mysqld whose STOP REPLICA hangs block). */
const within = <T>(ms: number, p: Promise<T>, fallback: T): Promise<T> =>
  Promise.race([p, sleep(ms).then(() => fallback)])

/** A statement's outcome, recorded when it settles (never awaited blindly). */
interface PendingInsert {
  settled: { readonly ok: boolean; readonly error?: string; readonly at: number } | undefined
  readonly done: Promise<void>
}
const pendingInsert = (lab: Lab, host: string, id: number): PendingInsert => {
  const p: PendingInsert = {
    settled: undefined,
    done: lab.query(host, "INSERT INTO ackorder.t VALUES (?)", [id]).then(
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
/** Read through a function: the compiler must not narrow a field that a callback sets. */
const settledOf = (p: PendingInsert) => p.settled
const processlist = (lab: Lab, host: string) =>
  lab
    .query<Record<string, unknown>>(
      host,
      "SELECT ID, USER, COMMAND, TIME, STATE, INFO FROM performance_schema.processlist",
    )
    .catch((e: Error) => `(failed: ${e.message})`)
/** A read on a fresh connection, taken once more if the server closed the first one. */
const queryOnce = async <T = Record<string, unknown>>(
  lab: Lab,
  host: string,
  sql: string,
): Promise<T[]> => {
  try {
    return await lab.query<T>(host, sql)
  } catch (e) {
    if ((e as { code?: string }).code !== "PROTOCOL_CONNECTION_LOST") throw e
    console.log(`${host}: ${sql.slice(0, 60)}...: connection lost, read again`)
    return lab.query<T>(host, sql)
  }
}

/**
 * The full-relay-disk scenario's cluster; with the lag from the heartbeat table
 * (issue 15 item 7, checked in its step 1), whose schema the agent's user may write.
 */
const fullRelayDisk = {
  timings: { restart_timeout: "5s" },
  extra: { lag: { source: "heartbeat_table" } },
  beforeAgents: async (lab: Lab) => {
    await lab.query(
      "db1",
      `GRANT CREATE, INSERT, UPDATE ON mha_agent.* TO '${LAB_USERS.agent.user}'@'%'`,
    )
  },
}

/** The stuck node's lag as its agent reports it (`status --json`), and where it comes from. */
const reportedLag = async (
  c: LabCluster,
  host: string,
): Promise<{ lag: number | null | undefined; source: string }> => {
  const status = (await agentStatus(c, host)) as unknown as {
    lagSource?: string
    members: ReadonlyArray<{ name: string; lagSeconds?: number | null }>
  }
  return {
    lag: status.members.find((m) => m.name === host)?.lagSeconds,
    source: status.lagSource ?? "",
  }
}

/** What one heartbeat row costs in `host`'s binary log: the median size of its transactions. */
const heartbeatTransactionBytes = async (lab: Lab, host: string): Promise<number | null> => {
  const [now] = await lab.query<{ File: string }>(host, "SHOW BINARY LOG STATUS")
  const events = await lab.query<Record<string, unknown>>(
    host,
    `SHOW BINLOG EVENTS IN '${now?.File ?? ""}'`,
  )
  const sizes: Array<number> = []
  let start = 0
  let heartbeat = false
  for (const e of events) {
    const type = String(e.Event_type)
    if (type.startsWith("Gtid")) [start, heartbeat] = [Number(e.Pos), false]
    if (type === "Table_map" && String(e.Info).includes("(mha_agent.")) heartbeat = true
    if (type === "Xid" && heartbeat) sizes.push(Number(e.End_log_pos) - start)
  }
  sizes.sort((a, b) => a - b)
  return sizes[Math.floor(sizes.length / 2)] ?? null
}

/** `host`'s agent says `leader` is ACTIVE and `leader`'s mysqld is writable (asks no stuck mysqld). */
const activeAt = async (c: LabCluster, host: string, leader: string): Promise<boolean> => {
  const view = await agentStatus(c, host).catch(() => undefined)
  if (view?.leader !== leader || !view.leaderActive) return false
  const [v] = await c.lab
    .query<{ sro: number }>(leader, "SELECT @@super_read_only AS sro")
    .catch(() => [])
  return v?.sro === 0
}

test(
  "a replica whose relay log disk is full: CRITICAL, does not stand, acknowledges nothing it has not written; the healthy replica is elected without freeing the disk once the old primary's agent reports its mysqld down; failover --force when that agent is gone too",
  { timeout: 900_000 },
  () =>
    runScenario({ slug: "full-relay-disk", ...fullRelayDisk }, async (c) => {
      const primary = await c.waitForPrimary(10_000)
      const [stuck, healthy] = c.lab.hosts.map((h) => h.name).filter((n) => n !== primary) as [
        string,
        string,
      ]
      const rootfs = c.lab.state.rootfs
      const hostDir = c.lab.host(stuck).hostDir
      const dir = c.lab.hostPath(stuck, "relayfs")
      // The relay log moves to a 64 MB tmpfs (relay_log_recovery ON for this move only). Not
      // smaller: the relay log never rotates here (max_relay_log_size 0: 1 GB), so the applier
      // purges nothing, and the backlog the stuck replica fetches once the disk is freed (minutes
      // of the writer's rows) must fit; with 1 MB it filled the disk again within 25 ms of the
      // retry, STOP REPLICA hung for good, and a kill then left mysqld segfaulting at every start.
      await c.lab.inject({ _tag: "StopMysqld", host: stuck })
      await mkdir(dir, { recursive: true })
      const uid = (await run("chroot", [rootfs, "id", "-u", "mysql"])).stdout.trim()
      const gid = (await run("chroot", [rootfs, "id", "-g", "mysql"])).stdout.trim()
      // Mounted in the mount namespace of the host's supervisor (ip netns exec made its own),
      // so that the mysqld it starts sees it.
      const supervisor = (
        await run("pgrep", ["-o", "-f", `supervisor.sh ${rootfs} ${hostDir}$`])
      ).stdout.trim()
      const inHost = (args: ReadonlyArray<string>) =>
        run("nsenter", ["-t", supervisor, "-m", ...args])
      const fill = () =>
        inHost(["dd", "if=/dev/zero", `of=${dir}/filler`, "bs=4k"]).then(
          () => {},
          () => {},
        )
      const free = () => inHost(["rm", "-f", `${dir}/filler`])
      const ioState = (): Promise<string> =>
        within(
          5_000,
          c.lab.query<Record<string, unknown>>(stuck, "SHOW REPLICA STATUS").then(
            ([r]) => String(r?.Replica_IO_State ?? ""),
            (e: Error) => `(failed: ${e.message})`,
          ),
          "(SHOW REPLICA STATUS blocked)",
        )
      /** The stuck node's agent reports it CRITICAL (or FAIL); returns why it does not stand. */
      const critical = async (): Promise<string> => {
        let why = ""
        await waitFor(
          `${stuck}'s agent to report it CRITICAL`,
          async () => {
            const status = await agentStatus(c, stuck)
            why = status.electionStatus
            const health = (
              status.members.find((m) => m.name === stuck) as { health?: string } | undefined
            )?.health
            return health === "CRITICAL" || health === "FAIL"
          },
          120_000,
          500,
        )
        return why
      }
      await inHost([
        "mount",
        "-t",
        "tmpfs",
        "-o",
        `size=64m,uid=${uid},gid=${gid},mode=0750`,
        "tmpfs",
        dir,
      ])
      try {
        const cnf = c.lab.hostPath(stuck, "my.cnf")
        const text = await readFile(cnf, "utf8")
        await writeFile(
          cnf,
          text
            .replace(/^relay-log=relay$/m, `relay-log=${hostDir}/relayfs/relay`)
            .replace(/^relay_log_recovery=OFF$/m, "relay_log_recovery=ON"),
        )
        await c.lab.inject({ _tag: "StartMysqld", host: stuck })
        await waitFor(
          `${stuck} replicating into its tmpfs relay log`,
          async () =>
            (await c.lab.replicaStatus(stuck).catch(() => undefined))?.ioRunning === "Yes",
          60_000,
        )
        await c.waitForWritesAfter(Date.now(), 30_000)
        // Not while the applier purges the relay logs of the restart: a purge that waits for
        // space rewrites the index holding locks SHOW REPLICA STATUS needs, so every probe
        // hangs and the node cannot vouch for its data at all (section 7).
        await sleep(5_000)
        await c.lab.query(primary, "CREATE DATABASE IF NOT EXISTS ackorder")
        await c.lab.query(primary, "CREATE TABLE ackorder.t (id INT PRIMARY KEY)")
        // Fill the disk: the IO thread cannot write the relay log any more.
        await fill()
        const why = await critical()
        assert.match(why, /Waiting for disk space|not up/, `${stuck} does not stand: ${why}`)
        const faultAt = Date.now()

        // 1. MySQL: a semi-sync replica acknowledges only after the relay-log write. With the
        //    healthy replica's MySQL port cut, only the stuck one could acknowledge: a commit
        //    waits; once the disk is freed it gets OK, and the row is on the stuck replica only.
        await c.lab.inject({ _tag: "CutReplication", a: primary, b: healthy })
        // Once in CI (320a0b8) a root connection over db1's socket was closed by the server
        // during this step, cause unknown (no agent action was logged; not reproduced in a
        // lab that loops the same statements). The outcome is recorded, never left as an
        // unhandled rejection; a lost session is reported with the processlist and the step
        // is taken again with a new row, once.
        let rowId = 1
        let insertAt = Date.now()
        let insert = pendingInsert(c.lab, primary, rowId)
        await sleep(6_000)
        if (settledOf(insert)?.ok === false && rowId === 1) {
          console.log(
            `the INSERT of row 1 failed before the disk was freed (${settledOf(insert)?.error}); processlist of ${primary}: ${JSON.stringify(await processlist(c.lab, primary))}; again with row 2`,
          )
          rowId = 2
          insertAt = Date.now()
          insert = pendingInsert(c.lab, primary, rowId)
          await sleep(6_000)
        }
        const [waits] = await queryOnce(
          c.lab,
          primary,
          "SELECT VARIABLE_VALUE AS v FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Rpl_semi_sync_source_wait_sessions'",
        )
        assert.equal(
          settledOf(insert),
          undefined,
          "no OK (nor error) while the only possible acknowledger cannot write its relay log",
        )
        assert.ok(Number(waits?.v) >= 1, "the commit waits for an acknowledgement")
        const stateWhileWaiting = await ioState()
        assert.match(stateWhileWaiting, /disk space/i)
        // However far behind, the lag MySQL reports is 0: the applier has caught up with the
        // relay log, which the IO thread cannot extend (the simulator's model assumes it).
        const lagWhileWaiting = await within(
          5_000,
          c.lab
            .query<Record<string, unknown>>(stuck, "SHOW REPLICA STATUS")
            .then(([r]) => String(r?.Seconds_Behind_Source ?? "null")),
          "(SHOW REPLICA STATUS blocked)",
        )
        assert.equal(lagWhileWaiting, "0", "Seconds_Behind_Source while it waits for disk space")
        // Issue 15 item 7: the heartbeat table tells the truth here. The primary's row stopped
        // arriving when the disk filled; the stuck replica's agent reports its age (on its own
        // mysqld's clock), so /replica?max_lag refuses it while MySQL says 0.
        let reported: { lag: number | null | undefined; source: string } = { lag: null, source: "" }
        await waitFor(
          `${stuck}'s agent to report a heartbeat-table lag above 5 s`,
          async () => {
            reported = await reportedLag(c, stuck)
            return reported.source === "heartbeat_table" && (reported.lag ?? 0) > 5
          },
          20_000,
          500,
        ).catch((e: Error) => {
          throw new Error(`${e.message} (last: lag ${reported.lag} s from ${reported.source})`)
        })
        const read = await agentHttp(c.lab, stuck, "/replica?max_lag=5")
        assert.equal(read.status, 503, `/replica?max_lag=5 on ${stuck}: ${read.body}`)
        assert.match(read.body, /lag [\d.]+ s > max_lag 5 s \(from heartbeat_table\)/)
        const page = (await agentHttp(c.lab, stuck, "/metrics")).body
        const gauge = (name: string) =>
          Number(new RegExp(`^${name}\\{node="${stuck}"\\} (\\S+)$`, "m").exec(page)?.[1])
        assert.ok(gauge("mha_replication_lag_seconds") > 5, "the lag gauge is the heartbeat's")
        assert.equal(gauge("mha_replication_seconds_behind_source"), 0, "MySQL's value beside it")
        const bytes = await within(
          5_000,
          heartbeatTransactionBytes(c.lab, primary).catch(() => null),
          null,
        )
        console.log(
          `${stuck} stuck: Seconds_Behind_Source 0, heartbeat lag ${reported.lag} s; /replica?max_lag=5: ${read.status} ${read.body.trim()}; one heartbeat row: ${bytes ?? "?"} bytes of binlog`,
        )
        const freedAt = Date.now()
        await free()
        // mysqld retries a full disk every 60 s.
        await within(150_000, insert.done, undefined)
        const settled = settledOf(insert)
        assert.equal(settled?.ok, true, `OK once written: ${JSON.stringify(settled)}`)
        const okAt = settled?.at ?? 0
        await waitFor(
          `the row on ${stuck}`,
          async () => {
            const [row] = await c.lab.query<{ n: number }>(
              stuck,
              "SELECT COUNT(*) AS n FROM ackorder.t WHERE id = ?",
              [rowId],
            )
            return Number(row?.n) === 1
          },
          30_000,
        )
        const [lacks] = await c.lab.query<{ n: number }>(
          healthy,
          "SELECT COUNT(*) AS n FROM ackorder.t WHERE id = ?",
          [rowId],
        )
        assert.equal(Number(lacks?.n), 0, `${healthy} (cut) did not acknowledge it`)
        console.log(
          `ack order: commit pending ${freedAt - insertAt} ms while ${stuck} waited for disk space ("${stateWhileWaiting}"), OK ${okAt - freedAt} ms after the disk was freed (the row then on ${stuck}, not on ${healthy})`,
        )
        // Full again, then the healthy replica back.
        await fill()
        await c.lab.inject({ _tag: "Heal", hosts: [] })
        await waitFor(
          `${stuck} stuck again`,
          async () => /disk space/i.test(await ioState()),
          60_000,
        )
        await c.waitForWritesAfter(Date.now(), 30_000)

        // 2. The primary's mysqld stops for good; its agent resigns and reports it refused:
        //    the stuck voter's acknowledgements can release nothing, it votes without freezing.
        const before = Math.max(...c.lab.hosts.map((h) => c.term(h.name)))
        const stopAt = Date.now()
        await c.lab.inject({ _tag: "StopMysqld", host: primary })
        await waitFor(
          `${healthy} ACTIVE with ${stuck}'s disk still full`,
          () => activeAt(c, healthy, healthy),
          60_000,
          200,
        )
        const electedMs = Date.now() - stopAt
        const terms = Math.max(...c.lab.hosts.map((h) => c.term(h.name))) - before
        assert.match(await ioState(), /disk space|blocked/i, "still full")
        console.log(
          `primary ${primary}'s mysqld stopped with ${stuck}'s relay disk full: ${healthy} ACTIVE after ${electedMs} ms, ${terms} term(s)`,
        )
        assert.ok(electedMs < 20_000, `elected within restart_timeout + 15 s (${electedMs} ms)`)
        assert.ok(terms <= 3, `terms do not climb (${terms})`)

        // Back to three healthy nodes, all replicating from the new primary.
        await free()
        await bringBackOldPrimary(c, primary, healthy)
        await waitFor(
          `${stuck} STANDBY of ${healthy}`,
          async () => (await c.agentRole(healthy, stuck).catch(() => "")) === "STANDBY",
          180_000,
          1000,
        )
        await c.agents.cli(healthy, ["ack-recovery"])

        // 3. What remains for the operator: the stuck replica's source is gone with its agent
        //    (no report), so no election; `failover --force` on the healthy replica.
        await fill()
        // Stuck for real before the healthy replica goes: its IO thread waiting for disk space.
        // A CRITICAL alone is not enough (in CI it was the lag of the catch-up after the last
        // free, and the writer's next second of rows still fitted in the relay log's last page:
        // the IO thread never waited, stopped when its source went, and db2 voted, rightly).
        await waitFor(
          `${stuck} stuck again`,
          async () => /disk space/i.test(await ioState()),
          60_000,
        )
        await critical()
        const goneAt = Date.now()
        await c.lab.inject({ _tag: "KillAgent", host: healthy })
        await c.lab.inject({ _tag: "StopMysqld", host: healthy })
        await sleep(15_000)
        const held = await agentStatus(c, primary)
        assert.ok(!(held.leaderActive && held.leader !== healthy), "no primary by itself")
        console.log(`${healthy} gone with ${stuck} stuck: ${primary} says "${held.electionStatus}"`)
        const refusals = readFileSync(c.agents.logPath(stuck), "utf8")
          .split("\n")
          .filter((l) => l.includes('"pre-vote-refused"'))
          .map((l) => JSON.parse(l) as { time: string; msg: string })
          .filter((e) => Date.parse(e.time) > goneAt)
        assert.ok(refusals.length > 0, `${stuck} refused the pre-votes`)
        assert.match(refusals.at(-1)!.msg, /could not stop replication in time/)
        const forcedAt = Date.now()
        // Refused while a pre-vote of its own runs ("cannot stand: this node is pre-candidate").
        await waitFor(
          `${primary} to accept failover --force`,
          async () => {
            const forced = await c.agents.cli(primary, ["failover", "--force"]).catch(() => null)
            return forced !== null && /standing for election/.test(forced.stdout)
          },
          30_000,
          300,
        )
        await waitFor(`${primary} ACTIVE`, () => activeAt(c, primary, primary), 60_000, 200)
        const forcedMs = Date.now() - forcedAt
        assert.ok(
          /forced-vote/.test(readFileSync(c.agents.logPath(stuck), "utf8")),
          `${stuck} says what its forced vote waived`,
        )
        console.log(
          `failover --force: ${primary} ACTIVE ${forcedMs} ms after the command (${healthy} gone ${forcedAt - goneAt} ms before)`,
        )
        await free()
        await c.agents.start(healthy)
        await bringBackOldPrimary(c, healthy, primary)
        await waitFor(
          `${stuck} STANDBY of ${primary}`,
          async () => (await c.agentRole(primary, stuck).catch(() => "")) === "STANDBY",
          180_000,
          1000,
        )
        const result = await c.check(faultAt)
        assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
        console.log(
          `${result.acked} acknowledged writes, none lost; write downtime ${result.downtimeMs} ms`,
        )
      } finally {
        await inHost(["umount", "-l", dir]).catch(() => {})
      }
    }),
)
