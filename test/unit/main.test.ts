// The entry point's command table: `mha-agent --help` lists every command of
// operations.md, `mha-agent <command> --help` gives usage, description,
// options and exit codes, and a bad command line is one line on stderr with
// exit 2. The last test runs the real program to check its exit status.
import assert from "node:assert/strict"
import { execFile } from "node:child_process"
import { join } from "node:path"
import { describe, test } from "node:test"
import { bufferIo } from "../../agent/src/cli/io.ts"
import { commands, main } from "../../agent/src/main.ts"

const OPERATIONS_COMMANDS = [
  "run",
  "status",
  "topology",
  "switchover",
  "failover",
  "pause",
  "resume",
  "exclude",
  "include",
  "member",
  "ack-recovery",
  "rejoin",
  "demote",
  "clone",
  "errant-gtid",
  "history",
  "reload",
  "check-config",
  "make-certs",
  "mysql-accounts",
  "check-mysql",
  "version",
]

const run = async (argv: string[]) => {
  const io = bufferIo()
  const code = await main(argv, io)
  return { code, stdout: io.stdout(), stderr: io.stderr() }
}

describe("the command table", () => {
  test("every command of operations.md is there, and nothing else", () => {
    assert.deepEqual(Object.keys(commands).sort(), [...OPERATIONS_COMMANDS].sort())
  })

  test("mha-agent --help lists every command with its usage", async () => {
    const r = await run(["--help"])
    assert.equal(r.code, 0)
    for (const [name, c] of Object.entries(commands)) {
      assert.match(
        r.stdout,
        new RegExp(`^  ${c.usage.replace(/[[\]]/g, "\\$&")}\\s+\\S`, "m"),
        name,
      )
    }
    const bare = await run([])
    assert.equal(bare.code, 2, "no command is a usage error")
    assert.match(bare.stderr, /^usage: mha-agent <command>/)
  })

  for (const name of OPERATIONS_COMMANDS) {
    test(`mha-agent ${name} --help: usage, description, options, exit codes`, async () => {
      const r = await run([name, "--help"])
      assert.equal(r.code, 0)
      assert.equal(r.stderr, "")
      assert.match(r.stdout, new RegExp(`^usage: mha-agent ${name}`))
      assert.match(r.stdout, /\n\noptions:\n( {2}.+\n)+/)
      assert.match(r.stdout, /\n\nexit codes:\n {2}0 +\S/)
      assert.match(r.stdout, /\n {2}2 +bad command line/)
      const same = await run(["help", name])
      assert.equal(same.stdout, r.stdout, "mha-agent help NAME says the same")
    })
  }

  test("control commands document --json, --socket, and exit 1 and 3", async () => {
    const r = await run(["switchover", "--help"])
    assert.match(r.stdout, /--to NODE\s+the node to promote/)
    assert.match(r.stdout, /--dry-run\s+/)
    assert.match(r.stdout, /--drain-timeout S\s+/)
    assert.match(r.stdout, /common options:\n(.*\n)* {2}--json\s/)
    assert.match(r.stdout, / {2}--socket PATH\s/)
    assert.match(r.stdout, / {2}1 {2}the agent refused/)
    assert.match(r.stdout, / {2}3 {2}the agent could not be reached/)
  })

  test("an unknown command or option: one line, exit 2", async () => {
    for (const argv of [["frobnicate"], ["--frobnicate"], ["help", "frobnicate"]]) {
      const r = await run(argv)
      assert.equal(r.code, 2, argv.join(" "))
      assert.equal(r.stdout, "")
      assert.match(
        r.stderr,
        /^mha-agent: unknown (command|option) '(--)?frobnicate' \(see 'mha-agent --help'\)\n$/,
      )
    }
  })

  test("version and its bad arguments", async () => {
    const r = await run(["version", "--json"])
    assert.equal(r.code, 0)
    assert.equal(JSON.parse(r.stdout).node, process.version)
    const bad = await run(["version", "--verbose"])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /^mha-agent version: unexpected argument '--verbose'/)
  })

  test("a control command's usage problem goes through main: exit 2", async () => {
    const r = await run(["failover", "--to", "db2"])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /add --force to confirm/)
  })
})

describe("the program", () => {
  const program = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [join(import.meta.dirname, "../../agent/src/main.ts"), ...args],
        { env: { ...process.env, MHA_AGENT_SOCKET: "/nonexistent/agent.sock" } },
        (error, _stdout, stderr) =>
          resolve({
            code: error ? (typeof error.code === "number" ? error.code : null) : 0,
            stderr,
          }),
      )
    })

  test("exit statuses of the real process: 3 unreachable, 2 usage, 0 help", async () => {
    const [down, usage, help] = await Promise.all([
      program(["status"]),
      program(["switchover"]),
      program(["topology", "--help"]),
    ])
    assert.equal(down.code, 3)
    assert.equal(
      down.stderr,
      "mha-agent: cannot reach the agent at /nonexistent/agent.sock: ENOENT (is mha-agent running?)\n",
    )
    assert.equal(usage.code, 2)
    assert.equal(help.code, 0)
  })
})
