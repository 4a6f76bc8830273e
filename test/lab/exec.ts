import { execFile, spawn } from "node:child_process"

/** A lab command failed; the message names the command, its exit status and its stderr. */
export class LabError extends Error {
  override readonly name = "LabError"
}

export interface RunResult {
  readonly stdout: string
  readonly stderr: string
}

/** Runs a program (no shell) and fails with a LabError that names it when it exits non-zero. */
export const run = (
  file: string,
  args: ReadonlyArray<string>,
  options: { readonly input?: string; readonly timeoutMs?: number } = {},
): Promise<RunResult> =>
  new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 120_000, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (error) {
          const status = error.killed ? "timed out" : `exited ${String(error.code)}`
          reject(
            new LabError(
              `${[file, ...args].join(" ")} ${status}: ${stderr.trim() || error.message}`,
            ),
          )
        } else resolve({ stdout, stderr })
      },
    )
    if (options.input !== undefined) child.stdin?.end(options.input)
  })

/** Like run, but a non-zero exit is a result, not an error. */
export const tryRun = async (
  file: string,
  args: ReadonlyArray<string>,
): Promise<{ readonly ok: boolean; readonly stdout: string; readonly stderr: string }> => {
  try {
    const r = await run(file, args)
    return { ok: true, ...r }
  } catch (e) {
    return { ok: false, stdout: "", stderr: e instanceof Error ? e.message : String(e) }
  }
}

/** Starts a long-running process detached in its own session; returns its pid. */
export const spawnDetached = (
  file: string,
  args: ReadonlyArray<string>,
  logFd: number,
  env: NodeJS.ProcessEnv = process.env,
): number => {
  const child = spawn(file, args, { detached: true, stdio: ["ignore", logFd, logFd], env })
  if (child.pid === undefined) throw new LabError(`could not start ${file} ${args.join(" ")}`)
  child.unref()
  return child.pid
}

/** A process with this pid exists (signal 0). */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls until check() returns true or the deadline passes; then fails naming what was awaited. */
export const waitFor = async (
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  intervalMs = 100,
): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline)
      throw new LabError(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}
