/**
 * The mesh follows the member list (issue 15 item 1, core/members.ts): a
 * member added to the cluster record is accepted and connected once the
 * agent is told its list changed; a member removed is cut and refused.
 * Three real meshes on 127.0.0.1 with certificates of a fresh cluster CA.
 */
import assert from "node:assert/strict"
import { readFile } from "node:fs/promises"
import { test } from "node:test"
import { Effect, Queue, Schema } from "effect"
import { type MeshPeer, type MeshService, makeMesh } from "../../agent/src/adapters/mesh.ts"
import { MESH_PROTOCOL } from "../../shared/protocol-version.ts"
import { makeCerts } from "../lab/certs.ts"
import { waitUntil } from "../support/mesh-pair.ts"

const Msg = Schema.Struct({ text: Schema.String })
type Msg = typeof Msg.Type

const connectedTo = (m: MeshService<Msg>, peer: string) =>
  Effect.map(m.peerStates, (ps) => ps.some((p) => p.name === peer && p.status === "connected"))

test("setMembers: a new member is accepted and connected, a removed one cut and refused", async () => {
  const certs = await makeCerts({ members: ["db1", "db2", "db3"] })
  try {
    const base = 20_000 + Math.floor(Math.random() * 20_000)
    const all: ReadonlyArray<MeshPeer> = ["db1", "db2", "db3"].map((name, i) => ({
      name,
      address: "127.0.0.1",
      port: base + i,
    }))
    const options = async (self: string, members: ReadonlyArray<MeshPeer>, i: number) => ({
      self,
      members,
      listen: { host: "127.0.0.1", port: base + i },
      tls: {
        ca: await readFile(certs.ca),
        cert: await readFile(certs.members[self]?.cert as string),
        key: await readFile(certs.members[self]?.key as string),
      },
      schema: Msg,
      backoff: { maxMs: 200 },
    })
    // db1 and db2 run with the old list; db3 was started with the new one (the printed block).
    const o1 = await options("db1", all.slice(0, 2), 0)
    const o2 = await options("db2", all.slice(0, 2), 1)
    const o3 = await options("db3", all, 2)
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const m1 = yield* makeMesh(o1)
          const m2 = yield* makeMesh(o2)
          const m3 = yield* makeMesh(o3)
          yield* waitUntil("db1 and db2 connected", connectedTo(m1, "db2"))
          // What the control socket checks before a membership change: the peers' protocol.
          assert.deepEqual(
            (yield* m1.peerStates).find((p) => p.name === "db2")?.protocol,
            MESH_PROTOCOL,
          )
          yield* Effect.sleep(600)
          assert.equal(yield* connectedTo(m3, "db1"), false, "db3 is no member of db1's list yet")
          // The record that adds db3 is accepted: db1's and db2's meshes follow.
          yield* m1.setMembers(all)
          yield* m2.setMembers(all)
          yield* waitUntil("db1 connected to db3", connectedTo(m1, "db3"))
          yield* waitUntil("db2 connected to db3", connectedTo(m2, "db3"))
          // Its messages are delivered.
          yield* m3.send("db1", { text: "hello from db3" })
          const inbound = yield* Queue.take(m1.inboundQueue).pipe(Effect.timeout(2000))
          assert.equal(inbound.from, "db3")
          assert.deepEqual(inbound.message, { text: "hello from db3" })
          // db3 is removed: db1 cuts it and refuses it from now on.
          yield* m1.setMembers(all.slice(0, 2))
          yield* waitUntil(
            "db1 no longer connected to db3",
            Effect.map(connectedTo(m1, "db3"), (c) => !c),
          )
          yield* Effect.sleep(800)
          assert.equal(yield* connectedTo(m3, "db1"), false, "db3 stays cut off from db1")
          assert.deepEqual(
            (yield* m1.peerStates).map((p) => p.name),
            ["db2"],
          )
          assert.equal(yield* connectedTo(m3, "db2"), true, "db2 still lists db3")
        }),
      ).pipe(Effect.orDie),
    )
  } finally {
    await certs.remove()
  }
})
