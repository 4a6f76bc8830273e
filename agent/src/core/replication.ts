/**
 * Keeping a replica pointed at the active primary (section 9 step 7) and
 * returning nodes (section 10): a node rejoins only if it holds nothing the
 * primary lacks; otherwise it is DIVERGED and waits for an operator.
 */

import { cloneHoldsReplication } from "./clone.ts"
import { isExcluded } from "./cluster-record.ts"
import { isDataNode, strictAckCount } from "./config.ts"
import { credentialsApplied, credentialsToReapply } from "./credentials.ts"
import { formatGtidSet, isEmpty } from "./gtid.ts"
import { errantOf } from "./local-node.ts"
import { event, isInFlight, issueMysql, type Outputs } from "./outputs.ts"
import type { AgentState, MysqlProbe } from "./types.ts"

export const guardReplication = (s: AgentState, out: Outputs): AgentState => {
  if (!isDataNode(s.config, s.self) || s.role._tag !== "Follower") return s
  const leader = s.role.leaderActive ? s.role.leader : null
  const probe = s.local.up ? s.local.probe : null
  if (leader === null || probe === null || s.local.diverged) return s
  // A clone resets replication and then restarts mysqld: wait for a probe after it.
  if (cloneHoldsReplication(s)) return s
  if (!isDataNode(s.config, leader) || isInFlight(s, "Replication")) return s
  // Excluded for maintenance: the operator owns this node's replication, and
  // the agent repairs nothing (no restart, no semi-sync, no repoint) unless
  // the operator asks for it (rejoin, demote, clone).
  if (
    isExcluded(s.hard.record, s.self) &&
    !s.local.rejoinRequested &&
    !s.local.rejoinForced &&
    s.clone === null
  ) {
    return s
  }
  const replica = probe.replica
  // Pointed at the leader while catching up (catch-up.ts): not judged against it yet.
  const caughtUpFromLeader = (s.catchingUpFrom ?? null) === leader
  if (replica === null || replica.source !== leader || caughtUpFromLeader) {
    const view = s.peers.get(leader)
    if (view === undefined || view.serverUuid === null) return s
    // Judge errant transactions only against the record that names this
    // leader (its base GTID set and server_uuid): with an older record an old
    // primary's own unacknowledged commits still look like the primary's.
    if (s.hard.record.primary !== leader) return s
    // Section 9, "never release a waiting commit": an old primary is fenced first.
    if (!fencedQuietly(s, probe)) return s
    const errant = errantOf(s, probe)
    if (!isEmpty(errant) && !s.local.rejoinForced) {
      event(
        out,
        "error",
        "diverged",
        `holds ${formatGtidSet(errant)} that ${leader} lacks: run rejoin --force or clone`,
      )
      return { ...s, catchingUpFrom: null, local: { ...s.local, diverged: true, errant } }
    }
    const wasPrimary = s.hard.record.lineage.includes(probe.serverUuid)
    // The operator's clone asked for the rejoin.
    if (
      !s.config.autoRejoin &&
      wasPrimary &&
      replica === null &&
      s.clone === null &&
      !s.local.rejoinRequested
    ) {
      return s // auto_rejoin off: an old primary waits for `rejoin`
    }
    let next = s
    ;[next] = issueMysql(
      next,
      out,
      { _tag: "ReplicateFrom", source: leader },
      { _tag: "Replication" },
    )
    next = setReplicaSemiSync(next, out)
    const was = replica === null ? "replicated from no source" : `replicated from ${replica.source}`
    event(out, "info", "repoint", `replicating from ${leader} with auto-position (it ${was})`)
    next = credentialsApplied(next)
    return {
      ...next,
      catchingUpFrom: null,
      local: { ...next.local, rejoinForced: false, rejoinRequested: false },
    }
  }
  // Already pointed at the primary: a changed password file, `rejoin`, or an
  // IO thread that cannot log in has the channel configured again, with the
  // password file read afresh (credentials.ts).
  if (!fencedQuietly(s, probe)) return keepReplicaRunning(s, out, probe)
  const [next, why] = credentialsToReapply(s, out, replica, leader)
  if (why === null) return keepReplicaRunning(next, out, probe)
  const [issued] = issueMysql(
    next,
    out,
    { _tag: "ReplicateFrom", source: leader },
    { _tag: "Replication" },
  )
  event(out, "info", "credentials", `re-applying the replication credentials: ${why}`)
  return { ...issued, local: { ...issued.local, rejoinForced: false, rejoinRequested: false } }
}

/** A replica that follows the primary: semi-sync on, both threads running unless broken. */
const keepReplicaRunning = (s: AgentState, out: Outputs, probe: MysqlProbe): AgentState => {
  const replica = probe.replica
  if (replica === null) return s
  // A replica whose mysqld restarted follows the same source but has lost the
  // runtime semi-sync setting: with strict semi-sync and every replica in that
  // state the primary would block every commit while all looks healthy.
  if (
    s.config.semiSync !== "off" &&
    !probe.semiSyncReplicaOn &&
    probe.superReadOnly &&
    !isInFlight(s, "SemiSync")
  ) {
    event(
      out,
      "warn",
      "semi-sync-replica",
      "semi-sync was off on this replica (mysqld restarted?): enabling it",
    )
    return setReplicaSemiSync(s, out)
  }
  // An IO thread that is connecting retries by itself (a START REPLICA would change nothing,
  // and said so twice a second while a source stayed unreachable).
  const ioStopped = !replica.ioRunning && replica.ioConnecting !== true
  if ((ioStopped || !replica.sqlRunning) && replica.lastError === null) {
    const stopped = [ioStopped ? ["I/O"] : [], replica.sqlRunning ? [] : ["SQL"]].flat()
    event(
      out,
      "warn",
      "replication-restart",
      `${stopped.join(" and ")} thread${stopped.length > 1 ? "s" : ""} of replication from ${replica.source} stopped with no error: starting replication (exclude ${s.self} to keep the agent from repairing it)`,
    )
    const [next] = issueMysql(s, out, { _tag: "StartReplica" }, { _tag: "Replication" })
    return next
  }
  return s
}

/**
 * This node's own mysqld is read-only and no commit waits for an
 * acknowledgement: only then may a follower repoint it or turn semi-sync off
 * as a source. A commit that waits (an old primary cut off from its replicas)
 * would be released by that, and its client would get OK for a transaction
 * no replica has. The fence (fencing.ts) gets there first, or escalates.
 */
export const fencedQuietly = (
  s: AgentState,
  probe: {
    readonly readOnly: boolean
    readonly superReadOnly: boolean
    readonly semiSyncWaiters: number
  },
): boolean =>
  probe.readOnly && probe.superReadOnly && probe.semiSyncWaiters === 0 && !isInFlight(s, "Fence")

/** Semi-sync as a replica of the primary: acknowledge (unless off), never wait as a source. */
const setReplicaSemiSync = (s: AgentState, out: Outputs): AgentState =>
  issueMysql(
    s,
    out,
    {
      _tag: "SetSemiSync",
      source: false,
      replica: s.config.semiSync !== "off",
      waitForReplicaCount: s.config.semiSync === "strict" ? strictAckCount(s.config) : 1,
    },
    { _tag: "SemiSync" },
  )[0]
