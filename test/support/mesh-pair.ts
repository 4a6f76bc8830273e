// Two real meshes on 127.0.0.1 (db1 dials db2) with certificates of a fresh
// cluster CA, for unit tests of the mesh adapter (versions, datagrams).
import { readFile } from "node:fs/promises"
import { Effect, type Schema } from "effect"
import { type MeshOptions, type MeshService, makeMesh } from "../../agent/src/adapters/mesh.ts"
import { makeCerts } from "../lab/certs.ts"

/** What each end adds to the common options (its protocol version, datagram settings...). */
export type MeshExtra<A> = Partial<
  Omit<MeshOptions<A, A>, "self" | "members" | "listen" | "tls" | "schema">
>

/** Runs `body` with db1's and db2's meshes; both are closed afterwards, also on failure. */
export const withMeshPair = async <A>(
  schema: Schema.Codec<A, A>,
  extra: { readonly db1?: MeshExtra<A>; readonly db2?: MeshExtra<A> },
  body: (
    m1: MeshService<A>,
    m2: MeshService<A>,
    ports: readonly [number, number],
  ) => Effect.Effect<void>,
): Promise<void> => {
  const certs = await makeCerts({ members: ["db1", "db2"] })
  try {
    const base = 20_000 + Math.floor(Math.random() * 20_000)
    const members = [
      { name: "db1", address: "127.0.0.1", port: base },
      { name: "db2", address: "127.0.0.1", port: base + 1 },
    ]
    const options = async (self: "db1" | "db2", port: number): Promise<MeshOptions<A, A>> => ({
      self,
      members,
      listen: { host: "127.0.0.1", port },
      tls: {
        ca: await readFile(certs.ca),
        cert: await readFile(certs.members[self]?.cert as string),
        key: await readFile(certs.members[self]?.key as string),
      },
      schema,
      backoff: { maxMs: 200 },
      ...extra[self],
    })
    const o1 = await options("db1", base)
    const o2 = await options("db2", base + 1)
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const m1 = yield* makeMesh(o1)
          const m2 = yield* makeMesh(o2)
          yield* body(m1, m2, [base, base + 1])
        }),
      ).pipe(Effect.orDie),
    )
  } finally {
    await certs.remove()
  }
}

/** Polls `check` every 50 ms until it holds; dies naming `what` after `ms`. */
export const waitUntil = (what: string, check: Effect.Effect<boolean>, ms = 10_000) =>
  Effect.gen(function* () {
    const end = Date.now() + ms
    while (Date.now() < end) {
      if (yield* check) return
      yield* Effect.sleep(50)
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

/** Both ends have their connection open. */
export const bothConnected = <A>(m1: MeshService<A>, m2: MeshService<A>) =>
  Effect.map(
    Effect.all([m1.peerStates, m2.peerStates]),
    ([a, b]) => a.some((p) => p.status === "connected") && b.some((p) => p.status === "connected"),
  )
