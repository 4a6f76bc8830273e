// Issue 18 item 2 and issue 16 item 1 (second paragraph) on the lab: three
// data nodes and two witnesses (db4, db5: their mysqld stopped), quorum 3 of
// 5. Strict semi-sync waits for members - quorum = 2 acknowledgements
// (protocol.md section 9: both witnesses and one replica are a vote quorum,
// and witnesses hold no data), so with fewer than two replicas connected every
// commit waits. The primary must say so: status (its own and the others'),
// /health, the mha_writes_blocked metric and the on_writes_blocked /
// on_writes_unblocked hooks; witnesses show as WITNESS, not UNKNOWN / FAIL.
// 1. The replication password changed on the primary (the replicas cannot
//    reconnect): "2 acknowledgements needed, 0 replicas connected"; the
//    password back, writes resume.
// 2. A data node lost: blocked with 1 connected; then the primary's mysqld
//    lost too: db2 wins with the witnesses' votes, still blocked (0
//    connected); the lost nodes back, writes resume. Nothing acknowledged is
//    lost, never two writable, convergence (c.check).
import assert from "node:assert/strict"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import { agentStatus, bringBackOldPrimary, reseedQuietly } from "./acceptance-scenarios.ts"
import { type LabCluster, runScenario } from "./cluster.ts"
import { waitFor } from "./exec.ts"
import { agentHttp } from "./http-client.ts"

const WITNESSES = ["db4", "db5"]

/** `status --json` as the helper reads it, with the writes-blocked report. */
type StatusView = Awaited<ReturnType<typeof agentStatus>> & {
  readonly writesBlocked?: string
  readonly electionStatus?: string
}

const statusOf = async (c: LabCluster, host: string): Promise<StatusView> =>
  (await agentStatus(c, host)) as StatusView

/** A root-owned 0755 directory with a hook script that appends MHA_EVENT and MHA_REASON per node. */
const hookDir = () => {
  const dir = mkdtempSync("/tmp/mha-wi-hooks-")
  chmodSync(dir, 0o755)
  const script = join(dir, "hook.sh")
  writeFileSync(
    script,
    `#!/bin/sh\nprintf '%s\\t%s\\n' "$MHA_EVENT" "$MHA_REASON" >> "${dir}/events-$MHA_NODE.log"\n`,
  )
  chmodSync(script, 0o755)
  const events = (node: string): string[] => {
    const file = join(dir, `events-${node}.log`)
    return existsSync(file)
      ? readFileSync(file, "utf8")
          .split("\n")
          .filter((l) => l !== "")
      : []
  }
  return { dir, script, events }
}

const BLOCKED = (connected: number) =>
  new RegExp(`writes are blocked: 2 acknowledgements needed, ${connected} replicas? connected`)

const BLOCKED_ANY = /writes are blocked: 2 acknowledgements needed, [01] replicas? connected/

/** Waits until `host`'s status says the primary's writes are blocked with `connected` replicas; returns the view. */
const waitBlocked = async (
  c: LabCluster,
  host: string,
  connected: number,
  timeoutMs = 30_000,
): Promise<{ view: StatusView; afterMs: number }> => {
  const from = Date.now()
  let view: StatusView | undefined
  await waitFor(
    `${host}'s status to say writes are blocked with ${connected} replica(s) connected`,
    async () => {
      view = await statusOf(c, host).catch(() => undefined)
      return BLOCKED(connected).test(view?.writesBlocked ?? "")
    },
    timeoutMs,
    250,
  )
  return { view: view!, afterMs: Date.now() - from }
}

/** /health (503 with the words), /metrics and the hook on the blocked primary. */
const assertReported = async (
  c: LabCluster,
  primary: string,
  connected: number,
  hooks: ReturnType<typeof hookDir>,
) => {
  const health = await agentHttp(c.lab, primary, "/health")
  assert.equal(health.status, 503, `/health on ${primary}: ${health.body}`)
  assert.match(health.body, BLOCKED(connected))
  const metrics = await agentHttp(c.lab, primary, "/metrics")
  assert.match(metrics.body, /^mha_writes_blocked 1$/m)
  assert.match(metrics.body, /^mha_semi_sync_acks_needed 2$/m)
  assert.match(metrics.body, new RegExp(`^mha_semi_sync_replicas_connected ${connected}$`, "m"))
  await waitFor(
    `${primary}'s on_writes_blocked hook`,
    () =>
      hooks
        .events(primary)
        // The counts when the blockage began (a replica may drop out later).
        .some((l) => l.startsWith("on_writes_blocked\t") && BLOCKED_ANY.test(l)),
    10_000,
  )
}

/** The replica's IO thread reconnects now (and must authenticate again). */
const reconnect = async (c: LabCluster, replica: string) => {
  await c.lab.query(replica, "STOP REPLICA IO_THREAD")
  await c.lab.query(replica, "START REPLICA IO_THREAD")
}

/** ALTER USER on `host` only (not binlogged: it must not wait for acknowledgements itself). */
const setReplPassword = async (c: LabCluster, host: string, password: string) => {
  const conn = await c.lab.connect(host)
  try {
    await conn.query("SET SESSION sql_log_bin = 0")
    await conn.query(`ALTER USER 'repl'@'%' IDENTIFIED BY '${password}'`)
  } finally {
    await conn.end().catch(() => {})
  }
}

test("3 data + 2 witnesses: blocked writes are reported (password changed, a data node lost, then the primary), nothing acknowledged lost", {
  timeout: 420_000,
}, async () => {
  const hooks = hookDir()
  try {
    await runScenario(
      {
        slug: "witness-acks",
        hosts: 5,
        witnesses: WITNESSES,
        timings: { restart_timeout: "10s", apply_timeout: "10s" },
        extra: {
          hooks: {
            on_writes_blocked: hooks.script,
            on_writes_unblocked: hooks.script,
            timeout: "10s",
          },
        },
      },
      async (c) => {
        for (const w of WITNESSES) await c.lab.inject({ _tag: "StopMysqld", host: w })
        const primary = await c.waitForPrimary(10_000)
        assert.equal(primary, "db1")
        await c.waitForWritesAfter(Date.now(), 30_000)

        // Witnesses are WITNESS with their agent's health, not UNKNOWN / FAIL.
        const table = await c.agents.cli("db1", ["status"])
        for (const w of WITNESSES)
          assert.match(
            table.stdout,
            new RegExp(`^${w}\\s+witness\\s+WITNESS\\s+OK\\s`, "m"),
            table.stdout,
          )
        assert.doesNotMatch(table.stdout, /WRITES BLOCKED/)

        // 1. The replication password changed: the replicas cannot reconnect.
        const pwAt = Date.now()
        await setReplPassword(c, "db1", "changed-by-the-test")
        for (const r of ["db2", "db3"]) await reconnect(c, r)
        const pw = await waitBlocked(c, "db1", 0)
        await assertReported(c, "db1", 0, hooks)
        assert.match(pw.view.electionStatus ?? "", /leading/)
        const onReplica = await waitBlocked(c, "db2", 0, 10_000)
        const table2 = await c.agents.cli("db2", ["status"])
        assert.match(table2.stdout, /^\S+: WRITES BLOCKED/)
        assert.match(
          table2.stdout,
          /primary db1: writes are blocked: 2 acknowledgements needed, 0 replicas connected/,
        )
        const replicaHealth = await agentHttp(c.lab, "db2", "/health")
        assert.match(replicaHealth.body, /the primary db1 says writes are blocked/)
        await setReplPassword(c, "db1", "mha-lab-repl")
        const restoredAt = Date.now()
        await c.waitForWritesAfter(restoredAt, 30_000)
        await waitFor(
          "db1's on_writes_unblocked hook",
          () => hooks.events("db1").some((l) => l.startsWith("on_writes_unblocked\t")),
          15_000,
        )
        await waitFor(
          "db1's status without the blockage",
          async () => (await statusOf(c, "db1")).writesBlocked === undefined,
          15_000,
        )
        const passwordCase = `password changed: reported on db1 after ${pw.afterMs} ms (+ ${Date.now() - pwAt - pw.afterMs} ms of checks), on db2 too (${onReplica.view.writesBlocked}); writes back ${c.writes().acked.find((a) => a.t > restoredAt)!.t - restoredAt} ms after the password was restored`

        // 2. A data node lost: one replica left, strict needs two.
        const faultAt = Date.now()
        await c.lab.inject({ _tag: "StopMysqld", host: "db3" })
        const lost1 = await waitBlocked(c, "db1", 1)
        await assertReported(c, "db1", 1, hooks)
        const ackedBefore = c.writes().acked.length
        // Then the primary's mysqld: db2 and the witnesses elect db2.
        await c.lab.inject({ _tag: "StopMysqld", host: "db1" })
        const next = await c.waitForPrimary(60_000, "db1")
        assert.equal(next, "db2")
        const lost2 = await waitBlocked(c, "db2", 0)
        await assertReported(c, "db2", 0, hooks)
        const blockedWrites = c.writes().acked.filter((a) => a.t > faultAt + 1_000).length
        // db3 back: one replica, still blocked; db1 back: two, writes resume.
        await c.lab.inject({ _tag: "StartMysqld", host: "db3" })
        await waitBlocked(c, "db2", 1, 60_000)
        const backAt = Date.now()
        const old = await bringBackOldPrimary(c, "db1", "db2", "rejoin-force")
        await c.waitForWritesAfter(backAt, 60_000)
        const firstWriteMs = c.writes().acked.find((a) => a.t > backAt)!.t - backAt
        // An old primary DIVERGED and forced back is re-seeded once writes stop (scenario 14).
        if (old.startsWith("DIVERGED")) await reseedQuietly(c, "db1", "db2")
        const result = await c.check(faultAt)
        assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
        console.log(
          `witness-acks: ${passwordCase}; db3 lost: reported on db1 after ${lost1.afterMs} ms (${ackedBefore} acked so far, ${blockedWrites} acked from 1 s after the loss until db1 came back); db1 lost: db2 primary, reported after ${lost2.afterMs} ms; old primary ${old}, first write ${firstWriteMs} ms after it was started again; ${result.acked} acknowledged writes, none lost${result.diverged.length > 0 ? `; DIVERGED: ${result.diverged.join(", ")}` : ""}`,
        )
      },
    )
    rmSync(hooks.dir, { recursive: true, force: true })
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e)
    throw new Error(`${message} (hook events kept in ${hooks.dir})`, { cause: e })
  }
})
