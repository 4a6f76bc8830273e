import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type TestContext, test } from "node:test"
import { Effect, Fiber } from "effect"
import {
  type RestartOptions,
  type RestartResult,
  restartOptionsFromConfig,
  ServiceManager,
} from "../../agent/src/adapters/service-manager.ts"
import { parseConfigText } from "../../agent/src/daemon/config-load.ts"

const tempDir = async (t: TestContext): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), "mha-service-"))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const restart = (options: RestartOptions): Promise<RestartResult> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const manager = yield* ServiceManager
      return yield* manager.restart(options)
    }).pipe(Effect.provide(ServiceManager.layer)),
  )

/** Alive and not a zombie (a killed orphan may stay a zombie under a non-reaping PID 1). */
const running = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]
    return state !== "Z" && state !== "X"
  } catch {
    return false
  }
}

const waitFor = async (what: string, f: () => Promise<boolean> | boolean, ms = 5_000) => {
  const deadline = Date.now() + ms
  while (!(await f())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const readPid = async (file: string): Promise<number> =>
  Number((await readFile(file, "utf8")).trim())

test("the restart command succeeds on the second attempt after a pause", async (t) => {
  const dir = await tempDir(t)
  const counter = join(dir, "attempts")
  const command = `n=$(cat ${counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > ${counter}; if [ $n -lt 2 ]; then echo "mysqld not up yet (attempt $n)" >&2; exit 3; fi; echo started`
  const started = Date.now()
  const result = await restart({ command, timeoutMs: 5_000, attempts: 3, retryDelayMs: 200 })
  assert.equal(result._tag, "Succeeded")
  assert.ok(result._tag === "Succeeded")
  assert.equal(result.attempts, 2)
  assert.equal(result.history.length, 2)
  assert.equal(result.history[0]?.outcome, "failed")
  assert.equal(result.history[0]?.exitCode, 3)
  assert.equal(result.history[0]?.stderrTail.trim(), "mysqld not up yet (attempt 1)")
  assert.match(result.history[0]?.summary ?? "", /exited with code 3/)
  assert.equal(result.history[1]?.outcome, "succeeded")
  assert.equal(result.history[1]?.exitCode, 0)
  assert.ok(Date.now() - started >= 200, "paused between attempts")
  assert.equal((await readFile(counter, "utf8")).trim(), "2", "no third attempt")
})

test("bounded attempts: every failure is reported with its exit code and stderr", async (t) => {
  const dir = await tempDir(t)
  const counter = join(dir, "attempts")
  const command = `n=$(cat ${counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > ${counter}; echo "failure $n" >&2; exit $((10 + n))`
  const result = await restart({ command, timeoutMs: 5_000, attempts: 3, retryDelayMs: 0 })
  assert.equal(result._tag, "Failed")
  assert.deepEqual(
    result.history.map((a) => [a.attempt, a.outcome, a.exitCode, a.stderrTail.trim()]),
    [
      [1, "failed", 11, "failure 1"],
      [2, "failed", 12, "failure 2"],
      [3, "failed", 13, "failure 3"],
    ],
  )
  const missing = await restart({
    command: "/nonexistent/mysql-ctl restart",
    timeoutMs: 5_000,
    attempts: 1,
    retryDelayMs: 0,
  })
  assert.equal(missing._tag, "Failed")
  assert.equal(missing.history[0]?.exitCode, 127)
  assert.match(missing.history[0]?.stderrTail ?? "", /not found/)
})

test("a hung restart times out and its whole process group is killed", async (t) => {
  const dir = await tempDir(t)
  const pids = join(dir, "pids")
  // The command starts a grandchild that ignores SIGTERM, then hangs.
  const command = `(trap '' TERM; exec sleep 60) & echo $! > ${pids}.grandchild; echo $$ > ${pids}.shell; sleep 60`
  const started = Date.now()
  const result = await restart({
    command,
    timeoutMs: 300,
    attempts: 2,
    retryDelayMs: 0,
    killGraceMs: 200,
  })
  assert.equal(result._tag, "Failed")
  assert.deepEqual(
    result.history.map((a) => a.outcome),
    ["timed-out", "timed-out"],
  )
  assert.equal(result.history[0]?.exitCode, null)
  assert.match(result.history[0]?.summary ?? "", /timed out .* process group was killed/)
  const grandchild = await readPid(`${pids}.grandchild`)
  const shell = await readPid(`${pids}.shell`)
  assert.equal(running(shell), false, "the shell is gone")
  assert.equal(running(grandchild), false, "the grandchild that ignored SIGTERM is gone too")
  assert.ok(Date.now() - started < 5_000)
})

test("interrupting a restart kills its process group", async (t) => {
  const dir = await tempDir(t)
  const pidFile = join(dir, "grandchild")
  const fiber = Effect.runFork(
    Effect.gen(function* () {
      const manager = yield* ServiceManager
      return yield* manager.restart({
        command: `sleep 60 & echo $! > ${pidFile}; wait`,
        timeoutMs: 60_000,
        attempts: 1,
        retryDelayMs: 0,
      })
    }).pipe(Effect.provide(ServiceManager.layer)),
  )
  await waitFor("the grandchild to start", async () => {
    try {
      return (await readFile(pidFile, "utf8")).trim() !== ""
    } catch {
      return false
    }
  })
  const grandchild = await readPid(pidFile)
  assert.equal(running(grandchild), true)
  await Effect.runPromise(Fiber.interrupt(fiber))
  await waitFor("the grandchild to be killed", () => !running(grandchild))
})

test("restart options come from the config's service and timings sections", () => {
  const parsed = parseConfigText(`cluster:
  name: c
  members: [{ name: a, address: h, agent_port: 1 }]
node: a
mysql:
  monitor: { user: m, password_file: /m }
  replication: { user: r, password_file: /r }
  get_source_public_key: true
mesh: { ca: /ca, cert: /c, key: /k }
service:
  restart_command: /usr/sbin/service mysql restart
timings:
  restart_timeout: 45s
  restart_attempts: 3
  restart_retry_delay: 2s
`)
  assert.equal(parsed._tag, "Ok")
  if (parsed._tag !== "Ok") return
  assert.deepEqual(restartOptionsFromConfig(parsed.config), {
    command: "/usr/sbin/service mysql restart",
    timeoutMs: 45_000,
    attempts: 3,
    retryDelayMs: 2_000,
  })
})
