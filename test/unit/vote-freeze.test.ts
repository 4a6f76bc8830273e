/**
 * Issue 10 item 4: a voter that cannot freeze (its IO thread is stuck on a
 * full disk) or that lost received transactions (relay_log_recovery), and
 * the health of a replica whose IO thread is stuck. Checked on the real
 * reducer from states taken out of a running simulation.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import {
  acksSettled,
  decideVote,
  selfEligible,
  type VoteStage,
} from "../../agent/src/core/election.ts"
import { formatGtidSet, singleton, union } from "../../agent/src/core/gtid.ts"
import { buildHeartbeat } from "../../agent/src/core/heartbeat.ts"
import { probeLocal } from "../../agent/src/core/local-probes.ts"
import { becomeFollower } from "../../agent/src/core/roles.ts"
import type { AgentState, Input, MysqlProbe, Output } from "../../agent/src/core/types.ts"
import { dataMembers, World } from "../sim/world.ts"
import { answering } from "../support/probe-answer.ts"
// Each hard state written at once, as the executor reports it (core/durability.ts).
import { stepWritten as step } from "../support/written-step.ts"

/** A healthy 3-node cluster, 6 s in: db1 primary, db2 and db3 replicas. */
const running = (): World => {
  const w = new World({ seed: 4, members: dataMembers(3) })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  return w
}

/** db3 as a voter whose lease promise ran out (the primary is gone). */
const voter = (w: World): AgentState => ({ ...w.node("db3").state, promise: null })

const data = (s: AgentState) => ({
  serverUuid: "",
  received: formatGtidSet(s.local.received),
  backlog: 0,
  errant: "",
  replicationError: null,
})

const request = (s: AgentState, tag: "PreVoteRequest" | "VoteRequest", dt = 1): Input => ({
  _tag: "PeerReceived",
  now: s.now + dt,
  from: "db2",
  message: { _tag: tag, from: "db2", term: s.hard.term + 1, kind: "election", data: data(s) },
})

const replies = (outputs: ReadonlyArray<Output>) =>
  outputs.flatMap((o) =>
    o._tag === "Send" && (o.message._tag === "VoteResponse" || o.message._tag === "PreVoteResponse")
      ? [{ granted: o.message.granted, reason: o.message.reason }]
      : [],
  )

const probed = (s: AgentState, mysql: MysqlProbe, dt = 1): AgentState =>
  step(s, { _tag: "LocalProbed", ...answering(s), now: s.now + dt, result: { _tag: "Up", mysql } })
    .state

const stuckProbe = (s: AgentState): MysqlProbe => {
  const p = s.local.probe!
  return { ...p, replica: { ...p.replica!, ioRunning: true, ioStatus: "Waiting for disk space" } }
}

test("a replica whose IO thread waits for disk space is CRITICAL with its cause and does not stand", () => {
  const w = running()
  let s = w.node("db2").state
  assert.equal(s.local.health.level, "OK")
  const r = step(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + 1,
    result: { _tag: "Up", mysql: stuckProbe(s) },
  })
  s = r.state
  assert.equal(s.local.health.level, "CRITICAL")
  assert.match(s.local.stall ?? "", /Waiting for disk space/)
  const eligible = selfEligible(s)
  assert.equal(eligible.ok, false, "it does not stand")
  assert.match(!eligible.ok ? eligible.why : "", /Waiting for disk space/)
  assert.ok(
    r.outputs.some((o) => o._tag === "Event" && o.event === "replication-stalled"),
    "an event names the cause",
  )
  // It stays CRITICAL while it lasts, whatever the good probes say.
  for (let i = 0; i < 12; i++) s = probed(s, stuckProbe(s), 500)
  assert.equal(s.local.health.level, "CRITICAL")
})

test("health follows the GTID backlog against the primary even when Seconds_Behind_Source is 0", () => {
  const w = running()
  let s = w.node("db2").state
  const primary = s.peers.get("db1")!
  const uuid = w.node("db1").mysqld!.uuid
  const last = primary.executed.sids.get(uuid)!.at(-1)!.end
  // The primary has 1,700 more transactions than this replica will ever execute here.
  const ahead = union(primary.executed, singleton(uuid, last + 1, last + 1700))
  s = { ...s, peers: new Map(s.peers).set("db1", { ...primary, executed: ahead }) }
  const p = s.local.probe!
  const behind: MysqlProbe = { ...p, replica: { ...p.replica!, lagSeconds: 0 } }
  s = probed(s, behind) // takes the mark
  for (let t = 0; t < 12_000; t += 500) s = probed(s, behind, 500)
  assert.equal(s.local.health.level, "WARN", "12 s behind: WARN (lag_warn 10 s)")
})

test("a voter that lost its relay log refuses the PreVote for the same reason as the vote", () => {
  const w = running()
  const s: AgentState = { ...voter(w), local: { ...voter(w).local, resyncNeeded: true } }
  const pre = replies(step(s, request(s, "PreVoteRequest")).outputs)
  assert.equal(pre[0]?.granted, false)
  assert.match(pre[0]?.reason ?? "", /relay logs/)
  const vote = decideVote(s, "db2", "election", data(s), "frozen")
  assert.equal(vote.ok, false)
  assert.equal(!vote.ok && vote.why, pre[0]?.reason)
})

test("a voter whose freeze timed out refuses the vote, and the PreVotes while its STOP is pending", () => {
  const w = running()
  let s = voter(w)
  let r = step(s, request(s, "VoteRequest"))
  const freeze = r.outputs.find((o) => o._tag === "Mysql" && o.action._tag === "StopReplicaIo")
  assert.ok(freeze !== undefined && freeze._tag === "Mysql")
  // The STOP hangs; probes still show the IO thread running.
  s = r.state
  const p = step(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + s.config.timings.rpcTimeoutMs + 10,
    result: { _tag: "Up", mysql: s.local.probe! },
  })
  r = step(p.state, { _tag: "Tick", now: p.state.now + 1, random: 0.5 })
  s = r.state
  const [vote] = replies([...p.outputs, ...r.outputs])
  assert.equal(vote?.granted, false)
  assert.match(vote?.reason ?? "", /could not stop replication in time/)
  assert.equal(s.local.freezeStuck, true)
  // Next term: the PreVote is refused too, so no term is started for nothing.
  const pre = replies(step(s, request(s, "PreVoteRequest")).outputs)
  assert.equal(pre[0]?.granted, false)
  assert.match(pre[0]?.reason ?? "", /could not stop replication in time/)
  // The STOP finally ends: the next vote may try to freeze again.
  s = step(s, {
    _tag: "MysqlDone",
    now: s.now + 2,
    incarnation: s.bootId,
    id: freeze.id,
    ok: true,
    error: null,
  }).state
  assert.equal(s.local.freezeStuck, false)
  const again = replies(step(s, request(s, "PreVoteRequest")).outputs)
  assert.equal(again[0]?.granted, true, again[0]?.reason)
})

test("a voter whose IO thread is stuck on a full disk refuses the PreVote: it could not freeze", () => {
  const w = running()
  let s = voter(w)
  s = probed(s, stuckProbe(s))
  const pre = replies(step(s, request(s, "PreVoteRequest")).outputs)
  assert.equal(pre[0]?.granted, false)
  assert.match(pre[0]?.reason ?? "", /Waiting for disk space/)
})

test("PreVote refuses whatever the frozen vote refuses, for the same reason", () => {
  const w = running()
  const base = voter(w)
  const p = base.local.probe!
  const variants: ReadonlyArray<[string, AgentState]> = [
    ["healthy", base],
    ["resync", { ...base, local: { ...base.local, resyncNeeded: true } }],
    ["mysqld down", { ...base, local: { ...base.local, up: false } }],
    ["stalled", probed(base, stuckProbe(base))],
    ["paused", { ...base, hard: { ...base.hard, record: { ...base.hard.record, paused: true } } }],
  ]
  for (const [name, s] of variants) {
    const frozen: AgentState = {
      ...s,
      // The frozen probe: IO thread stopped (a stalled one would never get there).
      local: {
        ...s.local,
        probe: { ...p, replica: { ...p.replica!, ioRunning: false } },
        up: s.local.up,
      },
    }
    const stages: ReadonlyArray<[VoteStage, AgentState]> = [
      ["pre", s],
      ["frozen", frozen],
    ]
    const [pre, vote] = stages.map(([stage, st]) =>
      decideVote(st, "db2", "election", data(st), stage),
    )
    if (name === "stalled") {
      // The freeze itself would time out: the vote is refused as "unfrozen".
      const unfrozen = decideVote(s, "db2", "election", data(s), "unfrozen")
      assert.equal(pre!.ok, false, name)
      assert.equal(unfrozen.ok, false, name)
      continue
    }
    assert.equal(
      pre!.ok,
      vote!.ok,
      `${name}: pre-vote ${JSON.stringify(pre)} vote ${JSON.stringify(vote)}`,
    )
    if (!pre!.ok && !vote!.ok) assert.equal(pre!.why, vote!.why, name)
  }
})

test("relay_log_recovery OFF: a replica's mysqld crash keeps it a voter when its relay log survived", () => {
  const w = running()
  let s = w.node("db3").state
  const p: MysqlProbe = { ...s.local.probe!, relayLogRecovery: false }
  s = probed(s, p)
  const before = s.local.received
  s = step(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + 500,
    result: { _tag: "Down", reason: "killed", hung: false },
  }).state
  assert.equal(s.local.resyncNeeded, false, "no resync for a relay log that survives")
  // Back with everything it had received: still no resync.
  const kept = probed(s, p, 2000)
  assert.equal(kept.local.resyncNeeded, false)
  // Back without part of it (an OS crash, say): resync.
  const uuid = w.node("db1").mysqld!.uuid
  const last = before.sids.get(uuid)!.at(-1)!.end
  const shorter: MysqlProbe = {
    ...p,
    executed: singleton(uuid, 1, last - 2),
    replica: { ...p.replica!, retrieved: singleton(uuid, 1, last - 2) },
  }
  const lost = probed(s, shorter, 2000)
  assert.equal(lost.local.resyncNeeded, true)
})

test("relay_log_recovery ON: a replica's mysqld crash while receiving still needs a resync", () => {
  const w = running()
  let s = w.node("db3").state
  s = probed(s, { ...s.local.probe!, relayLogRecovery: true })
  s = step(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + 500,
    result: { _tag: "Down", reason: "killed", hung: false },
  }).state
  assert.equal(s.local.resyncNeeded, true)
})

test("failover --force: a voter waives its lost relay log and a freeze that does not complete, and says so", () => {
  const w = running()
  const base = voter(w)
  const forced = (s: AgentState): Input => {
    const r = request(s, "VoteRequest")
    return r._tag === "PeerReceived" && r.message._tag === "VoteRequest"
      ? { ...r, message: { ...r.message, kind: "forced" } }
      : r
  }
  // Lost relay log: the forced vote is granted (the election one is not).
  const resync: AgentState = { ...base, local: { ...base.local, resyncNeeded: true } }
  assert.equal(decideVote(resync, "db2", "election", data(resync), "frozen").ok, false)
  assert.equal(decideVote(resync, "db2", "forced", data(resync), "frozen").ok, true)
  // A freeze that times out: granted, with a warning naming what may be lost.
  let r = step(base, forced(base))
  const p = step(r.state, {
    _tag: "LocalProbed",
    ...answering(r.state),
    now: r.state.now + base.config.timings.rpcTimeoutMs + 10,
    result: { _tag: "Up", mysql: base.local.probe! },
  })
  r = step(p.state, { _tag: "Tick", now: p.state.now + 1, random: 0.5 })
  const outputs = [...p.outputs, ...r.outputs]
  assert.equal(replies(outputs)[0]?.granted, true, replies(outputs)[0]?.reason)
  assert.ok(outputs.some((o) => o._tag === "Event" && o.event === "forced-vote"))
})

test("relay_log_recovery ON: a frozen voter (IO thread stopped) killed with unapplied transactions needs a resync too", () => {
  const w = running()
  let s = w.node("db3").state
  const p = s.local.probe!
  const uuid = w.node("db1").mysqld!.uuid
  const last = p.executed.sids.get(uuid)!.at(-1)!.end
  // Frozen: IO thread stopped, 5 received transactions not applied yet.
  const frozen: MysqlProbe = {
    ...p,
    relayLogRecovery: true,
    executed: singleton(uuid, 1, last - 5),
    replica: { ...p.replica!, ioRunning: false, retrieved: singleton(uuid, 1, last) },
  }
  s = probed(s, frozen)
  s = step(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + 500,
    result: { _tag: "Down", reason: "killed", hung: false },
  }).state
  assert.equal(s.local.resyncNeeded, true, "the restart discards what it had not applied")
  // Caught up (IO stopped, nothing unapplied): nothing to lose.
  let t = w.node("db2").state
  const q = t.local.probe!
  t = probed(t, {
    ...q,
    relayLogRecovery: true,
    replica: { ...q.replica!, ioRunning: false, retrieved: q.executed },
  })
  t = step(t, {
    _tag: "LocalProbed",
    ...answering(t),
    now: t.now + 500,
    result: { _tag: "Down", reason: "killed", hung: false },
  }).state
  assert.equal(t.local.resyncNeeded, false)
})

test("a mysqld that only stopped answering (uptime ran on) lost nothing; one that restarted did", () => {
  const w = running()
  let s = w.node("db3").state
  const p: MysqlProbe = { ...s.local.probe!, relayLogRecovery: true, uptimeSeconds: 100 }
  s = probed(s, p)
  s = step(s, {
    _tag: "LocalProbed",
    ...answering(s),
    now: s.now + 1000,
    result: { _tag: "Down", reason: "timeout", hung: true },
  }).state
  assert.equal(s.local.resyncNeeded, true, "while it does not answer, assume the worst")
  const hung = probed(s, { ...p, uptimeSeconds: 130 }, 30_000)
  assert.equal(hung.local.resyncNeeded, false, "it never restarted: its relay log is intact")
  const restarted = probed(s, { ...p, uptimeSeconds: 3 }, 30_000)
  assert.equal(restarted.local.resyncNeeded, true)
})

test("a voter stuck on a full disk votes without freezing once the source it acknowledges to, no longer leading, reports its mysqld refused", () => {
  const w = running()
  let s = probed(voter(w), stuckProbe(voter(w)))
  assert.equal(s.local.probe?.replica?.source, "db1")
  // db1's agent: its mysqld refuses connections.
  const primary = w.node("db1").state
  const down = (leader: string | null, t: number): Input => ({
    _tag: "PeerReceived",
    now: t,
    from: "db1",
    message: {
      ...buildHeartbeat(
        {
          ...becomeFollower(primary, { leader, leaderActive: false }),
          local: { ...primary.local, up: false, hung: false, refused: true },
        },
        99,
      ),
    },
  })
  const pre = () => replies(step(s, request(s, "PreVoteRequest")).outputs)[0]
  // Still leading (its agent may restart mysqld and reopen it): no waiver.
  s = step(s, down("db1", s.now + 1)).state
  assert.equal(s.peers.get("db1")?.quietSince, null)
  assert.equal(pre()?.granted, false)
  // Resigned (leader null): quiet from now, but the last probe predates the report.
  s = step(s, {
    _tag: "PeerReceived",
    now: s.now + 1,
    from: "db1",
    message: { _tag: "Resign", from: "db1", term: s.hard.term, reason: "mysqld down" },
  }).state
  s = step(s, down(null, s.now + 1)).state
  assert.equal(acksSettled(s), false, "a probe taken before the report does not bound the acks")
  assert.match(pre()?.reason ?? "", /Waiting for disk space/)
  // Answered after the report, but sent before it: no bound either.
  s = probed(s, stuckProbe(s))
  assert.equal(acksSettled(s), false, "a probe sent before the report, answered after it")
  // A probe sent after the report: granted, and the vote does not issue the STOP that would hang.
  s = probed(probeLocal(s, []), stuckProbe(s))
  assert.equal(acksSettled(s), true)
  assert.equal(pre()?.granted, true, pre()?.reason)
  const r = step(s, request(s, "VoteRequest"))
  assert.ok(!r.outputs.some((o) => o._tag === "Mysql" && o.action._tag === "StopReplicaIo"))
  assert.equal(replies(r.outputs)[0]?.granted, true, replies(r.outputs)[0]?.reason)
  // A candidate that lacks what the stuck voter received is still refused.
  const lacking: Input = {
    ...request(s, "VoteRequest"),
  }
  if (lacking._tag === "PeerReceived" && lacking.message._tag === "VoteRequest") {
    const m = { ...lacking.message, data: { ...lacking.message.data, received: "" } }
    assert.equal(replies(step(s, { ...lacking, message: m }).outputs)[0]?.granted, false)
  }
  // A hung mysqld (probe timed out) may still hold waiting commits: not quiet.
  const hung: AgentState = {
    ...becomeFollower(primary, { leader: null, leaderActive: false }),
    local: { ...primary.local, up: false, hung: true, refused: false },
  }
  assert.equal(buildHeartbeat(hung, 1).observation?.quiet, false)
})

test("failover --force: a voter whose mysqld does not answer (wedged by a full disk) votes with the data it last reported, and says so", () => {
  const w = running()
  const base = voter(w)
  const down: AgentState = { ...base, local: { ...base.local, up: false, hung: true } }
  const vote = (s: AgentState, kind: "election" | "forced", received?: string): Input => {
    const r = request(s, "VoteRequest")
    return r._tag === "PeerReceived" && r.message._tag === "VoteRequest"
      ? {
          ...r,
          message: {
            ...r.message,
            kind,
            data: { ...r.message.data, received: received ?? r.message.data.received },
          },
        }
      : r
  }
  const election = replies(step(down, vote(down, "election")).outputs)[0]
  assert.equal(election?.granted, false)
  assert.match(election?.reason ?? "", /mysqld is down/)
  const r = step(down, vote(down, "forced"))
  assert.ok(!r.outputs.some((o) => o._tag === "Mysql" && o.action._tag === "StopReplicaIo"))
  assert.equal(replies(r.outputs)[0]?.granted, true, replies(r.outputs)[0]?.reason)
  assert.ok(r.outputs.some((o) => o._tag === "Event" && o.event === "forced-vote"))
  // Still refused to a candidate lacking what it last reported.
  const lacking = replies(step(down, vote(down, "forced", "")).outputs)[0]
  assert.equal(lacking?.granted, false)
})

test("a voter decides on a probe sent after its IO thread stopped, not on one sent before that answers later", () => {
  const w = running()
  const s0 = voter(w)
  // A periodic probe is out when the vote request arrives.
  const periodic = probeLocal(s0, [])
  const periodicProbe = answering(periodic).probe
  const asked = step(periodic, request(periodic, "VoteRequest"))
  const stop = asked.outputs.find((o) => o._tag === "Mysql" && o.action._tag === "StopReplicaIo")
  assert.ok(stop?._tag === "Mysql", "the vote freezes the IO thread first")
  const frozen = step(asked.state, {
    _tag: "MysqlDone",
    now: asked.state.now + 5,
    incarnation: asked.state.bootId,
    id: stop.id,
    ok: true,
    error: null,
  })
  assert.equal(replies(frozen.outputs).length, 0)
  const own = frozen.outputs.find((o) => o._tag === "ProbeLocal")
  assert.ok(own?._tag === "ProbeLocal" && own.probe > periodicProbe)
  // The periodic probe answers now, IO thread stopped in what it read: it was sent before the
  // STOP ended (the relay log may have grown after it), so it decides nothing.
  const p = frozen.state.local.probe!
  const stopped: MysqlProbe = { ...p, replica: { ...p.replica!, ioRunning: false } }
  const early = step(frozen.state, {
    _tag: "LocalProbed",
    now: frozen.state.now + 1,
    incarnation: frozen.state.bootId,
    probe: periodicProbe,
    result: { _tag: "Up", mysql: stopped },
  })
  assert.equal(replies(early.outputs).length, 0, "no vote on a probe sent before the freeze")
  const late = step(early.state, {
    _tag: "LocalProbed",
    now: early.state.now + 1,
    incarnation: early.state.bootId,
    probe: own.probe,
    result: { _tag: "Up", mysql: stopped },
  })
  assert.equal(replies(late.outputs)[0]?.granted, true, replies(late.outputs)[0]?.reason)
})
