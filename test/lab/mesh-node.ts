// A mesh endpoint for the lab tests: runs the real Mesh adapter for one member
// inside a lab host, broadcasts a small "Beat" message every `intervalMs`, and
// writes what happens as JSON lines on stdout:
//   {"event":"started"}                                 once listening
//   {"event":"recv","from":..,"claimed":..,"seq":..}   per received message
//   {"event":"peer","peer":..,"status":..,"direction":..}  per connection opened or closed
//   {"event":"state","peers":[..],"metrics":{..}}       every `stateEveryMs`
//   {"event":"stopped"}                                 after a clean shutdown (SIGTERM)
// Log lines of the adapter are JSON too (Effect's consoleJson logger).
//
// usage: node mesh-node.ts '<MeshNodeConfig as JSON>'
import { readFileSync } from "node:fs"
import { Effect, Fiber, Logger, Schedule, Schema, Stream } from "effect"
import { type MeshPeer, makeMesh } from "../../agent/src/adapters/mesh.ts"

/** The test's own message Schema (not the agent's peer messages). */
export const Beat = Schema.TaggedStruct("Beat", {
  from: Schema.String,
  seq: Schema.Int,
  pad: Schema.optionalKey(Schema.String),
})
export type Beat = typeof Beat.Type

export interface MeshNodeConfig {
  readonly self: string
  readonly members: ReadonlyArray<MeshPeer>
  readonly listenHost: string
  readonly listenPort: number
  /** Paths of PEM files. */
  readonly ca: string
  readonly cert: string
  readonly key: string
  readonly intervalMs: number
  readonly stateEveryMs: number
  readonly maxMessageBytes?: number
  readonly maxFrameBytes?: number
  readonly pingIntervalMs?: number
  readonly deadAfterMs?: number
  readonly connectTimeoutMs?: number
  readonly backoffMaxMs?: number
  /** Drop messages whose `from` differs from the certificate name. */
  readonly checkClaimedSender?: boolean
}

const emit = (line: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ t: Date.now(), ...line })}\n`)

const main = (cfg: MeshNodeConfig) =>
  Effect.gen(function* () {
    const mesh = yield* makeMesh({
      self: cfg.self,
      members: cfg.members,
      listen: { host: cfg.listenHost, port: cfg.listenPort },
      tls: {
        ca: readFileSync(cfg.ca),
        cert: readFileSync(cfg.cert),
        key: readFileSync(cfg.key),
      },
      schema: Beat,
      ...(cfg.maxMessageBytes === undefined ? {} : { maxMessageBytes: cfg.maxMessageBytes }),
      ...(cfg.maxFrameBytes === undefined ? {} : { maxFrameBytes: cfg.maxFrameBytes }),
      ...(cfg.pingIntervalMs === undefined ? {} : { pingIntervalMs: cfg.pingIntervalMs }),
      ...(cfg.deadAfterMs === undefined ? {} : { deadAfterMs: cfg.deadAfterMs }),
      ...(cfg.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: cfg.connectTimeoutMs }),
      ...(cfg.backoffMaxMs === undefined ? {} : { backoff: { maxMs: cfg.backoffMaxMs } }),
      ...(cfg.checkClaimedSender ? { claimedSender: (m: Beat) => m.from } : {}),
    })
    emit({ event: "started", self: cfg.self, pid: process.pid })
    yield* Stream.runForEach(mesh.inbound, (m) =>
      Effect.sync(() =>
        emit({ event: "recv", from: m.from, claimed: m.message.from, seq: m.message.seq }),
      ),
    ).pipe(Effect.forkScoped)
    yield* Stream.runForEach(mesh.peerChanges, (c) =>
      Effect.sync(() => emit({ event: "peer", ...c })),
    ).pipe(Effect.forkScoped)
    let seq = 0
    yield* Effect.suspend(() => {
      seq += 1
      return mesh.broadcast({ _tag: "Beat", from: cfg.self, seq })
    }).pipe(
      Effect.catch((e) => Effect.sync(() => emit({ event: "send-error", error: e.message }))),
      Effect.repeat(Schedule.spaced(cfg.intervalMs)),
      Effect.forkScoped,
    )
    return yield* Effect.gen(function* () {
      const peers = yield* mesh.peerStates
      const metrics = yield* mesh.metrics
      emit({ event: "state", peers, metrics })
    }).pipe(Effect.repeat(Schedule.spaced(cfg.stateEveryMs)))
  }).pipe(Effect.scoped)

const cfg = JSON.parse(process.argv[2] ?? "{}") as MeshNodeConfig
const fiber = Effect.runFork(main(cfg).pipe(Effect.provide(Logger.layer([Logger.consoleJson]))))
process.on("SIGTERM", () => {
  Effect.runFork(Fiber.interrupt(fiber))
})
fiber.addObserver((exit) => {
  if (exit._tag === "Failure" && !exit.cause.reasons.every((r) => r._tag === "Interrupt")) {
    emit({ event: "failed", cause: String(exit.cause) })
    process.exit(1)
  }
  emit({ event: "stopped" })
  process.exit(0)
})
