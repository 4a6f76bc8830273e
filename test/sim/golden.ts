/**
 * Golden protocol tests, in the manner of etcd-io/raft's testdata: a file of
 * test/sim/golden/ is a scenario script (scenario.ts), a line `----`, and the
 * exact sequence of the core's outputs from the script's `record` command on,
 * one line per output, grouped by step (time since `record`, node, input).
 * A change in what the core sends, persists, asks of MySQL, the VIP or the
 * hooks, or in the roles it takes, changes the text even when the cluster
 * still converges. After a deliberate change, rewrite the files and review
 * the diff:
 *
 *   UPDATE_GOLDEN=1 bash scripts/node24.sh --test test/sim/golden.test.ts
 *
 * Left out as steady-state noise: Heartbeat and HeartbeatAck messages, the
 * periodic ProbeLocal/ProbePrimary/CheckPrivileges outputs, and steps with
 * nothing else to show (a step that only changes a role is shown).
 *
 * Commands added to the scenario language here:
 *   record                       start rendering (once; the cluster is bootstrapped before)
 *   vote db2 from=db3 [pre] [kind=election] [term=+1|-1|N] [received=empty|voter]
 *        [lease=none] [voted=db1] [resync]
 *     feeds db2's core, as it is now, one (Pre)VoteRequest from db3 built from db3's
 *     own candidate data (or with no transactions, or with exactly the voter's), and renders the outputs; the world does not see the step
 *     (db2 keeps its state). `lease=none` drops db2's lease promise first and
 *     `voted=db1` records a vote for db1 in the request's term first, `resync` marks
 *     its relay logs lost (local.resyncNeeded) first (each shown).
 *   then mysql-done [fail] | then probe [writable] [io-running] | then tick +3s
 *   then vote from=db1 [pre] [term=+0] ...
 *     one more input to that voter's core, apart from the world as well: the last
 *     MySQL action it asked for completes; its last probe comes again (replica IO
 *     thread stopped unless `io-running`; `writable`: super_read_only off); time
 *     passes; another request arrives.
 */

import { candidateData } from "../../agent/src/core/election.ts"
import { formatGtidSet } from "../../agent/src/core/gtid.ts"
import { step } from "../../agent/src/core/reducer.ts"
import { leaderOf, roleName } from "../../agent/src/core/roles.ts"
import { nodeRole } from "../../agent/src/core/status.ts"
import type { AgentState, Input, MysqlAction, Output } from "../../agent/src/core/types.ts"
import type { ClusterRecord, PeerMessage } from "../../shared/peer-messages.ts"
import { answering } from "../support/probe-answer.ts"
import { runScenario, type ScenarioResult } from "./scenario.ts"
import type { World } from "./world.ts"

export const SEPARATOR = "----"

/** The script and the expected text of a golden file. */
export const splitGolden = (text: string): { script: string; expected: string | null } => {
  const lines = text.split("\n")
  const at = lines.indexOf(SEPARATOR)
  if (at < 0) return { script: text, expected: null }
  return { script: lines.slice(0, at).join("\n"), expected: lines.slice(at + 1).join("\n") }
}

export const joinGolden = (script: string, rendered: string): string =>
  `${script.replace(/\n+$/, "")}\n${SEPARATOR}\n${rendered}`

// ---------------------------------------------------------------------------
// Rendering

const rec = (r: ClusterRecord): string =>
  `${r.term}.${r.seq} primary=${r.primary ?? "none"}${r.paused ? " paused" : ""}${
    r.excluded.length > 0 ? ` excluded=${r.excluded.join(",")}` : ""
  }`

export const renderMessage = (m: PeerMessage): string => {
  switch (m._tag) {
    case "Heartbeat":
      return `Heartbeat term=${m.term} leader=${m.leader ?? "none"}${m.ack === undefined ? "" : ` ack=${m.ack.term}`}`
    case "HeartbeatAck":
      return `HeartbeatAck term=${m.term}`
    case "PreVoteRequest":
    case "VoteRequest":
      return `${m._tag} term=${m.term} kind=${m.kind} received=${m.data.received || "empty"}`
    case "PreVoteResponse":
      return `PreVoteResponse term=${m.term} ${m.granted ? "granted" : `refused: ${m.reason}`}`
    case "VoteResponse":
      return `VoteResponse term=${m.term} ${m.granted ? "granted" : `refused: ${m.reason}`} record=${m.record.term}.${m.record.seq}`
    case "Revoke":
      return `Revoke term=${m.term}`
    case "LeaderAnnounce":
      return `LeaderAnnounce term=${m.term} executed=${m.executed || "empty"}`
    case "Resign":
      return `Resign term=${m.term}: ${m.reason}`
    case "TransferLeadership":
      return `TransferLeadership term=${m.term} to=${m.to}`
    case "RecordAppend":
      return `RecordAppend term=${m.term} record=${rec(m.record)}`
    case "RecordAck":
      return `RecordAck term=${m.term} seq=${m.seq}`
    case "OperatorRequest":
      return `OperatorRequest #${m.requestId} ${m.request._tag}`
    case "OperatorReply":
      return `OperatorReply #${m.requestId} ${m.ok ? "ok" : "refused"}: ${m.message}`
  }
}

const renderAction = (a: MysqlAction): string => {
  switch (a._tag) {
    case "Fence":
      return `Fence until=${a.until}`
    case "ReplicateFrom":
      return `ReplicateFrom ${a.source}`
    case "WaitForExecuted":
      return `WaitForExecuted ${formatGtidSet(a.gtids) || "empty"} timeout=${a.timeoutMs}ms`
    case "WaitForExecutedAt":
      return `WaitForExecutedAt ${a.target} ${formatGtidSet(a.gtids) || "empty"} timeout=${a.timeoutMs}ms`
    case "WaitForRelayLog":
      return `WaitForRelayLog timeout=${a.timeoutMs}ms`
    case "SetSemiSync":
      return `SetSemiSync source=${a.source ? "on" : "off"} replica=${a.replica ? "on" : "off"} wait=${a.waitForReplicaCount}`
    case "InjectEmpty":
      return `InjectEmpty ${formatGtidSet(a.gtids)}`
    case "FenceRemote":
      return `FenceRemote ${a.target}`
    case "DrainSessions":
      return `DrainSessions timeout=${a.timeoutMs}ms`
    case "Clone":
      return `Clone from ${a.donor}`
    case "KillSessions":
    case "MakeWritable":
    case "StopReplicaIo":
    case "ResetReplicaAll":
    case "StartReplica":
      return a._tag
  }
}

export const renderInput = (i: Input): string => {
  switch (i._tag) {
    case "Start":
      return `start term=${i.hard?.term ?? 0} voted=${i.hard?.votedFor ?? "none"}`
    case "Tick":
      return "tick"
    case "LocalProbed":
      return i.result._tag === "Up"
        ? `local probe up${i.result.mysql.superReadOnly ? " super_read_only" : " writable"}`
        : `local probe down${i.result.hung ? " (hung)" : ""}: ${i.result.reason}`
    case "PrimaryProbed":
      return `primary probe ${i.target} ${i.reachable ? "reachable" : "unreachable"}`
    case "PeerReceived":
      return `recv ${renderMessage(i.message)} from ${i.from}`
    case "MysqlDone":
      return `mysql #${i.id} ${i.ok ? "done" : `failed: ${i.error}`}`
    case "VipDone":
      return `vip ${i.op} ${i.ok ? "done" : "failed"}`
    case "PrivilegesChecked":
      return `privileges ${i.result._tag === "Checked" ? `checked, missing ${i.result.missing.length}` : `check failed: ${i.result.reason}`}`
    case "RestartDone":
      return `restart ${i.ok ? "done" : "failed"}`
    case "Persisted":
      return `persisted #${i.seq}`
    case "PersistFailed":
      return `persist #${i.seq} failed: ${i.error}`
    case "HookDone":
      return `hook #${i.id} exit ${i.exitCode}`
    case "Operator":
      return `operator #${i.requestId} ${JSON.stringify(i.request)}`
    case "Reconfigure":
      return "reconfigure"
  }
}

/** One output, or null when it is steady-state noise (see the header). */
export const renderOutput = (o: Output): string | null => {
  switch (o._tag) {
    case "PersistHardState":
      return `persist #${o.seq} term=${o.hard.term} voted=${o.hard.votedFor ?? "none"} record=${rec(o.hard.record)}`
    case "Send":
      return o.message._tag === "Heartbeat" || o.message._tag === "HeartbeatAck"
        ? null
        : `send ${o.to} ${renderMessage(o.message)}`
    case "Mysql":
      return `mysql #${o.id} ${renderAction(o.action)}`
    case "Vip":
      return `vip ${o.op}`
    case "PublishPrimary":
      return `publish-primary term=${o.term}`
    case "WithdrawPrimary":
      return `withdraw-primary term=${o.term}`
    case "RecordRelayIntact":
      return `record-relay-intact ${o.started.boot}@${o.started.sinceBootSeconds}`
    case "RestartMysqld":
      return `restart-mysqld attempt ${o.attempt}`
    case "KillMysqld":
      return `kill-mysqld: ${o.reason}`
    case "RunHook":
      return `hook #${o.id} ${o.hook}`
    case "ProbeLocal":
    case "ProbePrimary":
    case "CheckPrivileges":
    case "WriteLagHeartbeat":
      return null
    case "Event": {
      // The name, the typed facts some events carry (events.ts), the reason.
      const { _tag, level, event, reason, ...facts } = o
      const shown = Object.entries(facts).map(([k, v]) => ` ${k}=${v}`)
      return `event ${level} ${event}${shown.join("")}: ${reason}`
    }
    case "Halt":
      return `halt: ${o.reason}`
    case "OperatorReply":
      return `reply #${o.requestId} ${o.ok ? "ok" : "refused"}: ${o.message}`
  }
}

/** Sends of one message to several peers in a row become one line: `send db2,db3 ...`. */
const mergeSends = (lines: ReadonlyArray<string>): Array<string> => {
  const out: Array<string> = []
  const sendRe = /^send (\S+) (.*)$/
  for (const l of lines) {
    const m = sendRe.exec(l)
    const prev = out.length > 0 ? sendRe.exec(out[out.length - 1]!) : null
    if (m !== null && prev !== null && prev[2] === m[2]) {
      out[out.length - 1] = `send ${prev[1]},${m[1]} ${m[2]}`
    } else out.push(l)
  }
  return out
}

/** What changed in the agent's role, term, leader and status role over one step. */
const roleChanges = (before: AgentState, after: AgentState): Array<string> => {
  const lines: Array<string> = []
  if (before.hard.term !== after.hard.term)
    lines.push(`term ${before.hard.term} -> ${after.hard.term}`)
  if (roleName(before) !== roleName(after))
    lines.push(`role ${roleName(before)} -> ${roleName(after)}`)
  if (leaderOf(before) !== leaderOf(after))
    lines.push(`leader ${leaderOf(before) ?? "none"} -> ${leaderOf(after) ?? "none"}`)
  const [rb, ra] = [nodeRole(before), nodeRole(after)]
  if (rb !== ra) lines.push(`status ${rb} -> ${ra}`)
  return lines
}

/** The lines of one step: its outputs in order, then what changed in its roles. */
export const renderStep = (
  before: AgentState,
  after: AgentState,
  outputs: ReadonlyArray<Output>,
): Array<string> => [
  ...mergeSends(outputs.map(renderOutput).filter((l): l is string => l !== null)),
  ...roleChanges(before, after),
]

// ---------------------------------------------------------------------------
// The driver: the simulator's world runs the scenario; this wraps its reducer

const at = (ms: number): string => `+${Math.round(ms)}ms`.padStart(9)

/** A voter's core stepped apart from the world by `vote` and `then` (the world never sees it). */
interface Detached {
  readonly name: string
  state: AgentState
  /** The id of the last Mysql output, for `then mysql-done`. */
  lastMysql: number | null
}

const feed = (d: Detached, input: Input, note: string, rendered: Array<string>): void => {
  const result = step(d.state, input)
  rendered.push(
    `${input._tag === "PeerReceived" ? "vote" : "then"} ${d.name} ${renderInput(input)}${note}`,
    ...renderStep(d.state, result.state, result.outputs).map((l) => `  ${l}`),
  )
  for (const o of result.outputs) if (o._tag === "Mysql") d.lastMysql = o.id
  d.state = result.state
  // As the executor does: the step's hard state is written and reported (core/durability.ts).
  const written = result.outputs.flatMap((o) => (o._tag === "PersistHardState" ? [o.seq] : []))
  if (written.length > 0) {
    const persisted: Input = {
      _tag: "Persisted",
      now: d.state.now,
      incarnation: d.state.bootId,
      seq: Math.max(...written),
    }
    feed(d, persisted, "", rendered)
  }
}

const voteCommand = (
  world: World,
  args: ReadonlyArray<string>,
  rendered: Array<string>,
  base: Detached | null,
): Detached => {
  const name = base?.name ?? args[0]!
  const o = new Map(
    args
      .filter((a) => a.includes("="))
      .map((a) => [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]),
  )
  const from = o.get("from")
  if (from === undefined) throw new Error("vote needs from=<candidate>")
  let state = base?.state ?? world.node(name).state
  const pre = args.includes("pre")
  const kind = (o.get("kind") ?? "election") as "election"
  const termOpt = o.get("term") ?? "+1"
  const term = /^[+-]/.test(termOpt) ? state.hard.term + Number(termOpt) : Number(termOpt)
  const data = {
    ...candidateData(world.node(from).state),
    ...(o.get("received") === "empty" ? { received: "" } : {}),
    ...(o.get("received") === "voter" ? { received: formatGtidSet(state.local.received) } : {}),
  }
  const notes: Array<string> = []
  if (o.get("lease") === "none") {
    state = { ...state, promise: null }
    notes.push("lease promise dropped")
  }
  if (args.includes("resync")) {
    state = { ...state, local: { ...state.local, resyncNeeded: true } }
    notes.push("relay logs lost")
  }
  const voted = o.get("voted")
  if (voted !== undefined) {
    state = { ...state, hard: { ...state.hard, term, votedFor: voted } }
    notes.push(`voted for ${voted} in term ${term}`)
  }
  const message: PeerMessage = pre
    ? { _tag: "PreVoteRequest", from, term, kind, data }
    : { _tag: "VoteRequest", from, term, kind, data }
  const d: Detached = { name, state, lastMysql: base?.lastMysql ?? null }
  const now = state.now + (base === null ? 0 : 10)
  feed(
    d,
    { _tag: "PeerReceived", now, from, message },
    notes.length > 0 ? ` (${notes.join(", ")})` : "",
    rendered,
  )
  return d
}

/** `then ...`: one more input to the voter stepped apart by the last `vote`. */
const thenCommand = (
  world: World,
  d: Detached | null,
  args: ReadonlyArray<string>,
  rendered: Array<string>,
): Detached => {
  if (d === null) throw new Error("`then` needs a `vote` before it")
  const now = d.state.now + 10
  switch (args[0]) {
    case "mysql-done": {
      if (d.lastMysql === null) throw new Error("no MySQL action to complete")
      const ok = !args.includes("fail")
      const error = ok ? null : "failed by the script"
      const input: Input = {
        _tag: "MysqlDone",
        now,
        incarnation: d.state.bootId,
        id: d.lastMysql,
        ok,
        error,
      }
      feed(d, input, "", rendered)
      return d
    }
    case "probe": {
      // The voter's last probe, after the freeze: IO thread stopped unless `io-running`.
      const p = d.state.local.probe
      if (p === null) throw new Error(`${d.name} has no probe to repeat`)
      const writable = args.includes("writable")
      const mysql = {
        ...p,
        readOnly: !writable,
        superReadOnly: !writable,
        replica:
          p.replica === null ? null : { ...p.replica, ioRunning: args.includes("io-running") },
      }
      const note = writable ? " (made writable by the script)" : ""
      feed(
        d,
        { _tag: "LocalProbed", now, ...answering(d.state), result: { _tag: "Up", mysql } },
        note,
        rendered,
      )
      return d
    }
    case "tick": {
      const m = /^\+(\d+)(ms|s)$/.exec(args[1] ?? "")
      if (m === null) throw new Error("then tick +<n>ms|s")
      const later = d.state.now + Number(m[1]) * (m[2] === "s" ? 1000 : 1)
      feed(d, { _tag: "Tick", now: later, random: 0.5 }, ` ${args[1]}`, rendered)
      return d
    }
    case "vote":
      return voteCommand(world, args.slice(1), rendered, d)
    default:
      throw new Error(`unknown: then ${args[0]}`)
  }
}

/** Runs a golden file's script and renders what the cores did from `record` on. */
export const runGolden = (script: string): { result: ScenarioResult; rendered: string } => {
  const rendered: Array<string> = []
  let world: World | null = null
  let start = 0
  let faultsSeen = 0
  let detached: Detached | null = null
  const reducer = (before: AgentState, input: Input) => {
    const result = step(before, input)
    // Only the recorded world's agents (a later `cluster` starts another world).
    if (world === null || world.nodes.get(before.self)?.state !== before) return result
    const w: World = world
    for (; faultsSeen < w.faultLog.length; faultsSeen++) {
      // "<world ms, padded> <what>"
      const [, ms, what] = /^\s*(\d+) (.*)$/.exec(w.faultLog[faultsSeen]!) ?? []
      rendered.push(`${at(Number(ms) - start)} FAULT ${what}`)
    }
    const lines = renderStep(before, result.state, result.outputs)
    if (lines.length > 0) {
      rendered.push(
        `${at(w.now - start)} ${before.self} ${renderInput(input)}`,
        ...lines.map((l) => `  ${l}`),
      )
    }
    return result
  }
  const result = runScenario(script, reducer, (w, cmd, args) => {
    switch (cmd) {
      case "record":
        world = w
        start = w.now
        faultsSeen = w.faultLog.length
        return true
      case "vote":
        detached = voteCommand(w, args, rendered, null)
        return true
      case "then":
        detached = thenCommand(w, detached, args, rendered)
        return true
      default:
        return false
    }
  })
  return { result, rendered: `${rendered.join("\n")}\n` }
}
