// Issue 16 item 1: a primary whose binlog disk is full answers reads but
// cannot commit.
// 1. What MySQL 9.7 really does, checked before the agent relies on it: every
//    commit waits in processlist state "waiting for handler commit" (mysqld
//    logs "Disk is full writing ... Retry in 60 secs"), gtid_executed stops,
//    no session waits for a semi-sync acknowledgement, SELECT and SHOW answer
//    at once; SET GLOBAL super_read_only = ON pends ("Waiting for global read
//    lock") and mysqld keeps running; KILL of the stuck commit (the fence kills
//    the sessions that hold it up) makes the binlog write fail and, with
//    binlog_error_action = ABORT_SERVER (the default), mysqld stops.
// 2. The primary's disk fills under the writer: its agent sees the stuck
//    commits, goes CRITICAL with the cause and resigns; a replica is ACTIVE
//    within 10 s, nothing acknowledged lost, never two writable; the old
//    primary does not take the role back.
// 3. Issue 17 item 2, on the same cluster: the new primary's disk fills and
//    the operator runs `failover --to <third> --force` before the agent acts:
//    the request reaches the primary's agent (which holds the lease), it
//    fences itself and resigns naming the third node, which is ACTIVE without
//    the lease being waited out.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { mkdir, readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { test } from "node:test"
import { stringify } from "yaml"
import { agentStatus, bringBackOldPrimary } from "./acceptance-scenarios.ts"
import { type LabCluster, runScenario } from "./cluster.ts"
import { run, sleep, waitFor } from "./exec.ts"
import { Lab } from "./lab.ts"

/** A host's binary log on a small tmpfs of its own, that a test can fill and free. */
export interface SmallBinlogDisk {
  readonly fill: () => Promise<void>
  readonly free: () => Promise<void>
  readonly unmount: () => Promise<void>
}

/**
 * Moves `host`'s binary log to a `sizeKb` tmpfs: a clean shutdown (so that
 * gtid_executed is saved in mysql.gtid_executed: the new log starts empty),
 * the mount in the supervisor's mount namespace (the mysqld it starts sees
 * it), log-bin pointed there, and mysqld started again.
 */
export const binlogOnTmpfs = async (
  lab: Lab,
  host: string,
  sizeKb: number,
): Promise<SmallBinlogDisk> => {
  const rootfs = lab.state.rootfs
  const hostDir = lab.host(host).hostDir
  const dir = lab.hostPath(host, "binfs")
  await writeFile(lab.hostPath(host, "disabled"), "")
  await lab.query(host, "SHUTDOWN")
  await waitFor(
    `${host}'s mysqld to shut down`,
    async () => lab.mysqldPid(host) === undefined,
    60_000,
  )
  await mkdir(dir, { recursive: true })
  const uid = (await run("chroot", [rootfs, "id", "-u", "mysql"])).stdout.trim()
  const gid = (await run("chroot", [rootfs, "id", "-g", "mysql"])).stdout.trim()
  const supervisor = (
    await run("pgrep", ["-o", "-f", `supervisor.sh ${rootfs} ${hostDir}$`])
  ).stdout.trim()
  const inHost = (args: ReadonlyArray<string>) => run("nsenter", ["-t", supervisor, "-m", ...args])
  await inHost([
    "mount",
    "-t",
    "tmpfs",
    "-o",
    `size=${sizeKb}k,uid=${uid},gid=${gid},mode=0750`,
    "tmpfs",
    dir,
  ])
  const cnf = lab.hostPath(host, "my.cnf")
  const text = await readFile(cnf, "utf8")
  await writeFile(cnf, text.replace(/^log-bin=binlog$/m, `log-bin=${hostDir}/binfs/binlog`))
  await lab.inject({ _tag: "StartMysqld", host })
  return {
    fill: async () => {
      await inHost(["dd", "if=/dev/zero", `of=${dir}/filler`, "bs=4k"]).catch(() => {})
    },
    free: async () => {
      await inHost(["rm", "-f", `${dir}/filler`])
    },
    unmount: async () => {
      await inHost(["umount", "-l", dir]).catch(() => {})
    },
  }
}

interface CommitWaits {
  readonly states: ReadonlyArray<string>
  readonly oldest: number
}

/** What client sessions other than `not` are doing (needs PROCESS; root here). */
const clientSessions = async (lab: Lab, host: string): Promise<CommitWaits> => {
  const rows = await lab.query<{ STATE: string; TIME: number }>(
    host,
    "SELECT STATE, TIME FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND INFO LIKE 'INSERT%'",
  )
  return {
    states: rows.map((r) => r.STATE),
    oldest: Math.max(0, ...rows.map((r) => Number(r.TIME))),
  }
}

test("MySQL 9.7: a primary whose binlog disk is full answers reads, its commits wait in 'waiting for handler commit', gtid_executed stops", {
  timeout: 300_000,
}, async () => {
  const lab = await Lab.up({ hosts: 2, replication: true, semiSync: true })
  try {
    await lab.query("db1", "CREATE DATABASE app")
    await lab.query("db1", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(4000))")
    await lab.waitReplicasCaughtUp("db1")
    const disk = await binlogOnTmpfs(lab, "db1", 1024)
    await lab.startReplication({ semiSync: true })
    try {
      await lab.query("db1", "INSERT INTO app.t VALUES (1, 'x')")
      await disk.fill()
      // The binlog's last page may still take a few rows: write until one hangs.
      const conn = await lab.connect("db1")
      let hung = false
      for (let i = 100; i < 200 && !hung; i++) {
        const insert = conn.query(`INSERT INTO app.t VALUES (${i}, REPEAT('y', 3000))`).then(
          () => "done",
          () => "failed",
        )
        hung = (await Promise.race([insert, sleep(2000).then(() => "hung")])) === "hung"
      }
      assert.ok(hung, "a commit hangs once the binlog disk is full")
      const [before] = await lab.query<{ g: string }>("db1", "SELECT @@gtid_executed AS g")
      await sleep(3000)
      const t0 = performance.now()
      const [after] = await lab.query<{ g: string; bea: string }>(
        "db1",
        "SELECT @@gtid_executed AS g, @@binlog_error_action AS bea",
      )
      const status = await lab.query<{ Variable_name: string; Value: string }>(
        "db1",
        "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_source_wait_sessions'",
      )
      const readMs = performance.now() - t0
      const waits = await clientSessions(lab, "db1")
      console.log(
        `full binlog disk: sessions ${JSON.stringify(waits.states)} for ${waits.oldest} s, reads answer in ${readMs.toFixed(0)} ms, binlog_error_action ${after?.bea}`,
      )
      assert.equal(after?.g, before?.g, "gtid_executed does not move")
      assert.ok(readMs < 1000, `SELECT and SHOW answer (${readMs} ms)`)
      assert.equal(status[0]?.Value, "0", "no commit waits for a semi-sync acknowledgement")
      assert.deepEqual(waits.states, ["waiting for handler commit"], "the commit waits in commit")
      assert.ok(waits.oldest >= 3, "for as long as the disk is full")
      const log = await readFile(lab.hostPath("db1", "error.log"), "utf8")
      assert.match(log, /Disk is full writing .*binlog.*Retry in 60 secs/)
      // The fence pends behind the stuck commit; mysqld does not abort.
      const fencer = await lab.connect("db1")
      const fence = fencer.query("SET GLOBAL super_read_only = ON").then(
        () => "done",
        (e: Error) => `failed: ${e.message}`,
      )
      const fenced = await Promise.race([fence, sleep(3000).then(() => "pending")])
      const [fenceState] = await lab.query<{ STATE: string }>(
        "db1",
        "SELECT STATE FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SET GLOBAL super_read_only%'",
      )
      console.log(`SET GLOBAL super_read_only = ON: ${fenced} (${fenceState?.STATE ?? "-"})`)
      assert.equal(fenced, "pending")
      assert.equal(fenceState?.STATE, "Waiting for global read lock")
      assert.ok(await lab.isMysqldUp("db1"), "mysqld keeps running")
      // Killing the stuck commit (what a fence that kills its blockers does) stops mysqld.
      const pid = lab.mysqldPid("db1")
      const [stuck] = await lab.query<{ ID: number }>(
        "db1",
        "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT%'",
      )
      await lab.query("db1", `KILL ${stuck?.ID}`)
      await waitFor("mysqld to abort", async () => lab.mysqldPid("db1") !== pid, 30_000, 100)
      const aborted = await readFile(lab.hostPath("db1", "error.log"), "utf8")
      assert.match(
        aborted,
        /binlog_error_action' is set to 'ABORT_SERVER'\. Server is being stopped/,
      )
      conn.destroy()
      fencer.destroy()
    } finally {
      await disk.free()
      await disk.unmount()
    }
  } finally {
    await lab.down()
  }
})

/**
 * The aborted mysqld's crash recovery waits for space too, and retries only
 * every 60 s (the agent's restarts time out meanwhile): give it that long.
 */
const backAfterFullDisk = (c: LabCluster, host: string): Promise<void> =>
  c.lab.waitMysqld(host, 180_000)

const agentLog = (c: LabCluster, host: string): string =>
  readFileSync(join(c.lab.runDir(), host, "agent.log"), "utf8")

test("a primary whose disk fills: it resigns by itself within 10 s; then the operator's failover --to moves the role away from a live one at once; nothing acknowledged lost", {
  timeout: 600_000,
}, async () => {
  const disks = new Map<string, SmallBinlogDisk>()
  try {
    await runScenario(
      {
        slug: "disk-full-primary",
        // The hung-mysqld rule (a probe unanswered for fail_after intervals, 2 s by default:
        // kill and restart) is another path, tested by hung-mysqld's test. A loaded CI machine
        // once left a probe unanswered for 2 s right after the agents started, before the
        // disk filled, and the restart then met the full disk: give the commit check room.
        extra: { health: { fail_after: 10 } },
        // Every binary log on a small disk of its own: any node may be the primary of the second check.
        beforeAgents: async (lab) => {
          for (const h of lab.hosts) disks.set(h.name, await binlogOnTmpfs(lab, h.name, 4096))
          await lab.startReplication({ semiSync: true })
        },
      },
      async (c) => {
        // 1. Detection: the primary's disk fills; nobody does anything.
        const primary = await c.waitForPrimary(10_000)
        const faultAt = Date.now()
        await disks.get(primary)!.fill()
        const next = await c.waitForPrimary(30_000, primary)
        const failoverMs = Date.now() - faultAt
        const view = await agentStatus(c, next)
        const old = view.members.find((m) => m.name === primary)
        const own = await agentStatus(c, primary)
        const stalled = agentLog(c, primary)
          .split("\n")
          .find((l) => l.includes('"commit-stalled"'))
        console.log(
          `${primary}'s binlog disk full: ${next} ACTIVE after ${failoverMs} ms; ${primary} health ${old?.health} (as ${next} sees it), its own status: ${own.electionStatus}; ${stalled}`,
        )
        assert.match(stalled ?? "", /mysqld cannot commit: .* client commit\(s\) stuck/)
        // Its fence killed the stuck commits: mysqld aborted (ABORT_SERVER) and may be down still.
        assert.match(own.electionStatus, /could not commit|not up/)
        // It takes no role back while it cannot commit.
        await sleep(5000)
        assert.equal(await c.primary(), next, `${next} stays the primary`)
        await disks.get(primary)!.free()
        await backAfterFullDisk(c, primary)
        await bringBackOldPrimary(c, primary, next)

        // 2. The operator: the new primary's disk fills and the operator runs failover --to the
        //    third node. The agents' own check is turned off first (commit_stall_timeout 0,
        //    reloaded live): on a loaded machine the CLI cannot be relied on to beat its 3 s,
        //    and the override must work for any fault the agent does not see by itself.
        for (const h of c.lab.hosts) {
          const config = c.agents.config(h.name) as { timings: Record<string, unknown> }
          const off = { ...config, timings: { ...config.timings, commit_stall_timeout: "0s" } }
          await writeFile(c.agents.configPath(h.name), stringify(off))
          await c.agents.cli(h.name, ["reload"])
        }
        const third = c.lab.hosts.map((h) => h.name).find((n) => n !== primary && n !== next)!
        await disks.get(next)!.fill()
        const askedAt = Date.now()
        const answer = await c.agents.cli(third, ["failover", "--to", third, "--force"])
        const after = await c.waitForPrimary(30_000, next)
        const overrideMs = Date.now() - askedAt
        const resigned = agentLog(c, next)
          .split("\n")
          .find((l) => l.includes('"resigned"'))
        console.log(
          `failover --to ${third} against ${next} (disk full, agent holding the lease): "${answer.stdout.trim()}"; ${after} ACTIVE after ${overrideMs} ms; ${resigned}`,
        )
        assert.equal(after, third, "the node the operator named")
        assert.match(resigned ?? "", /operator forced a failover to/)
        await disks.get(next)!.free()
        await backAfterFullDisk(c, next)
        await bringBackOldPrimary(c, next, third)
        const result = await c.check(faultAt)
        assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
        console.log(
          `write downtime ${result.downtimeMs} ms, ${result.acked} acknowledged writes, none lost`,
        )
        assert.ok(failoverMs <= 10_000, `a replica ACTIVE within 10 s (took ${failoverMs} ms)`)
        // The lease (4 s) is not waited out: the primary's agent resigned for it.
        assert.ok(overrideMs <= 8_000, `${third} ACTIVE within 8 s (took ${overrideMs} ms)`)
      },
    )
  } finally {
    for (const d of disks.values()) await d.unmount()
  }
})
