// The first real failovers: three agents on three lab hosts, real MySQL with
// semi-sync, a client writing through the VIP. Each scenario asserts that no
// acknowledged write is lost, that two nodes are never writable at once, and
// that the cluster converges to one primary that everyone replicates from.
import assert from "node:assert/strict"
import { test } from "node:test"
import { LabCluster } from "./cluster.ts"
import { sleep } from "./exec.ts"

const scenario = (name: string, body: (c: LabCluster) => Promise<number>) =>
  test(name, { timeout: 240_000 }, async () => {
    const c = await LabCluster.up({ timings: { restart_timeout: "10s", apply_timeout: "10s" } })
    let failed = true
    try {
      const faultAt = await body(c)
      const result = await c.check(faultAt)
      assert.deepEqual(
        result.problems,
        [],
        `invariants (logs: ${c.keepLogs(name.split(":")[0] ?? "scenario")})`,
      )
      console.log(
        `${name}: client-observed write downtime ${result.downtimeMs} ms, ${result.acked} acknowledged writes, none lost`,
      )
      failed = false
    } finally {
      if (failed) console.log(`logs kept in ${c.keepLogs(name.split(":")[0] ?? "scenario")}`)
      await c.down()
    }
  })

scenario("scenario 1: the primary's mysqld is killed and restarts: no failover", async (c) => {
  const primary = await c.waitForPrimary(10_000)
  const term = c.term(primary)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "KillMysqld", host: primary })
  await c.waitForWritesAfter(faultAt, 60_000)
  await sleep(2000)
  assert.equal(await c.primary(), primary, "the same primary")
  assert.equal(c.term(primary), term, "no election")
  return faultAt
})

scenario(
  "scenario 2: the primary's mysqld cannot restart: failover without lease wait",
  async (c) => {
    const primary = await c.waitForPrimary(10_000)
    const faultAt = Date.now()
    await c.lab.inject({ _tag: "StopMysqld", host: primary })
    const next = await c.waitForPrimary(60_000, primary)
    assert.notEqual(next, primary)
    await c.waitForWritesAfter(faultAt, 30_000)
    // The old primary's mysqld comes back (an operator fixed it): it rejoins as a replica.
    await c.lab.inject({ _tag: "StartMysqld", host: primary })
    return faultAt
  },
)

scenario(
  "scenario 3: the primary host is isolated: it fences itself, a replica takes over, the VIP moves",
  async (c) => {
    const primary = await c.waitForPrimary(10_000)
    const faultAt = Date.now()
    await c.lab.inject({ _tag: "Isolate", host: primary })
    const next = await c.waitForPrimary(60_000, primary)
    assert.notEqual(next, primary)
    // The isolated node fenced itself: read it over its socket, which needs no network.
    const [old] = await c.lab.query<{ sro: number }>(primary, "SELECT @@super_read_only AS sro")
    assert.equal(old?.sro, 1, "the isolated old primary fenced itself")
    assert.equal(await c.holdsVip(primary), false, "the isolated old primary dropped the VIP")
    await c.waitForWritesAfter(faultAt, 30_000)
    await c.lab.inject({ _tag: "Heal", hosts: [] })
    return faultAt
  },
)

scenario("scenario 8: a planned switchover there and back", async (c) => {
  const first = await c.waitForPrimary(10_000)
  const target = c.lab.hosts.map((h) => h.name).find((n) => n !== first)!
  const faultAt = Date.now()
  const there = await c.agents.cli(first, ["switchover", "--to", target])
  assert.match(there.stdout, /./, there.stderr)
  assert.equal(await c.waitForPrimary(20_000, first), target)
  await c.waitForWritesAfter(Date.now(), 30_000)
  const back = await c.agents.cli(target, ["switchover", "--to", first])
  assert.match(back.stdout, /./, back.stderr)
  assert.equal(await c.waitForPrimary(20_000, target), first)
  await c.waitForWritesAfter(Date.now(), 30_000)
  const status = await c.agents.cli(first, ["status", "--json"])
  const view = JSON.parse(status.stdout) as { status: { leader: string; term: number } }
  assert.equal(view.status.leader, first)
  return faultAt
})
