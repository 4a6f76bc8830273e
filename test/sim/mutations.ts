/**
 * Deliberate bugs, made by wrapping the real reducer (production code is
 * untouched), to show the simulator catches them.
 */

import { readFileSync } from "node:fs"
import { initialRecord, recoveryBlockApplies } from "../../agent/src/core/cluster-record.ts"
import { strictAckCount } from "../../agent/src/core/config.ts"
import {
  count,
  emptyGtidSet,
  formatGtidSet,
  type GtidSet,
  union,
  unsafeParseGtidSet,
} from "../../agent/src/core/gtid.ts"
import { isInFlight, issueMysql } from "../../agent/src/core/outputs.ts"
import { step } from "../../agent/src/core/reducer.ts"
import { leaderActiveOf, promotionOf } from "../../agent/src/core/roles.ts"
import type { AgentState, Input, Output, PeerView } from "../../agent/src/core/types.ts"
import { runScenario } from "./scenario.ts"
import type { Reducer } from "./world.ts"

export interface Mutant {
  readonly name: string
  readonly description: string
  /** The invariants this bug should break. */
  readonly expect: ReadonlyArray<string>
  readonly reducer: Reducer
}

const isSelfFenceStep = (outputs: ReadonlyArray<Output>): boolean =>
  outputs.some(
    (o) => o._tag === "Event" && (o.event === "self-fenced" || o.event === "split-brain-guard"),
  )

const grantsVote = (outputs: ReadonlyArray<Output>): boolean =>
  outputs.some((o) => o._tag === "Send" && o.message._tag === "VoteResponse" && o.message.granted)

/**
 * A voter that does not persist its vote, and sends it at once (the core
 * holds it until its hard state is written: durability.ts): after a restart
 * it forgets it.
 */
const unpersistedVote: Reducer = (s, i) => {
  const r = step(s, i)
  const d = r.state.durability
  const held = d.held.map((h) => h.send)
  if (!grantsVote(held) && !grantsVote(r.outputs)) return r
  return {
    state: { ...r.state, durability: { ...d, held: [], written: d.emitted } },
    outputs: [...r.outputs.filter((o) => o._tag !== "PersistHardState"), ...held],
  }
}

/**
 * The same, and after a restart it also forgets that it may have promised a
 * lease (so it votes at once): the second line of defence removed too.
 */
const forgetfulVoter: Reducer = (s, i) => {
  const r = unpersistedVote(s, i)
  if (i._tag !== "Start") return r
  return { state: { ...r.state, promise: null }, outputs: r.outputs }
}

/**
 * An agent that starts takes its replica's relay log for intact without
 * asking whether its mysqld is the process it recorded (relay-intact.ts):
 * one that restarted while the agent was down (relay_log_recovery dropped
 * what it had received) votes as if it still held it.
 */
const relayAlwaysIntact: Reducer = (s, i) => {
  const r = step(s, i)
  if (i._tag !== "Start") return r
  return {
    state: { ...r.state, local: { ...r.state.local, resyncNeeded: false } },
    outputs: r.outputs,
  }
}

/** A primary that does not fence itself when its lease runs out. */
const noSelfFence: Reducer = (s, i) => {
  const r = step(s, i)
  if (!isSelfFenceStep(r.outputs)) return r
  return {
    state: r.state,
    outputs: r.outputs.filter(
      (o) =>
        !(
          o._tag === "Vip" ||
          (o._tag === "Mysql" && (o.action._tag === "Fence" || o.action._tag === "KillSessions"))
        ),
    ),
  }
}

/** Voters that ignore their lease promise. */
const votesInLease: Reducer = (s, i) => {
  if (
    i._tag === "PeerReceived" &&
    (i.message._tag === "VoteRequest" || i.message._tag === "PreVoteRequest")
  ) {
    const r = step({ ...s, promise: null }, i)
    return { state: { ...r.state, promise: s.promise }, outputs: r.outputs }
  }
  return step(s, i)
}

/**
 * A voter that skips the data comparison wherever `skips` says so: on the step
 * that receives a (pre-)vote request (its own and its peers' data blanked), and
 * on the later step that decides a vote after the freeze (STOP REPLICA
 * IO_THREAD and a fresh probe): there the candidate is taken to hold all the
 * voter's fresh data, and the peers' data is blanked, so ranking by data
 * cannot refuse either.
 */
const skipsDataComparison =
  (skips: (candidate: GtidSet, own: GtidSet) => boolean): Reducer =>
  (s, i) => {
    if (
      i._tag === "PeerReceived" &&
      (i.message._tag === "VoteRequest" || i.message._tag === "PreVoteRequest")
    ) {
      if (!skips(unsafeParseGtidSet(i.message.data.received), s.local.received)) return step(s, i)
      const patched: AgentState = {
        ...s,
        peers: blanked(s.peers),
        local: { ...s.local, received: emptyGtidSet },
      }
      const r = step(patched, i)
      return {
        state: {
          ...r.state,
          peers: mergeBack(r.state.peers, s.peers),
          local: { ...r.state.local, received: s.local.received },
        },
        outputs: r.outputs,
      }
    }
    const pending = s.pendingVote
    const first = step(s, i)
    // Not a step that decides the frozen vote.
    if (pending === null || first.state.pendingVote !== null) return first
    const claimed = unsafeParseGtidSet(pending.request.data.received)
    const own = first.state.local.received
    if (!skips(claimed, own)) return first
    const request = {
      ...pending.request,
      data: { ...pending.request.data, received: formatGtidSet(union(claimed, own)) },
    }
    const r = step({ ...s, peers: blanked(s.peers), pendingVote: { ...pending, request } }, i)
    return { state: { ...r.state, peers: mergeBack(r.state.peers, s.peers) }, outputs: r.outputs }
  }

const blanked = (peers: ReadonlyMap<string, PeerView>): Map<string, PeerView> =>
  new Map([...peers].map(([k, v]) => [k, { ...v, received: emptyGtidSet, backlog: 0 }]))

/** Voters look at nothing but priority: no completeness check, no ranking by data. */
const noCompletenessCheck = skipsDataComparison(() => true)

/** The winner promotes without waiting for its relay log to be applied (section 9 step 4). */
const skipRelayApply: Reducer = (s, i) => {
  const r = step(s, i)
  const wait = r.outputs.find((o) => o._tag === "Mysql" && o.action._tag === "WaitForRelayLog")
  if (wait === undefined || wait._tag !== "Mysql") return r
  // Answer the wait at once, as if it had succeeded.
  const done = step(r.state, {
    _tag: "MysqlDone",
    now: i.now,
    incarnation: r.state.bootId,
    id: wait.id,
    ok: true,
    error: null,
  })
  return { state: done.state, outputs: [...r.outputs.filter((o) => o !== wait), ...done.outputs] }
}

/** Completeness by count: a candidate with at least as many GTIDs passes, whatever it lacks. */
const rankByCount = skipsDataComparison((candidate, own) => count(candidate) >= count(own))

/** The peers' data as it was before blanking, unless the step itself updated it. */
const mergeBack = (after: ReadonlyMap<string, PeerView>, before: ReadonlyMap<string, PeerView>) => {
  const m = new Map(after)
  for (const [k, v] of after) {
    const b = before.get(k)
    if (b !== undefined && v.received === emptyGtidSet)
      m.set(k, { ...v, received: b.received, backlog: b.backlog })
  }
  return m
}

/** A new primary that ignores the cluster records its voters sent. */
const ignoreVoterRecords: Reducer = (s: AgentState, i: Input) => {
  if (i._tag === "PeerReceived" && i.message._tag === "VoteResponse") {
    return step(s, { ...i, message: { ...i.message, record: initialRecord } })
  }
  return step(s, i)
}

/**
 * The anti-flap block as it was before section 10 said it never leaves a
 * healthy cluster without a primary: inside the block every vote is refused,
 * so the last primary cannot take the role back after it resigned.
 */
const blockStopsLastPrimary: Reducer = (s: AgentState, i: Input) => {
  const r = step(s, i)
  const block = s.recoveryBlock
  if (!recoveryBlockApplies(s.hard.record) || block === null || s.now >= block.until) return r
  return {
    state: r.state,
    outputs: r.outputs.map((o) =>
      o._tag === "Send" &&
      (o.message._tag === "PreVoteResponse" || o.message._tag === "VoteResponse") &&
      o.message.granted
        ? { ...o, message: { ...o.message, granted: false, reason: "anti-flap block" } }
        : o,
    ),
  }
}

/**
 * Demotion as it was at dfc83b6 (the safety issue's lost write): a follower
 * repoints its old primary's mysqld and turns semi-sync off as a source as
 * soon as it sees the new leader, while a commit still waits for an
 * acknowledgement (the guard `fencedQuietly` removed). MySQL then gives that
 * commit's client OK for a transaction no replica has.
 */
const releaseOnDemotion: Reducer = (s, i) => {
  const r = step(s, i)
  if (i._tag !== "LocalProbed") return r
  const st = r.state
  const probe = st.local.up ? st.local.probe : null
  const leader = st.role._tag === "Follower" ? st.role.leader : null
  if (
    leader === null ||
    leader === st.self ||
    !leaderActiveOf(st) ||
    probe === null ||
    probe.semiSyncWaiters === 0 ||
    st.hard.record.primary !== leader ||
    isInFlight(st, "Replication")
  )
    return r
  const out = [...r.outputs]
  let next = issueMysql(
    st,
    out,
    { _tag: "ReplicateFrom", source: leader },
    { _tag: "Replication" },
  )[0]
  next = issueMysql(
    next,
    out,
    {
      _tag: "SetSemiSync",
      source: false,
      replica: st.config.semiSync !== "off",
      waitForReplicaCount: st.config.semiSync === "strict" ? strictAckCount(st.config) : 1,
    },
    { _tag: "SemiSync" },
  )[0]
  return { state: next, outputs: out }
}

/**
 * PreVote judged more leniently than the vote (the safety issue): a pre-vote
 * is granted whatever the voter would refuse for it, so a candidate the vote
 * refuses bumps the term again and again (each bump deposes the leader).
 */
const preVoteGrantsAll: Reducer = (s, i) => {
  const r = step(s, i)
  if (i._tag !== "PeerReceived" || i.message._tag !== "PreVoteRequest") return r
  return {
    state: r.state,
    outputs: r.outputs.map((o) =>
      o._tag === "Send" && o.message._tag === "PreVoteResponse" && !o.message.granted
        ? { ...o, message: { ...o.message, granted: true, reason: "ok" } }
        : o,
    ),
  }
}

/**
 * A voter waits forever for its freeze (STOP REPLICA IO_THREAD) to finish:
 * no rpc_timeout on the pending vote, so a STOP that hangs (an IO thread
 * waiting for disk space, a hung mysqld) keeps the voter from answering and
 * from voting for anyone else.
 */
const voterWaitsForFreeze: Reducer = (s, i) => {
  const p = s.pendingVote
  if (p === null || p.stopped) return step(s, i)
  const r = step({ ...s, pendingVote: { ...p, since: i.now } }, i)
  const q = r.state.pendingVote
  return q !== null && q.request === p.request
    ? { state: { ...r.state, pendingVote: { ...q, since: p.since } }, outputs: r.outputs }
    : r
}

/**
 * A failover recorded before its node is writable (as before the safety issue
 * 10 item 2 fix, ef5fe5e): the winner of an election writes the anti-flap
 * block (`lastFailoverTerm`, `recoveryAcked: false`) into the record it
 * commits before promoting, so a promotion that aborts later (its mysqld
 * refuses a step) still counts as a failover: every other node is blocked and
 * only the last primary may take the role back.
 */
const abortedPromotionCounts: Reducer = (s, i) => {
  const r = step(s, i)
  const p = promotionOf(r.state)
  if (
    p === null ||
    p.step !== "commit-record" ||
    promotionOf(s)?.step === "commit-record" ||
    (p.kind !== "election" && p.kind !== "forced")
  )
    return r
  // The step that proposed the record naming this node: run it again with the failover
  // already in the record it copies (nextRecord keeps every field it does not change).
  const record = { ...s.hard.record, lastFailoverTerm: p.term, recoveryAcked: false }
  if (promotionOf(s) === null) return r
  return step({ ...s, hard: { ...s.hard, record } }, i)
}

/**
 * Mutants the simulator must catch. `caughtBy` is the first seed known to
 * catch it (from `runSeedsInParallel(1, 10_000, name)`); the test replays it
 * and searches the whole CI budget again only if it no longer does.
 */
export const mutants: ReadonlyArray<Mutant & { readonly caughtBy: number }> = [
  {
    name: "votes-in-lease",
    description: "voters grant votes while they promised a lease to a live leader",
    expect: ["I1", "I2"],
    reducer: votesInLease,
    caughtBy: 3812,
  },
  {
    name: "skip-relay-apply",
    description:
      "the winner does not wait for its relay log to be applied before RESET REPLICA ALL",
    expect: ["I3"],
    reducer: skipRelayApply,
    caughtBy: 2625,
  },
  {
    name: "no-self-fence",
    description:
      "a node without the lease never fences its own mysqld (no VIP removal, no super_read_only, no kill)",
    // With strict semi-sync the old primary can get no acknowledgement once its replicas
    // voted (they froze) and the winner fenced it remotely when it could: what remains is
    // a second writable VIP holder after the heal.
    expect: ["I1", "I2", "I3", "L1"],
    reducer: noSelfFence,
    caughtBy: 3,
  },
  {
    name: "anti-flap-stops-last-primary",
    description:
      "anti-flap block stops the last primary's return: inside the block every vote is refused",
    // Seeds with the block on (random-run.ts antiFlapSeed): the healed cluster stays without a primary.
    expect: ["L1"],
    reducer: blockStopsLastPrimary,
    caughtBy: 1516,
  },
  {
    name: "semi-sync-release-on-demotion",
    description: "disable semi-sync as a source on demotion while a commit waits",
    // Seeds whose application runs as SYSTEM_USER (random-run.ts systemUserSeed): the fence
    // pends behind a commit it cannot kill; the demotion releases it with OK.
    expect: ["I3"],
    reducer: releaseOnDemotion,
    caughtBy: 6,
  },
  {
    name: "pre-vote-grants-all",
    description: "pre-vote grants what the vote refuses",
    // L2 (world.ts): a voter grants a pre-vote and then refuses the vote again for the same
    // reason, so the candidate's term climbs at every attempt (issue 10 item 4: terms 1->33).
    expect: ["L2", "L1", "I1", "I2", "I3"],
    reducer: preVoteGrantsAll,
    caughtBy: 453,
  },
  {
    name: "voter-waits-for-freeze",
    description: "a voter waits forever for a freeze",
    // Seeds with a full relay-log disk (random-run.ts diskFullSeed): a voter's STOP REPLICA
    // IO_THREAD hangs behind the IO thread waiting for disk space; without rpc_timeout on the
    // pending vote the candidate gets no answer (L3) until the STOP returns.
    expect: ["L3", "L1"],
    reducer: voterWaitsForFreeze,
    caughtBy: 2701,
  },
  {
    name: "no-completeness-check",
    description: "voters compare no GTID sets: the highest priority replica wins whatever it lacks",
    // Masked while the variant patched only the step that receives a request (a freezing
    // voter decides later, on its fresh probe); it covers that decision too since. Scenario 29
    // isolates the voter that answers at once (its STOP would hang behind a full disk).
    expect: ["I3"],
    reducer: noCompletenessCheck,
    caughtBy: 3524,
  },
  {
    name: "rank-by-count",
    description: "completeness by GTID count instead of set inclusion",
    // As no-completeness-check; scenario 30 adds errant transactions that give the
    // lacking candidate the larger count.
    expect: ["I3"],
    reducer: rankByCount,
    caughtBy: 707,
  },
]

/** A variant no random seed catches, and the scenario of testdata/ that does. */
export interface ScenarioCaughtMutant extends Mutant {
  /** Passes with the real reducer, fails with the variant. */
  readonly scenario: string
  /** A line the scenario prints when it fails under the variant (a violation of `expect`). */
  readonly failure: string
}

/**
 * Bugs that other defences mask in random runs: no seed of the 10,000 of the
 * CI budget catches them. Each is caught by a scenario of its own that
 * passes with the real reducer and fails with the variant through an
 * invariant it is expected to break: mutations.test.ts asserts it and
 * run-seeds.ts counts it (`scenarioCatches`). What masks each in random runs,
 * and what its scenario isolates:
 * - forgetful-voter (28, I1): the same restarted voter must be the one that
 *   keeps a cut-off primary's lease while another candidate, free of it,
 *   stands; only the post-restart abstention stops it there (27 catches it
 *   too, through its forgotten vote);
 * - unpersisted-vote (27, I4): a data voter adopts the term (persisted) in
 *   the step that starts its freeze and grants later, so a crash forgets only
 *   the vote, and a second candidate in that very term is rare (PreVote); the
 *   restarted voter also abstains for a full lease. A witness adopts and
 *   grants in one step: crashed right after, it forgets the term too, and
 *   votes in term 2 again once the partition moves;
 * - ignore-voter-records (31, I5): heartbeats carry records to every node
 *   of the record's term or an older one, so a winner lacks a committed record
 *   only if it moved to a newer term without hearing it (in 31, a forced
 *   failover whose answers were cut);
 * - aborted-promotion-counts-as-failover (18b, L1 as "expect primary db3"):
 *   only the last primary may take the role back inside the block, and in a
 *   random run it comes back at the heal;
 * - relay-always-intact (26, I3): it needs a replica's agent and mysqld to
 *   restart together while its relay log holds acknowledged writes nobody else
 *   has.
 */
export const maskedMutants: ReadonlyArray<ScenarioCaughtMutant> = [
  {
    name: "forgetful-voter",
    description:
      "a vote is sent without persisting it, and a restarted voter votes at once (no post-restart lease abstention)",
    // Forgetting the term lets the deposed leader commit a record behind the new one's back
    // (I4, I5); forgetting the lease promise lets a restarted voter elect a second leader while
    // the first still holds its lease (I1). Always beyond the 10,000 seeds of the budget (seed
    // 10740 caught it until the runs changed with the new primary's immediate probe, 0a1b350);
    // none of seeds 1-50,000 catches it since (run-seeds.ts --mutant forgetful-voter).
    expect: ["I1", "I4", "I5"],
    reducer: forgetfulVoter,
    scenario: "28-voter-restart-in-lease.txt",
    failure: "I1 at",
  },
  {
    name: "aborted-promotion-counts-as-failover",
    description: "an aborted promotion counts as a failover",
    // No seed of the 10,000 catches it (the 2,500 with the block on searched): a random
    // run's old primary comes back at the heal and takes the role back as the last primary.
    expect: ["L1"],
    reducer: abortedPromotionCounts,
    // Its mysqld cannot restart, the winner aborts: the block leaves nobody to elect.
    scenario: "18b-promotion-abort-no-block.txt",
    failure: "expect primary db3",
  },
  {
    name: "relay-always-intact",
    description:
      "an agent that starts takes its relay log for intact without checking its mysqld is the process it recorded",
    expect: ["I3"],
    reducer: relayAlwaysIntact,
    scenario: "26-relay-intact-agent-restart.txt",
    failure: "I3 at",
  },
  {
    name: "unpersisted-vote",
    description: "a vote is sent without persisting it",
    // Once caught by a random seed (8857, I5), far beyond the budget.
    expect: ["I4", "I5"],
    reducer: unpersistedVote,
    scenario: "27-voter-crash-after-vote.txt",
    failure: "I4 at",
  },
  {
    name: "ignore-voter-records",
    description: "the winner does not adopt the highest record of its votes",
    expect: ["I5"],
    reducer: ignoreVoterRecords,
    scenario: "31-winner-adopts-voter-records.txt",
    failure: "I5 at",
  },
]

/**
 * A masked variant's scenario, run with the real reducer and with the
 * variant: caught when the first passes and the second fails with `failure`.
 */
export const scenarioCatches = (
  m: ScenarioCaughtMutant,
): {
  readonly caught: boolean
  /** The failure line that names `failure`, if any. */
  readonly caughtWith: string | null
  readonly realFailures: ReadonlyArray<string>
  readonly failures: ReadonlyArray<string>
} => {
  const script = readFileSync(new URL(`./testdata/${m.scenario}`, import.meta.url), "utf8")
  const real = runScenario(script)
  const r = runScenario(script, m.reducer)
  const caughtWith = r.failures.find((f) => f.includes(m.failure)) ?? null
  return {
    caught: real.ok && caughtWith !== null,
    caughtWith,
    realFailures: real.failures,
    failures: r.failures,
  }
}

export const allMutants: ReadonlyArray<Mutant> = [...mutants, ...maskedMutants]
