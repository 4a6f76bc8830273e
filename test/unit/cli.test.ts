// The operator CLI's own contract: argument parsing, the text it prints for
// people, and its exit codes, against a fake agent (a Unix socket server in a
// temp dir that records the request and sends a canned reply). The real
// daemon behind the socket is covered by test/lab/operator-cli.test.ts.
import assert from "node:assert/strict"
import { execFile } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, describe, test } from "node:test"
import { parseArgs, parseSeconds, UsageProblem } from "../../agent/src/cli/args.ts"
import { planCommand, runControlCommand } from "../../agent/src/cli/control.ts"
import { duration, lastHeard, shortGtidSet, table, time } from "../../agent/src/cli/format.ts"
import { bufferIo } from "../../agent/src/cli/io.ts"
import {
  clusterHealth,
  errantOf,
  renderErrant,
  renderHistory,
  renderStatus,
  renderSteps,
  renderTopology,
} from "../../agent/src/cli/render.ts"
import { describeSocketError } from "../../agent/src/cli/socket.ts"
import type { ControlReply, StatusView } from "../../shared/control.ts"

const U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
const U3 = "9a8b7c6d-0000-11e1-9e33-c80aa9429562"

const status = (over: Partial<StatusView> = {}): StatusView => ({
  cluster: "prod",
  node: "db2",
  term: 4,
  role: "STANDBY",
  leader: "db1",
  leaderActive: true,
  paused: false,
  excluded: [],
  electionStatus: "the primary db1 holds a valid lease",
  members: [
    {
      name: "db1",
      kind: "data",
      role: "ACTIVE",
      health: "OK",
      lastHeardMs: 120,
      source: null,
      executed: `${U1}:1-1234`,
      errant: "",
      lagSeconds: null,
    },
    {
      name: "db2",
      kind: "data",
      role: "STANDBY",
      health: "OK",
      lastHeardMs: null,
      source: "db1",
      executed: `${U1}:1-1234`,
      errant: "",
      lagSeconds: 0,
    },
    {
      name: "db3",
      kind: "data",
      role: "STANDBY",
      health: "WARN",
      lastHeardMs: 2500,
      source: "db1",
      executed: `${U1}:1-1230,${U3}:1-2`,
      errant: "yes",
      lagSeconds: 12,
    },
  ],
  ...over,
})

describe("argument parsing", () => {
  const opts = [
    { name: "--to", value: "NODE", help: "" },
    { name: "--dry-run", help: "" },
  ]

  test("valued options, flags, = form and positional words", () => {
    const p = parseArgs(["--to", "db2", "--dry-run"], opts, 0)
    assert.equal(p.values.get("--to"), "db2")
    assert.ok(p.flags.has("--dry-run"))
    assert.equal(parseArgs(["--to=db3"], opts, 0).values.get("--to"), "db3")
    assert.deepEqual(parseArgs(["db3"], opts, 1).positional, ["db3"])
    assert.deepEqual(parseArgs(["--", "--odd"], opts, 1).positional, ["--odd"])
  })

  test("each bad word is named", () => {
    const bad = (args: string[], max: number, re: RegExp) =>
      assert.throws(
        () => parseArgs(args, opts, max),
        (e) => e instanceof UsageProblem && re.test(e.message),
      )
    bad(["--bogus"], 0, /unknown option '--bogus'/)
    bad(["--to"], 0, /--to needs a value/)
    bad(["--to", "--dry-run"], 0, /--to needs a value/)
    bad(["--to="], 0, /--to needs a value/)
    bad(["--dry-run=yes"], 0, /--dry-run takes no value/)
    bad(["db3"], 0, /unexpected argument 'db3'/)
    bad(["db3", "db4"], 1, /unexpected argument 'db4'/)
    bad(["--to", "a", "--to", "b"], 0, /--to given twice/)
  })

  test("seconds", () => {
    assert.equal(parseSeconds("--x", "30"), 30)
    assert.equal(parseSeconds("--x", "30s"), 30)
    assert.equal(parseSeconds("--x", "1.5"), 1.5)
    assert.equal(parseSeconds("--x", "500ms"), 0.5)
    assert.equal(parseSeconds("--x", "2m"), 120)
    assert.throws(() => parseSeconds("--x", "soon"), /--x expects seconds/)
    assert.throws(() => parseSeconds("--x", "-1"), /--x expects seconds/)
  })

  test("every command's request", () => {
    const req = (command: string, ...args: string[]) => planCommand(command, args, {}).plan.request
    assert.deepEqual(req("status"), { _tag: "Status" })
    assert.deepEqual(req("topology"), { _tag: "Status" })
    assert.deepEqual(req("switchover", "--to", "db2"), {
      _tag: "Switchover",
      to: "db2",
      dryRun: false,
      drainTimeoutMs: null,
    })
    assert.deepEqual(req("switchover", "--to=db2", "--dry-run", "--drain-timeout", "2.5"), {
      _tag: "Switchover",
      to: "db2",
      dryRun: true,
      drainTimeoutMs: 2500,
    })
    assert.deepEqual(req("failover", "--force"), { _tag: "Failover", to: null })
    assert.deepEqual(req("failover", "--to", "db3", "--force"), { _tag: "Failover", to: "db3" })
    assert.deepEqual(req("pause"), { _tag: "Pause" })
    assert.deepEqual(req("resume"), { _tag: "Resume" })
    assert.deepEqual(req("exclude", "db3"), { _tag: "Exclude", node: "db3" })
    assert.deepEqual(req("include", "db3"), { _tag: "Include", node: "db3" })
    assert.deepEqual(req("ack-recovery"), { _tag: "AckRecovery" })
    assert.deepEqual(req("rejoin"), { _tag: "Rejoin", node: null, force: false })
    assert.deepEqual(req("rejoin", "db1", "--force"), { _tag: "Rejoin", node: "db1", force: true })
    assert.deepEqual(req("demote", "db1", "--source", "db2"), {
      _tag: "Demote",
      node: "db1",
      source: "db2",
    })
    assert.deepEqual(req("clone", "--recipient", "db3"), {
      _tag: "Clone",
      recipient: "db3",
      donor: null,
    })
    assert.deepEqual(req("clone", "--recipient", "db3", "--donor", "db2"), {
      _tag: "Clone",
      recipient: "db3",
      donor: "db2",
    })
    assert.deepEqual(req("errant-gtid"), { _tag: "Status" })
    assert.deepEqual(req("errant-gtid", "--fix", "--dry-run"), { _tag: "FixErrant", dryRun: true })
    assert.deepEqual(req("errant-gtid", "--fix"), { _tag: "FixErrant", dryRun: false })
    assert.deepEqual(req("history"), { _tag: "History" })
    assert.deepEqual(req("reload"), { _tag: "Reload" })
  })

  test("socket, json and timeout", () => {
    const p = planCommand("status", ["--json"], { MHA_AGENT_SOCKET: "/tmp/env.sock" })
    assert.equal(p.socket, "/tmp/env.sock")
    assert.equal(p.json, true)
    assert.equal(p.timeoutMs, 120_000)
    assert.equal(planCommand("status", ["--socket", "/x.sock"], {}).socket, "/x.sock")
    assert.equal(planCommand("status", [], {}).socket, "/run/mha-agent/agent.sock")
    assert.equal(planCommand("status", ["--timeout", "5"], {}).timeoutMs, 5000)
    assert.equal(planCommand("clone", ["--recipient", "db3"], {}).timeoutMs, 3_600_000)
    assert.equal(
      planCommand("switchover", ["--to", "db2", "--drain-timeout", "30"], {}).timeoutMs,
      150_000,
      "the reply may take the drain timeout longer",
    )
  })

  test("missing and conflicting arguments are usage problems", () => {
    const bad = (command: string, args: string[], re: RegExp) =>
      assert.throws(
        () => planCommand(command, args, {}),
        (e) => e instanceof UsageProblem && re.test(e.message),
      )
    bad("switchover", [], /--to NODE is required/)
    bad("switchover", ["--to", "db2", "--drain-timeout", "x"], /--drain-timeout expects seconds/)
    bad("failover", [], /add --force/)
    bad("failover", ["--to", "db2"], /add --force/)
    bad("exclude", [], /NODE is required/)
    bad("include", [], /NODE is required/)
    bad("demote", ["db1"], /--source M is required/)
    bad("demote", ["--source", "db2"], /NODE is required/)
    bad("clone", [], /--recipient N is required/)
    bad("clone", ["--donor", "db2"], /--recipient N is required/)
    bad("status", ["db1"], /unexpected argument 'db1'/)
    bad("pause", ["--force"], /unknown option '--force'/)
    bad("status", ["--timeout", "0"], /--timeout must be more than 0/)
  })
})

describe("text for people", () => {
  test("table: aligned columns, no trailing blanks", () => {
    assert.deepEqual(
      table([
        ["A", "BB", "C"],
        ["long", "x", ""],
      ]),
      ["A     BB  C", "long  x"],
    )
  })

  test("GTID summary shortens uuids and long range lists", () => {
    assert.equal(shortGtidSet(""), "-")
    assert.equal(shortGtidSet(`${U1}:1-1234`), "3e11fa47…:1-1234")
    assert.equal(shortGtidSet(`${U1}:1-5,\n${U3}:1-2`), "3e11fa47…:1-5,9a8b7c6d…:1-2")
    const three = `${U1}:1-5,${U3}:1,aaaaaaaa-0000-11e1-9e33-c80aa9429562:7`
    assert.match(shortGtidSet(three), /\+1 more$/)
    assert.equal(
      shortGtidSet(`${U1}:1-100:102-200:202-300:302-400:402-500`),
      "3e11fa47…:1-100:…:402-500",
    )
  })

  test("durations, ages and times", () => {
    assert.equal(duration(850), "850 ms")
    assert.equal(duration(3210), "3.2 s")
    assert.equal(duration(245_000), "4 min 5 s")
    assert.equal(lastHeard(null, true), "self")
    assert.equal(lastHeard(null, false), "never")
    assert.equal(lastHeard(120, false), "120 ms ago")
    assert.equal(time("2026-11-22T05:45:43.123Z"), "2026-11-22 05:45:43Z")
  })

  test("status: the cluster in one line, this node, then the members", () => {
    const text = renderStatus(status())
    const lines = text.split("\n")
    assert.equal(
      lines[0],
      "prod: DEGRADED, primary db1 (ACTIVE), term 4, 2/3 nodes healthy, not paused, none excluded",
    )
    assert.equal(lines[1], "this node: db2 (STANDBY); the primary db1 holds a valid lease")
    assert.match(
      lines[3] ?? "",
      /^NODE\s+KIND\s+ROLE\s+HEALTH\s+LAG\s+SOURCE\s+LAST HEARD\s+ERRANT$/,
    )
    assert.match(lines[5] ?? "", /^db2\s+data\s+STANDBY\s+OK\s+0 s\s+db1\s+self\s+-$/)
    assert.match(lines[6] ?? "", /^db3\s+data\s+STANDBY\s+WARN\s+12 s\s+db1\s+2\.5 s ago\s+yes$/)
    // Every column starts at the same offset on every line.
    const col = (l: string) =>
      l.indexOf("STANDBY") >= 0 ? l.indexOf("STANDBY") : l.indexOf("ROLE")
    assert.equal(col(lines[3]!), col(lines[5]!))
    const paused = renderStatus(status({ paused: true, excluded: ["db3"], leaderActive: false }))
    assert.match(paused, /^prod: NO PRIMARY, primary db1 \(not active\), .*PAUSED, excluded db3$/m)
  })

  test("cluster health", () => {
    const s = status()
    assert.equal(clusterHealth(s), "DEGRADED")
    const healthy = { ...s, members: s.members.map((m) => ({ ...m, health: "OK" })) }
    assert.equal(clusterHealth(healthy), "OK")
    assert.equal(clusterHealth({ ...healthy, leader: null }), "NO PRIMARY")
  })

  test("topology: the primary, its replicas indented, with GTIDs and the errant flag", () => {
    const lines = renderTopology(status()).split("\n")
    assert.equal(lines[0], "prod: term 4, primary db1 (as db2 sees it)")
    assert.match(
      lines[1] ?? "",
      /^NODE\s+ROLE\s+HEALTH\s+LAG\s+GTID EXECUTED\s+ERRANT\s+LAST HEARD$/,
    )
    assert.match(lines[2] ?? "", /^db1\s+ACTIVE\s+OK\s+-\s+3e11fa47…:1-1234\s+-\s+120 ms ago$/)
    assert.match(lines[3] ?? "", /^├─ db2\s+STANDBY\s+OK\s+0 s\s+3e11fa47…:1-1234\s+-\s+self$/)
    assert.match(
      lines[4] ?? "",
      /^└─ db3\s+STANDBY\s+WARN\s+12 s\s+3e11fa47…:1-1230,9a8b7c6d…:1-2\s+ERRANT\s+2\.5 s ago$/,
    )
    assert.equal(lines.length, 5)
  })

  test("topology: cascades nest, loose nodes and witnesses stand at the top level", () => {
    const s = status()
    const members = [
      ...s.members.map((m) => (m.name === "db3" ? { ...m, source: "db2" } : m)),
      { ...s.members[1]!, name: "db4", source: null, role: "FENCED" },
      { ...s.members[1]!, name: "w1", kind: "witness", source: null, executed: "" },
    ]
    const lines = renderTopology({ ...s, members })
      .split("\n")
      .map((l) => /^(.*?\S)(\s{2,}|$)/.exec(l)?.[1])
    assert.deepEqual(lines.slice(2), ["db1", "└─ db2", "   └─ db3", "db4", "w1"])
    // A replication loop (no root) is still shown, each node once.
    const loop = s.members.map((m) => ({ ...m, source: m.name === "db2" ? "db3" : "db2" }))
    const loopLines = renderTopology({ ...s, leader: null, members: loop }).split("\n")
    assert.equal(loopLines.length, 5)
  })

  test("errant GTIDs: the set of this node; for a peer, what it has beyond the primary", () => {
    const s = status()
    assert.deepEqual(errantOf(s), [{ name: "db3", gtids: `${U3}:1-2` }])
    const onDb3 = status({
      node: "db3",
      members: s.members.map((m) => (m.name === "db3" ? { ...m, errant: `${U3}:1-2` } : m)),
    })
    assert.deepEqual(errantOf(onDb3), [{ name: "db3", gtids: `${U3}:1-2` }])
    assert.match(
      renderErrant(s),
      /^NODE\s+ERRANT GTIDS\ndb3\s+9a8b7c6d-0000-11e1-9e33-c80aa9429562:1-2$/m,
    )
    const clean = status({ members: s.members.map((m) => ({ ...m, errant: "" })) })
    assert.equal(renderErrant(clean), "no errant transactions (as db2 sees the cluster)")
  })

  test("history: a table, oldest first, newest last", () => {
    const lines = renderHistory([
      {
        kind: "switchover",
        term: 5,
        at: "2026-11-22T06:10:00.000Z",
        reason: "operator request",
        oldPrimary: "db2",
        newPrimary: "db1",
        durationMs: 1250,
      },
      {
        kind: "failover",
        term: 3,
        at: "2026-11-22T05:00:00.000Z",
        reason: "db1 mysqld down",
        oldPrimary: "db1",
        newPrimary: "db2",
        durationMs: null,
      },
    ]).split("\n")
    assert.match(lines[0] ?? "", /^TIME\s+KIND\s+TERM\s+OLD -> NEW\s+DURATION\s+REASON$/)
    assert.match(
      lines[1] ?? "",
      /^2026-11-22 05:00:00Z\s+failover\s+3\s+db1 -> db2\s+-\s+db1 mysqld down$/,
    )
    assert.match(
      lines[2] ?? "",
      /^2026-11-22 06:10:00Z\s+switchover\s+5\s+db2 -> db1\s+1\.3 s\s+operator request$/,
    )
    assert.equal(lines[0]!.indexOf("KIND"), lines[2]!.indexOf("switchover"))
    assert.equal(renderHistory([]), "no failovers or switchovers recorded")
  })

  test("dry-run steps are numbered", () => {
    const reply: ControlReply = {
      ok: true,
      message: "dry run: switchover to db2",
      steps: ["a", "b"],
    }
    assert.equal(renderSteps(reply), "dry run: switchover to db2\n1. a\n2. b")
    assert.equal(renderSteps({ ok: true, message: "dry run:\n1. a" }), "dry run:\n1. a")
  })

  test("socket errors", () => {
    assert.equal(describeSocketError("ENOENT", ""), "ENOENT (is mha-agent running?)")
    assert.equal(describeSocketError("ECONNREFUSED", ""), "ECONNREFUSED (is mha-agent running?)")
    assert.match(describeSocketError("EACCES", ""), /^permission denied \(EACCES\)/)
  })
})

// ---------------------------------------------------------------------------
// Against a fake agent
// ---------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), "mha-cli-"))
after(() => rmSync(dir, { recursive: true, force: true }))
let serial = 0

type Behaviour = ControlReply | string | "close" | "silent"

/** A fake agent that answers every request with `reply`; returns its socket path and the requests it got. */
const fakeAgent = async (
  behaviour: Behaviour | ((req: unknown) => Behaviour),
): Promise<{ path: string; requests: unknown[]; close: () => Promise<void> }> => {
  const path = join(dir, `agent-${serial++}.sock`)
  const requests: unknown[] = []
  const server: Server = createServer((socket) => {
    let buffer = ""
    socket.setEncoding("utf8")
    socket.on("error", () => {})
    socket.on("data", (chunk: string) => {
      buffer += chunk
      const nl = buffer.indexOf("\n")
      if (nl < 0) return
      const req = JSON.parse(buffer.slice(0, nl)) as unknown
      requests.push(req)
      const b = typeof behaviour === "function" ? behaviour(req) : behaviour
      if (b === "close") socket.end()
      else if (b === "silent") return
      else socket.end(`${typeof b === "string" ? b : JSON.stringify(b)}\n`)
    })
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  return {
    path,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

const cli = async (command: string, args: string[]) => {
  const io = bufferIo()
  const code = await runControlCommand(command, args, io)
  return { code, stdout: io.stdout(), stderr: io.stderr() }
}

describe("against a fake agent", () => {
  test("status: exit 0, the table on stdout, nothing on stderr", async () => {
    const agent = await fakeAgent({ ok: true, message: "status", status: status() })
    try {
      const r = await cli("status", ["--socket", agent.path])
      assert.equal(r.code, 0)
      assert.equal(r.stderr, "")
      assert.match(r.stdout, /^prod: DEGRADED, primary db1 \(ACTIVE\)/)
      assert.deepEqual(agent.requests, [{ _tag: "Status" }])
    } finally {
      await agent.close()
    }
  })

  test("--json prints the reply as one line", async () => {
    const reply: ControlReply = { ok: true, message: "status", status: status() }
    const agent = await fakeAgent(reply)
    try {
      for (const command of ["status", "topology", "errant-gtid"]) {
        const r = await cli(command, ["--json", "--socket", agent.path])
        assert.equal(r.code, 0)
        assert.deepEqual(JSON.parse(r.stdout), reply)
        assert.equal(r.stdout.trimEnd().split("\n").length, 1)
      }
    } finally {
      await agent.close()
    }
  })

  test("a refusal: exit 1, the reason in one line, with the node that answered", async () => {
    const agent = await fakeAgent({
      ok: false,
      message: "switchover refused: db3 is excluded\nfrom candidacy",
      answeredBy: "db1",
    })
    try {
      const r = await cli("switchover", ["--to", "db3", "--socket", agent.path])
      assert.equal(r.code, 1)
      assert.equal(r.stdout, "")
      assert.equal(r.stderr, "db1: switchover refused: db3 is excluded; from candidacy\n")
      const j = await cli("switchover", ["--to", "db3", "--json", "--socket", agent.path])
      assert.equal(j.code, 1)
      assert.equal(JSON.parse(j.stdout).ok, false, "--json still prints the reply")
    } finally {
      await agent.close()
    }
  })

  test("a local refusal names no node", async () => {
    const agent = await fakeAgent({ ok: false, message: "Reload: not supported by this agent yet" })
    try {
      const r = await cli("reload", ["--socket", agent.path])
      assert.equal(r.code, 1)
      assert.equal(r.stderr, "mha-agent: Reload: not supported by this agent yet\n")
    } finally {
      await agent.close()
    }
  })

  test("success of an action: the message, with the node that answered", async () => {
    const agent = await fakeAgent({ ok: true, message: "paused", answeredBy: "db1" })
    try {
      const r = await cli("pause", ["--socket", agent.path])
      assert.deepEqual(r, { code: 0, stdout: "db1: paused\n", stderr: "" })
    } finally {
      await agent.close()
    }
  })

  test("dry run: the steps numbered", async () => {
    const agent = await fakeAgent({
      ok: true,
      message: "dry run: switchover to db2",
      steps: ["check db2", "fence db1", "transfer"],
    })
    try {
      const r = await cli("switchover", ["--to", "db2", "--dry-run", "--socket", agent.path])
      assert.equal(r.code, 0)
      assert.equal(
        r.stdout,
        "dry run: switchover to db2\n1. check db2\n2. fence db1\n3. transfer\n",
      )
      assert.deepEqual(agent.requests, [
        { _tag: "Switchover", to: "db2", dryRun: true, drainTimeoutMs: null },
      ])
      const f = await cli("errant-gtid", ["--fix", "--dry-run", "--socket", agent.path])
      assert.equal(f.code, 0)
      assert.deepEqual(agent.requests[1], { _tag: "FixErrant", dryRun: true })
    } finally {
      await agent.close()
    }
  })

  test("history: the table", async () => {
    const agent = await fakeAgent({
      ok: true,
      message: "1 entry",
      history: [
        {
          kind: "switchover",
          term: 2,
          at: "2026-11-22T06:00:00Z",
          reason: "operator",
          oldPrimary: "db1",
          newPrimary: "db2",
          durationMs: 900,
        },
      ],
    })
    try {
      const r = await cli("history", ["--socket", agent.path])
      assert.equal(r.code, 0)
      assert.match(
        r.stdout,
        /^TIME .*\n2026-11-22 06:00:00Z\s+switchover\s+2\s+db1 -> db2\s+900 ms\s+operator\n$/,
      )
    } finally {
      await agent.close()
    }
  })

  test("errant-gtid lists from the status reply", async () => {
    const agent = await fakeAgent({ ok: true, message: "status", status: status() })
    try {
      const r = await cli("errant-gtid", ["--socket", agent.path])
      assert.equal(r.code, 0)
      assert.match(r.stdout, new RegExp(`db3\\s+${U3}:1-2`))
    } finally {
      await agent.close()
    }
  })

  test("no agent: exit 3, one line naming the socket and why", async () => {
    const path = join(dir, "absent.sock")
    const r = await cli("status", ["--socket", path])
    assert.equal(r.code, 3)
    assert.equal(r.stdout, "")
    assert.equal(
      r.stderr,
      `mha-agent: cannot reach the agent at ${path}: ENOENT (is mha-agent running?)\n`,
    )
  })

  test("a socket file nobody listens on (the agent was killed): exit 3, ECONNREFUSED", async () => {
    // A process that listens and exits without closing leaves its socket file behind.
    const stale = join(dir, "stale.sock")
    const { spawnSync } = await import("node:child_process")
    spawnSync(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`,
    ])
    const r = await cli("status", ["--socket", stale])
    assert.equal(r.code, 3)
    assert.equal(
      r.stderr,
      `mha-agent: cannot reach the agent at ${stale}: ECONNREFUSED (is mha-agent running?)\n`,
    )
  })

  test("permission denied on the socket (mode 0660, another user): exit 3, named as such", {
    skip:
      process.getuid?.() !== 0 || !existsSync("/usr/bin/setpriv")
        ? "needs root and setpriv to run the CLI as another user"
        : false,
  }, async () => {
    const agent = await fakeAgent({ ok: true, message: "x" })
    try {
      chmodSync(dir, 0o755)
      chmodSync(agent.path, 0o660)
      const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
        (resolve) =>
          execFile(
            "/usr/bin/setpriv",
            [
              "--reuid=65534",
              "--regid=65534",
              "--clear-groups",
              process.execPath,
              join(import.meta.dirname, "../../agent/src/main.ts"),
              "status",
              "--socket",
              agent.path,
            ],
            (error, stdout, stderr) =>
              resolve({
                code: error === null ? 0 : typeof error.code === "number" ? error.code : null,
                stdout,
                stderr,
              }),
          ),
      )
      assert.equal(r.code, 3, r.stderr)
      assert.equal(
        r.stderr,
        `mha-agent: cannot reach the agent at ${agent.path}: permission denied (EACCES): run as root or as a member of the agent's group\n`,
      )
      assert.deepEqual(agent.requests, [], "nothing reached the agent")
    } finally {
      await agent.close()
    }
  })

  test("not a socket: exit 3", async () => {
    const file = join(dir, "plain-file")
    writeFileSync(file, "")
    const r = await cli("status", ["--socket", file])
    assert.equal(r.code, 3)
    assert.match(r.stderr, /^mha-agent: cannot reach the agent at .*plain-file: /)
  })

  test("no reply in time: exit 3; connection closed without a reply: exit 3", async () => {
    const silent = await fakeAgent("silent")
    const closing = await fakeAgent("close")
    try {
      const r = await cli("status", ["--timeout", "300ms", "--socket", silent.path])
      assert.equal(r.code, 3)
      assert.match(r.stderr, /no reply from the agent at .* within 0\.3 s\n$/)
      const c = await cli("status", ["--socket", closing.path])
      assert.equal(c.code, 3)
      assert.match(c.stderr, /closed the connection without a reply\n$/)
    } finally {
      await silent.close()
      await closing.close()
    }
  })

  test("a reply this CLI cannot read: exit 1, said so", async () => {
    const agent = await fakeAgent('{"ok":"maybe"}')
    try {
      const r = await cli("status", ["--socket", agent.path])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /sent a reply this CLI cannot read/)
    } finally {
      await agent.close()
    }
  })

  test("usage problems: exit 2, one line, nothing sent", async () => {
    const agent = await fakeAgent({ ok: true, message: "x" })
    try {
      for (const [command, args, re] of [
        [
          "failover",
          [],
          /^mha-agent failover: .*add --force to confirm \(see 'mha-agent failover --help'\)\n$/,
        ],
        ["switchover", [], /^mha-agent switchover: --to NODE is required/],
        ["switchover", ["--to", "db2", "--now"], /^mha-agent switchover: unknown option '--now'/],
        ["exclude", [], /^mha-agent exclude: NODE is required/],
      ] as const) {
        const r = await cli(command, [...args, "--socket", agent.path])
        assert.equal(r.code, 2, `${command} ${args.join(" ")}`)
        assert.match(r.stderr, re)
        assert.equal(r.stderr.split("\n").length, 2, "one line")
      }
      assert.deepEqual(agent.requests, [])
    } finally {
      await agent.close()
    }
  })
})
