/**
 * Membership change online (issue 15 item 1, proposed protocol.md section
 * 1a). The member list lives in the cluster record once a change was made;
 * until then the config file's `members` count (and they seed the first
 * change). One member at a time (raft's single-server change): the old and
 * the new list share a majority, so no two quorums of either can disagree.
 *
 * - The new list counts for quorum, leases, elections and the strict
 *   semi-sync wait count from the moment a node accepts the record, not from
 *   its commit (raft section 4.1): `syncMembers` runs whenever the record
 *   changes.
 * - The ACTIVE primary alone proposes a change, as a record change, and none
 *   while any record of its is uncommitted.
 * - A candidate counts its votes under the list of the highest record among
 *   its own and its voters' (a committed list is held by a majority of it,
 *   which meets every majority of the list before it).
 * - A node that its accepted list leaves out stands for nothing and votes for
 *   nobody; its peers drop its messages.
 */
import type { ClusterRecord, RecordMember } from "../../../shared/peer-messages.ts"
import { compareVersions, recoveryBlockApplies } from "./cluster-record.ts"
import { type ClusterConfig, type MemberConfig, quorumOf, strictAckCount } from "./config.ts"
import type { AgentState } from "./types.ts"

/** A record member as the core's config knows members. */
export const fromRecordMember = (m: RecordMember): MemberConfig => ({
  name: m.name,
  priority: m.priority,
  promotable: m.promotable,
  kind: m.kind,
  address: m.address,
  agentPort: m.agentPort,
  mysqlPort: m.mysqlPort,
})

/** A config member as the record lists it (the first change seeds the record from the file). */
export const toRecordMember = (m: MemberConfig): RecordMember => ({
  name: m.name,
  kind: m.kind,
  address: m.address ?? m.name,
  agentPort: m.agentPort ?? 0,
  mysqlPort: m.mysqlPort ?? 3306,
  priority: m.priority,
  promotable: m.promotable,
})

/** The members that count under `record`: its list, or the file's when it has none. */
export const membersUnder = (
  record: ClusterRecord,
  file: ReadonlyArray<MemberConfig>,
): ReadonlyArray<MemberConfig> =>
  record.members === null ? file : record.members.map(fromRecordMember)

/** The config file's members (the state's config carries the effective list). */
export const fileMembers = (s: AgentState): ReadonlyArray<MemberConfig> =>
  s.fileMembers ?? s.config.members

const sameNames = (a: ReadonlyArray<MemberConfig>, b: ReadonlyArray<MemberConfig>): boolean =>
  a.length === b.length &&
  a.every(
    (m, i) =>
      m.name === b[i]?.name &&
      m.kind === b[i]?.kind &&
      m.priority === b[i]?.priority &&
      m.promotable === b[i]?.promotable,
  )

/**
 * Makes the state's config count the members of the record it holds: called
 * whenever the record may have changed (acceptance counts, not commit).
 */
export const syncMembers = (s: AgentState): AgentState => {
  const file = fileMembers(s)
  const effective = membersUnder(s.hard.record, file)
  if (sameNames(effective, s.config.members) && s.fileMembers !== undefined) return s
  return { ...s, fileMembers: file, config: { ...s.config, members: effective } }
}

/** A new config file (reload, start): its members seed; the record's list still counts. */
export const withFileConfig = (s: AgentState, config: ClusterConfig): AgentState =>
  syncMembers({ ...s, config, fileMembers: config.members })

/** Is `name` a member under the list this node accepted? */
export const isMember = (s: AgentState, name: string): boolean =>
  s.config.members.some((m) => m.name === name)

/** This node's accepted list leaves it out: it stands for nothing and votes for nobody. */
export const removedSelf = (s: AgentState): boolean => !isMember(s, s.self)

/**
 * This node runs a mysqld it keeps probing: a data member, or a data member
 * removed by the record (its file still says data), which reports its
 * replication until it stopped, so that its primary knows it left.
 */
export const probesOwnMysqld = (s: AgentState): boolean =>
  s.config.members.some((m) => m.name === s.self && m.kind === "data") ||
  (removedSelf(s) && fileMembers(s).some((m) => m.name === s.self && m.kind === "data"))

/**
 * Votes counted under the list of the highest record among the candidate's
 * own and its voters' (`records`): only members of that list count, against
 * its majority. A candidate that missed a committed change learns it here,
 * since every majority of the old list holds a node that accepted it.
 */
export const votesWin = (
  s: AgentState,
  granted: ReadonlySet<string>,
  records: ReadonlyArray<ClusterRecord>,
): boolean => {
  let highest = s.hard.record
  for (const r of records) if (compareVersions(r, highest) > 0) highest = r
  const list = membersUnder(highest, fileMembers(s))
  if (!list.some((m) => m.name === s.self)) return false
  const counted = list.filter((m) => granted.has(m.name)).length
  return counted >= quorumOf(list.length)
}

/** What a membership change asks. */
export type MemberChange =
  | { readonly _tag: "Add"; readonly member: RecordMember }
  | { readonly _tag: "Remove"; readonly node: string }

export type ChangeVerdict =
  | { readonly ok: true; readonly members: ReadonlyArray<RecordMember>; readonly what: string }
  | { readonly ok: false; readonly why: string }

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/

/**
 * Checks a membership change against the rules (the caller has checked that
 * this node is the ACTIVE primary): the new list, or the refusal with its reason.
 */
export const checkMemberChange = (s: AgentState, change: MemberChange): ChangeVerdict => {
  const refuse = (why: string): ChangeVerdict => ({ ok: false, why })
  const r = s.hard.record
  if (r.paused) return refuse("the cluster is paused: resume first")
  if (
    recoveryBlockApplies(r) &&
    s.recoveryBlock !== null &&
    s.recoveryBlock.term === r.lastFailoverTerm &&
    s.now < s.recoveryBlock.until
  )
    return refuse(
      `the anti-flap block after the failover of term ${r.lastFailoverTerm} is active: run ack-recovery first`,
    )
  if (s.proposal !== null || compareVersions(s.committed, r) < 0)
    return refuse(
      `cluster record ${r.term}.${r.seq} is not committed yet (a change is in progress): retry once it is`,
    )
  const current = s.config.members.map(toRecordMember)
  let next: ReadonlyArray<RecordMember>
  let what: string
  switch (change._tag) {
    case "Add": {
      const m = change.member
      if (!NAME.test(m.name)) return refuse(`invalid member name ${JSON.stringify(m.name)}`)
      if (current.some((c) => c.name === m.name)) return refuse(`${m.name} is already a member`)
      if (m.address === "") return refuse(`${m.name} needs an address`)
      next = [...current, m]
      what = `${m.name} (${m.kind}) added to the members`
      break
    }
    case "Remove": {
      if (!current.some((c) => c.name === change.node))
        return refuse(`${change.node} is not a member`)
      if (change.node === s.self)
        return refuse(
          `${change.node} is the ACTIVE primary: switch over to another node first, then remove it`,
        )
      next = current.filter((c) => c.name !== change.node)
      what = `${change.node} removed from the members`
      break
    }
    default:
      return absurd(change)
  }
  const data = next.filter((m) => m.kind === "data")
  if (!data.some((m) => m.promotable))
    return refuse("the new member list would have no promotable data member")
  if (s.config.semiSync === "strict") {
    // What the wait count becomes (wantedWaitCount once the change is over), against the
    // replicas that can acknowledge: not a member being added (no data yet), nor removed ones.
    const removedData =
      change._tag === "Remove" && current.some((c) => c.name === change.node && c.kind === "data")
    const stray = (s.removedNotLeft ?? []).length + (removedData ? 1 : 0)
    const acks = Math.max(ackNeed(next.length), memberAcksNeeded(next.length) + stray)
    const replicas = data.filter(
      (m) => m.name !== s.self && (change._tag !== "Add" || m.name !== change.member.name),
    ).length
    if (replicas < acks)
      return refuse(
        `semi-sync strict with ${next.length} members would wait for ${acks} acknowledgement${acks === 1 ? "" : "s"} per commit${stray > 0 ? ` (${stray} for removed members that may still replicate: ${[...(s.removedNotLeft ?? []), ...(removedData && change._tag === "Remove" ? [change.node] : [])].join(", ")})` : ""}, but only ${replicas} data replica${replicas === 1 ? "" : "s"} could send them: add a data member first, or wait until removed members left`,
      )
  }
  return { ok: true, members: next, what }
}

/** Who else gets this primary's heartbeats and records: removed members that may not know yet. */
export const removedTargets = (s: AgentState): ReadonlyArray<string> =>
  s.role._tag === "Leader" ? (s.removedNotLeft ?? []) : []

/**
 * How the config file's members differ from the record's list (names and
 * kinds), null when they agree or the record lists none.
 */
export const fileDisagreement = (s: AgentState): string | null => {
  const listed = s.hard.record.members
  if (listed === null) return null
  const file = fileMembers(s)
  const key = (m: { name: string; kind: string }) => `${m.name}(${m.kind})`
  const inFile = new Set(file.map(key))
  const inRecord = new Set(listed.map(key))
  const missing = [...inRecord].filter((k) => !inFile.has(k))
  const extra = [...inFile].filter((k) => !inRecord.has(k))
  if (missing.length === 0 && extra.length === 0) return null
  return [
    missing.length > 0 ? `lacks ${missing.join(", ")}` : "",
    extra.length > 0 ? `still lists ${extra.join(", ")}` : "",
  ]
    .filter((x) => x !== "")
    .join(" and ")
}

/** Strict semi-sync: acknowledgements a commit waits for with `n` members (config.ts strictAckCount). */
export const ackNeed = (n: number): number => Math.max(1, n - quorumOf(n))

/**
 * Member replicas that must hold a commit so that every vote quorum of `n`
 * members without the primary holds one: n - quorum (0 for 2 members, where
 * no quorum forms without the primary).
 */
export const memberAcksNeeded = (n: number): number => Math.max(0, n - quorumOf(n))

/** What `n` members need with `strays` removed members that may still acknowledge. */
export const waitCountFor = (n: number, strays: number): number =>
  Math.max(ackNeed(n), memberAcksNeeded(n) + strays)

/**
 * The strict semi-sync wait count the primary should have now (section 9,
 * strict). What its list needs; plus one per removed member that may still
 * acknowledge (an acknowledgement of a non-member proves nothing to the
 * members' quorums); while a change is in progress, also what the lists
 * before and after it need (raised before a bigger list counts anywhere).
 */
export const wantedWaitCount = (s: AgentState): number => {
  const n = s.config.members.length
  // A member being removed still counts as a member until its removal is proposed.
  const stray = (s.removedNotLeft ?? []).filter((name) => !isMember(s, name)).length
  let want = Math.max(strictAckCount(s.config), waitCountFor(n, stray))
  const c = s.memberChange ?? null
  if (c !== null) want = Math.max(want, ackNeed(c.before), c.raiseTo)
  return want
}

/** The members block to put in every config file, as YAML. */
export const membersBlock = (members: ReadonlyArray<RecordMember>): string =>
  [
    "  members:",
    ...members.flatMap((m) => [
      `    - name: ${m.name}`,
      `      address: ${m.address}`,
      `      mysql_port: ${m.mysqlPort}`,
      `      agent_port: ${m.agentPort}`,
      `      priority: ${m.priority}`,
      `      promotable: ${m.promotable}`,
      `      kind: ${m.kind}`,
    ]),
  ].join("\n")

function absurd(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`)
}
