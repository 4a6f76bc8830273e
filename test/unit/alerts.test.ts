// The Prometheus alerting rules and the Grafana dashboard shipped in the
// packages (packaging/prometheus/, packaging/grafana/):
// - `promtool check rules` and `promtool test rules` on the shipped files
//   (Debian's prometheus package, installed by scripts/setup.sh): each alert
//   fires when its unit test says, names its cluster, and resolves;
// - every alert has a unit test, and every metric the rules read is one the
//   agent serves on /metrics (a renamed metric breaks this test, not the
//   operator's alerting);
// - the dashboard is valid JSON, every metric family of /metrics is drawn by
//   some panel, and every panel query parses (promtool, as recording rules).
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, test } from "node:test"
import { parse, stringify } from "yaml"
import { renderMetrics } from "../../agent/src/daemon/metrics.ts"

const repo = join(import.meta.dirname, "../..")
const RULES = join(repo, "packaging/prometheus/mha-agent-alerts.yml")
const RULE_TESTS = join(repo, "packaging/prometheus/mha-agent-alerts.test.yml")
const DASHBOARD = join(repo, "packaging/grafana/mha-agent-dashboard.json")

/** promtool, or a failure that says how to get it (never a skip). */
const promtool = (args: ReadonlyArray<string>, cwd: string) => {
  const r = spawnSync("promtool", args, { cwd, encoding: "utf8", timeout: 60_000 })
  if (r.error !== undefined)
    throw new Error(
      `promtool ${args[0]} ${args[1]}: ${r.error.message} (install Debian's prometheus package: bash scripts/setup.sh)`,
    )
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

/** Every metric family /metrics serves (HELP and TYPE are written even without samples). */
const families = (): ReadonlySet<string> =>
  new Set(
    renderMetrics({ cluster: "c", node: "n", state: undefined })
      .split("\n")
      .filter((l) => l.startsWith("# TYPE "))
      .map((l) => l.split(" ")[2]!),
  )

/** The mha_ metric names a PromQL expression reads (a summary's _sum / _count as its family). */
const metricsIn = (expr: string): ReadonlyArray<string> =>
  [...expr.matchAll(/\bmha_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(sum|count)$/, ""))

interface Rule {
  readonly alert: string
  readonly expr: string
  readonly for?: string
  readonly labels?: Record<string, string>
  readonly annotations?: Record<string, string>
}
const rules = (): ReadonlyArray<Rule> =>
  (parse(readFileSync(RULES, "utf8")) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap(
    (g) => g.rules,
  )

describe("the shipped Prometheus alerts", () => {
  test("promtool check rules and promtool test rules pass", () => {
    const check = promtool(["check", "rules", RULES], repo)
    assert.equal(check.status, 0, check.output)
    const run = promtool(
      ["test", "rules", "mha-agent-alerts.test.yml"],
      join(repo, "packaging/prometheus"),
    )
    console.log(run.output.trim())
    assert.equal(run.status, 0, run.output)
    assert.match(run.output, /SUCCESS/)
  })

  test("every alert has a unit test, a severity and a summary, and reads only metrics /metrics serves", () => {
    const served = families()
    const tests = parse(readFileSync(RULE_TESTS, "utf8")) as {
      tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>
    }
    const firing = new Set(
      tests.tests.flatMap((t) =>
        t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname),
      ),
    )
    const all = rules()
    assert.ok(all.length >= 15, `${all.length} alerts`)
    for (const r of all) {
      assert.ok(firing.has(r.alert), `${r.alert} has a unit test in which it fires`)
      assert.match(r.labels?.severity ?? "", /^(critical|warning|info)$/, `${r.alert} severity`)
      assert.ok((r.annotations?.summary ?? "").length > 0, `${r.alert} summary`)
      for (const m of metricsIn(r.expr))
        assert.ok(served.has(m), `${r.alert} reads ${m}, which /metrics does not serve`)
    }
    // The list (15 item 6) is covered.
    for (const name of [
      "MhaNoPrimary",
      "MhaFailoverHappened",
      "MhaRecoveryBlocked",
      "MhaReplicaLagWarning",
      "MhaReplicaLagCritical",
      "MhaSplitBrainFence",
      "MhaSemiSyncOff",
      "MhaSemiSyncFallback",
      "MhaPrivilegeMissing",
      "MhaAgentDown",
      "MhaCertificateExpiringSoon",
    ])
      assert.ok(
        all.some((r) => r.alert === name),
        `${name} is shipped`,
      )
  })
})

interface Panel {
  readonly id: number
  readonly type: string
  readonly title: string
  readonly gridPos?: { h: number; w: number; x: number; y: number }
  readonly targets?: ReadonlyArray<{ expr: string; refId: string }>
  readonly panels?: ReadonlyArray<Panel>
}

describe("the shipped Grafana dashboard", () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
    title: string
    uid: string
    panels: ReadonlyArray<Panel>
    templating: { list: ReadonlyArray<{ name: string }> }
  }
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])])
  const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })))

  test("valid JSON with a uid, the datasource and cluster variables, unique panel ids, a place for each panel", () => {
    assert.equal(dashboard.uid, "mha-agent")
    assert.deepEqual(
      dashboard.templating.list.map((v) => v.name),
      ["datasource", "cluster"],
    )
    const ids = panels.map((p) => p.id)
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique")
    for (const p of panels) {
      assert.ok(
        p.gridPos !== undefined && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24,
        `${p.title}: gridPos`,
      )
      if (p.type !== "row") assert.ok((p.targets ?? []).length > 0, `${p.title} has a query`)
    }
  })

  test("every metric family of /metrics is drawn by some panel, and no panel reads a metric that does not exist", () => {
    const served = families()
    const used = new Set(queries.flatMap((q) => metricsIn(q.expr)))
    const missing = [...served].filter((f) => !used.has(f))
    assert.deepEqual(missing, [], `families no panel draws: ${missing.join(", ")}`)
    const unknown = [...used].filter((m) => !served.has(m))
    assert.deepEqual(
      unknown,
      [],
      `panels read metrics /metrics does not serve: ${unknown.join(", ")}`,
    )
  })

  test("every panel query parses (promtool check rules, each query as a recording rule)", () => {
    const dir = mkdtempSync(join(tmpdir(), "mha-dashboard-"))
    try {
      const file = join(dir, "queries.yml")
      const asRules = queries.map((q, i) => ({
        record: `dashboard:query_${i}`,
        // Grafana's variables, as a dashboard would fill them in.
        expr: q.expr.replaceAll("$__rate_interval", "1m").replaceAll("$cluster", "prod"),
      }))
      writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules: asRules }] }))
      const check = promtool(["check", "rules", file], dir)
      assert.equal(check.status, 0, check.output)
      assert.match(check.output, new RegExp(`SUCCESS: ${queries.length} rules found`))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
