// fence_command (STONITH) and `failover --force` on real MySQL, one cluster:
// 1. db1's mysqld is stopped for good: the winner runs fence_command with
//    MHA_OLD_PRIMARY=db1 before it becomes writable, and promotes.
// 2. The cluster is paused and the new primary is gone (agent killed, mysqld
//    stopped): nothing fails over by itself. `failover --force` on db1 (the
//    best-ranked replica left: voters still rank) makes it stand; its
//    fence_command (required: fence_required) exits 1, so the promotion
//    aborts and it is never writable.
// 3. The fence works again: the same forced failover promotes it.
// The writer and the sampler run throughout; check() asserts no acknowledged
// write lost, never two writable nodes, convergence.
import assert from "node:assert/strict"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import { bringBackOldPrimary } from "./acceptance-scenarios.ts"
import { runScenario } from "./cluster.ts"
import { sleep, waitFor } from "./exec.ts"
import { readSamplerLog } from "./invariants.ts"

interface FenceRun {
  readonly at: number
  readonly event: string
  readonly node: string
  readonly oldPrimary: string
  readonly term: string
  readonly cluster: string
}

/** A fence command that appends its environment to fence.log and fails while `fail` exists. */
const fenceDir = () => {
  const dir = mkdtempSync("/tmp/mha-fence-")
  chmodSync(dir, 0o755)
  const script = join(dir, "fence.sh")
  writeFileSync(
    script,
    `#!/bin/sh
printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$(date +%s%3N)" "$MHA_EVENT" "$MHA_NODE" "$MHA_OLD_PRIMARY" "$MHA_TERM" "$MHA_CLUSTER" >> "${dir}/fence.log"
if [ -e "${dir}/fail" ]; then
  echo "the fence device refused (test)" >&2
  exit 1
fi
exit 0
`,
  )
  chmodSync(script, 0o755)
  const runs = (): FenceRun[] => {
    const file = join(dir, "fence.log")
    if (!existsSync(file)) return []
    return readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => {
        const [at, event, node, oldPrimary, term, cluster] = l.split("\t")
        return {
          at: Number(at),
          event: event ?? "",
          node: node ?? "",
          oldPrimary: oldPrimary ?? "",
          term: term ?? "",
          cluster: cluster ?? "",
        }
      })
  }
  return { dir, script, runs, fail: (on: boolean) => setFailing(join(dir, "fail"), on) }
}

const setFailing = (file: string, on: boolean) => {
  if (on) writeFileSync(file, "")
  else rmSync(file, { force: true })
}

/** The first sampler round after `t` in which `host` was writable (epoch ms), if any. */
const firstWritableAfter = (samplerLog: string, host: string, t: number): number | undefined =>
  readSamplerLog(samplerLog).find((r) => r.t > t && r.nodes[host] === "writable")?.t

test("fence_command runs during a failover with the old primary's name; a required one that fails aborts a forced failover; failover --force with the primary gone promotes", {
  timeout: 420_000,
}, async () => {
  const f = fenceDir()
  try {
    await runScenario(
      {
        slug: "fence-force",
        timings: { restart_timeout: "10s", apply_timeout: "10s" },
        extra: { fence_command: f.script, fence_required: true },
      },
      async (c) => {
        const cluster = `lab-${c.lab.id}`
        assert.equal(await c.waitForPrimary(10_000), "db1")

        // 1. A failover: db1's mysqld stopped for good; db2 ranks best.
        const faultAt = Date.now()
        await c.lab.inject({ _tag: "StopMysqld", host: "db1" })
        assert.equal(await c.waitForPrimary(60_000, "db1"), "db2")
        await c.waitForWritesAfter(faultAt, 30_000)
        const [first] = f.runs()
        assert.ok(first !== undefined, "fence_command ran")
        assert.deepEqual(
          [first.event, first.node, first.oldPrimary, first.term, first.cluster],
          ["fence_command", "db2", "db1", String(c.term("db2")), cluster],
        )
        const db2Writable = firstWritableAfter(c.samplerLog, "db2", faultAt)
        assert.ok(
          db2Writable !== undefined && first.at <= db2Writable,
          `the fence ran at ${first.at}, before db2 was first seen writable at ${db2Writable}`,
        )
        // db1 back: as a replica, or DIVERGED and re-seeded by clone (it was killed while writing).
        const back = await bringBackOldPrimary(c, "db1", "db2")
        await waitFor(
          "db1 to replicate from db2 again",
          async () => (await c.agentRole("db2", "db1")) === "STANDBY",
          60_000,
          500,
        )

        // 2. Paused, the primary gone, the fence device refusing.
        const pause = await c.agents.cli("db3", ["pause"])
        assert.match(pause.stdout, /committed/, pause.stderr)
        const paused = async (host: string) =>
          (
            JSON.parse((await c.agents.cli(host, ["status", "--json"])).stdout) as {
              status?: { paused?: boolean }
            }
          ).status?.paused === true
        await waitFor(
          "db1 and db3 to hold the paused record",
          async () => (await paused("db1")) && (await paused("db3")),
          10_000,
        )
        f.fail(true)
        const goneAt = Date.now()
        await c.lab.inject({ _tag: "KillAgent", host: "db2" })
        await c.lab.inject({ _tag: "StopMysqld", host: "db2" })
        // Nothing fails over by itself while paused (several leases).
        await sleep(8_000)
        assert.equal(await c.primary(), undefined, "no primary while paused")
        const forced = await c.agents.cli("db1", ["failover", "--force"])
        assert.match(forced.stdout, /standing for election/, forced.stderr)
        assert.match(forced.stderr, /may lose transactions/, "the CLI warns")
        await waitFor(
          "db1's promotion to abort on the failed fence_command",
          () => /fence_command failed for db2/.test(readFileSync(c.agents.logPath("db1"), "utf8")),
          30_000,
        )
        const refused = f.runs().filter((r) => r.at >= goneAt)
        assert.ok(refused.length > 0, "the fence command ran on db1")
        for (const r of refused) assert.deepEqual([r.node, r.oldPrimary], ["db1", "db2"])
        await sleep(3_000)
        assert.equal(
          firstWritableAfter(c.samplerLog, "db1", goneAt),
          undefined,
          "db1 was never writable: its required fence failed",
        )
        assert.equal(firstWritableAfter(c.samplerLog, "db3", goneAt), undefined)

        // 3. The fence device works again: the same forced failover promotes db1.
        f.fail(false)
        const againAt = Date.now()
        const again = await c.agents.cli("db1", ["failover", "--force"])
        assert.match(again.stdout, /standing for election/, again.stderr)
        assert.equal(await c.waitForPrimary(60_000), "db1")
        const fenced = f.runs().filter((r) => r.at >= againAt)
        assert.ok(
          fenced.some((r) => r.node === "db1" && r.oldPrimary === "db2"),
          JSON.stringify(fenced),
        )
        await c.waitForWritesAfter(againAt, 30_000)
        const resume = await c.agents.cli("db1", ["resume"])
        assert.match(resume.stdout, /committed/, resume.stderr)

        // The old primary comes back (its agent and mysqld).
        await c.lab.inject({ _tag: "StartMysqld", host: "db2" })
        await c.agents.start("db2")
        const result = await c.check(faultAt)
        assert.deepEqual(result.problems, [], result.problems.join("; "))
        console.log(
          `fence/force: fence_command ran ${f.runs().length} times (${f
            .runs()
            .map((r) => `${r.node}->${r.oldPrimary} term ${r.term}`)
            .join(
              ", ",
            )}); db1 after the first failover: ${back}; ${result.acked} acknowledged writes, none lost; diverged: ${result.diverged.join(", ") || "none"}`,
        )
      },
    )
  } finally {
    rmSync(f.dir, { recursive: true, force: true })
  }
})
