// Issue 15 items 4 and 6 on the lab, one cluster (3 nodes, semi_sync mode
// "on" with a 1 s timeout), a real Prometheus (Debian's prometheus package)
// in the client namespace scraping the three agents' /metrics every second
// with the shipped alerting rules (packaging/prometheus/mha-agent-alerts.yml):
// 1. Semi-sync fallback: both replicas excluded (so their agents do not
//    restart replication) and their IO threads stopped; the primary's next
//    commit waits 1 s and MySQL falls back to asynchronous. The primary's
//    agent says so: the log event, the on_semi_sync_fallback hook, a line in
//    `status` (its own and a replica's), mha_semi_sync_fallback 1, and
//    Prometheus fires MhaSemiSyncFallback. IO threads started again: MySQL
//    switches back, on_semi_sync_restored, status and metric clear.
// 2. A failover (the primary's host isolated: no agent Prometheus can reach
//    says ACTIVE for about a lease; a stopped mysqld fails over in ~250 ms,
//    faster than a 1 s scrape can see): Prometheus fires MhaNoPrimary, then
//    MhaFailoverHappened once a replica is promoted. The
//    rules are the shipped ones except MhaNoPrimary's `for` (30 s, longer
//    than this failover): 0 s here; promtool's unit tests cover the `for`.
// Then the old primary back and the invariants (nothing acknowledged lost,
// never two writable, convergence); every dashboard query runs on the real
// Prometheus without an error.
import assert from "node:assert/strict"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import { parse, stringify } from "yaml"
import { agentStatus, bringBackOldPrimary } from "./acceptance-scenarios.ts"
import { type LabCluster, runScenario } from "./cluster.ts"
import { waitFor } from "./exec.ts"
import { agentHttp } from "./http-client.ts"
import { HTTP_PORT } from "./network.ts"

const repo = join(import.meta.dirname, "../..")
const PROMETHEUS = "/usr/bin/prometheus"
const PROM_URL = "http://127.0.0.1:9090"

/** A root-owned 0755 directory with a hook script that appends MHA_EVENT and MHA_REASON per node. */
const hookDir = () => {
  const dir = mkdtempSync("/tmp/mha-alerts-hooks-")
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

interface PromResult {
  readonly metric: Record<string, string>
  readonly value: [number, string]
}

/** An instant query on the lab's Prometheus (from the client namespace). */
const promQuery = async (c: LabCluster, query: string): Promise<ReadonlyArray<PromResult>> => {
  const { stdout } = await c.lab.exec("client", [
    "curl",
    "-sS",
    "-m",
    "3",
    "--data-urlencode",
    `query=${query}`,
    `${PROM_URL}/api/v1/query`,
  ])
  const answer = JSON.parse(stdout) as {
    status: string
    error?: string
    data?: { result: PromResult[] }
  }
  if (answer.status !== "success") throw new Error(`query ${query}: ${answer.error ?? stdout}`)
  return answer.data?.result ?? []
}

const firing = (c: LabCluster, alert: string) =>
  promQuery(c, `ALERTS{alertname="${alert}",alertstate="firing"}`)

/** Prometheus in the client namespace: the shipped rules (MhaNoPrimary's `for` 0 s), 1 s scrapes. */
const startPrometheus = async (c: LabCluster, dir: string): Promise<void> => {
  const rules = parse(
    readFileSync(join(repo, "packaging/prometheus/mha-agent-alerts.yml"), "utf8"),
  ) as { groups: Array<{ rules: Array<{ alert: string; for?: string }> }> }
  for (const r of rules.groups.flatMap((g) => g.rules)) if (r.alert === "MhaNoPrimary") r.for = "0s"
  writeFileSync(join(dir, "alerts.yml"), stringify(rules))
  writeFileSync(
    join(dir, "prometheus.yml"),
    stringify({
      global: { scrape_interval: "1s", scrape_timeout: "900ms", evaluation_interval: "1s" },
      rule_files: [join(dir, "alerts.yml")],
      scrape_configs: [
        {
          job_name: "mha-agent",
          static_configs: [{ targets: c.lab.hosts.map((h) => `${h.address}:${HTTP_PORT}`) }],
        },
      ],
    }),
  )
  await c.lab.spawn("client", "prometheus", [
    PROMETHEUS,
    `--config.file=${join(dir, "prometheus.yml")}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    "--web.listen-address=127.0.0.1:9090",
    "--log.level=warn",
  ])
  await waitFor(
    "Prometheus to scrape the three agents",
    async () => {
      const up = await promQuery(c, 'up{job="mha-agent"} == 1').catch(() => [])
      return up.length === c.lab.hosts.length
    },
    30_000,
    500,
  )
}

const FALLBACK = /^semi-sync fell back to asynchronous replication/

test("semi-sync fallback reported and restored; a real Prometheus fires the shipped alerts (semi-sync fallback, no primary during a failover)", {
  timeout: 420_000,
}, async () => {
  const hooks = hookDir()
  const promDir = mkdtempSync("/tmp/mha-alerts-prometheus-")
  try {
    await runScenario(
      {
        slug: "alerts",
        hosts: 3,
        semiSync: "on",
        timings: { restart_timeout: "5s", restart_attempts: 1 },
        extra: {
          semi_sync: { mode: "on", timeout: "1s" },
          hooks: {
            on_semi_sync_fallback: hooks.script,
            on_semi_sync_restored: hooks.script,
            timeout: "10s",
          },
        },
      },
      async (c) => {
        const startedAt = Date.now()
        await startPrometheus(c, promDir)
        const primary = await c.waitForPrimary(10_000)
        const replicas = c.lab.hosts.map((h) => h.name).filter((n) => n !== primary)
        const [mode] = await c.lab.query<{ t: number }>(
          primary,
          "SELECT @@rpl_semi_sync_source_timeout AS t",
        )
        assert.equal(
          Number(mode?.t),
          1000,
          "the agent set rpl_semi_sync_source_timeout from the config",
        )
        // At rest nothing says "no primary" (after the first evaluations: a scrape of the primary
        // that timed out while Prometheus started reads as no primary, with `for: 0s` here).
        await waitFor(
          "MhaNoPrimary not firing with an ACTIVE primary",
          async () => (await firing(c, "MhaNoPrimary")).length === 0,
          15_000,
          500,
        )

        // 1. Semi-sync fallback: the replicas' agents must not restart replication.
        for (const r of replicas) await c.agents.cli(primary, ["exclude", r])
        const fallbackAt = Date.now()
        for (const r of replicas) await c.lab.query(r, "STOP REPLICA IO_THREAD")
        let reported = ""
        await waitFor(
          `${primary}'s status to report the fallback`,
          async () => {
            const s = (await agentStatus(c, primary)) as { semiSyncFallback?: string }
            reported = s.semiSyncFallback ?? ""
            return FALLBACK.test(reported)
          },
          20_000,
          250,
        )
        const reportedMs = Date.now() - fallbackAt
        const [status] = await c.lab.query<{ Value: string }>(
          primary,
          "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_source_status'",
        )
        assert.equal(status?.Value, "OFF", "MySQL really fell back")
        await waitFor(
          `${primary}'s on_semi_sync_fallback hook`,
          () => hooks.events(primary).some((l) => l.startsWith("on_semi_sync_fallback\t")),
          10_000,
        )
        const metrics = await agentHttp(c.lab, primary, "/metrics")
        assert.match(metrics.body, /^mha_semi_sync_fallback 1$/m)
        assert.match(metrics.body, /^mha_semi_sync_active 0$/m)
        const log = readFileSync(c.agents.logPath(primary), "utf8")
        assert.match(log, /"event":"semi-sync-fallback"/)
        // Replicas learn it from the primary's next heartbeats.
        await waitFor(
          `${replicas[0]}'s status to show the primary's fallback`,
          async () =>
            /^primary \S+: semi-sync fell back to asynchronous/m.test(
              (await c.agents.cli(replicas[0]!, ["status"])).stdout,
            ),
          10_000,
          250,
        )
        let fallbackAlert: ReadonlyArray<PromResult> = []
        await waitFor(
          "Prometheus to fire MhaSemiSyncFallback",
          async () => {
            fallbackAlert = await firing(c, "MhaSemiSyncFallback")
            return fallbackAlert.length === 1
          },
          15_000,
          500,
        )
        assert.equal(fallbackAlert[0]?.metric.node, primary)
        assert.equal(fallbackAlert[0]?.metric.cluster, `lab-${c.lab.id}`)

        const restartAt = Date.now()
        for (const r of replicas) await c.lab.query(r, "START REPLICA IO_THREAD")
        await waitFor(
          `${primary}'s on_semi_sync_restored hook`,
          () => hooks.events(primary).some((l) => l.startsWith("on_semi_sync_restored\t")),
          20_000,
        )
        const restoredMs = Date.now() - restartAt
        assert.equal(
          ((await agentStatus(c, primary)) as { semiSyncFallback?: string }).semiSyncFallback,
          undefined,
        )
        assert.match(
          (await agentHttp(c.lab, primary, "/metrics")).body,
          /^mha_semi_sync_fallback 0$/m,
        )
        const restoredLine = hooks
          .events(primary)
          .find((l) => l.startsWith("on_semi_sync_restored\t"))
        assert.match(restoredLine ?? "", /semi-sync restored/)
        for (const r of replicas) await c.agents.cli(primary, ["include", r])
        await c.waitForWritesAfter(Date.now(), 15_000)

        // 2. A failover: Prometheus fires MhaNoPrimary while no agent says ACTIVE.
        const faultAt = Date.now()
        await c.lab.inject({ _tag: "Isolate", host: primary })
        let noPrimary: ReadonlyArray<PromResult> = []
        await waitFor(
          "Prometheus to fire MhaNoPrimary",
          async () => {
            noPrimary = await firing(c, "MhaNoPrimary")
            return noPrimary.length > 0
          },
          60_000,
          250,
        )
        const noPrimaryMs = Date.now() - faultAt
        const isActive = await promQuery(
          c,
          "max by (cluster) (mha_is_active * on (job, instance) group_left (cluster) mha_agent_info)",
        )
        const next = await c.waitForPrimary(60_000, primary)
        const promotedMs = Date.now() - faultAt
        assert.deepEqual(
          noPrimary.map((a) => [a.metric.alertname, a.metric.cluster, a.metric.severity]),
          [["MhaNoPrimary", `lab-${c.lab.id}`, "critical"]],
        )
        await waitFor(
          "MhaNoPrimary to resolve and MhaFailoverHappened to fire",
          async () =>
            (await firing(c, "MhaNoPrimary")).length === 0 &&
            (await firing(c, "MhaFailoverHappened")).some((a) => a.metric.node === next),
          30_000,
          500,
        )
        await c.lab.inject({ _tag: "Heal", hosts: [] })
        const old = await bringBackOldPrimary(c, primary, next)
        const result = await c.check(faultAt)
        assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
        // The new primary turned semi-sync on before its replicas repointed: no false alarm.
        assert.deepEqual(
          hooks.events(next).filter((l) => l.startsWith("on_semi_sync_")),
          [],
          `${next} reported no fallback`,
        )

        // Every dashboard query runs on the real Prometheus (Grafana's variables filled in).
        const dashboard = JSON.parse(
          readFileSync(join(repo, "packaging/grafana/mha-agent-dashboard.json"), "utf8"),
        ) as { panels: Array<{ targets?: Array<{ expr: string }>; panels?: unknown[] }> }
        const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
        let withData = 0
        for (const e of exprs) {
          const r = await promQuery(
            c,
            e.replaceAll("$__rate_interval", "1m").replaceAll("$cluster", `lab-${c.lab.id}`),
          )
          if (r.length > 0) withData += 1
        }
        console.log(
          `alerts: fallback reported on ${primary} ${reportedMs} ms after the IO threads stopped (${reported}); restored ${restoredMs} ms after they started; Prometheus fired MhaSemiSyncFallback ${JSON.stringify(fallbackAlert[0]?.metric)}; ` +
            `failover: MhaNoPrimary firing ${noPrimaryMs} ms after ${primary} was isolated: ${JSON.stringify(noPrimary)}; max(mha_is_active) then: ${JSON.stringify(isActive)}; ${next} ACTIVE after ${promotedMs} ms; old primary ${old}; ` +
            `${result.acked} acknowledged writes, none lost; dashboard: ${exprs.length} queries ran, ${withData} with data; whole test ${Math.round((Date.now() - startedAt) / 1000)} s after the cluster was up`,
        )
      },
    )
    rmSync(hooks.dir, { recursive: true, force: true })
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e)
    throw new Error(`${message} (hook events kept in ${hooks.dir})`, { cause: e })
  } finally {
    rmSync(promDir, { recursive: true, force: true })
  }
})
