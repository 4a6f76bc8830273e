/**
 * The cluster record (section 8): cluster-wide settings versioned by
 * (term, seq). Only the primary of a term changes it; a change counts once a
 * quorum persisted it; a new primary adopts the highest record of its votes.
 */
import type { ClusterRecord } from "../../../shared/peer-messages.ts"

export const initialRecord: ClusterRecord = {
  term: 0,
  seq: 0,
  paused: false,
  excluded: [],
  lineage: [],
  lastFailoverTerm: 0,
  recoveryAcked: false,
  primary: null,
  primaryUuid: null,
  base: "",
  history: [],
}

export interface RecordVersion {
  readonly term: number
  readonly seq: number
}

/** Negative when a is older than b, 0 when the same version, positive when newer. */
export const compareVersions = (a: RecordVersion, b: RecordVersion): number =>
  a.term !== b.term ? a.term - b.term : a.seq - b.seq

export const newerRecord = (a: ClusterRecord, b: ClusterRecord): ClusterRecord =>
  compareVersions(a, b) >= 0 ? a : b

export const highestRecord = (records: ReadonlyArray<ClusterRecord>, start: ClusterRecord) =>
  records.reduce(newerRecord, start)

/** The next version written by the primary of `term`. */
export const nextRecord = (
  current: ClusterRecord,
  term: number,
  change: Partial<Omit<ClusterRecord, "term" | "seq">>,
): ClusterRecord => ({
  ...current,
  ...change,
  term,
  seq: current.term === term ? current.seq + 1 : 1,
})

/** The anti-flap block of section 10 applies to this record, before its local timer runs out. */
export const recoveryBlockApplies = (record: ClusterRecord): boolean =>
  record.lastFailoverTerm > 0 && !record.recoveryAcked

export const isExcluded = (record: ClusterRecord, name: string): boolean =>
  record.excluded.includes(name)
