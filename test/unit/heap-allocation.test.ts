// The heap allocation counter (daemon/heap-allocation.ts): V8's GC profiler
// in this very process. Garbage that never shows in heap-used still counts.
import assert from "node:assert/strict"
import { test } from "node:test"
import {
  heapAllocatedBytes,
  startHeapAllocationCount,
} from "../../agent/src/daemon/heap-allocation.ts"

const used = () => process.memoryUsage().heapUsed

test("heap allocation: short-lived garbage (1 million small arrays, over 40 MB) counts, the counter never goes back", () => {
  assert.equal(heapAllocatedBytes(used()), undefined, "nothing before counting starts")
  startHeapAllocationCount()
  const before = heapAllocatedBytes(used()) as number
  // Each array: a 32-byte header and a 48-byte element store on the heap, kept in a ring of
  // 1000 so that V8 cannot elide it, then dropped. (Not typed arrays: their bytes live
  // outside the V8 heap.)
  const ring: Array<Array<number>> = new Array(1000)
  for (let i = 0; i < 1_000_000; i++) ring[i % 1000] = [i, i + 1, i + 2, i + 3]
  const after = heapAllocatedBytes(used()) as number
  assert.equal(ring[999]?.[0], 999_999)
  const mb = (after - before) / 1024 / 1024
  assert.ok(mb >= 40, `counted ${mb.toFixed(1)} MB`)
  assert.ok(mb < 1024, `counted ${mb.toFixed(1)} MB: far more than was allocated`)
  // Heap-used lower than at the last collection (the caller read it early): no step back.
  assert.ok((heapAllocatedBytes(0) as number) >= after)
})
