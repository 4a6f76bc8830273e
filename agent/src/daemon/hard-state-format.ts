/**
 * The versions of the hard-state file (hard-state-file.ts, shared/protocol-version.ts).
 *
 * 1.0 is what the release before versions (dfc83b6) writes and reads: no
 * `format` key, and its reader refuses any key it does not know. So that an
 * agent downgraded to it can start from the file, this agent writes the 1.0
 * form whenever 1.0 says the same thing: the record's `lastActive` is null or
 * names the recorded primary (1.0 has no `lastActive`; read back it is null,
 * which lastPrimary() reads as `primary`: the same last primary). Otherwise
 * (a winner named but not yet ACTIVE, a member list in the record (members.ts),
 * or any key 1.0 lacks) it writes 2.0,
 * which the old release refuses as unreadable rather than misreading it.
 */
import type { HardStateFormat } from "../adapters/hard-state-file.ts"

/** 2.0: the record's `lastActive` (not ignorable: it is the last primary of protocol section 10). */
export const HARD_STATE_VERSION = { major: 2, minor: 0 } as const

/** The record's keys in 1.0, in the order 1.0 writes them. */
const LEGACY_RECORD_KEYS = [
  "term",
  "seq",
  "paused",
  "excluded",
  "lineage",
  "lastFailoverTerm",
  "recoveryAcked",
  "primary",
  "primaryUuid",
  "base",
  "history",
] as const

const LEGACY_TOP_KEYS = new Set(["term", "votedFor", "record"])

/** The 1.0 document saying the same as `encoded`, or undefined when 1.0 cannot. */
export const legacyHardState = (encoded: unknown): unknown => {
  if (typeof encoded !== "object" || encoded === null) return undefined
  const doc = encoded as Record<string, unknown>
  if (Object.keys(doc).some((k) => !LEGACY_TOP_KEYS.has(k))) return undefined
  const record = doc.record as Record<string, unknown> | undefined
  if (typeof record !== "object" || record === null) return undefined
  const known = new Set<string>([...LEGACY_RECORD_KEYS, "lastActive", "members"])
  if (Object.keys(record).some((k) => !known.has(k))) return undefined
  // A member list (a membership change was made) is no part of 1.0: 2.0 says it.
  if ((record.members ?? null) !== null) return undefined
  const lastActive = record.lastActive ?? null
  if (lastActive !== null && lastActive !== record.primary) return undefined
  const legacyRecord: Record<string, unknown> = {}
  for (const k of LEGACY_RECORD_KEYS) legacyRecord[k] = record[k]
  return { term: doc.term, votedFor: doc.votedFor, record: legacyRecord }
}

export const HARD_STATE_FORMAT: HardStateFormat<unknown> = {
  version: HARD_STATE_VERSION,
  legacy: legacyHardState,
}
