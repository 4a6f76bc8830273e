// Issue 15 item 5: the optional `etcd` section of the config file: defaults,
// the publisher's settings derived from it, and a clear error (key, line,
// what was expected) for each bad value; a reload may not change it.
import assert from "node:assert/strict"
import { test } from "node:test"
import { etcdOptionsFromConfig } from "../../agent/src/adapters/etcd.ts"
import { diffForReload, parseConfigText } from "../../agent/src/daemon/config-load.ts"
import { toClusterConfig } from "../../agent/src/daemon/core-config.ts"
import type { Config } from "../../shared/config.ts"

const base = `cluster:
  name: prod
  members:
    - name: db1
      address: 10.0.0.11
      agent_port: 7946
    - name: db2
      address: 10.0.0.12
      mysql_port: 3307
      agent_port: 7946
node: db2
mysql:
  monitor:
    user: mha
    password_file: /etc/mha-agent/monitor.password
  replication:
    user: repl
    password_file: /etc/mha-agent/replication.password
  get_source_public_key: true
mesh:
  ca: /etc/mha-agent/tls/ca.pem
  cert: /etc/mha-agent/tls/db2.pem
  key: /etc/mha-agent/tls/db2.key
`

const ok = (extra: string): Config => {
  const r = parseConfigText(base + extra)
  if (r._tag !== "Ok")
    assert.fail(r.problems.map((p) => `${p.path.join(".")}: ${p.message}`).join("\n"))
  return r.config
}

/** The problems as "line path: message". */
const problems = (extra: string): Array<string> => {
  const r = parseConfigText(base + extra)
  assert.equal(r._tag, "Invalid", "expected the config to be refused")
  return r._tag === "Invalid"
    ? r.problems.map((p) => `${p.line ?? "-"} ${p.path.join(".")}: ${p.message}`)
    : []
}

test("etcd: left out, nothing is published; given, the documented defaults", () => {
  const none = ok("")
  assert.equal(none.etcd, undefined)
  assert.equal(toClusterConfig(none).publishPrimary, false)
  assert.equal(etcdOptionsFromConfig(none), undefined)

  const c = ok("etcd:\n  endpoints: [http://10.0.0.5:2379, https://etcd2.example:2379/]\n")
  assert.deepEqual(c.etcd, {
    endpoints: ["http://10.0.0.5:2379", "https://etcd2.example:2379/"],
    lease_ttl: 5_000,
    request_timeout: 1_000,
  })
  assert.equal(toClusterConfig(c).publishPrimary, true)
  const o = etcdOptionsFromConfig(c)
  assert.ok(o !== undefined)
  assert.equal(o.key, "/mha-agent/prod/primary")
  assert.equal(o.leaseTtlSeconds, 5)
  assert.deepEqual(o.client, {
    endpoints: ["http://10.0.0.5:2379", "https://etcd2.example:2379/"],
    requestTimeoutMs: 1_000,
  })
  const value = JSON.parse(o.value(7)) as Record<string, unknown>
  assert.deepEqual(
    { ...value, published_at: typeof value.published_at },
    {
      cluster: "prod",
      primary: "db2",
      host: "10.0.0.12",
      port: 3307,
      term: 7,
      published_at: "string",
    },
  )
})

test("etcd: every field set", () => {
  const c = ok(`etcd:
  endpoints: [https://10.0.0.5:2379]
  key: /discovery/prod/writer
  lease_ttl: 10s
  request_timeout: 2s
  tls:
    ca: /etc/mha-agent/etcd/ca.pem
    cert: /etc/mha-agent/etcd/client.pem
    key: /etc/mha-agent/etcd/client.key
  username: mha
  password_file: /etc/mha-agent/etcd.password
`)
  assert.equal(c.etcd?.key, "/discovery/prod/writer")
  assert.equal(c.etcd?.lease_ttl, 10_000)
  assert.equal(c.etcd?.username, "mha")
})

test("etcd: bad values are named with their line and what was expected", () => {
  assert.deepEqual(problems("etcd:\n  endpoints: [10.0.0.5:2379]\n"), [
    '25 etcd.endpoints.0: Expected an etcd client URL "http://host:port" or "https://host:port" (no path), got "10.0.0.5:2379"',
  ])
  assert.match(
    problems("etcd:\n  endpoints: [http://e:2379/v3]\n")[0] ?? "",
    /etcd\.endpoints\.0: Expected an etcd client URL/,
  )
  assert.match(problems("etcd:\n  endpoints: [ftp://e:2379]\n")[0] ?? "", /etcd\.endpoints\.0/)
  assert.deepEqual(problems("etcd:\n  endpoints: []\n"), [
    "25 etcd.endpoints: Expected at least 1 endpoint",
  ])
  assert.deepEqual(problems("etcd: {}\n"), ["24 etcd.endpoints: missing (required)"])
  assert.match(
    problems("etcd:\n  endpoints: [http://e:2379]\n  key: mha/primary\n")[0] ?? "",
    /etcd\.key: Expected a key like "\/mha-agent\/prod-db\/primary"/,
  )
  assert.match(
    problems("etcd:\n  endpoints: [http://e:2379]\n  lease_ttl: 1500ms\n")[0] ?? "",
    /etcd\.lease_ttl: lease_ttl \(1500ms\) must be a whole number of seconds, at least 2s/,
  )
  assert.match(
    problems("etcd:\n  endpoints: [http://e:2379]\n  lease_ttl: 1s\n")[0] ?? "",
    /at least 2s/,
  )
  assert.match(
    problems("etcd:\n  endpoints: [http://e:2379]\n  lease_ttl: 3s\n  request_timeout: 2s\n")[0] ??
      "",
    /etcd\.request_timeout: request_timeout \(2s\) must be below half of lease_ttl \(3s\)/,
  )
  assert.match(
    problems("etcd:\n  endpoints: [http://e:2379]\n  tls:\n    ca: /ca.pem\n")[0] ?? "",
    /etcd\.endpoints: etcd\.tls is set: every endpoint must be https:\/\//,
  )
  assert.match(
    problems("etcd:\n  endpoints: [https://e:2379]\n  tls:\n    cert: /c.pem\n")[0] ?? "",
    /etcd\.tls: cert and key must be given together/,
  )
  assert.match(
    problems("etcd:\n  endpoints: [https://e:2379]\n  username: mha\n")[0] ?? "",
    /etcd: username and password_file must be given together/,
  )
  assert.match(
    problems("etcd:\n  endpoints: [http://e:2379]\n  lease_tll: 5s\n")[0] ?? "",
    /etcd\.lease_tll: unknown key \(did you mean "lease_ttl"\?\)/,
  )
})

test("etcd: a reload may not change the section (the publisher is set up at start)", () => {
  const plan = diffForReload(ok(""), ok("etcd:\n  endpoints: [http://e:2379]\n"))
  assert.equal(plan.ok, false)
  assert.match(plan.refused[0]?.reason ?? "", /etcd publisher .* restart to change it/)
})
