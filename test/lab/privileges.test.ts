// Issue 10 item 3: a node whose agent's MySQL user lacks a privilege its
// actions need never stands for election. On one cluster: each required
// privilege is revoked in turn on db2 (the best-ranked replica: highest
// priority after db1), its agent must name it (status, /health, metric, log)
// and say it will not stand; then granted back. Then, with
// SYSTEM_VARIABLES_ADMIN revoked on db2, the primary's mysqld is stopped for
// good: db3 must be elected, db2 must not even ask (before the fix db2 won
// and aborted at the semi-sync step).
import assert from "node:assert/strict"
import { readFileSync, statSync } from "node:fs"
import { test } from "node:test"
import { REQUIRED_PRIVILEGES } from "../../agent/src/adapters/mysql-actuator.ts"
import { type LabCluster, runScenario } from "./cluster.ts"
import { waitFor } from "./exec.ts"
import { agentHttp } from "./http-client.ts"
import { LAB_USERS } from "./lab.ts"

const BEST = "db2"
const OTHER = "db3"
const AGENT = `'${LAB_USERS.agent.user}'@'%'`
/** What the lab grants the agent's user (test/lab/lab.ts), SUPER excepted. */
const LAB_GRANTED = new Set([
  "SELECT",
  "RELOAD",
  "PROCESS",
  "REPLICATION SLAVE",
  "REPLICATION CLIENT",
  "SYSTEM_VARIABLES_ADMIN",
  "SESSION_VARIABLES_ADMIN",
  "REPLICATION_SLAVE_ADMIN",
  "CONNECTION_ADMIN",
  "BACKUP_ADMIN",
  "CLONE_ADMIN",
  "REPLICATION_APPLIER",
])

/**
 * GRANT or REVOKE on one replica only: not binlogged (no errant GTID), with
 * super_read_only lifted for the statement and read_only kept ON (the sampler
 * never sees the node writable). Retried if the agent fenced in between.
 */
const onlyHere = async (c: LabCluster, host: string, sql: string): Promise<void> => {
  let last: unknown
  for (let attempt = 0; attempt < 5; attempt++) {
    const conn = await c.lab.connect(host)
    try {
      await conn.query("SET SESSION sql_log_bin = 0")
      await conn.query("SET GLOBAL super_read_only = OFF")
      await conn.query(sql)
      return
    } catch (e) {
      last = e
    } finally {
      await conn.query("SET GLOBAL super_read_only = ON").catch(() => {})
      await conn.end().catch(() => {})
    }
  }
  throw new Error(`${sql} on ${host} failed: ${String(last)}`)
}

interface Status {
  readonly role: string
  readonly electionStatus: string
  readonly missingPrivileges?: ReadonlyArray<string>
}

const statusOf = async (c: LabCluster, host: string): Promise<Status> => {
  const r = await c.agents.cli(host, ["status", "--json"])
  return (JSON.parse(r.stdout) as { status: Status }).status
}

/** Revokes, has the agent check again (reload), and waits until it names what is missing. */
const revokeAndWait = async (c: LabCluster, privileges: ReadonlyArray<string>, expect: string) => {
  await onlyHere(c, BEST, `REVOKE ${privileges.join(", ")} ON *.* FROM ${AGENT}`)
  await c.agents.cli(BEST, ["reload"])
  let seen: Status | undefined
  await waitFor(
    `${BEST}'s agent to report ${expect} missing`,
    async () => {
      seen = await statusOf(c, BEST)
      return seen.missingPrivileges?.includes(expect) === true
    },
    20_000,
    300,
  ).catch((e) => {
    throw new Error(`${String(e)}; last status ${JSON.stringify(seen)}`)
  })
  return seen!
}

const grantAndWait = async (c: LabCluster, privileges: ReadonlyArray<string>) => {
  await onlyHere(c, BEST, `GRANT ${privileges.join(", ")} ON *.* TO ${AGENT}`)
  await c.agents.cli(BEST, ["reload"])
  let seen: Status | undefined
  await waitFor(
    `${BEST}'s agent to report every privilege granted, STANDBY again`,
    async () => {
      seen = await statusOf(c, BEST)
      return seen.missingPrivileges?.length === 0 && seen.role === "STANDBY"
    },
    30_000,
    300,
  ).catch((e) => {
    throw new Error(`${String(e)}; last status ${JSON.stringify(seen)}`)
  })
}

test(
  "issue 10.3: a node lacking a needed privilege names it and never stands; the healthy replica is elected",
  { timeout: 480_000 },
  () =>
    runScenario(
      { slug: "privileges", timings: { restart_timeout: "10s", apply_timeout: "10s" } },
      async (c) => {
        const primary = await c.waitForPrimary(10_000)
        assert.equal(primary, "db1")
        const before = await statusOf(c, BEST)
        assert.deepEqual(before.missingPrivileges, [], "the lab's grants are complete")

        // Each privilege in turn: named in status, /health, the metric and the log; not standing.
        for (const r of REQUIRED_PRIVILEGES) {
          const revoke = r.anyOf.filter((p) => LAB_GRANTED.has(p))
          assert.ok(revoke.length > 0, `the lab grants ${r.privilege}`)
          const seen = await revokeAndWait(c, revoke, r.privilege)
          // Without REPLICATION CLIENT a new probe connection is denied (the node is then FAIL,
          // not restarted); the probe's open connection keeps its privileges until it reconnects.
          const lacks = `lacks .*${r.privilege}.*: it could not promote`
          assert.match(
            seen.electionStatus,
            new RegExp(r.forProbe === true ? `local mysqld is not up|${lacks}` : lacks),
            `${r.privilege}: ${seen.electionStatus}`,
          )
          const health = await agentHttp(c.lab, BEST, "/health")
          assert.equal(health.status, 503, `${r.privilege}: /health ${health.body}`)
          assert.ok(health.body.includes(r.privilege), `${r.privilege}: /health ${health.body}`)
          const metrics = await agentHttp(c.lab, BEST, "/metrics")
          assert.ok(
            metrics.body.includes(`mha_mysql_privilege_missing{privilege="${r.privilege}"} 1`),
            `${r.privilege}: metric`,
          )
          const log = readFileSync(c.agents.logPath(BEST), "utf8")
          assert.ok(
            log.includes(`lacks ${r.privilege}, needed by`),
            `${r.privilege}: named in the agent's log`,
          )
          await grantAndWait(c, revoke)
          console.log(`${r.privilege}: named in status, /health, metric and log; granted back`)
        }

        // The failover: db2 lacks SYSTEM_VARIABLES_ADMIN (it would abort at the semi-sync step).
        await revokeAndWait(c, ["SYSTEM_VARIABLES_ADMIN"], "SYSTEM_VARIABLES_ADMIN")
        const logFrom = statSync(c.agents.logPath(BEST)).size
        const faultAt = Date.now()
        await c.lab.inject({ _tag: "StopMysqld", host: primary })
        const next = await c.waitForPrimary(60_000, primary)
        const standing = readFileSync(c.agents.logPath(BEST), "utf8")
          .slice(logFrom)
          .split("\n")
          .filter((l) => /"event":"(pre-vote|election|elected|promotion-aborted)"/.test(l))
        assert.equal(next, OTHER, `the healthy replica is elected, not ${next}`)
        assert.deepEqual(standing, [], `${BEST} never asked for votes`)
        await c.waitForWritesAfter(faultAt, 30_000)
        // The operator grants it back (its repoint to the new primary sets semi-sync), fixes db1.
        await onlyHere(c, BEST, `GRANT SYSTEM_VARIABLES_ADMIN ON *.* TO ${AGENT}`)
        await c.agents.cli(BEST, ["reload"])
        await c.lab.inject({ _tag: "StartMysqld", host: primary })
        const result = await c.check(faultAt)
        assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
        console.log(
          `failover with SYSTEM_VARIABLES_ADMIN revoked on ${BEST}: ${next} elected, write downtime ${result.downtimeMs} ms, ${result.acked} acknowledged writes, none lost`,
        )
      },
    ),
)
