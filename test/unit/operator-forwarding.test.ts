/**
 * The operator surface in the core (issue 5): requests forwarded over the
 * mesh to where they run (the primary, or the node they name), the history
 * of failovers and switchovers in the cluster record, demote, dry runs, and
 * the lag a status shows. On the real reducer in the simulated cluster.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { Schema } from "effect"
import { step } from "../../agent/src/core/reducer.ts"
import { withLeader } from "../../agent/src/core/roles.ts"
import type { Output } from "../../agent/src/core/types.ts"
import { historyReply } from "../../agent/src/daemon/control-socket.ts"
import { statusView } from "../../agent/src/daemon/status-view.ts"
import { ClusterRecord, PeerMessage } from "../../shared/peer-messages.ts"
import { dataMembers, World } from "../sim/world.ts"
import { ask } from "../support/operator-ask.ts"

/** A healthy 3-node cluster, 6 s in: db1 primary, db2 and db3 replicas. */
const running = (seed = 4): World => {
  const w = new World({ seed, members: dataMembers(3) })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  return w
}

test("pause on a replica is forwarded to the primary, answered by it, and reaches every node", () => {
  const w = running()
  const r = ask(w, "db2", { _tag: "Pause" })
  assert.equal(r.ok, true, r.message)
  assert.equal(r.answeredBy, "db1")
  assert.match(r.message, /committed as record/)
  w.runUntil(w.now + 1500)
  for (const n of ["db1", "db2", "db3"]) assert.equal(w.node(n).state.hard.record.paused, true, n)
  const back = ask(w, "db3", { _tag: "Resume" })
  assert.equal(back.ok, true, back.message)
  assert.equal(back.answeredBy, "db1")
  w.runUntil(w.now + 1500)
  for (const n of ["db1", "db2", "db3"]) assert.equal(w.node(n).state.hard.record.paused, false, n)
})

test("a request run on the primary itself is answered locally (no answeredBy)", () => {
  const w = running()
  const r = ask(w, "db1", { _tag: "Exclude", node: "db3" })
  assert.equal(r.ok, true, r.message)
  assert.equal(r.answeredBy, null)
})

test("a forward nobody answers is refused after the rpc timeout, naming the target", () => {
  const w = running()
  // db2 can send to db1 but db1's replies never arrive.
  w.net.cut("db1", "db2", "agent")
  const start = w.now
  const r = ask(w, "db2", { _tag: "Pause" })
  assert.equal(r.ok, false)
  assert.match(r.message, /^no reply from db1 within 1s/)
  const waited = w.now - start
  assert.ok(waited >= 1000 && waited < 1200, `refused after ${waited} ms`)
})

test("without a primary a cluster-wide request is refused at once with the election status", () => {
  const w = running()
  const s = withLeader(w.node("db2").state, null, false)
  const r = step(s, {
    _tag: "Operator",
    now: s.now + 1,
    requestId: 7,
    request: { _tag: "Pause" },
  })
  const reply = r.outputs.find((o) => o._tag === "OperatorReply")
  assert.ok(reply !== undefined && reply._tag === "OperatorReply")
  assert.equal(reply.ok, false)
  assert.match(reply.message, /^no primary: election status: /)
  assert.equal(
    r.outputs.some((o) => o._tag === "Send" && o.message._tag === "OperatorRequest"),
    false,
  )
})

test("node requests go to the node they name: rejoin, failover --to, unknown nodes refused", () => {
  const w = running()
  const r = ask(w, "db2", { _tag: "Rejoin", node: "db3", force: false })
  assert.equal(r.answeredBy, "db3")
  assert.match(r.message, /not diverged/)
  const unknown = ask(w, "db2", { _tag: "Demote", node: "db9", source: "db1" })
  assert.equal(unknown.ok, false)
  assert.equal(unknown.message, "unknown node db9")
})

test("demote N --source M runs on N: fences it and repoints it to M; refused unless M is the primary", () => {
  const w = running()
  const wrongSource = ask(w, "db1", { _tag: "Demote", node: "db3", source: "db2" })
  assert.equal(wrongSource.ok, false)
  assert.equal(wrongSource.answeredBy, "db3")
  assert.match(wrongSource.message, /db2 is not the ACTIVE primary/)
  const primary = ask(w, "db2", { _tag: "Demote", node: "db1", source: "db1" })
  assert.equal(primary.ok, false)
  assert.match(primary.message, /db1 is the primary/)
  assert.equal(w.primary(), "db1")
  // db3 made writable by hand (a split brain): demote fences it and keeps it a replica of db1.
  w.makeWritableByHand("db3")
  const s = w.node("db3").state
  const direct = step(s, {
    _tag: "Operator",
    now: s.now + 1,
    requestId: 9,
    request: { _tag: "Demote", node: "db3", source: "db1" },
  })
  const actions = direct.outputs.flatMap((o) => (o._tag === "Mysql" ? [o.action._tag] : []))
  assert.deepEqual(actions.slice(0, 2), ["Fence", "KillSessions"])
  const ok = ask(w, "db2", { _tag: "Demote", node: "db3", source: "db1" })
  assert.equal(ok.ok, true, ok.message)
  assert.equal(ok.answeredBy, "db3")
  assert.match(ok.message, /db3 fenced .*db1/)
  w.runUntil(w.now + 1000)
  const m = w.node("db3").mysqld!
  assert.equal(m.writable, false)
  assert.equal(m.source, "db1")
})

test("errant-gtid --fix --dry-run lists the GTIDs and where they would go, and changes nothing", () => {
  const w = running()
  w.errant("db3")
  w.runUntil(w.now + 1500)
  const errantUuid = w.node("db3").mysqld!.uuid
  const r = ask(w, "db2", { _tag: "FixErrant", dryRun: true })
  assert.equal(r.ok, true, r.message)
  assert.equal(r.answeredBy, "db1")
  assert.match(r.message, /^dry run: would inject empty transactions .+ on db1/)
  assert.ok(
    r.steps.some((x) => x.startsWith("db3 holds ")),
    r.steps.join("\n"),
  )
  w.runUntil(w.now + 1000)
  // Nothing was injected: the primary still lacks db3's own (errant) GTIDs.
  assert.equal(w.node("db1").mysqld!.executed.sids.has(errantUuid), false)
  assert.ok(
    r.steps.some((x) => x.includes(errantUuid)),
    r.steps.join("\n"),
  )
})

test("switchover --dry-run lists every check and step, forwarded to the primary, and changes nothing", () => {
  const w = running()
  const term = w.node("db1").state.hard.term
  const r = ask(w, "db3", { _tag: "Switchover", to: "db2", dryRun: true, drainTimeoutMs: 2000 })
  assert.equal(r.ok, true, `${r.message}\n${r.steps.join("\n")}`)
  assert.equal(r.answeredBy, "db1")
  const text = r.steps.join("\n")
  for (const check of [
    "check pass: db1 is the ACTIVE primary",
    "check pass: db2 is reachable",
    "check pass: db2 is healthy",
    "check pass: db2 is not excluded",
    "check note: db2 has ",
    "block budget",
    "converge, unfenced",
    "check pass: a quorum is reachable: 3 of 3",
    "wait up to 2000 ms for client sessions",
    "super_read_only=ON on db1",
  ])
    assert.ok(text.includes(check), `missing "${check}" in\n${text}`)
  w.runUntil(w.now + 2000)
  assert.equal(w.primary(), "db1")
  assert.equal(w.node("db1").state.hard.term, term)
  const bad = ask(w, "db1", { _tag: "Switchover", to: "db9", dryRun: true, drainTimeoutMs: null })
  assert.equal(bad.ok, false)
  assert.ok(bad.steps.some((x) => x === "check FAIL: db9 is a configured member"))
})

test("switchover --drain-timeout waits for client sessions after the VIP goes and before the fence", () => {
  const w = running()
  const s1 = w.node("db1").state
  // db2 has everything db1 executed: the switchover converges at once.
  const mine = s1.local.probe!.executed
  const s = {
    ...s1,
    peers: new Map(s1.peers).set("db2", {
      ...s1.peers.get("db2")!,
      executed: mine,
      received: mine,
    }),
  }
  const r1 = step(s, {
    _tag: "Operator",
    now: s.now + 1,
    requestId: 5,
    request: { _tag: "Switchover", to: "db2", dryRun: false, drainTimeoutMs: 2500 },
  })
  const hook = r1.outputs.find((o) => o._tag === "RunHook")
  assert.ok(hook !== undefined && hook._tag === "RunHook" && hook.hook === "pre_switchover")
  const r2 = step(r1.state, {
    _tag: "HookDone",
    now: s.now + 2,
    incarnation: s.bootId,
    id: hook.id,
    exitCode: 0,
  })
  const order = r2.outputs.flatMap((o: Output) =>
    o._tag === "Vip" ? [`vip ${o.op}`] : o._tag === "Mysql" ? [o.action._tag] : [],
  )
  assert.deepEqual(order.slice(0, 4), ["vip remove", "DrainSessions", "Fence", "KillSessions"])
  const drain = r2.outputs.find((o) => o._tag === "Mysql" && o.action._tag === "DrainSessions")
  assert.ok(drain?._tag === "Mysql" && drain.action._tag === "DrainSessions")
  assert.equal(drain.action.timeoutMs, 2500)
})

test("a switchover forwarded to the primary completes and is in every node's history, also after a restart", () => {
  const w = running()
  const oldTerm = w.node("db1").state.hard.term
  const r = ask(
    w,
    "db3",
    { _tag: "Switchover", to: "db2", dryRun: false, drainTimeoutMs: null },
    8000,
  )
  assert.equal(r.ok, true, r.message)
  assert.equal(r.answeredBy, "db1")
  w.runUntil(w.now + 3000)
  assert.equal(w.primary(), "db2")
  for (const n of ["db1", "db2", "db3"]) {
    const h = w.node(n).state.hard.record.history
    const last = h.at(-1)
    assert.ok(last !== undefined, `${n} has no history`)
    assert.equal(last.kind, "switchover")
    assert.equal(last.term, oldTerm + 1)
    assert.equal(last.oldPrimary, "db1")
    assert.equal(last.newPrimary, "db2")
    assert.equal(last.reason, "operator request")
    assert.ok(last.durationMs !== null && last.durationMs > 0 && last.durationMs < 3000)
  }
  // The history is in the hard state: a restarted agent still has it.
  w.killAgent("db3", 500)
  w.runUntil(w.now + 3000)
  assert.equal(w.node("db3").state.hard.record.history.at(-1)?.newPrimary, "db2")
  const reply = historyReply(w.node("db3").state)
  assert.equal(reply.history?.at(-1)?.kind, "switchover")
  assert.match(reply.history?.at(-1)?.at ?? "", /^\d{4}-\d\d-\d\dT/)
})

test("a failover is recorded with its reason and duration by the new primary", () => {
  const w = running()
  w.killMysqld("db1", true)
  w.runUntil(w.now + 15_000)
  const p = w.primary()
  assert.ok(p !== null && p !== "db1", `primary ${p}`)
  const last = w.node(p).state.hard.record.history.at(-1)
  assert.ok(last !== undefined)
  assert.equal(last.kind, "failover")
  assert.equal(last.oldPrimary, "db1")
  assert.equal(last.newPrimary, p)
  assert.match(last.reason, /db1/)
  assert.ok(last.durationMs !== null && last.durationMs > 0 && last.durationMs < 15_000)
})

test("the history keeps the last 100 entries", () => {
  const w = running()
  const n = w.node("db1")
  const entry = {
    kind: "failover" as const,
    term: 1,
    atMs: 0,
    reason: "old",
    oldPrimary: null,
    newPrimary: "db1",
    durationMs: null,
  }
  const full = Array.from({ length: 100 }, (_, i) => ({ ...entry, term: i }))
  for (const name of ["db1", "db2", "db3"]) {
    const x = w.node(name)
    x.state = {
      ...x.state,
      hard: { ...x.state.hard, record: { ...x.state.hard.record, history: full } },
    }
  }
  assert.equal(n.state.hard.record.history.length, 100)
  ask(w, "db1", { _tag: "Switchover", to: "db2", dryRun: false, drainTimeoutMs: null }, 8000)
  w.runUntil(w.now + 3000)
  const h = w.node("db2").state.hard.record.history
  assert.equal(h.length, 100)
  assert.equal(h[0]?.term, 1)
  assert.equal(h.at(-1)?.kind, "switchover")
})

test("a hard state written before the history existed loads with an empty history", () => {
  const old = {
    term: 3,
    seq: 2,
    paused: false,
    excluded: [],
    lineage: ["u1"],
    lastFailoverTerm: 0,
    recoveryAcked: false,
    primary: "db1",
    primaryUuid: "u1",
    base: "",
  }
  assert.deepEqual(Schema.decodeUnknownSync(ClusterRecord)(old).history, [])
})

test("forwarding messages are schema-checked and size-bounded", () => {
  const decode = Schema.decodeUnknownExit(PeerMessage)
  const request = {
    _tag: "OperatorRequest",
    from: "db2",
    requestId: 3,
    request: { _tag: "Switchover", to: "db3", dryRun: true, drainTimeoutMs: null },
  }
  assert.equal(decode(request)._tag, "Success")
  assert.equal(decode({ ...request, request: { _tag: "Reload" } })._tag, "Failure")
  const reply = {
    _tag: "OperatorReply",
    from: "db1",
    requestId: 3,
    ok: true,
    message: "x",
    steps: [],
  }
  assert.equal(decode(reply)._tag, "Success")
  assert.equal(decode({ ...reply, message: "x".repeat(20_000) })._tag, "Failure")
  assert.equal(decode({ ...reply, steps: Array(300).fill("s") })._tag, "Failure")
})

test("status shows each replica's lag from its heartbeats", () => {
  const w = running()
  const view = statusView(w.node("db2").state, "c")
  const db1 = view.members.find((m) => m.name === "db1")
  const db3 = view.members.find((m) => m.name === "db3")
  assert.equal(db1?.lagSeconds, null)
  assert.equal(typeof db3?.lagSeconds, "number")
})

test("rejoin N brings back an old primary that auto_rejoin: false keeps waiting", () => {
  const w = new World({ seed: 4, members: dataMembers(3), config: { autoRejoin: false } })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  w.killMysqld("db1", true)
  w.runUntil(w.now + 15_000)
  const p = w.primary()
  assert.ok(p !== null && p !== "db1", `primary ${p}`)
  w.healAll()
  w.runUntil(w.now + 8000)
  const old = w.node("db1").mysqld!
  assert.equal(old.source, null, "auto_rejoin off: the old primary waits")
  const r = ask(w, p, { _tag: "Rejoin", node: "db1", force: false })
  assert.equal(r.ok, true, r.message)
  assert.equal(r.answeredBy, "db1")
  assert.match(r.message, new RegExp(`rejoining as a replica of ${p}`))
  w.runUntil(w.now + 3000)
  assert.equal(old.source, p)
  assert.equal(old.writable, false)
})

test("a reloaded config reaches the core: new timings apply from the next step", () => {
  const w = running()
  const s = w.node("db2").state
  const config = { ...s.config, timings: { ...s.config.timings, probeIntervalMs: 2000 } }
  const r = step(s, { _tag: "Reconfigure", now: s.now + 1, config })
  assert.equal(r.state.config.timings.probeIntervalMs, 2000)
  const later = step(r.state, { _tag: "Tick", now: r.state.nextProbeAt, random: 0.5 })
  // db2 follows a live leader: its probes wait a quarter interval more for the
  // leader's heartbeat to start them (heartbeat.ts followLeaderPhase).
  assert.equal(later.state.nextProbeAt, r.state.nextProbeAt + 2000 * 1.25)
})
