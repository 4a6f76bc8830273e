import assert from "node:assert/strict"
import type { OperatorRequest } from "../../agent/src/core/types.ts"
import type { World } from "../sim/world.ts"

/** Runs `request` on `node` of the simulated world and returns its reply once one came (within `forMs`). */
export const ask = (w: World, node: string, request: OperatorRequest, forMs = 3000) => {
  const id = w.operator(node, request)
  const until = w.now + forMs
  while (w.now < until) {
    w.runUntil(w.now + 20)
    const r = w.operatorReplies.find((x) => x.requestId === id && x.node === node)
    if (r !== undefined) return r
  }
  assert.fail(`no reply to ${JSON.stringify(request)} on ${node} within ${forMs} ms`)
}
