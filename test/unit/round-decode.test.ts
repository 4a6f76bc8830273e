// The hand decoder of a round's messages (shared/round-decode.ts) against the
// Schema it stands in for: where it answers, it answers as the Schema does;
// what the Schema rejects it never accepts; and it answers for every
// heartbeat without a record and every acknowledgement the Schema accepts.
import assert from "node:assert/strict"
import { describe, test } from "node:test"
import { Result, Schema } from "effect"
import fc from "fast-check"
import {
  Health,
  Heartbeat,
  HeartbeatAck,
  NodeRole,
  Observation,
  PeerMessage,
} from "../../shared/peer-messages.ts"
import { decodeRoundMessage } from "../../shared/round-decode.ts"

const schemaDecode = Schema.decodeUnknownResult(PeerMessage)
/** What arrives is always parsed JSON. */
const viaJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v))

const int = fc.oneof(
  fc.integer(),
  fc.constantFrom(0, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER),
)
const finite = fc.double({ noNaN: true, noDefaultInfinity: true })
const text = fc.string({ maxLength: 12 })
const orNull = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null })
/** Keys no Schema knows, which decoding leaves out. */
const extra = fc.dictionary(
  fc.constantFrom("x", "extra", "version", "note"),
  fc.jsonValue({ maxDepth: 1 }),
  {
    maxKeys: 2,
  },
)

const OBSERVATION_KEYS = [
  "role",
  "health",
  "mysqlUp",
  "serverUuid",
  "writable",
  "superReadOnly",
  "executed",
  "retrieved",
  "source",
  "ioRunning",
  "sqlRunning",
  "replicationError",
  "backlog",
  "lagSeconds",
  "errant",
  "eligible",
  "quiet",
  "writesBlocked",
  "semiSyncFallback",
] as const
const HEARTBEAT_KEYS = [
  "_tag",
  "from",
  "bootId",
  "term",
  "leader",
  "round",
  "active",
  "observation",
  "probedPrimary",
  "primaryReachable",
  "primaryFenced",
  "heardFrom",
  "standsOnOwnProbe",
  "recordVersion",
  "record",
  "ack",
] as const
/** Optional keys (Schema.optionalKey): the arbitraries leave them out at times. */
const OPTIONAL: ReadonlySet<string> = new Set([
  "lagSeconds",
  "quiet",
  "writesBlocked",
  "semiSyncFallback",
  "standsOnOwnProbe",
  "recordVersion",
  "record",
  "ack",
])
const required = <K extends string>(keys: ReadonlyArray<K>): Array<K> =>
  keys.filter((k) => !OPTIONAL.has(k))

const observation = fc.record(
  {
    role: fc.constantFrom(...NodeRole.literals),
    health: fc.constantFrom(...Health.literals),
    mysqlUp: fc.boolean(),
    serverUuid: orNull(fc.uuid()),
    writable: fc.boolean(),
    superReadOnly: fc.boolean(),
    executed: text,
    retrieved: text,
    source: orNull(text),
    ioRunning: fc.boolean(),
    sqlRunning: fc.boolean(),
    replicationError: orNull(text),
    backlog: int,
    lagSeconds: orNull(finite),
    errant: text,
    eligible: fc.boolean(),
    quiet: fc.boolean(),
    writesBlocked: text,
    semiSyncFallback: text,
  },
  {
    requiredKeys: required(OBSERVATION_KEYS),
  },
)

const heartbeat = fc
  .tuple(
    fc.record(
      {
        _tag: fc.constant("Heartbeat"),
        from: text,
        bootId: text,
        term: int,
        leader: orNull(text),
        round: int,
        active: fc.boolean(),
        observation: orNull(fc.tuple(observation, extra).map(([o, x]) => ({ ...x, ...o }))),
        probedPrimary: orNull(text),
        primaryReachable: orNull(fc.boolean()),
        primaryFenced: orNull(fc.boolean()),
        heardFrom: fc.array(
          fc.record({ name: text, agoMs: finite }).chain((h) => extra.map((x) => ({ ...x, ...h }))),
          { maxLength: 7 },
        ),
        standsOnOwnProbe: fc.boolean(),
        recordVersion: fc.record({ term: int, seq: int }),
        ack: fc.record({ term: int, round: int }),
      },
      {
        requiredKeys: required(HEARTBEAT_KEYS.filter((k) => k !== "record")),
      },
    ),
    extra,
  )
  .map(([m, x]) => viaJson({ ...x, ...m }))

const ack = fc
  .tuple(fc.record({ _tag: fc.constant("HeartbeatAck"), from: text, term: int, round: int }), extra)
  .map(([m, x]) => viaJson({ ...x, ...m }))

/** Where a mutation may strike, every field: a path of keys (an index into heardFrom is 0). */
const PATHS: ReadonlyArray<ReadonlyArray<string | number>> = [
  ...HEARTBEAT_KEYS.map((k) => [k]),
  ...OBSERVATION_KEYS.map((k) => ["observation", k]),
  ["heardFrom", 0],
  ["heardFrom", 0, "name"],
  ["heardFrom", 0, "agoMs"],
  ["recordVersion", "term"],
  ["recordVersion", "seq"],
  ["ack", "term"],
  ["ack", "round"],
]

/** A copy of `json` with the value at `path` replaced, or deleted when `value` is undefined. */
const mutate = (json: unknown, path: ReadonlyArray<string | number>, value: unknown): unknown => {
  const copy = structuredClone(json) as Record<string | number, unknown>
  let at: Record<string | number, unknown> = copy
  for (const key of path.slice(0, -1)) {
    const next = at[key]
    if (typeof next !== "object" || next === null) return copy
    at = next as Record<string | number, unknown>
  }
  const last = path[path.length - 1] as string | number
  if (value === undefined) delete at[last]
  else at[last] = value
  return copy
}

/** The decoder agrees with the Schema: the same message, or it leaves the input to the Schema. */
const agrees = (json: unknown): void => {
  const fast = decodeRoundMessage(json)
  const slow = schemaDecode(json)
  if (fast === undefined) return
  assert.ok(Result.isSuccess(slow), `accepted what the Schema rejects: ${JSON.stringify(json)}`)
  assert.deepStrictEqual(fast, slow.success)
}

describe("round-decode: the hand decoder of heartbeats and acknowledgements", () => {
  test("decodes every heartbeat without record and every acknowledgement as the Schema does", () => {
    fc.assert(
      fc.property(fc.oneof(heartbeat, ack), (json) => {
        const slow = schemaDecode(json)
        assert.ok(Result.isSuccess(slow), "the arbitrary makes only valid messages")
        assert.deepStrictEqual(decodeRoundMessage(json), slow.success)
      }),
      { numRuns: 2000 },
    )
  })

  test("a changed or missing field: the Schema's answer, or none (never what the Schema rejects)", () => {
    fc.assert(
      fc.property(
        heartbeat,
        fc.constantFrom(...PATHS),
        fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }),
        (json, path, value) => agrees(mutate(json, path, viaJson(value ?? null))),
      ),
      { numRuns: 4000 },
    )
    fc.assert(
      fc.property(heartbeat, fc.constantFrom(...PATHS), (json, path) =>
        agrees(mutate(json, path, undefined)),
      ),
      { numRuns: 1000 },
    )
    fc.assert(
      fc.property(
        ack,
        fc.constantFrom("_tag", "from", "term", "round"),
        fc.option(fc.jsonValue({ maxDepth: 1 }), { nil: undefined }),
        (json, key, value) => agrees(mutate(json, [key], value)),
      ),
      { numRuns: 1000 },
    )
  })

  test("any JSON at all: the Schema's answer or none", () => {
    fc.assert(fc.property(fc.jsonValue(), agrees), { numRuns: 2000 })
  })

  test("knows every field the Schema has: a field added there fails here until the decoder and these tests take it", () => {
    const sorted = (keys: ReadonlyArray<string>) => [...keys].sort()
    assert.deepEqual(sorted(Object.keys(Heartbeat.fields)), sorted(HEARTBEAT_KEYS))
    assert.deepEqual(sorted(Object.keys(Observation.fields)), sorted(OBSERVATION_KEYS))
    assert.deepEqual(sorted(Object.keys(HeartbeatAck.fields)), ["_tag", "from", "round", "term"])
  })

  test("leaves to the Schema a heartbeat with its record, and every other message", () => {
    const hb = fc.sample(heartbeat, { numRuns: 1, seed: 7 })[0] as Record<string, unknown>
    assert.equal(decodeRoundMessage({ ...hb, record: {} }), undefined)
    assert.equal(
      decodeRoundMessage({ _tag: "Resign", from: "db1", term: 2, reason: "x" }),
      undefined,
    )
    assert.equal(decodeRoundMessage({ ...hb, _tag: "Revoke" }), undefined)
  })

  test("out of range numbers, an unknown role, a wrong type: left to the Schema, which rejects them", () => {
    const hb = fc.sample(heartbeat, { numRuns: 1, seed: 3 })[0] as Record<string, unknown>
    for (const bad of [
      { ...hb, round: 1.5 },
      { ...hb, term: 2 ** 60 },
      { ...hb, active: "true" },
      { ...hb, heardFrom: [{ name: "db2" }] },
      { ...hb, recordVersion: null },
      {
        ...hb,
        observation: {
          ...(fc.sample(observation, { numRuns: 1, seed: 1 })[0] ?? {}),
          role: "LEADER",
        },
      },
    ]) {
      assert.equal(decodeRoundMessage(bad), undefined, JSON.stringify(bad))
      assert.ok(Result.isFailure(schemaDecode(bad)))
    }
  })
})
