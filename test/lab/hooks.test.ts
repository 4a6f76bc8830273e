// Hooks on the lab (operations.md, Hooks): every agent runs one hook script
// (absolute path, mode 0755, in a root-owned directory nobody else may write)
// for every event; it appends its MHA_* environment to a file per node.
// 1. A replica's lag crossing the threshold and recovering, then scenario 2
//    (the primary's mysqld cannot restart): the files show
//    on_lag_threshold_exceeded / on_lag_recovered, on_failure_detected,
//    pre_failover, post_failover and on_role_change with the right values.
// 2. The same failover where db2's pre_failover exits 1: db2 wins first (it
//    ranks best), aborts, fences and resigns its term and runs
//    post_unsuccessful_failover; it is never writable; it does not stand again
//    (protocol: its refusal makes it ineligible until a primary is ACTIVE), so
//    db3 wins the next term. The invariants hold.
// 3. As 2, but db3 lacks commits db2 holds (MySQL traffic between db1 and db3
//    cut): db2 refuses to vote for it, and would stall the cluster. db3
//    fetches them from db2 (catch-up.ts: it replicates from it, auto-position
//    from a replica's binlog) and wins; no acknowledged write is lost.
import assert from "node:assert/strict"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import { type LabCluster, runScenario } from "./cluster.ts"
import { waitFor } from "./exec.ts"
import { readSamplerLog } from "./invariants.ts"
import type { Lab } from "./lab.ts"
import { mysqldCannotRestartLevel } from "./scenarios.ts"

const HOOKS = [
  "on_failure_detected",
  "pre_failover",
  "post_failover",
  "post_unsuccessful_failover",
  "on_fence",
  "on_role_change",
  "on_lag_threshold_exceeded",
  "on_lag_recovered",
] as const

const VARS = [
  "MHA_EVENT",
  "MHA_CLUSTER",
  "MHA_NODE",
  "MHA_TERM",
  "MHA_OLD_PRIMARY",
  "MHA_NEW_PRIMARY",
  "MHA_REASON",
  "MHA_LAG_SECONDS",
  "MHA_OLD_ROLE",
  "MHA_NEW_ROLE",
]

type HookLine = Record<string, string>

/** A root-owned 0755 directory with the hook script; `refuse-<node>` makes its pre_failover exit 1. */
const hookDir = (): { dir: string; script: string; events: (node: string) => HookLine[] } => {
  const dir = mkdtempSync("/tmp/mha-hooks-")
  chmodSync(dir, 0o755)
  const script = join(dir, "hook.sh")
  const format = VARS.map((v) => `${v}=%s`).join("\\t")
  const args = VARS.map((v) => `"$${v}"`).join(" ")
  writeFileSync(
    script,
    `#!/bin/sh
printf '${format}\\n' ${args} >> "${dir}/events-$MHA_NODE.log"
if [ "$MHA_EVENT" = pre_failover ] && [ -e "${dir}/refuse-$MHA_NODE" ]; then
  echo "pre_failover refused on $MHA_NODE by the test" >&2
  exit 1
fi
exit 0
`,
  )
  chmodSync(script, 0o755)
  const events = (node: string): HookLine[] => {
    const file = join(dir, `events-${node}.log`)
    if (!existsSync(file)) return []
    return readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) =>
        Object.fromEntries(
          l.split("\t").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
        ),
      )
  }
  return { dir, script, events }
}

const hookConfig = (script: string) => ({
  hooks: { ...Object.fromEntries(HOOKS.map((h) => [h, script])), timeout: "10s" },
  // Small lag thresholds so that a 6 s SOURCE_DELAY crosses them.
  health: { lag_info: "2s", lag_warn: "4s", lag_critical: "60s" },
})

/** SOURCE_DELAY on a replica (the agent may restart the SQL thread in between: retry). */
const sourceDelay = async (lab: Lab, host: string, seconds: number): Promise<void> => {
  for (let attempt = 0; ; attempt++) {
    try {
      await lab.query(host, "STOP REPLICA SQL_THREAD")
      await lab.query(host, `CHANGE REPLICATION SOURCE TO SOURCE_DELAY = ${seconds}`)
      await lab.query(host, "START REPLICA SQL_THREAD")
      return
    } catch (e) {
      if (attempt >= 5) throw e
    }
  }
}

const find = (lines: HookLine[], event: string, where: (l: HookLine) => boolean = () => true) =>
  lines.filter((l) => l.MHA_EVENT === event && where(l))

const show = (lines: HookLine[]) =>
  lines.map((l) => `${l.MHA_EVENT} term=${l.MHA_TERM} ${l.MHA_REASON}`).join("\n")

test("hooks: lag exceeded and recovered, then a failover runs on_failure_detected, pre_failover, post_failover and on_role_change with MHA_* values", {
  timeout: 300_000,
}, async () => {
  const h = hookDir()
  try {
    await runScenario(
      {
        slug: "hooks-failover",
        timings: { restart_timeout: "10s", apply_timeout: "10s" },
        extra: hookConfig(h.script),
      },
      async (c) => {
        const cluster = `lab-${c.lab.id}`
        assert.equal(await c.waitForPrimary(10_000), "db1")
        // Lag: delay db3's applier by 6 s (> lag_warn 4 s), then remove the delay.
        await sourceDelay(c.lab, "db3", 6)
        await waitFor(
          "on_lag_threshold_exceeded on db3",
          () => find(h.events("db3"), "on_lag_threshold_exceeded").length > 0,
          30_000,
        )
        await sourceDelay(c.lab, "db3", 0)
        await waitFor(
          "on_lag_recovered on db3",
          () => find(h.events("db3"), "on_lag_recovered").length > 0,
          30_000,
        )
        const [exceeded] = find(h.events("db3"), "on_lag_threshold_exceeded")
        assert.ok(Number(exceeded?.MHA_LAG_SECONDS) >= 4, JSON.stringify(exceeded))
        assert.equal(exceeded?.MHA_NEW_PRIMARY, "db1")
        assert.equal(exceeded?.MHA_CLUSTER, cluster)
        const [recovered] = find(h.events("db3"), "on_lag_recovered")
        assert.ok(Number(recovered?.MHA_LAG_SECONDS) < 2, JSON.stringify(recovered))
        assert.equal(
          find(h.events("db3"), "on_lag_threshold_exceeded").length,
          1,
          "once per crossing",
        )
        assert.equal(find(h.events("db2"), "on_lag_threshold_exceeded").length, 0)

        // Scenario 2.
        const faultAt = await mysqldCannotRestartLevel(c)
        const result = await c.check(faultAt)
        assert.deepEqual(result.problems, [], result.problems.join("; "))
        const winner = await c.waitForPrimary(10_000)
        assert.equal(winner, "db2", "db2 ranks best")
        const term = String(c.term("db2"))
        await waitFor(
          "the hooks of the failover",
          () =>
            find(h.events("db2"), "post_failover").length > 0 &&
            find(h.events("db2"), "on_role_change", (l) => l.MHA_NEW_ROLE === "ACTIVE").length >
              0 &&
            find(h.events("db3"), "on_role_change", (l) => l.MHA_NEW_PRIMARY === "db2").length > 0,
          20_000,
        )
        const db2 = h.events("db2")
        const db3 = h.events("db3")
        const db1 = h.events("db1")
        for (const [node, lines] of [
          ["db2", db2],
          ["db3", db3],
        ] as const) {
          const detected = find(lines, "on_failure_detected")
          assert.equal(detected.length, 1, `${node}: once\n${show(lines)}`)
          assert.equal(detected[0]?.MHA_OLD_PRIMARY, "db1")
          assert.equal(detected[0]?.MHA_NODE, node)
          assert.equal(detected[0]?.MHA_CLUSTER, cluster)
          assert.ok(detected[0]?.MHA_REASON !== "", "says why")
        }
        const [pre] = find(db2, "pre_failover")
        assert.deepEqual(
          [pre?.MHA_OLD_PRIMARY, pre?.MHA_NEW_PRIMARY, pre?.MHA_TERM],
          ["db1", "db2", term],
          show(db2),
        )
        const [post] = find(db2, "post_failover")
        assert.deepEqual(
          [post?.MHA_OLD_PRIMARY, post?.MHA_NEW_PRIMARY, post?.MHA_TERM],
          ["db1", "db2", term],
        )
        const order = db2.map((l) => l.MHA_EVENT)
        assert.ok(
          order.indexOf("on_failure_detected") < order.indexOf("pre_failover") &&
            order.indexOf("pre_failover") < order.indexOf("post_failover"),
          order.join(", "),
        )
        const [active] = find(db2, "on_role_change", (l) => l.MHA_NEW_ROLE === "ACTIVE")
        assert.deepEqual([active?.MHA_OLD_PRIMARY, active?.MHA_NEW_PRIMARY], ["db1", "db2"])
        assert.equal(find(db3, "pre_failover").length, 0, "only the winner runs pre_failover")
        assert.equal(find(db2, "post_unsuccessful_failover").length, 0)
        const standby = find(db3, "on_role_change", (l) => l.MHA_NEW_PRIMARY === "db2")
        assert.equal(standby.at(-1)?.MHA_NEW_ROLE, "STANDBY", show(db3))
        assert.ok(
          find(db1, "on_role_change", (l) => l.MHA_OLD_ROLE === "ACTIVE").length > 0,
          `db1 left ACTIVE:\n${show(db1)}`,
        )
        assert.ok(find(db1, "on_fence").length > 0, "db1 fenced itself and resigned")
        console.log(
          `hooks: failover to db2 in term ${term}, downtime ${result.downtimeMs} ms; db2 ran ${order.join(", ")}`,
        )
      },
    )
  } finally {
    rmSync(h.dir, { recursive: true, force: true })
  }
})

/** A cluster whose db2 refuses its promotion in pre_failover (the hooks' directory removed after). */
const refusedOnDb2 = async (
  slug: string,
  body: (c: LabCluster, h: ReturnType<typeof hookDir>) => Promise<void>,
): Promise<void> => {
  const h = hookDir()
  writeFileSync(join(h.dir, "refuse-db2"), "")
  try {
    await runScenario(
      {
        slug,
        timings: { restart_timeout: "10s", apply_timeout: "10s" },
        extra: hookConfig(h.script),
      },
      (c) => body(c, h),
    )
  } finally {
    rmSync(h.dir, { recursive: true, force: true })
  }
}

test(
  "hooks: pre_failover exits 1 on db2: its promotion aborts (fenced, never writable, post_unsuccessful_failover) and db3 wins",
  {
    timeout: 300_000,
  },
  () =>
    refusedOnDb2("hooks-refused", async (c, h) => {
      assert.equal(await c.waitForPrimary(10_000), "db1")
      // Level replicas: db3 must not lack a commit that db2 holds (db2 would refuse to vote
      // for it, and db3 could not win while db2 does not stand: seen once in CI).
      const faultAt = await mysqldCannotRestartLevel(c)
      const result = await c.check(faultAt)
      assert.deepEqual(result.problems, [], result.problems.join("; "))
      assert.equal(await c.waitForPrimary(10_000), "db3", "db3 wins after db2's abort")
      await waitFor(
        "db3's post_failover",
        () => find(h.events("db3"), "post_failover").length > 0,
        20_000,
      )
      const db2 = h.events("db2")
      const db3 = h.events("db3")
      const [pre2] = find(db2, "pre_failover")
      assert.ok(pre2 !== undefined, `db2 won first and ran pre_failover:\n${show(db2)}`)
      const [unsuccessful] = find(db2, "post_unsuccessful_failover")
      assert.equal(unsuccessful?.MHA_TERM, pre2.MHA_TERM, show(db2))
      assert.match(unsuccessful?.MHA_REASON ?? "", /pre_failover hook: exit 1/)
      assert.ok(
        find(db2, "on_fence", (l) => /pre_failover/.test(l.MHA_REASON ?? "")).length > 0,
        "db2 fenced itself",
      )
      assert.equal(find(db2, "post_failover").length, 0)
      assert.equal(find(db2, "pre_failover").length, 1, "db2 did not stand again")
      const [pre3] = find(db3, "pre_failover")
      const [post3] = find(db3, "post_failover")
      assert.ok(Number(pre3?.MHA_TERM) > Number(pre2.MHA_TERM), "db3 won a later term")
      assert.equal(post3?.MHA_TERM, pre3?.MHA_TERM)
      assert.equal(post3?.MHA_NEW_PRIMARY, "db3")
      assert.equal(post3?.MHA_OLD_PRIMARY, "db1")
      // Never writable: no sample of the sampler saw db2 writable after the fault.
      const writable = readSamplerLog(c.samplerLog).filter(
        (r) => r.t >= faultAt && r.nodes.db2 === "writable",
      )
      assert.deepEqual(writable, [], "db2 was never writable")
      // Its log says why.
      const log = readFileSync(c.agents.logPath("db2"), "utf8")
      assert.match(
        log,
        /promotion-aborted.*pre_failover hook: exit 1|pre_failover hook: exit 1.*promotion-aborted/,
      )
      console.log(
        `hooks: db2's pre_failover refused term ${pre2.MHA_TERM}; db3 ACTIVE in term ${pre3?.MHA_TERM}; downtime ${result.downtimeMs} ms`,
      )
    }),
)

test(
  "hooks: pre_failover exits 1 on db2, which holds commits db3 lacks: db3 fetches them from db2 and wins, nothing acknowledged lost",
  {
    timeout: 300_000,
  },
  () =>
    refusedOnDb2("hooks-catch-up", async (c, h) => {
      assert.equal(await c.waitForPrimary(10_000), "db1")
      // db3 stops receiving; db2 acknowledges what the writer commits meanwhile.
      await c.lab.inject({ _tag: "CutReplication", a: "db1", b: "db3" })
      const executed = async (host: string): Promise<string> =>
        (await c.lab.query<{ g: string }>(host, "SELECT @@GLOBAL.gtid_executed AS g"))[0]?.g ?? ""
      await waitFor(
        "db2 to hold commits db3 lacks",
        async () => {
          const [row] = await c.lab.query<{ sub: number }>(
            "db3",
            "SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed) AS sub",
            [await executed("db2")],
          )
          return Number(row?.sub) === 0
        },
        10_000,
        200,
      )
      const faultAt = Date.now()
      await c.lab.inject({ _tag: "StopMysqld", host: "db1" })
      const next = await c.waitForPrimary(60_000, "db1")
      assert.equal(next, "db3", "db3 wins after db2's abort")
      await c.waitForWritesAfter(faultAt, 30_000)
      // An operator mends the network and db1's mysqld: it comes back as a replica.
      await c.lab.inject({ _tag: "Heal", hosts: [] })
      await c.lab.inject({ _tag: "StartMysqld", host: "db1" })
      const result = await c.check(faultAt)
      assert.deepEqual(result.problems, [], result.problems.join("; "))
      const [lacking] = await c.lab.query<{ sub: number }>(
        "db3",
        "SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed) AS sub",
        [await executed("db2")],
      )
      assert.equal(Number(lacking?.sub), 1, "db3 holds everything db2 holds")
      const db3Log = readFileSync(c.agents.logPath("db3"), "utf8")
      assert.ok(
        db3Log
          .split("\n")
          .some((l) => l.includes('"catch-up"') && l.includes("replicating from db2")),
        "db3 said it caught up from db2",
      )
      const db2 = h.events("db2")
      const [pre2] = find(db2, "pre_failover")
      assert.ok(pre2 !== undefined, `db2 won first and ran pre_failover:\n${show(db2)}`)
      assert.equal(find(db2, "post_failover").length, 0)
      const writable = readSamplerLog(c.samplerLog).filter(
        (r) => r.t >= faultAt && r.nodes.db2 === "writable",
      )
      assert.deepEqual(writable, [], "db2 was never writable")
      console.log(
        `hooks: db3 caught up from db2 and is ACTIVE in term ${c.term("db3")}; downtime ${result.downtimeMs} ms`,
      )
    }),
)
