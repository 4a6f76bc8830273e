// The rolling upgrade of issue 14 item 2 as operators do it, on booted hosts
// (systemd, Debian's mysql-server, polkit). The hosts are set up by following
// this checkout's guide (packaging/README.package), whose day-1 commands the
// previous release (dfc83b6, built once per commit: test/support/prev-release.ts)
// does not have; so the cluster first goes down to the previous release's .deb
// one host at a time (`apt-get install --allow-downgrades`, `systemctl restart
// mha-agent`: the replicas first, a switchover, the old primary last), runs on
// it, and then comes up again to this checkout's .deb the same way. A writer runs throughout. Asserted: no
// failover (the record's history holds exactly the two planned switchovers),
// no acknowledged write lost, never two writable, and no write block beyond
// the switchovers'.
import assert from "node:assert/strict"
import { copyFile, mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import { test } from "node:test"
import { packagesUnderTest } from "../pkg/helpers.ts"
import { ensurePreviousRelease } from "../support/prev-release.ts"
import { BootedCluster } from "./booted-cluster.ts"
import { waitFor } from "./exec.ts"

const log = (line: string) => console.log(`# ${line}`)

interface StatusView {
  status: { leader: string | null; members: Array<{ name: string; role: string }> }
}

const status = async (c: BootedCluster, host: string): Promise<StatusView | undefined> => {
  const r = await c.tryIn(host, ["mha-agent", "status", "--json"])
  try {
    return JSON.parse(r.stdout) as StatusView
  } catch {
    return undefined // the agent is (re)starting
  }
}

/** `on`'s agent reports itself STANDBY and `primary` ACTIVE. */
const waitSteady = (c: BootedCluster, on: string, primary: string) =>
  waitFor(
    `${on}'s agent to report itself STANDBY and ${primary} ACTIVE`,
    async () => {
      const v = await status(c, on)
      const role = (n: string) => v?.status.members.find((m) => m.name === n)?.role
      return role(on) === (on === primary ? "ACTIVE" : "STANDBY") && role(primary) === "ACTIVE"
    },
    60_000,
    500,
  )

test("booted hosts: rolling upgrade of the .deb from the previous release, one host at a time, and back", {
  timeout: 15 * 60_000,
}, async () => {
  const previous = await ensurePreviousRelease(undefined, log)
  const scratch = await mkdtemp(join(tmpdir(), "mha-booted-upgrade-"))
  const started = Date.now()
  const timeline: string[] = []
  const versions = new Map<string, string>()
  const note = (what: string) => {
    const line = `+${((Date.now() - started) / 1000).toFixed(1)}s ${what} [${[...versions]
      .map(([h, v]) => `${h}:${v}`)
      .join(" ")}]`
    timeline.push(line)
    log(line)
  }
  let c: BootedCluster | undefined
  try {
    const current = await packagesUnderTest(scratch, log)
    c = await BootedCluster.up({
      deb: current.deb,
      timings: { restart_timeout: "10s", apply_timeout: "10s" },
      log,
    })
    const cluster = c
    const installed = async (host: string) =>
      // "mha-agent<TAB>VERSION"
      (await cluster.in(host, ["dpkg-query", "-W", "mha-agent"])).stdout.trim().split("\t")[1] ??
      "?"
    for (const h of cluster.lab.hosts) versions.set(h.name, await installed(h.name))
    note("cluster up from this checkout's .deb, by the guide")
    let primary = await cluster.waitForPrimary(30_000)
    assert.equal(primary, "db1")

    /**
     * apt-get install of one .deb on one host, the polkit rule it ships, a
     * restart of the agent. --force-confold: /etc/mha-agent/config.yaml is the
     * package's conffile, made this host's; when the shipped example changed
     * between the versions, dpkg would otherwise stop and ask on stdin.
     */
    const install = async (host: string, deb: string, downgrade: boolean) => {
      await copyFile(deb, cluster.pathIn(host, `/root/${basename(deb)}`))
      await cluster.in(
        host,
        [
          "sh",
          "-c",
          `DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold ${downgrade ? "--allow-downgrades " : ""}/root/${basename(deb)} ` +
            "&& cp /usr/share/doc/mha-agent/polkit-mha-agent.rules /etc/polkit-1/rules.d/50-mha-agent.rules " +
            "&& systemctl restart mha-agent",
        ],
        300_000,
      )
      versions.set(host, await installed(host))
      await waitSteady(cluster, host, primary)
    }
    const switchover = async (to: string) => {
      await waitSteady(cluster, to, primary)
      // A replica whose agent just restarted is a target only once it has caught up with the
      // primary again (its mysqld may have dropped relay logs meanwhile; both releases) and
      // replicates from it: until then the primary refuses ("cannot stand for election now",
      // "does not replicate from"), with no write blocked, and the operator tries again.
      let r = { code: 1, stdout: "", stderr: "" }
      await waitFor(
        `${primary} to hand over to ${to}`,
        async () => {
          r = await cluster.tryIn(primary, ["mha-agent", "switchover", "--to", to], 60_000)
          if (r.code === 0) return true
          if (/switchover refused/.test(r.stderr + r.stdout)) return false
          throw new Error(`switchover --to ${to}: ${r.stderr.trim()} ${r.stdout.trim()}`)
        },
        30_000,
        1_000,
      ).catch((e: unknown) => {
        throw new Error(`${e instanceof Error ? e.message : e}; last answer: ${r.stderr.trim()}`)
      })
      assert.match(r.stdout, /transferred/, r.stderr)
      assert.equal(await cluster.waitForPrimary(30_000, primary), to)
      note(`switchover ${primary} -> ${to}`)
      primary = to
      await cluster.waitForWritesAfter(Date.now(), 30_000)
    }

    // Down: db3, db2, switchover to db2, db1.
    for (const h of ["db3", "db2"]) {
      await install(h, previous.deb, true)
      note(`${h} downgraded`)
    }
    await switchover("db2")
    await install("db1", previous.deb, true)
    note("db1 downgraded: every host runs the previous release")
    await cluster.waitForWritesAfter(Date.now(), 30_000)
    // Up: db3, db1, switchover back to db1, db2.
    for (const h of ["db3", "db1"]) {
      await install(h, current.deb, false)
      note(`${h} upgraded`)
    }
    await switchover("db1")
    await install("db2", current.deb, false)
    note("db2 upgraded: every host runs this checkout's .deb again")
    await cluster.waitForWritesAfter(Date.now(), 30_000)

    const result = await cluster.check(started)
    const w = cluster.writes()
    note(
      `writer: ${w.acked.length} acknowledged, ${w.errors} failed; longest write block ${result.downtimeMs} ms`,
    )
    assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
    // A switchover blocks writes for about a second; a failover behind a lease, for many.
    assert.ok(result.downtimeMs < 15_000, `longest write block ${result.downtimeMs} ms`)
    const history = (
      JSON.parse(
        (await cluster.in(primary, ["cat", "/var/lib/mha-agent/hard-state.json"])).stdout,
      ) as { record: { history: Array<{ kind: string; oldPrimary: string; newPrimary: string }> } }
    ).record.history.map((h) => `${h.kind} ${h.oldPrimary}->${h.newPrimary}`)
    note(`history: ${history.join(", ")}`)
    assert.deepEqual(history, ["switchover db1->db2", "switchover db2->db1"], "no failover")
    log(`booted rolling upgrade timeline:\n#   ${timeline.join("\n#   ")}`)
  } catch (e) {
    if (c !== undefined) {
      const dir = await c.keepLogs("booted-upgrade")
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n(logs kept in ${dir})`, {
        cause: e,
      })
    }
    throw e
  } finally {
    await c?.down()
    await rm(scratch, { recursive: true, force: true })
  }
})
