// Issue 15 item 5: publishing the primary to etcd, with a real etcd
// (Debian's etcd-server, /usr/bin/etcd).
// 1. The adapter's transaction against a real etcd (outside the lab, on the
//    host's loopback): a lower term never overwrites a higher one, an equal
//    or higher term does; a withdrawal deletes only the key its own lease
//    holds; an unreachable etcd costs publish() nothing and is counted.
// 2. The lab (one cluster, one failover): etcd in the client namespace, the
//    agents configured with its endpoint, `etcdctl watch` stamping each event.
//    The key names the first primary; the primary is cut from both replicas
//    (agent port only: it still reaches etcd), its lease expires and it
//    fences: the key is deleted; the new primary's key (higher term) appears
//    within 1 s of its `promoted` log line; healed, the old primary rejoins,
//    the key still names the new one, and the invariants hold.
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import pino from "pino"
import {
  type EtcdCounters,
  makeEtcdClient,
  makePrimaryPublisher,
  termText,
} from "../../agent/src/adapters/etcd.ts"
import { runScenario } from "./cluster.ts"
import { waitFor } from "./exec.ts"
import { CLIENT_ADDRESS } from "./network.ts"

const ETCD = "/usr/bin/etcd"
const ETCDCTL = "/usr/bin/etcdctl"
const quiet = pino({ level: "silent" })

const etcdArgs = (dir: string, host: string, clientPort: number, peerPort: number) => [
  "--name",
  "lab",
  "--data-dir",
  join(dir, "data"),
  "--listen-client-urls",
  `http://${host}:${clientPort}${host === "127.0.0.1" ? "" : `,http://127.0.0.1:${clientPort}`}`,
  "--advertise-client-urls",
  `http://${host}:${clientPort}`,
  "--listen-peer-urls",
  `http://127.0.0.1:${peerPort}`,
  "--initial-advertise-peer-urls",
  `http://127.0.0.1:${peerPort}`,
  "--initial-cluster",
  `lab=http://127.0.0.1:${peerPort}`,
  "--log-level",
  "warn",
]

const counters = (): EtcdCounters => ({
  errors: 0,
  refused: 0,
  publishes: 0,
  withdrawals: 0,
  published: 0,
})

test("etcd adapter on a real etcd: a lower term never overwrites a higher one; a withdrawal deletes only its own key; an unreachable etcd blocks nothing", {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync("/tmp/mha-etcd-unit-")
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  const etcd = spawn(ETCD, etcdArgs(dir, "127.0.0.1", port, port + 1), { stdio: "ignore" })
  try {
    const endpoint = `http://127.0.0.1:${port}`
    // A dead endpoint first: the client goes on to the next one.
    const client = makeEtcdClient({
      endpoints: ["http://127.0.0.1:1", endpoint],
      requestTimeoutMs: 1_000,
    })
    await waitFor(
      "etcd to answer",
      () =>
        client.get("/x").then(
          () => true,
          () => false,
        ),
      20_000,
      200,
    )
    const key = "/mha-agent/unit/primary"
    const termKey = `${key}/term`

    const l7 = await client.grant(5)
    assert.deepEqual(await client.publish(key, termKey, '{"primary":"db2","term":7}', 7, l7), {
      _tag: "Published",
    })
    assert.equal(await client.get(termKey), termText(7))
    // A stale primary (term 6) is refused and writes nothing; the stored term is named.
    const l6 = await client.grant(5)
    assert.deepEqual(await client.publish(key, termKey, '{"primary":"db1","term":6}', 6, l6), {
      _tag: "Refused",
      storedTerm: 7,
    })
    assert.equal(await client.get(key), '{"primary":"db2","term":7}')
    // Even once the term-7 key is gone (its lease revoked or expired): the term key stays.
    await client.revoke(l7)
    assert.equal(await client.get(key), null)
    assert.equal((await client.publish(key, termKey, "stale", 6, l6))._tag, "Refused")
    assert.equal(await client.get(key), null)
    // Numeric, not textual order (9 < 10), and an equal term publishes again.
    const l10 = await client.grant(5)
    assert.equal((await client.publish(key, termKey, '{"term":10}', 10, l10))._tag, "Published")
    assert.equal((await client.publish(key, termKey, '{"term":9}', 9, l6))._tag, "Refused")
    assert.equal((await client.publish(key, termKey, '{"term":10}', 10, l10))._tag, "Published")
    // A withdrawal (lease revoke) of a key a later term overwrote deletes nothing.
    const l11 = await client.grant(5)
    assert.equal((await client.publish(key, termKey, '{"term":11}', 11, l11))._tag, "Published")
    await client.revoke(l10)
    assert.equal(await client.get(key), '{"term":11}')
    await client.revoke(l11)

    // The publisher: publishes, keeps the lease (3 s) alive past its TTL, withdraws.
    const c1 = counters()
    const publisher = makePrimaryPublisher({
      client,
      key,
      leaseTtlSeconds: 3,
      value: (term) => JSON.stringify({ primary: "db3", term }),
      log: quiet,
      counters: c1,
    })
    publisher.publish(12)
    await waitFor("the publisher's key", async () => (await client.get(key)) !== null, 5_000, 50)
    await new Promise((r) => setTimeout(r, 4_500))
    assert.equal(await client.get(key), '{"primary":"db3","term":12}', "kept past the lease TTL")
    publisher.withdraw(12)
    await waitFor("the withdrawal", async () => (await client.get(key)) === null, 3_000, 50)
    // A stale publisher (term 5) is refused, logged and counted; the key stays absent.
    const c2 = counters()
    const stale = makePrimaryPublisher({
      client,
      key,
      leaseTtlSeconds: 3,
      value: (term) => JSON.stringify({ primary: "db1", term }),
      log: quiet,
      counters: c2,
    })
    stale.publish(5)
    await waitFor("the refusal", () => c2.refused === 1, 5_000, 50)
    assert.equal(await client.get(key), null)
    assert.equal(await client.get(termKey), termText(12))
    await Promise.all([publisher.close(), stale.close()])
    // A stopping agent's key goes with it (close revokes the lease).
    const closing = makePrimaryPublisher({
      client,
      key,
      leaseTtlSeconds: 3,
      value: (term) => JSON.stringify({ primary: "db2", term }),
      log: quiet,
      counters: counters(),
    })
    closing.publish(13)
    await waitFor("the key of term 13", async () => (await client.get(key)) !== null, 5_000, 50)
    await closing.close()
    assert.equal(await client.get(key), null, "revoked by close")

    // Unreachable: publish() returns at once; the failures are counted, nothing throws.
    const c3 = counters()
    const down = makePrimaryPublisher({
      client: makeEtcdClient({ endpoints: ["http://10.255.255.1:2379"], requestTimeoutMs: 300 }),
      key,
      leaseTtlSeconds: 3,
      value: () => "{}",
      log: quiet,
      counters: c3,
      closeWithinMs: 500,
    })
    const t0 = performance.now()
    down.publish(14)
    down.withdraw(14)
    down.publish(15)
    assert.ok(performance.now() - t0 < 5, "publish and withdraw return at once")
    await waitFor("failures counted", () => c3.errors >= 2, 5_000, 50)
    const closeAt = performance.now()
    await down.close()
    assert.ok(performance.now() - closeAt < 1_000, "close does not wait for an unreachable etcd")
    console.log(
      `etcd adapter: refused stale terms (stored 7 and 12), kept a 3 s lease for 4.5 s, unreachable: ${c3.errors} errors counted`,
    )
  } finally {
    etcd.kill("SIGKILL")
    rmSync(dir, { recursive: true, force: true })
  }
})

const ETCD_PORT = 2379

interface WatchEvent {
  readonly at: number
  readonly type: "PUT" | "DELETE"
  readonly value: string
}

/** The `etcdctl watch -w json` log, each line stamped (ms) by the shell loop that read it. */
const watchEvents = (file: string): Array<WatchEvent> =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => /^\d+ \{/.test(l))
    .flatMap((l) => {
      const at = Number(l.slice(0, l.indexOf(" ")))
      const r = JSON.parse(l.slice(l.indexOf(" ") + 1)) as {
        Events?: Array<{ type?: number; kv: { value?: string } }>
      }
      return (r.Events ?? []).map((e) => ({
        at,
        type: e.type === 1 ? ("DELETE" as const) : ("PUT" as const),
        value: Buffer.from(e.kv.value ?? "", "base64").toString("utf8"),
      }))
    })

/** Wall-clock times of one event in an agent's log. */
const logTimes = (file: string, event: string): Array<number> =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => Date.parse((JSON.parse(l) as { time: string }).time))

test("lab: the ACTIVE primary is published in etcd; a fenced primary's key is deleted, the new one (higher term) appears within 1 s of its promotion", {
  timeout: 300_000,
}, async () => {
  const dir = mkdtempSync("/tmp/mha-etcd-lab-")
  /** Process groups of etcd and the watch (the lab's teardown kills them too, with the namespace). */
  const groups: Array<number> = []
  const key = "/mha-agent/lab/primary"
  try {
    await runScenario(
      {
        slug: "etcd",
        hosts: 3,
        extra: {
          etcd: {
            endpoints: [`http://${CLIENT_ADDRESS}:${ETCD_PORT}`],
            key,
            lease_ttl: "3s",
            request_timeout: "1s",
          },
        },
        // etcd up before the agents, so the first primary publishes at once.
        beforeAgents: async (l) => {
          groups.push(
            await l.spawn("client", "etcd", [
              ETCD,
              ...etcdArgs(dir, CLIENT_ADDRESS, ETCD_PORT, ETCD_PORT + 1),
            ]),
          )
          await waitFor(
            "etcd in the client namespace",
            () =>
              l
                .exec("client", [
                  ETCDCTL,
                  `--endpoints=127.0.0.1:${ETCD_PORT}`,
                  "endpoint",
                  "health",
                ])
                .then(
                  () => true,
                  () => false,
                ),
            20_000,
            250,
          )
          groups.push(
            await l.spawn("client", "etcd-watch", [
              "/bin/sh",
              "-c",
              `${ETCDCTL} --endpoints=127.0.0.1:${ETCD_PORT} watch ${key} -w json | while IFS= read -r l; do echo "$(date +%s%3N) $l"; done`,
            ]),
          )
        },
      },
      async (c) => {
        const get = async (k: string): Promise<string | null> => {
          const { stdout } = await c.lab.exec("client", [
            ETCDCTL,
            `--endpoints=127.0.0.1:${ETCD_PORT}`,
            "get",
            k,
            "--print-value-only",
          ])
          const v = stdout.trim()
          return v === "" ? null : v
        }
        const watchLog = c.lab.processLog("client", "etcd-watch")
        const primary = await c.waitForPrimary(10_000)
        let first: { primary: string; term: number } | null = null
        await waitFor(
          `the key to name ${primary}`,
          async () => {
            const v = await get(key)
            first = v === null ? null : (JSON.parse(v) as { primary: string; term: number })
            return first?.primary === primary
          },
          10_000,
          200,
        )
        const firstTerm = (first as { term: number } | null)?.term ?? 0
        assert.equal(await get(`${key}/term`), termText(firstTerm))
        const replicas = c.lab.hosts.map((h) => h.name).filter((n) => n !== primary)

        // The primary loses its quorum (agent port cut to both replicas; etcd still reachable).
        const faultAt = Date.now()
        for (const r of replicas) await c.lab.inject({ _tag: "CutAgent", a: primary, b: r })
        const next = await c.waitForPrimary(60_000, primary)
        await waitFor(
          `the key to name ${next}`,
          async () => {
            const v = await get(key)
            return v !== null && (JSON.parse(v) as { primary: string }).primary === next
          },
          10_000,
          100,
        )
        const fencedAt = logTimes(c.agents.logPath(primary), "self-fenced").filter(
          (t) => t >= faultAt,
        )[0]
        const promotedAt = logTimes(c.agents.logPath(next), "promoted").filter(
          (t) => t >= faultAt,
        )[0]
        assert.ok(fencedAt !== undefined, `${primary} logged self-fenced`)
        assert.ok(promotedAt !== undefined, `${next} logged promoted`)
        const events = watchEvents(watchLog).filter((e) => e.at >= faultAt - 100)
        const deleted = events.find((e) => e.type === "DELETE")
        const put = events.find(
          (e) => e.type === "PUT" && (JSON.parse(e.value) as { primary: string }).primary === next,
        )
        assert.ok(deleted !== undefined, `the old key deleted: ${JSON.stringify(events)}`)
        assert.ok(put !== undefined, `the new key put: ${JSON.stringify(events)}`)
        assert.ok(deleted.at <= put.at, "the old key gone before the new one appears")
        const published = JSON.parse(put.value) as { primary: string; term: number; host: string }
        assert.ok(published.term > firstTerm, `term ${published.term} > ${firstTerm}`)
        assert.equal(published.host, c.lab.hosts.find((h) => h.name === next)?.address)
        const publishMs = put.at - promotedAt
        assert.ok(publishMs <= 1_000, `watch saw ${next} ${publishMs} ms after its promotion`)
        // No PUT from the old primary after the cut.
        assert.deepEqual(
          events.filter(
            (e) =>
              e.type === "PUT" && (JSON.parse(e.value) as { primary: string }).primary === primary,
          ),
          [],
        )

        // Healed: the old primary rejoins; the key and the term key stay the new primary's.
        await c.lab.inject({ _tag: "Heal", hosts: [] })
        await waitFor(
          `${primary} back as STANDBY`,
          async () => (await c.agentRole(primary, primary).catch(() => "unknown")) === "STANDBY",
          60_000,
          500,
        )
        const finalValue = JSON.parse((await get(key)) ?? "{}") as { primary: string; term: number }
        assert.equal(finalValue.primary, next)
        assert.equal(await get(`${key}/term`), termText(finalValue.term))
        const result = await c.check(faultAt)
        assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
        console.log(
          `etcd lab: ${primary} term ${firstTerm} published; cut at 0; ${primary} fenced at +${fencedAt - faultAt} ms, its key deleted at +${deleted.at - faultAt} ms; ` +
            `${next} promoted at +${promotedAt - faultAt} ms, its key (term ${published.term}) seen by etcdctl watch at +${put.at - faultAt} ms (${publishMs} ms after promotion); ${result.acked} acknowledged writes, none lost`,
        )
      },
    )
  } finally {
    for (const pid of groups) {
      try {
        process.kill(-pid, "SIGKILL")
      } catch {
        // gone already (the lab's teardown)
      }
    }
    rmSync(dir, { recursive: true, force: true })
  }
})
