import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type TestContext, test } from "node:test"
import { Effect } from "effect"
import {
  HookRunner,
  type HookSettings,
  hookAllows,
  inspectHookPath,
} from "../../agent/src/adapters/hook-runner.ts"
import type { Config } from "../../shared/config.ts"

const tempDir = async (t: TestContext): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), "mha-hooks-"))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Writes an executable shell script with a safe mode. */
const script = async (path: string, body: string, mode = 0o755): Promise<string> => {
  await writeFile(path, `#!/bin/sh\n${body}\n`)
  await chmod(path, mode)
  return path
}

const settings = (hooks: Partial<Config["hooks"]>): HookSettings => ({
  cluster: "prod",
  node: "db1",
  hooks: { timeout: 5_000, queue_size: 64, ...hooks },
  killGraceMs: 200,
})

const withRunner = <A, E>(
  s: HookSettings,
  f: (runner: HookRunner["Service"]) => Effect.Effect<A, E>,
): Promise<A> =>
  Effect.runPromise(
    Effect.gen(function* () {
      return yield* f(yield* HookRunner)
    }).pipe(Effect.provide(HookRunner.layer(Effect.succeed(s)))),
  )

const running = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]
    return state !== "Z" && state !== "X"
  } catch {
    return false
  }
}

const waitFor = (what: string, f: () => Promise<boolean>, ms = 5_000) =>
  Effect.promise(async () => {
    const deadline = Date.now() + ms
    while (!(await f())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 10))
    }
  })

const readLines = async (file: string): Promise<Array<string>> => {
  try {
    return (await readFile(file, "utf8")).split("\n").filter((l) => l !== "")
  } catch {
    return []
  }
}

test("a hook gets the MHA_* environment, and inherited MHA_* variables are not passed on", async (t) => {
  const dir = await tempDir(t)
  const out = join(dir, "env")
  const hook = await script(join(dir, "pre-failover"), `env | grep '^MHA_' | sort > ${out}`)
  process.env.MHA_STALE = "from the agent's own environment"
  t.after(() => {
    delete process.env.MHA_STALE
  })
  const result = await withRunner(settings({ pre_failover: hook }), (r) =>
    r.runBlocking({
      hook: "pre_failover",
      oldPrimary: "db1",
      newPrimary: "db2",
      term: 42n,
      reason: "primary mysqld unreachable from a quorum",
    }),
  )
  assert.equal(result._tag, "Ran")
  assert.equal(hookAllows(result), true)
  assert.deepEqual(await readLines(out), [
    "MHA_CLUSTER=prod",
    "MHA_EVENT=pre_failover",
    "MHA_NEW_PRIMARY=db2",
    "MHA_NODE=db1",
    "MHA_OLD_PRIMARY=db1",
    "MHA_REASON=primary mysqld unreachable from a quorum",
    "MHA_TERM=42",
  ])
})

test("a blocking hook returns its exit status: non-zero does not allow the action", async (t) => {
  const dir = await tempDir(t)
  const veto = await script(join(dir, "veto"), 'echo "maintenance window" >&2; exit 2')
  const result = await withRunner(settings({ pre_switchover: veto }), (r) =>
    r.runBlocking({ hook: "pre_switchover", newPrimary: "db2" }),
  )
  assert.equal(result._tag, "Ran")
  assert.ok(result._tag === "Ran" && result.run._tag === "Exited")
  assert.equal(result.run.code, 2)
  assert.equal(result.run.stderrTail.trim(), "maintenance window")
  assert.equal(hookAllows(result), false)

  const none = await withRunner(settings({}), (r) => r.runBlocking({ hook: "pre_failover" }))
  assert.equal(none._tag, "NotConfigured")
  assert.equal(hookAllows(none), true, "no hook configured: nothing to veto")
})

test("a hook that passes its timeout has its whole process group killed", async (t) => {
  const dir = await tempDir(t)
  const pids = join(dir, "pids")
  const hook = await script(
    join(dir, "slow"),
    `(trap '' TERM; exec sleep 60) & echo $! > ${pids}.grandchild\necho $$ > ${pids}.hook\nsleep 60`,
  )
  const started = Date.now()
  const result = await withRunner(
    {
      ...settings({ pre_failover: hook }),
      hooks: { timeout: 300, queue_size: 4, pre_failover: hook },
    },
    (r) => r.runBlocking({ hook: "pre_failover" }),
  )
  assert.equal(result._tag, "Ran")
  assert.ok(result._tag === "Ran")
  assert.equal(result.run._tag, "TimedOut")
  assert.equal(hookAllows(result), false)
  const grandchild = Number((await readFile(`${pids}.grandchild`, "utf8")).trim())
  const leader = Number((await readFile(`${pids}.hook`, "utf8")).trim())
  assert.equal(running(leader), false)
  assert.equal(running(grandchild), false, "the grandchild that ignored SIGTERM was killed too")
  assert.ok(Date.now() - started < 5_000)
})

test("unsafe hook paths are refused with the hook's name and the reason, and never run", async (t) => {
  const dir = await tempDir(t)
  const marker = join(dir, "ran")
  const body = `touch ${marker}`
  const good = await script(join(dir, "good"), body)
  const link = join(dir, "link")
  await symlink(good, link)
  const groupWritable = await script(join(dir, "group-writable"), body, 0o775)
  const worldWritable = await script(join(dir, "world-writable"), body, 0o757)
  const notExecutable = await script(join(dir, "not-executable"), body, 0o644)
  const aDirectory = join(dir, "a-directory")
  await mkdir(aDirectory)
  const openDir = join(dir, "open")
  await mkdir(openDir)
  await chmod(openDir, 0o777)
  const inOpenDir = await script(join(openDir, "hook"), body)

  const cases: Array<[string, RegExp]> = [
    ["hooks/relative", /not absolute/],
    [link, /symlink/],
    [groupWritable, /writable by its group \(mode 0775\)/],
    [worldWritable, /writable by others \(mode 0757\)/],
    [notExecutable, /not executable \(mode 0644\)/],
    [aDirectory, /not a regular file/],
    [inOpenDir, /directory .*open is writable by group or others \(mode 0777\)/],
    [join(dir, "missing"), /cannot inspect it: ENOENT/],
  ]
  for (const [path, reason] of cases) {
    const result = await withRunner(settings({ pre_failover: path }), (r) =>
      r.runBlocking({ hook: "pre_failover" }),
    )
    assert.equal(result._tag, "Refused", path)
    assert.ok(result._tag === "Refused")
    assert.equal(result.hook, "pre_failover")
    assert.match(result.reason, reason, path)
    assert.equal(hookAllows(result), false, "a refused blocking hook does not allow the action")
  }
  await assert.rejects(readFile(marker), "no refused hook ran")

  assert.equal(await Effect.runPromise(inspectHookPath(good)), undefined)
  const problems = await withRunner(
    settings({ on_fence: link, post_failover: good, on_split_brain: notExecutable }),
    (r) => r.check,
  )
  assert.deepEqual(problems.map((p) => p.hook).sort(), ["on_fence", "on_split_brain"])
})

test("non-blocking hooks run in order without blocking the caller; a full queue drops the oldest", async (t) => {
  const dir = await tempDir(t)
  const log = join(dir, "log")
  const release = join(dir, "release")
  const hook = await script(
    join(dir, "notify"),
    `echo "$MHA_EVENT $MHA_REASON" >> ${log}
if [ "$MHA_REASON" = A ]; then while [ ! -e ${release} ]; do sleep 0.02; done; fi`,
  )
  const s: HookSettings = {
    ...settings({}),
    hooks: { timeout: 10_000, queue_size: 2, post_failover: hook, on_role_change: hook },
  }
  const stats = await withRunner(s, (r) =>
    Effect.gen(function* () {
      yield* r.enqueue({ hook: "post_failover", reason: "A" })
      yield* waitFor("A to start", async () => (await readLines(log)).length === 1)
      // A is running and blocked; B, C, D queue up behind it (room for 2).
      const before = Date.now()
      yield* r.enqueue({ hook: "on_role_change", reason: "B" })
      yield* r.enqueue({ hook: "post_failover", reason: "C" })
      yield* r.enqueue({ hook: "on_role_change", reason: "D" })
      assert.ok(Date.now() - before < 200, "enqueue never waits for a running hook")
      const full = yield* r.stats
      assert.equal(full.pending, 2)
      assert.equal(full.dropped, 1)
      yield* Effect.promise(() => writeFile(release, ""))
      yield* waitFor("C and D to run", async () => (await readLines(log)).length === 3)
      yield* waitFor("the runs to be counted", () =>
        Effect.runPromise(Effect.map(r.stats, (st) => st.runs.succeeded === 3)),
      )
      return yield* r.stats
    }),
  )
  assert.deepEqual(await readLines(log), ["post_failover A", "post_failover C", "on_role_change D"])
  assert.equal(stats.dropped, 1)
  assert.equal(stats.pending, 0)
  assert.deepEqual(stats.runs, {
    succeeded: 3,
    failed: 0,
    timed_out: 0,
    refused: 0,
    spawn_failed: 0,
  })
})

test("closing the runner kills a running non-blocking hook", async (t) => {
  const dir = await tempDir(t)
  const pidFile = join(dir, "pid")
  const hook = await script(join(dir, "forever"), `echo $$ > ${pidFile}\nsleep 60`)
  await withRunner(settings({ on_failure_detected: hook }), (r) =>
    Effect.gen(function* () {
      yield* r.enqueue({ hook: "on_failure_detected" })
      yield* waitFor("the hook to start", async () => (await readLines(pidFile)).length === 1)
    }),
  )
  const pid = Number((await readFile(pidFile, "utf8")).trim())
  await Effect.runPromise(waitFor("the hook to be killed", async () => !running(pid)))
})
