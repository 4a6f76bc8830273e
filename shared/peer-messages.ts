/**
 * Messages agents exchange over the authenticated mesh (protocol.md sections
 * 3 to 13). The sender's identity comes from its TLS certificate; `from` is
 * repeated inside so a message can be logged and checked on its own.
 *
 * GTID sets travel in MySQL's own text form ("uuid:1-5,uuid2:1-3"), so what
 * an agent logs is what an operator can paste into mysql.
 */
import { Effect, Schema } from "effect"

const Name = Schema.String
const Term = Schema.Int
const GtidText = Schema.String
/** Operator-facing text (reasons, replies): bounded so a message stays small. */
const Text = Schema.String.check(Schema.isMaxLength(16 * 1024))

/** Role a node reports for itself in heartbeats and status. */
export const NodeRole = Schema.Literals([
  "ACTIVE",
  "STANDBY",
  "FENCED",
  "DIVERGED",
  "FAIL",
  "UNKNOWN",
])
export type NodeRole = typeof NodeRole.Type

export const Health = Schema.Literals(["OK", "INFO", "WARN", "CRITICAL", "FAIL"])

/**
 * One failover or switchover, kept in the cluster record (operations.md
 * `history`). `atMs` is wall-clock epoch milliseconds, taken by the new
 * primary when it became ACTIVE; `durationMs` runs from the trigger (the
 * failure judged, the switchover requested) to ACTIVE.
 */
export const HistoryRecord = Schema.Struct({
  kind: Schema.Literals(["failover", "switchover"]),
  term: Term,
  atMs: Schema.Finite,
  reason: Schema.String.check(Schema.isMaxLength(512)),
  oldPrimary: Schema.NullOr(Name),
  newPrimary: Name,
  durationMs: Schema.NullOr(Schema.Finite),
})
export type HistoryRecord = typeof HistoryRecord.Type

/** How many failovers and switchovers the record keeps (the oldest are dropped). */
export const MAX_HISTORY = 100

/**
 * One member as the cluster record lists it (proposed protocol.md section 1,
 * "membership change"): what every agent needs to count it, reach it and
 * accept its certificate (whose name is the member's name).
 */
export const RecordMember = Schema.Struct({
  name: Name,
  kind: Schema.Literals(["data", "witness"]),
  address: Schema.String,
  agentPort: Schema.Int,
  mysqlPort: Schema.Int,
  priority: Schema.Int,
  promotable: Schema.Boolean,
})
export type RecordMember = typeof RecordMember.Type

/**
 * The cluster-wide settings record of section 8, versioned by (term, seq).
 * `lineage` lists the server_uuids of the current and earlier primaries: the
 * GTID completeness check of section 7 is restricted to them.
 */
export const ClusterRecord = Schema.Struct({
  term: Term,
  seq: Schema.Int,
  paused: Schema.Boolean,
  excluded: Schema.Array(Name),
  lineage: Schema.Array(Schema.String),
  /** Term of the last automatic failover, 0 when none happened. */
  lastFailoverTerm: Term,
  /** True once an operator ran ack-recovery for `lastFailoverTerm`. */
  recoveryAcked: Schema.Boolean,
  /** The member that was primary when the record was written, and its server_uuid. */
  primary: Schema.NullOr(Name),
  /**
   * The member that last became ACTIVE (writable) as primary: the "last
   * primary" of section 10. It can differ from `primary`, which names a
   * winner before it is writable and stays if its promotion aborts. Absent in
   * records written before it existed: decoded as null (read as `primary`).
   */
  lastActive: Schema.NullOr(Name).pipe(Schema.withDecodingDefaultKey(Effect.succeed(null))),
  primaryUuid: Schema.NullOr(Schema.String),
  /**
   * gtid_executed of that primary when it was promoted. Transactions a node
   * holds beyond it (other than the primary's own) are errant: for example
   * what an old primary committed but never got acknowledged.
   */
  base: GtidText,
  /**
   * Past failovers and switchovers, oldest first, at most MAX_HISTORY. Absent
   * in records written before it existed: decoded as empty.
   */
  history: Schema.Array(HistoryRecord)
    .check(Schema.isMaxLength(MAX_HISTORY))
    .pipe(Schema.withDecodingDefaultKey(Effect.succeed([]))),
  /**
   * The member list once a membership change was made (member add/remove):
   * it counts for quorum, leases and elections from the moment a node accepts
   * the record. Null (and absent in records written before it existed): the
   * config file's `members` count.
   */
  members: Schema.NullOr(Schema.Array(RecordMember).check(Schema.isMaxLength(64))).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(null)),
  ),
})
export type ClusterRecord = typeof ClusterRecord.Type

/** What a data node's agent saw of its own mysqld at its last probe. */
export const Observation = Schema.Struct({
  role: NodeRole,
  health: Health,
  mysqlUp: Schema.Boolean,
  serverUuid: Schema.NullOr(Schema.String),
  writable: Schema.Boolean,
  superReadOnly: Schema.Boolean,
  executed: GtidText,
  retrieved: GtidText,
  /** Member it replicates from, null when it is not a replica. */
  source: Schema.NullOr(Name),
  ioRunning: Schema.Boolean,
  sqlRunning: Schema.Boolean,
  replicationError: Schema.NullOr(Schema.String),
  /** Transactions received but not yet applied (size of retrieved minus executed). */
  backlog: Schema.Int,
  /** Replication lag in seconds as last probed (Seconds_Behind_Source); null when unknown. */
  lagSeconds: Schema.optionalKey(Schema.NullOr(Schema.Finite)),
  errant: GtidText,
  /** The sender could stand for election now (eligible, healthy, data it can vouch for). */
  eligible: Schema.Boolean,
  /**
   * This mysqld can release no commit that waits for a semi-sync
   * acknowledgement, now or later: it refuses connections (down, not hung),
   * or it is read-only with no commit waiting (protocol section 7).
   */
  quiet: Schema.optionalKey(Schema.Boolean),
  /** The sender is the primary and its writes are blocked (writes-blocked.ts): the words to show. */
  writesBlocked: Schema.optionalKey(Schema.String),
  /** The sender is the primary and its semi-sync fell back to asynchronous (semi-sync-fallback.ts): the words. */
  semiSyncFallback: Schema.optionalKey(Schema.String),
})
export type Observation = typeof Observation.Type

export const HeardFrom = Schema.Struct({ name: Name, agoMs: Schema.Finite })

export const Heartbeat = Schema.TaggedStruct("Heartbeat", {
  from: Name,
  bootId: Schema.String,
  term: Term,
  leader: Schema.NullOr(Name),
  /** Round number, echoed by the acknowledgement: the lease counts rounds. */
  round: Schema.Int,
  /** True when the sender is the leader of `term` and its promotion finished. */
  active: Schema.Boolean,
  observation: Schema.NullOr(Observation),
  /** The member whose mysqld the sender probes as the primary. */
  probedPrimary: Schema.NullOr(Name),
  /** Can the sender reach that mysqld? null: not probed. */
  primaryReachable: Schema.NullOr(Schema.Boolean),
  /** Did the sender see the primary's mysqld with super_read_only=ON? */
  primaryFenced: Schema.NullOr(Schema.Boolean),
  heardFrom: Schema.Array(HeardFrom),
  /**
   * As a switchover's target, the sender stands only on a probe of its own
   * taken after the transfer arrived (protocol 1.2), so its primary may hand
   * over as soon as the target's mysqld has executed everything, without
   * waiting for a heartbeat that says so. Absent (older agents): they stand
   * on the data they last probed, which must first reach the primary.
   */
  standsOnOwnProbe: Schema.optionalKey(Schema.Boolean),
  /**
   * The sender's cluster record, to a peer that may lack it: one that
   * reported an older version, none (an agent older than 1.4 or never
   * heard), or was not heard lately (core/heartbeat.ts). Left out of the
   * datagram copy (mesh-datagram.ts), which must stay small enough to cross
   * a lossy network in one packet (protocol 1.2), and, since protocol 1.4,
   * of the TLS copy to a peer that reported the same version or a newer one.
   */
  record: Schema.optionalKey(ClusterRecord),
  /**
   * The version (term, seq) of the sender's cluster record, in every
   * heartbeat, with or without the record (protocol 1.4): its peers send
   * the record again only while this is older than theirs. Absent (older
   * agents): the sender gets the record in every heartbeat, as before.
   */
  recordVersion: Schema.optionalKey(Schema.Struct({ term: Term, seq: Schema.Int })),
  /**
   * An acknowledgement riding on this heartbeat (protocol 1.5): the sender
   * acknowledges round `round` of `term`, as a HeartbeatAck would. A follower
   * sends one heartbeat to its leader instead of an acknowledgement and a
   * heartbeat when both leave in one step (core/heartbeat.ts). Absent: no
   * acknowledgement. Never sent to an older peer, which would not count it
   * (daemon/peer-datagrams.ts splits it in two there).
   */
  ack: Schema.optionalKey(Schema.Struct({ term: Term, round: Schema.Int })),
})

export const HeartbeatAck = Schema.TaggedStruct("HeartbeatAck", {
  from: Name,
  term: Term,
  round: Schema.Int,
})

/** What a candidate says about its data when asking for a (pre-)vote. */
export const CandidateData = Schema.Struct({
  serverUuid: Schema.String,
  /** retrieved union executed */
  received: GtidText,
  backlog: Schema.Int,
  errant: GtidText,
  replicationError: Schema.NullOr(Schema.String),
})

/**
 * - election: the primary is lost (section 6);
 * - transfer: a planned switchover the primary consented to (section 13);
 * - bootstrap: the first primary of a new cluster (section 16);
 * - forced: `failover --force` by an operator;
 * - reclaim: the recorded primary's agent restarted while its mysqld kept
 *   serving: it asks to lead again so that a short agent outage causes no
 *   failover (lab scenario 5).
 */
export const VoteKind = Schema.Literals(["election", "transfer", "bootstrap", "forced", "reclaim"])

export const PreVoteRequest = Schema.TaggedStruct("PreVoteRequest", {
  from: Name,
  /** The term the candidate would stand for; nobody adopts it. */
  term: Term,
  kind: VoteKind,
  data: CandidateData,
})

export const PreVoteResponse = Schema.TaggedStruct("PreVoteResponse", {
  from: Name,
  term: Term,
  granted: Schema.Boolean,
  reason: Schema.String,
})

export const VoteRequest = Schema.TaggedStruct("VoteRequest", {
  from: Name,
  term: Term,
  kind: VoteKind,
  data: CandidateData,
})

export const VoteResponse = Schema.TaggedStruct("VoteResponse", {
  from: Name,
  term: Term,
  granted: Schema.Boolean,
  reason: Schema.String,
  /** The voter's highest accepted cluster record (section 7, last line). */
  record: ClusterRecord,
})

/**
 * Sent by agents up to dfc83b6 at step 3 of section 9, and accepted from them during a
 * rolling upgrade; no longer sent: the voters' freeze at vote time is the revoke.
 */
export const Revoke = Schema.TaggedStruct("Revoke", {
  from: Name,
  term: Term,
})

export const LeaderAnnounce = Schema.TaggedStruct("LeaderAnnounce", {
  from: Name,
  term: Term,
  executed: GtidText,
})

/** The primary fenced itself and steps down: replicas may elect at once. */
export const Resign = Schema.TaggedStruct("Resign", {
  from: Name,
  term: Term,
  reason: Schema.String,
})

/** Planned switchover: the primary consents to `to` standing for term+1. */
export const TransferLeadership = Schema.TaggedStruct("TransferLeadership", {
  from: Name,
  term: Term,
  to: Name,
  /** Why (operator request, failback, shutdown), for the history. */
  reason: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(512))),
  /** Milliseconds since the switchover was requested on the sender, for the history. */
  sinceRequestMs: Schema.optionalKey(Schema.Finite),
})

export const RecordAppend = Schema.TaggedStruct("RecordAppend", {
  from: Name,
  term: Term,
  record: ClusterRecord,
})

export const RecordAck = Schema.TaggedStruct("RecordAck", {
  from: Name,
  term: Term,
  seq: Schema.Int,
})

/**
 * An operator request one agent hands to another over the mesh
 * (operations.md: cluster-wide commands go to the primary, node commands to
 * the node they name). The same shapes as the control socket's requests
 * (shared/control.ts) that can run elsewhere.
 */
export const ForwardedRequest = Schema.Union([
  Schema.TaggedStruct("Switchover", {
    to: Name,
    dryRun: Schema.Boolean,
    drainTimeoutMs: Schema.NullOr(Schema.Finite),
  }),
  Schema.TaggedStruct("Failover", { to: Schema.NullOr(Name) }),
  Schema.TaggedStruct("Pause", {}),
  Schema.TaggedStruct("Resume", {}),
  Schema.TaggedStruct("Exclude", { node: Name }),
  Schema.TaggedStruct("Include", { node: Name }),
  Schema.TaggedStruct("AckRecovery", {}),
  Schema.TaggedStruct("Rejoin", { node: Schema.NullOr(Name), force: Schema.Boolean }),
  Schema.TaggedStruct("Demote", { node: Name, source: Name }),
  Schema.TaggedStruct("Clone", { recipient: Name, donor: Schema.NullOr(Name) }),
  Schema.TaggedStruct("FixErrant", { dryRun: Schema.Boolean }),
])
export type ForwardedRequest = typeof ForwardedRequest.Type

/** Run `request` here and answer with OperatorReplyMessage quoting `requestId`. */
export const OperatorRequestMessage = Schema.TaggedStruct("OperatorRequest", {
  from: Name,
  /** The sender's own id for the request, echoed in the reply. */
  requestId: Schema.Int,
  request: ForwardedRequest,
})

/** The answer to a forwarded request; `from` is the member that answered. */
export const OperatorReplyMessage = Schema.TaggedStruct("OperatorReply", {
  from: Name,
  requestId: Schema.Int,
  ok: Schema.Boolean,
  message: Text,
  /** Dry runs: every check and step, in order. */
  steps: Schema.Array(Schema.String.check(Schema.isMaxLength(1024))).check(Schema.isMaxLength(256)),
})

export const PeerMessage = Schema.Union([
  Heartbeat,
  HeartbeatAck,
  PreVoteRequest,
  PreVoteResponse,
  VoteRequest,
  VoteResponse,
  Revoke,
  LeaderAnnounce,
  Resign,
  TransferLeadership,
  RecordAppend,
  RecordAck,
  OperatorRequestMessage,
  OperatorReplyMessage,
])
export type PeerMessage = typeof PeerMessage.Type
export type HeartbeatMessage = typeof Heartbeat.Type
export type VoteRequestMessage = typeof VoteRequest.Type
export type PreVoteRequestMessage = typeof PreVoteRequest.Type
export type VoteResponseMessage = typeof VoteResponse.Type
export type CandidateData = typeof CandidateData.Type
export type VoteKind = typeof VoteKind.Type
