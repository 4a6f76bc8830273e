// Issue 10 item 1 (protocol.md section 9, "never release a waiting commit"):
// the primary's agent paused while its MySQL port is cut from both replicas
// (the agents' mesh is not cut), and clients that write to the primary's own
// address, not the VIP. The replicas elect a new primary after the lease; the
// old primary's commits wait for acknowledgements that cannot come. When its
// agent resumes it must fence itself without releasing any waiting commit:
// the app's session is killed (its client gets an error), a SYSTEM_USER
// session cannot be killed, so the fence cannot complete and mysqld is
// stopped hard (no OK is ever sent). It comes back read-only and DIVERGED.
// Before the fix the agent repointed itself and turned semi-sync off as a
// source while the fence pended: the waiting INSERT got OK and the row
// existed on no other node.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import { runScenario } from "./cluster.ts"
import { sleep, waitFor } from "./exec.ts"
import {
  missingAckedWrites,
  readSamplerLog,
  readWriterLog,
  splitBrainRounds,
} from "./invariants.ts"

const here = import.meta.dirname
const SPLIT_PROBLEM = "two writable nodes at once"
const SYS_USER = { user: "sysapp", password: "mha-lab-sysapp" }

test(
  "a paused primary's agent resumes cut off from its replicas: it fences without releasing a waiting commit, nothing acknowledged is lost",
  {
    timeout: 300_000,
  },
  () =>
    runScenario({ slug: "demotion-paused-agent" }, async (c) => {
      const { lab } = c
      const old = await c.waitForPrimary(10_000)
      // A second application user that the agent may not KILL (SYSTEM_USER).
      await lab.query(
        old,
        `CREATE USER '${SYS_USER.user}'@'%' IDENTIFIED WITH caching_sha2_password BY '${SYS_USER.password}'`,
      )
      await lab.query(old, `GRANT ALL ON app.* TO '${SYS_USER.user}'@'%'`)
      await lab.query(old, `GRANT SYSTEM_USER ON *.* TO '${SYS_USER.user}'@'%'`)
      await lab.waitReplicasCaughtUp(old)
      // Writers to the primary's own address; a long query timeout, so that the
      // client is still waiting when the agent resumes (as an application would).
      const direct = {
        app: join(lab.runDir(), "writer-direct-app.ndjson"),
        sys: join(lab.runDir(), "writer-direct-sys.ndjson"),
      }
      for (const [name, user] of [
        ["app", { user: "app", password: "mha-lab-app" }],
        ["sys", SYS_USER],
      ] as const) {
        await lab.spawn("client", `writer-direct-${name}`, [
          process.execPath,
          join(here, "client/writer.ts"),
          "--host",
          lab.host(old).address,
          "--user",
          user.user,
          "--password",
          user.password,
          "--query-timeout-ms",
          "60000",
          "--out",
          direct[name],
        ])
      }
      await waitFor(
        "acknowledged writes of both direct writers",
        () =>
          readWriterLog(direct.app).acked.length > 5 && readWriterLog(direct.sys).acked.length > 5,
        20_000,
      )

      const faultAt = Date.now()
      await lab.inject({ _tag: "Pause", host: old, process: "agent" })
      for (const h of lab.hosts.filter((x) => x.name !== old))
        await lab.inject({ _tag: "CutReplication", a: old, b: h.name })
      // The replicas elect after the lease; the old primary stays writable meanwhile
      // (nothing can fence it), but nothing can be acknowledged there.
      let next: string | undefined
      await waitFor(
        "a new primary holding the VIP while the old one is paused",
        async () => {
          for (const h of lab.hosts.filter((x) => x.name !== old)) {
            const v = await lab.view(h.name)
            if (v.up && v.superReadOnly === false && (await c.holdsVip(h.name))) next = h.name
          }
          return next !== undefined
        },
        20_000,
        100,
      )
      await sleep(Math.max(0, faultAt + 8_000 - Date.now()))
      const resumedAt = Date.now()
      await lab.inject({ _tag: "Resume", host: old, process: "agent" })
      // A pending fence already reads super_read_only = ON (semisync-behaviour.test.ts)
      // and writes wait behind it; done means read_only = ON as well. Here the fence
      // pends behind the SYSTEM_USER session's commit until fence_timeout (10 s),
      // then mysqld is stopped hard and comes back read-only.
      let pendingAt = 0
      let fencedAt = 0
      await waitFor(
        `${old} read-only again`,
        async () => {
          const v = await lab.view(old)
          if (v.up && v.superReadOnly === true && pendingAt === 0) pendingAt = Date.now()
          if (v.up && v.superReadOnly === true && v.readOnly === true) fencedAt = Date.now()
          return fencedAt > 0
        },
        40_000,
        100,
      )
      await lab.inject({ _tag: "Heal", hosts: [] })
      await sleep(3_000)
      for (const name of ["app", "sys"] as const)
        await lab.stopProcess("client", `writer-direct-${name}`)

      const result = await c.check(faultAt)
      // The old primary writable beside the new one while its agent was paused and
      // until its fence: expected, as long as no write could be acknowledged there.
      const splits = splitBrainRounds(readSamplerLog(c.samplerLog))
      const problems = result.problems.filter((p) => !p.startsWith(SPLIT_PROBLEM))
      for (const r of splits) {
        const writable = Object.entries(r.nodes)
          .filter(([, s]) => s === "writable")
          .map(([n]) => n)
        if (!writable.includes(old) || writable.length !== 2 || r.t > resumedAt + 1_000)
          problems.push(
            `two writable nodes other than the paused old primary: ${JSON.stringify(r)}`,
          )
      }
      const final = await c.waitForPrimary(10_000)
      for (const name of ["app", "sys"] as const) {
        const log = readWriterLog(direct[name])
        const missing = await missingAckedWrites(lab, final, log)
        if (missing.length > 0)
          problems.push(
            `${missing.length} writes acknowledged by ${old} to the ${name} client are missing on ${final}: ${missing.join(", ")}`,
          )
        const lateAcks = log.acked.filter((a) => a.t > faultAt + 1_000)
        if (lateAcks.length > 0)
          problems.push(
            `${old} acknowledged ${lateAcks.length} writes of the ${name} client after its replicas were cut off`,
          )
      }
      assert.deepEqual(problems, [], problems.join("; "))
      const agentLog = readFileSync(c.agents.logPath(old), "utf8")
      assert.match(
        agentLog,
        /fence-escalated/,
        "the SYSTEM_USER waiter could not be killed: the fence was escalated to a hard stop",
      )
      assert.ok(
        result.diverged.includes(old),
        `${old} holds the commits that waited unacknowledged: DIVERGED (diverged: ${result.diverged.join(", ")})`,
      )
      console.log(
        `demotion: new primary ${next}; after the resume the old primary's fence pended from +${((pendingAt - resumedAt) / 1000).toFixed(1)} s and it was read-only (stopped hard, restarted) at +${((fencedAt - resumedAt) / 1000).toFixed(1)} s; ${splits.length} sampler rounds saw it writable beside the new one, all while its agent was paused; nothing acknowledged lost; ${old} left DIVERGED`,
      )
    }),
)
