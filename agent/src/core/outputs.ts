/**
 * Emitting outputs from a step. Actions whose completion matters get an id
 * and a purpose, so that the completion (MysqlDone, HookDone) reaches the
 * routine that asked for it.
 */
import type { PeerMessage } from "../../../shared/peer-messages.ts"
import type { CoreEvent, PlainEventName } from "./events.ts"
import type { ActionPurpose, AgentState, HookName, LogLevel, MysqlAction, Output } from "./types.ts"

/** The outputs of one step, in the order the driver must execute them. */
export type Outputs = Array<Output>

export const issueMysql = (
  s: AgentState,
  out: Outputs,
  action: MysqlAction,
  purpose: ActionPurpose,
): [AgentState, number] => {
  const id = s.nextId
  out.push({ _tag: "Mysql", id, action })
  const inFlight = new Map(s.inFlight)
  inFlight.set(id, purpose)
  return [{ ...s, nextId: id + 1, inFlight }, id]
}

export const runHook = (
  s: AgentState,
  out: Outputs,
  hook: HookName,
  env: Readonly<Record<string, string>>,
  purpose: ActionPurpose,
): [AgentState, number] => {
  const id = s.nextId
  out.push({
    _tag: "RunHook",
    id,
    hook,
    env: { MHA_EVENT: hook, MHA_TERM: `${s.hard.term}`, ...env },
  })
  const inFlight = new Map(s.inFlight)
  inFlight.set(id, purpose)
  return [{ ...s, nextId: id + 1, inFlight }, id]
}

/** The purpose of a finished action, and the state without it. */
export const completeAction = (
  s: AgentState,
  id: number,
): [AgentState, ActionPurpose | undefined] => {
  const purpose = s.inFlight.get(id)
  if (purpose === undefined) return [s, undefined]
  const inFlight = new Map(s.inFlight)
  inFlight.delete(id)
  // Visible once a probe sent from now on answers (local-probes.ts).
  const awaitingProbe = new Map(s.awaitingProbe)
  awaitingProbe.set(purpose._tag, s.probes.next)
  return [{ ...s, inFlight, awaitingProbe }, purpose]
}

/** An action for this purpose is running, or finished but not yet visible in a probe. */
export const isInFlight = (s: AgentState, purpose: ActionPurpose["_tag"]): boolean => {
  if (s.awaitingProbe.has(purpose)) return true
  for (const p of s.inFlight.values()) if (p._tag === purpose) return true
  return false
}

export const peersOf = (s: AgentState): ReadonlyArray<string> =>
  s.config.members.filter((m) => m.name !== s.self).map((m) => m.name)

export const broadcast = (s: AgentState, out: Outputs, message: PeerMessage): void => {
  for (const to of peersOf(s)) out.push({ _tag: "Send", to, message })
}

export const send = (out: Outputs, to: string, message: PeerMessage): void => {
  out.push({ _tag: "Send", to, message })
}

/** An event (events.ts): a plain one by its name, or one with the facts it carries. */
/** The answer to an operator's request (control socket or forwarded). */
export const operatorReply = (
  out: Outputs,
  requestId: number,
  ok: boolean,
  message: string,
): void => {
  out.push({ _tag: "OperatorReply", requestId, ok, message })
}

export const event = (
  out: Outputs,
  level: LogLevel,
  e: PlainEventName | CoreEvent,
  reason: string,
): void => {
  out.push({ _tag: "Event", level, reason, ...(typeof e === "string" ? { event: e } : e) })
}

/**
 * Asks for the hard state to be written. Numbered in emission order: `out`
 * is the whole step's outputs, and durability.ts `ready` counts the step's
 * persists from `s.durability.emitted` the same way.
 */
export const persist = (s: AgentState, out: Outputs): void => {
  let seq = s.durability.emitted
  for (const o of out) if (o._tag === "PersistHardState") seq = o.seq
  out.push({ _tag: "PersistHardState", hard: s.hard, seq: seq + 1 })
}
