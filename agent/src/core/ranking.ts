/**
 * Who may be promoted and who is best (section 7).
 *
 * Completeness compares GTID sets restricted to the primary lineage: errant
 * transactions of a replica (its own server_uuid) say nothing about whether
 * it holds every acknowledged write.
 */
import type { CandidateData, ClusterRecord } from "../../../shared/peer-messages.ts"
import { isExcluded } from "./cluster-record.ts"
import { type ClusterConfig, memberOf } from "./config.ts"
import { type GtidSet, isSubset, restrictToUuids } from "./gtid.ts"

/** The server_uuids of the current and earlier primaries. */
export const lineageOf = (
  record: ClusterRecord,
  currentPrimaryUuid: string | null,
): ReadonlySet<string> => {
  const uuids = new Set(record.lineage)
  if (currentPrimaryUuid !== null) uuids.add(currentPrimaryUuid)
  return uuids
}

/**
 * Before any primary was recorded (bootstrap) there is no lineage: compare
 * whole sets, which is stricter.
 */
const restrict = (set: GtidSet, lineage: ReadonlySet<string>): GtidSet =>
  lineage.size === 0 ? set : restrictToUuids(set, lineage)

/** `candidate` holds at least everything `other` holds, on the lineage. */
export const atLeastAsComplete = (
  candidate: GtidSet,
  other: GtidSet,
  lineage: ReadonlySet<string>,
): boolean => isSubset(restrict(other, lineage), restrict(candidate, lineage))

export interface Contender {
  readonly name: string
  /** retrieved ∪ executed */
  readonly received: GtidSet
  readonly backlog: number
  readonly priority: number
}

/**
 * True when `a` ranks strictly better than `b`: more complete data (a strict
 * superset on the lineage), then a smaller unapplied backlog, then a higher
 * priority, then the smaller name. Incomparable data (each has something the
 * other lacks) falls through to the next criteria. With `dataOnly`, only
 * strictly more complete data counts.
 */
export const ranksBetter = (
  a: Contender,
  b: Contender,
  lineage: ReadonlySet<string>,
  dataOnly = false,
): boolean => {
  const aHasB = atLeastAsComplete(a.received, b.received, lineage)
  const bHasA = atLeastAsComplete(b.received, a.received, lineage)
  if (aHasB && !bHasA) return true
  if (bHasA && !aHasB) return false
  if (dataOnly) return false
  if (a.backlog !== b.backlog) return a.backlog < b.backlog
  if (a.priority !== b.priority) return a.priority > b.priority
  return a.name < b.name
}

export type Eligibility = { readonly ok: true } | { readonly ok: false; readonly why: string }

/** Section 7, third rule: may `name` be promoted at all? */
export const eligibility = (
  config: ClusterConfig,
  record: ClusterRecord,
  name: string,
  data: Pick<CandidateData, "errant" | "replicationError">,
): Eligibility => {
  const member = memberOf(config, name)
  if (member === undefined) return { ok: false, why: `${name} is not a member` }
  if (member.kind !== "data") return { ok: false, why: `${name} is a witness` }
  if (!member.promotable) return { ok: false, why: `${name} is not promotable` }
  if (isExcluded(record, name)) return { ok: false, why: `${name} is excluded for maintenance` }
  if (data.replicationError !== null) {
    return { ok: false, why: `${name}'s replication is broken: ${data.replicationError}` }
  }
  if (data.errant !== "" && !config.allowErrantPromotion) {
    return { ok: false, why: `${name} has errant transactions ${data.errant}` }
  }
  return { ok: true }
}
