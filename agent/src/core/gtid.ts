/**
 * MySQL GTID set algebra (pure).
 *
 * A GTID is `uuid:gno` or, from MySQL 8.3/8.4 on, `uuid:tag:gno`. A GTID set
 * maps each *sid* (the key: `"uuid"` or `"uuid:tag"`, lower-cased as MySQL
 * does) to sorted, disjoint, non-adjacent inclusive intervals of GNOs.
 *
 * Every `GtidSet` returned by this module is normalized and frozen:
 * - keys are lower-case and valid; keys without intervals are absent;
 * - the map iterates in MySQL's order (uuid, untagged before tagged, tags in
 *   byte order), which is plain string order of the keys;
 * - intervals of a key are sorted, non-overlapping and non-adjacent
 *   (`1-3` and `4-5` are always merged into `1-5`).
 *
 * The operations assume normalized inputs (build sets with `parseGtidSet`,
 * `singleton`, `addTransaction`, `fromEntries` or the operations here; never
 * hand-craft a `sids` map). Set operations work interval by interval in
 * linear time; nothing is expanded into single transactions.
 *
 * GNO limit: MySQL allows GNOs up to 2^63 - 2, but GNOs here are JS numbers,
 * exact only up to `Number.MAX_SAFE_INTEGER` (2^53 - 1, about 9e15). The
 * parser rejects anything larger with an error instead of silently rounding.
 * `count` sums interval lengths and is exact while the total stays below 2^53.
 *
 * Parsing is deliberately a little stricter than MySQL, which also accepts a
 * bare `uuid` or `uuid:tag` with no interval, and silently drops `5-3`: we
 * read what servers print, so those are reported as errors (they mean a bug
 * or a corrupted value). Whitespace (including the `,\n` MySQL prints between
 * uuids) is accepted around every token, and so are empty elements between
 * commas (`"a:1,,b:2"`), as MySQL does. GNOs are decimal digits only.
 */

/** An inclusive range of GNOs: `1 <= start <= end <= MAX_GNO`. */
export interface GtidInterval {
  readonly start: number
  readonly end: number
}

/**
 * A normalized, immutable GTID set. Key: lower-case `"uuid"` or `"uuid:tag"`
 * (tag = `[a-z_][a-z0-9_]{0,31}`). Intervals per key sorted, non-overlapping,
 * non-adjacent. Keys with no intervals are absent.
 */
export interface GtidSet {
  readonly sids: ReadonlyMap<string, ReadonlyArray<GtidInterval>>
}

export type GtidParseResult =
  | { readonly _tag: "Ok"; readonly set: GtidSet }
  | { readonly _tag: "Err"; readonly message: string; readonly position: number }

/** The largest GNO this module accepts: 2^53 - 1 (exact in a JS number). */
export const MAX_GNO: number = Number.MAX_SAFE_INTEGER

/** The longest tag MySQL accepts. */
export const MAX_TAG_LENGTH = 32

const UUID_LENGTH = 36

export const emptyGtidSet: GtidSet = Object.freeze({
  sids: new Map<string, ReadonlyArray<GtidInterval>>(),
})

// ---------------------------------------------------------------------------
// Sids (keys)

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const TAG_RE = /^[a-z_][a-z0-9_]{0,31}$/

/**
 * The normalized (lower-case) form of a sid `"uuid"` or `"uuid:tag"`, or
 * `undefined` when it is not a valid sid.
 */
export function normalizeSid(sid: string): string | undefined {
  const lower = sid.toLowerCase()
  const uuid = lower.slice(0, UUID_LENGTH)
  if (!UUID_RE.test(uuid)) return undefined
  if (lower.length === UUID_LENGTH) return lower
  if (lower[UUID_LENGTH] !== ":") return undefined
  return TAG_RE.test(lower.slice(UUID_LENGTH + 1)) ? lower : undefined
}

/** True when `sid` is a valid `"uuid"` or `"uuid:tag"` (any letter case). */
export function isValidSid(sid: string): boolean {
  return normalizeSid(sid) !== undefined
}

/** The uuid part of a sid (`"uuid:tag"` gives `"uuid"`), lower-cased. */
export function uuidOfSid(sid: string): string {
  return sid.slice(0, UUID_LENGTH).toLowerCase()
}

/** The tag of a sid, or `undefined` for an untagged sid. */
export function tagOfSid(sid: string): string | undefined {
  return sid.length > UUID_LENGTH ? sid.slice(UUID_LENGTH + 1).toLowerCase() : undefined
}

function requireSid(sid: string, where: string): string {
  const normalized = normalizeSid(sid)
  if (normalized === undefined) {
    throw new Error(`${where}: invalid sid ${JSON.stringify(sid)}: expected "uuid" or "uuid:tag"`)
  }
  return normalized
}

function requireGno(gno: number, where: string): number {
  if (!Number.isInteger(gno) || gno < 1 || gno > MAX_GNO) {
    throw new RangeError(`${where}: GNO ${gno} is not an integer between 1 and ${MAX_GNO}`)
  }
  return gno
}

// ---------------------------------------------------------------------------
// Construction helpers

function interval(start: number, end: number): GtidInterval {
  return Object.freeze({ start, end })
}

/** Appends [start, end] to `out`, merging with the last interval if they touch. */
function pushMerged(out: GtidInterval[], start: number, end: number): void {
  const last = out[out.length - 1]
  if (last !== undefined && start <= last.end + 1) {
    if (end > last.end) out[out.length - 1] = interval(last.start, end)
  } else {
    out.push(interval(start, end))
  }
}

/** Builds a set from entries with unique keys and normalized interval lists. */
function fromNormalizedEntries(
  entries: Array<readonly [string, ReadonlyArray<GtidInterval>]>,
): GtidSet {
  const kept = entries.filter(([, ivs]) => ivs.length > 0)
  if (kept.length === 0) return emptyGtidSet
  kept.sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
  return Object.freeze({
    sids: new Map(kept.map(([k, ivs]) => [k, Object.isFrozen(ivs) ? ivs : Object.freeze(ivs)])),
  })
}

/** Sorts and merges an arbitrary list of valid intervals. */
function normalizeIntervals(ivs: ReadonlyArray<GtidInterval>): GtidInterval[] {
  const sorted = [...ivs].sort((x, y) => x.start - y.start || x.end - y.end)
  const out: GtidInterval[] = []
  for (const iv of sorted) pushMerged(out, iv.start, iv.end)
  return out
}

/**
 * Builds a normalized set from `[sid, intervals]` pairs in any order, with
 * overlapping, adjacent or repeated intervals and repeated or upper-case sids.
 * Throws on an invalid sid or interval (a programming error).
 */
export function fromEntries(entries: Iterable<readonly [string, Iterable<GtidInterval>]>): GtidSet {
  const acc = new Map<string, GtidInterval[]>()
  for (const [sid, ivs] of entries) {
    const key = requireSid(sid, "fromEntries")
    let list = acc.get(key)
    if (list === undefined) {
      list = []
      acc.set(key, list)
    }
    for (const iv of ivs) {
      requireGno(iv.start, "fromEntries")
      requireGno(iv.end, "fromEntries")
      if (iv.end < iv.start) {
        throw new RangeError(`fromEntries: interval ${iv.start}-${iv.end} ends before it starts`)
      }
      list.push(iv)
    }
  }
  return fromNormalizedEntries([...acc].map(([k, ivs]) => [k, normalizeIntervals(ivs)] as const))
}

/** The set holding `sid:start-end` (`end` defaults to `start`). Throws on bad input. */
export function singleton(sid: string, start: number, end: number = start): GtidSet {
  const key = requireSid(sid, "singleton")
  requireGno(start, "singleton")
  requireGno(end, "singleton")
  if (end < start) throw new RangeError(`singleton: interval ${start}-${end} ends before it starts`)
  return fromNormalizedEntries([[key, [interval(start, end)]]])
}

// ---------------------------------------------------------------------------
// Parsing

const isWhitespace = (c: number): boolean =>
  c === 0x20 || (c >= 0x09 && c <= 0x0d) /* \t \n \v \f \r, as C isspace */
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39
const isHex = (c: number): boolean =>
  isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
const isTagStart = (c: number): boolean =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f
const isTagChar = (c: number): boolean => isTagStart(c) || isDigit(c)

class ParseFailure {
  readonly message: string
  readonly position: number
  constructor(message: string, position: number) {
    this.message = message
    this.position = position
  }
}

/**
 * Parses a GTID set as MySQL prints or accepts it: `""`, `"uuid:1-5:7"`,
 * `"uuid:1-5,\nuuid2:3"`, tagged `"uuid:tag:1-3"`, `"uuid:1-3:tag:5:tag2:1"`.
 * Upper-case uuids and tags are lower-cased. On error, `message` says what was
 * wrong and where, and `position` is the 0-based index of the offending
 * character in `text` (`text.length` for an unexpected end of input).
 */
export function parseGtidSet(text: string): GtidParseResult {
  try {
    return { _tag: "Ok", set: parseOrThrow(text) }
  } catch (e) {
    if (e instanceof ParseFailure) return { _tag: "Err", message: e.message, position: e.position }
    throw e
  }
}

/** Like `parseGtidSet`, but throws an `Error` with the message. For tests and the simulator. */
export function unsafeParseGtidSet(text: string): GtidSet {
  const result = parseGtidSet(text)
  switch (result._tag) {
    case "Ok":
      return result.set
    case "Err":
      throw new Error(`invalid GTID set ${JSON.stringify(text)}: ${result.message}`)
    default:
      return absurd(result)
  }
}

function absurd(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`)
}

function parseOrThrow(text: string): GtidSet {
  const n = text.length
  let pos = 0
  const acc = new Map<string, GtidInterval[]>()

  const describe = (at: number): string => (at >= n ? "end of input" : JSON.stringify(text[at]))
  const fail = (what: string, at: number): never => {
    throw new ParseFailure(`${what} at position ${at}`, at)
  }
  const skipWhitespace = (): void => {
    while (pos < n && isWhitespace(text.charCodeAt(pos))) pos++
  }

  const readUuid = (): string => {
    const start = pos
    for (let i = 0; i < UUID_LENGTH; i++) {
      const at = start + i
      const c = text.charCodeAt(at) // NaN past the end
      const wantDash = i === 8 || i === 13 || i === 18 || i === 23
      const ok = wantDash ? c === 0x2d : isHex(c)
      if (!ok) {
        const snippet = JSON.stringify(text.slice(start, start + UUID_LENGTH))
        const expected = wantDash ? `'-'` : "a hexadecimal digit"
        fail(
          `invalid UUID ${snippet} (expected 8-4-4-4-12 hexadecimal digits): ` +
            `expected ${expected}, found ${describe(at)}`,
          at,
        )
      }
    }
    pos = start + UUID_LENGTH
    return text.slice(start, pos).toLowerCase()
  }

  const readGno = (): number => {
    const start = pos
    while (pos < n && isDigit(text.charCodeAt(pos))) pos++
    if (pos === start) fail(`expected a transaction number (GNO), found ${describe(start)}`, start)
    const digits = text.slice(start, pos)
    const value = Number(digits)
    if (value === 0) fail("transaction number 0 is not allowed (GNOs start at 1)", start)
    // Any integer above 2^53 - 1 converts to a number >= 2^53, so this is exact.
    if (value > MAX_GNO) {
      fail(`transaction number ${digits} is larger than ${MAX_GNO} (2^53 - 1)`, start)
    }
    return value
  }

  const readTag = (): string => {
    const start = pos
    while (pos < n && isTagChar(text.charCodeAt(pos))) pos++
    const tag = text.slice(start, pos)
    if (tag.length > MAX_TAG_LENGTH) {
      fail(`tag ${JSON.stringify(tag)} is longer than ${MAX_TAG_LENGTH} characters`, start)
    }
    return tag.toLowerCase()
  }

  const addInterval = (key: string, start: number, end: number): void => {
    let list = acc.get(key)
    if (list === undefined) {
      list = []
      acc.set(key, list)
    }
    list.push(interval(start, end))
  }

  skipWhitespace()
  for (;;) {
    // Empty elements between commas are allowed, as in MySQL.
    while (pos < n && text[pos] === ",") {
      pos++
      skipWhitespace()
    }
    if (pos >= n) break

    const uuid = readUuid()
    const uuidEnd = pos
    skipWhitespace()
    if (text[pos] !== ":") {
      if (pos >= n || text[pos] === ",") {
        fail(`UUID ${uuid} has no transaction intervals (missing ':' and interval)`, uuidEnd)
      }
      fail(`expected ':' after UUID ${uuid}, found ${describe(pos)}`, pos)
    }

    let key = uuid
    // A tag read but not yet followed by an interval: its text and position.
    let pendingTag: { readonly tag: string; readonly at: number } | undefined
    while (pos < n && text[pos] === ":") {
      pos++
      skipWhitespace()
      const c = text.charCodeAt(pos)
      if (isDigit(c)) {
        const intervalAt = pos
        const start = readGno()
        skipWhitespace()
        let end = start
        if (text[pos] === "-") {
          pos++
          skipWhitespace()
          if (!isDigit(text.charCodeAt(pos))) {
            fail(`expected the end of interval ${start}-, found ${describe(pos)}`, pos)
          }
          end = readGno()
          if (end < start) {
            fail(`interval ${start}-${end} ends before it starts`, intervalAt)
          }
          skipWhitespace()
        }
        addInterval(key, start, end)
        pendingTag = undefined
      } else if (isTagStart(c)) {
        if (pendingTag !== undefined) {
          fail(`tag ${JSON.stringify(pendingTag.tag)} has no transaction intervals`, pendingTag.at)
        }
        const at = pos
        const tag = readTag()
        key = `${uuid}:${tag}`
        pendingTag = { tag, at }
        skipWhitespace()
      } else {
        fail(`expected a transaction number or a tag after ':', found ${describe(pos)}`, pos)
      }
    }
    if (pendingTag !== undefined) {
      fail(`tag ${JSON.stringify(pendingTag.tag)} has no transaction intervals`, pendingTag.at)
    }
    if (pos < n && text[pos] !== ",") {
      fail(`expected ',' or ':' after the intervals of ${uuid}, found ${describe(pos)}`, pos)
    }
  }

  return fromNormalizedEntries([...acc].map(([k, ivs]) => [k, normalizeIntervals(ivs)] as const))
}

// ---------------------------------------------------------------------------
// Formatting

function formatInterval(iv: GtidInterval): string {
  return iv.start === iv.end ? `${iv.start}` : `${iv.start}-${iv.end}`
}

function sortedKeys(a: GtidSet): string[] {
  return [...a.sids.keys()].sort()
}

/**
 * MySQL's canonical text, as the server prints `@@gtid_executed` but with
 * `","` instead of `",\n"` between uuids: uuids in order, each printed once;
 * its untagged intervals first, then each tag (in order) followed by its
 * intervals: `"uuid1:1-3:5:tag_a:1-2:tag_b:7,uuid2:1-9"`. A uuid with only
 * tagged GTIDs prints as `"uuid:tag:1-2"`. Empty set: `""`.
 * `parseGtidSet` reads this form back to an equal set.
 */
export function formatGtidSet(set: GtidSet): string {
  const groups: string[] = []
  let currentUuid: string | undefined
  let current = ""
  for (const key of sortedKeys(set)) {
    const ivs = set.sids.get(key)
    if (ivs === undefined || ivs.length === 0) continue
    const uuid = key.slice(0, UUID_LENGTH)
    if (uuid !== currentUuid) {
      if (currentUuid !== undefined) groups.push(current)
      currentUuid = uuid
      current = uuid
    }
    if (key.length > UUID_LENGTH) current += key.slice(UUID_LENGTH) // ":tag"
    for (const iv of ivs) current += `:${formatInterval(iv)}`
  }
  if (currentUuid !== undefined) groups.push(current)
  return groups.join(",")
}

// ---------------------------------------------------------------------------
// Interval list algebra (linear merges of sorted lists)

const NONE: ReadonlyArray<GtidInterval> = Object.freeze([])

function unionIntervals(
  a: ReadonlyArray<GtidInterval>,
  b: ReadonlyArray<GtidInterval>,
): ReadonlyArray<GtidInterval> {
  if (b.length === 0) return a
  if (a.length === 0) return b
  const out: GtidInterval[] = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    const next = j >= b.length || (i < a.length && a[i]!.start <= b[j]!.start) ? a[i++]! : b[j++]!
    pushMerged(out, next.start, next.end)
  }
  return out
}

function subtractIntervals(
  a: ReadonlyArray<GtidInterval>,
  b: ReadonlyArray<GtidInterval>,
): ReadonlyArray<GtidInterval> {
  if (a.length === 0 || b.length === 0) return a
  const out: GtidInterval[] = []
  let j = 0
  let changed = false
  for (const iv of a) {
    let cur = iv.start
    // Skip what lies wholly before the rest of this interval.
    while (j < b.length && b[j]!.end < cur) j++
    let k = j
    while (k < b.length && b[k]!.start <= iv.end && cur <= iv.end) {
      const cut = b[k]!
      changed = true
      if (cut.start > cur) out.push(interval(cur, cut.start - 1))
      cur = Math.max(cur, cut.end + 1)
      // `cut` may reach into the next interval of `a`: keep it in view.
      if (cut.end > iv.end) break
      k++
    }
    j = k
    if (cur <= iv.end) out.push(cur === iv.start ? iv : interval(cur, iv.end))
  }
  return changed ? out : a
}

function intersectIntervals(
  a: ReadonlyArray<GtidInterval>,
  b: ReadonlyArray<GtidInterval>,
): ReadonlyArray<GtidInterval> {
  if (a.length === 0 || b.length === 0) return NONE
  const out: GtidInterval[] = []
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) {
    const x = a[i]!
    const y = b[j]!
    const lo = Math.max(x.start, y.start)
    const hi = Math.min(x.end, y.end)
    if (lo <= hi) pushMerged(out, lo, hi)
    if (x.end < y.end) i++
    else j++
  }
  return out
}

function intervalsSubset(a: ReadonlyArray<GtidInterval>, b: ReadonlyArray<GtidInterval>): boolean {
  let j = 0
  for (const iv of a) {
    while (j < b.length && b[j]!.end < iv.start) j++
    const cover = b[j]
    if (cover === undefined || cover.start > iv.start || cover.end < iv.end) return false
  }
  return true
}

function intervalsEqual(a: ReadonlyArray<GtidInterval>, b: ReadonlyArray<GtidInterval>): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.start !== b[i]!.start || a[i]!.end !== b[i]!.end) return false
  }
  return true
}

// ---------------------------------------------------------------------------
// Set algebra

function combine(
  a: GtidSet,
  b: GtidSet,
  keys: Iterable<string>,
  op: (
    x: ReadonlyArray<GtidInterval>,
    y: ReadonlyArray<GtidInterval>,
  ) => ReadonlyArray<GtidInterval>,
): GtidSet {
  const entries: Array<readonly [string, ReadonlyArray<GtidInterval>]> = []
  for (const key of keys) {
    entries.push([key, op(a.sids.get(key) ?? NONE, b.sids.get(key) ?? NONE)])
  }
  return fromNormalizedEntries(entries)
}

/** a ∪ b */
export function union(a: GtidSet, b: GtidSet): GtidSet {
  if (isEmpty(b)) return a
  if (isEmpty(a)) return b
  return combine(a, b, new Set([...a.sids.keys(), ...b.sids.keys()]), unionIntervals)
}

/** a − b: the transactions of `a` that are not in `b` (e.g. errant transactions). */
export function subtract(a: GtidSet, b: GtidSet): GtidSet {
  if (isEmpty(a) || isEmpty(b)) return a
  return combine(a, b, a.sids.keys(), subtractIntervals)
}

/** a ∩ b */
export function intersect(a: GtidSet, b: GtidSet): GtidSet {
  if (isEmpty(a) || isEmpty(b)) return emptyGtidSet
  const keys = [...a.sids.keys()].filter((k) => b.sids.has(k))
  return combine(a, b, keys, intersectIntervals)
}

/** a ⊆ b */
export function isSubset(a: GtidSet, b: GtidSet): boolean {
  for (const [key, ivs] of a.sids) {
    if (!intervalsSubset(ivs, b.sids.get(key) ?? NONE)) return false
  }
  return true
}

/** Same transactions. */
export function equals(a: GtidSet, b: GtidSet): boolean {
  if (a === b) return true
  if (a.sids.size !== b.sids.size) return false
  for (const [key, ivs] of a.sids) {
    const other = b.sids.get(key)
    if (other === undefined || !intervalsEqual(ivs, other)) return false
  }
  return true
}

/** The number of transactions (exact below 2^53). */
export function count(a: GtidSet): number {
  let total = 0
  for (const ivs of a.sids.values()) {
    for (const iv of ivs) total += iv.end - iv.start + 1
  }
  return total
}

/** No transactions at all. */
export function isEmpty(a: GtidSet): boolean {
  for (const ivs of a.sids.values()) if (ivs.length > 0) return false
  return true
}

/**
 * The part of `a` whose uuid (the part before any tag) is in `uuids`; all tags
 * of a kept uuid are kept. `uuids` may be in any letter case.
 */
export function restrictToUuids(a: GtidSet, uuids: ReadonlySet<string>): GtidSet {
  const wanted = new Set<string>()
  for (const u of uuids) wanted.add(u.toLowerCase())
  const entries: Array<readonly [string, ReadonlyArray<GtidInterval>]> = []
  for (const [key, ivs] of a.sids) {
    if (wanted.has(key.slice(0, UUID_LENGTH))) entries.push([key, ivs])
  }
  return entries.length === a.sids.size ? a : fromNormalizedEntries(entries)
}

/** The uuids (without tags) that have transactions in `a`, in sorted order. */
export function uuidsOf(a: GtidSet): ReadonlySet<string> {
  const out = new Set<string>()
  for (const key of sortedKeys(a)) out.add(key.slice(0, UUID_LENGTH))
  return out
}

/** The set of sids (`"uuid"` or `"uuid:tag"`) that have transactions in `a`, sorted. */
export function sidsOf(a: GtidSet): ReadonlyArray<string> {
  return sortedKeys(a)
}

/** True when `sid:gno` is in `a`. Throws on an invalid sid. */
export function contains(a: GtidSet, sid: string, gno: number): boolean {
  const ivs = a.sids.get(requireSid(sid, "contains")) ?? NONE
  let lo = 0
  let hi = ivs.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const iv = ivs[mid]!
    if (gno < iv.start) hi = mid - 1
    else if (gno > iv.end) lo = mid + 1
    else return true
  }
  return false
}

/** `a` plus the transaction `sid:gno` (`sid` = `"uuid"` or `"uuid:tag"`). Throws on bad input. */
export function addTransaction(a: GtidSet, sid: string, gno: number): GtidSet {
  return union(a, singleton(sid, gno))
}

/** The highest GNO of `sid` in `a`, or 0 when it has none. Throws on an invalid sid. */
export function lastGno(a: GtidSet, sid: string): number {
  const ivs = a.sids.get(requireSid(sid, "lastGno")) ?? NONE
  return ivs[ivs.length - 1]?.end ?? 0
}

/**
 * 1 + the highest GNO of `sid` in `a` (1 when none): the GNO MySQL gives the
 * next transaction of that sid when there are no gaps. Throws on an invalid sid.
 */
export function nextGno(a: GtidSet, sid: string): number {
  return lastGno(a, sid) + 1
}
