/**
 * A hard state that cannot be written (daemon level: the real decision loop
 * and executor, the real file adapter writing below a path that is not a
 * directory). The vote of a forced election is persisted first, and that
 * write fails: the election's own batch stops there, but the loop runs on
 * and its resend of the vote request (a later step, without a persist of
 * its own) must not leave either: a peer would rely on a term and a vote
 * that are on no disk. The agent asks to exit (systemd restarts it from the
 * file). A slow write that succeeds only delays the messages after it.
 */
import assert from "node:assert/strict"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type TestContext, test } from "node:test"
import { Effect, Fiber, Option, Queue } from "effect"
import pino from "pino"
import { HardStateFile, type HardStateStore } from "../../agent/src/adapters/hard-state-file.ts"
import type { MeshService } from "../../agent/src/adapters/mesh.ts"
import type { VipService } from "../../agent/src/adapters/vip.ts"
import { initialRecord } from "../../agent/src/core/cluster-record.ts"
import type { HardState, Input } from "../../agent/src/core/types.ts"
import { runDecisionLoop } from "../../agent/src/daemon/decision-loop.ts"
import {
  type ExecutorServices,
  makeExecutor,
  type PendingInput,
} from "../../agent/src/daemon/executor.ts"
import { HardStateSchema } from "../../agent/src/daemon/run.ts"
import type { Config } from "../../shared/config.ts"
import type { PeerMessage } from "../../shared/peer-messages.ts"
import { config3 } from "./daemon-states.ts"

const log = pino({ level: "silent" })

interface Sent {
  readonly at: number
  readonly to: string
  readonly message: PeerMessage
}

/** The decision loop of db2 with the executor, a recording mesh and `store`; runs `forMs`. */
const runAgent = async (store: HardStateStore<HardState>, forMs: number) => {
  const sent: Sent[] = []
  const fatal: string[] = []
  const mesh = {
    sendNow: (to: string, message: PeerMessage) => void sent.push({ at: Date.now(), to, message }),
  } as unknown as MeshService<PeerMessage>
  const program = Effect.gen(function* () {
    const inbox = yield* Queue.unbounded<PendingInput>()
    const enqueue = (input: PendingInput) => void Queue.offerUnsafe(inbox, input)
    const executor = makeExecutor({
      config: () => ({}) as Config,
      log,
      enqueue,
      hardState: store,
      mesh,
      fatal: (reason: string) => void fatal.push(reason),
      operatorReply: () => {},
    } as unknown as ExecutorServices)
    const loop = yield* Effect.forkChild(
      runDecisionLoop({
        self: "db2",
        clusterConfig: () => config3,
        inbox,
        hardState: store,
        execute: executor.executeNow,
        publish: () => {},
        log,
      }),
    )
    // Its grants are complete (a node stands only once they have been checked).
    enqueue((now) => ({
      _tag: "PrivilegesChecked",
      now,
      result: { _tag: "Checked", user: "mha@%", missing: [] },
    }))
    // The operator forces an election: a new term and a vote for itself, persisted first.
    enqueue((now) => ({
      _tag: "Operator",
      now,
      requestId: 1,
      request: { _tag: "Failover", to: null },
    }))
    const started = Date.now()
    while (Date.now() - started < forMs) {
      enqueue((now) => ({ _tag: "Tick", now, random: 0.5 }))
      yield* Effect.sleep(50)
    }
    yield* Fiber.interrupt(loop)
  })
  await Effect.runPromise(program)
  const voteRequests = sent.filter((s) => s.message._tag === "VoteRequest")
  return { sent, voteRequests, fatal }
}

const fileStore = (path: string): HardStateStore<HardState> =>
  Effect.runSync(
    Effect.gen(function* () {
      return (yield* HardStateFile).store({ path, schema: HardStateSchema })
    }).pipe(Effect.provide(HardStateFile.layer)),
  )

const tempDir = async (t: TestContext): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), "mha-persist-"))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

test("a failed hard-state write: no vote request for the unpersisted term ever leaves, and the agent asks to exit", async (t) => {
  const dir = await tempDir(t)
  // state_dir is a regular file: every write fails (ENOTDIR), even for root.
  await writeFile(join(dir, "state"), "not a directory")
  const real = fileStore(join(dir, "state", "hard-state.json"))
  // A fresh member: nothing to load.
  const store: HardStateStore<HardState> = { ...real, load: Effect.succeed(Option.none()) }
  const r = await runAgent(store, 1_500)
  assert.deepEqual(
    r.voteRequests.map((s) => `${s.to} term ${(s.message as { term: number }).term}`),
    [],
    "a vote request for a term that is on no disk",
  )
  assert.equal(r.fatal.length, 1, JSON.stringify(r.fatal))
  assert.match(
    r.fatal[0] ?? "",
    /hard state could not be written: .*hard-state\.json.*restarts it from the file/,
  )
})

test("a slow hard-state write that succeeds: the vote requests leave after it, the resend too", async (t) => {
  const dir = await tempDir(t)
  const real = fileStore(join(dir, "hard-state.json"))
  let writtenAt: number | undefined
  const store: HardStateStore<HardState> = {
    ...real,
    load: Effect.succeed(Option.none()),
    save: (value) =>
      Effect.sleep(300).pipe(
        Effect.andThen(real.save(value)),
        Effect.tap(() =>
          Effect.sync(() => {
            if (writtenAt === undefined) writtenAt = Date.now()
          }),
        ),
      ),
  }
  const r = await runAgent(store, 1_500)
  assert.equal(r.fatal.length, 0)
  assert.ok(r.voteRequests.length >= 2, JSON.stringify(r.sent.map((s) => s.message._tag)))
  assert.ok(writtenAt !== undefined)
  for (const s of r.voteRequests)
    assert.ok(s.at >= writtenAt, `sent ${writtenAt - s.at} ms before the vote was on disk`)
})

test("the executor writes a step's hard state at once, not behind the step's slow action, and reports it by number; across a restart of the decision loop the later step's state stays on disk", {
  timeout: 10_000,
}, async (t) => {
  const dir = await tempDir(t)
  const store = fileStore(join(dir, "hard-state.json"))
  const reported: Array<{ at: number; input: Input }> = []
  const hard = (term: number): HardState => ({
    term,
    votedFor: "db2",
    record: initialRecord,
  })
  const executor = makeExecutor({
    config: () => ({}) as Config,
    log,
    enqueue: (p: PendingInput) => void reported.push({ at: Date.now(), input: p(0) }),
    hardState: store,
    mesh: { sendNow: () => undefined } as unknown as MeshService<PeerMessage>,
    // Taking the VIP takes a second here (duplicate check, announcements).
    vip: { acquire: Effect.sleep(1_000).pipe(Effect.as({})) } as unknown as VipService,
    fatal: () => assert.fail("no fatal"),
    operatorReply: () => {},
  } as unknown as ExecutorServices)
  const started = Date.now()
  await Effect.runPromise(
    Effect.gen(function* () {
      const slow = yield* Effect.forkChild(
        executor.execute(
          [
            { _tag: "Vip", op: "add" },
            { _tag: "PersistHardState", hard: hard(2), seq: 2 },
          ],
          "run-1",
        ),
      )
      yield* Effect.sleep(50)
      // The decision loop restarted: its numbers start again, its state is the newer one.
      yield* executor.execute([{ _tag: "PersistHardState", hard: hard(3), seq: 1 }], "run-2")
      yield* Effect.sleep(50)
      const onDisk = Option.getOrNull(yield* store.load)
      assert.equal(onDisk?.term, 3, "the later step's state is on disk")
      yield* Fiber.join(slow)
    }),
  )
  const persisted = reported.filter((r) => r.input._tag === "Persisted")
  assert.deepEqual(
    persisted.map((r) => (r.input._tag === "Persisted" ? [r.input.seq, r.input.incarnation] : [])),
    [
      [2, "run-1"],
      [1, "run-2"],
    ],
  )
  assert.ok(
    persisted[0]!.at - started < 800,
    `hard state 2 reported after ${persisted[0]!.at - started} ms: it waited for the VIP`,
  )
})
