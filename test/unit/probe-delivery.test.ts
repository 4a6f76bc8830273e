/**
 * Issue 12: probe results come back to the decision loop through `deliver`
 * (stepped at once when the loop is free: decision-loop.ts deliverInput),
 * not through the inbox queue: a queue hop and a fiber wake-up fewer for
 * each of the two or three probes a second. Other completions still queue.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect } from "effect"
import pino from "pino"
import { MysqlError } from "../../agent/src/adapters/mysql-connection.ts"
import type { MysqlProberService, RemoteProbe } from "../../agent/src/adapters/mysql-prober.ts"
import type { Input } from "../../agent/src/core/types.ts"
import {
  type ExecutorServices,
  makeExecutor,
  type PendingInput,
} from "../../agent/src/daemon/executor.ts"

const refused = new MysqlError({
  action: "probe",
  target: "127.0.0.1:3306",
  kind: "connect",
  code: "ECONNREFUSED",
  errno: null,
  sqlState: null,
  reason: "connect ECONNREFUSED",
})

test("probe results are delivered (stepped at once by the decision loop), not queued", async () => {
  const delivered: Array<Input> = []
  const queued: Array<Input> = []
  const prober: MysqlProberService = {
    probeLocal: Effect.fail(refused),
    probeRemote: (e) =>
      Effect.succeed<RemoteProbe>({
        _tag: "Reachable",
        target: `${"host" in e ? e.host : ""}`,
        serverUuid: "u",
        readOnly: false,
        superReadOnly: false,
        latencyMs: 1,
      }),
    reset: Effect.void,
  }
  const executor = makeExecutor({
    config: () => ({
      cluster: { members: [{ name: "db1", kind: "data", address: "10.0.0.1", mysql_port: 3306 }] },
    }),
    log: pino({ level: "silent" }),
    enqueue: (p: PendingInput) => void queued.push(p(1)),
    deliver: (p: PendingInput) => void delivered.push(p(2)),
    prober,
  } as unknown as ExecutorServices)
  await Effect.runPromise(
    executor.execute(
      [
        { _tag: "ProbeLocal", probe: 1 },
        { _tag: "ProbePrimary", target: "db1" },
      ],
      "run-1",
    ),
  )
  // The probes run in the background: wait for both results.
  for (let i = 0; i < 100 && delivered.length < 2; i++) await new Promise((r) => setTimeout(r, 5))
  assert.deepEqual(queued, [], "nothing went through the inbox")
  const local = delivered.find((i) => i._tag === "LocalProbed")
  const primary = delivered.find((i) => i._tag === "PrimaryProbed")
  assert.ok(local?._tag === "LocalProbed" && local.result._tag === "Down")
  assert.equal(local.result.hung, false)
  assert.equal(local.probe, 1, "the answer names the probe it answers")
  assert.equal(local.incarnation, "run-1")
  assert.ok(primary?._tag === "PrimaryProbed" && primary.reachable && primary.target === "db1")
})
