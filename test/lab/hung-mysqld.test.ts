// Issue 10 item 5: a hung primary mysqld (SIGSTOP for 20 s: the kernel still
// accepts TCP connections, nothing answers). Probes that get no answer in time
// count as missed at their deadline, and the restart of a hung mysqld kills it
// first (service.kill_command) instead of waiting behind the stopped process.
// Before the fix: 36.5 s of write downtime (the restart's SIGTERM waited until
// the process was continued). The benchmark target is <= 10 s for a 20 s hang.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { test } from "node:test"
import { runScenario } from "./cluster.ts"
import { sleep, waitFor } from "./exec.ts"
import { MYSQL_PORT } from "./network.ts"

const HANG_MS = 20_000
/** Generous against the benchmark's 10 s: the lab shares 2 cores with other labs. */
const DOWNTIME_BOUND_MS = 15_000

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

test(
  "a hung primary mysqld (SIGSTOP 20 s) is killed and restarted at once: short write downtime, no failover",
  { timeout: 240_000 },
  () =>
    runScenario({ slug: "hung-mysqld", timings: { restart_timeout: "10s" } }, async (c) => {
      const primary = await c.waitForPrimary(10_000)
      const term = c.term(primary)
      const pid = c.lab.mysqldPid(primary)
      assert.ok(pid !== undefined, `mysqld runs on ${primary}`)
      const address = c.lab.host(primary).address
      // Reads the server greeting over a raw TCP connection from the client host.
      const greeting = () =>
        c.lab
          .exec("client", [
            "timeout",
            "3",
            "bash",
            "-c",
            `exec 3<>/dev/tcp/${address}/${MYSQL_PORT} || exit 7; timeout 1.5 head -c 4 <&3 >/dev/null`,
          ])
          .then(
            () => ({ ok: true, stderr: "" }),
            (e: Error) => ({ ok: false, stderr: e.message }),
          )
      assert.equal((await greeting()).ok, true, "a running mysqld greets a new connection at once")

      const faultAt = Date.now()
      await c.lab.inject({ _tag: "Pause", host: primary, process: "mysqld" })
      let killedAt: number | undefined
      try {
        // What the fix relies on: a SIGSTOPped mysqld accepts TCP (the kernel does) and sends nothing.
        const hung = await greeting()
        assert.equal(hung.ok, false, "no greeting from a SIGSTOPped mysqld")
        assert.doesNotMatch(hung.stderr, /exited 7/, "the TCP connect itself succeeds")
        await waitFor(
          `the SIGSTOPped mysqld (pid ${pid}) to be killed`,
          () => !alive(pid),
          HANG_MS - (Date.now() - faultAt),
          100,
        ).catch(() => {})
        if (!alive(pid)) killedAt = Date.now()
        const left = HANG_MS - (Date.now() - faultAt)
        if (left > 0) await sleep(left)
      } finally {
        // The hang ends after 20 s (a no-op when the process was killed).
        try {
          process.kill(pid, "SIGCONT")
        } catch {
          // gone: killed by the agent
        }
      }
      await c.waitForWritesAfter(faultAt, 60_000)
      await sleep(2000)
      const samePrimary = await c.primary()
      const result = await c.check(faultAt)
      const killedAfter = killedAt === undefined ? "never" : `${killedAt - faultAt} ms`
      console.log(
        `hung primary mysqld for ${HANG_MS} ms: client-observed write downtime ${result.downtimeMs} ms, old mysqld killed after ${killedAfter}, ${result.acked} acknowledged writes`,
      )
      assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
      assert.ok(killedAt !== undefined, "the hung mysqld was killed before its hang ended")
      assert.ok(
        killedAt - faultAt < 10_000,
        `killed soon after the hang began (${killedAt - faultAt} ms)`,
      )
      const log = readFileSync(c.agents.logPath(primary), "utf8")
      assert.match(log, /"event":"mysqld-killed"/, "its agent ran kill_command")
      assert.notEqual(c.lab.mysqldPid(primary), pid, "the supervisor started a new mysqld")
      assert.equal(samePrimary, primary, "no failover: the same primary after the restart")
      assert.equal(c.term(primary), term, "no election")
      assert.ok(
        result.downtimeMs <= DOWNTIME_BOUND_MS,
        `write downtime ${result.downtimeMs} ms within ${DOWNTIME_BOUND_MS} ms`,
      )
    }),
)
