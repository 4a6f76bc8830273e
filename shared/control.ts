/**
 * The control socket's protocol (operations.md CLI): one JSON request per
 * line from `mha-agent <command>` to the local daemon, one JSON reply per
 * line back. Both sides decode with these schemas, so a malformed line is an
 * error that names what was wrong, never a crash.
 */
import { Schema } from "effect"

const Node = Schema.String

export const ControlRequest = Schema.Union([
  Schema.TaggedStruct("Status", {}),
  Schema.TaggedStruct("Switchover", { to: Node, dryRun: Schema.Boolean }),
  Schema.TaggedStruct("Failover", { to: Schema.NullOr(Node) }),
  Schema.TaggedStruct("Pause", {}),
  Schema.TaggedStruct("Resume", {}),
  Schema.TaggedStruct("Exclude", { node: Node }),
  Schema.TaggedStruct("Include", { node: Node }),
  Schema.TaggedStruct("AckRecovery", {}),
  Schema.TaggedStruct("Rejoin", { force: Schema.Boolean }),
  Schema.TaggedStruct("FixErrant", {}),
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
  members: Schema.Array(MemberStatus),
})
export type StatusView = typeof StatusView.Type

export const ControlReply = Schema.Struct({
  ok: Schema.Boolean,
  message: Schema.String,
  status: Schema.optional(StatusView),
})
export type ControlReply = typeof ControlReply.Type

/** Longest request line the daemon reads; anything longer is refused. */
export const MAX_CONTROL_LINE = 64 * 1024
