/**
 * Runs one external command in a process group of its own, with a timeout
 * that kills the whole group, for the service manager (restart_command) and
 * the hook runner.
 *
 * The child is spawned detached (setsid: it leads a new session and process
 * group), so everything it starts shares its group. On timeout the group gets
 * SIGTERM, then SIGKILL after a grace period, and the run completes once the
 * group is gone (bounded). When the child exits by itself, whatever it left
 * running in the background is left alone: a `service mysql restart` style
 * script may legitimately leave mysqld behind. Interrupting the run kills the
 * group at once.
 *
 * The result is always a value (never a typed failure): exited with a code,
 * killed by a signal, timed out, or could not be spawned, with the tail of
 * its stdout and stderr.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { Effect } from "effect"

export interface ProcessRunOptions {
  /** Executable path (no shell unless it is the shell itself). */
  readonly file: string
  readonly args?: ReadonlyArray<string>
  /** The complete environment of the child. */
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly cwd?: string
  readonly timeoutMs: number
  /** Time between SIGTERM and SIGKILL to the group on timeout (default 1000 ms). */
  readonly killGraceMs?: number
  /** How many trailing bytes of stdout and of stderr to keep (default 4096). */
  readonly tailBytes?: number
}

interface RunCommon {
  readonly durationMs: number
  readonly stdoutTail: string
  readonly stderrTail: string
  /** Process id of the child, also its process-group id. */
  readonly pid: number | undefined
}

export type ProcessRunResult =
  | ({ readonly _tag: "Exited"; readonly code: number } & RunCommon)
  | ({ readonly _tag: "Signaled"; readonly signal: string } & RunCommon)
  | ({ readonly _tag: "TimedOut" } & RunCommon)
  | ({ readonly _tag: "SpawnFailed"; readonly reason: string } & RunCommon)

/** Keeps the last `limit` bytes written to it. */
class Tail {
  private chunks: Array<Buffer> = []
  private size = 0
  private readonly limit: number
  constructor(limit: number) {
    this.limit = limit
  }
  push(chunk: Buffer): void {
    if (this.limit <= 0) return
    this.chunks.push(chunk)
    this.size += chunk.length
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit && this.chunks.length > 1) {
      this.size -= this.chunks.shift()?.length ?? 0
    }
  }
  text(): string {
    const all = Buffer.concat(this.chunks)
    return all.subarray(Math.max(0, all.length - this.limit)).toString("utf8")
  }
}

const GROUP_POLL_MS = 10
const GROUP_WAIT_AFTER_KILL_MS = 1_000
const STDIO_DRAIN_MS = 100

/**
 * True while a process of the group is still running. Zombies do not count:
 * an orphaned member that was killed stays a zombie until its new parent
 * reaps it, which a container's PID 1 may never do. On Linux, /proc tells
 * zombies apart; elsewhere any member counts.
 */
export const processGroupAlive = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false
  }
  let pids: Array<string>
  try {
    pids = readdirSync("/proc").filter((n) => /^\d+$/.test(n))
  } catch {
    return true
  }
  for (const pid of pids) {
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    } catch {
      continue
    }
    // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") return true
  }
  return false
}

const signalGroup = (pgid: number | undefined, signal: NodeJS.Signals): void => {
  if (pgid === undefined) return
  try {
    process.kill(-pgid, signal)
  } catch {
    // the group is already gone
  }
}

/** Runs the command; see the module comment for the semantics. */
export const runInProcessGroup = (options: ProcessRunOptions): Effect.Effect<ProcessRunResult> =>
  Effect.callback<ProcessRunResult>((resume) => {
    const started = performance.now()
    const grace = options.killGraceMs ?? 1_000
    const stdout = new Tail(options.tailBytes ?? 4_096)
    const stderr = new Tail(options.tailBytes ?? 4_096)
    const timers = new Set<NodeJS.Timeout>()
    const later = (ms: number, f: () => void): NodeJS.Timeout => {
      const t = setTimeout(() => {
        timers.delete(t)
        f()
      }, ms)
      timers.add(t)
      return t
    }
    let settled = false
    let timedOut = false
    let child: ChildProcess | undefined

    const common = (): RunCommon => ({
      durationMs: Math.round(performance.now() - started),
      stdoutTail: stdout.text(),
      stderrTail: stderr.text(),
      pid: child?.pid,
    })
    const settle = (result: ProcessRunResult) => {
      if (settled) return
      settled = true
      for (const t of timers) clearTimeout(t)
      timers.clear()
      child?.stdout?.destroy()
      child?.stderr?.destroy()
      resume(Effect.succeed(result))
    }

    try {
      child = spawn(options.file, [...(options.args ?? [])], {
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        ...(options.env === undefined ? {} : { env: options.env }),
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      })
    } catch (e) {
      settle({ _tag: "SpawnFailed", reason: String((e as Error)?.message ?? e), ...common() })
      return
    }
    const proc = child
    const pgid = proc.pid
    proc.stdout?.on("data", (b: Buffer) => stdout.push(b))
    proc.stderr?.on("data", (b: Buffer) => stderr.push(b))
    proc.stdout?.on("error", () => {})
    proc.stderr?.on("error", () => {})

    proc.on("error", (e) => {
      // spawn failure (ENOENT, EACCES): no exit event follows
      if (pgid === undefined) {
        settle({ _tag: "SpawnFailed", reason: e.message, ...common() })
      }
    })

    // After a timeout: the run ends when the whole group is gone, SIGKILL at the
    // end of the grace period, and at most GROUP_WAIT_AFTER_KILL_MS after that.
    let killDeadline = Number.POSITIVE_INFINITY
    let killed = false
    const awaitGroupGone = () => {
      const now = performance.now()
      if (pgid === undefined || !processGroupAlive(pgid)) {
        if (proc.exitCode !== null || proc.signalCode !== null)
          settle({ _tag: "TimedOut", ...common() })
        else later(GROUP_POLL_MS, awaitGroupGone)
        return
      }
      if (!killed && now >= killDeadline) {
        killed = true
        signalGroup(pgid, "SIGKILL")
        killDeadline = now + GROUP_WAIT_AFTER_KILL_MS
      } else if (killed && now >= killDeadline) {
        settle({ _tag: "TimedOut", ...common() })
        return
      }
      later(GROUP_POLL_MS, awaitGroupGone)
    }

    const deadline = later(options.timeoutMs, () => {
      timedOut = true
      signalGroup(pgid, "SIGTERM")
      killDeadline = performance.now() + grace
      awaitGroupGone()
    })

    proc.on("exit", (code, signal) => {
      if (timedOut) return // awaitGroupGone settles
      clearTimeout(deadline)
      timers.delete(deadline)
      const finish = () =>
        settle(
          code !== null
            ? { _tag: "Exited", code, ...common() }
            : { _tag: "Signaled", signal: signal ?? "unknown", ...common() },
        )
      // Let the pipes drain, unless a background process keeps them open.
      let open = 2
      const closed = () => {
        open -= 1
        if (open === 0) finish()
      }
      if (proc.stdout?.readableEnded ?? true) closed()
      else proc.stdout?.once("end", closed)
      if (proc.stderr?.readableEnded ?? true) closed()
      else proc.stderr?.once("end", closed)
      later(STDIO_DRAIN_MS, finish)
    })

    // Interruption (agent shutdown, caller gave up): kill the group now.
    return Effect.sync(() => {
      const leaderRunning = proc.exitCode === null && proc.signalCode === null
      if (!settled && (timedOut || leaderRunning)) signalGroup(pgid, "SIGKILL")
      settled = true
      for (const t of timers) clearTimeout(t)
      timers.clear()
      proc.stdout?.destroy()
      proc.stderr?.destroy()
    })
  })

/** A short human description of a run result, for logs and errors. */
export const describeRun = (r: ProcessRunResult): string => {
  switch (r._tag) {
    case "Exited":
      return `exited with code ${r.code} after ${r.durationMs} ms`
    case "Signaled":
      return `killed by ${r.signal} after ${r.durationMs} ms`
    case "TimedOut":
      return `timed out after ${r.durationMs} ms; its process group was killed`
    case "SpawnFailed":
      return `could not be started: ${r.reason}`
  }
}
