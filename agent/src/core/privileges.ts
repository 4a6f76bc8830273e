/**
 * The agent's MySQL privileges (issue 10 item 3): a node whose agent could
 * not carry out a promotion (for example without SYSTEM_VARIABLES_ADMIN it
 * aborts at the semi-sync step, after it won) must never stand. The core
 * decides when the grants are checked and what a gap means; the driver runs
 * SHOW GRANTS (CheckPrivileges) and reports (PrivilegesChecked).
 *
 * Checked at start, when probes start failing (a probe denied for lack of
 * REPLICATION CLIENT looks like a mysqld down), whenever mysqld answers again
 * after it was down (a restart), after a restart by the agent, on every reload, and every
 * `PRIVILEGE_RECHECK_MS` (a GRANT or REVOKE changes no probe result); a
 * failed check is retried after `PRIVILEGE_RETRY_MS`. Until one check
 * succeeded, and while a privilege is missing, the node does not stand; it
 * still votes (voting needs only the probe's privileges).
 */
import { isDataNode } from "./config.ts"
import { event, type Outputs } from "./outputs.ts"
import type { AgentState, MissingPrivilege, PrivilegeCheckResult, PrivilegeState } from "./types.ts"

/** A REVOKE is noticed within this long without any other trigger. */
export const PRIVILEGE_RECHECK_MS = 30_000
/** A check that failed (mysqld answered the probe but not SHOW GRANTS) is tried again after this. */
export const PRIVILEGE_RETRY_MS = 5_000

export const initialPrivileges: PrivilegeState = {
  missing: null,
  user: null,
  checkedAt: null,
  inFlight: false,
  dueAt: 0,
  lastError: null,
}

/** Ask for a check as soon as mysqld answers (after a restart, on reload). */
export const recheckPrivileges = (s: AgentState): AgentState => ({
  ...s,
  local: { ...s.local, privileges: { ...s.local.privileges, dueAt: s.now } },
})

/** Why this node must not stand because of its MySQL privileges, or null. */
export const privilegeBlocker = (s: AgentState): string | null => {
  const p = s.local.privileges
  if (p.missing === null) {
    return p.lastError === null
      ? "the agent's MySQL privileges are not checked yet"
      : `the agent's MySQL privileges could not be checked: ${p.lastError}`
  }
  if (p.missing.length === 0) return null
  const who = p.user === null ? "the agent's MySQL user" : `the agent's MySQL user ${p.user}`
  return `${who} lacks ${p.missing.map((m) => m.privilege).join(", ")}: it could not promote`
}

/** A privilege the probe needs is missing: failed probes then say nothing about mysqld itself. */
export const probeDenied = (s: AgentState): MissingPrivilege | undefined =>
  s.local.privileges.missing?.find((m) => m.forProbe === true)

/** Guard run after every input: starts a check when one is due and mysqld answers. */
export const privilegeCheckDue = (s: AgentState, out: Outputs): AgentState => {
  const p = s.local.privileges
  // Also while probes fail: a probe denied for lack of a privilege looks like a mysqld down.
  if (!isDataNode(s.config, s.self) || p.inFlight || s.now < p.dueAt) return s
  out.push({ _tag: "CheckPrivileges" })
  return { ...s, local: { ...s.local, privileges: { ...p, inFlight: true } } }
}

export const onPrivilegesChecked = (
  s: AgentState,
  out: Outputs,
  result: PrivilegeCheckResult,
): AgentState => {
  const p = s.local.privileges
  switch (result._tag) {
    case "Failed": {
      // While mysqld is down the probe already says so.
      if (p.lastError === null && s.local.up)
        event(out, "warn", "privilege-check-failed", `SHOW GRANTS: ${result.reason}`)
      const next: PrivilegeState = {
        ...p,
        inFlight: false,
        lastError: result.reason,
        dueAt: s.now + PRIVILEGE_RETRY_MS,
      }
      return { ...s, local: { ...s.local, privileges: next } }
    }
    case "Checked": {
      // One line per privilege when it goes missing (not at every re-check), one when all are back.
      const before = new Set((p.missing ?? []).map((m) => m.privilege))
      for (const m of result.missing) {
        if (before.has(m.privilege)) continue
        event(
          out,
          "error",
          "privilege-missing",
          `${result.user} lacks ${m.privilege}, needed by ${m.neededBy.join(", ")}: this node will not stand for election`,
        )
      }
      if (result.missing.length === 0 && before.size > 0) {
        event(out, "info", "privileges-complete", `${result.user} has every privilege it needs`)
      }
      const next: PrivilegeState = {
        missing: result.missing,
        user: result.user,
        checkedAt: s.now,
        inFlight: false,
        dueAt: s.now + PRIVILEGE_RECHECK_MS,
        lastError: null,
      }
      return { ...s, local: { ...s.local, privileges: next } }
    }
    default:
      return absurd(result)
  }
}

function absurd(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`)
}
