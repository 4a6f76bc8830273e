/**
 * Membership change online (issue 15 item 1, core/members.ts and
 * member-change.ts): the member list in the cluster record, counted from
 * acceptance; the ACTIVE primary's refusals; votes counted under the highest
 * record's list; a removed member that leaves; the strict wait count. On the
 * real reducer, in the simulated cluster or on states built from it.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { Schema } from "effect"
import { nextRecord } from "../../agent/src/core/cluster-record.ts"
import { quorum } from "../../agent/src/core/config.ts"
import { roundAcked, roundSent } from "../../agent/src/core/lease.ts"
import {
  checkMemberChange,
  fileDisagreement,
  syncMembers,
  toRecordMember,
  votesWin,
  wantedWaitCount,
} from "../../agent/src/core/members.ts"
import { step } from "../../agent/src/core/reducer.ts"
import type { AgentState, Output } from "../../agent/src/core/types.ts"
import { legacyHardState } from "../../agent/src/daemon/hard-state-format.ts"
import type { ClusterRecord, RecordMember } from "../../shared/peer-messages.ts"
import { ClusterRecord as ClusterRecordSchema } from "../../shared/peer-messages.ts"
import { dataMembers, World } from "../sim/world.ts"
import { ask } from "../support/operator-ask.ts"

const member = (name: string, kind: "data" | "witness" = "data"): RecordMember => ({
  name,
  kind,
  address: `10.0.0.${name.length}`,
  agentPort: 7878,
  mysqlPort: 3306,
  priority: 0,
  promotable: kind === "data",
})

/** A healthy cluster of `n` data members, 6 s in, db1 primary; `spares` hosts beside. */
const running = (n: number, spares = 0, seed = 4): World => {
  const w = new World({
    seed,
    members: dataMembers(n),
    ...(spares > 0
      ? {
          spares: Array.from({ length: spares }, (_, i) => ({
            name: `db${n + i + 1}`,
            priority: 10,
            promotable: true,
            kind: "data" as const,
          })),
        }
      : {}),
  })
  w.runUntil(6000)
  assert.equal(w.primary(), "db1")
  return w
}

const names = (s: AgentState): string => s.config.members.map((m) => m.name).join(",")

/** One input straight into the reducer. */
const apply = (s: AgentState, input: Parameters<typeof step>[1]) => step(s, input)

const replyOf = (outputs: ReadonlyArray<Output>) => {
  const r = outputs.find((o) => o._tag === "OperatorReply")
  assert.ok(r !== undefined && r._tag === "OperatorReply", "no operator reply")
  return r
}

test("the refusals: paused, anti-flap block, uncommitted record, the primary itself, names, too few replicas for strict", () => {
  const w = running(3)
  const s = w.node("db1").state
  assert.deepEqual(checkMemberChange(s, { _tag: "Add", member: member("db4") }).ok, true)
  const refused = (state: AgentState, change: Parameters<typeof checkMemberChange>[1]) => {
    const v = checkMemberChange(state, change)
    assert.equal(v.ok, false, JSON.stringify(change))
    return v.ok ? "" : v.why
  }
  const paused = { ...s, hard: { ...s.hard, record: { ...s.hard.record, paused: true } } }
  assert.match(refused(paused, { _tag: "Add", member: member("db4") }), /paused: resume first/)
  const blocked: AgentState = {
    ...s,
    hard: {
      ...s.hard,
      record: { ...s.hard.record, lastFailoverTerm: s.hard.term, recoveryAcked: false },
    },
    recoveryBlock: { term: s.hard.term, until: s.now + 60_000 },
  }
  assert.match(refused(blocked, { _tag: "Add", member: member("db4") }), /anti-flap block/)
  const uncommitted: AgentState = {
    ...s,
    hard: { ...s.hard, record: nextRecord(s.hard.record, s.hard.term, { paused: false }) },
  }
  assert.match(
    refused(uncommitted, { _tag: "Add", member: member("db4") }),
    /not committed yet \(a change is in progress\)/,
  )
  assert.match(
    refused(s, { _tag: "Remove", node: "db1" }),
    /db1 is the ACTIVE primary: switch over to another node first/,
  )
  assert.match(refused(s, { _tag: "Remove", node: "db9" }), /db9 is not a member/)
  assert.match(refused(s, { _tag: "Add", member: member("db2") }), /db2 is already a member/)
  assert.match(refused(s, { _tag: "Add", member: member("bad name") }), /invalid member name/)
  // Strict: 3 data members and 3 witnesses need 2 acknowledgements (db2 and db3 send them);
  // a fourth witness makes 7 members, whose commits wait for 3: only 2 replicas could.
  const mixed = new World({
    seed: 4,
    members: dataMembers(3, 3),
    config: { initialPrimary: "db1" },
  })
  mixed.runUntil(6000)
  assert.equal(mixed.primary(), "db1")
  const t = mixed.node("db1").state
  assert.match(
    refused(t, { _tag: "Add", member: member("w4", "witness") }),
    /semi-sync strict with 7 members would wait for 3 acknowledgements per commit, but only 2 data replicas could send them/,
  )
  // A data member being added has no data yet: it does not count as a replica either.
  assert.match(
    refused(t, { _tag: "Add", member: member("db4") }),
    /with 7 members would wait for 3 acknowledgements per commit, but only 2 data replicas/,
  )
  // Removing a witness first (6 -> 5 members: 2 acknowledgements) is allowed.
  assert.equal(checkMemberChange(t, { _tag: "Remove", node: "w3" }).ok, true)
  // Removing a data member counts it as a possible acknowledger until it left: from 3 data
  // members, removing db3 leaves 2 members (1 acknowledgement: db3's own or db2's) - allowed.
  assert.equal(checkMemberChange(s, { _tag: "Remove", node: "db3" }).ok, true)
  // With db2 already removed and not yet left, removing db3 too needs 0 + 2 strays: refused.
  assert.match(
    refused({ ...s, removedNotLeft: ["db2"] }, { _tag: "Remove", node: "db3" }),
    /for removed members that may still replicate: db2, db3/,
  )
})

test("member add runs on the primary only; committed, it counts on every node", () => {
  const w = running(3, 1)
  const elsewhere = ask(w, "db3", { _tag: "MemberAdd", member: member("db4") })
  assert.equal(elsewhere.ok, false)
  assert.equal(elsewhere.message, "member change refused: not the primary; ask db1")
  const r = ask(w, "db1", { _tag: "MemberAdd", member: member("db4") })
  assert.equal(r.ok, true, r.message)
  assert.equal(r.answeredBy, null)
  assert.match(r.message, /db4 \(data\) added to the members; committed as record/)
  assert.match(r.message, / {2}members:\n {4}- name: db1\n/)
  assert.match(r.message, / {4}- name: db4\n {6}address: 10\.0\.0\.3\n/)
  w.runUntil(w.now + 1000)
  for (const n of ["db1", "db2", "db3"]) {
    const s = w.node(n).state
    assert.equal(names(s), "db1,db2,db3,db4", n)
    assert.equal(quorum(s.config), 3, n)
  }
  // A second change while none is pending is accepted; a change right after one is
  // proposed (before it commits) is refused.
  const s = w.node("db1").state
  const first = apply(s, {
    _tag: "Operator",
    now: s.now + 1,
    requestId: 41,
    request: { _tag: "MemberRemove", node: "db4" },
  })
  const second = apply(first.state, {
    _tag: "Operator",
    now: s.now + 2,
    requestId: 42,
    request: { _tag: "MemberAdd", member: member("db5") },
  })
  assert.match(replyOf(second.outputs).message, /^member change refused: the previous change/)
  assert.equal(replyOf(second.outputs).ok, false)
  const pause = apply(first.state, {
    _tag: "Operator",
    now: s.now + 2,
    requestId: 43,
    request: { _tag: "Pause" },
  })
  assert.match(replyOf(pause.outputs).message, /a cluster record change is in progress/)
})

test("the new list counts from acceptance, before commit; a higher record without it reverts it", () => {
  const w = running(3)
  const s = w.node("db2").state
  assert.equal(names(s), "db1,db2,db3")
  const grown = nextRecord(s.hard.record, s.hard.term, {
    members: [...s.config.members.map(toRecordMember), member("db4")],
  })
  const r = apply(s, {
    _tag: "PeerReceived",
    now: s.now + 1,
    from: "db1",
    message: { _tag: "RecordAppend", from: "db1", term: s.hard.term, record: grown },
  })
  assert.equal(names(r.state), "db1,db2,db3,db4")
  assert.equal(quorum(r.state.config), 3)
  // It is persisted before it is acknowledged, and the ack is sent.
  const kinds = r.outputs.map((o) => o._tag)
  assert.ok(kinds.includes("PersistHardState"))
  // A new leader of a higher term whose record lacks the change: the file's list again.
  const reverted = nextRecord(s.hard.record, s.hard.term + 1, {})
  const back = apply(r.state, {
    _tag: "PeerReceived",
    now: s.now + 2,
    from: "db3",
    message: { _tag: "RecordAppend", from: "db3", term: s.hard.term + 1, record: reverted },
  })
  assert.equal(names(back.state), "db1,db2,db3")
  assert.equal(back.state.config.members.length, 3)
})

test("votes are counted under the list of the highest record among the candidate's and its voters'", () => {
  const w = running(5)
  const s = w.node("db3").state
  const four = nextRecord(s.hard.record, s.hard.term, {
    members: s.config.members.filter((m) => m.name !== "db5").map(toRecordMember),
  })
  // db3 still counts 5 members: db3, db4, db5 are a majority of its list.
  assert.equal(votesWin(s, new Set(["db3", "db4", "db5"]), [s.hard.record]), true)
  // db4 voted with the record that removed db5: under it only db3 and db4 count, 2 of 4.
  assert.equal(votesWin(s, new Set(["db3", "db4", "db5"]), [four]), false)
  assert.equal(votesWin(s, new Set(["db3", "db4", "db2"]), [four]), true)
  // A candidate its highest list leaves out never wins.
  const without3 = nextRecord(s.hard.record, s.hard.term, {
    members: s.config.members.filter((m) => m.name !== "db3").map(toRecordMember),
  })
  assert.equal(votesWin(s, new Set(["db1", "db2", "db3", "db4", "db5"]), [without3]), false)
})

test("a removed member stops replicating, refuses votes and stands for nothing; its messages are dropped", () => {
  const w = running(4)
  const r = ask(w, "db1", { _tag: "MemberRemove", node: "db4" })
  assert.equal(r.ok, true, r.message)
  w.runUntil(w.now + 2000)
  const gone = w.node("db4")
  assert.equal(names(gone.state), "db1,db2,db3")
  assert.equal(gone.mysqld?.ioRunning, false, "db4's IO thread stopped")
  assert.equal(gone.state.removedNoticed, true)
  // It refuses a vote request (its own list leaves it out).
  const s = gone.state
  const vote = apply(s, {
    _tag: "PeerReceived",
    now: s.now + 1,
    from: "db2",
    message: {
      _tag: "VoteRequest",
      from: "db2",
      term: s.hard.term + 1,
      kind: "election",
      data: { executed: "", retrieved: "", backlog: 0, priority: 0, uuid: "" },
    } as never,
  })
  const answers = vote.outputs.filter(
    (o) => o._tag === "Send" && o.message._tag === "VoteResponse" && o.message.granted,
  )
  assert.equal(answers.length, 0)
  // The members drop its messages: a heartbeat from db4 leaves db2's view untouched.
  const d2 = w.node("db2").state
  const seen = d2.peers.get("db4")?.lastHeardAt
  const hb = apply(d2, {
    _tag: "PeerReceived",
    now: d2.now + 5,
    from: "db4",
    message: {
      _tag: "Heartbeat",
      from: "db4",
      bootId: "x",
      term: d2.hard.term + 5,
      leader: "db4",
      round: 1,
      active: true,
      observation: null,
      probedPrimary: null,
      primaryReachable: null,
      primaryFenced: null,
      heardFrom: [],
    } as never,
  })
  assert.equal(hb.state.hard.term, d2.hard.term, "a non-member's higher term is not adopted")
  assert.equal(hb.state.peers.get("db4")?.lastHeardAt, seen)
  assert.equal(hb.outputs.filter((o) => o._tag === "Send").length, 0)
})

test("the lease counts only members' acknowledgements (a non-member's are dropped before, and not counted here)", () => {
  const w = running(3)
  const s = w.node("db1").state
  assert.ok(s.role._tag === "Leader")
  const round = s.round + 100
  const lease = roundSent({ ...s.role.lease, validUntil: 0 }, round, s.now)
  // db9 is no member: with db1 itself it is not 2 of 3.
  assert.equal(roundAcked(lease, s.config, round, "db9").validUntil, 0)
  assert.ok(roundAcked(lease, s.config, round, "db2").validUntil > s.now)
  // In the reducer a non-member's acknowledgement does not even get there.
  const leader: AgentState = { ...s, role: { ...s.role, lease } }
  const stranger = apply(leader, {
    _tag: "PeerReceived",
    now: s.now + 1,
    from: "db9",
    message: { _tag: "HeartbeatAck", from: "db9", term: s.hard.term, round },
  })
  assert.ok(stranger.state.role._tag === "Leader" && stranger.state.role.lease.validUntil === 0)
})

test("the strict wait count: what the list needs, one more per removed member not yet left, the higher need during a change", () => {
  const w = running(5)
  const s = syncMembers(w.node("db1").state)
  assert.equal(wantedWaitCount(s), 2)
  const four = (strays: ReadonlyArray<string>) =>
    syncMembers({
      ...s,
      hard: {
        ...s.hard,
        record: {
          ...s.hard.record,
          members: s.config.members.filter((m) => m.name !== "db5").map(toRecordMember),
        },
      },
      removedNotLeft: strays,
    })
  assert.equal(wantedWaitCount(four([])), 1)
  // db5 may still acknowledge: 1 member acknowledgement is needed, plus db5's.
  assert.equal(wantedWaitCount(four(["db5"])), 2)
  // Three members: one member acknowledgement plus the stray.
  const three = syncMembers({
    ...s,
    hard: {
      ...s.hard,
      record: {
        ...s.hard.record,
        members: s.config.members.slice(0, 3).map(toRecordMember),
      },
    },
    removedNotLeft: ["db4"],
  })
  assert.equal(wantedWaitCount(three), 2)
  // Two members: no quorum forms without the primary, one acknowledgement stays enough.
  const two = syncMembers({
    ...s,
    hard: {
      ...s.hard,
      record: { ...s.hard.record, members: s.config.members.slice(0, 2).map(toRecordMember) },
    },
    removedNotLeft: ["db3"],
  })
  assert.equal(wantedWaitCount(two), 1)
})

test("growing 4 -> 5 raises the wait count before the record with 5 members goes out", () => {
  const w = running(4, 1)
  const s = w.node("db1").state
  assert.equal(s.local.probe?.semiSyncWaitCount, 1)
  const r = apply(s, {
    _tag: "Operator",
    now: s.now + 1,
    requestId: 5,
    request: { _tag: "MemberAdd", member: member("db5") },
  })
  const raise = r.outputs.findIndex(
    (o) =>
      o._tag === "Mysql" && o.action._tag === "SetSemiSync" && o.action.waitForReplicaCount === 2,
  )
  assert.ok(raise >= 0, "the wait count is raised to 2")
  assert.equal(
    r.outputs.some((o) => o._tag === "Send" && o.message._tag === "RecordAppend"),
    false,
    "no record before the raise shows in a probe",
  )
  assert.equal(names(r.state), "db1,db2,db3,db4", "the 5-member list does not count yet")
  // In the world: once raised, the record goes out and commits; db1's mysqld waits for 2.
  const done = ask(w, "db1", { _tag: "MemberAdd", member: member("db5") })
  assert.equal(done.ok, true, done.message)
  assert.equal(w.node("db1").mysqld?.semiSyncWaitCount, 2)
})

test("the wait count is never lowered while a commit waits for an acknowledgement", () => {
  const w = running(5)
  const r = ask(w, "db1", { _tag: "MemberRemove", node: "db5" })
  assert.equal(r.ok, true, r.message)
  const s = w.node("db1").state
  const probe = s.local.probe
  assert.ok(probe !== null)
  // db5 left: one acknowledgement is what 4 members need; with a commit waiting, db1 keeps 2.
  const waiting: AgentState = {
    ...s,
    removedNotLeft: [],
    local: { ...s.local, probe: { ...probe, semiSyncWaitCount: 2, semiSyncWaiters: 1 } },
  }
  const held = apply(waiting, { _tag: "Tick", now: s.now + 1, random: 0.5 })
  assert.equal(
    held.outputs.some((o) => o._tag === "Mysql" && o.action._tag === "SetSemiSync"),
    false,
  )
  const idle: AgentState = {
    ...waiting,
    local: { ...waiting.local, probe: { ...probe, semiSyncWaitCount: 2, semiSyncWaiters: 0 } },
  }
  const lowered = apply(idle, { _tag: "Tick", now: s.now + 1, random: 0.5 })
  assert.ok(
    lowered.outputs.some(
      (o) =>
        o._tag === "Mysql" && o.action._tag === "SetSemiSync" && o.action.waitForReplicaCount === 1,
    ),
  )
})

test("the config file's members disagreeing with the record's list are named (config-members-stale)", () => {
  const w = running(3, 1)
  const r = ask(w, "db1", { _tag: "MemberAdd", member: member("db4") })
  assert.equal(r.ok, true, r.message)
  const s = w.node("db2").state
  assert.equal(fileDisagreement(s), "lacks db4(data)")
  // A reload with the printed block: nothing to say, and the record's list still counts.
  const file = { ...s.config, members: s.config.members }
  const reloaded = apply(s, { _tag: "Reconfigure", now: s.now + 1, config: file })
  assert.equal(fileDisagreement(reloaded.state), null)
  assert.equal(names(reloaded.state), "db1,db2,db3,db4")
  // A reload with the old file: the list still counts, and the warning is given.
  const old = { ...s.config, members: s.config.members.slice(0, 3) }
  const stale = apply(reloaded.state, { _tag: "Reconfigure", now: s.now + 2, config: old })
  assert.equal(names(stale.state), "db1,db2,db3,db4")
  assert.ok(stale.outputs.some((o) => o._tag === "Event" && o.event === "config-members-stale"))
})

test("the hard-state file keeps its 1.0 form until the record lists members; records without the field decode", () => {
  const w = running(3)
  const record = w.node("db1").state.hard.record
  const encoded = (r: ClusterRecord) =>
    Schema.encodeSync(ClusterRecordSchema)(r) as unknown as Record<string, unknown>
  const doc = (r: ClusterRecord) => ({ term: 1, votedFor: null, record: encoded(r) })
  const legacy = legacyHardState(doc(record)) as { record: Record<string, unknown> } | undefined
  assert.ok(legacy !== undefined, "no member list: the 1.0 form")
  assert.equal("members" in legacy.record, false)
  const listed = { ...record, members: [member("db1"), member("db2"), member("db3")] }
  assert.equal(legacyHardState(doc(listed)), undefined, "a member list: 2.0")
  // A record written before the field existed decodes with no list.
  const { members: _, ...old } = encoded(record)
  const decoded = Schema.decodeUnknownSync(ClusterRecordSchema)(old)
  assert.equal(decoded.members, null)
})

test("shrinking 4 -> 3 raises the wait count to 2 before the removal goes out, and lowers it once the member left", () => {
  const w = running(4)
  const s = w.node("db1").state
  assert.equal(s.local.probe?.semiSyncWaitCount, 1)
  const r = apply(s, {
    _tag: "Operator",
    now: s.now + 1,
    requestId: 6,
    request: { _tag: "MemberRemove", node: "db4" },
  })
  // db4 may still acknowledge after it is no member: 1 member acknowledgement is needed, plus its.
  assert.ok(
    r.outputs.some(
      (o) =>
        o._tag === "Mysql" && o.action._tag === "SetSemiSync" && o.action.waitForReplicaCount === 2,
    ),
  )
  assert.equal(
    r.outputs.some((o) => o._tag === "Send" && o.message._tag === "RecordAppend"),
    false,
  )
  const done = ask(w, "db1", { _tag: "MemberRemove", node: "db4" })
  assert.equal(done.ok, true, done.message)
  // db4 hears of it, stops its IO thread, says so in its heartbeat: back to 1.
  w.runUntil(w.now + 3000)
  assert.deepEqual(w.node("db1").state.removedNotLeft, [])
  assert.equal(w.node("db1").mysqld?.semiSyncWaitCount, 1)
})

test("a raise that does not show in time gives the change up: nothing proposed, nothing removed", () => {
  const w = running(4)
  const s = w.node("db1").state
  const r = apply(s, {
    _tag: "Operator",
    now: s.now + 1,
    requestId: 7,
    request: { _tag: "MemberRemove", node: "db4" },
  })
  assert.equal(r.state.memberChange?.phase, "raising")
  // The SET never completes; the switchover timeout later the change is refused.
  const later = apply(r.state, {
    _tag: "Tick",
    now: s.now + 2 + s.config.timings.switchoverTimeoutMs,
    random: 0.5,
  })
  assert.match(
    replyOf(later.outputs).message,
    /could not be raised to 2 \(it is 1\); nothing changed/,
  )
  assert.equal(later.state.memberChange, null)
  assert.deepEqual(later.state.removedNotLeft, [])
  assert.equal(names(later.state), "db1,db2,db3,db4")
})
