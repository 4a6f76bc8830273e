import assert from "node:assert/strict"
import { test } from "node:test"

// The whole project promises Node 24 LTS in tests and in the shipped binary.
test("tests run on Node 24, not the machine's Node 20", () => {
  const major = Number(process.versions.node.split(".")[0])
  assert.equal(major, 24)
})
