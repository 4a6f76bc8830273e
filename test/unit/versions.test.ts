// Versions on the wire and on disk (shared/protocol-version.ts): the decoding
// rules one by one, against the previous release's own decoders where it
// matters (its shared/peer-messages.ts, taken from git, decides what a
// dfc83b6 agent accepts during a rolling upgrade or after a downgrade).
import assert from "node:assert/strict"
import { execFileSync } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { type TestContext, test } from "node:test"
import { Effect, Exit, Option, Queue, Result, Schema } from "effect"
import { HardStateFile, type HardStateStore } from "../../agent/src/adapters/hard-state-file.ts"
import type { MeshService } from "../../agent/src/adapters/mesh.ts"
import type { HardState } from "../../agent/src/core/types.ts"
import { HARD_STATE_FORMAT } from "../../agent/src/daemon/hard-state-format.ts"
import { HardStateSchema } from "../../agent/src/daemon/run.ts"
import { type ClusterRecord, PeerMessage } from "../../shared/peer-messages.ts"
import {
  compatible,
  MESH_PROTOCOL,
  type ProtocolVersion,
  parseVersion,
} from "../../shared/protocol-version.ts"
import { bothConnected, waitUntil, withMeshPair } from "../support/mesh-pair.ts"
import { PREVIOUS_RELEASE } from "../support/prev-release.ts"

const repo = join(import.meta.dirname, "../..")

/** The previous release's shared/peer-messages.ts, loaded from git (it imports only effect). */
const previous = async (t: TestContext) => {
  const dir = await mkdtemp(join(repo, ".prev-release-"))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const text = execFileSync("git", ["show", `${PREVIOUS_RELEASE}:shared/peer-messages.ts`], {
    cwd: repo,
    encoding: "utf8",
  })
  await writeFile(join(dir, "peer-messages.ts"), text)
  const m = (await import(join(dir, "peer-messages.ts"))) as {
    PeerMessage: Schema.Codec<unknown, unknown>
    ClusterRecord: Schema.Codec<unknown, unknown>
  }
  // What the previous release's daemon reads its hard-state file with (its run.ts), and how strictly.
  const hardState = Schema.Struct({
    term: Schema.Int,
    votedFor: Schema.NullOr(Schema.String),
    record: m.ClusterRecord,
  })
  return {
    text,
    /** Its mesh decodes with the default options (mesh.ts: Schema.decodeUnknownResult(schema)). */
    decodeMessage: (json: unknown) => Schema.decodeUnknownResult(m.PeerMessage)(json),
    /** Its hard-state file is decoded with onExcessProperty "error" (hard-state-file.ts). */
    decodeHardState: (json: unknown) =>
      Schema.decodeUnknownResult(hardState)(json, { onExcessProperty: "error" }),
  }
}

const record = (over: Partial<ClusterRecord> = {}): ClusterRecord => ({
  term: 4,
  seq: 9,
  paused: false,
  excluded: [],
  lineage: ["3e11fa47-71ca-11e1-9e33-c80aa9429562"],
  lastFailoverTerm: 3,
  recoveryAcked: false,
  primary: "db2",
  lastActive: "db2",
  primaryUuid: "3e11fa47-71ca-11e1-9e33-c80aa9429562",
  base: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20",
  members: null,
  history: [
    {
      kind: "failover",
      term: 3,
      atMs: 1_700_000_000_000,
      reason: "db1 lost",
      oldPrimary: "db1",
      newPrimary: "db2",
      durationMs: 2100,
    },
  ],
  ...over,
})

const withStore = <A, E>(path: string, f: (s: HardStateStore<HardState>) => Effect.Effect<A, E>) =>
  Effect.runPromiseExit(
    Effect.gen(function* () {
      const files = yield* HardStateFile
      return yield* f(
        files.store({ path, schema: HardStateSchema, format: HARD_STATE_FORMAT }),
      ) as Effect.Effect<A, E>
    }).pipe(Effect.provide(HardStateFile.layer)),
  )

const failure = (exit: Exit.Exit<unknown, unknown>): { _tag: string; message: string } => {
  if (Exit.isSuccess(exit)) assert.fail("expected a failure")
  const reason = exit.cause.reasons[0]
  assert.ok(reason?._tag === "Fail", `expected a typed failure, got ${String(exit.cause)}`)
  return reason.error as { _tag: string; message: string }
}

const loaded = (exit: Exit.Exit<Option.Option<HardState>, unknown>): HardState => {
  if (Exit.isFailure(exit)) assert.fail(`unexpected failure: ${String(exit.cause)}`)
  return Option.getOrThrow(exit.value)
}

const tempFile = async (t: TestContext): Promise<string> => {
  const dir = await mkdtemp("/tmp/mha-versions-")
  t.after(() => rm(dir, { recursive: true, force: true }))
  return join(dir, "hard-state.json")
}

// ---- version numbers -------------------------------------------------------------------

test("protocol versions: no header is 1.0, MAJOR.MINOR parses, garbage is named, majors must match", () => {
  assert.deepEqual(parseVersion(undefined), { ok: true, version: { major: 1, minor: 0 } })
  assert.deepEqual(parseVersion("1.1"), { ok: true, version: { major: 1, minor: 1 } })
  const bad = parseVersion("one")
  assert.ok(!bad.ok && bad.error.includes('"one"'), JSON.stringify(bad))
  assert.equal(parseVersion("1").ok, false)
  assert.ok(compatible(MESH_PROTOCOL, { major: 1, minor: 0 }), "this agent talks to dfc83b6 (1.0)")
  assert.ok(compatible(MESH_PROTOCOL, { major: 1, minor: 7 }), "a newer minor is accepted")
  assert.ok(!compatible(MESH_PROTOCOL, { major: 2, minor: 0 }))
})

// ---- mesh messages across the two releases ----------------------------------------------

test("mesh: the previous release knows every message kind this agent sends (no new tags)", async (t) => {
  const prev = await previous(t)
  const tags = (text: string) =>
    new Set([...text.matchAll(/TaggedStruct\("(\w+)"/g)].map((m) => m[1] as string))
  const ours = tags(await readFile(join(repo, "shared/peer-messages.ts"), "utf8"))
  const theirs = tags(prev.text)
  const unknown = [...ours].filter((tag) => !theirs.has(tag))
  // A new kind would be dropped by a 1.0 peer as a schema mismatch: it needs a
  // minor version and a sender that sends it only to peers announcing that minor.
  assert.deepEqual(unknown, [], `message kinds ${PREVIOUS_RELEASE} cannot decode`)
})

test("mesh: a heartbeat with this release's new fields decodes on the previous release, and back", async (t) => {
  const prev = await previous(t)
  const heartbeat = {
    _tag: "Heartbeat",
    from: "db2",
    bootId: "b-1",
    term: 4,
    leader: "db2",
    round: 17,
    active: true,
    observation: {
      role: "ACTIVE",
      health: "OK",
      mysqlUp: true,
      serverUuid: "3e11fa47-71ca-11e1-9e33-c80aa9429562",
      writable: true,
      superReadOnly: false,
      executed: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20",
      retrieved: "",
      source: null,
      ioRunning: false,
      sqlRunning: false,
      replicationError: null,
      backlog: 0,
      errant: "",
      eligible: true,
      // added after dfc83b6:
      quiet: false,
      writesBlocked: "no replica acknowledges",
      semiSyncFallback: "fell back to asynchronous",
    },
    probedPrimary: "db2",
    primaryReachable: true,
    primaryFenced: false,
    heardFrom: [{ name: "db1", agoMs: 120 }],
    record: JSON.parse(JSON.stringify(record())) as Record<string, unknown>,
  }
  const theirs = prev.decodeMessage(heartbeat)
  assert.ok(
    Result.isSuccess(theirs),
    `dfc83b6 refuses it: ${String(Result.isFailure(theirs) && theirs.failure)}`,
  )
  const decoded = theirs.success as { record: Record<string, unknown>; observation: object }
  assert.equal("lastActive" in decoded.record, false, "dfc83b6 ignores the field it does not know")
  assert.equal("quiet" in decoded.observation, false)
  // What dfc83b6 sends back (no lastActive): this release reads it as null ("read as primary").
  const { lastActive: _, ...oldRecord } = heartbeat.record as Record<string, unknown>
  const ours = Schema.decodeUnknownResult(PeerMessage)({ ...heartbeat, record: oldRecord })
  assert.ok(Result.isSuccess(ours))
  assert.equal((ours.success as { record: ClusterRecord }).record.lastActive, null)
})

// ---- the hard-state file ----------------------------------------------------------------

const state = (over: Partial<ClusterRecord> = {}): HardState => ({
  term: 5,
  votedFor: "db2",
  record: record(over),
})

test("hard state: a steady record is written in the 1.0 form, which the previous release reads", async (t) => {
  const prev = await previous(t)
  const path = await tempFile(t)
  assert.ok(Exit.isSuccess(await withStore(path, (s) => s.save(state()))))
  const json = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>
  assert.equal("format" in json, false, "no format key: 1.0")
  assert.equal("lastActive" in (json.record as object), false, "1.0 has no lastActive")
  const theirs = prev.decodeHardState(json)
  assert.ok(
    Result.isSuccess(theirs),
    `dfc83b6 refuses it: ${String(Result.isFailure(theirs) && theirs.failure)}`,
  )
  // Read back here: lastActive null, which lastPrimary() reads as the primary it named.
  const back = loaded(await withStore(path, (s) => s.load))
  assert.deepEqual(back, { ...state(), record: { ...record(), lastActive: null } })
  // Null in, null out: also the 1.0 form.
  assert.ok(Exit.isSuccess(await withStore(path, (s) => s.save(state({ lastActive: null })))))
  assert.equal("format" in JSON.parse(await readFile(path, "utf8")), false)
})

test("hard state: a record 1.0 cannot express is written as 2.0; the previous release refuses it, this one reads it whole", async (t) => {
  const prev = await previous(t)
  const path = await tempFile(t)
  // A winner named (db3) whose promotion has not made it ACTIVE: the last primary is still db2.
  const mid = state({ primary: "db3", lastActive: "db2" })
  assert.ok(Exit.isSuccess(await withStore(path, (s) => s.save(mid))))
  const json = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>
  assert.equal(json.format, "2.0")
  assert.equal((json.record as { lastActive: unknown }).lastActive, "db2")
  assert.ok(
    Result.isFailure(prev.decodeHardState(json)),
    "dfc83b6 refuses (rather than misread) it",
  )
  assert.deepEqual(loaded(await withStore(path, (s) => s.load)), mid)
})

test("hard state: a file the previous release wrote loads (lastActive null)", async (t) => {
  const path = await tempFile(t)
  const { lastActive: _, ...old } = record()
  await writeFile(path, JSON.stringify({ term: 5, votedFor: null, record: old }))
  const back = loaded(await withStore(path, (s) => s.load))
  assert.equal(back.record.lastActive, null)
  assert.equal(back.term, 5)
})

test("hard state: a newer major is refused naming both versions; a newer minor's unknown fields are ignored; an unknown field otherwise is an error", async (t) => {
  const path = await tempFile(t)
  const doc = { term: 5, votedFor: null, record: record() }
  await writeFile(path, JSON.stringify({ format: "3.0", ...doc }))
  const newer = failure(await withStore(path, (s) => s.load))
  assert.equal(newer._tag, "HardStateVersionError")
  assert.match(newer.message, /format 3\.0, this agent reads format 2\.0 and older/)
  assert.match(newer.message, /do not delete the file/)

  await writeFile(path, JSON.stringify({ format: "2.4", ...doc, futureField: 1 }))
  assert.equal(loaded(await withStore(path, (s) => s.load)).term, 5, "2.4's extra field ignored")

  await writeFile(path, JSON.stringify({ format: "2.0", ...doc, futureField: 1 }))
  const strict = failure(await withStore(path, (s) => s.load))
  assert.equal(strict._tag, "HardStateCorruptError")
  assert.match(strict.message, /futureField/)

  await writeFile(path, JSON.stringify({ ...doc, futureField: 1 }))
  assert.equal(
    failure(await withStore(path, (s) => s.load))._tag,
    "HardStateCorruptError",
    "1.0 is strict too",
  )

  await writeFile(path, JSON.stringify({ format: "two", ...doc }))
  const garbage = failure(await withStore(path, (s) => s.load))
  assert.equal(garbage._tag, "HardStateCorruptError")
  assert.match(garbage.message, /malformed protocol version "two"/)
})

// ---- the mesh handshake ------------------------------------------------------------------

const Beat = Schema.TaggedStruct("Beat", { from: Schema.String })
type Beat = typeof Beat.Type

/** Two real meshes on 127.0.0.1 (db1 dials db2) announcing the given versions, for `body`. */
const withPair = (
  v1: ProtocolVersion | undefined,
  v2: ProtocolVersion | undefined,
  body: (m1: MeshService<Beat>, m2: MeshService<Beat>) => Effect.Effect<void>,
) =>
  withMeshPair(
    Beat,
    {
      db1: v1 === undefined ? {} : { protocol: v1 },
      db2: v2 === undefined ? {} : { protocol: v2 },
    },
    body,
  )

const connected = (m: MeshService<Beat>) =>
  Effect.map(m.peerStates, (ps) => ps.some((p) => p.status === "connected"))

test("mesh handshake: this release connects with one that sends no version (1.0) and with a newer minor", async () => {
  for (const other of [
    { major: 1, minor: 0 },
    { major: 1, minor: 9 },
  ]) {
    await withPair(MESH_PROTOCOL, other, (m1, m2) =>
      Effect.gen(function* () {
        yield* waitUntil("db1 and db2 connected", bothConnected(m1, m2))
        yield* m1.send("db2", { _tag: "Beat", from: "db1" }).pipe(Effect.orDie)
        const got = yield* Queue.take(m2.inboundQueue)
        assert.equal(got.from, "db1")
      }),
    )
  }
})

test("mesh handshake: a peer of another major is refused on both ends, naming both versions, and counted", async () => {
  // db1 (the dialler) speaks 2.0, db2 this release's 1.x; then the other way round.
  for (const [v1, v2] of [
    [{ major: 2, minor: 0 }, MESH_PROTOCOL],
    [MESH_PROTOCOL, { major: 2, minor: 0 }],
  ] as const) {
    await withPair(v1, v2, (m1, m2) =>
      Effect.gen(function* () {
        const refused = (m: MeshService<Beat>) =>
          Effect.map(m.metrics, (x) => (x.refusedByReason["protocol-version"] ?? 0) > 0)
        yield* waitUntil(
          "both ends to refuse",
          Effect.map(Effect.all([refused(m1), refused(m2)]), ([a, b]) => a && b),
        )
        assert.equal(yield* connected(m1), false)
        assert.equal(yield* connected(m2), false)
        const [p1] = yield* m1.peerStates
        const [p2] = yield* m2.peerStates
        const theirs2 = `${v2.major}.${v2.minor}`
        const theirs1 = `${v1.major}.${v1.minor}`
        assert.equal(
          p1?.lastError,
          `peer db2 speaks protocol ${theirs2}, this agent ${theirs1}: different major versions cannot share a cluster; upgrade or downgrade one of them (a rolling upgrade goes through a release that speaks both)`,
        )
        assert.match(
          p2?.lastError ?? "",
          new RegExp(
            `^peer db1 speaks protocol ${theirs1.replace(".", "\\.")}, this agent ${theirs2.replace(".", "\\.")}`,
          ),
        )
      }),
    )
  }
})
