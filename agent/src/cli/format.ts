// Text for people: aligned tables, short GTID sets, ages and durations.
import { formatGtidSet, isEmpty, parseGtidSet, subtract } from "../core/gtid.ts"

/** Rows (the first is the header) as aligned columns, two spaces apart, no trailing blanks. */
export const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string[] => {
  const columns = Math.max(0, ...rows.map((r) => r.length))
  const widths = Array.from({ length: columns }, (_, c) =>
    Math.max(...rows.map((r) => [...(r[c] ?? "")].length)),
  )
  return rows.map((r) =>
    r
      .map((cell, c) => cell + " ".repeat(Math.max(0, (widths[c] ?? 0) - [...cell].length)))
      .join("  ")
      .trimEnd(),
  )
}

const UUID_SHOWN = 8
const RANGES_SHOWN = 24

/** One `uuid[:tag]:ranges` group with the uuid cut to 8 characters and long range lists elided. */
const shortGroup = (group: string): string => {
  const colon = group.indexOf(":")
  if (colon < 0) return group
  const uuid = group.slice(0, colon)
  const rest = group.slice(colon + 1)
  const ranges = rest.split(":")
  const shortRest =
    rest.length <= RANGES_SHOWN || ranges.length < 3
      ? rest
      : `${ranges[0]}:…:${ranges[ranges.length - 1]}`
  return `${uuid.length > UUID_SHOWN ? `${uuid.slice(0, UUID_SHOWN)}…` : uuid}:${shortRest}`
}

/**
 * A GTID set in a table cell: `3e11fa47…:1-1234,9a8b7c6d…:1-5`, at most
 * `groups` server uuids then `+N more`; `-` when empty.
 */
export const shortGtidSet = (text: string, groups = 2): string => {
  const parsed = parseGtidSet(text)
  const normal = parsed._tag === "Ok" ? formatGtidSet(parsed.set) : text.replace(/\s+/g, "")
  if (normal === "") return "-"
  const all = normal.split(",")
  const shown = all.slice(0, groups).map(shortGroup).join(",")
  return all.length > groups ? `${shown} +${all.length - groups} more` : shown
}

/** What `member` executed that `primary` has not, as MySQL prints a GTID set; undefined if unreadable. */
export const gtidSubtract = (member: string, primary: string): string | undefined => {
  const a = parseGtidSet(member)
  const b = parseGtidSet(primary)
  if (a._tag !== "Ok" || b._tag !== "Ok") return undefined
  const d = subtract(a.set, b.set)
  return isEmpty(d) ? "" : formatGtidSet(d)
}

/** A duration: `850 ms`, `3.2 s`, `4 min 5 s`, `2 h 3 min`. */
export const duration = (ms: number): string => {
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  const s = Math.round(ms / 1000)
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

/** Replication lag in a cell: `0 s`, `12 s`, `-` when unknown or not a replica. */
export const lag = (seconds: number | null | undefined): string =>
  seconds === null || seconds === undefined ? "-" : `${seconds} s`

/** When a member was last heard of: `self`, `never`, `120 ms ago`. */
export const lastHeard = (ms: number | null, isSelf: boolean): string =>
  isSelf ? "self" : ms === null ? "never" : `${duration(ms)} ago`

/** An ISO time as `2026-11-22 05:45:43Z` (seconds, UTC); the input when it is not a date. */
export const time = (iso: string): string => {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  return `${d.toISOString().slice(0, 19).replace("T", " ")}Z`
}

/** A message on one line (a refusal is one line on stderr). */
export const oneLine = (text: string): string =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .join("; ")
