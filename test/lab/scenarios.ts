// The acceptance scenarios of lab.md as functions on a running LabCluster,
// shared by the tests (which assert) and the benchmark (which times). Each
// injects its fault, waits for the outcome it expects, asserts it, and
// returns the time of the fault (epoch ms) for the downtime measurement.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import type { LabCluster } from "./cluster.ts"
import { alive, sleep, waitFor } from "./exec.ts"

export type Scenario = (c: LabCluster) => Promise<number>

/** 1: kill -9 the primary's mysqld; the restart succeeds: no failover. */
export const mysqldKilledRestarts: Scenario = async (c) => {
  const primary = await c.waitForPrimary(10_000)
  const term = c.term(primary)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "KillMysqld", host: primary })
  await c.waitForWritesAfter(faultAt, 60_000)
  await sleep(2000)
  assert.equal(await c.primary(), primary, "the same primary")
  assert.equal(c.term(primary), term, "no election")
  // The lab's my.cnf does not enable semi-sync as a source (a runtime SET GLOBAL,
  // lost by the restart): the agent turns it on again before it makes mysqld writable.
  const [semiSync] = await c.lab.query<{ on: number }>(
    primary,
    "SELECT @@GLOBAL.rpl_semi_sync_source_enabled AS `on`",
  )
  assert.equal(Number(semiSync?.on), 1, "semi-sync as a source on again after the restart")
  return faultAt
}

/** 2: the primary's mysqld cannot restart: failover without lease wait. */
export const mysqldCannotRestart: Scenario = (c) => cannotRestart(c, false)

/**
 * 2 with the replicas level when mysqld stops (`LabCluster.stopMysqldLevel`),
 * so that priority decides the winner.
 */
export const mysqldCannotRestartLevel: Scenario = (c) => cannotRestart(c, true)

const cannotRestart = async (c: LabCluster, level: boolean): Promise<number> => {
  const primary = await c.waitForPrimary(10_000)
  let faultAt = Date.now()
  if (level) faultAt = await c.stopMysqldLevel(primary)
  else await c.lab.inject({ _tag: "StopMysqld", host: primary })
  const next = await c.waitForPrimary(60_000, primary)
  assert.notEqual(next, primary)
  await c.waitForWritesAfter(faultAt, 30_000)
  // An operator fixes the old primary's mysqld: it comes back as a replica.
  await c.lab.inject({ _tag: "StartMysqld", host: primary })
  return faultAt
}

/** How long `primaryMysqldHung` keeps the primary's mysqld stopped (issue 10 item 5). */
export const HUNG_MS = 20_000

/**
 * The primary's mysqld hung: SIGSTOP for HUNG_MS (the kernel still accepts
 * TCP connections, nothing answers), then SIGCONT. Its agent must kill it
 * (kill_command) long before that and restart it: no failover. `whileHung`
 * runs right after the SIGSTOP (the lab test checks what a client sees).
 */
export const primaryMysqldHung =
  (whileHung?: (primary: string) => Promise<void>): Scenario =>
  async (c) => {
    const primary = await c.waitForPrimary(10_000)
    const term = c.term(primary)
    const pid = c.lab.mysqldPid(primary)
    assert.ok(pid !== undefined, `mysqld runs on ${primary}`)
    const faultAt = Date.now()
    await c.lab.inject({ _tag: "Pause", host: primary, process: "mysqld" })
    let killedAt: number | undefined
    try {
      await whileHung?.(primary)
      await waitFor(
        `the SIGSTOPped mysqld (pid ${pid}) to be killed`,
        () => !alive(pid),
        Math.max(0, HUNG_MS - (Date.now() - faultAt)),
        100,
      ).catch(() => {})
      if (!alive(pid)) killedAt = Date.now()
      const left = HUNG_MS - (Date.now() - faultAt)
      if (left > 0) await sleep(left)
    } finally {
      // The hang ends (a no-op when the agent killed it).
      try {
        process.kill(pid, "SIGCONT")
      } catch {
        // gone
      }
    }
    assert.ok(killedAt !== undefined, "the hung mysqld was killed before its hang ended")
    assert.ok(killedAt - faultAt < 10_000, `killed ${killedAt - faultAt} ms into the hang`)
    await c.waitForWritesAfter(faultAt, 60_000)
    await sleep(2000)
    assert.equal(await c.primary(), primary, "the same primary: no failover")
    assert.equal(c.term(primary), term, "no election")
    return faultAt
  }

/** 3: the primary host isolated: it fences itself, a replica takes over, the VIP moves. */
export const primaryIsolated: Scenario = async (c) => {
  const primary = await c.waitForPrimary(10_000)
  const faultAt = Date.now()
  await c.lab.inject({ _tag: "Isolate", host: primary })
  const next = await c.waitForPrimary(60_000, primary)
  assert.notEqual(next, primary)
  // The isolated node fenced itself: read over its socket, which needs no network.
  const [old] = await c.lab.query<{ sro: number }>(primary, "SELECT @@super_read_only AS sro")
  assert.equal(old?.sro, 1, "the isolated old primary fenced itself")
  assert.equal(await c.holdsVip(primary), false, "the isolated old primary dropped the VIP")
  await c.waitForWritesAfter(faultAt, 30_000)
  await c.lab.inject({ _tag: "Heal", hosts: [] })
  return faultAt
}

/** 8: a planned switchover there and back, with `mha-agent switchover --to`. */
export const switchoverThereAndBack: Scenario = async (c) => {
  const first = await c.waitForPrimary(10_000)
  // A switchover's target must be a caught-up replica of the primary, as the
  // primary's agent sees it in heartbeats (right after the cluster comes up a
  // replica may still be connecting; the agent refuses, and says so): wait for
  // one, as an operator would.
  const target = await c.standbyOf(first)
  const faultAt = Date.now()
  const there = await c.agents.cli(first, ["switchover", "--to", target])
  assert.match(there.stdout, /transferred/, there.stderr)
  assert.equal(await c.waitForPrimary(20_000, first), target)
  await c.waitForWritesAfter(Date.now(), 30_000)
  // The way back likewise waits for the old primary to replicate from the new one.
  await c.standbyOf(target, first)
  const back = await c.agents.cli(target, ["switchover", "--to", first])
  assert.match(back.stdout, /transferred/, back.stderr)
  assert.equal(await c.waitForPrimary(20_000, target), first)
  await c.waitForWritesAfter(Date.now(), 30_000)
  const status = await c.agents.cli(first, ["status", "--json"])
  const view = JSON.parse(status.stdout) as { status: { leader: string } }
  assert.equal(view.status.leader, first)
  return faultAt
}

/** Section 14: SIGTERM to the primary's agent hands over by switchover before it exits. */
export const primaryAgentStopped: Scenario = async (c) => {
  const primary = await c.waitForPrimary(10_000)
  const faultAt = Date.now()
  await c.agents.stop(primary)
  const next = await c.waitForPrimary(30_000, primary)
  assert.notEqual(next, primary)
  const log = readFileSync(c.agents.logPath(primary), "utf8")
  assert.match(log, /"event":"stopping"/)
  assert.match(log, /"event":"stopped"/, "the agent said how its stop went before exiting")
  await c.waitForWritesAfter(faultAt, 30_000)
  // Without its agent the old primary stays fenced; its agent, started again, rejoins it as a replica.
  const [row] = await c.lab.query<{ sro: number }>(primary, "SELECT @@super_read_only AS sro")
  assert.equal(row?.sro, 1)
  await c.agents.start(primary)
  return faultAt
}
