// The core's GTID set algebra agrees with MySQL 9.7's own GTID_SUBTRACT and
// GTID_SUBSET on random sets (untagged and tagged), and formats sets exactly
// as the server does.
import assert from "node:assert/strict"
import { after, before, test } from "node:test"
import fc from "fast-check"
import {
  formatGtidSet,
  fromEntries,
  type GtidInterval,
  type GtidSet,
  intersect,
  isSubset,
  subtract,
  union,
  unsafeParseGtidSet,
} from "../../agent/src/core/gtid.ts"
import { Lab } from "./lab.ts"

const UUIDS = [
  "3e11fa47-71ca-11e1-9e33-c80aa9429562",
  "8a94f357-aab4-11df-86ab-c80aa9429562",
  "fd4b5b7c-0b65-11f1-8a27-02fc00000001",
]
const SIDS = [...UUIDS, `${UUIDS[0]}:alpha`, `${UUIDS[1]}:beta_2`]

const interval = fc
  .tuple(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 8 }))
  .map(([start, length]): GtidInterval => ({ start, end: start + length }))

const gtidSet: fc.Arbitrary<GtidSet> = fc
  .array(fc.tuple(fc.constantFrom(...SIDS), fc.array(interval, { maxLength: 4 })), { maxLength: 5 })
  .map((entries) => fromEntries(entries))

let lab: Lab
before(async () => {
  lab = await Lab.up({ hosts: 1 })
})
after(async () => {
  await lab?.down()
})

const server = async (sql: string, params: string[]): Promise<string> => {
  const [row] = await lab.query<{ r: string | number }>("db1", `SELECT ${sql} AS r`, params)
  return String(row?.r ?? "")
}

test("subtract, union, intersect and subset agree with the server on random sets", async () => {
  let checked = 0
  await fc.assert(
    fc.asyncProperty(gtidSet, gtidSet, async (a, b) => {
      const [ta, tb] = [formatGtidSet(a), formatGtidSet(b)]
      // GTID_SUBTRACT(x, '') normalises x, so a union is the concatenation normalised.
      const serverUnion = await server("GTID_SUBTRACT(CONCAT(?, ',', ?), '')", [ta, tb])
      const serverSubtract = await server("GTID_SUBTRACT(?, ?)", [ta, tb])
      const serverIntersect = await server("GTID_SUBTRACT(?, GTID_SUBTRACT(?, ?))", [ta, ta, tb])
      const serverSubset = await server("GTID_SUBSET(?, ?)", [ta, tb])
      const flat = (s: string) => s.replace(/\n/g, "")
      // The same sets, and the same text as the server prints.
      assert.equal(formatGtidSet(union(a, b)), flat(serverUnion), `union of ${ta} and ${tb}`)
      assert.equal(formatGtidSet(subtract(a, b)), flat(serverSubtract), `${ta} minus ${tb}`)
      assert.equal(formatGtidSet(intersect(a, b)), flat(serverIntersect), `${ta} and ${tb}`)
      assert.equal(isSubset(a, b), serverSubset === "1", `${ta} subset of ${tb}`)
      // And the server's text parses back into the same set.
      assert.equal(formatGtidSet(unsafeParseGtidSet(serverSubtract)), formatGtidSet(subtract(a, b)))
      checked++
    }),
    { numRuns: 300, seed: 20261122 },
  )
  assert.equal(checked >= 300, true)
})

test("the server's own gtid_executed parses, with real server UUIDs", async () => {
  await lab.query("db1", "SET GLOBAL super_read_only = OFF")
  await lab.query("db1", "CREATE DATABASE IF NOT EXISTS gtidcheck")
  await lab.query("db1", "SET GLOBAL super_read_only = ON")
  const [row] = await lab.query<{ g: string; u: string }>(
    "db1",
    "SELECT @@gtid_executed AS g, @@server_uuid AS u",
  )
  const executed = unsafeParseGtidSet(row?.g ?? "")
  assert.ok(executed.sids.has(row?.u ?? ""), `${row?.g} names the server's uuid`)
  assert.equal(formatGtidSet(executed), (row?.g ?? "").replace(/\n/g, ""))
})
