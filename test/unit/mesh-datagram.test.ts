// Heartbeat datagrams beside the mesh's TLS connections (adapters/mesh-datagram.ts):
// the sealing rules one by one, then two real meshes on 127.0.0.1 exchanging
// datagrams with keys from their TLS connection. The lab's scenario 6 (30 %
// loss on every host) is what they are for.
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { createSocket } from "node:dgram"
import { test } from "node:test"
import { Effect, Queue, Schema } from "effect"
import type { MeshService } from "../../agent/src/adapters/mesh.ts"
import { DatagramKeys } from "../../agent/src/adapters/mesh-datagram.ts"
import { copyName, datagramCopy, forPeerVersion } from "../../agent/src/daemon/peer-datagrams.ts"
import { PeerMessage } from "../../shared/peer-messages.ts"
import type { ProtocolVersion } from "../../shared/protocol-version.ts"
import { bothConnected, type MeshExtra, waitUntil, withMeshPair } from "../support/mesh-pair.ts"

/** Both ends of one connection: db1's keys and db2's, as each derives them. */
const pair = () => {
  const k1 = randomBytes(32) // what db1 seals with
  const k2 = randomBytes(32) // what db2 seals with
  const db1 = new DatagramKeys()
  const db2 = new DatagramKeys()
  db1.connected("db2", k1, k2)
  db2.connected("db1", k2, k1)
  return { db1, db2, k1, k2 }
}

test("a sealed datagram opens once at its peer, naming the sender; tampered, replayed, unknown or short ones are dropped", () => {
  const { db1, db2 } = pair()
  const payload = Buffer.from('{"_tag":"Beat"}')
  const d = db1.seal("db2", payload)
  assert.ok(d !== undefined)
  const opened = db2.open(d)
  assert.equal(opened._tag, "Opened")
  assert.equal(opened._tag === "Opened" && opened.peer, "db1")
  assert.deepEqual(opened._tag === "Opened" && opened.payload, payload)

  assert.deepEqual(db2.open(d), { _tag: "Dropped", reason: "replay" }, "the same datagram again")
  const newer = db1.seal("db2", payload) as Buffer
  const older = db1.seal("db2", payload) as Buffer
  assert.equal(db2.open(older)._tag, "Opened")
  assert.deepEqual(db2.open(newer), { _tag: "Dropped", reason: "replay" }, "reordered: older")

  const tampered = Buffer.from(db1.seal("db2", payload) as Buffer)
  tampered.writeUInt8(tampered.readUInt8(tampered.length - 2) ^ 1, tampered.length - 2)
  assert.deepEqual(db2.open(tampered), { _tag: "Dropped", reason: "bad-mac" })
  assert.deepEqual(db2.open(Buffer.from("MHA1")), { _tag: "Dropped", reason: "malformed" })
  assert.deepEqual(db2.open(Buffer.alloc(100)), { _tag: "Dropped", reason: "malformed" })
  const stranger = new DatagramKeys()
  stranger.connected("db2", randomBytes(32), randomBytes(32))
  assert.deepEqual(db2.open(stranger.seal("db2", payload) as Buffer), {
    _tag: "Dropped",
    reason: "unknown-key",
  })
  assert.equal(new DatagramKeys().seal("db2", payload), undefined, "no connection, no datagram")
})

test("a datagram cannot be reflected to its sender: each direction has its own key", () => {
  const { db1 } = pair()
  const d = db1.seal("db2", Buffer.from("{}")) as Buffer
  assert.deepEqual(db1.open(d), { _tag: "Dropped", reason: "unknown-key" })
})

test("keys outlive their connection until two newer ones replaced them", () => {
  const { db1, db2 } = pair()
  const first = db1.seal("db2", Buffer.from("1")) as Buffer
  const reconnect = () => {
    const a = randomBytes(32)
    const b = randomBytes(32)
    db1.connected("db2", a, b)
    db2.connected("db1", b, a)
  }
  reconnect()
  assert.equal(db2.open(Buffer.from(first))._tag, "Opened", "sealed before the reconnection")
  assert.equal(db2.open(db1.seal("db2", Buffer.from("2")) as Buffer)._tag, "Opened")
  const second = db1.seal("db2", Buffer.from("3")) as Buffer
  reconnect()
  assert.equal(db2.open(second)._tag, "Opened", "the previous connection's key still opens")
  reconnect()
  assert.deepEqual(db2.open(db1.seal("db2", Buffer.from("4")) as Buffer)._tag, "Opened")
})

// ---- two real meshes -------------------------------------------------------------------

const Beat = Schema.TaggedStruct("Beat", {
  from: Schema.String,
  seq: Schema.Int,
  via: Schema.optionalKey(Schema.String),
})
type Beat = typeof Beat.Type

/** db1 and db2 on 127.0.0.1, datagram copies marked `via: "udp"`; db2 may speak an older protocol. */
const withPair = (
  db2Protocol: ProtocolVersion | undefined,
  dedupe: boolean,
  body: (
    m1: MeshService<Beat>,
    m2: MeshService<Beat>,
    ports: readonly [number, number],
  ) => Effect.Effect<void>,
) => {
  const both: MeshExtra<Beat> = {
    claimedSender: (m) => m.from,
    datagram: (m) => ({ ...m, via: "udp" }),
    ...(dedupe ? { datagramId: (m: Beat) => `${m.seq}` } : {}),
  }
  return withMeshPair(
    Beat,
    {
      db1: both,
      db2: { ...both, ...(db2Protocol === undefined ? {} : { protocol: db2Protocol }) },
    },
    body,
  )
}

const connected = (m1: MeshService<Beat>, m2: MeshService<Beat>) =>
  waitUntil("db1 and db2 connected", bothConnected(m1, m2))

test("two meshes: every message goes on the TLS connection, and its datagram copy arrives too, from the member the key names", async () => {
  await withPair(undefined, false, (m1, m2, [, port2]) =>
    Effect.gen(function* () {
      yield* connected(m1, m2)
      // The inbound end may attach (and derive its keys) a moment after the dialler.
      yield* Effect.sleep(200)
      yield* m1.send("db2", { _tag: "Beat", from: "db1", seq: 1 }).pipe(Effect.orDie)
      yield* m2.broadcast({ _tag: "Beat", from: "db2", seq: 2 }).pipe(Effect.orDie)
      const at2 = [yield* Queue.take(m2.inboundQueue), yield* Queue.take(m2.inboundQueue)]
      const at1 = [yield* Queue.take(m1.inboundQueue), yield* Queue.take(m1.inboundQueue)]
      assert.deepEqual(at2.map((m) => [m.from, m.message.via ?? "tls"]).sort(), [
        ["db1", "tls"],
        ["db1", "udp"],
      ])
      assert.deepEqual(at1.map((m) => [m.from, m.message.via ?? "tls"]).sort(), [
        ["db2", "tls"],
        ["db2", "udp"],
      ])
      assert.equal((yield* m1.metrics).datagramsOut, 1)
      assert.equal((yield* m2.metrics).datagramsIn, 1)

      // Forged: a datagram from no connection's key, or garbage, is counted and dropped.
      const before = (yield* m2.metrics).droppedDatagramsByReason
      const forger = new DatagramKeys()
      forger.connected("db2", randomBytes(32), randomBytes(32))
      const forged = forger.seal(
        "db2",
        Buffer.from(JSON.stringify({ _tag: "Beat", from: "db1", seq: 9 })),
      )
      yield* Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            const udp = createSocket("udp4")
            udp.send(forged as Buffer, port2, "127.0.0.1", () =>
              udp.send(Buffer.from("hello"), port2, "127.0.0.1", () => {
                udp.close()
                resolve()
              }),
            )
          }),
      )
      yield* waitUntil(
        "db2 to count both drops",
        Effect.map(m2.metrics, (x) => {
          const d = x.droppedDatagramsByReason
          return d["unknown-key"] > before["unknown-key"] && d.malformed > before.malformed
        }),
      )
      assert.equal(yield* Queue.size(m2.inboundQueue), 0, "nothing forged was delivered")
    }),
  )
})

test("two meshes: the same message object sent again (a broadcast's Sends, one per peer) reuses its frame; another message is encoded afresh", async () => {
  await withPair(undefined, false, (m1, m2) =>
    Effect.gen(function* () {
      yield* connected(m1, m2)
      yield* Effect.sleep(200)
      const first: Beat = { _tag: "Beat", from: "db1", seq: 1 }
      yield* m1.send("db2", first).pipe(Effect.orDie)
      yield* m1.send("db2", first).pipe(Effect.orDie)
      // Equal content, another object; then a different message.
      yield* m1.send("db2", { _tag: "Beat", from: "db1", seq: 1 }).pipe(Effect.orDie)
      yield* m1.send("db2", { _tag: "Beat", from: "db1", seq: 2 }).pipe(Effect.orDie)
      // An unknown peer fails as before and leaves the reused frame alone.
      const unknown = yield* Effect.flip(
        m1.send("db9", { _tag: "Beat", from: "db1", seq: 3 }),
      ).pipe(Effect.orDie)
      assert.equal(unknown.reason, "unknown-peer")
      yield* m1.send("db2", first).pipe(Effect.orDie)
      const got: Array<[number, string]> = []
      for (let i = 0; i < 10; i++) {
        const m = yield* Queue.take(m2.inboundQueue)
        got.push([m.message.seq, m.message.via ?? "tls"])
      }
      assert.deepEqual(got.sort(), [
        [1, "tls"],
        [1, "tls"],
        [1, "tls"],
        [1, "tls"],
        [1, "udp"],
        [1, "udp"],
        [1, "udp"],
        [1, "udp"],
        [2, "tls"],
        [2, "udp"],
      ])
      assert.equal((yield* m1.metrics).datagramsOut, 5)
    }),
  )
})

test("two meshes: a peer that announced protocol 1.1 gets no datagrams", async () => {
  await withPair({ major: 1, minor: 1 }, false, (m1, m2) =>
    Effect.gen(function* () {
      yield* connected(m1, m2)
      yield* Effect.sleep(200)
      yield* m1.send("db2", { _tag: "Beat", from: "db1", seq: 1 }).pipe(Effect.orDie)
      const got = yield* Queue.take(m2.inboundQueue)
      assert.equal(got.message.via, undefined)
      assert.equal((yield* m1.metrics).datagramsOut, 0, "db1 sends none to a 1.1 peer")
    }),
  )
})

test("two meshes naming their messages: the first copy is delivered, the second is counted and dropped", async () => {
  await withPair(undefined, true, (m1, m2) =>
    Effect.gen(function* () {
      yield* connected(m1, m2)
      yield* Effect.sleep(200)
      for (const seq of [1, 2, 3])
        yield* m1.send("db2", { _tag: "Beat", from: "db1", seq }).pipe(Effect.orDie)
      yield* waitUntil(
        "db2 to have seen both copies of the three",
        Effect.map(m2.metrics, (x) => x.duplicates === 3),
      )
      const got = [yield* Queue.takeAll(m2.inboundQueue)].flat()
      assert.deepEqual(
        got.map((m) => m.message.seq).sort(),
        [1, 2, 3],
        "each message once, whichever way came first",
      )
    }),
  )
})

test("two meshes naming their messages from the JSON too: the second copy is dropped before it is decoded", async () => {
  // claimedSender runs on every decoded message: it counts the decodes on db2.
  let decodedAt2 = 0
  const both: MeshExtra<Beat> = {
    claimedSender: (m) => m.from,
    datagram: (m) => ({ ...m, via: "udp" }),
    datagramId: (m) => `${m.seq}`,
    encodedDatagramId: (json) => ("seq" in json ? `${json.seq}` : undefined),
  }
  await withMeshPair(
    Beat,
    {
      db1: both,
      db2: {
        ...both,
        claimedSender: (m) => {
          decodedAt2 += 1
          return m.from
        },
      },
    },
    (m1, m2) =>
      Effect.gen(function* () {
        yield* connected(m1, m2)
        yield* Effect.sleep(200)
        for (const seq of [1, 2, 3])
          yield* m1.send("db2", { _tag: "Beat", from: "db1", seq }).pipe(Effect.orDie)
        yield* waitUntil(
          "db2 to have seen both copies of the three",
          Effect.map(m2.metrics, (x) => x.duplicates === 3),
        )
        const got = [yield* Queue.takeAll(m2.inboundQueue)].flat()
        assert.deepEqual(got.map((m) => m.message.seq).sort(), [1, 2, 3])
        assert.equal(decodedAt2, 3, "only the first copy of each was decoded")
      }),
  )
})

test("a mesh with a fast decoder: what it answers is delivered as it answered, what it leaves goes to the Schema", async () => {
  // The fast decoder marks what it decoded; it answers for even sequence numbers only.
  const fast = (json: unknown): Beat | undefined => {
    const j = json as { from?: unknown; seq?: unknown }
    return typeof j.seq === "number" && j.seq % 2 === 0 && typeof j.from === "string"
      ? { _tag: "Beat", from: j.from, seq: j.seq, via: "fast" }
      : undefined
  }
  await withMeshPair(Beat, { db1: {}, db2: { fastDecode: fast } }, (m1, m2) =>
    Effect.gen(function* () {
      yield* connected(m1, m2)
      for (const seq of [1, 2, 3, 4])
        yield* m1.send("db2", { _tag: "Beat", from: "db1", seq }).pipe(Effect.orDie)
      yield* waitUntil(
        "db2 to have the four",
        Effect.map(Queue.size(m2.inboundQueue), (n) => n === 4),
      )
      const got = [yield* Queue.takeAll(m2.inboundQueue)].flat().map((m) => m.message)
      assert.deepEqual(got.map((m) => `${m.seq} ${m.via ?? "schema"}`).sort(), [
        "1 schema",
        "2 fast",
        "3 schema",
        "4 fast",
      ])
    }),
  )
})

const heartbeat = (from: string, leader: string | null) =>
  Schema.decodeUnknownSync(PeerMessage)({
    _tag: "Heartbeat",
    from,
    bootId: "b",
    term: 3,
    leader,
    round: 7,
    active: true,
    observation: null,
    probedPrimary: null,
    primaryReachable: null,
    primaryFenced: null,
    heardFrom: [],
    record: {
      term: 1,
      seq: 2,
      paused: false,
      excluded: [],
      lineage: [],
      lastFailoverTerm: 0,
      recoveryAcked: false,
      primary: "db1",
      primaryUuid: null,
      base: "",
      history: [],
    },
  })

test("the agent's datagram copy of a heartbeat decodes without its record; an acknowledgement goes as it is", () => {
  const decode = Schema.decodeUnknownSync(PeerMessage)
  const hb = heartbeat("db1", "db1")
  assert.ok(hb._tag === "Heartbeat" && hb.record !== undefined)
  const copy = datagramCopy(hb)
  assert.ok(copy !== undefined)
  const decoded = decode(JSON.parse(JSON.stringify(copy)))
  assert.equal(decoded._tag === "Heartbeat" && decoded.record, undefined)
  const ack = decode({ _tag: "HeartbeatAck", from: "db2", term: 3, round: 7 })
  assert.equal(datagramCopy(ack), ack)
  // A heartbeat with its record is not the same copy as its datagram (which lacks it): both count.
  assert.notEqual(copyName(hb), copyName(copy as object))
  const { record: _, ...lean } = hb as { record?: unknown }
  assert.equal(copyName(lean), copyName(copy as object))
  assert.equal(copyName(JSON.parse(JSON.stringify(hb))), copyName(hb), "the same from its JSON")
})

test("the agent's datagrams: a leader's heartbeats and acknowledgements have a copy, a follower's heartbeat none, every heartbeat without a leader one", () => {
  const ack = Schema.decodeUnknownSync(PeerMessage)({
    _tag: "HeartbeatAck",
    from: "db2",
    term: 3,
    round: 7,
  })
  assert.notEqual(datagramCopy(heartbeat("db1", "db1")), undefined)
  assert.equal(datagramCopy(ack), ack)
  assert.equal(datagramCopy(heartbeat("db2", "db1")), undefined)
  assert.notEqual(datagramCopy(heartbeat("db2", null)), undefined)
  // A follower's heartbeat carrying its acknowledgement (protocol 1.5): the lease lives on it.
  const riding = withAck(heartbeat("db2", "db1"))
  const copy = datagramCopy(riding)
  assert.ok(copy?._tag === "Heartbeat" && copy.record === undefined)
  assert.deepEqual(copy.ack, { term: 3, round: 7 })
  assert.equal(copyName(copy), copyName(lean(riding)), "named as its lean TLS copy")
})

const withAck = (m: PeerMessage): PeerMessage =>
  m._tag === "Heartbeat" ? { ...m, ack: { term: m.term, round: m.round } } : m
const lean = (m: PeerMessage): PeerMessage => {
  if (m._tag !== "Heartbeat") return m
  const { record: _, ...rest } = m
  return rest
}

test("an acknowledgement riding on a heartbeat is split in two for a peer older than 1.5 or not yet connected, the acknowledgement first", () => {
  const riding = lean(withAck(heartbeat("db2", "db1")))
  for (const version of [{ major: 1, minor: 4 }, { major: 1, minor: 0 }, undefined]) {
    const split = forPeerVersion(riding, version)
    assert.deepEqual(
      split,
      [{ _tag: "HeartbeatAck", from: "db2", term: 3, round: 7 }, lean(heartbeat("db2", "db1"))],
      `for ${JSON.stringify(version)}`,
    )
  }
  assert.equal(forPeerVersion(riding, { major: 1, minor: 5 }), undefined, "1.5 takes it whole")
  assert.equal(forPeerVersion(riding, { major: 2, minor: 0 }), undefined)
  assert.equal(forPeerVersion(heartbeat("db2", "db1"), undefined), undefined, "no ack: as it is")
})

test("two meshes: a heartbeat carrying an acknowledgement reaches a 1.5 peer whole and a 1.4 peer as the two messages", async () => {
  const riding = lean(withAck(heartbeat("db1", "db2")))
  for (const [minor, expected] of [
    [5, [riding]],
    [4, forPeerVersion(riding, { major: 1, minor: 4 })],
  ] as const) {
    // The agent's own messages (their encoded form only differs in defaults the record has).
    await withMeshPair(
      PeerMessage as unknown as Schema.Codec<PeerMessage, PeerMessage>,
      { db1: { forPeerVersion }, db2: { protocol: { major: 1, minor } } },
      (m1, m2) =>
        Effect.gen(function* () {
          yield* waitUntil("db1 and db2 connected", bothConnected(m1, m2))
          yield* m1.send("db2", riding).pipe(Effect.orDie)
          yield* waitUntil(
            `db2 (1.${minor}) to have ${expected?.length} messages`,
            Effect.map(Queue.size(m2.inboundQueue), (n) => n === expected?.length),
          )
          yield* Effect.sleep(100)
          const got = [yield* Queue.takeAll(m2.inboundQueue)].flat().map((m) => m.message)
          assert.deepEqual(got, expected, `to a 1.${minor} peer`)
        }),
    )
  }
})
