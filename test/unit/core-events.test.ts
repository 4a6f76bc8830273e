/**
 * Core events are typed (core/events.ts): the facts an event carries reach
 * the log as fields, so readers (metrics, chaos, bench) need not parse the text.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect } from "effect"
import pino from "pino"
import {
  type ExecutorServices,
  makeExecutor,
  type PendingInput,
} from "../../agent/src/daemon/executor.ts"

test("the executor logs a promoted event with its kind and term as fields", async () => {
  const lines: Array<Record<string, unknown>> = []
  const log = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l)) })
  const executor = makeExecutor({
    config: () => ({}),
    log,
    enqueue: (_: PendingInput) => {},
  } as unknown as ExecutorServices)
  await Effect.runPromise(
    executor.execute(
      [
        {
          _tag: "Event",
          level: "info",
          event: "promoted",
          kind: "transfer",
          term: 7,
          reason: "db2 is ACTIVE for term 7 (transfer)",
        },
        { _tag: "Event", level: "warn", event: "self-fenced", reason: "lease lost" },
      ],
      "run-1",
    ),
  )
  const promoted = lines.find((l) => l.event === "promoted")
  assert.equal(promoted?.kind, "transfer")
  assert.equal(promoted?.term, 7)
  assert.equal(promoted?.msg, "db2 is ACTIVE for term 7 (transfer)")
  const fenced = lines.find((l) => l.event === "self-fenced")
  assert.deepEqual(
    Object.keys(fenced ?? {}).filter((k) => !["level", "time", "pid", "hostname"].includes(k)),
    ["event", "msg"],
  )
})
