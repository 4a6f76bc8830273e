// The agent as operators run it (issue 14): installed from the .deb with apt
// on booted hosts (systemd as PID 1, Debian's mysql-server as mysql.service,
// polkitd), started with systemctl, logging to journald. One cluster of
// three booted hosts serves every check, in order; each check ends with the
// invariants of lab.md over the whole run so far (no acknowledged write
// lost, never two writable nodes, convergence).
import assert from "node:assert/strict"
import { rm, writeFile } from "node:fs/promises"
import { test } from "node:test"
import { stringify } from "yaml"
import { BootedCluster } from "./booted-cluster.ts"
import { sleep, waitFor } from "./exec.ts"
import { agentHttp } from "./http-client.ts"
import { VIP } from "./network.ts"

const log = (line: string) => console.log(`# ${line}`)

/** The agent's journal lines on a host: PRIORITY and the pino record in MESSAGE. */
const agentRecords = async (c: BootedCluster, host: string) =>
  (await c.journal(host)).map((j) => {
    let rec: Record<string, unknown> = {}
    try {
      rec = JSON.parse(j.MESSAGE ?? "") as Record<string, unknown>
    } catch {
      // systemd's own lines about the unit (Started ..., Main process exited ...)
    }
    return { priority: j.PRIORITY ?? "", message: j.MESSAGE ?? "", rec }
  })

const macOf = async (c: BootedCluster, host: string): Promise<string> => {
  const r = await c.lab.exec(host, ["cat", "/sys/class/net/eth0/address"])
  return r.stdout.trim()
}

/**
 * ARP packets seen in the client namespace for `seconds` (a raw AF_PACKET
 * socket in perl, which every Debian has): "op sender-mac sender-ip target-ip".
 */
const captureArp = async (c: BootedCluster, seconds: number): Promise<string[]> => {
  const script =
    'socket(S, 17, 3, 0x0608) or die "socket: $!"; $| = 1; $end = time + $ARGV[0];' +
    'while (time < $end) { $r = ""; vec($r, fileno(S), 1) = 1; next unless select($r, undef, undef, 0.5);' +
    'sysread(S, $b, 2048); ($op, $sha, $spa, $tha, $tpa) = unpack("x20 n a6 a4 a6 a4", $b);' +
    'printf "%d %s %s %s\\n", $op, join(":", map { sprintf "%02x", $_ } unpack("C6", $sha)),' +
    'join(".", unpack("C4", $spa)), join(".", unpack("C4", $tpa)) }'
  const r = await c.lab.exec("client", ["perl", "-e", script, String(seconds)])
  return r.stdout.split("\n").filter((l) => l !== "")
}

/** Gratuitous ARP for the VIP from `mac`: sender and target address both the VIP. */
const gratuitousFrom = (lines: ReadonlyArray<string>, mac: string): string[] =>
  lines.filter((l) => {
    const [, sha, spa, tpa] = l.split(" ")
    return sha === mac && spa === VIP && tpa === VIP
  })

/** The longest gap between acknowledged writes through the VIP inside [from, to]. */
const longestGap = (c: BootedCluster, from: number, to: number): number => {
  const acked = c.writes().acked.filter((a) => a.t >= from && a.t <= to)
  let worst = acked.length === 0 ? to - from : acked[0]!.t - from
  for (let i = 1; i < acked.length; i++) worst = Math.max(worst, acked[i]!.t - acked[i - 1]!.t)
  return worst
}

test("booted hosts: the .deb under systemd, polkit and journald", {
  timeout: 15 * 60_000,
}, async (t) => {
  const started = Date.now()
  // Restarts time out sooner than the defaults (as in the acceptance tests),
  // and the anti-flap block is short, so that scenario 2's failover is not
  // blocked if an earlier check failed over, and scenario 3's waits little.
  const c = await BootedCluster.up({
    log,
    timings: { restart_timeout: "10s", apply_timeout: "10s", recovery_block_period: "10s" },
  })
  let failed = false
  // A failed step is recorded (and the logs kept at the end); the next steps still run.
  const step = (name: string, body: () => Promise<void>) =>
    t.test(name, async () => {
      try {
        await body()
      } catch (e) {
        failed = true
        throw e
      }
    })
  try {
    log(
      `root ${(c.times.rootMs / 1000).toFixed(1)} s; apt-get install to an ACTIVE primary ${(c.times.installToActiveMs / 1000).toFixed(1)} s (the guide's steps), systemctl enable --now to it ${(c.times.startToActiveMs / 1000).toFixed(1)} s`,
    )
    // The end of the last automatic failover: the next one waits out recovery_block_period (10 s).
    let failoverAt = 0
    let primary = await c.waitForPrimary(10_000)

    await step("installed by apt, enabled and active under systemd", async () => {
      for (const h of c.lab.hosts) {
        const enabled = await c.tryIn(h.name, ["systemctl", "is-enabled", "mha-agent"])
        const active = await c.tryIn(h.name, ["systemctl", "is-active", "mha-agent"])
        assert.equal(enabled.stdout.trim(), "enabled", `${h.name}: mha-agent is ${enabled.stdout}`)
        assert.equal(active.stdout.trim(), "active", `${h.name}: mha-agent is ${active.stdout}`)
        const user = await c.in(h.name, [
          "ps",
          "-o",
          "user=",
          "-p",
          String(await c.mainPid(h.name, "mha-agent")),
        ])
        assert.equal(user.stdout.trim(), "mha-agent")
      }
    })

    await step(
      "the VIP and gratuitous ARP under ambient capabilities and NoNewPrivileges",
      async () => {
        const pid = await c.mainPid(primary, "mha-agent")
        const status = (await c.in(primary, ["cat", `/proc/${pid}/status`])).stdout
        const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, "m").exec(status)?.[1]
        // CAP_NET_ADMIN (12) and CAP_NET_RAW (13), nothing else, and no way to gain more.
        assert.equal(BigInt(`0x${field("CapAmb")}`), 0x3000n, status)
        assert.equal(BigInt(`0x${field("CapBnd")}`), 0x3000n, status)
        assert.equal(field("NoNewPrivs"), "1", status)
        assert.ok(await c.holdsVip(primary), `${primary} does not hold the VIP`)
        // The agent repeats its gratuitous ARP every garp_refresh (10 s by default).
        const mac = await macOf(c, primary)
        const arp = await captureArp(c, 12)
        const garp = gratuitousFrom(arp, mac)
        log(
          `client saw ${garp.length} gratuitous ARP packets for ${VIP} from ${primary} (${mac}) in 12 s`,
        )
        assert.ok(
          garp.length > 0,
          `no gratuitous ARP from ${mac} seen by the client:\n${arp.join("\n")}`,
        )
        const neigh = (await c.lab.exec("client", ["ip", "neigh", "show", VIP])).stdout
        assert.match(neigh, new RegExp(`lladdr ${mac}`), neigh)
        const metrics = await agentHttp(c.lab, primary, "/metrics")
        assert.match(metrics.body, /mha_vip_garp_bursts_total\{result="failed"\} 0\n/)
      },
    )

    await step(
      "scenario 1: mysqld killed, the agent restarts mysql.service through polkit, no failover",
      async () => {
        primary = await c.waitForPrimary(30_000)
        // Debian's unit restarts mysqld itself (Restart=on-failure) and can win
        // the race; with Restart=no only the agent's `systemctl restart mysql`
        // (as user mha-agent, allowed by the shipped polkit rule) brings it back.
        const dropIn = c.pathIn(primary, "/etc/systemd/system/mysql.service.d/no-restart.conf")
        await c.in(primary, ["mkdir", "-p", "/etc/systemd/system/mysql.service.d"])
        await writeFile(dropIn, "[Service]\nRestart=no\n")
        await c.in(primary, ["systemctl", "daemon-reload"])
        try {
          const before = (await agentRecords(c, primary)).length
          const faultAt = Date.now()
          await c.in(primary, ["kill", "-9", String(await c.mainPid(primary, "mysql"))])
          let restarted: Awaited<ReturnType<typeof agentRecords>> = []
          await waitFor(
            "the agent to restart mysqld",
            async () => {
              restarted = (await agentRecords(c, primary))
                .slice(before)
                .filter((r) => r.rec.event === "mysqld-restart")
              return restarted.length > 0
            },
            90_000,
            500,
          )
          log(`agent's restart line: ${restarted.map((r) => r.message).join(" | ")}`)
          assert.ok(
            restarted.some((r) => r.rec.msg === "mysqld restarted"),
            "the agent's restart of mysqld failed",
          )
          await c.waitForWritesAfter(Date.now(), 60_000)
          assert.equal(await c.primary(), primary, "failover after a restartable mysqld crash")
          const r = await c.check(faultAt)
          log(`scenario 1: write downtime ${r.downtimeMs} ms, ${r.acked} acknowledged writes`)
          assert.deepEqual(r.problems, [])
        } finally {
          await rm(dropIn, { force: true })
          await c.in(primary, ["systemctl", "daemon-reload"])
        }
      },
    )

    await step("journald holds the agent's lines with PRIORITY 3, 4 and 6", async () => {
      const records = await agentRecords(c, primary)
      const priorities = new Set(records.map((r) => r.priority))
      for (const p of ["3", "4", "6"]) assert.ok(priorities.has(p), `no PRIORITY ${p} line`)
      const j = await c.journal(primary)
      assert.ok(
        j.every(
          (e) =>
            e.SYSLOG_IDENTIFIER === "mha-agent" ||
            e._PID === "1" ||
            e.SYSLOG_IDENTIFIER === "systemd",
        ),
      )
      const sample = records.filter((r) => ["3", "4"].includes(r.priority)).slice(-4)
      for (const s of sample) log(`journal PRIORITY=${s.priority} ${s.message.slice(0, 200)}`)
    })

    await step("kill -9 of the agent: systemd brings it back, no failover", async () => {
      primary = await c.waitForPrimary(30_000)
      const pid = await c.mainPid(primary, "mha-agent")
      const faultAt = Date.now()
      await c.in(primary, ["kill", "-9", String(pid)])
      await waitFor(
        "systemd to restart the agent",
        async () => {
          const now = await c.mainPid(primary, "mha-agent")
          return now !== 0 && now !== pid
        },
        30_000,
        200,
      )
      const restarts = await c.in(primary, [
        "systemctl",
        "show",
        "-p",
        "NRestarts",
        "--value",
        "mha-agent",
      ])
      assert.ok(Number(restarts.stdout.trim()) >= 1, `NRestarts=${restarts.stdout}`)
      // As scenario 5 of the plain lab: the restarted agent leads its own mysqld again.
      await waitFor(
        `${primary}'s restarted agent to answer status as the leader`,
        async () => {
          const r = await c.tryIn(primary, ["mha-agent", "status", "--json"])
          if (r.code !== 0) return false
          const { status } = JSON.parse(r.stdout) as {
            status: { leader?: string; leaderActive?: boolean }
          }
          return status.leader === primary && status.leaderActive === true
        },
        30_000,
        500,
      )
      await c.waitForWritesAfter(Date.now(), 30_000)
      await sleep(2_000)
      assert.equal(await c.primary(), primary, "failover after the agent was killed and restarted")
      const r = await c.check(faultAt)
      log(`agent killed: write downtime ${r.downtimeMs} ms`)
      assert.deepEqual(r.problems, [])
    })

    await step("systemctl reload applies a changed config", async () => {
      primary = await c.waitForPrimary(30_000)
      const file = c.pathIn(primary, "/etc/mha-agent/config.yaml")
      const config = c.agentConfig(primary, c.timings)
      await writeFile(file, stringify({ ...config, log: { level: "debug" } }))
      const before = (await agentRecords(c, primary)).length
      await c.in(primary, ["systemctl", "reload", "mha-agent"])
      let reloaded = ""
      await waitFor(
        "the agent to log the reload",
        async () => {
          const after = (await agentRecords(c, primary)).slice(before)
          reloaded = after.find((r) => r.rec.event === "reloaded")?.message ?? ""
          return reloaded !== ""
        },
        20_000,
        500,
      )
      log(`reload: ${reloaded}`)
      assert.match(reloaded, /changing live.*log\.level: \\"info\\" -> \\"debug\\"/)
      await writeFile(file, stringify(config))
      await c.in(primary, ["systemctl", "reload", "mha-agent"])
    })

    await step("systemctl stop mha-agent on the primary hands over", async () => {
      primary = await c.waitForPrimary(30_000)
      const faultAt = Date.now()
      await c.in(primary, ["systemctl", "stop", "mha-agent"], 90_000)
      const next = await c.waitForPrimary(30_000, primary)
      await c.waitForWritesAfter(Date.now(), 30_000)
      const stopped = (await agentRecords(c, primary)).filter((r) => r.rec.event === "stopped")
      log(`stop: ${primary} -> ${next}; ${stopped.map((r) => r.message.slice(0, 200)).join(" | ")}`)
      await c.in(primary, ["systemctl", "start", "mha-agent"])
      const r = await c.check(faultAt)
      log(`handover on stop: write downtime ${r.downtimeMs} ms`)
      assert.deepEqual(r.problems, [])
      primary = next
    })

    await step("scenario 2: mysqld cannot restart, failover", async () => {
      primary = await c.waitForPrimary(30_000)
      const old = primary
      const oldMac = await macOf(c, old)
      // Debian's start script refuses to start a frozen MySQL: neither
      // systemd's restart nor the agent's can bring it back.
      await writeFile(c.pathIn(old, "/etc/mysql/FROZEN"), "lab: mysqld must not start\n")
      const faultAt = Date.now()
      const arp = captureArp(c, 25)
      await c.in(old, ["kill", "-9", String(await c.mainPid(old, "mysql"))])
      const next = await c.waitForPrimary(60_000, old)
      await c.waitForWritesAfter(faultAt, 30_000)
      const newMac = await macOf(c, next)
      const seen = await arp
      log(
        `scenario 2: ${old} -> ${next}; gratuitous ARP from the new holder: ${gratuitousFrom(seen, newMac).length}`,
      )
      assert.ok(gratuitousFrom(seen, newMac).length > 0, "the new holder sent no gratuitous ARP")
      assert.notEqual(newMac, oldMac)
      failoverAt = Date.now()
      const r = await c.check(faultAt)
      log(`scenario 2: write downtime ${r.downtimeMs} ms`)
      assert.deepEqual(r.problems, [])
      primary = next
      // Back as it was: the old primary rejoins (or its agent says DIVERGED).
      await rm(c.pathIn(old, "/etc/mysql/FROZEN"))
      await c.tryIn(old, ["systemctl", "reset-failed", "mysql"])
      await c.in(old, ["systemctl", "start", "mysql"], 120_000)
    })

    await step("scenario 8: switchover there and back with mha-agent switchover", async () => {
      const first = await c.waitForPrimary(30_000)
      // A switchover's target must be a caught-up replica of the primary, as
      // `status` on the primary shows it (scenario 2's old primary may still be rejoining).
      const standbyOf = async (on: string, source: string, host?: string) => {
        let found = ""
        await waitFor(
          `${on}'s agent to see ${host ?? "a replica"} replicating from ${source}`,
          async () => {
            const r = await c.tryIn(on, ["mha-agent", "status", "--json"])
            if (r.code !== 0) return false
            const { status } = JSON.parse(r.stdout) as {
              status: { members: Array<{ name: string; role: string; source: string | null }> }
            }
            found =
              status.members.find(
                (m) =>
                  m.role === "STANDBY" &&
                  m.source === source &&
                  (host === undefined || m.name === host),
              )?.name ?? ""
            return found !== ""
          },
          60_000,
          500,
        )
        return found
      }
      const target = await standbyOf(first, first)
      const faultAt = Date.now()
      const gaps: number[] = []
      for (const [from, to] of [
        [first, target],
        [target, first],
      ] as const) {
        if (to === first) await standbyOf(from, from, to)
        const at = Date.now()
        const r = await c.in(from, ["mha-agent", "switchover", "--to", to], 90_000)
        log(`switchover ${from} -> ${to}: ${r.stdout.trim()}`)
        assert.match(r.stdout, /transferred/)
        assert.equal(await c.waitForPrimary(30_000, from), to)
        await c.waitForWritesAfter(Date.now(), 30_000)
        gaps.push(longestGap(c, at, Date.now()))
        // The agents' part of the block, from their journals: the old primary fenced -> the target promoted.
        const eventAt = async (host: string, event: string) =>
          (await agentRecords(c, host))
            .filter((x) => x.rec.event === event)
            .map((x) => Date.parse(String(x.rec.time)))
            .filter((t) => t >= at)
            .at(-1)
        const converged = await eventAt(from, "switchover-converged")
        const promoted = await eventAt(to, "promoted")
        log(
          `switchover ${from} -> ${to}: agents' block ${converged !== undefined && promoted !== undefined ? promoted - converged : "?"} ms, write gap through the VIP ${gaps.at(-1)} ms`,
        )
      }
      const r = await c.check(faultAt)
      log(
        `scenario 8: ${first} -> ${target} -> ${first}; longest write gap through the VIP ${gaps.join(" ms, ")} ms`,
      )
      assert.deepEqual(r.problems, [])
      // As switchover-load.test.ts bounds it: the agents' block plus the client's reconnect after the VIP moved.
      for (const g of gaps) assert.ok(g < 4_000, `a switchover blocked writes for ${g} ms`)
    })

    await step(
      "scenario 3: the primary host isolated: it fences itself, a replica is elected, the VIP moves",
      async () => {
        const old = await c.waitForPrimary(30_000)
        const wait = failoverAt + 12_000 - Date.now()
        if (wait > 0) {
          log(`scenario 3: waiting ${wait} ms for scenario 2's anti-flap block to end`)
          await sleep(wait)
        }
        const before = (await agentRecords(c, old)).length
        const faultAt = Date.now()
        await c.lab.inject({ _tag: "Isolate", host: old })
        try {
          const next = await c.waitForPrimary(60_000, old)
          // Its own socket needs no network: the isolated node fenced itself.
          await waitFor(
            `${old} to be read-only`,
            async () => {
              const [row] = await c.lab
                .query<{ sro: number }>(old, "SELECT @@super_read_only AS sro")
                .catch(() => [])
              return Number(row?.sro) === 1
            },
            30_000,
            200,
          )
          assert.equal(await c.holdsVip(old), false, `the isolated ${old} still holds the VIP`)
          await c.waitForWritesAfter(faultAt, 30_000)
          const fenced = (await agentRecords(c, old))
            .slice(before)
            .filter((r) =>
              ["self-fenced", "resigned", "mysqld-killed", "vip-released"].includes(
                String(r.rec.event),
              ),
            )
          for (const f of fenced) log(`scenario 3, ${old}'s journal: ${f.message.slice(0, 200)}`)
          log(`scenario 3: ${old} isolated -> ${next}`)
        } finally {
          await c.lab.inject({ _tag: "Heal", hosts: [] })
        }
        const r = await c.checkRejoinedOrDiverged(faultAt)
        log(
          `scenario 3: write downtime ${r.downtimeMs} ms; after the heal ${old} ${r.diverged.includes(old) ? "is DIVERGED (its agent says so)" : "replicates again"}`,
        )
        assert.deepEqual(r.problems, [])
      },
    )

    const writes = c.writes()
    log(`writer: ${writes.acked.length} acknowledged, ${writes.errors} failed attempts`)
  } catch (e) {
    failed = true
    throw e
  } finally {
    if (failed) log(`logs kept in ${await c.keepLogs("booted-hosts")}`)
    const downAt = Date.now()
    await c.down()
    log(
      `booted-hosts test: ${((Date.now() - started) / 1000).toFixed(0)} s, of which teardown ${((Date.now() - downAt) / 1000).toFixed(1)} s`,
    )
  }
})
