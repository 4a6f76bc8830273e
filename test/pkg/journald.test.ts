// The agent's log through a real systemd-journald (issue 7): the `<N>`
// priority prefixes become the journal's PRIORITY, and no password reaches
// the journal.
//
// No systemd runs as PID 1 here, but systemd-journald runs on its own: it
// creates its sockets under /run/systemd/journal when none are passed to it,
// and with Storage=volatile it writes to /run/log/journal/<machine-id>. It
// runs in a private mount and PID namespace (unshare) where /run and
// /var/log/journal are bind mounts of a temporary directory, so its sockets
// and journal files are in that directory and the host's own journal, /run
// and /dev/kmsg are never touched (ReadKMsg=no, no forwarding, no audit).
// When the test ends, journald (PID 1 of its namespace) is killed, which
// ends the namespace and its mounts; the directory is removed.
//
// The agent's logger (test/pkg/journald-emitter.ts: makeLogger from
// agent/src/daemon/log.ts with journald = underJournald()) runs under
// `systemd-cat -t mha-agent --level-prefix=true`, entered into journald's
// mount namespace with nsenter (so /run/systemd/journal/stdout is the test
// journald's) and into its PID namespace too: journald refuses a stream whose
// peer has no PID in its namespace ("Failed to determine peer credentials")
// and then stops accepting on that socket altogether. It runs with JOURNAL_STREAM=<dev>:<ino> of its stdout socket as
// systemd sets it for a unit with StandardOutput=journal. journalctl
// --directory then reads the journal files back. A second run without
// JOURNAL_STREAM is the control: no prefixes, so every line is PRIORITY 6.
import assert from "node:assert/strict"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { test } from "node:test"
import { exec, repoRoot, run, scratchDir } from "./helpers.ts"

const JOURNALD = ["/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"].find((p) =>
  existsSync(p),
)
const has = (tool: string): boolean =>
  ["/usr/bin", "/usr/sbin", "/bin", "/sbin"].some((d) => existsSync(join(d, tool)))
const missing = ["unshare", "nsenter", "systemd-cat", "journalctl", "stat"].filter((t) => !has(t))
const skip =
  process.getuid?.() !== 0
    ? "needs root (mount and PID namespaces)"
    : JOURNALD === undefined
      ? "systemd-journald is not installed (apt-get install systemd)"
      : missing.length > 0
        ? `missing: ${missing.join(", ")}`
        : false

const log = (line: string): void => {
  process.stderr.write(`# journald: ${line}\n`)
}

const CONF = `[Journal]
Storage=volatile
ReadKMsg=no
Audit=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
RateLimitBurst=0
`

// Runs in the new namespaces (as `sh -c`, $1 the temporary directory). Any
// failure before exec stops it: journald never starts on the host's /run.
const NAMESPACE_INIT = `set -eu
mount --make-rprivate /
mount --bind "$1/run" /run
if [ -d /var/log/journal ]; then mount --bind "$1/var-log-journal" /var/log/journal; fi
mkdir -p /run/systemd/journald.conf.d /run/systemd/journal
cat "$1/journald.conf" >/run/systemd/journald.conf.d/50-test.conf
exec "$2"
`

// systemd sets JOURNAL_STREAM to the device and inode of the stream socket
// it gives the service as stdout; this shell (exec'd by systemd-cat, its
// stdout that socket) does the same, then execs the emitter.
const WITH_STREAM = `JOURNAL_STREAM=$(stat -L -c %d:%i /proc/$$/fd/1)
export JOURNAL_STREAM
exec "$@"
`
const WITHOUT_STREAM = `unset JOURNAL_STREAM
exec "$@"
`

interface Entry {
  readonly [field: string]: unknown
}

const hasExited = (child: ChildProcess): boolean =>
  child.exitCode !== null || child.signalCode !== null

/** Resolves when the child exits or after `ms`, whichever comes first. */
const exited = (child: ChildProcess, ms: number): Promise<void> =>
  hasExited(child)
    ? Promise.resolve()
    : new Promise((resolve) => {
        const timer = setTimeout(resolve, ms)
        child.once("exit", () => {
          clearTimeout(timer)
          resolve()
        })
      })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test("journald: the agent's lines get PRIORITY 6/4/3 and SYSLOG_IDENTIFIER, and no password", {
  skip,
  timeout: 120_000,
}, async () => {
  const started = Date.now()
  const dir = await scratchDir("journald")
  const secret = `Jrnl-s3cret-${process.pid}-${Date.now()}`
  let ns: ChildProcess | undefined
  let output = ""
  try {
    await mkdir(join(dir, "run"))
    await mkdir(join(dir, "var-log-journal"))
    await writeFile(join(dir, "journald.conf"), CONF)
    ns = spawn(
      "unshare",
      [
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--propagation",
        "private",
        "sh",
        "-c",
        NAMESPACE_INIT,
        "sh",
        dir,
        JOURNALD as string,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    )
    ns.stdout?.on("data", (d: Buffer) => {
      output += d.toString()
    })
    ns.stderr?.on("data", (d: Buffer) => {
      output += d.toString()
    })
    const socket = join(dir, "run/systemd/journal/stdout")
    const deadline = Date.now() + 15_000
    while (!existsSync(socket)) {
      if (hasExited(ns))
        assert.fail(`systemd-journald exited before opening its sockets:\n${output}`)
      if (Date.now() > deadline) assert.fail(`no ${socket} after 15 s:\n${output}`)
      await sleep(50)
    }
    // journald is unshare's child: PID 1 of the new PID namespace.
    const children = await readFile(`/proc/${ns.pid}/task/${ns.pid}/children`, "utf8")
    const journaldPid = Number(children.trim().split(/\s+/)[0])
    assert.ok(journaldPid > 0, `journald's pid (children of unshare: '${children}')`)
    const comm = (await readFile(`/proc/${journaldPid}/comm`, "utf8")).trim()
    assert.equal(comm, "systemd-journal", "unshare's child is systemd-journald")
    log(`systemd-journald runs as pid ${journaldPid}, files in ${dir}`)

    const journalDir = join(dir, "run/log/journal")
    // systemd-cat sends stderr to the journal too: on failure, show the journal.
    const emit = async (identifier: string, script: string) => {
      const r = await exec(
        "nsenter",
        [
          "--target",
          String(journaldPid),
          "--mount",
          "--pid",
          "--",
          "systemd-cat",
          "-t",
          identifier,
          "--level-prefix=true",
          "--",
          "sh",
          "-c",
          script,
          "sh",
          process.execPath,
          "--disable-warning=ExperimentalWarning",
          join(repoRoot, "test/pkg/journald-emitter.ts"),
        ],
        { env: { MHA_TEST_SECRET: secret }, timeoutMs: 60_000 },
      )
      if (r.code !== 0) {
        const journal = await exec("journalctl", [`--directory=${journalDir}`, "--no-pager"])
        assert.fail(
          `the emitter under systemd-cat exited ${r.code}: ${r.stderr}\nthe journal:\n${journal.stdout}`,
        )
      }
    }
    await emit("mha-agent", WITH_STREAM)
    await emit("mha-agent-nostream", WITHOUT_STREAM)

    const entries = async (match: string): Promise<Entry[]> => {
      const r = await run("journalctl", [
        `--directory=${journalDir}`,
        "--no-pager",
        "--all",
        "-o",
        "json",
        match,
      ])
      return r.stdout
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l) as Entry)
    }
    // journald reads the streams asynchronously: wait until it wrote all
    // eight lines, then stop it (it syncs its files on SIGTERM).
    const until = Date.now() + 15_000
    for (;;) {
      const a = await entries("SYSLOG_IDENTIFIER=mha-agent")
      const b = await entries("SYSLOG_IDENTIFIER=mha-agent-nostream")
      if (a.length >= 4 && b.length >= 4) break
      if (Date.now() > until)
        assert.fail(`journald recorded ${a.length} + ${b.length} of 4 + 4 lines:\n${output}`)
      await sleep(100)
    }
    process.kill(journaldPid, "SIGTERM")
    await exited(ns, 10_000)
    assert.ok(hasExited(ns), "journald stopped on SIGTERM")

    // --- the agent under journald: its priorities ------------------------
    const agent = await entries("SYSLOG_IDENTIFIER=mha-agent")
    assert.equal(agent.length, 4, "four lines from the agent")
    assert.deepEqual(
      agent.map((e) => e.PRIORITY),
      ["6", "4", "3", "3"],
      "info, warning, error, error",
    )
    for (const e of agent) {
      assert.equal(e.SYSLOG_IDENTIFIER, "mha-agent")
      assert.equal(e._TRANSPORT, "stdout")
      const message = String(e.MESSAGE)
      assert.ok(message.startsWith("{"), `journald stripped the <N> prefix: ${message}`)
      const line = JSON.parse(message) as Record<string, unknown>
      assert.equal(line.cluster, "jtest")
      assert.equal(line.node, "db1")
      assert.equal(line.term, 7)
      assert.equal(typeof line.event, "string")
    }
    const lines = agent.map((e) => JSON.parse(String(e.MESSAGE)) as Record<string, unknown>)
    assert.deepEqual(
      lines.map((l) => l.msg),
      [
        "journald test: info",
        "journald test: warning",
        "journald test: error",
        "journald test: error with a password",
      ],
    )
    // The password-bearing line arrived whole, with its secrets redacted.
    const last = lines[3] as {
      err: { message: string; sql: string }
      config: { mysql: { replication: { password: string } } }
    }
    assert.match(last.err.sql, /SOURCE_PASSWORD = '\[redacted\]'/)
    assert.match(last.err.message, /SOURCE_PASSWORD = '\[redacted\]'/)
    assert.equal(last.config.mysql.replication.password, "[redacted]")

    // --- the control: no JOURNAL_STREAM, no prefixes, all PRIORITY 6 -----
    const plain = await entries("SYSLOG_IDENTIFIER=mha-agent-nostream")
    assert.deepEqual(
      plain.map((e) => e.PRIORITY),
      ["6", "6", "6", "6"],
    )
    assert.ok(plain.every((e) => String(e.MESSAGE).startsWith('{"level":')))

    // --- the secret is nowhere: not in any field of any entry, not in the files
    const exported = await run("journalctl", [
      `--directory=${journalDir}`,
      "--no-pager",
      "--all",
      "-o",
      "export",
    ])
    assert.ok(exported.stdout.includes("journald test: error with a password"))
    assert.ok(!exported.stdout.includes(secret), "the secret is in the journal")
    const files = (await exec("find", [journalDir, "-type", "f"])).stdout.split("\n")
    for (const f of files.filter((x) => x !== "")) {
      assert.ok(!(await readFile(f)).includes(secret), `the secret is in ${f}`)
    }
    const hostJournal = await readdir(join(dir, "var-log-journal"))
    assert.deepEqual(hostJournal, [], "nothing written to the (masked) /var/log/journal")
  } finally {
    if (ns !== undefined && !hasExited(ns)) {
      // --kill-child: unshare's death kills journald, PID 1 of the
      // namespace, and with it the namespace and its mounts.
      ns.kill("SIGKILL")
      await exited(ns, 10_000)
    }
    await rm(dir, { recursive: true, force: true })
    log(`took ${((Date.now() - started) / 1000).toFixed(1)} s`)
  }
})
