/**
 * Versions on the wire and on disk (proposed protocol.md section 17, "Versions").
 *
 * A version is MAJOR.MINOR. Within one major, a newer minor only ADDS optional
 * fields that an older reader may ignore without changing a decision, and no
 * message kind an older peer cannot decode (such a peer drops it as a schema
 * mismatch, which is safe only for messages nothing depends on). Anything
 * else (a field that must not be ignored, a changed meaning, a removed field)
 * bumps the major, and agents of different majors refuse each other: on the
 * mesh the connection is refused, naming both versions; on disk the file is
 * refused, naming both versions.
 *
 * The release before versions existed (dfc83b6 and earlier) sends no version
 * and writes none: it is 1.0. Its decoders ignore unknown fields in mesh
 * messages (Effect Schema's default) but refuse them in the hard-state file
 * (onExcessProperty "error"), which is why the file is written in its 1.0
 * form whenever the 1.0 form says the same thing (hard-state-format.ts).
 */

export interface ProtocolVersion {
  readonly major: number
  readonly minor: number
}

/**
 * The mesh protocol this agent speaks. 1.1: the observation's `quiet`,
 * `writesBlocked`, `semiSyncFallback` and the record's `lastActive` (all
 * optional; 1.0 peers ignore them) and the version header itself. 1.2: the
 * agent also takes heartbeats and their acknowledgements as datagrams on its
 * agent port over UDP (mesh-datagram.ts), a heartbeat's record may be absent
 * there; datagrams go only to peers that announced 1.2 or later. 1.3: the
 * record's `members` (a membership change, core/members.ts) and the
 * MemberAdd / MemberRemove forwarded requests. An older peer would ignore the
 * record's list and count the config file's: a membership change is for a
 * cluster whose agents all speak 1.3 or later (the operator upgrades every
 * agent first; the CLI says so), until then records carry no list. 1.4: the
 * heartbeat's `recordVersion`; a heartbeat carries the record only to a peer
 * that may lack it (one that reported an older version, none, or was not
 * heard lately), so a peer that sends no `recordVersion` (1.3 and older,
 * whose 1.0 and 1.1 decoders require the record) still gets it every time.
 * 1.5: the heartbeat's `ack`, an acknowledgement riding on a follower's
 * heartbeat to its leader; a peer older than 1.5 would ignore it, so it gets
 * the acknowledgement as a message of its own (daemon/peer-datagrams.ts).
 */
export const MESH_PROTOCOL: ProtocolVersion = { major: 1, minor: 5 }

/** Does a peer speaking `v` count an acknowledgement riding on a heartbeat (protocol 1.5)? */
export const takesAckInHeartbeat = (v: ProtocolVersion): boolean =>
  v.major > 1 || (v.major === 1 && v.minor >= 5)

/** Does a peer speaking `v` count the cluster record's member list (protocol 1.3)? */
export const speaksMemberList = (v: ProtocolVersion): boolean =>
  v.major > 1 || (v.major === 1 && v.minor >= 3)

/** Does a peer speaking `v` take datagrams (protocol 1.2)? */
export const takesDatagrams = (v: ProtocolVersion): boolean =>
  v.major > 1 || (v.major === 1 && v.minor >= 2)

/** A peer or file that names no version: the release before versions existed. */
export const UNVERSIONED: ProtocolVersion = { major: 1, minor: 0 }

/** The HTTP header of the mesh's WebSocket upgrade, request and response, carrying "MAJOR.MINOR". */
export const PROTOCOL_HEADER = "mha-protocol"

export const formatVersion = (v: ProtocolVersion): string => `${v.major}.${v.minor}`

/**
 * Reads "MAJOR.MINOR" (a header's value). Undefined: the peer sent none, it
 * predates versions (1.0). A malformed value is an error naming it.
 */
export const parseVersion = (
  text: string | undefined,
):
  | { readonly ok: true; readonly version: ProtocolVersion }
  | { readonly ok: false; readonly error: string } => {
  if (text === undefined) return { ok: true, version: UNVERSIONED }
  const m = /^(\d{1,6})\.(\d{1,6})$/.exec(text.trim())
  if (m === null)
    return {
      ok: false,
      error: `malformed protocol version ${JSON.stringify(text.slice(0, 40))} (expected MAJOR.MINOR)`,
    }
  return { ok: true, version: { major: Number(m[1]), minor: Number(m[2]) } }
}

/** Can an agent speaking `ours` exchange messages with one speaking `theirs`? Same major. */
export const compatible = (ours: ProtocolVersion, theirs: ProtocolVersion): boolean =>
  ours.major === theirs.major

/** The refusal, naming both versions, as the log and the peer's status show it. */
export const incompatibleText = (
  peer: string,
  theirs: ProtocolVersion,
  ours: ProtocolVersion,
): string =>
  `peer ${peer} speaks protocol ${formatVersion(theirs)}, this agent ${formatVersion(ours)}: ` +
  `different major versions cannot share a cluster; upgrade or downgrade one of them ` +
  `(a rolling upgrade goes through a release that speaks both)`
