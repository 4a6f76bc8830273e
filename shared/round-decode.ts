/**
 * A decoder for the messages of every round: a heartbeat without its record
 * and an acknowledgement. At rest they are nearly all an agent receives, and
 * Effect Schema's generic decode cost about 40 µs each in an agent whose code
 * stays cold (7 % of its CPU at rest, issue 12); this one checks the same
 * fields by hand.
 *
 * It answers only for inputs it is sure of: anything else (another message,
 * a heartbeat carrying the record, a field it doubts) gives undefined, and
 * the Schema decodes it, with its own words for what is wrong. Where it
 * answers, it gives what the Schema gives (unknown keys left out), as the
 * property tests in test/unit/round-decode.test.ts hold it to.
 */
import { Health, type HeartbeatMessage, NodeRole, type PeerMessage } from "./peer-messages.ts"

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v)
const isString = (v: unknown): v is string => typeof v === "string"
const isBoolean = (v: unknown): v is boolean => typeof v === "boolean"
/** Schema.Int */
const isInt = (v: unknown): v is number => Number.isSafeInteger(v)
/** Schema.Finite */
const isFiniteNumber = (v: unknown): v is number => Number.isFinite(v)
const isStringOrNull = (v: unknown): v is string | null => v === null || typeof v === "string"
const isBooleanOrNull = (v: unknown): v is boolean | null => v === null || typeof v === "boolean"

const ROLES: ReadonlySet<unknown> = new Set(NodeRole.literals)
const HEALTHS: ReadonlySet<unknown> = new Set(Health.literals)

/** Thrown inside, to give up on the input (never escapes). */
const DOUBT = Symbol("doubt")
const doubt = (): never => {
  throw DOUBT
}
const check = <T>(v: unknown, is: (v: unknown) => v is T): T => (is(v) ? v : doubt())

type Observation = NonNullable<HeartbeatMessage["observation"]>

const observationOf = (o: unknown): Observation | null => {
  if (o === null) return null
  if (!isObject(o)) return doubt()
  if (!ROLES.has(o.role) || !HEALTHS.has(o.health)) return doubt()
  const out: Record<string, unknown> = {
    role: o.role,
    health: o.health,
    mysqlUp: check(o.mysqlUp, isBoolean),
    serverUuid: check(o.serverUuid, isStringOrNull),
    writable: check(o.writable, isBoolean),
    superReadOnly: check(o.superReadOnly, isBoolean),
    executed: check(o.executed, isString),
    retrieved: check(o.retrieved, isString),
    source: check(o.source, isStringOrNull),
    ioRunning: check(o.ioRunning, isBoolean),
    sqlRunning: check(o.sqlRunning, isBoolean),
    replicationError: check(o.replicationError, isStringOrNull),
    backlog: check(o.backlog, isInt),
  }
  // Optional keys: absent stays absent; present must hold a value of the type.
  if (Object.hasOwn(o, "lagSeconds"))
    out.lagSeconds = o.lagSeconds === null ? null : check(o.lagSeconds, isFiniteNumber)
  out.errant = check(o.errant, isString)
  out.eligible = check(o.eligible, isBoolean)
  if (Object.hasOwn(o, "quiet")) out.quiet = check(o.quiet, isBoolean)
  if (Object.hasOwn(o, "writesBlocked")) out.writesBlocked = check(o.writesBlocked, isString)
  if (Object.hasOwn(o, "semiSyncFallback"))
    out.semiSyncFallback = check(o.semiSyncFallback, isString)
  return out as Observation
}

const heardFromOf = (list: unknown): HeartbeatMessage["heardFrom"] => {
  if (!Array.isArray(list)) return doubt()
  const out: Array<{ name: string; agoMs: number }> = []
  // By index, not map(): map skips the holes of a sparse array, which the Schema rejects.
  for (let i = 0; i < list.length; i++) {
    const h: unknown = list[i]
    out.push(
      isObject(h)
        ? { name: check(h.name, isString), agoMs: check(h.agoMs, isFiniteNumber) }
        : doubt(),
    )
  }
  return out
}

const heartbeatOf = (m: Json): HeartbeatMessage => {
  // The record is left to the Schema: rare (a peer that may lack it), and its decoding has defaults.
  if (Object.hasOwn(m, "record")) return doubt()
  const out: Record<string, unknown> = {
    _tag: "Heartbeat",
    from: check(m.from, isString),
    bootId: check(m.bootId, isString),
    term: check(m.term, isInt),
    leader: check(m.leader, isStringOrNull),
    round: check(m.round, isInt),
    active: check(m.active, isBoolean),
    observation: observationOf(m.observation),
    probedPrimary: check(m.probedPrimary, isStringOrNull),
    primaryReachable: check(m.primaryReachable, isBooleanOrNull),
    primaryFenced: check(m.primaryFenced, isBooleanOrNull),
    heardFrom: heardFromOf(m.heardFrom),
  }
  if (Object.hasOwn(m, "standsOnOwnProbe"))
    out.standsOnOwnProbe = check(m.standsOnOwnProbe, isBoolean)
  if (Object.hasOwn(m, "recordVersion")) {
    const v = m.recordVersion
    out.recordVersion = isObject(v)
      ? { term: check(v.term, isInt), seq: check(v.seq, isInt) }
      : doubt()
  }
  if (Object.hasOwn(m, "ack")) {
    const a = m.ack
    out.ack = isObject(a) ? { term: check(a.term, isInt), round: check(a.round, isInt) } : doubt()
  }
  return out as HeartbeatMessage
}

/** The message if `json` is a round's heartbeat (without record) or acknowledgement, else undefined. */
export const decodeRoundMessage = (json: unknown): PeerMessage | undefined => {
  if (!isObject(json)) return undefined
  try {
    if (json._tag === "Heartbeat") return heartbeatOf(json)
    if (json._tag === "HeartbeatAck")
      return {
        _tag: "HeartbeatAck",
        from: check(json.from, isString),
        term: check(json.term, isInt),
        round: check(json.round, isInt),
      }
    return undefined
  } catch (e) {
    if (e === DOUBT) return undefined
    throw e
  }
}
