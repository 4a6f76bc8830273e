/**
 * The mesh's liveness sweep (issue 12): it runs after sends instead of on a
 * timer of its own, and still cuts a peer that never answers. A real mesh
 * (db2) on 127.0.0.1 and a hand-made peer dialling it as db1 (a WebSocket
 * client with db1's certificate) that answers nothing: no pong, no message.
 * Also what the peer receives per write: the frames of one turn arrive in
 * one TLS record (mesh.ts cork).
 */
import assert from "node:assert/strict"
import { readFile } from "node:fs/promises"
import type { IncomingMessage } from "node:http"
import { test } from "node:test"
import { Effect, Schema } from "effect"
import WebSocket from "ws"
import { MESH_PATH, type MeshService, makeMesh } from "../../agent/src/adapters/mesh.ts"
import { type LabCerts, makeCerts } from "../lab/certs.ts"
import { waitUntil } from "../support/mesh-pair.ts"

const Msg = Schema.Struct({ text: Schema.String })
type Msg = typeof Msg.Type

interface SilentPeer {
  /** Pings and messages received from the mesh so far. */
  readonly pings: () => number
  readonly messages: () => number
  /** Chunks of decrypted data read from the TLS socket: one per TLS record. */
  readonly records: () => number
  readonly closed: () => boolean
  readonly close: () => void
}

/** Dials the mesh as db1 and never answers: no pong (autoPong off), no message. */
const dialSilent = async (certs: LabCerts, port: number): Promise<SilentPeer> => {
  const files = certs.members.db1
  if (files === undefined) throw new Error("no certificate for db1")
  const ws = new WebSocket(`wss://127.0.0.1:${port}${MESH_PATH}`, {
    ca: await readFile(certs.ca),
    cert: await readFile(files.cert),
    key: await readFile(files.key),
    servername: "db2",
    checkServerIdentity: () => undefined,
    autoPong: false,
    perMessageDeflate: false,
  } as unknown as WebSocket.ClientOptions)
  let pings = 0
  let messages = 0
  let records = 0
  let closed = false
  ws.on("upgrade", (res: IncomingMessage) => {
    res.socket.on("data", () => {
      records += 1
    })
  })
  ws.on("ping", () => {
    pings += 1
  })
  ws.on("message", () => {
    messages += 1
  })
  ws.on("error", () => {})
  ws.on("close", () => {
    closed = true
  })
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve())
    ws.once("error", reject)
  })
  return {
    pings: () => pings,
    messages: () => messages,
    records: () => records,
    closed: () => closed,
    close: () => ws.terminate(),
  }
}

/** Runs `body` with db2's mesh (db1 is the lower name: db2 only accepts, never dials). */
const withMesh = async (
  timing: { readonly pingIntervalMs: number; readonly deadAfterMs: number },
  body: (mesh: MeshService<Msg>, certs: LabCerts, port: number) => Effect.Effect<void>,
): Promise<void> => {
  const certs = await makeCerts({ members: ["db1", "db2"] })
  try {
    const base = 20_000 + Math.floor(Math.random() * 20_000)
    const files = certs.members.db2
    if (files === undefined) throw new Error("no certificate for db2")
    const options = {
      self: "db2",
      members: [
        { name: "db1", address: "127.0.0.1", port: base },
        { name: "db2", address: "127.0.0.1", port: base + 1 },
      ],
      listen: { host: "127.0.0.1", port: base + 1 },
      tls: {
        ca: await readFile(certs.ca),
        cert: await readFile(files.cert),
        key: await readFile(files.key),
      },
      schema: Msg,
      ...timing,
    }
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const mesh = yield* makeMesh(options)
          yield* body(mesh, certs, base + 1)
        }),
      ).pipe(Effect.orDie),
    )
  } finally {
    await certs.remove()
  }
}

const db1 = (mesh: MeshService<Msg>) =>
  Effect.map(mesh.peerStates, (ps) => ps.find((p) => p.name === "db1"))

const connected = (mesh: MeshService<Msg>) =>
  Effect.map(db1(mesh), (p) => p?.status === "connected")

/** Sends to db1 every 50 ms until the returned stop is called. */
const sendEvery50ms = (mesh: MeshService<Msg>) => {
  let n = 0
  const timer = setInterval(() => {
    n += 1
    mesh.sendNow("db1", { text: `beat ${n}` })
  }, 50)
  return () => clearInterval(timer)
}

/** The silent time the mesh named when it cut db1. */
const cutAfter = (lastError: string | null | undefined): number => {
  const m = /^nothing received for (\d+) ms$/.exec(lastError ?? "")
  assert.ok(m, `cut as silent, not otherwise: ${lastError}`)
  return Number(m[1])
}

test("a peer that is sent to but never answers is cut after deadAfterMs; so is one nothing is sent to", async () => {
  await withMesh({ pingIntervalMs: 100, deadAfterMs: 600 }, (mesh, certs, port) =>
    Effect.gen(function* () {
      // Sent to: the sweeps run from the sends.
      const peer = yield* Effect.promise(() => dialSilent(certs, port))
      yield* waitUntil("db2 to see db1 connected", connected(mesh))
      const stop = sendEvery50ms(mesh)
      try {
        yield* waitUntil(
          "db2 to cut db1",
          Effect.map(connected(mesh), (c) => !c),
        )
      } finally {
        stop()
      }
      assert.ok(cutAfter((yield* db1(mesh))?.lastError) > 600)
      assert.ok(peer.messages() > 0, "the messages reached the silent peer")
      assert.ok(peer.pings() > 0, "and pings, since nothing came back")
      yield* waitUntil(
        "the silent peer to see its connection closed",
        Effect.sync(() => peer.closed()),
      )

      // Nothing sent: the fallback timer still sweeps. (What was queued for db1
      // while it was away is delivered on connecting; that runs no sweep.)
      const idle = yield* Effect.promise(() => dialSilent(certs, port))
      try {
        yield* waitUntil("db2 to see db1 connected again", connected(mesh))
        yield* waitUntil(
          "db2 to cut the idle db1",
          Effect.map(connected(mesh), (c) => !c),
        )
        assert.ok(cutAfter((yield* db1(mesh))?.lastError) > 600)
        assert.ok(idle.pings() > 0, "pinged by the timer's sweeps")
      } finally {
        idle.close()
      }
    }),
  )
})

test("the sweep runs from sends: pings go out while messages are sent to a silent peer, none on a timer of the ping period once they stop", async () => {
  // The fallback timer waits max(2 × 100, 60000 - 100) ms after a sweep run by
  // a send: within the second after the sends stop only a sweep on the ping
  // period (the interval timer this replaced) would ping.
  await withMesh({ pingIntervalMs: 100, deadAfterMs: 60_000 }, (mesh, certs, port) =>
    Effect.gen(function* () {
      const peer = yield* Effect.promise(() => dialSilent(certs, port))
      try {
        yield* waitUntil("db2 to see db1 connected", connected(mesh))
        const before = peer.pings()
        const stop = sendEvery50ms(mesh)
        yield* Effect.sleep(1_000)
        stop()
        // The last ping on its way.
        yield* Effect.sleep(200)
        const during = peer.pings() - before
        assert.ok(during >= 3, `pinged while sent to (a sweep per 100 ms of sends): ${during}`)
        assert.ok(peer.messages() >= 10, `${peer.messages()} messages`)
        const after = peer.pings()
        yield* Effect.sleep(1_000)
        assert.equal(peer.pings(), after, "no sweep without sends before the fallback is due")
        assert.equal(yield* connected(mesh), true, "not cut: deadAfterMs is 60 s")
      } finally {
        peer.close()
      }
    }),
  )
})

test("the frames sent to a peer in one turn reach it in one TLS record", async () => {
  await withMesh({ pingIntervalMs: 60_000, deadAfterMs: 120_000 }, (mesh, certs, port) =>
    Effect.gen(function* () {
      const peer = yield* Effect.promise(() => dialSilent(certs, port))
      try {
        yield* waitUntil("db2 to see db1 connected", connected(mesh))
        for (const batch of [1, 2, 3]) {
          const messages = peer.messages()
          const records = peer.records()
          for (let i = 0; i < batch; i++) mesh.sendNow("db1", { text: `${batch}.${i}` })
          yield* waitUntil(
            `${batch} messages to arrive`,
            Effect.sync(() => peer.messages() === messages + batch),
          )
          assert.equal(peer.records() - records, 1, `${batch} frames sent in one turn`)
        }
      } finally {
        peer.close()
      }
    }),
  )
})
