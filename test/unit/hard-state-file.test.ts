import assert from "node:assert/strict"
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type TestContext, test } from "node:test"
import { Effect, Exit, Option, Schema } from "effect"
import {
  HardStateFile,
  type HardStateStore,
  writeFileAtomic,
} from "../../agent/src/adapters/hard-state-file.ts"

const HardState = Schema.Struct({
  term: Schema.Int,
  voted_for: Schema.NullOr(Schema.String),
  record: Schema.Struct({ term: Schema.Int, seq: Schema.Int }),
})
type HardState = typeof HardState.Type

const tempDir = async (t: TestContext): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), "mha-hardstate-"))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Runs `f` with a store at `path`, through the service and its layer. */
const withStore = <A, E>(
  path: string,
  f: (store: HardStateStore<HardState>) => Effect.Effect<A, E>,
  layer = HardStateFile.layer,
) =>
  Effect.runPromiseExit(
    Effect.gen(function* () {
      const files = yield* HardStateFile
      return yield* f(files.store({ path, schema: HardState }))
    }).pipe(Effect.provide(layer)),
  )

const value = (exit: Exit.Exit<unknown, unknown>): unknown => {
  if (Exit.isFailure(exit)) assert.fail(`unexpected failure: ${String(exit.cause)}`)
  return exit.value
}

const failure = (exit: Exit.Exit<unknown, unknown>): { _tag: string; message: string } => {
  if (Exit.isSuccess(exit)) assert.fail("expected a failure")
  const reason = exit.cause.reasons[0]
  assert.ok(reason?._tag === "Fail", `expected a typed failure, got ${String(exit.cause)}`)
  return reason.error as { _tag: string; message: string }
}

const s1: HardState = { term: 7, voted_for: "db2", record: { term: 6, seq: 3 } }
const s2: HardState = { term: 8, voted_for: null, record: { term: 8, seq: 1 } }

test("a missing file is no state; a saved state loads back", async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, "hard-state.json")
  assert.deepEqual(value(await withStore(path, (s) => s.load)), Option.none())
  value(await withStore(path, (s) => s.save(s1)))
  assert.deepEqual(value(await withStore(path, (s) => s.load)), Option.some(s1))
  assert.deepEqual(JSON.parse(await readFile(path, "utf8")), s1)
  assert.equal((await stat(path)).mode & 0o777, 0o600)
  assert.deepEqual(await readdir(dir), ["hard-state.json"], "no temp file is left behind")
  value(await withStore(path, (s) => s.save(s2)))
  assert.deepEqual(value(await withStore(path, (s) => s.load)), Option.some(s2))
})

test("a temp file left by a crash mid-write is ignored and cleaned up", async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, "hard-state.json")
  value(await withStore(path, (s) => s.save(s1)))
  // A writer died after writing half of its temp file, before the rename.
  const leftover = join(dir, "hard-state.json.tmp-99999-deadbeef")
  await writeFile(leftover, '{"term": 9, "voted_f')
  assert.deepEqual(value(await withStore(path, (s) => s.load)), Option.some(s1))
  assert.deepEqual(await readdir(dir), ["hard-state.json"])

  // A crash before the very first rename: nothing was ever committed.
  const fresh = join(dir, "other.json")
  await writeFile(join(dir, "other.json.tmp-1-00000000"), JSON.stringify(s2))
  assert.deepEqual(value(await withStore(fresh, (s) => s.load)), Option.none())
})

test("corrupt JSON is a typed error naming the file, and the file is kept", async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, "hard-state.json")
  await writeFile(path, '{"term": 7, "voted_for": "db2", ')
  const error = failure(await withStore(path, (s) => s.load))
  assert.equal(error._tag, "HardStateCorruptError")
  assert.ok(error.message.includes(path), error.message)
  assert.match(error.message, /not valid JSON/)
  assert.match(error.message, /refuses to start from an empty state/)
  assert.equal(await readFile(path, "utf8"), '{"term": 7, "voted_for": "db2", ', "never reset")
})

test("an empty file is corrupt, not a fresh start", async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, "hard-state.json")
  await writeFile(path, "")
  const error = failure(await withStore(path, (s) => s.load))
  assert.equal(error._tag, "HardStateCorruptError")
  assert.match(error.message, /the file is empty/)
})

test("a document that does not match the schema is a typed error saying what is wrong", async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, "hard-state.json")
  await writeFile(
    path,
    JSON.stringify({ term: "seven", voted_for: null, record: { term: 1, seq: 1 } }),
  )
  const error = failure(await withStore(path, (s) => s.load))
  assert.equal(error._tag, "HardStateCorruptError")
  assert.ok(error.message.includes(path))
  assert.match(error.message, /does not match the hard state schema: .*term/)

  await writeFile(path, JSON.stringify({ ...s1, surprise: true }))
  const extra = failure(await withStore(path, (s) => s.load))
  assert.match(extra.message, /surprise/)
})

test("concurrent saves are serialized; the file is always a whole document", async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, "hard-state.json")
  const states = Array.from({ length: 20 }, (_, i) => ({ ...s1, term: i + 1 }))
  value(
    await withStore(path, (s) =>
      Effect.forEach(states, (st) => s.save(st), { concurrency: "unbounded", discard: true }),
    ),
  )
  const loaded = value(await withStore(path, (s) => s.load)) as Option.Option<HardState>
  assert.ok(Option.isSome(loaded))
  assert.ok(states.some((st) => st.term === loaded.value.term))
  assert.deepEqual(await readdir(dir), ["hard-state.json"])
})

test("write failures are typed I/O errors and leave no temp file", async (t) => {
  const dir = await tempDir(t)
  const missing = join(dir, "no-such-dir", "hard-state.json")
  const error = failure(await withStore(missing, (s) => s.save(s1)))
  assert.equal(error._tag, "HardStateIoError")
  assert.match(error.message, /no-such-dir\/hard-state\.json: write failed: ENOENT/)

  // A directory as the target: the rename fails, the temp file is removed.
  const target = join(dir, "is-a-dir")
  await mkdir(target)
  const renameError = failure(await Effect.runPromiseExit(writeFileAtomic(target, "{}")))
  assert.equal(renameError._tag, "HardStateIoError")
  assert.match(renameError.message, /rename failed/)
  assert.deepEqual(await readdir(dir), ["is-a-dir"])
})

test("an unreadable file is an I/O error, not 'no state'", async (t) => {
  if (process.getuid?.() === 0) {
    t.skip("root reads any file")
    return
  }
  const dir = await tempDir(t)
  const path = join(dir, "hard-state.json")
  await writeFile(path, JSON.stringify(s1))
  await chmod(path, 0)
  const error = failure(await withStore(path, (s) => s.load))
  assert.equal(error._tag, "HardStateIoError")
})

test("the in-memory layer stores the same JSON documents", async () => {
  const layer = HardStateFile.layerMemory([["/seeded.json", JSON.stringify(s1)]])
  const exit = await Effect.runPromiseExit(
    Effect.gen(function* () {
      const files = yield* HardStateFile
      const seeded = files.store({ path: "/seeded.json", schema: HardState })
      const fresh = files.store({ path: "/fresh.json", schema: HardState })
      const a = yield* seeded.load
      const b = yield* fresh.load
      yield* fresh.save(s2)
      const c = yield* fresh.load
      return [a, b, c]
    }).pipe(Effect.provide(layer)),
  )
  assert.deepEqual(value(exit), [Option.some(s1), Option.none(), Option.some(s2)])
  const corrupt = await withStore(
    "/bad.json",
    (s) => s.load,
    HardStateFile.layerMemory([["/bad.json", "{"]]),
  )
  assert.equal(failure(corrupt)._tag, "HardStateCorruptError")
})
