// Day-1 commands (issue 14 item 3): make-certs makes a CA and member
// certificates the mesh accepts, with the modes the agent needs; check-config
// --files names a certificate that names another member, a foreign CA, a
// world-readable secret and a file the agent's user cannot read;
// mysql-accounts prints exactly the privileges the agent checks (PROCESS
// included); judgeMysql names each setting problem with its fix.
import assert from "node:assert/strict"
import { X509Certificate } from "node:crypto"
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { test } from "node:test"
import { certificateNames, identifyInbound } from "../../agent/src/adapters/mesh-identity.ts"
import { missingPrivileges, REQUIRED_PRIVILEGES } from "../../agent/src/adapters/mysql-actuator.ts"
import { lookupAccount, permits } from "../../agent/src/cli/check-files.ts"
import { bufferIo } from "../../agent/src/cli/io.ts"
import {
  accountsSql,
  judgeMysql,
  type MysqlFacts,
  superReadOnlyInMyCnf,
} from "../../agent/src/cli/mysql-setup.ts"
import { main } from "../../agent/src/main.ts"

const run = async (argv: string[]) => {
  const io = bufferIo()
  const code = await main(argv, io)
  return { code, stdout: io.stdout(), stderr: io.stderr() }
}

const tmp = async (t: { after: (f: () => Promise<void>) => void }) => {
  const dir = await mkdtemp(join(tmpdir(), "mha-day1-"))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const config = (dir: string, cert = "db1") => `cluster:
  name: prod
  members:
    - name: db1
      address: 10.0.0.11
      agent_port: 7946
    - name: db2
      address: 10.0.0.12
      agent_port: 7946
    - name: db3
      address: 10.0.0.13
      agent_port: 7946
node: db1
mysql:
  monitor:
    user: mha_monitor
    password_file: ${dir}/monitor.password
  replication:
    user: repl
    password_file: ${dir}/replication.password
  get_source_public_key: true
mesh:
  ca: ${dir}/tls/ca.pem
  cert: ${dir}/tls/${cert}.pem
  key: ${dir}/tls/${cert}.key
`

const namesOf = (pem: Buffer) => {
  const c = new X509Certificate(pem)
  return certificateNames({
    subject: { CN: c.subject.replace(/^.*CN=/s, "") },
    subjectaltname: c.subjectAltName,
  })
}

test("make-certs: a CA and one certificate per member, named as the mesh checks, with modes the agent accepts", async (t) => {
  const dir = await tmp(t)
  const tls = join(dir, "tls")
  const r = await run([
    "make-certs",
    "--dir",
    tls,
    "--members",
    "db1,db2,db3",
    "--group",
    "nogroup-x",
  ])
  assert.equal(r.code, 0, r.stderr)
  const ca = new X509Certificate(await readFile(join(tls, "ca.pem")))
  assert.ok(ca.ca)
  for (const m of ["db1", "db2", "db3"]) {
    const pem = await readFile(join(tls, `${m}.pem`))
    const cert = new X509Certificate(pem)
    assert.deepEqual(namesOf(pem), [m])
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${m} issued by the CA`)
    const id = identifyInbound(
      { subject: { CN: m }, subjectaltname: cert.subjectAltName },
      "zz", // the member whose name sorts last accepts
      new Set(["zz", m]),
    )
    assert.equal(id._tag, "Member")
    assert.equal((await stat(join(tls, `${m}.pem`))).mode & 0o777, 0o644)
    // No group nogroup-x here: the key is the owner's alone.
    assert.equal((await stat(join(tls, `${m}.key`))).mode & 0o777, 0o600)
  }
  assert.equal((await stat(join(tls, "ca.key"))).mode & 0o777, 0o600)
  assert.match(r.stdout, /made the cluster CA/)

  // A second run refuses to overwrite a member's files, and names the file.
  const again = await run(["make-certs", "--dir", tls, "--members", "db2"])
  assert.equal(again.code, 1)
  assert.match(again.stderr, /db2\.pem exists already/)
  // A new member from the same CA.
  const more = await run(["make-certs", "--dir", tls, "--members", "db4"])
  assert.equal(more.code, 0, more.stderr)
  assert.match(more.stdout, /reused the cluster CA/)
  const db4 = new X509Certificate(await readFile(join(tls, "db4.pem")))
  assert.ok(db4.checkIssued(ca))

  const bad = await run(["make-certs", "--dir", tls, "--members", "db1,-x"])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /'-x' is not a member name/)
  const noDir = await run(["make-certs", "--members", "db1"])
  assert.equal(noDir.code, 2)
  assert.match(noDir.stderr, /--dir DIR is required/)
})

test("check-config --files: names a wrong member certificate, a foreign CA, a world-readable secret, an unreadable file", async (t) => {
  const dir = await tmp(t)
  const tls = join(dir, "tls")
  assert.equal((await run(["make-certs", "--dir", tls, "--members", "db1,db2,db3"])).code, 0)
  await writeFile(join(dir, "monitor.password"), "m\n", { mode: 0o640 })
  await writeFile(join(dir, "replication.password"), "r\n", { mode: 0o640 })
  const file = join(dir, "config.yaml")
  await writeFile(file, config(dir))
  const root = ["--user", "root"]
  const good = await run(["check-config", "--config", file, "--files", ...root])
  assert.equal(good.code, 0, good.stderr)
  assert.match(good.stdout, /mesh certificate names db1/)
  assert.match(good.stdout, /files OK/)
  // Without --files, nothing about files (the packaged example has none).
  assert.doesNotMatch((await run(["check-config", "--config", file])).stdout, /files OK/)

  // db2's certificate on db1.
  await writeFile(file, config(dir, "db2"))
  const other = await run(["check-config", "--config", file, "--files", ...root])
  assert.equal(other.code, 1)
  assert.match(other.stderr, /names member db2, but this host is db1/)

  // A certificate from another CA.
  const foreign = join(dir, "foreign")
  assert.equal((await run(["make-certs", "--dir", foreign, "--members", "db1"])).code, 0)
  await writeFile(
    file,
    config(dir)
      .replace(`${dir}/tls/db1.pem`, `${foreign}/db1.pem`)
      .replace(`${dir}/tls/db1.key`, `${foreign}/db1.key`),
  )
  const rogue = await run(["check-config", "--config", file, "--files", ...root])
  assert.equal(rogue.code, 1)
  assert.match(rogue.stderr, /is not issued by the CA in .*ca\.pem/)

  // A secret readable by everybody.
  await writeFile(file, config(dir))
  await chmod(join(dir, "monitor.password"), 0o644)
  const open = await run(["check-config", "--config", file, "--files", ...root])
  assert.equal(open.code, 1)
  assert.match(
    open.stderr,
    /mysql\.monitor\.password_file: .* is readable by every user \(mode 0644\)/,
  )
  await chmod(join(dir, "monitor.password"), 0o640)

  // The agent's user must read the key: "nobody" cannot read a 0600 root-owned file.
  const nobody = await run(["check-config", "--config", file, "--files", "--user", "nobody"])
  assert.equal(nobody.code, 1)
  assert.match(nobody.stderr, /not readable by user nobody|user nobody cannot enter/)
  const unknown = await run([
    "check-config",
    "--config",
    file,
    "--files",
    "--user",
    "no-such-user-x",
  ])
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /no user 'no-such-user-x'/)
  const userAlone = await run(["check-config", "--config", file, "--user", "root"])
  assert.equal(userAlone.code, 2)
})

test("permits: owner, group and other bits as the kernel applies them", () => {
  const u = { name: "mha-agent", uid: 998, gids: [997] }
  assert.ok(permits(u, { mode: 0o640, uid: 0, gid: 997 }, 4))
  assert.ok(!permits(u, { mode: 0o600, uid: 0, gid: 997 }, 4))
  assert.ok(permits(u, { mode: 0o400, uid: 998, gid: 0 }, 4))
  assert.ok(!permits(u, { mode: 0o750, uid: 0, gid: 0 }, 1))
  assert.ok(permits(u, { mode: 0o751, uid: 0, gid: 0 }, 1))
  assert.equal(lookupAccount("root")?.uid, 0)
})

test("mysql-accounts: exactly the privileges the agent checks, PROCESS included", async (t) => {
  const dir = await tmp(t)
  await writeFile(join(dir, "monitor.password"), "it's secret\n", { mode: 0o600 })
  await writeFile(join(dir, "replication.password"), "r\n", { mode: 0o600 })
  const file = join(dir, "config.yaml")
  await writeFile(file, config(dir))
  const r = await run(["mysql-accounts", "--config", file])
  assert.equal(r.code, 0, r.stderr)
  const grant = /^GRANT (.+) ON \*\.\* TO 'mha_monitor'@'%';$/m.exec(r.stdout)
  assert.ok(grant, r.stdout)
  assert.deepEqual(grant[1]!.split(", ").sort(), REQUIRED_PRIVILEGES.map((p) => p.privilege).sort())
  assert.ok(grant[1]!.split(", ").includes("PROCESS"))
  assert.match(r.stdout, /IDENTIFIED BY 'it''s secret';/)
  assert.match(r.stdout, /^GRANT REPLICATION SLAVE ON \*\.\* TO 'repl'@'%';$/m)
  // What it grants passes the agent's own check.
  assert.deepEqual(missingPrivileges(new Set(grant[1]!.split(", "))), [])
  // PROCESS is checked: without it the commit-stall probe sees no other session.
  const noProcess = missingPrivileges(new Set(grant[1]!.split(", ").filter((p) => p !== "PROCESS")))
  assert.deepEqual(
    noProcess.map((m) => m.privilege),
    ["PROCESS"],
  )
  assert.ok(noProcess[0]!.neededBy.some((n) => n.includes("commit-stall")))

  const missing = join(dir, "gone.yaml")
  await writeFile(missing, config(dir).replace(`${dir}/monitor.password`, `${dir}/nope.password`))
  const bad = await run(["mysql-accounts", "--config", missing])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /mysql\.monitor\.password_file: cannot read .*nope\.password: ENOENT/)
  assert.equal(
    accountsSql({
      monitorUser: "m",
      monitorPassword: "p",
      replicationUser: "r",
      replicationPassword: "q",
      host: "10.%",
      monitorPrivileges: ["PROCESS"],
    }).includes("GRANT PROCESS ON *.* TO 'm'@'10.%';"),
    true,
  )
})

const goodFacts: MysqlFacts = {
  member: "db1",
  user: "mha_monitor@%",
  missingPrivileges: [],
  variables: new Map([
    ["gtid_mode", "ON"],
    ["enforce_gtid_consistency", "ON"],
    ["log_bin", "ON"],
    ["log_replica_updates", "ON"],
    ["server_id", "1"],
    ["server_uuid", "u1"],
    ["super_read_only", "ON"],
    ["relay_log_recovery", "OFF"],
  ]),
  plugins: new Map([
    ["rpl_semi_sync_source", "ACTIVE"],
    ["rpl_semi_sync_replica", "ACTIVE"],
    ["clone", "ACTIVE"],
  ]),
  superReadOnlySource: null,
  superReadOnlyInMyCnf: { file: "/etc/mysql/my.cnf", on: true },
  others: [
    { member: "db2", serverId: 2, serverUuid: "u2", error: null },
    { member: "db3", serverId: 3, serverUuid: "u3", error: null },
  ],
}

test("judgeMysql: a sound server has no problem; each broken setting is named with its fix", () => {
  const problems = (f: MysqlFacts, mode: "off" | "on" | "strict" = "strict") =>
    judgeMysql(f, mode).filter((x) => x.level === "problem")
  assert.deepEqual(problems(goodFacts), [])
  const vars = (k: string, v: string) => ({
    ...goodFacts,
    variables: new Map([...goodFacts.variables, [k, v]]),
  })
  const one = (f: MysqlFacts, what: string, text: RegExp) => {
    const p = problems(f)
    assert.equal(p.length, 1, JSON.stringify(p))
    assert.equal(p[0]!.what, what)
    assert.match(p[0]!.text, text)
  }
  one(vars("gtid_mode", "OFF"), "gtid_mode", /must be ON .*set gtid_mode=ON/)
  one(
    vars("enforce_gtid_consistency", "WARN"),
    "enforce_gtid_consistency",
    /set enforce_gtid_consistency=ON/,
  )
  one(vars("log_bin", "OFF"), "log_bin", /set log_bin=ON in my\.cnf/)
  one(vars("log_replica_updates", "OFF"), "log_replica_updates", /log_replica_updates=ON/)
  one(
    vars("server_id", "3"),
    "server_id",
    /3 is also the server_id of db3: give each mysqld its own/,
  )
  one(vars("server_id", "0"), "server_id", /is 0/)
  one(vars("server_uuid", "u2"), "server_uuid", /also the server_uuid of db2 .*auto\.cnf/)
  one(
    { ...goodFacts, missingPrivileges: ["PROCESS"] },
    "privileges",
    /mha_monitor@% lacks PROCESS: GRANT PROCESS ON \*\.\* TO mha_monitor@%/,
  )
  one(
    { ...goodFacts, superReadOnlyInMyCnf: { file: "/etc/my.cnf", on: false } },
    "super_read_only",
    /not ON at boot in \/etc\/my\.cnf: add super_read_only=ON/,
  )
  one(
    { ...goodFacts, superReadOnlyInMyCnf: null, superReadOnlySource: "COMPILED" },
    "super_read_only",
    /not set at boot/,
  )
  one(
    {
      ...goodFacts,
      plugins: new Map([
        ["rpl_semi_sync_source", "ACTIVE"],
        ["clone", "ACTIVE"],
      ]),
    },
    "rpl_semi_sync_replica",
    /plugin-load-add=semisync_replica\.so/,
  )
  // Semi-sync off: a missing plugin is only a warning. relay_log_recovery=ON: a warning.
  assert.deepEqual(problems({ ...goodFacts, plugins: new Map() }, "off"), [])
  const w = judgeMysql(vars("relay_log_recovery", "ON"), "strict")
  assert.deepEqual(
    w.filter((x) => x.level === "problem"),
    [],
  )
  assert.ok(w.some((x) => x.level === "warning" && /relay_log_recovery=OFF/.test(x.text)))
})

test("superReadOnlyInMyCnf reads the [mysqld] section", () => {
  assert.equal(superReadOnlyInMyCnf("[mysqld]\nsuper_read_only=ON\n"), true)
  assert.equal(superReadOnlyInMyCnf("[mysqld]\nsuper-read-only\n"), true)
  assert.equal(superReadOnlyInMyCnf("[client]\nsuper_read_only=ON\n"), false)
  assert.equal(superReadOnlyInMyCnf("[mysqld]\nsuper_read_only = 0\n"), false)
  assert.equal(superReadOnlyInMyCnf("[mysqld]\n# super_read_only=ON\nread_only=ON\n"), false)
})
