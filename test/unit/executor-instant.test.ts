// Issue 12: a step's leading outputs that need no waiting (messages, events) are
// performed before the executor returns, without a fiber; a message behind one
// that must wait (a MySQL action) still waits for it. The real executor over two
// real meshes on 127.0.0.1 (db1 sends to db2).
import assert from "node:assert/strict"
import { test } from "node:test"
import { Deferred, Effect, Fiber, Queue, type Schema } from "effect"
import pino from "pino"
import type { MeshService } from "../../agent/src/adapters/mesh.ts"
import type { MysqlActions } from "../../agent/src/adapters/mysql-actuator.ts"
import type { Input, Output } from "../../agent/src/core/types.ts"
import {
  type ExecutorServices,
  makeExecutor,
  type PendingInput,
} from "../../agent/src/daemon/executor.ts"
import { PeerMessage } from "../../shared/peer-messages.ts"
import { bothConnected, waitUntil, withMeshPair } from "../support/mesh-pair.ts"

const ack = (round: number): Output => ({
  _tag: "Send",
  to: "db2",
  message: { _tag: "HeartbeatAck", from: "db1", term: 3, round },
})

/** Messages db1's mesh has written to its connections so far. */
const sentBy = (m: MeshService<PeerMessage>): number => Effect.runSync(m.metrics).messagesOut

/** The rounds of the acknowledgements db2 received, `n` of them, in arrival order. */
const received = (m: MeshService<PeerMessage>, n: number) =>
  Effect.forEach(Array.from({ length: n }), () =>
    Queue.take(m.inboundQueue).pipe(
      Effect.map((i) => (i.message._tag === "HeartbeatAck" ? i.message.round : -1)),
    ),
  )

/** Runs `body` with db1's executor (its mesh, and `local` as its mysqld) and db2's mesh, connected. */
const withExecutor = (
  local: Partial<MysqlActions>,
  body: (
    executor: ReturnType<typeof makeExecutor>,
    m1: MeshService<PeerMessage>,
    m2: MeshService<PeerMessage>,
    completions: Input[],
  ) => Effect.Effect<void>,
) =>
  withMeshPair(PeerMessage as unknown as Schema.Codec<PeerMessage, PeerMessage>, {}, (m1, m2) =>
    Effect.gen(function* () {
      yield* waitUntil("db1 and db2 connected", bothConnected(m1, m2))
      const completions: Input[] = []
      const executor = makeExecutor({
        config: () => ({ mysql: { monitor: { user: "mha" } } }),
        log: pino({ level: "silent" }),
        enqueue: (p: PendingInput) => void completions.push(p(0)),
        mesh: m1,
        mysql: { local, at: () => local },
      } as unknown as ExecutorServices)
      yield* body(executor, m1, m2, completions)
    }),
  )

test("a step of only messages and events is performed before executeNow returns: no fiber is left to run", async () => {
  await withExecutor({}, (executor, m1, m2) =>
    Effect.gen(function* () {
      // One synchronous turn: no microtask, no fiber runs between the call and the checks.
      yield* Effect.sync(() => {
        const before = sentBy(m1)
        const rest = executor.executeNow(
          [
            ack(1),
            { _tag: "Event", level: "info", event: "self-fenced", reason: "between" },
            ack(2),
          ],
          "run-1",
          () => true,
        )
        assert.equal(rest, undefined, "nothing left for a fiber")
        assert.equal(sentBy(m1) - before, 2, "both written to the connection already")
      })
      assert.deepEqual(yield* received(m2, 2), [1, 2], "in order")
    }),
  )
})

test("a message after a MySQL action waits for it; the one before it leaves at once", async () => {
  const released = Deferred.makeUnsafe<void>()
  let stopped = false
  const local: Partial<MysqlActions> = {
    stopReplicaIoThread: Deferred.await(released).pipe(
      Effect.andThen(
        Effect.sync(() => {
          stopped = true
        }),
      ),
    ),
  }
  await withExecutor(local, (executor, m1, m2, completions) =>
    Effect.gen(function* () {
      const before = sentBy(m1)
      const rest = executor.executeNow(
        [ack(1), { _tag: "Mysql", id: 5, action: { _tag: "StopReplicaIo" } }, ack(2)],
        "run-1",
        () => true,
      )
      assert.equal(sentBy(m1) - before, 1, "the message before the action left at once")
      assert.ok(rest !== undefined, "the action and what follows it are left to run")
      const fiber = yield* Effect.forkChild(rest)
      assert.deepEqual(yield* received(m2, 1), [1])
      yield* Effect.sleep(300)
      assert.equal(sentBy(m1) - before, 1, "the message behind the action waits for it")
      assert.equal(yield* Queue.size(m2.inboundQueue), 0)
      assert.equal(completions.length, 0, "the action has not completed")
      yield* Deferred.succeed(released, undefined)
      yield* Fiber.join(fiber)
      assert.ok(stopped)
      assert.deepEqual(
        completions.map((c) => (c._tag === "MysqlDone" ? [c.id, c.ok] : c._tag)),
        [[5, true]],
      )
      assert.equal(sentBy(m1) - before, 2, "sent once the action completed")
      assert.deepEqual(yield* received(m2, 1), [2])
    }),
  )
})
