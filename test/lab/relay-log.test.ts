// Issue 10 item 4: a replica that cannot freeze or lost its relay log.
//
// (a) A replica whose relay log disk is full (a 1 MB tmpfs, filled): its
//     agent shows CRITICAL with the cause, it is never promoted; when the
//     primary fails it cannot freeze, and its refusal happens at PreVote, so
//     the terms do not climb; once the disk is freed a primary is elected.
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
import { mkdir, readFile, writeFile } from "node:fs/promises"
import { test } from "node:test"
import { count, type GtidSet, isSubset, parseGtidSet, subtract } from "../../agent/src/core/gtid.ts"
import { agentStatus, bringBackOldPrimary } from "./acceptance-scenarios.ts"
import { runScenario } from "./cluster.ts"
import { run, sleep, waitFor } from "./exec.ts"
import { Lab } from "./lab.ts"

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

test(
  "a replica whose relay log disk is full: CRITICAL with its cause, does not stand, no climbing terms, a primary once the disk is freed",
  { timeout: 420_000 },
  () =>
    runScenario({ slug: "full-relay-disk", timings: { restart_timeout: "5s" } }, async (c) => {
      const primary = await c.waitForPrimary(10_000)
      const [stuck, healthy] = c.lab.hosts.map((h) => h.name).filter((n) => n !== primary) as [
        string,
        string,
      ]
      const rootfs = c.lab.state.rootfs
      const hostDir = c.lab.host(stuck).hostDir
      const dir = c.lab.hostPath(stuck, "relayfs")
      // The relay log moves to a 1 MB tmpfs (relay_log_recovery ON for this move only).
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
      await inHost([
        "mount",
        "-t",
        "tmpfs",
        "-o",
        `size=1m,uid=${uid},gid=${gid},mode=0750`,
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
        // Fill the disk: the IO thread cannot write the relay log any more.
        await inHost(["dd", "if=/dev/zero", `of=${dir}/filler`, "bs=4k"]).catch(() => {})
        let ioState = ""
        let member: { health?: string } | undefined
        let why = ""
        await waitFor(
          `${stuck}'s agent to report it CRITICAL`,
          async () => {
            const [r] = await c.lab.query<Record<string, unknown>>(stuck, "SHOW REPLICA STATUS")
            ioState = String(r?.Replica_IO_State ?? "")
            const status = (
              JSON.parse((await c.agents.cli(stuck, ["status", "--json"])).stdout) as {
                status: {
                  electionStatus: string
                  members: Array<{ name: string; health?: string }>
                }
              }
            ).status
            member = status.members.find((m) => m.name === stuck)
            why = status.electionStatus
            return member?.health === "CRITICAL" || member?.health === "FAIL"
          },
          60_000,
          500,
        )
        // It does not stand while stuck (with a full disk, queries may block: then it is "not up").
        assert.match(why, /Waiting for disk space|not up/, `${stuck} does not stand: ${why}`)
        console.log(`${stuck}: Replica_IO_State "${ioState}", health ${member?.health}, ${why}`)
        const before = Math.max(...c.lab.hosts.map((h) => c.term(h.name)))
        const faultAt = Date.now()
        await c.lab.inject({ _tag: "StopMysqld", host: primary })
        // The healthy replica needs the stuck one's vote: held while the disk is full.
        await sleep(20_000)
        const climbed = Math.max(...c.lab.hosts.map((h) => c.term(h.name))) - before
        // (Queries on the stuck mysqld may block: ask the healthy replica's agent.)
        const view = await agentStatus(c, healthy)
        assert.equal(
          view.leaderActive && view.leader !== primary,
          false,
          "no new primary while the voter cannot freeze",
        )
        await inHost(["rm", "-f", `${dir}/filler`])
        const freedAt = Date.now()
        const next = await c.waitForPrimary(120_000, primary)
        const afterFree = Date.now() - freedAt
        const terms = Math.max(...c.lab.hosts.map((h) => c.term(h.name))) - before
        await bringBackOldPrimary(c, primary, next)
        const result = await c.check(faultAt)
        assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
        console.log(
          `primary ${primary} stopped with ${stuck}'s relay disk full: ${climbed} term(s) in 20 s, ${next} ACTIVE ${afterFree} ms after the disk was freed (${terms} term(s) in all), ${result.acked} acknowledged writes, none lost`,
        )
        assert.ok(climbed <= 3, `terms do not climb at every attempt (${climbed} in 20 s)`)
      } finally {
        await inHost(["umount", "-l", dir]).catch(() => {})
      }
    }),
)
