// The VIP adapter on real hosts: `ip addr` and iputils arping inside lab host
// namespaces (test/lab/vip-node.ts runs the adapter there, as the agent
// will), observed from the client namespace's real ARP cache.
import assert from "node:assert/strict"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import type { VipOptions } from "../../agent/src/adapters/vip.ts"
import { sleep, tryRun, waitFor } from "./exec.ts"
import { Lab } from "./lab.ts"
import { PREFIX_LEN, VIP } from "./network.ts"
import type { VipNodeRequest, VipOp } from "./vip-node.ts"

const node = process.execPath
const VIP_NODE = join(import.meta.dirname, "vip-node.ts")

const OPTIONS: VipOptions = {
  address: VIP,
  prefix: PREFIX_LEN,
  interface: "eth0",
  garpCount: 2,
  garpDelayMs: 1_000,
}

interface VipReply {
  readonly ok: boolean
  readonly result?: unknown
  readonly metrics?: {
    readonly bursts: number
    readonly burstFailures: number
    readonly duplicatesSeen: number
    readonly adds: number
    readonly removes: number
  }
  readonly error?: Record<string, unknown>
  readonly message?: string
}

interface Neighbour {
  readonly lladdr?: string
  readonly state?: ReadonlyArray<string>
}

describe("the VIP on a two-host lab", () => {
  let lab: Lab
  const macs = new Map<string, string>()

  const vip = async (
    host: string,
    op: VipOp,
    extra: Partial<VipNodeRequest> = {},
  ): Promise<VipReply> => {
    const request: VipNodeRequest = { op, options: OPTIONS, ...extra }
    const r = await lab.exec(host, [node, VIP_NODE, JSON.stringify(request)])
    const line = r.stdout
      .trim()
      .split("\n")
      .filter((l) => l.startsWith('{"ok"'))
      .at(-1)
    assert.ok(line, `no reply from vip-node on ${host}: ${r.stdout} ${r.stderr}`)
    return JSON.parse(line) as VipReply
  }
  const ok = (r: VipReply): unknown => {
    assert.equal(r.ok, true, JSON.stringify(r))
    return r.result
  }

  /** The address list of eth0 in a host, read with ip itself (not the adapter). */
  const hasVip = async (host: string): Promise<boolean> => {
    const r = await lab.exec(host, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
    return r.stdout.includes(` ${VIP}/${PREFIX_LEN} `)
  }
  const rawIp = (host: string, verb: "add" | "del") =>
    lab.exec(host, ["ip", "addr", verb, `${VIP}/${PREFIX_LEN}`, "dev", "eth0"])

  const clientNeighbour = async (): Promise<Neighbour | undefined> => {
    const r = await lab.exec("client", ["ip", "-j", "neigh", "show", VIP])
    const entries = JSON.parse(r.stdout.trim() || "[]") as Array<Neighbour>
    return entries[0]
  }
  const clientPing = () =>
    tryRun("ip", ["netns", "exec", lab.state.client.ns, "ping", "-c", "1", "-W", "1", VIP])

  before(async () => {
    lab = await Lab.up({ hosts: 2 })
    for (const h of lab.hosts) {
      const r = await lab.exec(h.name, ["ip", "-j", "link", "show", "eth0"])
      const [link] = JSON.parse(r.stdout) as Array<{ address: string }>
      assert.ok(link?.address)
      macs.set(h.name, link.address.toLowerCase())
    }
    assert.notEqual(macs.get("db1"), macs.get("db2"))
  })
  after(async () => {
    await lab?.down()
  })

  test("db1 takes the VIP: duplicate check, address added, announced, and the client reaches db1's MAC", async () => {
    assert.equal(ok(await vip("db1", "holds")), false)
    assert.deepEqual(ok(await vip("db2", "detect")), { _tag: "Free" }, "nobody holds it yet")
    const acquired = await vip("db1", "acquire", { awaitAnnouncements: true })
    assert.deepEqual(ok(acquired), { added: true, duplicate: { _tag: "Free" } })
    assert.equal(acquired.metrics?.bursts, 2, "a burst now and a burst after the delay")
    assert.equal(acquired.metrics?.burstFailures, 0)
    assert.equal(await hasVip("db1"), true)
    assert.equal(await hasVip("db2"), false)
    assert.equal(ok(await vip("db1", "holds")), true)
    assert.equal(ok(await vip("db2", "holds")), false)
    const ping = await clientPing()
    assert.equal(ping.ok, true, ping.stderr)
    assert.equal((await clientNeighbour())?.lladdr, macs.get("db1"))
  })

  test("duplicate detection from db2 sees db1 holding the VIP, with db1's MAC", async () => {
    const r = await vip("db2", "detect")
    assert.deepEqual(ok(r), { _tag: "Taken", macs: [macs.get("db1")] })
    assert.equal(r.metrics?.duplicatesSeen, 1)
  })

  test("db1 releases, db2 takes it: the client's ARP entry moves to db2 by gratuitous ARP alone", async (t) => {
    assert.equal(ok(await vip("db1", "release")), true)
    assert.equal(await hasVip("db1"), false)
    assert.equal(ok(await vip("db1", "release")), false, "releasing again is a no-op")

    // Control: the address alone, without gratuitous ARP, leaves the client's
    // cache pointing at db1 (the stale-cache problem the bursts solve).
    await rawIp("db2", "add")
    await sleep(1_500)
    assert.equal((await clientNeighbour())?.lladdr, macs.get("db1"), "no ARP, no move")
    await rawIp("db2", "del")

    const started = Date.now()
    const acquiring = vip("db2", "acquire", { awaitAnnouncements: true })
    // The client sends nothing and flushes nothing: only db2's announcements can move it.
    let movedAfter: number | undefined
    await waitFor(
      "the client's ARP entry for the VIP to name db2's MAC",
      async () => {
        const n = await clientNeighbour()
        if (n?.lladdr === macs.get("db2")) movedAfter = Date.now() - started
        return movedAfter !== undefined
      },
      10_000,
      50,
    )
    const acquired = await acquiring
    assert.deepEqual(ok(acquired), { added: true, duplicate: { _tag: "Free" } })
    assert.equal(acquired.metrics?.bursts, 2)
    assert.ok(movedAfter !== undefined && movedAfter < 6_000, `moved after ${movedAfter} ms`)
    t.diagnostic(
      `the client's entry moved ${movedAfter} ms after db2 started acquiring (process start and the 2 s duplicate check included)`,
    )
    const ping = await clientPing()
    assert.equal(ping.ok, true, ping.stderr)
    assert.equal((await clientNeighbour())?.lladdr, macs.get("db2"))
  })

  test("a refresh is one burst, and release cancels announcements still pending", async () => {
    const refreshed = await vip("db2", "refresh")
    assert.equal(refreshed.ok, true, JSON.stringify(refreshed))
    assert.equal(refreshed.metrics?.bursts, 1)
    // On db1 (which does not hold it): acquire, then release 100 ms later; the
    // delayed burst must never run after the release.
    await rawIp("db2", "del")
    const r = await vip("db1", "acquire-then-release")
    assert.equal(ok(r), true)
    assert.equal(r.metrics?.bursts, 0, JSON.stringify(r.metrics))
    assert.equal(r.metrics?.adds, 1)
    assert.equal(r.metrics?.removes, 1)
    assert.equal(await hasVip("db1"), false)
    await rawIp("db2", "add")
  })

  test("reconcile removes a stray VIP and adds a missing one", async () => {
    // A stray copy on db1 while db2 holds it.
    await rawIp("db1", "add")
    assert.equal(await hasVip("db1"), true)
    assert.equal(ok(await vip("db1", "reconcile-release")), "removed")
    assert.equal(await hasVip("db1"), false)
    assert.equal(ok(await vip("db1", "reconcile-release")), "unchanged")
    assert.equal(ok(await vip("db2", "reconcile-hold")), "unchanged")
    assert.equal(await hasVip("db2"), true)
    // db2 lost it (someone removed it by hand): reconcile puts it back.
    await rawIp("db2", "del")
    assert.equal(ok(await vip("db2", "reconcile-hold", { awaitAnnouncements: true })), "added")
    assert.equal(await hasVip("db2"), true)
  })

  test("a failing command is a typed error naming the command and its stderr; IPv6 is refused", async () => {
    const r = await vip("db1", "acquire", { options: { ...OPTIONS, interface: "eth9" } })
    assert.equal(r.ok, false)
    assert.equal(r.error?._tag, "VipCommandError")
    assert.equal(r.error?.command, "ip -j -4 addr show dev eth9")
    assert.match(String(r.error?.stderr), /eth9.*does not exist|Cannot find device/i)
    assert.match(r.message ?? "", /exited with code/)
    const v6 = await vip("db1", "holds", {
      options: { ...OPTIONS, address: "fd00::100", prefix: 64 },
    })
    assert.equal(v6.ok, false)
    assert.equal(v6.error?._tag, "VipConfigError")
    assert.equal(await hasVip("db1"), false, "nothing was changed")
  })
})
