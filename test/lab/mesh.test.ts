// The mesh adapter on real hosts: three lab hosts each run a mesh endpoint
// (test/lab/mesh-node.ts) with certificates from a cluster CA; a hand-made
// client (test/lab/mesh-raw.ts) in the client namespace plays the intruders.
import assert from "node:assert/strict"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import type { MeshMetrics, MeshPeer, PeerState } from "../../agent/src/adapters/mesh.ts"
import { type LabCerts, makeCerts } from "./certs.ts"
import { sleep, tryRun, waitFor } from "./exec.ts"
import { Lab } from "./lab.ts"
import type { MeshNodeConfig } from "./mesh-node.ts"
import type { RawClientConfig, RawFrame } from "./mesh-raw.ts"
import { AGENT_PORT, CLIENT_ADDRESS } from "./network.ts"

const node = process.execPath
const MESH_NODE = join(import.meta.dirname, "mesh-node.ts")
const MESH_RAW = join(import.meta.dirname, "mesh-raw.ts")

const MAX_MESSAGE = 4_096
const MAX_FRAME = 16_384
const DEAD_AFTER = 3_000
const BACKOFF_MAX = 2_000
const CONNECT_TIMEOUT = 1_500

interface StateLine {
  readonly t: number
  readonly event: "state"
  readonly peers: ReadonlyArray<PeerState>
  readonly metrics: MeshMetrics
}
interface RecvLine {
  readonly t: number
  readonly event: "recv"
  readonly from: string
  readonly claimed: string
  readonly seq: number
}
interface LogLine {
  readonly message: string
  readonly annotations?: Record<string, unknown>
}
interface RawResult {
  readonly opened: boolean
  readonly tlsProtocol?: string
  readonly error?: string
  readonly closeCode?: number
  readonly closeReason?: string
  readonly sent: number
}

describe("the mesh on a three-host lab", () => {
  let lab: Lab
  let certs: LabCerts
  let members: ReadonlyArray<MeshPeer>
  const pids = new Map<string, number>()

  const nodeConfig = (self: string, peers: ReadonlyArray<MeshPeer> = members): MeshNodeConfig => {
    const files = certs.members[self]
    if (!files) throw new Error(`no certificate for ${self}`)
    return {
      self,
      members: peers,
      listenHost: "0.0.0.0",
      listenPort: AGENT_PORT,
      ca: certs.ca,
      cert: files.cert,
      key: files.key,
      intervalMs: 100,
      stateEveryMs: 150,
      maxMessageBytes: MAX_MESSAGE,
      maxFrameBytes: MAX_FRAME,
      pingIntervalMs: 500,
      deadAfterMs: DEAD_AFTER,
      connectTimeoutMs: CONNECT_TIMEOUT,
      backoffMaxMs: BACKOFF_MAX,
      checkClaimedSender: true,
    }
  }

  const startNode = async (
    where: string,
    cfg: MeshNodeConfig,
    env: Readonly<Record<string, string>> = {},
  ) => {
    const started = (await lines(where)).filter((l) => l.event === "started").length
    const pid = await lab.spawn(where, "mesh", [node, MESH_NODE, JSON.stringify(cfg)], {
      ...process.env,
      ...env,
    })
    pids.set(where, pid)
    // Counted, not timed: a node under libfaketime stamps its lines with its own wall clock.
    await waitFor(
      `the mesh node on ${where} to start`,
      async () => (await lines(where)).filter((l) => l.event === "started").length > started,
      20_000,
    )
  }

  const stopNode = async (where: string) => {
    const pid = pids.get(where)
    if (pid === undefined) return
    await tryRun("kill", ["-TERM", String(pid)])
    await waitFor(`the mesh node on ${where} to stop`, async () => !(await alive(where)), 10_000)
    pids.delete(where)
  }

  const alive = async (where: string) => {
    const pid = pids.get(where)
    return pid !== undefined && (await tryRun("kill", ["-0", String(pid)])).ok
  }

  const lines = async (where: string): Promise<Array<Record<string, unknown>>> => {
    let text = ""
    try {
      text = await readFile(lab.processLog(where, "mesh"), "utf8")
    } catch {
      return []
    }
    const out: Array<Record<string, unknown>> = []
    for (const l of text.split("\n")) {
      if (!l.startsWith("{")) continue
      try {
        out.push(JSON.parse(l) as Record<string, unknown>)
      } catch {
        // a line still being written
      }
    }
    return out
  }
  const states = async (where: string) =>
    (await lines(where)).filter((l) => l.event === "state") as unknown as Array<StateLine>
  const recvs = async (where: string) =>
    (await lines(where)).filter((l) => l.event === "recv") as unknown as Array<RecvLine>
  const logs = async (where: string) =>
    (await lines(where)).filter((l) => typeof l.message === "string") as unknown as Array<LogLine>

  /** Waits for a state line written after `since` that satisfies `check`; returns it. */
  const waitState = async (
    where: string,
    what: string,
    check: (s: StateLine) => boolean,
    timeoutMs = 15_000,
    since = Date.now(),
  ): Promise<StateLine> => {
    let found: StateLine | undefined
    await waitFor(
      `${where}: ${what}`,
      async () => {
        found = (await states(where)).find((s) => s.t >= since && check(s))
        return found !== undefined
      },
      timeoutMs,
    )
    return found as StateLine
  }
  const latest = async (where: string): Promise<StateLine> => {
    const s = await waitState(where, "a fresh state line", () => true, 5_000)
    return (await states(where)).at(-1) ?? s
  }
  const peer = (s: StateLine, name: string): PeerState => {
    const p = s.peers.find((x) => x.name === name)
    assert.ok(p, `no peer ${name} in ${JSON.stringify(s.peers)}`)
    return p
  }
  const connected = (s: StateLine, name: string) => peer(s, name).status === "connected"

  const raw = async (
    files: { cert: string; key: string },
    target: string,
    frames: ReadonlyArray<RawFrame>,
    extra: Partial<RawClientConfig> = {},
  ): Promise<RawResult> => {
    const cfg: RawClientConfig = {
      address: lab.host(target).address,
      port: AGENT_PORT,
      servername: target,
      ca: certs.ca,
      cert: files.cert,
      key: files.key,
      frames,
      lingerMs: 500,
      ...extra,
    }
    const r = await lab.exec("client", [node, MESH_RAW, JSON.stringify(cfg)])
    return JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}") as RawResult
  }

  /** Established TCP connections on the agent port in a host, as unordered address pairs. */
  const meshSockets = async (where: string): Promise<Array<string>> => {
    const r = await lab.exec(where, ["ss", "-Htn", "state", "established"])
    const pairs: Array<string> = []
    for (const line of r.stdout.split("\n")) {
      const cols = line.trim().split(/\s+/)
      const local = cols.at(-2)
      const remote = cols.at(-1)
      if (!local || !remote) continue
      if (!local.endsWith(`:${AGENT_PORT}`) && !remote.endsWith(`:${AGENT_PORT}`)) continue
      const a = local.replace(/:\d+$/, "")
      const b = remote.replace(/:\d+$/, "")
      pairs.push([a, b].sort().join("-"))
    }
    return pairs.sort()
  }

  before(async () => {
    lab = await Lab.up({ hosts: 3 })
    // "aux" is a member whose agent does not run (it sorts first, so it dials
    // everyone and nobody dials it): the tests use its certificate.
    certs = await makeCerts({
      members: ["aux", "db1", "db2", "db3"],
      rogueName: "db2",
      outsiderName: "intruder",
    })
    members = [
      ...lab.hosts.map((h) => ({ name: h.name, address: h.address, port: AGENT_PORT })),
      { name: "aux", address: CLIENT_ADDRESS, port: AGENT_PORT },
    ]
    for (const h of lab.hosts) await startNode(h.name, nodeConfig(h.name))
  })

  after(async () => {
    for (const where of [...pids.keys()]) await stopNode(where).catch(() => {})
    await lab?.down()
    await certs?.remove()
  })

  test("the three connect pairwise over TLS 1.3, one connection per pair, the lower name dialling", async () => {
    const expected: Record<string, Record<string, "outbound" | "inbound">> = {
      db1: { db2: "outbound", db3: "outbound" },
      db2: { db1: "inbound", db3: "outbound" },
      db3: { db1: "inbound", db2: "inbound" },
    }
    for (const [self, peers] of Object.entries(expected)) {
      const s = await waitState(self, "both peers connected", (x) =>
        Object.keys(peers).every((p) => connected(x, p)),
      )
      for (const [name, direction] of Object.entries(peers)) {
        assert.equal(peer(s, name).direction, direction, `${self} -> ${name}`)
        assert.equal(peer(s, name).tlsProtocol, "TLSv1.3", `${self} -> ${name}`)
      }
      assert.equal(peer(s, "aux").status, "disconnected", "nobody dials aux")
    }
    // Let it run: no duplicate connections and no flapping.
    await sleep(2_000)
    for (const self of ["db1", "db2", "db3"]) {
      const s = await latest(self)
      assert.equal(s.metrics.connects, 2, `${self}: ${JSON.stringify(s.metrics)}`)
      assert.equal(s.metrics.disconnects, 0, self)
      assert.equal(s.metrics.refusedPeers, 0, self)
    }
    const [a1, a2, a3] = lab.hosts.map((h) => h.address)
    assert.deepEqual(await meshSockets("db1"), [`${a1}-${a2}`, `${a1}-${a3}`])
    assert.deepEqual(await meshSockets("db2"), [`${a1}-${a2}`, `${a2}-${a3}`])
    assert.deepEqual(await meshSockets("db3"), [`${a1}-${a3}`, `${a2}-${a3}`])
  })

  test("messages flow both ways, and the sender is the member named by the certificate", async () => {
    const since = Date.now()
    await sleep(1_000)
    for (const self of ["db1", "db2", "db3"]) {
      const got = (await recvs(self)).filter((r) => r.t >= since)
      for (const other of ["db1", "db2", "db3"].filter((x) => x !== self)) {
        const from = got.filter((r) => r.from === other)
        // 100 ms interval: about 10 a second from each peer.
        assert.ok(from.length >= 5, `${self} got ${from.length} messages from ${other}`)
        assert.ok(from.every((r) => r.claimed === other))
        const seqs = from.map((r) => r.seq)
        assert.deepEqual(
          seqs,
          [...seqs].sort((x, y) => x - y),
          "in order",
        )
      }
      assert.deepEqual(
        [...new Set(got.map((r) => r.from))].sort(),
        ["db1", "db2", "db3"].filter((x) => x !== self),
      )
    }
  })

  test("a rogue CA, a non-member name, TLS 1.2 and a wrong-direction dial are refused; the node runs on", async () => {
    const before = (await latest("db3")).metrics
    // A certificate that claims to be db2, signed by another CA.
    const rogue = await raw(certs.rogue, "db3", [
      { kind: "json", value: { _tag: "Beat", from: "db2", seq: 1 } },
    ])
    assert.equal(rogue.opened, false, JSON.stringify(rogue))
    // The right CA, but a name that is not a member.
    const outsider = await raw(certs.outsider, "db3", [
      { kind: "json", value: { _tag: "Beat", from: "intruder", seq: 1 } },
    ])
    assert.equal(outsider.opened, false, JSON.stringify(outsider))
    // A member certificate over TLS 1.2.
    const auxFiles = certs.members.aux
    assert.ok(auxFiles)
    const old = await raw(auxFiles, "db3", [], { maxVersion: "TLSv1.2" })
    assert.equal(old.opened, false, JSON.stringify(old))
    assert.match(old.error ?? "", /protocol|version/i)
    // db3 dialling db1 breaks the one-connection-per-pair rule (db1 dials db3).
    const db3Files = certs.members.db3
    assert.ok(db3Files)
    const wrongWay = await raw(db3Files, "db1", [
      { kind: "json", value: { _tag: "Beat", from: "db3", seq: 999_999 } },
    ])
    assert.equal(wrongWay.opened, false, JSON.stringify(wrongWay))

    const s3 = await waitState(
      "db3",
      "the three refusals counted",
      (s) => s.metrics.refusedPeers >= before.refusedPeers + 3,
    )
    assert.equal(
      s3.metrics.refusedByReason["bad-certificate"],
      before.refusedByReason["bad-certificate"] + 1,
      JSON.stringify(s3.metrics.refusedByReason),
    )
    assert.equal(
      s3.metrics.refusedByReason["not-a-member"],
      before.refusedByReason["not-a-member"] + 1,
      JSON.stringify(s3.metrics.refusedByReason),
    )
    assert.equal(
      s3.metrics.refusedByReason["tls-version"],
      before.refusedByReason["tls-version"] + 1,
      JSON.stringify(s3.metrics.refusedByReason),
    )
    await waitState(
      "db1",
      "the wrong-direction refusal counted",
      (s) => s.metrics.refusedByReason["wrong-direction"] === 1,
    )
    assert.ok(
      !(await recvs("db1")).some((r) => r.seq === 999_999),
      "nothing from the refused connection arrived",
    )
    // The refusals left the real connections alone and the nodes keep running.
    for (const self of ["db1", "db3"]) {
      assert.equal(await alive(self), true, `${self} still runs`)
      const s = await waitState(self, "still connected to both peers", (x) =>
        ["db1", "db2", "db3"].filter((p) => p !== self).every((p) => connected(x, p)),
      )
      assert.equal(s.metrics.disconnects, 0, self)
    }
    // Each refusal is logged once.
    const refusalLogs = (await logs("db3")).filter(
      (l) => l.annotations?.event === "mesh-peer-refused",
    )
    assert.ok(refusalLogs.some((l) => l.annotations?.reason === "bad-certificate"))
    assert.ok(
      refusalLogs.some(
        (l) => l.annotations?.reason === "not-a-member" && /intruder/.test(l.message),
      ),
    )
  })

  test("malformed, oversize, binary and spoofed messages are dropped and counted; the node runs on", async () => {
    const auxFiles = certs.members.aux
    assert.ok(auxFiles)
    const before = (await latest("db1")).metrics
    const since = Date.now()
    const result = await raw(auxFiles, "db1", [
      { kind: "json", value: { _tag: "Beat", from: "aux", seq: 1 } },
      { kind: "text", data: "{not json" },
      { kind: "text", data: "[1, 2" },
      { kind: "json", value: { _tag: "Beat", from: "aux", seq: "two" } },
      { kind: "json", value: { _tag: "Vote", from: "aux" } },
      { kind: "binary", bytes: 64 },
      { kind: "padded", from: "aux", seq: 3, bytes: MAX_MESSAGE + 500 },
      { kind: "json", value: { _tag: "Beat", from: "db2", seq: 4 } },
      { kind: "json", value: { _tag: "Beat", from: "aux", seq: 5 } },
      // Beyond the frame limit: the connection itself is closed.
      { kind: "padded", from: "aux", seq: 6, bytes: MAX_FRAME + 1_000 },
      { kind: "json", value: { _tag: "Beat", from: "aux", seq: 7 } },
    ])
    assert.equal(result.opened, true, JSON.stringify(result))
    assert.equal(result.tlsProtocol, "TLSv1.3")
    assert.equal(
      result.closeCode,
      1009,
      `the oversized frame closes the connection: ${JSON.stringify(result)}`,
    )

    const s = await waitState(
      "db1",
      "the drops counted",
      (x) => x.metrics.droppedBad >= before.droppedBad + 8,
    )
    const by = s.metrics.droppedBadByReason
    const was = before.droppedBadByReason
    assert.equal(by["malformed-json"] - was["malformed-json"], 2)
    assert.equal(by.schema - was.schema, 2)
    assert.equal(by.binary - was.binary, 1)
    assert.equal(by.oversize - was.oversize, 1)
    assert.equal(by["sender-mismatch"] - was["sender-mismatch"], 1)
    assert.equal(by["frame-too-large"] - was["frame-too-large"], 1)

    // The good messages before and after the bad ones arrived, named by the certificate.
    const fromAux = (await recvs("db1")).filter((r) => r.t >= since && r.from === "aux")
    assert.deepEqual(
      fromAux.map((r) => r.seq),
      [1, 5],
      "seq 1 and 5 pass; the spoofed seq 4 and everything after the closing frame do not",
    )
    assert.ok(!(await recvs("db1")).some((r) => r.t >= since && r.claimed !== r.from))

    // Logged once per peer and reason, although malformed JSON came twice.
    const dropLogs = (await logs("db1")).filter(
      (l) => l.annotations?.event === "mesh-message-dropped" && l.annotations?.peer === "aux",
    )
    assert.equal(dropLogs.filter((l) => l.annotations?.reason === "malformed-json").length, 1)
    assert.equal(dropLogs.filter((l) => l.annotations?.reason === "schema").length, 1)

    // db1 runs on with its real peers.
    assert.equal(await alive("db1"), true)
    const after = await waitState(
      "db1",
      "connected to db2 and db3",
      (x) => connected(x, "db2") && connected(x, "db3"),
    )
    assert.equal(
      after.metrics.disconnects - before.disconnects,
      1,
      "only aux's connection was closed",
    )
    const later = Date.now()
    await sleep(500)
    const fresh = (await recvs("db1")).filter((r) => r.t >= later)
    assert.ok(fresh.some((r) => r.from === "db2") && fresh.some((r) => r.from === "db3"))
  })

  test("an outbound connection is pinned to the member dialled, and a clean shutdown closes sockets", async () => {
    // aux runs for real in the client namespace, with a config that puts db1
    // at db2's address: dialling "db1" reaches db2, whose certificate says db2.
    const wrong = members.map((m) =>
      m.name === "db1" ? { ...m, address: lab.host("db2").address } : m,
    )
    await startNode("client", nodeConfig("aux", wrong))
    const s = await waitState(
      "client",
      "aux connected to db2 and db3 and refused the fake db1",
      (x) =>
        connected(x, "db2") &&
        connected(x, "db3") &&
        x.metrics.refusedByReason["name-mismatch"] >= 1,
    )
    assert.notEqual(peer(s, "db1").status, "connected")
    assert.match(peer(s, "db1").lastError ?? "", /db2/)
    await waitState(
      "db2",
      "db2 accepted aux",
      (x) => connected(x, "aux") && peer(x, "aux").direction === "inbound",
    )
    const since = Date.now()
    await sleep(500)
    assert.ok((await recvs("db2")).some((r) => r.t >= since && r.from === "aux"))

    // SIGTERM: aux closes its sockets, so db2 and db3 see it go at once, not
    // after the silence timeout.
    const stopAt = Date.now()
    await stopNode("client")
    assert.ok(
      (await lines("client")).some((l) => l.event === "stopped"),
      "aux shut down cleanly",
    )
    for (const self of ["db2", "db3"]) {
      const gone = await waitState(
        self,
        "aux disconnected",
        (x) => !connected(x, "aux"),
        5_000,
        stopAt,
      )
      assert.ok(gone.t - stopAt < DEAD_AFTER, `${self} saw aux leave after ${gone.t - stopAt} ms`)
    }
  })

  test("cutting agent traffic between db1 and db2 separates them; after the heal they reconnect", async () => {
    const before1 = (await latest("db1")).metrics
    const cutAt = Date.now()
    await lab.inject({ _tag: "CutAgent", a: "db1", b: "db2" })
    try {
      await waitState("db1", "db1 lost db2", (x) => !connected(x, "db2"), DEAD_AFTER + 5_000, cutAt)
      await waitState("db2", "db2 lost db1", (x) => !connected(x, "db1"), DEAD_AFTER + 5_000, cutAt)
      // db3 still hears both, and they still hear db3.
      const s3 = await latest("db3")
      assert.ok(connected(s3, "db1") && connected(s3, "db2"), JSON.stringify(s3.peers))
      assert.ok(connected(await latest("db1"), "db3"))
      assert.ok(connected(await latest("db2"), "db3"))
      // db1 keeps trying, with backoff (each try also waits for the connect timeout).
      const lost = Date.now()
      await sleep(6_000)
      const during = (await latest("db1")).metrics
      const tries = during.dialAttempts - before1.dialAttempts
      assert.ok(tries >= 2, `db1 redialled ${tries} times in 6 s`)
      assert.ok(
        tries <= Math.ceil(6_000 / CONNECT_TIMEOUT) + 1,
        `db1 redialled ${tries} times in 6 s`,
      )
      assert.ok(!(await recvs("db1")).some((r) => r.t > lost + 500 && r.from === "db2"))
    } finally {
      await lab.inject({ _tag: "Heal", hosts: [] })
    }
    const healAt = Date.now()
    const back = await waitState(
      "db1",
      "db1 reconnected to db2",
      (x) => connected(x, "db2"),
      BACKOFF_MAX + CONNECT_TIMEOUT + 5_000,
      healAt,
    )
    assert.equal(peer(back, "db2").direction, "outbound")
    assert.equal(peer(back, "db2").reconnects, 1)
    assert.equal(back.metrics.reconnects - before1.reconnects, 1)
    await waitState("db2", "db2 accepted db1 again", (x) => connected(x, "db1"), 5_000, healAt)
    const changes = (await lines("db1")).filter(
      (l) => l.event === "peer" && l.peer === "db2" && Number(l.t) >= cutAt,
    )
    assert.deepEqual(
      changes.map((c) => c.status),
      ["disconnected", "connected"],
      "db1 reported losing db2 and getting it back",
    )
    await sleep(500)
    assert.ok((await recvs("db2")).some((r) => r.t > healAt && r.from === "db1"))
    assert.deepEqual((await meshSockets("db1")).length, 2, "still one connection per pair")
    for (const self of ["db1", "db2", "db3"]) assert.equal(await alive(self), true)
  })

  test("a peer whose agent is down is redialled with capped backoff, and rejoins when it is back", async () => {
    const before1 = (await latest("db1")).metrics
    const before2 = (await latest("db2")).metrics
    const stoppedAt = Date.now()
    await stopNode("db3")
    await waitState("db1", "db1 lost db3", (x) => !connected(x, "db3"), 5_000, stoppedAt)
    // db3's host is up and its port closed: every dial fails at once, so only
    // the backoff keeps db1 and db2 from spinning.
    await sleep(6_000)
    for (const [self, before] of [
      ["db1", before1],
      ["db2", before2],
    ] as const) {
      const now = (await latest(self)).metrics
      const tries = now.dialAttempts - before.dialAttempts
      const failures = now.dialFailures - before.dialFailures
      // Delays double from 100 ms to the 2 s cap (with jitter): about 6 to 12 in 6 s.
      assert.ok(tries >= 4 && tries <= 16, `${self} dialled db3 ${tries} times in about 6 s`)
      assert.equal(failures, tries, `${self}: every dial of the stopped db3 failed`)
      assert.equal(now.disconnects - before.disconnects, 1, `${self} lost only db3`)
      assert.ok(connected(await latest(self), self === "db1" ? "db2" : "db1"))
    }
    const restartedAt = Date.now()
    await startNode("db3", nodeConfig("db3"))
    for (const self of ["db1", "db2"]) {
      const back = await waitState(
        self,
        "db3 back",
        (x) => connected(x, "db3"),
        BACKOFF_MAX + CONNECT_TIMEOUT + 5_000,
        restartedAt,
      )
      assert.equal(peer(back, "db3").reconnects, 1, self)
    }
    await waitState(
      "db3",
      "db3 connected to both",
      (x) => connected(x, "db1") && connected(x, "db2"),
    )
  })

  test("a wall clock stepped forward neither cuts a healthy peer, nor stepped back stops the watch of a silent one", async (t) => {
    // db3's mesh node under Debian's libfaketime, its monotonic clock untouched (issue 16).
    const lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    assert.ok(existsSync(lib), `${lib} is missing: apt-get install -y libfaketime`)
    const dir = mkdtempSync(join(tmpdir(), "mha-faketime-"))
    const clock = join(dir, "db3")
    writeFileSync(clock, "+0\n")
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    await stopNode("db3")
    await startNode("db3", nodeConfig("db3"), {
      LD_PRELOAD: lib,
      FAKETIME_TIMESTAMP_FILE: clock,
      FAKETIME_NO_CACHE: "1",
      DONT_FAKE_MONOTONIC: "1",
    })
    // db3's own lines, after the n-th: its wall clock is not the test's.
    const after = async (n: number) => (await lines("db3")).slice(n)
    const bothConnected = (l: Record<string, unknown>) =>
      l.event === "state" &&
      connected(l as unknown as StateLine, "db1") &&
      connected(l as unknown as StateLine, "db2")
    await waitFor(
      "db3 connected to db1 and db2",
      async () => (await after(0)).some(bothConnected),
      15_000,
    )
    await waitFor(
      "db3's mesh settled",
      async () => (await after(0)).filter(bothConnected).length > 5,
      10_000,
    )

    const beforeJump = (await lines("db3")).length
    writeFileSync(clock, "+60s\n")
    await sleep(DEAD_AFTER + 1_000)
    const jumped = await after(beforeJump)
    const cuts = jumped.filter((l) => typeof l.message === "string" && l.message.includes("silent"))
    assert.deepEqual(
      cuts.map((l) => l.message),
      [],
      "a forward step cut no healthy peer",
    )
    const lost = jumped.filter((l) => l.event === "peer" && l.status === "disconnected")
    assert.deepEqual(lost, [], "db3 lost no peer after a forward step")

    writeFileSync(clock, "-60s\n")
    await sleep(500)
    const beforeCut = (await lines("db3")).length
    await lab.inject({ _tag: "CutAgent", a: "db1", b: "db3" })
    try {
      await waitFor(
        "db3 to cut silent db1 within the dead-after time, its clock stepped back",
        async () =>
          (await after(beforeCut)).some(
            (l) => l.event === "state" && !connected(l as unknown as StateLine, "db1"),
          ),
        DEAD_AFTER + 4_000,
        100,
      )
    } finally {
      await lab.inject({ _tag: "Heal", hosts: [] })
    }
    // Leave db3 as the other tests found it.
    await stopNode("db3")
    await startNode("db3", nodeConfig("db3"))
  })
})
