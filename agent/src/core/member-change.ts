/**
 * Running a membership change on the ACTIVE primary (members.ts has the
 * rule): raise the strict semi-sync wait count first when the new list needs
 * more acknowledgements, then propose the record carrying the new list
 * (which counts here at once), and answer the operator once it is committed.
 *
 * A removed data member may still replicate from this primary and
 * acknowledge its commits; its acknowledgement proves nothing to the
 * members' quorums, so the wait count counts it extra until it has left: its
 * own heartbeat says its mysqld replicates from elsewhere or nothing (or is
 * down), or its mysqld does not answer this primary's probe (no TCP
 * connection to it could carry an acknowledgement either). Until then it
 * gets this primary's heartbeats, which carry the record that leaves it out.
 *
 * The count is lowered only while no commit waits for an acknowledgement
 * (protocol section 9: never release a waiting commit).
 *
 * A removed member learns of its removal from the record: it then stands for
 * nothing, votes for nobody and stops its replication.
 */
import type { HeartbeatMessage } from "../../../shared/peer-messages.ts"
import { compareVersions, nextRecord } from "./cluster-record.ts"
import {
  checkMemberChange,
  fileDisagreement,
  isMember,
  type MemberChange,
  membersBlock,
  removedSelf,
  toRecordMember,
  waitCountFor,
  wantedWaitCount,
} from "./members.ts"
import { event, isInFlight, issueMysql, type Outputs, operatorReply } from "./outputs.ts"
import { propose } from "./record-replication.ts"
import { isActivePrimary, notActivePrimaryWhy } from "./roles.ts"
import type { AgentState, MemberChangeInProgress } from "./types.ts"

/** The wait count this mysqld has, when probed. */
const probedWaitCount = (s: AgentState): number | undefined =>
  s.local.up ? s.local.probe?.semiSyncWaitCount : undefined

/** Operator `member add` / `member remove`, on the node that received it. */
export const requestMemberChange = (
  s: AgentState,
  out: Outputs,
  requestId: number,
  change: MemberChange,
): AgentState => {
  const notPrimary = notActivePrimaryWhy(s)
  if (notPrimary !== null) {
    operatorReply(out, requestId, false, `member change refused: ${notPrimary}`)
    return s
  }
  const running = s.memberChange ?? null
  if (running !== null) {
    operatorReply(
      out,
      requestId,
      false,
      `member change refused: the previous change (${running.what}) is not committed yet; retry`,
    )
    return s
  }
  const verdict = checkMemberChange(s, change)
  if (!verdict.ok) {
    operatorReply(out, requestId, false, `member change refused: ${verdict.why}`)
    return s
  }
  // A removed data member may go on acknowledging: counted extra until it left.
  const strays =
    change._tag === "Remove" &&
    s.config.members.some((m) => m.name === change.node && m.kind === "data")
      ? [...(s.removedNotLeft ?? []), change.node]
      : (s.removedNotLeft ?? []).filter((n) => change._tag !== "Add" || n !== change.member.name)
  const mc: MemberChangeInProgress = {
    phase: "raising",
    since: s.now,
    before: s.config.members.length,
    raiseTo: waitCountFor(verdict.members.length, strays.length),
    record: nextRecord(s.hard.record, s.hard.term, { members: verdict.members }),
    requestId,
    what: verdict.what,
  }
  event(out, "info", "member-change", `${verdict.what}: proposing`)
  const next: AgentState = { ...s, memberChange: mc, removedNotLeft: strays }
  const have = probedWaitCount(next)
  // Raised before the new list counts anywhere (lowering waits: guardWaitCount).
  if (next.config.semiSync === "strict" && have !== undefined && have < mc.raiseTo)
    return setWaitCount(next, out, wantedWaitCount(next))
  return proposeChange(next, out, mc)
}

const proposeChange = (s: AgentState, out: Outputs, mc: MemberChangeInProgress): AgentState => {
  // Built again from the record held now (no other change may be made meanwhile: operator.ts).
  const record = nextRecord(s.hard.record, s.hard.term, { members: mc.record.members })
  return propose({ ...s, memberChange: { ...mc, phase: "proposed", record } }, out, record)
}

const setWaitCount = (s: AgentState, out: Outputs, count: number): AgentState => {
  if (isInFlight(s, "SemiSyncSource")) return s
  const stray = s.removedNotLeft ?? []
  event(
    out,
    "info",
    "semi-sync-source",
    `rpl_semi_sync_source_wait_for_replica_count = ${count} for ${s.config.members.length} members${stray.length > 0 ? ` and removed ${stray.join(", ")} that may still replicate` : ""}${(s.memberChange ?? null) === null ? "" : ` (member change: ${s.memberChange?.what})`}`,
  )
  return issueMysql(
    s,
    out,
    { _tag: "SetSemiSync", source: true, replica: false, waitForReplicaCount: count },
    { _tag: "SemiSyncSource" },
  )[0]
}

const markLeft = (s: AgentState, out: Outputs, name: string, how: string): AgentState => {
  const stray = s.removedNotLeft ?? []
  if (!stray.includes(name)) return s
  event(
    out,
    "info",
    "member-change-committed",
    `${name} left (${how}): no longer counted for the semi-sync wait count`,
  )
  return { ...s, removedNotLeft: stray.filter((n) => n !== name) }
}

/** A heartbeat from a member this primary removed: only whether it left counts. */
export const onRemovedHeartbeat = (
  s: AgentState,
  out: Outputs,
  hb: HeartbeatMessage,
): AgentState => {
  if (s.role._tag !== "Leader" || !(s.removedNotLeft ?? []).includes(hb.from)) return s
  // No observation says nothing (an agent that has not probed yet): only what it saw counts.
  const o = hb.observation
  if (o === null) return s
  if (!o.mysqlUp) return markLeft(s, out, hb.from, "its mysqld is down")
  if (o.source !== s.self || !o.ioRunning)
    return markLeft(s, out, hb.from, "it no longer replicates from this primary")
  return s
}

/** This primary's probe of a removed member's mysqld: unreachable, it cannot acknowledge. */
export const onRemovedProbed = (
  s: AgentState,
  out: Outputs,
  target: string,
  reachable: boolean,
): AgentState =>
  reachable ? s : markLeft(s, out, target, "its mysqld does not answer this primary")

/** Runs after every input: the change's progress, the wait count, and a removed node's leaving. */
export const memberChangeProgress = (s: AgentState, out: Outputs): AgentState => {
  let next = warnStaleFile(leaveIfRemoved(s, out), out)
  if (next.role._tag !== "Leader" && (next.removedNotLeft ?? []).length > 0)
    next = { ...next, removedNotLeft: [] }
  const c = next.memberChange ?? null
  if (c !== null && !isActivePrimary(next)) {
    operatorReply(out, c.requestId, false, "member change: lost leadership; retry")
    return { ...next, memberChange: null }
  }
  if (c !== null) {
    switch (c.phase) {
      case "raising": {
        const have = probedWaitCount(next)
        const want = c.raiseTo
        if (next.config.semiSync !== "strict" || have === undefined || have >= want) {
          if (!isInFlight(next, "SemiSyncSource")) next = proposeChange(next, out, c)
        } else if (next.now - c.since > next.config.timings.switchoverTimeoutMs) {
          // The raise did not show (the SET failed, mysqld does not answer): nothing was proposed.
          operatorReply(
            out,
            c.requestId,
            false,
            `member change refused: rpl_semi_sync_source_wait_for_replica_count could not be raised to ${want} (it is ${have}); nothing changed`,
          )
          // Nothing was removed: a member this change meant to remove counts as before.
          const still = next
          next = {
            ...next,
            memberChange: null,
            removedNotLeft: (next.removedNotLeft ?? []).filter((n) => !isMember(still, n)),
          }
        }
        break
      }
      case "proposed":
        if (compareVersions(next.committed, c.record) >= 0) {
          const members = next.hard.record.members ?? next.config.members.map(toRecordMember)
          event(out, "info", "member-change-committed", `${c.what}: committed`)
          operatorReply(
            out,
            c.requestId,
            true,
            `${c.what}; committed as record ${c.record.term}.${c.record.seq}. Put this in every agent's config file (cluster.members):\n${membersBlock(members)}`,
          )
          next = { ...next, memberChange: null }
        }
        break
      default:
        return absurd(c.phase)
    }
  }
  return guardWaitCount(next, out)
}

/**
 * The primary of a cluster whose record lists its members keeps the strict
 * wait count at what the list needs (members.ts wantedWaitCount). Clusters
 * that never changed members are left as promotion set them.
 */
const guardWaitCount = (s: AgentState, out: Outputs): AgentState => {
  if (s.config.semiSync !== "strict" || !isActivePrimary(s)) return s
  if (
    s.hard.record.members === null &&
    (s.memberChange ?? null) === null &&
    (s.removedNotLeft ?? []).length === 0
  )
    return s
  const probe = s.local.up ? s.local.probe : null
  const have = probe?.semiSyncWaitCount
  if (probe === null || probe === undefined || have === undefined || probe.superReadOnly) return s
  const want = wantedWaitCount(s)
  // Section 9, never release a waiting commit: a lower count would give OK to commits that
  // hold fewer acknowledgements (perhaps only a removed member's). Lowered with none waiting.
  if (want < have && probe.semiSyncWaiters > 0) return s
  return have === want ? s : setWaitCount(s, out, want)
}

/**
 * The config file's `members` only seed a record that lists none: once the
 * record lists them, a file that disagrees is said so, once per record version
 * (the file is what a fresh start of a wiped node would trust).
 */
const warnStaleFile = (s: AgentState, out: Outputs): AgentState => {
  const why = fileDisagreement(s)
  const version = `${s.hard.record.term}.${s.hard.record.seq}`
  if (why === null)
    return (s.membersStaleWarned ?? null) === null ? s : { ...s, membersStaleWarned: null }
  if (s.membersStaleWarned === version) return s
  event(
    out,
    "warn",
    "config-members-stale",
    `the config file's cluster.members ${why} of cluster record ${version}: update the file (mha-agent member ... prints the block)`,
  )
  return { ...s, membersStaleWarned: version }
}

/**
 * A node the record it accepted leaves out: it says so once, and stops its
 * replication so that it acknowledges nothing more to the primary. It stands
 * and votes for nothing (election.ts), and writability stays with the lease
 * holder alone (fencing.ts).
 */
const leaveIfRemoved = (s: AgentState, out: Outputs): AgentState => {
  if (!removedSelf(s)) return s.removedNoticed === true ? { ...s, removedNoticed: false } : s
  let next = s
  if (next.removedNoticed !== true) {
    event(
      out,
      "warn",
      "member-removed",
      `${s.self} is not in the member list of record ${s.hard.record.term}.${s.hard.record.seq}: it no longer votes, stands or replicates; stop its agent`,
    )
    next = { ...next, removedNoticed: true }
  }
  const probe = next.local.up ? next.local.probe : null
  if (probe?.replica?.ioRunning === true && !isInFlight(next, "Replication"))
    next = issueMysql(next, out, { _tag: "StopReplicaIo" }, { _tag: "Replication" })[0]
  return next
}

function absurd(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`)
}
