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
  lastActive: null,
  primaryUuid: null,
  base: "",
  history: [],
  members: null,
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

/**
 * Section 10: does the anti-flap block (in force until `blockUntil` on this
 * node's clock) keep `candidate` from an automatic election? The block stops
 * the role from moving to yet another node; it never stops the node that was
 * primary last (`lastPrimary`) from taking it back, or the cluster
 * would be left without a primary though that node is healthy. Its data is
 * still checked like any candidate's (completeness and ranking, section 7).
 */
export const recoveryBlockStops = (
  record: ClusterRecord,
  blockUntil: number | null,
  now: number,
  candidate: string,
): boolean =>
  recoveryBlockApplies(record) &&
  blockUntil !== null &&
  now < blockUntil &&
  candidate !== lastPrimary(record)

/**
 * Section 10: the node that was primary last, i.e. that last became ACTIVE.
 * Not simply `primary`: the record naming a winner is committed before it is
 * writable (promotion.ts) and stays when its promotion aborts.
 */
export const lastPrimary = (record: ClusterRecord): string | null =>
  record.lastActive ?? record.primary

export const isExcluded = (record: ClusterRecord, name: string): boolean =>
  record.excluded.includes(name)
