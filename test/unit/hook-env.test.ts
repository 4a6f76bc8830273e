// The extra MHA_* variables of a hook run (MHA_LAG_SECONDS, MHA_OLD_ROLE, MHA_NEW_ROLE):
// passed on, but never overriding the standard ones nor adding non-MHA_ names.
import assert from "node:assert/strict"
import { test } from "node:test"
import { hookEnvironment } from "../../agent/src/adapters/hook-runner.ts"

test("hook environment: extra MHA_* variables are added; standard ones and other names are not overridden", () => {
  const env = hookEnvironment(
    { cluster: "c1", node: "db3" },
    {
      hook: "on_lag_threshold_exceeded",
      term: 4,
      newPrimary: "db1",
      reason: "lag",
      extra: { MHA_LAG_SECONDS: "12", MHA_TERM: "99", MHA_NODE: "db9", PATH: "/evil" },
    },
  )
  assert.equal(env.MHA_LAG_SECONDS, "12")
  assert.equal(env.MHA_TERM, "4")
  assert.equal(env.MHA_NODE, "db3")
  assert.equal(env.MHA_CLUSTER, "c1")
  assert.equal(env.MHA_EVENT, "on_lag_threshold_exceeded")
  assert.equal(env.MHA_NEW_PRIMARY, "db1")
  assert.equal(env.MHA_OLD_PRIMARY, "")
  assert.notEqual(env.PATH, "/evil")
})
