// Issue 10 item 6: a switchover under load must not block writes for nothing.
// Debian's sysbench (oltp_write_only, 8 threads) writes through HAProxy's
// write frontend while `switchover --to <replica>` runs on the primary. The
// primary waits unfenced (writable, VIP held) until the target could apply its
// backlog within the block budget, and only then fences. So the result is
// either a switchover whose client-observed write block stays within a bound,
// or a refusal that blocked no write, said why (operator reply and a
// `switchover-refused` log event) and left the old primary in charge. Either
// way nothing acknowledged is lost and two nodes are never writable
// (c.check). Before the fix: fence, 5 s catch-up wait, roll back: a 5.4-5.7 s
// write block and no switchover.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import { type LabCluster, runScenario } from "./cluster.ts"
import { sleep, waitFor } from "./exec.ts"
import { backendStates, HAPROXY_WRITE_PORT, startHaproxy, startHaproxyWriter } from "./haproxy.ts"
import { missingAckedWrites, readWriterLog, type WriterLog } from "./invariants.ts"
import { LAB_USERS } from "./lab.ts"
import { CLIENT_ADDRESS } from "./network.ts"

/**
 * A completed switchover: the agents' block (the primary fences -> the target
 * is ACTIVE, from their logs) stays within AGENT_BLOCK_MS (section 13 aims at
 * 1 s unloaded; the fenced catch-up alone waits up to a probe plus a heartbeat
 * interval), and the gap the VIP writer sees, which adds its reconnect after
 * the VIP moved (1.6 s seen here on a loaded machine), within CLIENT_BLOCK_MS.
 * Both well under the 5.4-6.3 s of a fence that rolls back.
 */
const AGENT_BLOCK_MS = 2_500
const CLIENT_BLOCK_MS = 4_000
/** A refused switchover blocks nothing: no gap longer than the load itself causes (before the fix: > 5 s). */
const REFUSED_GAP_MS = 1_500

const SYSBENCH_SECONDS = 40

/** From the agents' logs: the primary's last fence decision after `since` to the target's promotion. */
const agentBlockMs = (c: LabCluster, primary: string, target: string, since: number): number => {
  const times = (host: string, event: string) =>
    readFileSync(c.agents.logPath(host), "utf8")
      .split("\n")
      .filter((l) => l.includes(`"event":"${event}"`))
      .map((l) => Date.parse((JSON.parse(l) as { time: string }).time))
      .filter((t) => t >= since)
  const fenced = times(primary, "switchover-converged").at(-1)
  const active = times(target, "promoted").at(-1)
  assert.ok(fenced !== undefined && active !== undefined, "the switchover's log events")
  return active - fenced
}

/** The longest gap between consecutive acknowledged writes inside [from, to]. */
const longestGap = (log: WriterLog, from: number, to: number): number => {
  let worst = 0
  for (let i = 1; i < log.acked.length; i++) {
    const prev = log.acked[i - 1]!
    const cur = log.acked[i]!
    if (cur.t < from || prev.t > to) continue
    worst = Math.max(worst, Math.min(cur.t, to) - Math.max(prev.t, from))
  }
  return worst
}

test(
  "switchover under sysbench load through HAProxy: completes with a short write block, or refuses without blocking writes",
  {
    timeout: 300_000,
  },
  () =>
    runScenario(
      { slug: "switchover-load", timings: { restart_timeout: "10s", apply_timeout: "10s" } },
      async (c) => {
        const { app } = LAB_USERS
        const sysbench = (command: "prepare" | "run", extra: string[] = []) => [
          "sysbench",
          "oltp_write_only",
          `--mysql-host=${CLIENT_ADDRESS}`,
          `--mysql-port=${HAPROXY_WRITE_PORT}`,
          `--mysql-user=${app.user}`,
          `--mysql-password=${app.password}`,
          "--mysql-db=app",
          // Debian's sysbench uses libmariadb, whose caching_sha2_password plugin does the full
          // authentication over plain TCP (checked on the lab: also right after FLUSH PRIVILEGES).
          "--tables=4",
          "--table-size=10000",
          ...extra,
          command,
        ]
        try {
          await startHaproxy(c.lab)
          const primary = await c.waitForPrimary(10_000)
          const target =
            c.lab.hosts.map((h) => h.name).find((n) => n !== primary && n === "db2") ??
            c.lab.hosts.map((h) => h.name).find((n) => n !== primary)!
          await waitFor(
            `HAProxy to see ${primary} UP`,
            async () =>
              (await backendStates(c.lab).catch(() => ({}) as Record<string, string>))[
                primary
              ]?.startsWith("UP") === true,
            20_000,
            200,
          )
          await c.lab.exec("client", sysbench("prepare"))
          const haproxyLog = join(c.lab.runDir(), "writer-haproxy.ndjson")
          await startHaproxyWriter(c.lab, haproxyLog)
          const loadStart = Date.now()
          // --mysql-ignore-errors=all: clients reconnect through HAProxy after a switchover (as the writer does).
          await c.lab.spawn(
            "client",
            "sysbench",
            sysbench("run", [
              "--threads=8",
              `--time=${SYSBENCH_SECONDS}`,
              "--report-interval=5",
              "--mysql-ignore-errors=all",
            ]),
          )
          await sleep(10_000)
          // The issue's target was thousands of transactions behind: on this shared 2-core lab a
          // replica keeps up with what sysbench manages here, so make the target's applier fall
          // behind the way a long query or a backup does: a global read lock on it blocks its SQL
          // thread (its IO thread goes on receiving and acknowledging) until 3 s into the switchover.
          const lock = await c.lab.connect(target)
          await lock.query("FLUSH TABLES WITH READ LOCK")
          await sleep(2_000)
          const dry = await c.agents
            .cli(primary, ["switchover", "--to", target, "--dry-run"])
            .catch((e: unknown) => ({ stdout: "", stderr: String(e) }))
          console.log(
            `--- switchover --to ${target} --dry-run under load\n${dry.stdout}${dry.stderr}`,
          )
          const baseline = longestGap(readWriterLog(c.writerLog), loadStart + 2_000, Date.now())

          const faultAt = Date.now()
          const switchover = c.agents
            .cli(primary, ["switchover", "--to", target])
            .then((r) => ({ ok: true, text: r.stdout, at: Date.now() }))
            .catch((e: unknown) => ({
              ok: false,
              text: e instanceof Error ? e.message : String(e),
              at: Date.now(),
            }))
          await sleep(3_000)
          await lock.query("UNLOCK TABLES")
          await lock.end()
          const result = await switchover
          const answeredAt = result.at
          console.log(
            `--- switchover --to ${target} (the CLI returned after ${answeredAt - faultAt} ms, its start-up included)\n${result.text}`,
          )
          await sleep(3_000)
          const vipLog = readWriterLog(c.writerLog)
          const viaHaproxy = readWriterLog(haproxyLog)
          const vipGap = longestGap(vipLog, faultAt, answeredAt + 2_000)
          const haproxyGap = longestGap(viaHaproxy, faultAt, answeredAt + 2_000)
          const agentLog = readFileSync(c.agents.logPath(primary), "utf8")
          // The primary's own account: its switchover events, timed from the request.
          const events = agentLog
            .split("\n")
            .filter((l) => /"event":"(switchover[a-z-]*|transfer|self-fenced|resigned)"/.test(l))
            .map((l) => JSON.parse(l) as { time: string; event: string; msg: string })
          const requested = Date.parse(events.find((e) => e.event === "switchover")?.time ?? "")
          for (const e of events)
            console.log(`  ${primary} +${Date.parse(e.time) - requested} ms ${e.event}: ${e.msg}`)
          if (result.ok) {
            assert.match(result.text, /transferred/)
            assert.equal(await c.waitForPrimary(20_000, primary), target)
            assert.ok(
              vipGap <= CLIENT_BLOCK_MS,
              `a completed switchover blocked writes through the VIP for ${vipGap} ms (bound ${CLIENT_BLOCK_MS} ms)`,
            )
            const agents = agentBlockMs(c, primary, target, faultAt)
            assert.ok(
              agents <= AGENT_BLOCK_MS,
              `the agents' block (fence -> ${target} ACTIVE) was ${agents} ms (bound ${AGENT_BLOCK_MS} ms)`,
            )
          } else {
            assert.match(result.text, /switchover refused: .*(behind|apply|catch)/, result.text)
            assert.match(agentLog, /"event":"switchover-refused"/, "the refusal is a log event")
            assert.doesNotMatch(
              agentLog,
              /"event":"switchover-rollback"/,
              "never fenced, so nothing to roll back",
            )
            assert.equal(await c.primary(), primary, "the old primary stays in charge")
            assert.ok(
              vipGap <= REFUSED_GAP_MS,
              `a refused switchover left a ${vipGap} ms gap in acknowledged writes through the VIP (baseline under load ${baseline} ms, bound ${REFUSED_GAP_MS} ms)`,
            )
          }
          // sysbench's own end (it stopped reporting after a switchover once; the writers are the measure).
          const sysbenchLog = c.lab.processLog("client", "sysbench")
          await waitFor(
            "sysbench to finish",
            () => /SQL statistics/.test(readFileSync(sysbenchLog, "utf8")),
            Math.max(0, loadStart + (SYSBENCH_SECONDS + 10) * 1000 - Date.now()),
            1_000,
          ).catch(() => console.log("sysbench did not finish in time: stopped"))
          await c.lab.stopProcess("client", "sysbench")
          // Refused under load: once the load is gone and the target applies its backlog, the
          // same request converges and completes, with the short block a switchover should have.
          let second = ""
          if (!result.ok) {
            // On a loaded machine the target may still apply its backlog for a while (62/s
            // was seen): the second request is about the switchover, not about that wait.
            const [row] = await c.lab.query<{ g: string }>(primary, "SELECT @@gtid_executed AS g")
            await c.lab.query(target, "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, 120)", [row?.g ?? ""])
            const at = Date.now()
            const r = await c.agents.cli(primary, ["switchover", "--to", target])
            const done = Date.now()
            assert.match(r.stdout, /transferred/)
            assert.equal(await c.waitForPrimary(20_000, primary), target)
            await sleep(2_000)
            const gap = longestGap(readWriterLog(c.writerLog), at, done + 2_000)
            const viaHa = longestGap(readWriterLog(haproxyLog), at, done + 2_000)
            assert.ok(
              gap <= CLIENT_BLOCK_MS,
              `the switchover after the load blocked writes through the VIP for ${gap} ms (bound ${CLIENT_BLOCK_MS} ms)`,
            )
            const agents = agentBlockMs(c, primary, target, at)
            assert.ok(
              agents <= AGENT_BLOCK_MS,
              `the agents' block (fence -> ${target} ACTIVE) was ${agents} ms (bound ${AGENT_BLOCK_MS} ms)`,
            )
            second = `; after the load the same switchover completed (CLI ${done - at} ms): agents' block ${agents} ms (fence -> ${target} ACTIVE), client-observed ${gap} ms through the VIP and ${viaHa} ms through HAProxy`
          }
          await c.lab.stopProcess("client", "writer-haproxy")
          const reports = [...readFileSync(sysbenchLog, "utf8").matchAll(/ tps: ([\d.]+) /g)].map(
            (m) => Number(m[1]),
          )
          const tps =
            reports.length === 0
              ? "?"
              : `${Math.round(reports.reduce((a, b) => a + b, 0) / reports.length)} (5 s reports ${reports.map(Math.round).join(", ")})`
          const now = await c.waitForPrimary(30_000)
          const missing = await missingAckedWrites(c.lab, now, readWriterLog(haproxyLog))
          assert.deepEqual(
            missing,
            [],
            "every write acknowledged through HAProxy is on the primary",
          )
          const check = await c.check(faultAt)
          assert.deepEqual(check.problems, [], `the invariants hold: ${check.problems.join("; ")}`)
          console.log(
            `switchover under load (sysbench ${tps} tps): ${result.ok ? `completed ${primary} -> ${target}` : "refused"} ` +
              `after ${answeredAt - faultAt} ms; longest ack gap from the request to 2 s after the answer: ` +
              `${vipGap} ms through the VIP, ${haproxyGap} ms through HAProxy (baseline under load ${baseline} ms); ` +
              `${check.acked} writes acknowledged through the VIP and ${readWriterLog(haproxyLog).acked.length} through HAProxy, none lost${second}`,
          )
        } finally {
          await c.lab.stopProcess("client", "sysbench").catch(() => {})
          await c.lab.stopProcess("client", "writer-haproxy").catch(() => {})
          await c.lab.stopProcess("client", "haproxy").catch(() => {})
        }
      },
    ),
)
