// lab.md scenario 13: a broken replica re-seeded with clone. db3 gets an
// errant row of its own (a fresh GTID the primary lacks) and then its SQL
// thread stops on a duplicate key; the operator sends `Clone` to db3's agent
// (raw NDJSON on its control socket, as the CLI does). Asserted in MySQL:
// db3 replicates from the primary with both threads running, its
// gtid_executed is a subset of the primary's, app.writes is identical after
// catch-up, and its agent reports STANDBY; the cluster's invariants hold.
import assert from "node:assert/strict"
import { createConnection } from "node:net"
import { test } from "node:test"
import { runScenario } from "./cluster.ts"
import { waitFor } from "./exec.ts"
import type { Lab } from "./lab.ts"

interface Reply {
  readonly ok: boolean
  readonly message: string
  readonly status?: {
    readonly role: string
    readonly members: ReadonlyArray<{ name: string; role: string }>
  }
}

/** One request on an agent's control socket: one JSON line out, one back. */
const control = (socket: string, request: unknown, timeoutMs = 120_000): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const conn = createConnection(socket)
    let buffer = ""
    const timer = setTimeout(() => {
      conn.destroy()
      reject(new Error(`no reply on ${socket} within ${timeoutMs} ms`))
    }, timeoutMs)
    conn.setEncoding("utf8")
    conn.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    conn.on("data", (chunk: string) => {
      buffer += chunk
      const nl = buffer.indexOf("\n")
      if (nl < 0) return
      clearTimeout(timer)
      conn.end()
      resolve(JSON.parse(buffer.slice(0, nl)) as Reply)
    })
    conn.write(`${JSON.stringify(request)}\n`)
  })

const gtidExecuted = async (lab: Lab, host: string): Promise<string> => {
  const [row] = await lab.query<{ g: string }>(host, "SELECT @@gtid_executed AS g")
  return row?.g ?? ""
}

const subset = async (lab: Lab, on: string, a: string, b: string): Promise<boolean> => {
  const [row] = await lab.query<{ s: number }>(on, "SELECT GTID_SUBSET(?, ?) AS s", [a, b])
  return Number(row?.s) === 1
}

const replicaOf = async (lab: Lab, host: string) =>
  (await lab.topology()).find((v) => v.host === host)?.replica

test(
  "scenario 13: a broken replica re-seeded with clone rejoins as a STANDBY of the primary",
  { timeout: 300_000 },
  () =>
    runScenario({ slug: "clone", timings: { restart_timeout: "20s" } }, async (c) => {
      const lab = c.lab
      const primary = await c.waitForPrimary(10_000)
      assert.equal(primary, "db1")
      const socket = c.agents.socketPath("db3")

      // Refusals first: nothing is done to the recipient.
      const onPrimary = await control(c.agents.socketPath("db1"), {
        _tag: "Clone",
        recipient: "db1",
        donor: null,
      })
      assert.equal(onPrimary.ok, false)
      assert.match(onPrimary.message, /db1 is the primary/)
      for (const [donor, why] of [
        ["db9", /unknown donor db9/],
        ["db3", /cannot clone from itself/],
      ] as const) {
        const r = await control(socket, { _tag: "Clone", recipient: "db3", donor })
        assert.equal(r.ok, false, r.message)
        assert.match(r.message, why)
      }

      // Break db3: an errant row under its own GTID, then a duplicate key from the primary.
      const conn = await lab.connect("db3")
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            await conn.query("SET GLOBAL super_read_only = OFF")
            await conn.query("INSERT INTO app.writes (id, client_ms) VALUES (-1, 0)")
            break
          } catch (e) {
            // The agent's split-brain guard may fence it again in between: try again.
            if (attempt > 5) throw e
          }
        }
      } finally {
        await conn.end().catch(() => {})
      }
      await lab.query("db1", "INSERT INTO app.writes (id, client_ms) VALUES (-1, 1)")
      await waitFor(
        "db3's SQL thread to stop on the duplicate key",
        async () => (await replicaOf(lab, "db3"))?.sqlRunning === "No",
        30_000,
      )
      const brokenSet = await gtidExecuted(lab, "db3")
      assert.equal(
        await subset(lab, "db1", brokenSet, await gtidExecuted(lab, "db1")),
        false,
        "db3 holds a transaction the primary lacks",
      )
      await waitFor(
        "db3's agent to fence it again (super_read_only=ON)",
        async () => {
          const [sro] = await lab.query<{ v: number }>("db3", "SELECT @@super_read_only AS v")
          return Number(sro?.v) === 1
        },
        10_000,
      )
      const before = await control(socket, { _tag: "Status" })
      assert.notEqual(before.status?.role, "STANDBY", "db3 is broken before the clone")
      const faultAt = Date.now()

      // The clone, on the recipient's agent, with the default donor.
      const started = Date.now()
      const reply = await control(socket, { _tag: "Clone", recipient: "db3", donor: null })
      const cloneMs = Date.now() - started
      assert.equal(reply.ok, true, reply.message)
      assert.match(reply.message, /cloned from db2; rejoining as a replica of db1/)
      const starts = (await lab.supervisorEvents("db3")).filter((l) => l.includes(" started "))
      assert.ok(starts.length >= 2, "mysqld was restarted by the supervisor after the clone")

      // In MySQL: replicating from the primary, both threads running.
      await waitFor(
        "db3 to replicate from db1 with both threads running",
        async () => {
          const r = await replicaOf(lab, "db3")
          return (
            r?.sourceHost === lab.host("db1").address &&
            r.ioRunning === "Yes" &&
            r.sqlRunning === "Yes"
          )
        },
        30_000,
      )
      // Its agent says STANDBY.
      await waitFor(
        "db3's agent to report STANDBY",
        async () => (await control(socket, { _tag: "Status" })).status?.role === "STANDBY",
        30_000,
      )
      await waitFor("writes after the clone", () => c.writesAfter(Date.now() - 1000) > 5, 30_000)

      // The invariants (this also stops the writer).
      const result = await c.check(faultAt)
      assert.deepEqual(result.problems, [], result.problems.join("; "))
      assert.deepEqual(result.diverged, [], "nobody left DIVERGED")

      // A subset of the primary's set, and the same rows once caught up.
      const primarySet = await gtidExecuted(lab, "db1")
      await lab.query("db3", "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, 30) AS w", [primarySet])
      const clonedSet = await gtidExecuted(lab, "db3")
      assert.equal(
        await subset(lab, "db1", clonedSet, primarySet),
        true,
        "a subset of the primary's",
      )
      assert.equal(await subset(lab, "db1", primarySet, clonedSet), true, "caught up")
      const rows = async (host: string) =>
        (
          await lab.query<{ id: number; client_ms: number }>(
            host,
            "SELECT id, client_ms FROM app.writes ORDER BY id",
          )
        ).map((r) => `${r.id}:${r.client_ms}`)
      const [p, r] = [await rows("db1"), await rows("db3")]
      assert.equal(r.length, p.length)
      assert.deepEqual(r, p, "app.writes on db3 equals the primary's")
      assert.ok(p.includes("-1:1"), "the primary's row -1, not db3's errant one")
      console.log(
        `clone: reply after ${cloneMs} ms (copy and mysqld restart), ${p.length} rows identical, client write downtime ${result.downtimeMs} ms`,
      )
    }),
)
