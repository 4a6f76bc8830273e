// Issue 10 item 5: a hung primary mysqld (SIGSTOP for 20 s: the kernel still
// accepts TCP connections, nothing answers). Probes that get no answer in time
// count as missed at their deadline, and the restart of a hung mysqld kills it
// first (service.kill_command) instead of waiting behind the stopped process.
// Before the fix: 36.5 s of write downtime with the default restart_timeout
// (the restart's SIGTERM waited until the process was continued); with this
// test's 10 s restart_timeout the restart timed out and the primary failed
// over after 20.4 s, the hung mysqld never killed. Benchmark target: <= 10 s.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { test } from "node:test"
import { runScenario } from "./cluster.ts"
import { MYSQL_PORT } from "./network.ts"
import { HUNG_MS, primaryMysqldHung } from "./scenarios.ts"

/** Generous against the benchmark's 10 s: the lab shares 2 cores with other labs. */
const DOWNTIME_BOUND_MS = 15_000

test(
  "a hung primary mysqld (SIGSTOP 20 s) is killed and restarted at once: short write downtime, no failover",
  { timeout: 240_000 },
  () =>
    runScenario({ slug: "hung-mysqld", timings: { restart_timeout: "10s" } }, async (c) => {
      // Reads the server greeting over a raw TCP connection from the client host.
      const greeting = (host: string) =>
        c.lab
          .exec("client", [
            "timeout",
            "3",
            "bash",
            "-c",
            `exec 3<>/dev/tcp/${c.lab.host(host).address}/${MYSQL_PORT} || exit 7; timeout 1.5 head -c 4 <&3 >/dev/null`,
          ])
          .then(
            () => ({ ok: true, stderr: "" }),
            (e: Error) => ({ ok: false, stderr: e.message }),
          )
      const first = await c.waitForPrimary(10_000)
      const pid = c.lab.mysqldPid(first)
      assert.equal((await greeting(first)).ok, true, "a running mysqld greets a new connection")
      const faultAt = await primaryMysqldHung(async (primary) => {
        // What the fix relies on: a SIGSTOPped mysqld accepts TCP (the kernel does) and sends nothing.
        const hung = await greeting(primary)
        assert.equal(hung.ok, false, "no greeting from a SIGSTOPped mysqld")
        assert.doesNotMatch(hung.stderr, /exited 7/, "the TCP connect itself succeeds")
      })(c)
      const result = await c.check(faultAt)
      console.log(
        `hung primary mysqld for ${HUNG_MS} ms: client-observed write downtime ${result.downtimeMs} ms, ${result.acked} acknowledged writes`,
      )
      assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
      // SIGKILL ends a SIGSTOPped process, and the supervisor starts mysqld again.
      const log = readFileSync(c.agents.logPath(first), "utf8")
      assert.match(log, /"event":"mysqld-killed","ok":true/, "its agent ran kill_command")
      assert.match(log, /hung: killed first/)
      assert.notEqual(c.lab.mysqldPid(first), pid, "a new mysqld runs")
      assert.ok(
        result.downtimeMs <= DOWNTIME_BOUND_MS,
        `write downtime ${result.downtimeMs} ms within ${DOWNTIME_BOUND_MS} ms`,
      )
    }),
)
