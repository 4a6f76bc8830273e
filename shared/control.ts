/**
 * The control socket's protocol (operations.md CLI): one JSON request per
 * line from `mha-agent <command>` to the local daemon, one JSON reply per
 * line back. Both sides decode with these schemas, so a malformed line is an
 * error that names what was wrong, never a crash.
 */
import { Schema } from "effect"

const Node = Schema.String

/**
 * Where a request runs: the daemon that receives it forwards it over the mesh
 * when this node is not the one (operations.md: cluster-wide commands go to
 * the primary; node commands to the node they name).
 */
export const ControlRequest = Schema.Union([
  /** Local: this agent's view of the cluster (status, topology, errant-gtid listing). */
  Schema.TaggedStruct("Status", {}),
  /** Primary. `drainTimeoutMs`: how long to wait for client sessions to finish before fencing. */
  Schema.TaggedStruct("Switchover", {
    to: Node,
    dryRun: Schema.Boolean,
    drainTimeoutMs: Schema.NullOr(Schema.Number),
  }),
  /** The node to promote (`to`, or this node when null). */
  Schema.TaggedStruct("Failover", { to: Schema.NullOr(Node) }),
  /** Primary. */
  Schema.TaggedStruct("Pause", {}),
  Schema.TaggedStruct("Resume", {}),
  Schema.TaggedStruct("Exclude", { node: Node }),
  Schema.TaggedStruct("Include", { node: Node }),
  /** Primary when there is one; without a primary, this node only (it may be what blocks the election). */
  Schema.TaggedStruct("AckRecovery", {}),
  /** The node named (this node when null): rejoin as a replica of the primary. */
  Schema.TaggedStruct("Rejoin", { node: Schema.NullOr(Node), force: Schema.Boolean }),
  /** The node named: fence it and make it a replica of `source` (which must be the primary). */
  Schema.TaggedStruct("Demote", { node: Node, source: Node }),
  /** The recipient: CLONE INSTANCE FROM the donor (default: a healthy replica, else the primary), then rejoin. */
  Schema.TaggedStruct("Clone", { recipient: Node, donor: Schema.NullOr(Node) }),
  /** Primary: inject empty transactions for every replica's errant GTIDs; `dryRun` lists them only. */
  Schema.TaggedStruct("FixErrant", { dryRun: Schema.Boolean }),
  /** Cluster record (any node answers from its committed copy): past failovers and switchovers. */
  Schema.TaggedStruct("History", {}),
  /** Local: re-read the config file as SIGHUP does; the reply says what changed or why it was refused. */
  Schema.TaggedStruct("Reload", {}),
  /**
   * The ACTIVE primary's agent only: add one member to the cluster record's
   * member list (core/members.ts). `agentPort` null: the agent's own agent_port.
   */
  Schema.TaggedStruct("MemberAdd", {
    name: Node,
    address: Schema.String,
    kind: Schema.Literals(["data", "witness"]),
    agentPort: Schema.NullOr(Schema.Int),
    mysqlPort: Schema.Int,
    priority: Schema.Int,
    promotable: Schema.Boolean,
  }),
  /** The ACTIVE primary's agent only: remove one member from the record's list. */
  Schema.TaggedStruct("MemberRemove", { node: Node }),
])
export type ControlRequest = typeof ControlRequest.Type

/** A member as its own agent or its peers' heartbeats see it. */
export const MemberStatus = Schema.Struct({
  name: Schema.String,
  kind: Schema.String,
  role: Schema.String,
  health: Schema.String,
  /** Milliseconds since this agent last heard from it; null for itself or never. */
  lastHeardMs: Schema.NullOr(Schema.Number),
  source: Schema.NullOr(Schema.String),
  executed: Schema.String,
  errant: Schema.String,
  /** Replication lag in seconds as last probed; null for the primary, a witness or unknown. */
  lagSeconds: Schema.optional(Schema.NullOr(Schema.Number)),
})

export const StatusView = Schema.Struct({
  cluster: Schema.String,
  node: Schema.String,
  term: Schema.Number,
  role: Schema.String,
  leader: Schema.NullOr(Schema.String),
  leaderActive: Schema.Boolean,
  paused: Schema.Boolean,
  excluded: Schema.Array(Schema.String),
  /** Why no election runs, when none does (safety over speed, said out loud). */
  electionStatus: Schema.String,
  /**
   * Privileges this node's agent lacks on its mysqld (names); while any is
   * missing the node does not stand for election. Absent before a grants check succeeded.
   */
  missingPrivileges: Schema.optional(Schema.Array(Schema.String)),
  /** Why this node's replication does not run (its IO or SQL thread's error), while it lasts. */
  replicationError: Schema.optional(Schema.String),
  /** "writes are blocked: N acknowledgements needed, M replicas connected ...", from the primary; absent when not. */
  writesBlocked: Schema.optional(Schema.String),
  /** "semi-sync fell back to asynchronous replication: ...", from the primary; absent when not. */
  semiSyncFallback: Schema.optional(Schema.String),
  /**
   * Where this replica's lag comes from, when `lag.source: heartbeat_table`:
   * "heartbeat_table", or the fallback to Seconds_Behind_Source and why.
   */
  lagSource: Schema.optional(Schema.String),
  members: Schema.Array(MemberStatus),
})
export type StatusView = typeof StatusView.Type

/** One failover or switchover, as kept in the cluster record (survives restarts of any node). */
export const HistoryEntry = Schema.Struct({
  kind: Schema.Literals(["failover", "switchover"]),
  term: Schema.Number,
  /** ISO 8601 time the new primary became ACTIVE. */
  at: Schema.String,
  reason: Schema.String,
  oldPrimary: Schema.NullOr(Schema.String),
  newPrimary: Schema.String,
  /** From the trigger (failure detected, switchover requested) to ACTIVE; null when unknown. */
  durationMs: Schema.NullOr(Schema.Number),
})
export type HistoryEntry = typeof HistoryEntry.Type

export const ControlReply = Schema.Struct({
  ok: Schema.Boolean,
  message: Schema.String,
  /** The member whose agent answered, when the request was forwarded over the mesh. */
  answeredBy: Schema.optional(Schema.String),
  /** `--dry-run`: every step and check the command would make, in order. */
  steps: Schema.optional(Schema.Array(Schema.String)),
  status: Schema.optional(StatusView),
  history: Schema.optional(Schema.Array(HistoryEntry)),
})
export type ControlReply = typeof ControlReply.Type

/** Longest request line the daemon reads; anything longer is refused. */
export const MAX_CONTROL_LINE = 64 * 1024
