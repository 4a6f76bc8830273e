// A rolling upgrade and downgrade between the previous release (dfc83b6, its
// own binary built once per commit: test/support/prev-release.ts) and this
// one, on the plain lab: agents of both versions in one cluster, a writer
// through the VIP throughout (issue 15 item 2, issue 14 item 2's last part).
//
//   all previous -> replicas upgraded -> switchover to an upgraded replica ->
//   the old primary upgraded (all current) -> a replica downgraded ->
//   FAILOVER (the primary's mysqld stops; the electorate is mixed) ->
//   the rest downgraded, with one more switchover (all previous again)
//
// Asserted: every agent of either version starts from the hard-state file the
// other wrote; exactly the planned handovers and the one injected failover in
// the record's history (no other failover); nothing acknowledged lost; never
// two writable.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import { ensurePreviousRelease } from "../support/prev-release.ts"
import { agentCommand } from "./agents.ts"
import { type LabCluster, runScenario } from "./cluster.ts"
import { sleep, waitFor } from "./exec.ts"

type Version = "previous" | "current"

test("rolling upgrade from the previous release and back, with a failover in the mixed cluster", {
  timeout: 420_000,
}, async () => {
  const release = await ensurePreviousRelease(undefined, (l) => console.log(l))
  const versions = new Map<string, Version>([
    ["db1", "previous"],
    ["db2", "previous"],
    ["db3", "previous"],
  ])
  const started = Date.now()
  const timeline: string[] = []
  const note = (what: string) => {
    const line = `+${((Date.now() - started) / 1000).toFixed(1)}s ${what} [${[...versions]
      .map(([h, v]) => `${h}:${v === "previous" ? "dfc83b6" : "current"}`)
      .join(" ")}]`
    timeline.push(line)
    console.log(line)
  }
  await runScenario(
    {
      slug: "mixed-versions",
      timings: { restart_timeout: "10s", apply_timeout: "10s" },
      command: (host) => (versions.get(host) === "previous" ? [release.binary] : agentCommand()),
      // The previous release's config has no kill_command (its reader refuses unknown keys).
      configFor: (host, config) => {
        if (versions.get(host) !== "previous") return config
        const { kill_command: _, ...service } = config.service as Record<string, unknown>
        return { ...config, service }
      },
    },
    async (c) => {
      note("cluster up, all agents dfc83b6")
      const first = await c.waitForPrimary(10_000)
      assert.equal(first, "db1")

      // --- upgrade: replicas first, then a switchover, then the old primary ---
      await setVersion(c, versions, "db3", "current", first)
      note("db3 upgraded")
      await setVersion(c, versions, "db2", "current", first)
      note("db2 upgraded")
      // The previous release leads agents of this one only. Theirs ride their acknowledgements
      // on heartbeats (protocol 1.5) only to a peer that takes them: the previous release gets
      // them apart, and its lease holds for two lease lengths (4 s each), with writes going on.
      const held = Date.now()
      await sleep(8_000)
      assert.equal(await c.primary(), "db1", "the previous release's primary kept its lease")
      assert.ok(c.writesAfter(held + 4_000) > 5, "writes went on")
      note("db1 (dfc83b6) kept its lease for 8 s, followed by current agents only")
      await switchover(c, first, "db2")
      note("switchover db1 -> db2 (planned handover 1)")
      await setVersion(c, versions, "db1", "current", "db2")
      note("db1 upgraded: all current")

      // --- downgrade, with a failover while the versions are mixed ---
      await setVersion(c, versions, "db3", "previous", "db2")
      note("db3 downgraded")
      // db1's and db3's agents have just restarted: each stands, and votes for another than the
      // recorded primary, only once it has caught up with the primary again (its mysqld may have
      // dropped relay logs while its agent was down; both releases). A primary lost before that
      // leaves no quorum but by `failover --force`; the test wants the automatic failover, so it
      // waits until neither says so any more.
      await waitFor(
        "db1 and db3 caught up with db2 since their agents restarted",
        async () => {
          for (const h of ["db1", "db3"]) {
            const why = await c.agents
              .cli(h, ["status", "--json"])
              .then((r) => (JSON.parse(r.stdout) as { status: { electionStatus?: string } }).status)
              .then((v) => v.electionStatus ?? "")
              .catch(() => "relay logs (no answer yet)")
            if (/relay logs/.test(why)) return false
          }
          return true
        },
        30_000,
        500,
      )
      const faultAt = Date.now()
      await c.lab.inject({ _tag: "StopMysqld", host: "db2" })
      note("db2's mysqld stopped (the primary)")
      const next = await c.waitForPrimary(60_000, "db2")
      note(`failover: ${next} is the primary`)
      await c.waitForWritesAfter(faultAt, 30_000)
      await c.lab.inject({ _tag: "StartMysqld", host: "db2" })
      await waitRole(c, "db2", "db2", "STANDBY", next)
      note("db2's mysqld back, a replica")
      await setVersion(c, versions, "db2", "previous", next)
      note("db2 downgraded")
      // The remaining current agent's host: hand the primary to a downgraded one first.
      let primary = next
      if (versions.get(primary) === "current") {
        await switchover(c, primary, "db2")
        note(`switchover ${primary} -> db2 (planned handover 2)`)
        primary = "db2"
      }
      for (const h of ["db1", "db2", "db3"]) {
        if (versions.get(h) === "current") {
          await setVersion(c, versions, h, "previous", primary)
          note(`${h} downgraded`)
        }
      }
      note("all dfc83b6 again")
      await c.waitForWritesAfter(Date.now(), 30_000)

      const result = await c.check(faultAt)
      const w = c.writes()
      note(
        `writer: ${w.acked.length} acknowledged, ${w.errors} failed; downtime after the failover ${result.downtimeMs} ms`,
      )
      assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)

      // Only the planned handovers and the injected failover, in the committed history.
      const record = (
        JSON.parse(
          readFileSync(join(c.lab.runDir(), primary, "state", "hard-state.json"), "utf8"),
        ) as {
          record: { history: Array<{ kind: string; oldPrimary: string; newPrimary: string }> }
        }
      ).record
      const history = record.history.map((h) => `${h.kind} ${h.oldPrimary}->${h.newPrimary}`)
      note(`history: ${history.join(", ")}`)
      assert.deepEqual(
        record.history.map((h) => h.kind),
        primary === next ? ["switchover", "failover"] : ["switchover", "failover", "switchover"],
        `no failover beyond the injected one: ${history.join(", ")}`,
      )
      console.log(`mixed-version timeline:\n  ${timeline.join("\n  ")}`)
    },
  )
})

/** The role `on`'s agent reports for `member`, waited for (20 s). */
const waitRole = (c: LabCluster, on: string, member: string, role: string, primary: string) =>
  waitFor(
    `${on}'s agent to report ${member} ${role} with ${primary} ACTIVE`,
    async () => {
      try {
        return (
          (await c.agentRole(on, member)) === role && (await c.agentRole(on, primary)) === "ACTIVE"
        )
      } catch {
        return false // the agent is starting: no control socket yet
      }
    },
    30_000,
    300,
  )

/**
 * Replaces a replica's agent by the other release, as an operator does one
 * host at a time: stop it (a replica's agent hands nothing over), check its
 * hard-state file is in a form the other release reads, start the other one,
 * wait until it sees the primary ACTIVE and itself STANDBY.
 */
const setVersion = async (
  c: LabCluster,
  versions: Map<string, Version>,
  host: string,
  to: Version,
  primary: string,
) => {
  assert.notEqual(host, primary, "only a replica's agent is replaced")
  await waitRole(c, host, host, "STANDBY", primary)
  await c.agents.stop(host)
  const file = join(c.lab.runDir(), host, "state", "hard-state.json")
  const doc = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>
  // A steady cluster's record is written in the 1.0 form: the previous release reads it.
  assert.equal(
    doc.format,
    undefined,
    `${host}'s hard state is in the 1.0 form: ${JSON.stringify(doc).slice(0, 300)}`,
  )
  versions.set(host, to)
  await c.agents.writeConfig(host)
  await c.agents.start(host)
  await waitRole(c, host, host, "STANDBY", primary)
}

const switchover = async (c: LabCluster, from: string, to: string) => {
  await waitRole(c, from, to, "STANDBY", from)
  // A replica whose agent just restarted is a target only once it has caught up with the
  // primary again (its mysqld may have dropped relay logs meanwhile) and replicates from it:
  // until then the primary refuses ("cannot stand for election now", "does not replicate
  // from"), with no write blocked, and the operator tries again.
  let r = { stdout: "", stderr: "" }
  await waitFor(
    `${from} to hand over to ${to}`,
    async () => {
      try {
        r = await c.agents.cli(from, ["switchover", "--to", to])
        return true
      } catch (e) {
        if (/switchover refused/.test(String(e))) return false
        throw e
      }
    },
    30_000,
    1_000,
  )
  assert.match(r.stdout, /transferred/, `switchover ${from} -> ${to}: ${r.stdout} ${r.stderr}`)
  assert.equal(await c.waitForPrimary(20_000, from), to)
  await c.waitForWritesAfter(Date.now(), 30_000)
}
