// TLS to MySQL (issue 15 item 3), the parts that need no mysqld: the config's
// rules, the files checked at start (real certificates made with openssl),
// what replication is told, and mysql2's options. The handshake against a
// real mysqld (a rogue CA, a name mismatch) is in test/lab/mysql-tls.test.ts.
import assert from "node:assert/strict"
import { execFileSync } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type TestContext, test } from "node:test"
import { Effect, Redacted } from "effect"
import { connectionOptions } from "../../agent/src/adapters/mysql-connection.ts"
import { diffForReload, parseConfigText } from "../../agent/src/daemon/config-load.ts"
import {
  checkMysqlTlsAtStart,
  sourceSsl,
  tlsFileProblems,
} from "../../agent/src/daemon/mysql-tls.ts"
import type { Config } from "../../shared/config.ts"

const tempDir = async (t: TestContext): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), "mha-mysql-tls-"))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const config = (tls: string, address = "10.0.0.11", port = 3306): string => `cluster:
  name: prod
  members:
    - name: db1
      address: ${address}
      mysql_port: ${port}
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
    user: mha
    password_file: /etc/mha-agent/monitor.password
  replication:
    user: repl
    password_file: /etc/mha-agent/replication.password
${tls}mesh:
  ca: /etc/mha-agent/tls/ca.pem
  cert: /etc/mha-agent/tls/db1.pem
  key: /etc/mha-agent/tls/db1.key
`

const parsed = (text: string): Config => {
  const r = parseConfigText(text)
  if (r._tag !== "Ok") assert.fail(`expected the config to load: ${JSON.stringify(r.problems)}`)
  return r.config
}

const openssl = (dir: string, args: ReadonlyArray<string>) =>
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })

/** A CA, a server certificate it signed, and an unrelated key, in `dir`. */
const makeFiles = (dir: string) => {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  openssl(dir, [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=lab CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
  ])
  openssl(dir, [
    "req",
    "-new",
    ...ec,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=db1",
  ])
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-out",
    "server.pem",
  ])
  openssl(dir, [
    "genpkey",
    "-algorithm",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-out",
    "other.key",
  ])
  return {
    ca: join(dir, "ca.pem"),
    cert: join(dir, "server.pem"),
    key: join(dir, "server.key"),
    otherKey: join(dir, "other.key"),
  }
}

test("config: verify_identity needs a CA; the source_ssl_* paths and verify_identity default", () => {
  const r = parseConfigText(config("  tls:\n    verify_identity: true\n"))
  assert.equal(r._tag, "Invalid")
  if (r._tag === "Invalid") {
    const p = r.problems.find((x) => x.path.join(".") === "mysql.tls.verify_identity")
    assert.ok(p, JSON.stringify(r.problems))
    assert.match(p.message, /needs mysql\.tls\.ca/)
  }
  const c = parsed(config("  tls:\n    ca: /etc/mysql/tls/ca.pem\n"))
  assert.equal(c.mysql.tls?.verify_identity, false)
  assert.deepEqual(sourceSsl(c.mysql.tls ?? assert.fail()), {
    _tag: "Ssl",
    ca: "/etc/mysql/tls/ca.pem",
    verifyServerCert: false,
  })
  const d = parsed(
    config(
      "  tls:\n    ca: /a/ca.pem\n    cert: /a/c.pem\n    key: /a/c.key\n    verify_identity: true\n    source_ssl_ca: /var/lib/mysql/ca.pem\n",
    ),
  )
  // mysqld reads its own copy of the CA; the client pair is the agent's unless named.
  assert.deepEqual(sourceSsl(d.mysql.tls ?? assert.fail()), {
    _tag: "Ssl",
    ca: "/var/lib/mysql/ca.pem",
    cert: "/a/c.pem",
    key: "/a/c.key",
    verifyServerCert: true,
  })
  const rel = parseConfigText(config("  tls:\n    ca: /a/ca.pem\n    source_ssl_ca: ca.pem\n"))
  assert.equal(rel._tag, "Invalid", "a relative source_ssl_ca is refused")
})

test("reload: a change of mysql.tls is refused (read and verified at start)", () => {
  const a = parsed(config("  tls:\n    ca: /a/ca.pem\n"))
  const b = parsed(config("  tls:\n    ca: /a/ca.pem\n    verify_identity: true\n"))
  const plan = diffForReload(a, b)
  assert.equal(plan.ok, false)
  assert.equal(plan.refused[0]?.path, "mysql.tls.verify_identity")
  assert.match(plan.refused[0]?.reason ?? "", /restart the agent/)
})

test("the files: no certificate, a leaf as CA, a key of another certificate, expiry; each names the file", async (t) => {
  const dir = await tempDir(t)
  const f = makeFiles(dir)
  const text = async (p: string) => readFile(p, "utf8")
  const tls = { ca: f.ca, cert: f.cert, key: f.key, verify_identity: true }
  const good = { ca: await text(f.ca), cert: await text(f.cert), key: await text(f.key) }
  assert.deepEqual(tlsFileProblems(tls, good, Date.now()), [])
  assert.deepEqual(tlsFileProblems(tls, { ...good, ca: "not a certificate\n" }, Date.now()), [
    `mysql.tls.ca (${f.ca}): holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
  ])
  const broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
  assert.match(
    tlsFileProblems(tls, { ...good, ca: broken }, Date.now())[0] ?? "",
    new RegExp(`^mysql\\.tls\\.ca \\(${f.ca}\\): certificate 1 cannot be read`),
  )
  assert.deepEqual(tlsFileProblems(tls, { ...good, ca: good.cert }, Date.now()), [
    `mysql.tls.ca (${f.ca}): CN=db1 is not a CA certificate`,
  ])
  assert.deepEqual(tlsFileProblems(tls, { ...good, key: await text(f.otherKey) }, Date.now()), [
    `mysql.tls.key (${f.key}) is not the key of mysql.tls.cert (${f.cert})`,
  ])
  const later = Date.now() + 5 * 86_400_000
  assert.match(
    tlsFileProblems(tls, good, later).join("\n"),
    new RegExp(`mysql\\.tls\\.ca \\(${f.ca}\\): certificate CN=lab CA expired on`),
  )
})

test("at start: a missing or bad CA file refuses; an unreachable mysqld is only noted", async (t) => {
  const dir = await tempDir(t)
  const f = makeFiles(dir)
  const pw = join(dir, "pw")
  await writeFile(pw, "secret\n")
  const withFiles = (tls: string, port = 1) =>
    parsed(
      config(tls, "127.0.0.1", port)
        .replaceAll("/etc/mha-agent/monitor.password", pw)
        .replaceAll("/etc/mha-agent/replication.password", pw),
    )
  const missing = await Effect.runPromise(
    checkMysqlTlsAtStart(withFiles(`  tls:\n    ca: ${dir}/nope.pem\n`)),
  )
  assert.match(
    missing.refusal ?? "",
    new RegExp(`cannot read mysql\\.tls\\.ca \\(${dir}/nope\\.pem\\)`),
  )
  await writeFile(join(dir, "garbage.pem"), "garbage")
  const garbage = await Effect.runPromise(
    checkMysqlTlsAtStart(withFiles(`  tls:\n    ca: ${dir}/garbage.pem\n`)),
  )
  assert.equal(
    garbage.refusal,
    `mysql.tls.ca (${dir}/garbage.pem): holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
  )
  // Port 1 on 127.0.0.1: connection refused, which says nothing about the certificates.
  const down = await Effect.runPromise(
    checkMysqlTlsAtStart(withFiles(`  tls:\n    ca: ${f.ca}\n    verify_identity: true\n`)),
  )
  assert.equal(down.refusal, null)
  assert.match(down.notes.join("\n"), /TLS to the local mysqld 127\.0\.0\.1:1 not checked at start/)
})

test("mysql2's options: the CA verified when given; the name is checked by openSession, not mysql2", () => {
  const settings = {
    user: "mha",
    password: Redacted.make("x"),
    connectTimeoutMs: 1000,
    queryTimeoutMs: 1000,
  }
  const at = { host: "10.0.0.11", port: 3306 }
  const ssl = (tls: object) =>
    (connectionOptions(at, { ...settings, tls }).ssl ?? {}) as Record<string, unknown>
  assert.equal(ssl({ ca: "C", verifyIdentity: true }).rejectUnauthorized, true)
  // mysql2 would check an IP address against "localhost" (test/lab/mysql-tls.test.ts).
  assert.equal(ssl({ ca: "C", verifyIdentity: true }).verifyIdentity, false)
  assert.equal(ssl({}).rejectUnauthorized, false)
})
