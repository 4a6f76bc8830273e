import assert from "node:assert/strict"
import { describe, test } from "node:test"
import fc from "fast-check"
import {
  addTransaction,
  contains,
  count,
  emptyGtidSet,
  equals,
  formatGtidSet,
  fromEntries,
  type GtidInterval,
  type GtidSet,
  intersect,
  isEmpty,
  isSubset,
  isValidSid,
  lastGno,
  MAX_GNO,
  nextGno,
  normalizeSid,
  parseGtidSet,
  restrictToUuids,
  sidsOf,
  singleton,
  subtract,
  tagOfSid,
  union,
  unsafeParseGtidSet,
  uuidOfSid,
  uuidsOf,
} from "../../agent/src/core/gtid.ts"

const U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
const U2 = "24da1670-0c0c-11e8-8442-00059a3c7b00"
const U3 = "896e7882-18fe-11ef-ab88-22222d34d411"

const p = unsafeParseGtidSet
const roundTrip = (text: string): string => formatGtidSet(p(text))

/** Checks the representation invariants every returned set must satisfy. */
function assertNormalized(set: GtidSet): void {
  const keys = [...set.sids.keys()]
  assert.deepEqual(keys, [...keys].sort(), "keys iterate in sorted order")
  for (const [key, ivs] of set.sids) {
    assert.ok(normalizeSid(key) === key, `key ${key} is a valid lower-case sid`)
    assert.ok(ivs.length > 0, `key ${key} has intervals`)
    assert.ok(Object.isFrozen(ivs), `intervals of ${key} are frozen`)
    let prevEnd = -1
    for (const iv of ivs) {
      assert.ok(Number.isSafeInteger(iv.start) && iv.start >= 1 && iv.start <= iv.end)
      assert.ok(iv.start > prevEnd + 1, `intervals of ${key} are sorted and not adjacent`)
      prevEnd = iv.end
    }
  }
}

describe("parseGtidSet on real MySQL output", () => {
  test("empty and whitespace-only values are the empty set", () => {
    for (const text of ["", "  ", "\n", " \t\r\n "]) {
      const set = p(text)
      assert.ok(isEmpty(set))
      assert.equal(formatGtidSet(set), "")
      assert.equal(count(set), 0)
    }
  })

  test("@@gtid_executed of a replica with several sources (',\\n' between uuids)", () => {
    const text = `${U3}:1-1042,\n${U1}:1-3:11:47-49,\n${U2}:1-19`
    const set = p(text)
    assertNormalized(set)
    assert.equal(formatGtidSet(set), `${U2}:1-19,${U1}:1-3:11:47-49,${U3}:1-1042`)
    assert.equal(count(set), 19 + 3 + 1 + 3 + 1042)
    assert.deepEqual([...uuidsOf(set)], [U2, U1, U3])
  })

  test("Retrieved_Gtid_Set / Executed_Gtid_Set as SHOW REPLICA STATUS prints them", () => {
    const executed = p(`${U1}:1-100,\n${U2}:1-5`)
    const retrieved = p(`${U1}:90-120`)
    assert.equal(formatGtidSet(union(executed, retrieved)), `${U2}:1-5,${U1}:1-120`)
    assert.equal(formatGtidSet(subtract(retrieved, executed)), `${U1}:101-120`)
  })

  test("upper-case uuids (as in the manual) are lower-cased", () => {
    assert.equal(roundTrip(`${U1.toUpperCase()}:1-5`), `${U1}:1-5`)
  })

  test("tagged GTIDs as MySQL 8.4 prints them: one uuid, tags after its untagged intervals", () => {
    const text = `${U3}:1-4:aaaa:1:abc:1-3:bbbbb:1:bbbbbb:1:x:1,\n896e7882-18fe-11ef-ab88-22222d34d412:1-2`
    const set = p(text)
    assertNormalized(set)
    assert.equal(formatGtidSet(set), text.replace(",\n", ","))
    assert.deepEqual(sidsOf(set), [
      U3,
      `${U3}:aaaa`,
      `${U3}:abc`,
      `${U3}:bbbbb`,
      `${U3}:bbbbbb`,
      `${U3}:x`,
      "896e7882-18fe-11ef-ab88-22222d34d412",
    ])
    assert.equal(count(set), 4 + 1 + 3 + 1 + 1 + 1 + 2)
  })

  test("tags as the manual writes them (mixed case, repeated uuid) are merged and lower-cased", () => {
    const set = p(
      `${U1.toUpperCase()}:Domain_1:1-3:15-21, ${U1.toUpperCase()}:Domain_2:8-52,${U1}:Domain_1:4`,
    )
    assert.equal(formatGtidSet(set), `${U1}:domain_1:1-4:15-21:domain_2:8-52`)
  })

  test("a tag applies to the intervals after it; untagged intervals come first", () => {
    const set = p(`${U1}:1-3:tag:5:7-8`)
    assert.deepEqual(set.sids.get(U1), [{ start: 1, end: 3 }])
    assert.deepEqual(set.sids.get(`${U1}:tag`), [
      { start: 5, end: 5 },
      { start: 7, end: 8 },
    ])
    assert.equal(formatGtidSet(p(`${U1}:tag:1-2`)), `${U1}:tag:1-2`)
  })

  test("overlapping, adjacent and unordered intervals are merged", () => {
    assert.equal(roundTrip(`${U1}:7:1-3:4-5:2:10-12:11`), `${U1}:1-5:7:10-12`)
    assert.equal(roundTrip(`${U1}:1-3,${U1}:4`), `${U1}:1-4`)
  })

  test("whitespace around every token and empty elements between commas, as MySQL allows", () => {
    assert.equal(roundTrip(` ${U1} : 1 - 3 : 5 ,\n\t, ${U2}:tag : 2 , `), `${U2}:tag:2,${U1}:1-3:5`)
    assert.equal(roundTrip(",,"), "")
  })

  test("GNOs up to 2^53 - 1 and leading zeros", () => {
    assert.equal(roundTrip(`${U1}:0007-0009`), `${U1}:7-9`)
    const big = p(`${U1}:1-${MAX_GNO}`)
    assert.equal(count(big), MAX_GNO)
    assert.equal(formatGtidSet(big), `${U1}:1-9007199254740991`)
  })
})

describe("parseGtidSet errors name the problem and its position", () => {
  const cases: ReadonlyArray<readonly [string, string, number, RegExp]> = [
    ["junk", "hello", 0, /invalid UUID "hello".*hexadecimal digit.*found "h"/],
    ["bad hex in uuid", `${U1.slice(0, 10)}zz${U1.slice(12)}:1`, 10, /invalid UUID.*found "z"/],
    ["missing dash", `${U1.replace(/-/, "x")}:1`, 8, /invalid UUID.*expected '-'.*found "x"/],
    ["truncated uuid", U1.slice(0, 20), 20, /invalid UUID.*found end of input/],
    ["uuid too long", `${U1}a:1`, 36, /expected ':' after UUID.*found "a"/],
    ["end before start", `${U1}:5-3`, 37, /interval 5-3 ends before it starts/],
    ["zero", `${U1}:0`, 37, /transaction number 0 is not allowed/],
    ["zero start of a range", `${U1}:1:0-4`, 39, /transaction number 0/],
    ["bare uuid (missing interval)", U1, 36, /no transaction intervals/],
    ["bare uuid before a comma", `${U1},${U2}:1`, 36, /no transaction intervals/],
    [
      "colon without interval",
      `${U1}:`,
      37,
      /expected a transaction number or a tag.*end of input/,
    ],
    ["empty interval between colons", `${U1}:1::2`, 39, /expected a transaction number or a tag/],
    ["range without end", `${U1}:1-`, 39, /expected the end of interval 1-/],
    ["range with junk end", `${U1}:1-x`, 39, /expected the end of interval 1-.*found "x"/],
    ["negative", `${U1}:-1`, 37, /expected a transaction number or a tag.*found "-"/],
    ["junk after intervals", `${U1}:1-3 junk`, 41, /expected ',' or ':'.*found "j"/],
    ["junk after uuid set", `${U1}:1;`, 38, /expected ',' or ':'.*found ";"/],
    ["tag without intervals", `${U1}:tag`, 37, /tag "tag" has no transaction intervals/],
    ["tag followed by a tag", `${U1}:t1:t2:1`, 37, /tag "t1" has no transaction intervals/],
    ["tag without intervals before a comma", `${U1}:1:tag,${U2}:1`, 39, /tag "tag" has no/],
    ["tag too long", `${U1}:${"a".repeat(33)}:1`, 37, /longer than 32 characters/],
    ["gno above 2^53 - 1", `${U1}:1-9007199254740992`, 39, /larger than 9007199254740991/],
    ["MySQL's max gno", `${U1}:9223372036854775806`, 37, /larger than 9007199254740991/],
    ["leading plus (only for SET gtid_purged)", `+${U1}:1`, 0, /invalid UUID/],
    ["hex gno", `${U1}:0x10`, 37, /transaction number 0 is not allowed/],
  ]
  for (const [name, text, position, message] of cases) {
    test(name, () => {
      const result = parseGtidSet(text)
      assert.equal(result._tag, "Err", `expected ${JSON.stringify(text)} to be rejected`)
      if (result._tag !== "Err") return
      assert.equal(result.position, position, result.message)
      assert.match(result.message, message)
      assert.match(result.message, new RegExp(`at position ${position}$`))
    })
  }

  test("a maximal tag (32 characters) is fine", () => {
    const tag = `_${"z9".repeat(15)}a`
    assert.equal(tag.length, 32)
    assert.equal(roundTrip(`${U1}:${tag}:1`), `${U1}:${tag}:1`)
  })

  test("unsafeParseGtidSet throws with the message and the text", () => {
    assert.throws(
      () => unsafeParseGtidSet(`${U1}:5-3`),
      /invalid GTID set .*5-3.*ends before it starts/,
    )
  })
})

describe("operations", () => {
  test("union, subtract, intersect on examples", () => {
    const a = p(`${U1}:1-10:20-30,${U2}:1-5:t:1-3`)
    const b = p(`${U1}:5-25,${U3}:1:t:2`)
    assert.equal(formatGtidSet(union(a, b)), `${U2}:1-5:t:1-3,${U1}:1-30,${U3}:1:t:2`)
    assert.equal(formatGtidSet(subtract(a, b)), `${U2}:1-5:t:1-3,${U1}:1-4:26-30`)
    assert.equal(formatGtidSet(subtract(b, a)), `${U1}:11-19,${U3}:1:t:2`)
    assert.equal(formatGtidSet(intersect(a, b)), `${U1}:5-10:20-25`)
    assert.equal(formatGtidSet(subtract(p(`${U1}:1-10`), p(`${U1}:2:4:6-7:10`))), `${U1}:1:3:5:8-9`)
    assert.equal(formatGtidSet(subtract(p(`${U1}:1-3:5-9`), p(`${U1}:2-6`))), `${U1}:1:7-9`)
  })

  test("errant transactions: a replica's executed minus the primary's", () => {
    const primary = p(`${U1}:1-100`)
    const replica = p(`${U1}:1-90,${U2}:1-2`)
    assert.equal(formatGtidSet(subtract(replica, primary)), `${U2}:1-2`)
    assert.ok(!isSubset(replica, primary))
    assert.ok(isSubset(p(`${U1}:1-90`), primary))
  })

  test("isSubset and equals", () => {
    assert.ok(isSubset(emptyGtidSet, emptyGtidSet))
    assert.ok(isSubset(emptyGtidSet, p(`${U1}:1`)))
    assert.ok(!isSubset(p(`${U1}:1`), emptyGtidSet))
    assert.ok(isSubset(p(`${U1}:2-3:7`), p(`${U1}:1-5:7-9`)))
    assert.ok(!isSubset(p(`${U1}:2-6`), p(`${U1}:1-5:7-9`)))
    assert.ok(!isSubset(p(`${U1}:t:1`), p(`${U1}:1`)), "a tag is a different sid")
    assert.ok(equals(p(`${U1}:1-3:4`), p(`${U1}:1-4`)))
    assert.ok(!equals(p(`${U1}:1-4`), p(`${U1}:1-5`)))
    assert.ok(!equals(p(`${U1}:1`), p(`${U2}:1`)))
  })

  test("restrictToUuids keeps every tag of the kept uuids", () => {
    const set = p(`${U1}:1-3:t:1,${U2}:1-9,${U3}:x:4`)
    assert.equal(formatGtidSet(restrictToUuids(set, new Set([U1, U3]))), `${U1}:1-3:t:1,${U3}:x:4`)
    assert.equal(
      formatGtidSet(restrictToUuids(set, new Set([U2.toUpperCase()]))),
      `${U2}:1-9`,
      "uuids in any case",
    )
    assert.ok(isEmpty(restrictToUuids(set, new Set())))
  })

  test("addTransaction, nextGno, lastGno, contains", () => {
    let set = emptyGtidSet
    assert.equal(nextGno(set, U1), 1)
    set = addTransaction(set, U1, 1)
    set = addTransaction(set, U1, 2)
    set = addTransaction(set, U1, 4)
    set = addTransaction(set, `${U1}:Tag_A`, 7)
    assertNormalized(set)
    assert.equal(formatGtidSet(set), `${U1}:1-2:4:tag_a:7`)
    assert.equal(nextGno(set, U1), 5)
    assert.equal(nextGno(set, `${U1}:tag_a`), 8)
    assert.equal(nextGno(set, `${U1}:other`), 1)
    assert.equal(lastGno(set, U2), 0)
    set = addTransaction(set, U1, 3)
    assert.equal(formatGtidSet(set), `${U1}:1-4:tag_a:7`)
    assert.ok(contains(set, U1, 3))
    assert.ok(!contains(set, U1, 5))
    assert.ok(contains(set, `${U1}:TAG_A`, 7))
    assert.ok(!contains(set, `${U1}:tag_a`, 1))
  })

  test("singleton and fromEntries validate and normalize", () => {
    assert.equal(formatGtidSet(singleton(U1, 3)), `${U1}:3`)
    assert.equal(formatGtidSet(singleton(`${U1}:t`, 3, 9)), `${U1}:t:3-9`)
    assert.throws(() => singleton("not-a-uuid", 1), /invalid sid/)
    assert.throws(() => singleton(`${U1}:9tag`, 1), /invalid sid/)
    assert.throws(() => singleton(U1, 0), RangeError)
    assert.throws(() => singleton(U1, 1.5), RangeError)
    assert.throws(() => singleton(U1, MAX_GNO + 1), RangeError)
    assert.throws(() => singleton(U1, 5, 3), /ends before it starts/)
    assert.throws(() => addTransaction(emptyGtidSet, "x", 1), /invalid sid/)
    const set = fromEntries([
      [U1.toUpperCase(), [{ start: 5, end: 6 }]],
      [U1, [{ start: 1, end: 4 }]],
      [`${U2}:t`, []],
    ])
    assertNormalized(set)
    assert.equal(formatGtidSet(set), `${U1}:1-6`)
  })

  test("sid helpers", () => {
    assert.ok(isValidSid(U1))
    assert.ok(isValidSid(`${U1.toUpperCase()}:Tag_1`))
    assert.ok(!isValidSid(`${U1}:`))
    assert.ok(!isValidSid(`${U1}:1tag`))
    assert.ok(!isValidSid(`${U1}x`))
    assert.equal(normalizeSid(`${U1.toUpperCase()}:Tag_1`), `${U1}:tag_1`)
    assert.equal(uuidOfSid(`${U1}:t`), U1)
    assert.equal(tagOfSid(`${U1}:t`), "t")
    assert.equal(tagOfSid(U1), undefined)
  })

  test("results are frozen and emptyGtidSet is shared", () => {
    const set = p(`${U1}:1-3`)
    assert.ok(Object.isFrozen(set))
    assert.ok(Object.isFrozen(set.sids.get(U1)?.[0]))
    assert.equal(subtract(set, set), emptyGtidSet)
    assert.equal(intersect(set, p(`${U2}:1`)), emptyGtidSet)
  })

  test("huge intervals are never expanded", () => {
    const a = p(`${U1}:1-${MAX_GNO - 10}`)
    const b = p(`${U1}:${MAX_GNO - 10}-${MAX_GNO}`)
    assert.equal(count(union(a, b)), MAX_GNO)
    assert.equal(formatGtidSet(subtract(union(a, b), a)), `${U1}:${MAX_GNO - 9}-${MAX_GNO}`)
  })

  test("many intervals: operations stay linear", () => {
    // 100k intervals each: 2k-1 and 2k+1 alternate; a quadratic merge would take minutes.
    const n = 100_000
    const odd = fromEntries([
      [U1, Array.from({ length: n }, (_, i) => ({ start: 4 * i + 1, end: 4 * i + 1 }))],
    ])
    const three = fromEntries([
      [U1, Array.from({ length: n }, (_, i) => ({ start: 4 * i + 3, end: 4 * i + 3 }))],
    ])
    const both = union(odd, three)
    assert.equal(count(both), 2 * n)
    assert.ok(equals(subtract(both, three), odd))
    assert.ok(isEmpty(intersect(odd, three)))
    assert.ok(isSubset(odd, both))
    assert.ok(equals(p(formatGtidSet(both)), both))
  })
})

// ---------------------------------------------------------------------------
// Property tests. Small pools of uuids, tags and GNOs so that keys collide and
// intervals overlap, touch and nest often.

const UUIDS = [U1, U2, U3] as const
const TAGS = [undefined, "a", "tag_2"] as const
const MAX_TEST_GNO = 40

const sidArb = fc
  .tuple(fc.constantFrom(...UUIDS), fc.constantFrom(...TAGS))
  .map(([u, t]) => (t === undefined ? u : `${u}:${t}`))

const intervalArb: fc.Arbitrary<GtidInterval> = fc
  .tuple(fc.integer({ min: 1, max: MAX_TEST_GNO }), fc.integer({ min: 0, max: 8 }))
  .map(([start, len]) => ({ start, end: Math.min(MAX_TEST_GNO, start + len) }))

const entriesArb = fc.array(fc.tuple(sidArb, fc.array(intervalArb, { maxLength: 4 })), {
  maxLength: 6,
})

const setArb: fc.Arbitrary<GtidSet> = entriesArb.map((entries) => fromEntries(entries))

/** Reference model: a set of "sid#gno" strings. */
function expand(set: GtidSet): Set<string> {
  const out = new Set<string>()
  for (const [key, ivs] of set.sids) {
    for (const iv of ivs) for (let g = iv.start; g <= iv.end; g++) out.add(`${key}#${g}`)
  }
  return out
}

function fromModel(model: Set<string>): GtidSet {
  let set = emptyGtidSet
  for (const item of model) {
    const [key, gno] = item.split("#")
    set = addTransaction(set, key!, Number(gno))
  }
  return set
}

const sameSet = (x: GtidSet, y: GtidSet): boolean => equals(x, y)

describe("properties", () => {
  test("every result is normalized and matches a transaction-by-transaction model", () => {
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        const ma = expand(a)
        const mb = expand(b)
        for (const s of [a, b, union(a, b), subtract(a, b), intersect(a, b)]) assertNormalized(s)
        assert.deepEqual(expand(union(a, b)), new Set([...ma, ...mb]))
        assert.deepEqual(expand(subtract(a, b)), new Set([...ma].filter((x) => !mb.has(x))))
        assert.deepEqual(expand(intersect(a, b)), new Set([...ma].filter((x) => mb.has(x))))
        assert.equal(
          isSubset(a, b),
          [...ma].every((x) => mb.has(x)),
        )
        assert.equal(count(a), ma.size)
        assert.equal(isEmpty(a), ma.size === 0)
        assert.ok(equals(fromModel(ma), a))
      }),
      { numRuns: 300 },
    )
  })

  test("union and intersect are commutative and associative", () => {
    fc.assert(
      fc.property(setArb, setArb, setArb, (a, b, c) => {
        assert.ok(sameSet(union(a, b), union(b, a)))
        assert.ok(sameSet(intersect(a, b), intersect(b, a)))
        assert.ok(sameSet(union(union(a, b), c), union(a, union(b, c))))
        assert.ok(sameSet(intersect(intersect(a, b), c), intersect(a, intersect(b, c))))
      }),
    )
  })

  test("idempotence, identities and distributivity", () => {
    fc.assert(
      fc.property(setArb, setArb, setArb, (a, b, c) => {
        assert.ok(sameSet(union(a, a), a))
        assert.ok(sameSet(intersect(a, a), a))
        assert.ok(sameSet(union(a, emptyGtidSet), a))
        assert.ok(isEmpty(intersect(a, emptyGtidSet)))
        assert.ok(sameSet(subtract(a, emptyGtidSet), a))
        assert.ok(isEmpty(subtract(a, a)))
        assert.ok(sameSet(intersect(a, union(b, c)), union(intersect(a, b), intersect(a, c))))
        assert.ok(sameSet(union(a, intersect(b, c)), intersect(union(a, b), union(a, c))))
        assert.ok(sameSet(union(a, intersect(a, b)), a), "absorption")
      }),
    )
  })

  test("subtract: (a − b) ∪ b = a ∪ b, a − b ⊆ a, (a − b) ∩ b = ∅, (a − b) ∪ (a ∩ b) = a", () => {
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        const d = subtract(a, b)
        assert.ok(sameSet(union(d, b), union(a, b)))
        assert.ok(isSubset(d, a))
        assert.ok(isEmpty(intersect(d, b)))
        assert.ok(sameSet(union(d, intersect(a, b)), a))
        assert.ok(sameSet(subtract(a, intersect(a, b)), d))
      }),
    )
  })

  test("a ⊆ a ∪ b, a ∩ b ⊆ a, and isSubset ⇔ a − b = ∅ ⇔ a ∪ b = b ⇔ a ∩ b = a", () => {
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        assert.ok(isSubset(a, union(a, b)))
        assert.ok(isSubset(intersect(a, b), a))
        const sub = isSubset(a, b)
        assert.equal(sub, isEmpty(subtract(a, b)))
        assert.equal(sub, sameSet(union(a, b), b))
        assert.equal(sub, sameSet(intersect(a, b), a))
        assert.equal(sameSet(a, b), sub && isSubset(b, a))
      }),
    )
    // Subsets built on purpose, so the positive case is exercised often too.
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        assert.ok(isSubset(intersect(a, b), b))
        assert.ok(isSubset(subtract(a, b), a))
      }),
    )
  })

  test("De Morgan relative to a universe U ⊇ a, b", () => {
    fc.assert(
      fc.property(setArb, setArb, setArb, (a, b, extra) => {
        const universe = union(union(a, b), extra)
        const not = (x: GtidSet): GtidSet => subtract(universe, x)
        assert.ok(sameSet(not(union(a, b)), intersect(not(a), not(b))))
        assert.ok(sameSet(not(intersect(a, b)), union(not(a), not(b))))
        assert.ok(sameSet(not(not(a)), a))
        assert.ok(sameSet(subtract(a, b), intersect(a, not(b))))
      }),
    )
  })

  test("count(a ∪ b) = count(a) + count(b) − count(a ∩ b)", () => {
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        assert.equal(count(union(a, b)), count(a) + count(b) - count(intersect(a, b)))
        assert.equal(count(subtract(a, b)), count(a) - count(intersect(a, b)))
      }),
    )
  })

  test("format then parse is the identity on normalized sets, and format is canonical", () => {
    fc.assert(
      fc.property(setArb, (a) => {
        const text = formatGtidSet(a)
        const back = p(text)
        assert.ok(sameSet(back, a))
        assert.equal(formatGtidSet(back), text)
        assert.ok(!text.includes("\n"))
        assert.equal(text === "", isEmpty(a))
        // Also what the server prints, with ",\n" between uuids.
        assert.ok(sameSet(p(text.replaceAll(",", ",\n")), a))
      }),
    )
  })

  test("parse accepts any messy spelling of a set: order, case, repeats, whitespace", () => {
    const wsArb = fc.constantFrom("", "", " ", "\n", " \t")
    const messyArb = fc
      .tuple(
        fc.array(
          fc.tuple(
            sidArb,
            fc.array(intervalArb, { minLength: 1, maxLength: 4 }),
            fc.boolean(),
            fc.array(wsArb, { minLength: 6, maxLength: 6 }),
          ),
          { maxLength: 6 },
        ),
        wsArb,
      )
      .map(([parts, trailing]) => {
        const entries = parts.map(([sid, ivs]) => [sid, ivs] as const)
        const text =
          parts
            .map(([sid, ivs, upper, ws]) => {
              const [w0, w1, w2, w3, w4, w5] = ws as [
                string,
                string,
                string,
                string,
                string,
                string,
              ]
              const spelled = upper ? sid.toUpperCase() : sid
              const [uuid, tag] = [spelled.slice(0, 36), spelled.slice(37)]
              const head = tag === "" ? `${w0}${uuid}${w1}` : `${w0}${uuid}${w1}:${w2}${tag}${w3}`
              const body = ivs
                .map((iv) =>
                  iv.start === iv.end ? `${iv.start}` : `${iv.start}${w4}-${w5}${iv.end}`,
                )
                .join(`${w3}:${w2}`)
              return `${head}:${w2}${body}${w4}`
            })
            .join(",") + trailing
        return { text, expected: fromEntries(entries) }
      })
    fc.assert(
      fc.property(messyArb, ({ text, expected }) => {
        const result = parseGtidSet(text)
        assert.equal(
          result._tag,
          "Ok",
          result._tag === "Err" ? `${result.message} in ${JSON.stringify(text)}` : "",
        )
        if (result._tag === "Ok") {
          assertNormalized(result.set)
          assert.ok(sameSet(result.set, expected))
        }
      }),
      { numRuns: 300 },
    )
  })

  test("parse never throws on arbitrary input, and error positions lie within the text", () => {
    const alphabet = fc.constantFrom(..."0123456789abcdefABCDEF-:, \n\tgz_+x".split(""))
    const junkArb = fc.oneof(
      fc.string(),
      fc.array(alphabet, { maxLength: 60 }).map((cs) => cs.join("")),
      // Valid text with one character changed or removed.
      fc.tuple(setArb, fc.nat(), alphabet, fc.boolean()).map(([s, i, c, remove]) => {
        const t = formatGtidSet(s)
        const at = t.length === 0 ? 0 : i % t.length
        return t.slice(0, at) + (remove ? "" : c) + t.slice(at + 1)
      }),
    )
    fc.assert(
      fc.property(junkArb, (text) => {
        const result = parseGtidSet(text)
        if (result._tag === "Err") {
          assert.ok(result.position >= 0 && result.position <= text.length)
          assert.ok(result.message.endsWith(`at position ${result.position}`))
        } else {
          assertNormalized(result.set)
          assert.ok(sameSet(p(formatGtidSet(result.set)), result.set))
        }
      }),
      { numRuns: 500 },
    )
  })

  test("restrictToUuids: a subset, idempotent, distributes over ∪ ∩ −, and partitions a", () => {
    const uuidSubsetArb = fc.subarray([...UUIDS]).map((us) => new Set<string>(us))
    fc.assert(
      fc.property(setArb, setArb, uuidSubsetArb, (a, b, us) => {
        const r = (x: GtidSet): GtidSet => restrictToUuids(x, us)
        assertNormalized(r(a))
        assert.ok(isSubset(r(a), a))
        assert.ok(sameSet(r(r(a)), r(a)))
        assert.ok([...uuidsOf(r(a))].every((u) => us.has(u)))
        assert.ok(sameSet(r(union(a, b)), union(r(a), r(b))))
        assert.ok(sameSet(r(intersect(a, b)), intersect(r(a), r(b))))
        assert.ok(sameSet(r(subtract(a, b)), subtract(r(a), r(b))))
        const others = new Set(UUIDS.filter((u) => !us.has(u)))
        const rest = restrictToUuids(a, others)
        assert.ok(isEmpty(intersect(r(a), rest)))
        assert.ok(sameSet(union(r(a), rest), a))
        assert.ok(sameSet(restrictToUuids(a, new Set(UUIDS)), a))
        assert.ok(isEmpty(restrictToUuids(a, new Set())))
      }),
    )
  })

  test("uuidsOf, addTransaction, nextGno, contains agree with the model", () => {
    fc.assert(
      fc.property(setArb, sidArb, fc.integer({ min: 1, max: MAX_TEST_GNO + 2 }), (a, sid, gno) => {
        const expectedUuids = new Set([...expand(a)].map((x) => x.slice(0, 36)))
        assert.deepEqual(new Set(uuidsOf(a)), expectedUuids)
        const added = addTransaction(a, sid, gno)
        assertNormalized(added)
        assert.ok(contains(added, sid, gno))
        assert.equal(contains(a, sid, gno), expand(a).has(`${sid}#${gno}`))
        assert.equal(count(added), count(a) + (contains(a, sid, gno) ? 0 : 1))
        const gnos = [...expand(a)]
          .filter((x) => x.startsWith(`${sid}#`))
          .map((x) => Number(x.split("#")[1]))
        assert.equal(nextGno(a, sid), Math.max(0, ...gnos) + 1)
        assert.ok(!contains(a, sid, nextGno(a, sid)))
        assert.equal(nextGno(addTransaction(a, sid, nextGno(a, sid)), sid), nextGno(a, sid) + 1)
      }),
    )
  })
})
