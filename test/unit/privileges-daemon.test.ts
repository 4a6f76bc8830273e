// Issue 10 item 3 as the operator sees it: a missing privilege named by
// `status` (the view and its rendering), /health and the
// mha_mysql_privilege_missing metric.
import assert from "node:assert/strict"
import { test } from "node:test"
import { renderStatus } from "../../agent/src/cli/render.ts"
import { emptyGtidSet } from "../../agent/src/core/gtid.ts"
import type { AgentState } from "../../agent/src/core/types.ts"
import { answerHttp } from "../../agent/src/daemon/http.ts"
import { renderMetrics } from "../../agent/src/daemon/metrics.ts"
import { statusView } from "../../agent/src/daemon/status-view.ts"
import { standbyState } from "./daemon-states.ts"
import { parsePromText, sampleValue } from "./prom-text.ts"

const lacking = (missing: AgentState["local"]["privileges"]["missing"]): AgentState => {
  const s = standbyState()
  return {
    ...s,
    local: {
      ...s.local,
      errant: emptyGtidSet,
      privileges: { ...s.local.privileges, missing, user: "mha@%", checkedAt: s.now - 10 },
    },
  }
}
const SVA = { privilege: "SYSTEM_VARIABLES_ADMIN", neededBy: ["fence", "setSemiSyncSource"] }
const health = (s: AgentState) =>
  answerHttp(
    { cluster: "prod", node: s.self, state: s, loopAgeMs: 20, metrics: () => "" },
    "GET",
    "/health",
  )

test("status names the missing privilege and says the node will not stand", () => {
  const view = statusView(lacking([SVA]), "prod")
  assert.deepEqual(view.missingPrivileges, ["SYSTEM_VARIABLES_ADMIN"])
  assert.match(view.electionStatus, /mha@% lacks SYSTEM_VARIABLES_ADMIN: it could not promote/)
  assert.match(
    renderStatus(view),
    /lacks MySQL privileges SYSTEM_VARIABLES_ADMIN: it will not stand/,
  )
  assert.deepEqual(statusView(lacking([]), "prod").missingPrivileges, [])
  assert.equal(statusView(lacking(null), "prod").missingPrivileges, undefined, "not checked yet")
})

test("/health: 503 naming the privilege and what needs it; 200 once granted", () => {
  const bad = health(lacking([SVA]))
  assert.equal(bad.status, 503)
  assert.match(bad.body, /lacks SYSTEM_VARIABLES_ADMIN \(needed by fence, setSemiSyncSource\)/)
  assert.equal(health(lacking([])).status, 200)
})

test("mha_mysql_privilege_missing: 1 for the missing one, 0 for the others, nothing before a check", () => {
  const f = parsePromText(renderMetrics({ cluster: "prod", node: "db2", state: lacking([SVA]) }))
  const name = "mha_mysql_privilege_missing"
  assert.equal(sampleValue(f, name, { privilege: "SYSTEM_VARIABLES_ADMIN" }), 1)
  assert.equal(sampleValue(f, name, { privilege: "PROCESS" }), 0)
  const none = parsePromText(renderMetrics({ cluster: "prod", node: "db2", state: lacking(null) }))
  assert.equal(sampleValue(none, name, { privilege: "PROCESS" }), undefined)
})
