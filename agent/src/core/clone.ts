/**
 * `clone --recipient N [--donor M]` (operations.md; protocol.md section 10):
 * re-seeds a broken or DIVERGED replica with the CLONE plugin, then rejoins
 * it as a replica of the active primary with auto-position.
 *
 * Runs on the recipient's agent. The recipient is never the primary and is
 * never writable: it is fenced first, its replication is reset, and the
 * clone keeps read_only ON (the actuator). The donor must be a healthy data
 * member other than the recipient; by default a caught-up STANDBY replica,
 * else the primary. The reply comes when the CLONE statement finished and
 * mysqld is back (or failed, with MySQL's error); the rejoin follows through
 * the ordinary replication guard.
 */
import { aliveWindow } from "./cluster-view.ts"
import { isDataNode, memberOf } from "./config.ts"
import { emptyGtidSet } from "./gtid.ts"
import { probeLocal } from "./local-probes.ts"
import { event, issueMysql, type Outputs, operatorReply } from "./outputs.ts"
import { activeLeaderOf, leaderActiveOf, leaderOf } from "./roles.ts"
import type { AgentState, PeerView } from "./types.ts"

type Verdict = { readonly ok: true } | { readonly ok: false; readonly why: string }

/** Why `view` cannot give its data to a clone, or ok. */
const donorHealth = (s: AgentState, name: string, view: PeerView | undefined): Verdict => {
  if (view === undefined) return { ok: false, why: `nothing heard from ${name} yet` }
  const ago = s.now - view.lastHeardAt
  if (ago >= aliveWindow(s.config)) {
    return { ok: false, why: `not heard from for ${Math.round(ago)} ms` }
  }
  if (!view.mysqlUp) return { ok: false, why: "its mysqld is down" }
  if (!view.healthy) return { ok: false, why: "its health is WARN or worse" }
  if (view.role === "DIVERGED" || view.errant) {
    return { ok: false, why: "it has errant transactions (a clone would copy them)" }
  }
  if (view.replicationError !== null) {
    return { ok: false, why: `its replication is broken: ${view.replicationError}` }
  }
  return { ok: true }
}

/** The donor named by the operator, checked. */
export const checkDonor = (s: AgentState, donor: string): Verdict => {
  const m = memberOf(s.config, donor)
  if (m === undefined) return { ok: false, why: `unknown donor ${donor}` }
  if (m.kind !== "data") return { ok: false, why: `${donor} is a witness: it has no mysqld` }
  if (donor === s.self) return { ok: false, why: `${donor} cannot clone from itself` }
  const health = donorHealth(s, donor, s.peers.get(donor))
  if (!health.ok) return { ok: false, why: `donor ${donor} is not healthy: ${health.why}` }
  return { ok: true }
}

/**
 * The default donor: a STANDBY replica of the active primary that is healthy
 * (so its lag is under the health lag threshold), the smallest unapplied
 * backlog first, then the highest priority; else the primary.
 */
export const chooseDonor = (
  s: AgentState,
): { readonly ok: true; readonly donor: string } | { readonly ok: false; readonly why: string } => {
  const leader = activeLeaderOf(s)
  const replicas = s.config.members
    .filter((m) => m.kind === "data" && m.name !== s.self && m.name !== leader)
    .filter((m) => {
      const v = s.peers.get(m.name)
      return (
        leader !== null &&
        v !== undefined &&
        donorHealth(s, m.name, v).ok &&
        v.role === "STANDBY" &&
        v.source === leader &&
        v.replicating
      )
    })
    .sort(
      (a, b) =>
        (s.peers.get(a.name)?.backlog ?? 0) - (s.peers.get(b.name)?.backlog ?? 0) ||
        b.priority - a.priority ||
        (a.name < b.name ? -1 : 1),
    )
  const best = replicas[0]
  if (best !== undefined) return { ok: true, donor: best.name }
  if (leader === null) {
    return { ok: false, why: "no donor: no caught-up replica and no ACTIVE primary; name one" }
  }
  if (leader === s.self) return { ok: false, why: "this node is the primary" }
  const health = donorHealth(s, leader, s.peers.get(leader))
  if (!health.ok) {
    return {
      ok: false,
      why: `no caught-up replica, and the primary ${leader} is not healthy: ${health.why}`,
    }
  }
  return { ok: true, donor: leader }
}

/** Why this node may not be re-seeded now, or ok. */
const recipientReady = (s: AgentState): Verdict => {
  if (!isDataNode(s.config, s.self)) {
    return { ok: false, why: `${s.self} is a witness: it has no mysqld to clone into` }
  }
  const probe = s.local.up ? s.local.probe : null
  if (s.role._tag === "Leader" || (probe !== null && !probe.superReadOnly && !probe.readOnly)) {
    return {
      ok: false,
      why: `${s.self} is the primary (ACTIVE or writable): clone re-seeds replicas only; switch over first`,
    }
  }
  if (s.hard.record.primary === s.self) {
    return {
      ok: false,
      why: `${s.self} is the recorded primary of term ${s.hard.record.term}: its data may be the only copy; fail over or switch over first`,
    }
  }
  if (s.role._tag !== "Follower")
    return { ok: false, why: `${s.self} is standing for election; retry` }
  if (s.clone?.phase === "cloning") {
    return { ok: false, why: `a clone from ${s.clone.donor} is already running` }
  }
  if (probe === null) {
    return { ok: false, why: `the mysqld of ${s.self} is down: CLONE runs on the recipient` }
  }
  return { ok: true }
}

export const requestClone = (
  s: AgentState,
  out: Outputs,
  requestId: number,
  recipient: string,
  donor: string | null,
): AgentState => {
  if (memberOf(s.config, recipient) === undefined) {
    operatorReply(out, requestId, false, `unknown node ${recipient}`)
    return s
  }
  // The daemon forwards a clone to the recipient's agent.
  if (recipient !== s.self) {
    operatorReply(out, requestId, false, `run on ${recipient}`)
    return s
  }
  const ready = recipientReady(s)
  if (!ready.ok) {
    operatorReply(out, requestId, false, ready.why)
    return s
  }
  const chosen: ReturnType<typeof chooseDonor> =
    donor === null
      ? chooseDonor(s)
      : ((v: Verdict) => (v.ok ? { ok: true as const, donor } : v))(checkDonor(s, donor))
  if (!chosen.ok) {
    operatorReply(out, requestId, false, chosen.why)
    return s
  }
  let next: AgentState = {
    ...s,
    clone: { requestId, donor: chosen.donor, phase: "cloning", since: s.now },
    // Its data is about to be replaced: it neither stands nor vouches for it in a vote.
    local: {
      ...s.local,
      resyncNeeded: true,
      resyncSince: s.now + s.config.timings.probeIntervalMs,
    },
  }
  event(
    out,
    "warn",
    "clone-started",
    `re-seeding ${s.self} from ${chosen.donor}: its data is replaced by the donor's`,
  )
  ;[next] = issueMysql(next, out, { _tag: "Fence", until: "pending" }, { _tag: "CloneFence" })
  if (s.local.probe?.replica != null) {
    ;[next] = issueMysql(next, out, { _tag: "ResetReplicaAll" }, { _tag: "CloneReset" })
  }
  ;[next] = issueMysql(next, out, { _tag: "Clone", donor: chosen.donor }, { _tag: "Clone" })
  return next
}

/** The CLONE finished (mysqld is back) or failed. */
export const onCloneResult = (
  s: AgentState,
  out: Outputs,
  ok: boolean,
  error: string | null,
): AgentState => {
  const c = s.clone
  if (c === null || c.phase !== "cloning") return s
  if (!ok) {
    const why = `clone from ${c.donor} failed: ${error ?? "error"}`
    event(out, "error", "clone-failed", why)
    operatorReply(out, c.requestId, false, why)
    return { ...s, clone: null }
  }
  const leader = activeLeaderOf(s)
  const message = `cloned from ${c.donor}; rejoining as a replica of ${leader ?? "the primary once one is ACTIVE"}`
  event(out, "info", "cloned", message)
  operatorReply(out, c.requestId, true, message)
  return {
    ...probeLocal(s, out),
    clone: { ...c, phase: "rejoining", since: s.now },
    local: {
      ...s.local,
      // Its executed set is now the donor's, a subset of the primary's.
      diverged: false,
      errant: emptyGtidSet,
      rejoinForced: false,
      resyncNeeded: true,
      resyncSince: s.now + s.config.timings.probeIntervalMs,
    },
  }
}

/** While re-seeding, and until a probe taken after it, replication is left alone. */
export const cloneHoldsReplication = (s: AgentState): boolean =>
  s.clone !== null &&
  (s.clone.phase === "cloning" ||
    s.local.lastProbeAt === null ||
    s.local.lastProbeAt <= s.clone.since)

/** The rejoin after a clone is over once the node is a STANDBY of the active primary. */
export const cloneProgress = (s: AgentState, out: Outputs): AgentState => {
  const c = s.clone
  if (c === null || c.phase !== "rejoining" || cloneHoldsReplication(s)) return s
  const p = s.local.up ? s.local.probe : null
  const r = p?.replica ?? null
  if (
    r !== null &&
    leaderActiveOf(s) &&
    r.source === leaderOf(s) &&
    r.ioRunning &&
    r.sqlRunning &&
    s.local.health.level !== "FAIL"
  ) {
    event(out, "info", "clone-rejoined", `replicating from ${leaderOf(s)} after the clone`)
    return { ...s, clone: null }
  }
  return s
}
