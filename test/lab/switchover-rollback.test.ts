// Issue 16 item 2: a switchover's actions must not outlive it, and its
// timeouts must not follow the wall clock. On the primary, a long transaction
// (a row lock, then SLEEP(70)) and an UPDATE waiting for that lock keep client
// sessions busy; `switchover --to <replica> --drain-timeout 5` runs. Twice on
// one cluster: db1 -> db2 as is, then back (db2 -> db1) with the primary's
// agent's wall clock stepped back 30 s one second into the drain (Debian's
// libfaketime on the agent processes of db1 and db2, each with its own offset
// file, left at +0 but for that step; DONT_FAKE_MONOTONIC=1: the monotonic
// clock untouched).
// Before the fix the stepped drain ran 35 s: the switchover rolled back at its
// timeout, and 25 s later the drain ended and fenced the primary it had
// given back (its role flapped, writers saw a second gap). Either outcome
// (handed over, or rolled back) is fine; what is asserted: the old primary's
// agent never fences or drains after the outcome, the writable node never
// changes after it, the writer sees at most one gap, and (c.check) nothing
// acknowledged is lost and two nodes are never writable.
import assert from "node:assert/strict"
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { test } from "node:test"
import mysql from "mysql2/promise"
import { type LabCluster, runScenario } from "./cluster.ts"
import { sleep, waitFor } from "./exec.ts"
import { readSamplerLog } from "./invariants.ts"
import { LAB_USERS } from "./lab.ts"

const LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
/** A pause between two acknowledged writes this long is a write gap (the writer writes every 20 ms). */
const GAP_MS = 1_000
/** After the outcome, roles settle (the rolled-back primary unfences at its next probe) within this. */
const SETTLE_MS = 3_000
/** Watched at least this long after the outcome. */
const AFTER_OUTCOME_MS = 10_000

const agentEvents = (c: LabCluster, host: string, fromByte: number): string[] =>
  readFileSync(c.agents.logPath(host))
    .subarray(fromByte)
    .toString("utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => (JSON.parse(l) as { event?: string }).event ?? "")

/**
 * Acknowledged-write gaps of at least GAP_MS inside [from, to] (ack times).
 * Two gaps with only one write between them are one outage (e.g. the new
 * primary's first commit went through, the next waited for a replica to
 * reconnect): a flap shows as writes flowing between two gaps.
 */
const writeGaps = (c: LabCluster, from: number, to: number): Array<[number, number]> => {
  const acked = c.writes().acked
  const gaps: Array<[number, number]> = []
  for (let i = 1; i < acked.length; i++) {
    const prev = acked[i - 1]!.t
    const cur = acked[i]!.t
    if (cur < from || prev > to) continue
    if (cur - prev < GAP_MS) continue
    const last = gaps.at(-1)
    if (last !== undefined && last[1] === prev - from) last[1] = cur - from
    else gaps.push([prev - from, cur - from])
  }
  return gaps
}

/**
 * One switchover from `from` to `to` with busy client sessions on `from`;
 * `stepClock`: the faketime file of `from`'s agent, stepped back 30 s one
 * second into the drain. Watches until `windowMs` after the request.
 */
const drainSwitchover = async (
  c: LabCluster,
  from: string,
  to: string,
  windowMs: number,
  stepClock?: string,
): Promise<void> => {
  const label = `${from} -> ${to}${stepClock === undefined ? "" : ", wall clock stepped back 30 s"}`
  const logStart = statSync(c.agents.logPath(from)).size
  // The long transaction: a row lock held while it sleeps; and an UPDATE waiting for that row.
  // As the application's user (the agent may not kill root's sessions: SYSTEM_USER).
  const client = () =>
    mysql.createConnection({
      socketPath: c.lab.hostPath(from, "mysqld.sock"),
      user: LAB_USERS.app.user,
      password: LAB_USERS.app.password,
    })
  const holder = await client()
  const waiter = await client()
  await holder.query("BEGIN")
  await holder.query("UPDATE app.locked SET v = v + 1 WHERE id = 1")
  const sessions = [
    holder.query("SELECT SLEEP(70)"),
    waiter.query("UPDATE app.locked SET v = v + 2 WHERE id = 1"),
  ].map((p) => p.catch(() => undefined))
  await sleep(500)

  const faultAt = Date.now()
  const switchover = c.agents
    .cli(from, ["switchover", "--to", to, "--drain-timeout", "5"])
    .then((r) => ({ text: r.stdout.trim(), at: Date.now() }))
    .catch((e: unknown) => ({ text: e instanceof Error ? e.message : String(e), at: Date.now() }))
  if (stepClock !== undefined) {
    // The fence batch (VIP off, drain, fence, kill) follows switchover-converged at once.
    await waitFor(
      `${from}'s switchover to converge`,
      () => agentEvents(c, from, logStart).includes("switchover-converged"),
      15_000,
      50,
    )
    await sleep(1_000)
    writeFileSync(stepClock, "-30s\n")
  }
  const result = await switchover
  console.log(`--- ${label}: answered after ${result.at - faultAt} ms\n${result.text}`)
  const handedOver = result.text.includes("leadership transferred")
  const rolledBack = result.text.includes("rolled back")
  assert.ok(handedOver || rolledBack, `${label}: a handover or a rollback, got: ${result.text}`)
  const end = Math.max(faultAt + windowMs, result.at + AFTER_OUTCOME_MS)
  if (Date.now() < end) await sleep(end - Date.now())
  await Promise.all(sessions)
  for (const conn of [holder, waiter]) conn.destroy()

  const problems: string[] = []
  // The old primary's agent: nothing of the switchover after its outcome.
  const events = agentEvents(c, from, logStart)
  const outcome = events.indexOf(handedOver ? "transfer" : "switchover-rollback")
  assert.ok(outcome >= 0, `${label}: the outcome in ${from}'s log`)
  // After a handover the old primary steps down (self-fenced): only a late drain is wrong there.
  const late = events
    .slice(outcome + 1)
    .filter((e) =>
      (handedOver
        ? ["drain-timeout"]
        : ["drain-timeout", "self-fenced", "split-brain-guard"]
      ).includes(e),
    )
  const seen = events.slice(outcome + 1).filter((e) => /drain|superseded|fence|split-brain/.test(e))
  console.log(`${label}: ${from}'s drain and fence events after the outcome: ${seen.join(", ")}`)
  if (late.length > 0)
    problems.push(`${from}'s agent after the outcome: ${late.join(", ")} (a drain or fence)`)

  // The writable node after the outcome: always the same one (no flap).
  const primary = handedOver ? to : from
  const rounds = readSamplerLog(c.samplerLog).filter(
    (r) => r.t >= result.at + SETTLE_MS && r.t <= end,
  )
  assert.ok(rounds.length > 10, `${label}: sampler rounds after the outcome`)
  const flaps = rounds.filter((r) => r.nodes[primary] === "read-only")
  if (flaps.length > 0)
    problems.push(
      `${primary} read-only in ${flaps.length} samples after the outcome, first ${flaps[0]!.t - faultAt} ms after the request`,
    )
  const others = rounds.filter((r) =>
    Object.entries(r.nodes).some(([n, w]) => n !== primary && w === "writable"),
  )
  if (others.length > 0)
    problems.push(`another node writable in ${others.length} samples after the outcome`)

  // The writer: the switchover's own block, and no second gap.
  const gaps = writeGaps(c, faultAt, end)
  console.log(
    `${label}: write gaps >= ${GAP_MS} ms (ms after the request): ${JSON.stringify(gaps)}`,
  )
  if (gaps.length > 1) problems.push(`the writer saw ${gaps.length} gaps: ${JSON.stringify(gaps)}`)
  assert.deepEqual(problems, [], label)
}

test("switchover --drain-timeout with a long transaction, with and without the wall clock stepped back: nothing fenced after the outcome, no flap, one write gap", {
  timeout: 420_000,
}, async () => {
  assert.ok(
    existsSync(LIBFAKETIME),
    `${LIBFAKETIME} is missing: apt-get install -y libfaketime (scripts/setup.sh installs it)`,
  )
  const dir = mkdtempSync(join(tmpdir(), "mha-faketime-"))
  const clockOf = (host: string) => join(dir, host)
  const faketime = (host: string) => {
    writeFileSync(clockOf(host), "+0\n")
    return {
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME_TIMESTAMP_FILE: clockOf(host),
      FAKETIME_NO_CACHE: "1",
      DONT_FAKE_MONOTONIC: "1",
    }
  }
  try {
    await runScenario(
      {
        slug: "switchover-rollback",
        hostEnv: { db1: faketime("db1"), db2: faketime("db2") },
      },
      async (c) => {
        const first = await c.waitForPrimary(10_000)
        assert.equal(first, "db1")
        await c.lab.query("db1", "CREATE TABLE app.locked (id INT PRIMARY KEY, v INT)")
        await c.lab.query("db1", "INSERT INTO app.locked VALUES (1, 0)")
        await c.lab.waitReplicasCaughtUp("db1")
        const faultAt = Date.now()

        await drainSwitchover(c, "db1", "db2", 15_000)
        // Back again (or, had the first rolled back, the same way), from a stepped wall clock.
        const from = await c.waitForPrimary(30_000)
        assert.ok(from === "db1" || from === "db2", `the primary is ${from}`)
        const to = from === "db1" ? "db2" : "db1"
        await waitFor(
          `${to} to be ready to take over from ${from}`,
          () =>
            c.agents
              .cli(from, ["switchover", "--to", to, "--dry-run"])
              .then(() => true)
              .catch(() => false),
          60_000,
          1_000,
        )
        await drainSwitchover(c, from, to, 45_000, clockOf(from))

        const r = await c.check(faultAt)
        console.log(`acked ${r.acked}, longest write gap ${r.downtimeMs} ms`)
        assert.deepEqual(r.problems, [])
      },
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
