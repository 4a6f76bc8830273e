// The acceptance scenarios of lab.md beyond the first failovers (4, 5, 6, 7,
// 9, 10, 11, 12, 14), as functions on a running LabCluster in the style of
// scenarios.ts: each injects its fault, waits for the outcome it expects,
// asserts it, and returns the time of the fault (epoch ms) for the downtime
// measurement, plus what it measured. The test then checks the invariants.
import assert from "node:assert/strict"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import type { LabCluster } from "./cluster.ts"
import { sleep, waitFor } from "./exec.ts"
import { readSamplerLog } from "./invariants.ts"

export interface Outcome {
  /** Epoch ms of the fault: the client-observed downtime is measured from here. */
  readonly faultAt: number
  /** Numbers measured by the scenario, for the report (milliseconds unless named otherwise). */
  readonly measured: Readonly<Record<string, number | string>>
  /**
   * Scenario 10 only: the node made writable by hand, and the time from the
   * fault to its fence. Sampler rounds with two writable nodes inside this
   * window, and only with this node as the second, are the fault itself.
   */
  readonly handMade?: { readonly host: string; readonly primary: string; readonly until: number }
}

export type AcceptanceScenario = (c: LabCluster) => Promise<Outcome>

interface MemberView {
  readonly name: string
  readonly kind: string
  readonly role: string
  readonly source: string | null
  readonly executed: string
  readonly errant: string
  readonly health?: string
}

export interface StatusView {
  readonly node: string
  readonly term: number
  readonly role: string
  readonly leader: string | null
  readonly leaderActive: boolean
  readonly electionStatus: string
  readonly members: ReadonlyArray<MemberView>
}

/** `mha-agent status --json` of one host's agent. */
export const agentStatus = async (c: LabCluster, host: string): Promise<StatusView> => {
  const r = await c.agents.cli(host, ["status", "--json"])
  return (JSON.parse(r.stdout) as { status: StatusView }).status
}

/** The hosts other than `but`, in the lab's order (db1, db2, ...: priority order). */
const others = (c: LabCluster, ...but: string[]): string[] =>
  c.lab.hosts.map((h) => h.name).filter((n) => !but.includes(n))

const executed = async (c: LabCluster, host: string): Promise<string> => {
  const [row] = await c.lab.query<{ g: string }>(host, "SELECT @@gtid_executed AS g")
  return (row?.g ?? "").replace(/\n/g, "")
}

/** `a − b` of two GTID sets, computed by MySQL on `on`. */
const gtidSubtract = async (c: LabCluster, on: string, a: string, b: string): Promise<string> => {
  const [row] = await c.lab.query<{ d: string }>(on, "SELECT GTID_SUBTRACT(?, ?) AS d", [a, b])
  return (row?.d ?? "").replace(/\n/g, "")
}

/** Waits until `replica` has executed everything `source` has now; fails if it does not. */
const waitCaughtUp = async (
  c: LabCluster,
  replica: string,
  source: string,
  seconds = 30,
): Promise<void> => {
  const target = await executed(c, source)
  const [row] = await c.lab.query<{ w: number }>(
    replica,
    "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS w",
    [target, seconds],
  )
  assert.equal(Number(row?.w), 0, `${replica} caught up with ${source} within ${seconds} s`)
}

/** The longest gap between acknowledged writes in [from, to] (the writer keeps running). */
const gapBetween = (c: LabCluster, from: number, to: number): number => {
  const acked = c.writes().acked.filter((a) => a.t >= from && a.t <= to)
  let worst = acked.length === 0 ? to - from : Math.max(acked[0]!.t - from, to - acked.at(-1)!.t)
  for (let i = 1; i < acked.length; i++) worst = Math.max(worst, acked[i]!.t - acked[i - 1]!.t)
  return worst
}

/** The hard state a host's agent has persisted (term and vote). */
const hardState = (c: LabCluster, host: string): { term: number; votedFor: string | null } => {
  const file = join(c.lab.runDir(), host, "state", "hard-state.json")
  if (!existsSync(file)) return { term: 0, votedFor: null }
  return JSON.parse(readFileSync(file, "utf8")) as { term: number; votedFor: string | null }
}

// ---------------------------------------------------------------------------

/** 4: a replica isolated: no failover, writes go on, it catches up after the heal. */
export const replicaIsolated: AcceptanceScenario = async (c) => {
  const primary = await c.waitForPrimary(10_000)
  // The best-ranked replica: the one that would stand first if it could.
  const replica = others(c, primary)[0]!
  const before = await agentStatus(c, primary)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "Isolate", host: replica })
  // Longer than the lease (4 s): the isolated agent's promise runs out and it may try to stand.
  await sleep(10_000)
  const isolatedFor = Date.now() - faultAt
  assert.equal(await c.primary(), primary, "the same primary while the replica is isolated")
  const during = await agentStatus(c, primary)
  assert.equal(during.term, before.term, "no election while the replica is isolated")
  assert.equal(during.leader, primary)
  const gap = gapBetween(c, faultAt, Date.now())
  assert.ok(
    c.writesAfter(faultAt + 5_000) > 20,
    "writes go on: semi-sync is acknowledged by the other replica",
  )
  const [sro] = await c.lab.query<{ sro: number }>(replica, "SELECT @@super_read_only AS sro")
  assert.equal(sro?.sro, 1, "the isolated replica stayed read-only")
  const healAt = Date.now()
  await c.lab.inject({ _tag: "Heal", hosts: [] })
  await waitCaughtUp(c, replica, primary)
  const caughtUpMs = Date.now() - healAt
  // PreVote: the healed replica, which may have tried to stand, does not disturb the leader.
  await sleep(3_000)
  const after = await agentStatus(c, primary)
  assert.equal(after.term, before.term, "no election after the heal either")
  assert.equal(await c.primary(), primary)
  return {
    faultAt,
    measured: {
      "isolated for": isolatedFor,
      "longest write gap while isolated": gap,
      "catch-up after heal": caughtUpMs,
      term: after.term,
    },
  }
}

/** 5a: the primary's agent killed (kill -9), started again by the service manager after 2 s. */
export const primaryAgentKilled: AcceptanceScenario = async (c) => {
  const primary = await c.waitForPrimary(10_000)
  const before = await agentStatus(c, primary)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "KillAgent", host: primary })
  // The lab has no service manager for agents: start it again as systemd's
  // Restart= would, after a delay shorter than the lease (4 s).
  await sleep(2_000)
  await c.agents.start(primary)
  const restartedAt = Date.now()
  await waitFor(
    `${primary}'s restarted agent to answer status`,
    async () => {
      try {
        return (await agentStatus(c, primary)).leaderActive
      } catch {
        return false
      }
    },
    30_000,
    200,
  )
  const leadingAgainMs = Date.now() - restartedAt
  await c.waitForWritesAfter(Date.now(), 30_000)
  await sleep(2_000)
  assert.equal(await c.primary(), primary, "the same primary: no failover")
  const after = await agentStatus(c, primary)
  assert.equal(after.leader, primary)
  // A restarted agent has lost its in-memory lease: it reclaims leadership of
  // its own still-writable mysqld in the next term (one election, same primary).
  assert.ok(
    after.term <= before.term + 1,
    `at most one term more (${before.term} -> ${after.term})`,
  )
  const log = readFileSync(c.agents.logPath(primary), "utf8")
  if (after.term > before.term) assert.match(log, /\(reclaim\)/, "the new term is a reclaim")
  for (const other of others(c, primary)) {
    const view = await agentStatus(c, other)
    assert.equal(view.leader, primary, `${other} follows ${primary}`)
  }
  return {
    faultAt,
    measured: {
      "agent down": restartedAt - faultAt,
      "restarted agent ACTIVE again after": leadingAgainMs,
      "term before": before.term,
      "term after": after.term,
    },
  }
}

/** 5b: the primary's agent paused (SIGSTOP) for 2 s, shorter than the 4 s lease: nothing happens. */
export const primaryAgentPaused: AcceptanceScenario = async (c) => {
  const primary = await c.waitForPrimary(10_000)
  const before = await agentStatus(c, primary)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "Pause", host: primary, process: "agent" })
  await sleep(2_000)
  await c.lab.inject({ _tag: "Resume", host: primary, process: "agent" })
  const resumedAt = Date.now()
  await sleep(5_000)
  assert.equal(await c.primary(), primary, "the same primary: no failover")
  const after = await agentStatus(c, primary)
  assert.equal(after.term, before.term, "the same term: no election")
  assert.equal(after.leader, primary)
  assert.equal(after.leaderActive, true)
  const gap = gapBetween(c, faultAt, Date.now())
  return {
    faultAt,
    measured: {
      "agent paused": resumedAt - faultAt,
      "longest write gap": gap,
      term: after.term,
    },
  }
}

/**
 * 10: a replica made writable by hand (read_only and super_read_only OFF):
 * it holds no lease of the current term, so its agent fences it at once.
 */
export const handMadeWritable: AcceptanceScenario = async (c) => {
  const primary = await c.waitForPrimary(10_000)
  const replica = others(c, primary)[0]!
  const before = await agentStatus(c, primary)
  const conn = await c.lab.connect(replica)
  let faultAt: number
  try {
    faultAt = Date.now()
    await conn.query("SET GLOBAL super_read_only = OFF")
    await conn.query("SET GLOBAL read_only = OFF")
  } finally {
    await conn.end().catch(() => {})
  }
  let vipSeen = false
  let fencedAt = 0
  await waitFor(
    `${replica} to be fenced again`,
    async () => {
      if (await c.holdsVip(replica)) vipSeen = true
      const [row] = await c.lab
        .query<{ ro: number; sro: number }>(
          replica,
          "SELECT @@read_only AS ro, @@super_read_only AS sro",
        )
        .catch(() => [])
      if (row?.sro === 1 && row.ro === 1) {
        fencedAt = Date.now()
        return true
      }
      return false
    },
    10_000,
    20,
  )
  const fenceMs = fencedAt - faultAt
  assert.equal(vipSeen, false, "the hand-made writable node never held the VIP")
  assert.ok(fenceMs < 3_000, `fenced within 3 s (took ${fenceMs} ms)`)
  await sleep(3_000)
  assert.equal(await c.primary(), primary, "the lease holder stays the primary")
  const after = await agentStatus(c, primary)
  assert.equal(after.term, before.term, "no election: the fence is local")
  // Nothing was committed on the hand-made node: the writer reaches the
  // cluster only through the VIP, which the primary held all along.
  await waitCaughtUp(c, replica, primary)
  const own = await gtidSubtract(c, primary, await executed(c, replica), await executed(c, primary))
  assert.equal(own, "", `no transaction of its own on ${replica}`)
  return {
    faultAt,
    measured: { "fence time": fenceMs, term: after.term },
    handMade: { host: replica, primary, until: fencedAt },
  }
}

/**
 * Lets a failed old primary's mysqld start again and waits until its agent
 * reports it STANDBY, or DIVERGED: killed after its last commit reached its
 * binlog but before a replica acknowledged it (protocol.md section 10). Then
 * the operator re-seeds it from the new primary with `clone`, as an operator
 * would, and it rejoins as a replica. Returns what happened, for the report.
 */
export const bringBackOldPrimary = async (
  c: LabCluster,
  old: string,
  primary: string,
  ifDiverged: "clone" | "rejoin-force" = "clone",
): Promise<string> => {
  await c.lab.inject({ _tag: "StartMysqld", host: old })
  let what = "rejoined by itself"
  await waitFor(
    `${old} back as a replica or DIVERGED`,
    async () => {
      const role = await c.agentRole(old, old).catch(() => "unknown")
      if (role !== "DIVERGED") return role === "STANDBY"
      // Each throws (with the CLI's one-line reason) unless it exits 0.
      if (ifDiverged === "clone") {
        const clone = await c.agents.cli(primary, ["clone", "--recipient", old])
        what = `DIVERGED, re-seeded by clone: ${clone.stdout.trim()}`
      } else {
        const r = await c.agents.cli(old, ["rejoin", "--force"])
        what = `DIVERGED, rejoined with --force to acknowledge ${primary}'s writes: ${r.stdout.trim()}`
      }
      return true
    },
    60_000,
    500,
  )
  return what
}

/*
 * The old primary of a two-data-node cluster is the only possible
 * acknowledger. If it comes back DIVERGED (a commit was in flight when its
 * mysqld died: crash recovery committed it there alone), clone cannot re-seed
 * it while writes go on: the donor's commits wait for its acknowledgement and
 * a CLONE donor waits for those prepared transactions ("Waiting for prepared
 * transaction to exit"). The operator's way out: `rejoin --force` (its one
 * unacknowledged transaction stays on it, and it is never promoted while
 * errant), so writes resume; then clone in a quiet moment (reseedQuietly).
 */

/** Writes stopped (the run's last part), the forced replica is re-seeded by clone and rejoins. */
export const reseedQuietly = async (c: LabCluster, old: string, primary: string): Promise<void> => {
  await c.lab.stopProcess("client", "writer")
  const clone = await c.agents.cli(primary, ["clone", "--recipient", old])
  assert.match(clone.stdout, /./, "clone answered")
  await waitFor(
    `${old} a STANDBY again after the clone`,
    async () => (await c.agentRole(old, old).catch(() => "unknown")) === "STANDBY",
    90_000,
    500,
  )
}

/**
 * 9: an errant transaction on the best-ranked replica: its agent reports
 * it, it is not promoted when the primary fails, and `errant-gtid --fix` on
 * the new primary makes it a subset again.
 */
export const errantReplica: AcceptanceScenario = async (c) => {
  const primary = await c.waitForPrimary(10_000)
  const [errantHost, expectedNext] = others(c, primary) as [string, string]
  // super_read_only OFF but read_only ON: root may write, clients may not
  // (and the sampler, which counts read_only too, sees no second writable node).
  // The agent fences super_read_only again within a probe, so do it on one
  // connection, at once, and retry if the fence came first.
  await c.writeErrantTransaction(errantHost)
  await sleep(500)
  const errant = await gtidSubtract(
    c,
    primary,
    await executed(c, errantHost),
    await executed(c, primary),
  )
  assert.notEqual(errant, "", "MySQL sees the errant transaction")
  let reported = ""
  await waitFor(
    `${primary}'s agent to report ${errantHost}'s errant transaction`,
    async () => {
      const view = await agentStatus(c, primary)
      reported = view.members.find((m) => m.name === errantHost)?.errant ?? ""
      return reported !== ""
    },
    15_000,
    250,
  )
  // Peers' heartbeats carry only "has errant transactions" (shown as "yes");
  // the replica's own agent lists the GTIDs, exactly those MySQL computes.
  const own = (await agentStatus(c, errantHost)).members.find((m) => m.name === errantHost)
  assert.equal(own?.errant, errant, `${errantHost}'s agent lists the errant GTIDs`)
  const termBefore = (await agentStatus(c, primary)).term
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "StopMysqld", host: primary })
  const next = await c.waitForPrimary(60_000, primary)
  assert.notEqual(next, errantHost, "the replica with an errant transaction is never promoted")
  assert.equal(next, expectedNext)
  const view = await agentStatus(c, next)
  assert.ok(view.term > termBefore, "a new term")
  assert.equal(view.leader, next)
  // No writes yet: the old primary is down and the errant replica is DIVERGED
  // (it must not rejoin by itself), so strict semi-sync has no replica to ack.
  // The old primary's mysqld is repaired first and rejoins as a replica: then
  // writes resume. (errant-gtid --fix before that hangs: its empty
  // transactions wait for a semi-sync ack that no replica can give.)
  const repairedAt = Date.now()
  const oldPrimaryRepair = await bringBackOldPrimary(c, primary, next)
  await c.waitForWritesAfter(repairedAt, 60_000)
  const firstWriteMs = c.writes().acked.find((a) => a.t > repairedAt)!.t - repairedAt
  // The operator repairs: empty transactions for the errant GTIDs on the new primary.
  const fix = await c.agents.cli(next, ["errant-gtid", "--fix"])
  const fixAt = Date.now()
  let left = errant
  await waitFor(
    "no errant set left on the replica",
    async () => {
      left = await gtidSubtract(c, next, await executed(c, errantHost), await executed(c, next))
      return left === ""
    },
    15_000,
    250,
  )
  const fixMs = Date.now() - fixAt
  // A subset again, the replica rejoins by itself (convergence is checked by the test).
  await waitFor(
    `${errantHost} to replicate from ${next}`,
    async () =>
      (await agentStatus(c, next)).members.find((m) => m.name === errantHost)?.role === "STANDBY",
    30_000,
    250,
  )
  return {
    faultAt,
    measured: {
      errant,
      "primary's agent reported": reported,
      "fix said": fix.stdout.trim(),
      "first write after the old primary's mysqld restarted": firstWriteMs,
      "old primary": oldPrimaryRepair,
      "errant set gone after the fix": fixMs,
      "new primary": next,
    },
  }
}

/** True when no node of the lab is writable (read over the sockets). */
const noneWritable = async (c: LabCluster): Promise<boolean> =>
  (await c.lab.topology()).every((v) => !v.up || v.superReadOnly !== false)

/**
 * 12: repeated failures. A failover starts the anti-flap block; a second
 * failure inside `recovery_block_period` does not fail over, and says why,
 * until the operator runs `ack-recovery`.
 */
export const repeatedFailures: AcceptanceScenario = async (c) => {
  const first = await c.waitForPrimary(10_000)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "StopMysqld", host: first })
  const second = await c.waitForPrimary(60_000, first)
  const firstFailoverMs = Date.now() - faultAt
  await c.waitForWritesAfter(Date.now(), 30_000)
  // The old primary is repaired and rejoins, so that a quorum of healthy data nodes remains.
  await bringBackOldPrimary(c, first, second)
  await waitFor(
    `${first} to replicate from ${second}`,
    async () => (await c.lab.replicaStatus(first))?.ioRunning === "Yes",
    30_000,
  )
  await waitCaughtUp(c, first, second)
  // And its agent vouches for its data again: a clone's restart counts against the restart
  // routine (it must stay up restart_stable), and the re-seeded node votes for no one but the
  // primary until a report of the primary's shows it caught up. Killed before that, the
  // survivors cannot form a quorum at all, and the block is not what holds them (seen in CI).
  let says = ""
  await waitFor(
    `${first}'s agent to say nothing but that ${second} leads`,
    async () => {
      says = (await agentStatus(c, first)).electionStatus
      return new RegExp(`lease promised to ${second}|${second} leads term`).test(says)
    },
    60_000,
    500,
  ).catch((e: Error) => {
    throw new Error(`${e.message} (last: "${says}")`)
  })
  const termAfterFirst = (await agentStatus(c, second)).term
  // The second failure, well inside the 10-minute block.
  const secondFaultAt = Date.now()
  await c.lab.inject({ _tag: "StopMysqld", host: second })
  const survivors = others(c, second)
  let why = ""
  await waitFor(
    "the survivors to say the anti-flap block holds",
    async () => {
      why = (await agentStatus(c, survivors[0]!)).electionStatus
      return /anti-flap/.test(why)
    },
    20_000,
    250,
  )
  // Held: nobody becomes writable for a while, and no new term starts.
  const heldFrom = Date.now()
  while (Date.now() - heldFrom < 8_000) {
    assert.ok(await noneWritable(c), "no failover inside the anti-flap block")
    await sleep(250)
  }
  for (const s of survivors) {
    const view = await agentStatus(c, s)
    assert.match(view.electionStatus, /anti-flap block after the failover of term/, `${s} says why`)
    assert.equal(view.term, termAfterFirst, `${s}: no election in the block`)
  }
  // No primary to record it: the operator acks on every node (a quorum must lift it).
  const ackAt = Date.now()
  const acks: string[] = []
  for (const h of c.lab.hosts.map((x) => x.name)) {
    const r = await c.agents.cli(h, ["ack-recovery"])
    acks.push(`${h}: ${r.stdout.trim()}`)
  }
  const third = await c.waitForPrimary(60_000, second)
  const failoverAfterAckMs = Date.now() - ackAt
  assert.ok(survivors.includes(third))
  const view = await agentStatus(c, third)
  assert.ok(view.term > termAfterFirst, "a new term after ack-recovery")
  await c.waitForWritesAfter(Date.now(), 30_000)
  await c.lab.inject({ _tag: "StartMysqld", host: second })
  return {
    faultAt: secondFaultAt,
    measured: {
      "first failover": firstFailoverMs,
      "block held for": ackAt - secondFaultAt,
      "failover after ack-recovery": failoverAfterAckMs,
      "status said": why,
      "ack-recovery said": acks.join(" | "),
      primaries: `${first} -> ${second} -> ${third}`,
    },
  }
}

/**
 * 14: two data nodes and a witness (db3, whose mysqld is stopped: a witness
 * runs none). The primary's mysqld cannot restart: the other data node wins
 * with the witness's vote; the witness is never writable nor promoted.
 */
export const witnessDecides: AcceptanceScenario = async (c) => {
  const witness = "db3"
  await c.lab.inject({ _tag: "StopMysqld", host: witness })
  const primary = await c.waitForPrimary(10_000)
  assert.notEqual(primary, witness)
  const other = others(c, primary, witness)[0]!
  await c.waitForWritesAfter(Date.now(), 30_000)
  const before = await agentStatus(c, witness)
  assert.equal(before.members.find((m) => m.name === witness)?.kind, "witness")
  // The primary's mysqld dies while a commit waits for the only replica's
  // acknowledgement (replication cut first): it comes back holding that
  // unacknowledged transaction, DIVERGED, every time (the hard case).
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "CutReplication", a: primary, b: other })
  // Past the writer's 3 s query timeout: its next INSERT never reached the replica.
  await sleep(3_500)
  await c.lab.inject({ _tag: "StopMysqld", host: primary })
  await c.lab.inject({ _tag: "Heal", hosts: [] })
  const next = await c.waitForPrimary(60_000, primary)
  const failoverMs = Date.now() - faultAt
  assert.equal(next, other, "the other data node is promoted")
  const view = await agentStatus(c, witness)
  assert.equal(view.leader, next, "the witness follows the new primary")
  assert.ok(view.term > before.term)
  // The witness voted in the new term, and for the winner: 2 of 3 needs its vote.
  const hs = hardState(c, witness)
  assert.equal(hs.term, view.term)
  assert.equal(hs.votedFor, next, "the witness's vote elected the new primary")
  assert.equal(await c.holdsVip(witness), false, "the witness never holds the VIP")
  // Strict semi-sync needs a data replica to ack, and the only one is down:
  // writes resume once the old primary's mysqld is repaired and rejoins.
  const repairedAt = Date.now()
  const oldPrimaryRepair = await bringBackOldPrimary(c, primary, next, "rejoin-force")
  await c.waitForWritesAfter(repairedAt, 30_000)
  const firstWriteMs = c.writes().acked.find((a) => a.t > repairedAt)!.t - repairedAt
  if (oldPrimaryRepair.startsWith("DIVERGED")) await reseedQuietly(c, primary, next)
  const writableWitness = readSamplerLog(c.samplerLog).filter(
    (r) => r.nodes[witness] === "writable",
  )
  assert.equal(writableWitness.length, 0, "the witness host was never writable")
  return {
    faultAt,
    measured: {
      failover: failoverMs,
      term: view.term,
      "new primary": next,
      "first write after the old primary's mysqld restarted": firstWriteMs,
      "old primary": oldPrimaryRepair,
    },
  }
}

/** 11: five nodes, the primary and a replica isolated at once: the other three elect. */
export const fiveNodesTwoLost: AcceptanceScenario = async (c) => {
  const primary = await c.waitForPrimary(10_000)
  const replica = others(c, primary)[0]!
  const before = await agentStatus(c, primary)
  const faultAt = Date.now()
  await Promise.all([
    c.lab.inject({ _tag: "Isolate", host: primary }),
    c.lab.inject({ _tag: "Isolate", host: replica }),
  ])
  const next = await c.waitForPrimary(60_000, primary)
  const failoverMs = Date.now() - faultAt
  assert.ok(others(c, primary, replica).includes(next), `${next} is one of the three left`)
  const [old] = await c.lab.query<{ sro: number }>(primary, "SELECT @@super_read_only AS sro")
  assert.equal(old?.sro, 1, "the isolated old primary fenced itself")
  const view = await agentStatus(c, next)
  assert.ok(view.term > before.term)
  await c.waitForWritesAfter(faultAt, 30_000)
  await c.lab.inject({ _tag: "Heal", hosts: [] })
  return { faultAt, measured: { failover: failoverMs, "new primary": next, term: view.term } }
}

/**
 * 7: a one-way partition of the primary: its packets to every other host are
 * dropped ("out"), or every other host's packets to it ("in"). The client
 * still reaches everyone, so the sampler sees both sides: at most one
 * writable node at any time (checked by the test on every sampler round).
 */
export const oneWayPartition =
  (direction: "out" | "in"): AcceptanceScenario =>
  async (c) => {
    const primary = await c.waitForPrimary(10_000)
    const before = await agentStatus(c, primary)
    const faultAt = Date.now()
    for (const other of others(c, primary)) {
      await c.lab.inject(
        direction === "out"
          ? { _tag: "CutOneWay", from: primary, to: other }
          : { _tag: "CutOneWay", from: other, to: primary },
      )
    }
    const next = await c.waitForPrimary(60_000, primary)
    const failoverMs = Date.now() - faultAt
    const [old] = await c.lab.query<{ sro: number }>(primary, "SELECT @@super_read_only AS sro")
    assert.equal(old?.sro, 1, "the cut-off old primary is fenced")
    assert.equal(await c.holdsVip(primary), false, "the cut-off old primary dropped the VIP")
    const view = await agentStatus(c, next)
    assert.ok(view.term > before.term)
    await c.waitForWritesAfter(faultAt, 30_000)
    await c.lab.inject({ _tag: "Heal", hosts: [] })
    return { faultAt, measured: { failover: failoverMs, "new primary": next, term: view.term } }
  }

/** 6: 30 % of the packets arriving at every host dropped for 60 s: no failover. */
export const randomLoss: AcceptanceScenario = async (c) => {
  const primary = await c.waitForPrimary(10_000)
  const before = await agentStatus(c, primary)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "Loss", percent: 30, hosts: [] })
  let samples = 0
  let withoutPrimary = 0
  while (Date.now() - faultAt < 60_000) {
    samples++
    if ((await c.primary()) !== primary) withoutPrimary++
    await sleep(1_000)
  }
  const acked = c.writesAfter(faultAt)
  await c.lab.inject({ _tag: "Heal", hosts: [] })
  await sleep(3_000)
  const after = await agentStatus(c, primary)
  assert.equal(after.term, before.term, "no election under 30 % loss")
  assert.equal(after.leader, primary)
  assert.equal(await c.primary(), primary, "the same primary")
  assert.equal(withoutPrimary, 0, `${primary} stayed writable with the VIP in every sample`)
  return {
    faultAt,
    measured: {
      "seconds sampled": samples,
      "samples without the primary": withoutPrimary,
      "writes acked under loss": acked,
      term: after.term,
    },
  }
}
