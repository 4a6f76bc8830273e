// The CLI reads replies with a plain description of ControlReply (no Effect,
// issue 16 item 4): it accepts what the daemon sends and refuses what the
// schema refuses, naming the field.
import assert from "node:assert/strict"
import { test } from "node:test"
import { Schema } from "effect"
import { decodeReply } from "../../agent/src/cli/reply.ts"
import { answer, historyReply } from "../../agent/src/daemon/control-socket.ts"
import { ControlReply } from "../../shared/control.ts"
import { activeState, standbyState } from "./daemon-states.ts"

const encode = Schema.encodeSync(ControlReply)
const schemaAccepts = (v: unknown): boolean =>
  Schema.decodeUnknownExit(ControlReply)(v)._tag === "Success"

const options = (state = activeState()) => ({
  path: "/nonexistent",
  cluster: () => "c",
  state: () => state,
  ask: async () => ({ ok: true, message: "x", steps: ["a", "b"], answeredBy: "db1" }),
  reload: async () => ({ ok: false, message: "refused" }),
  // biome-ignore lint/suspicious/noExplicitAny: the logger is never used by answer()
  log: undefined as any,
})

test("what the daemon sends is read as the schema reads it", async () => {
  const replies = [
    await answer(options(), '{"_tag":"Status"}'),
    await answer(options(standbyState(null)), '{"_tag":"Status"}'),
    await answer(options(), '{"_tag":"Pause"}'),
    await answer(options(), '{"_tag":"Reload"}'),
    await answer(options(), "{bad"),
    historyReply(activeState()),
  ]
  for (const reply of replies) {
    const wire = JSON.parse(JSON.stringify(encode(reply)))
    assert.ok(schemaAccepts(wire))
    assert.deepEqual(decodeReply(wire), wire)
  }
})

test("what the schema refuses is refused, naming the field", () => {
  const status = JSON.parse(JSON.stringify(encode({ ok: true, message: "s", status: undefined })))
  const cases: Array<[unknown, RegExp]> = [
    [{ ok: "maybe", message: "m" }, /Error: ok: expected boolean, got "maybe"$/],
    [{ ok: true }, /Error: message: expected string, got nothing$/],
    [[], /expected an object/],
    [{ ok: true, message: "m", steps: [1] }, /Error: steps\[0\]: expected string/],
    [{ ok: true, message: "m", status: { cluster: "c" } }, /Error: status\.node: expected string/],
    [
      {
        ok: true,
        message: "m",
        history: [
          {
            kind: "coup",
            term: 1,
            at: "t",
            reason: "r",
            oldPrimary: null,
            newPrimary: "db1",
            durationMs: null,
          },
        ],
      },
      /Error: history\[0\]\.kind: expected one of failover, switchover/,
    ],
  ]
  assert.ok(schemaAccepts(status))
  for (const [value, why] of cases) {
    assert.equal(schemaAccepts(value), false, JSON.stringify(value))
    assert.throws(() => decodeReply(value), why)
  }
})
