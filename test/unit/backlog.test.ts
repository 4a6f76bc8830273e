// backlogOf: the transactions a replica received but has not applied, as a
// GTID set difference. After a mysqld restart with relay_log_recovery the
// retrieved set starts again above what was executed, so a difference of
// sizes (the old count) said 0 for a real backlog of 30.
import assert from "node:assert/strict"
import { test } from "node:test"
import { backlogOf, candidateData } from "../../agent/src/core/election.ts"
import { unsafeParseGtidSet } from "../../agent/src/core/gtid.ts"
import type { AgentState } from "../../agent/src/core/types.ts"
import { standbyState, UUID1 } from "./daemon-states.ts"

const withSets = (executed: string, retrieved: string): AgentState => {
  const s = standbyState()
  const probe = s.local.probe
  assert.ok(probe !== null && probe.replica !== null)
  return {
    ...s,
    local: {
      ...s.local,
      probe: {
        ...probe,
        executed: unsafeParseGtidSet(executed),
        replica: { ...probe.replica, retrieved: unsafeParseGtidSet(retrieved) },
      },
    },
  }
}

test("backlogOf after relay_log_recovery: retrieved 71-100 against executed 1-70 is 30", () => {
  const s = withSets(`${UUID1}:1-70`, `${UUID1}:71-100`)
  assert.equal(backlogOf(s), 30)
  assert.equal(candidateData(s).backlog, 30, "what a candidate reports when it stands")
})

test("backlogOf counts only what is retrieved and not executed, per GTID", () => {
  const other = "4e11fa47-71ca-11e1-9e33-c80aa9429562"
  assert.equal(backlogOf(withSets(`${UUID1}:1-70`, `${UUID1}:1-100`)), 30)
  assert.equal(backlogOf(withSets(`${UUID1}:1-100`, `${UUID1}:1-100`)), 0)
  // Executed transactions of another source never offset a backlog of this one.
  assert.equal(backlogOf(withSets(`${UUID1}:1-70,${other}:1-50`, `${UUID1}:61-100`)), 30)
  // A hole in the executed set inside the retrieved range is backlog too.
  assert.equal(backlogOf(withSets(`${UUID1}:1-50:53-100`, `${UUID1}:1-100`)), 2)
})
