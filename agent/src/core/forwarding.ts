/**
 * Operator requests run where they belong (operations.md: cluster-wide
 * commands are forwarded over the mesh to the primary; node commands to the
 * node they name), in the manner of etcd-raft's proposal forwarding:
 *
 * - an Operator input on a node that is not the target sends the target an
 *   `OperatorRequest` message carrying the request and this node's request
 *   id, and waits (a deadline in the state);
 * - the target runs it as its own operator request under a local id of its
 *   own (negative, so it never meets the daemon's ids), and whatever
 *   OperatorReply that produces, now or in a later step, leaves as an
 *   `OperatorReply` message to the origin instead;
 * - the origin turns that message into its OperatorReply, naming the member
 *   that answered; with no reply by the deadline it refuses ("no reply from
 *   db2 within 1s").
 *
 * A forwarded request is never forwarded again: the target answers with what
 * it knows (for example "not the primary").
 */
import type { ForwardedRequest, PeerMessage } from "../../../shared/peer-messages.ts"
import { memberOf } from "./config.ts"
import { whyNoElection } from "./election.ts"
import { onOperator } from "./operator.ts"
import { event, type Outputs, send } from "./outputs.ts"
import { leaderActiveOf, leaderOf } from "./roles.ts"
import type { AgentState, Forwarding, OperatorRequest } from "./types.ts"

export const idleForwarding: Forwarding = { sent: new Map(), served: new Map(), nextServedId: -2 }

/** Served entries whose reply never came are forgotten after this long. */
const servedTtlMs = 600_000

type Route =
  | { readonly _tag: "Here" }
  | { readonly _tag: "There"; readonly to: string }
  | { readonly _tag: "Refuse"; readonly why: string }

const here: Route = { _tag: "Here" }

/** The current primary: this node when it leads, the leader it believes in, else a refusal. */
const toPrimary = (s: AgentState): Route => {
  if (s.role._tag === "Leader") return here
  const leader = leaderOf(s)
  if (leader !== null) return { _tag: "There", to: leader }
  return { _tag: "Refuse", why: `no primary: election status: ${whyNoElection(s)}` }
}

const toNode = (s: AgentState, node: string): Route => {
  if (node === s.self) return here
  if (memberOf(s.config, node) === undefined) return { _tag: "Refuse", why: `unknown node ${node}` }
  return { _tag: "There", to: node }
}

/** Where a request runs, as seen from this node. */
export const routeOf = (s: AgentState, r: OperatorRequest): Route => {
  switch (r._tag) {
    case "Switchover":
    case "Pause":
    case "Resume":
    case "Exclude":
    case "Include":
    case "FixErrant":
      return toPrimary(s)
    case "MemberAdd": // on the primary only (member-change.ts names it otherwise)
    case "MemberRemove":
      return here
    case "AckRecovery": // Without an ACTIVE primary the block may be what stops the election: lift it here.
      {
        const leader = leaderOf(s)
        return s.role._tag !== "Leader" && leader !== null && leaderActiveOf(s)
          ? { _tag: "There", to: leader }
          : here
      }
    case "Failover":
      return toNode(s, r.to ?? s.self)
    case "Rejoin":
      return toNode(s, r.node ?? s.self)
    case "Demote":
      return toNode(s, r.node)
    case "Clone":
      return toNode(s, r.recipient)
    case "Shutdown":
      return here
    default:
      return absurd(r)
  }
}

/** A clone answers once the copy is done, which may take hours. */
const cloneAnswerMs = 6 * 3_600_000

/**
 * How long the origin waits: a switchover answers once the transfer is done,
 * after converging (up to switchover_timeout), then hook, fence and catch-up
 * (up to switchover_timeout and the drain), with a switchover_timeout to spare.
 */
export const forwardTimeoutMs = (s: AgentState, r: ForwardedRequest): number => {
  const t = s.config.timings
  if (r._tag === "Clone") return cloneAnswerMs
  if (r._tag === "Switchover" && !r.dryRun)
    return 3 * t.switchoverTimeoutMs + (r.drainTimeoutMs ?? 0) + t.rpcTimeoutMs
  return t.rpcTimeoutMs
}

const seconds = (ms: number): string => `${Math.round(ms / 100) / 10}s`

/** An Operator input: run it here, send it where it runs, or refuse at once. */
export const onOperatorInput = (
  s: AgentState,
  out: Outputs,
  requestId: number,
  request: OperatorRequest,
): AgentState => {
  const route = routeOf(s, request)
  if (
    route._tag === "Here" ||
    request._tag === "Shutdown" ||
    request._tag === "MemberAdd" ||
    request._tag === "MemberRemove"
  ) {
    return onOperator(s, out, requestId, request)
  }
  if (route._tag === "Refuse") {
    out.push({ _tag: "OperatorReply", requestId, ok: false, message: route.why })
    return s
  }
  const timeoutMs = forwardTimeoutMs(s, request)
  send(out, route.to, { _tag: "OperatorRequest", from: s.self, requestId, request })
  event(out, "info", "operator-forwarded", `${request._tag} to ${route.to}`)
  const sent = new Map(s.forwarding.sent)
  sent.set(requestId, { to: route.to, deadline: s.now + timeoutMs, timeoutMs })
  return { ...s, forwarding: { ...s.forwarding, sent } }
}

/** A peer asks this node to run a request for it. */
export const onForwardedRequest = (
  s: AgentState,
  out: Outputs,
  from: string,
  requestId: number,
  request: ForwardedRequest,
): AgentState => {
  const id = s.forwarding.nextServedId
  const served = new Map(s.forwarding.served)
  served.set(id, { from, requestId, at: s.now })
  event(out, "info", "operator-request", `${request._tag} from ${from}`)
  const next: AgentState = {
    ...s,
    forwarding: { ...s.forwarding, served, nextServedId: id - 1 },
  }
  return onOperator(next, out, id, request)
}

/** The target answered a request this node forwarded. */
export const onForwardedReply = (
  s: AgentState,
  out: Outputs,
  m: Extract<PeerMessage, { _tag: "OperatorReply" }>,
): AgentState => {
  const pending = s.forwarding.sent.get(m.requestId)
  if (pending === undefined || pending.to !== m.from) return s
  out.push({
    _tag: "OperatorReply",
    requestId: m.requestId,
    ok: m.ok,
    message: m.message,
    answeredBy: m.from,
    ...(m.steps.length > 0 ? { steps: m.steps } : {}),
  })
  const sent = new Map(s.forwarding.sent)
  sent.delete(m.requestId)
  return { ...s, forwarding: { ...s.forwarding, sent } }
}

/** Forwarded requests nobody answered in time are refused; stale served entries dropped. */
export const forwardTimers = (s: AgentState, out: Outputs): AgentState => {
  const f = s.forwarding
  if (f.sent.size === 0 && f.served.size === 0) return s
  let sent = f.sent
  for (const [requestId, p] of f.sent) {
    if (s.now < p.deadline) continue
    if (sent === f.sent) sent = new Map(f.sent)
    ;(sent as Map<number, unknown>).delete(requestId)
    out.push({
      _tag: "OperatorReply",
      requestId,
      ok: false,
      message: `no reply from ${p.to} within ${seconds(p.timeoutMs)} (it may still act on the request)`,
    })
  }
  let served = f.served
  for (const [id, e] of f.served) {
    if (s.now - e.at < servedTtlMs) continue
    if (served === f.served) served = new Map(f.served)
    ;(served as Map<number, unknown>).delete(id)
  }
  return sent === f.sent && served === f.served ? s : { ...s, forwarding: { ...f, sent, served } }
}

const maxMessage = 16 * 1024 - 64
const maxStep = 1000
const maxSteps = 256

/**
 * Run after every step: replies to requests served for another member leave
 * as messages to it, in place (the order of outputs is kept).
 */
export const routeReplies = (s: AgentState, out: Outputs): AgentState => {
  if (s.forwarding.served.size === 0) return s
  let served = s.forwarding.served
  for (let i = 0; i < out.length; i++) {
    const o = out[i]
    if (o === undefined || o._tag !== "OperatorReply") continue
    const origin = served.get(o.requestId)
    if (origin === undefined) continue
    if (served === s.forwarding.served) served = new Map(served)
    ;(served as Map<number, unknown>).delete(o.requestId)
    out[i] = {
      _tag: "Send",
      to: origin.from,
      message: {
        _tag: "OperatorReply",
        from: s.self,
        requestId: origin.requestId,
        ok: o.ok,
        message: o.message.slice(0, maxMessage),
        steps: (o.steps ?? []).slice(0, maxSteps).map((x) => x.slice(0, maxStep)),
      },
    }
  }
  return served === s.forwarding.served ? s : { ...s, forwarding: { ...s.forwarding, served } }
}

function absurd(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`)
}
