// The pure parts of the mysql2 adapters: SHOW GRANTS parsing, the required
// privilege set, and the mapping of mysql2 errors (the lab test covers the
// rest against real MySQL).
import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect, Redacted } from "effect"
import {
  missingPrivileges,
  parseGrants,
  REQUIRED_PRIVILEGES,
} from "../../agent/src/adapters/mysql-actuator.ts"
import { connectionOptions, toMysqlError } from "../../agent/src/adapters/mysql-connection.ts"
import { committingOf, planRemoteProbe } from "../../agent/src/adapters/mysql-prober.ts"
import { formatGtidSet } from "../../agent/src/core/gtid.ts"

test("parseGrants reads global privileges (static and dynamic) and roles, not schema grants", () => {
  const g = parseGrants([
    "GRANT SELECT, RELOAD, PROCESS, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `mha`@`%`",
    "GRANT BACKUP_ADMIN,CLONE_ADMIN,CONNECTION_ADMIN ON *.* TO `mha`@`%`",
    "GRANT ALL PRIVILEGES ON `app`.* TO `mha`@`%`",
    "GRANT `ops`@`%`,`dba`@`localhost` TO `mha`@`%`",
  ])
  assert.deepEqual([...g.privileges].sort(), [
    "BACKUP_ADMIN",
    "CLONE_ADMIN",
    "CONNECTION_ADMIN",
    "PROCESS",
    "RELOAD",
    "REPLICATION CLIENT",
    "REPLICATION SLAVE",
    "SELECT",
  ])
  assert.deepEqual(g.roles, ["`ops`@`%`", "`dba`@`localhost`"])
})

test("missingPrivileges: the lab's agent grants are complete; each gap is named with its actions", () => {
  const full = parseGrants([
    "GRANT SELECT, RELOAD, PROCESS, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `mha`@`%`",
    "GRANT BACKUP_ADMIN,CLONE_ADMIN,CONNECTION_ADMIN,REPLICATION_APPLIER,REPLICATION_SLAVE_ADMIN,SESSION_VARIABLES_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `mha`@`%`",
  ])
  assert.deepEqual(missingPrivileges(full.privileges), [])
  const none = missingPrivileges(new Set())
  assert.deepEqual(
    none.map((m) => m.privilege),
    REQUIRED_PRIVILEGES.map((r) => r.privilege),
  )
  const noReload = missingPrivileges(new Set([...full.privileges].filter((p) => p !== "RELOAD")))
  assert.deepEqual(noReload, [
    { privilege: "RELOAD", anyOf: ["RELOAD"], neededBy: ["resetReplicaAll"], forProbe: false },
  ])
  // GTID_NEXT is satisfied by any of its alternatives.
  const viaApplier = new Set([...full.privileges].filter((p) => p !== "SESSION_VARIABLES_ADMIN"))
  assert.deepEqual(missingPrivileges(viaApplier), [])
  // ALL PRIVILEGES covers the static ones, not the dynamic ones.
  const all = missingPrivileges(new Set(["ALL PRIVILEGES"])).map((m) => m.privilege)
  assert.ok(!all.includes("PROCESS") && !all.includes("RELOAD"))
  assert.ok(all.includes("CLONE_ADMIN") && all.includes("BACKUP_ADMIN"))
})

test("toMysqlError keeps MySQL's code and message and never the SQL text", () => {
  const e = toMysqlError("repoint", "db2:3306", "query", {
    code: "ER_OPTION_PREVENTS_STATEMENT",
    errno: 1290,
    sqlState: "HY000",
    sqlMessage: "The MySQL server is running with the --super-read-only option",
    sql: "CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = 'hunter2'",
    message: "The MySQL server is running with the --super-read-only option",
  })
  assert.equal(e._tag, "MysqlError")
  assert.equal(e.kind, "server")
  assert.equal(e.errno, 1290)
  assert.equal(e.code, "ER_OPTION_PREVENTS_STATEMENT")
  assert.match(e.message, /repoint on db2:3306 .*1290/)
  assert.ok(!JSON.stringify(e).includes("hunter2"))
  assert.ok(!e.message.includes("hunter2"))
  const refused = toMysqlError("probe", "db1:3306", "connect", {
    code: "ECONNREFUSED",
    errno: -111,
    message: "connect ECONNREFUSED",
  })
  assert.equal(refused.kind, "connect")
  assert.equal(refused.errno, null, "a negative system errno is not a MySQL error code")
  const lost = toMysqlError("probe", "db1:3306", "query", {
    code: "PROTOCOL_CONNECTION_LOST",
    fatal: true,
    message: "Connection lost",
  })
  assert.equal(lost.kind, "connection-lost")
  assert.equal(
    toMysqlError("probe", "db1:3306", "connect", { code: "ETIMEDOUT", message: "x" }).kind,
    "timeout",
  )
})

test("every connection the agent opens keeps mysql2's prepared-statement cache at one entry (issue 12)", () => {
  const o = connectionOptions(
    { host: "10.0.0.1", port: 3306 },
    {
      user: "mha",
      password: Redacted.make("x"),
      connectTimeoutMs: 1000,
      queryTimeoutMs: 1000,
    },
  )
  assert.equal(o.maxPreparedStatements, 1)
})

test("planRemoteProbe: a kept connection between fresh ones every freshEveryMs; overlapping probes get their own", () => {
  const every = 5000
  const kept = (openedAt: number, target = "db1:3306", broken = false) => ({
    target,
    openedAt,
    broken,
  })
  // Nothing kept yet: connect, and keep it.
  assert.equal(planRemoteProbe(undefined, false, "db1:3306", 0, every), "Renew")
  // Probes every 500 ms: 9 on the kept connection, then a fresh one at 5 s.
  const plans: string[] = []
  let k = kept(0)
  for (let t = 500; t <= 10_000; t += 500) {
    const p = planRemoteProbe(k, false, "db1:3306", t, every)
    plans.push(p)
    if (p === "Renew") k = kept(t)
  }
  assert.deepEqual(
    plans.map((p, i) => (p === "Renew" ? (i + 1) * 500 : null)).filter((t) => t !== null),
    [5000, 10_000],
    "two fresh connections in 10 s, not twenty",
  )
  assert.equal(plans.filter((p) => p === "Kept").length, 18)
  // The primary changed, or the kept connection broke: connect afresh now.
  assert.equal(planRemoteProbe(kept(0), false, "db2:3306", 100, every), "Renew")
  assert.equal(planRemoteProbe(kept(0, "db1:3306", true), false, "db1:3306", 100, every), "Renew")
  // An earlier probe still uses it (a hung server): this one connects on its own, whatever is kept.
  assert.equal(planRemoteProbe(kept(0), true, "db1:3306", 100, every), "OneShot")
  assert.equal(planRemoteProbe(undefined, true, "db1:3306", 100, every), "OneShot")
})

test("committingOf: this server's own GTIDs in @@gtid_owned, without their owner threads; a bad value is a clear error", async () => {
  const own = "7636a8c3-f10d-11f1-bde2-02fc00000001"
  const other = "8f2b1c00-f10d-11f1-bde2-02fc00000002"
  const read = (owned: string) =>
    Effect.runPromise(Effect.result(committingOf("probe", "db1:3306", owned, own)))
  const one = await read(`${own}:3#19`)
  assert.equal(one._tag, "Success")
  if (one._tag === "Success") assert.equal(formatGtidSet(one.success), `${own}:3`)
  // A replica's applier owns its source's GTIDs: not this server's commits.
  const mixed = await read(`${own}:4#20,\n${other}:7#31,${own}:5#21`)
  if (mixed._tag === "Success") assert.equal(formatGtidSet(mixed.success), `${own}:4-5`)
  else assert.fail("parsed")
  const none = await read("")
  if (none._tag === "Success") assert.equal(formatGtidSet(none.success), "")
  else assert.fail("parsed")
  const bad = await read("not-a-gtid#3")
  assert.equal(bad._tag, "Failure")
  if (bad._tag === "Failure") assert.match(String(bad.failure.message), /@@gtid_owned/)
})
