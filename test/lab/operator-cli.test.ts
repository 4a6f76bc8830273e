// Every operator command of operations.md, run as an operator would run it
// (`mha-agent <command>` inside a lab host, against that host's agent) on one
// 3-node cluster, each checked by its RESULT IN MYSQL, not by the CLI's words:
// who is writable, who replicates from whom, which GTIDs exist where.
//
// Some commands' daemon side was written at the same time as this test
// (forwarding to the primary, history, reload, demote, clone, dry runs of
// errant-gtid --fix). While an agent answers such a request with "not
// supported by this agent yet" (or, for forwarding, refuses on the replica
// naming the primary), that step is recorded as PENDING and printed at the
// end instead of failing; once the daemon side lands, the same step asserts
// its outcome in MySQL. Each gate says which reply it looks for.
import assert from "node:assert/strict"
import { execFile } from "node:child_process"
import { test } from "node:test"
import { agentCommand } from "./agents.ts"
import { type LabCluster, runScenario } from "./cluster.ts"
import { sleep, waitFor } from "./exec.ts"

interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Commands that do not talk to the agent (and take no --socket). */
const LOCAL_COMMANDS = new Set(["version", "check-config"])

/** `mha-agent ARGS` inside `host`'s namespace against its agent; a non-zero exit is a result. */
const cli = (c: LabCluster, host: string, args: ReadonlyArray<string>): Promise<CliResult> =>
  new Promise((resolve) => {
    execFile(
      "ip",
      [
        "netns",
        "exec",
        c.lab.host(host).ns,
        ...agentCommand(),
        ...args,
        ...(LOCAL_COMMANDS.has(args[0] ?? "") ? [] : ["--socket", c.agents.socketPath(host)]),
      ],
      { timeout: 180_000, encoding: "utf8" },
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
          stdout,
          stderr,
        }),
    )
  })

/** Runs and asserts the exit code, naming the command and its output on failure. */
const expectCode = async (
  c: LabCluster,
  host: string,
  args: ReadonlyArray<string>,
  code: number,
): Promise<CliResult> => {
  const r = await cli(c, host, args)
  assert.equal(
    r.code,
    code,
    `mha-agent ${args.join(" ")} on ${host}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
  )
  return r
}

interface Member {
  name: string
  role: string
  source: string | null
  errant: string
  executed: string
}
interface Status {
  leader: string | null
  term: number
  paused: boolean
  excluded: string[]
  members: Member[]
}

const statusOf = async (c: LabCluster, host: string): Promise<Status> => {
  const r = await expectCode(c, host, ["status", "--json"], 0)
  return (JSON.parse(r.stdout) as { status: Status }).status
}

const superReadOnly = async (c: LabCluster, host: string): Promise<number | undefined> =>
  (await c.lab.query<{ sro: number }>(host, "SELECT @@super_read_only AS sro"))[0]?.sro

const executed = async (c: LabCluster, host: string): Promise<string> =>
  ((await c.lab.query<{ g: string }>(host, "SELECT @@gtid_executed AS g"))[0]?.g ?? "").replace(
    /\n/g,
    "",
  )

/** What `replica` executed that `primary` has not (MySQL's GTID_SUBTRACT). */
const errantInMysql = async (c: LabCluster, replica: string, primary: string): Promise<string> => {
  const mine = await executed(c, replica)
  const [row] = await c.lab.query<{ e: string }>(
    primary,
    "SELECT GTID_SUBTRACT(?, @@gtid_executed) AS e",
    [mine],
  )
  return (row?.e ?? "").replace(/\n/g, "")
}

/** `host` replicates from `source` with both threads running (SHOW REPLICA STATUS). */
const replicatesFrom = async (c: LabCluster, host: string, source: string): Promise<boolean> => {
  const v = await c.lab.view(host)
  const r = v.replica
  return (
    r !== undefined &&
    r.sourceHost === c.lab.host(source).address &&
    r.ioRunning === "Yes" &&
    r.sqlRunning === "Yes"
  )
}

const waitReplicates = (c: LabCluster, host: string, source: string, timeoutMs = 30_000) =>
  waitFor(`${host} to replicate from ${source}`, () => replicatesFrom(c, host, source), timeoutMs)

const NOT_SUPPORTED = /not supported by this agent yet/
/** A local refusal naming where to run it: forwarding (operations.md) has not landed. */
const NOT_FORWARDED = /^mha-agent: .*(not the primary; ask|run on )\w+/

test(
  "operator CLI: every command against a real 3-node cluster, checked in MySQL",
  {
    timeout: 600_000,
  },
  () =>
    runScenario(
      { slug: "operator-cli", timings: { restart_timeout: "10s", apply_timeout: "10s" } },
      async (c) => {
        const pending: string[] = []
        /**
         * False (and recorded as pending) when the daemon side of `what` has not
         * landed: the agent says "not supported by this agent yet", or it refused
         * locally (the CLI prints `mha-agent:`, not the answering node) naming the
         * node to run on, which forwarding would have reached.
         */
        const landed = (what: string, r: CliResult): boolean => {
          if (r.code === 1 && (NOT_SUPPORTED.test(r.stderr) || NOT_FORWARDED.test(r.stderr))) {
            pending.push(`${what}: ${r.stderr.trim()}`)
            return false
          }
          return true
        }

        const [db1, db2, db3] = ["db1", "db2", "db3"] as const
        assert.equal(await c.waitForPrimary(10_000), db1)

        // --- version, check-config: local, no agent needed -------------------------
        const version = await expectCode(c, db1, ["version"], 0)
        assert.match(version.stdout, /^mha-agent \d+\.\d+\.\d+/)
        const checked = await expectCode(
          c,
          db1,
          ["check-config", "--config", c.agents.configPath(db1)],
          0,
        )
        assert.match(checked.stdout, /^config OK: /)
        assert.match(checked.stdout, /3 members \(db1, db2, db3\); this node: db1/)

        // --- status, topology: the primary and two replicas, on every node --------
        for (const host of [db1, db2, db3]) {
          await waitFor(
            `${host}'s agent to see db1 ACTIVE and db2, db3 STANDBY`,
            async () => {
              const s = await statusOf(c, host)
              const role = (n: string) => s.members.find((m) => m.name === n)?.role
              return (
                s.leader === db1 &&
                role(db1) === "ACTIVE" &&
                role(db2) === "STANDBY" &&
                role(db3) === "STANDBY"
              )
            },
            30_000,
          )
        }
        // What the agents say is what MySQL says.
        assert.equal(await superReadOnly(c, db1), 0)
        assert.ok(await replicatesFrom(c, db2, db1))
        assert.ok(await replicatesFrom(c, db3, db1))

        const status = await expectCode(c, db2, ["status"], 0)
        console.log(`--- mha-agent status (on db2)\n${status.stdout}`)
        const statusLines = status.stdout.split("\n")
        assert.match(statusLines[0] ?? "", /^lab-\w+: \w+.*, primary db1 \(ACTIVE\), term \d+/)
        assert.match(statusLines[1] ?? "", /^this node: db2 \(STANDBY\)/)
        assert.match(status.stdout, /^db1\s+data\s+ACTIVE\s/m)
        assert.match(status.stdout, /^db2\s+data\s+STANDBY\s.*\bself\b/m)
        assert.match(status.stdout, /^db3\s+data\s+STANDBY\s+\w+\s+(\d+ s|-)\s+db1\s/m)

        const topology = await expectCode(c, db3, ["topology"], 0)
        console.log(`--- mha-agent topology (on db3)\n${topology.stdout}`)
        const uuid1 = (await c.lab.view(db1)).serverUuid ?? ""
        const tree = topology.stdout.trimEnd().split("\n")
        assert.match(tree[2] ?? "", /^db1\s+ACTIVE\s+\w+\s+-\s/)
        assert.ok(
          tree[2]?.includes(`${uuid1.slice(0, 8)}…:1-`),
          `db1's GTIDs summarised: ${tree[2]}`,
        )
        assert.match(tree[3] ?? "", /^├─ db2\s+STANDBY\s/)
        assert.match(tree[4] ?? "", /^└─ db3\s+STANDBY\s.*\bself$/)
        assert.equal(tree.length, 5)

        // --- bad command lines: exit 2, nothing changes ----------------------------
        const noForce = await expectCode(c, db2, ["failover", "--to", db2], 2)
        assert.match(noForce.stderr, /add --force to confirm/)
        assert.equal(noForce.stderr.trim().split("\n").length, 1)
        await expectCode(c, db1, ["switchover"], 2)
        await expectCode(c, db1, ["switchover", "--to", db2, "--bogus"], 2)
        await expectCode(c, db1, ["frobnicate"], 2)
        const help = await expectCode(c, db1, ["switchover", "--help"], 0)
        assert.match(help.stdout, /exit codes:/)

        // --- switchover --dry-run: steps printed, nothing changes -------------------
        const termBefore = c.term(db1)
        const dry = await expectCode(c, db1, ["switchover", "--to", db2, "--dry-run"], 0)
        console.log(`--- mha-agent switchover --to db2 --dry-run (on db1)\n${dry.stdout}`)
        assert.match(dry.stdout, /^\s*1\. .*\n\s*2\. /m, "numbered steps")
        await sleep(2000)
        assert.equal(await superReadOnly(c, db1), 0, "db1 is still writable")
        assert.equal(await superReadOnly(c, db2), 1, "db2 is still read-only")
        assert.ok(await replicatesFrom(c, db2, db1))
        assert.equal(c.term(db1), termBefore, "no new term")

        // --- switchover --to db2 -----------------------------------------------------
        const faultAt = Date.now()
        const sw = await expectCode(c, db1, ["switchover", "--to", db2], 0)
        console.log(`--- mha-agent switchover --to db2 (on db1)\n${sw.stdout}`)
        assert.equal(await c.waitForPrimary(20_000, db1), db2)
        assert.equal(await superReadOnly(c, db2), 0, "db2 writable")
        assert.equal(await superReadOnly(c, db1), 1, "db1 fenced")
        await waitReplicates(c, db1, db2)
        await waitReplicates(c, db3, db2)
        await c.waitForWritesAfter(Date.now(), 30_000)
        await waitFor(
          "db2's agent to see db1 and db3 as its replicas",
          async () => {
            const s = await statusOf(c, db2)
            return s.members.every(
              (m) => m.name === db2 || (m.role === "STANDBY" && m.source === db2),
            )
          },
          30_000,
        )
        const after = await expectCode(c, db1, ["status"], 0)
        console.log(`--- mha-agent status (on db1, after the switchover)\n${after.stdout}`)
        assert.match(after.stdout, /^lab-\w+: .*, primary db2 \(ACTIVE\), term [2-9]/)
        assert.match(after.stdout, /^db1\s+data\s+STANDBY\s.*\bdb2\s+self\b/m)

        // --- pause / resume: shown in status on every node --------------------------
        const waitPaused = (paused: boolean) =>
          waitFor(
            `every agent to report paused=${paused}`,
            async () => {
              for (const h of [db1, db2, db3])
                if ((await statusOf(c, h)).paused !== paused) return false
              return true
            },
            15_000,
            250,
          )
        await expectCode(c, db2, ["pause"], 0)
        await waitPaused(true)
        assert.match(
          (await expectCode(c, db3, ["status"], 0)).stdout.split("\n")[0] ?? "",
          /PAUSED/,
        )
        await expectCode(c, db2, ["resume"], 0)
        await waitPaused(false)
        assert.match(
          (await expectCode(c, db3, ["status"], 0)).stdout.split("\n")[0] ?? "",
          /not paused/,
        )

        // Forwarding: a cluster-wide command run on a replica goes to the primary.
        // Gate: until forwarding lands, the replica's agent refuses naming the primary.
        const fwd = await cli(c, db3, ["pause", "--json"])
        const fwdReply =
          fwd.stdout === "" ? undefined : (JSON.parse(fwd.stdout) as { answeredBy?: string })
        if (
          fwd.code === 1 &&
          fwdReply?.answeredBy === undefined &&
          /not the primary/.test(fwd.stderr)
        ) {
          pending.push(`forwarding (pause on the replica db3): ${fwd.stderr.trim()}`)
        } else {
          assert.equal(fwd.code, 0, `pause on db3: ${fwd.stderr}`)
          assert.equal(fwdReply?.answeredBy, db2, "the primary answered")
          console.log(`--- mha-agent pause --json (on the replica db3)\n${fwd.stdout}`)
          await waitPaused(true)
          const back = await expectCode(c, db1, ["resume"], 0)
          assert.match(back.stdout, /^db2: /, "a forwarded reply names who answered")
          await waitPaused(false)
        }

        // --- exclude db3: a switchover to it is refused; include ---------------------
        await expectCode(c, db2, ["exclude", db3], 0)
        await waitFor(
          "db3 excluded on every agent",
          async () => {
            for (const h of [db1, db2, db3])
              if (!(await statusOf(c, h)).excluded.includes(db3)) return false
            return true
          },
          15_000,
          250,
        )
        const refused = await expectCode(c, db2, ["switchover", "--to", db3], 1)
        console.log(
          `--- mha-agent switchover --to db3 while excluded (on db2): exit 1\n${refused.stderr}`,
        )
        assert.equal(refused.stderr.trim().split("\n").length, 1, "one line")
        assert.match(refused.stderr, /refused/)
        assert.equal(await superReadOnly(c, db2), 0, "db2 still the primary")
        assert.equal(await superReadOnly(c, db3), 1, "db3 still read-only")
        await expectCode(c, db2, ["include", db3], 0)
        await waitFor(
          "db3 included again",
          async () => (await statusOf(c, db2)).excluded.length === 0,
          15_000,
        )

        // --- errant-gtid ---------------------------------------------------------------
        await c.lab.query(db2, "CREATE TABLE app.cli_errant (id INT PRIMARY KEY)")
        await c.lab.waitReplicasCaughtUp(db2)
        assert.equal(await errantInMysql(c, db3, db2), "")
        const clean = await expectCode(c, db2, ["errant-gtid"], 0)
        assert.match(clean.stdout, /^no errant transactions/)
        // An errant transaction on db3, as a careless operator makes one. read_only
        // stays ON (only a SUPER session can write): the sampler never sees db3 writable.
        const conn = await c.lab.connect(db3)
        try {
          await conn.query("SET GLOBAL super_read_only = OFF")
          await conn.query("INSERT INTO app.cli_errant VALUES (1)")
          await conn.query("SET GLOBAL super_read_only = ON")
        } finally {
          await conn.end().catch(() => {})
        }
        const errant = await errantInMysql(c, db3, db2)
        const uuid3 = (await c.lab.view(db3)).serverUuid ?? ""
        assert.match(errant, new RegExp(`^${uuid3}:\\d+$`), "one errant transaction in MySQL")
        await waitFor(
          "the primary's agent to flag db3 errant",
          async () => (await statusOf(c, db2)).members.find((m) => m.name === db3)?.errant !== "",
          15_000,
          250,
        )
        for (const host of [db2, db3]) {
          const listed = await expectCode(c, host, ["errant-gtid"], 0)
          console.log(`--- mha-agent errant-gtid (on ${host})\n${listed.stdout}`)
          assert.match(listed.stdout, new RegExp(`^db3\\s+${errant}$`, "m"), `as ${host} sees it`)
        }
        const topo = await expectCode(c, db2, ["topology"], 0)
        assert.match(topo.stdout, /db3\s.*\bERRANT\b/)

        // --fix --dry-run: changes nothing. Gate: an agent without dry runs of FixErrant
        // ignores dryRun and fixes (its reply has no `steps`); recorded as pending.
        const fixDry = await cli(c, db2, ["errant-gtid", "--fix", "--dry-run", "--json"])
        assert.equal(fixDry.code, 0, fixDry.stderr)
        const fixDryReply = JSON.parse(fixDry.stdout) as { steps?: string[]; message: string }
        await sleep(2000)
        const afterDry = await errantInMysql(c, db3, db2)
        if (fixDryReply.steps === undefined && afterDry === "") {
          pending.push(
            `errant-gtid --fix --dry-run: the agent ignored dryRun and injected (${fixDryReply.message})`,
          )
        } else {
          assert.equal(afterDry, errant, "the dry run changed nothing in MySQL")
          const shown = await expectCode(c, db2, ["errant-gtid", "--fix", "--dry-run"], 0)
          console.log(`--- mha-agent errant-gtid --fix --dry-run (on db2)\n${shown.stdout}`)
          if (fixDryReply.steps !== undefined) assert.match(shown.stdout, /^1\. /m)
          assert.equal(await errantInMysql(c, db3, db2), errant)
          const fixed = await expectCode(c, db2, ["errant-gtid", "--fix"], 0)
          console.log(`--- mha-agent errant-gtid --fix (on db2)\n${fixed.stdout}`)
        }
        await waitFor(
          "GTID_SUBTRACT(db3 executed, primary executed) to be empty",
          async () => (await errantInMysql(c, db3, db2)) === "",
          15_000,
          250,
        )
        await waitReplicates(c, db3, db2)
        await waitFor(
          "the agents to see no errant transactions",
          async () =>
            (await cli(c, db2, ["errant-gtid"])).stdout.startsWith("no errant transactions"),
          15_000,
          250,
        )

        // --- history ------------------------------------------------------------------
        const history = await cli(c, db3, ["history"])
        if (landed("history", history)) {
          assert.equal(history.code, 0, history.stderr)
          console.log(`--- mha-agent history (on db3)\n${history.stdout}`)
          assert.match(history.stdout, /^\S+ \S+\s+switchover\s+\d+\s+db1 -> db2\s/m)
          const j = await expectCode(c, db3, ["history", "--json"], 0)
          const entries = (
            JSON.parse(j.stdout) as { history: Array<{ kind: string; newPrimary: string }> }
          ).history
          assert.ok(entries.some((e) => e.kind === "switchover" && e.newPrimary === db2))
        }

        // --- reload ---------------------------------------------------------------------
        const reload = await cli(c, db2, ["reload"])
        if (landed("reload", reload)) {
          assert.equal(reload.code, 0, reload.stderr)
          console.log(`--- mha-agent reload (on db2)\n${reload.stdout}`)
          assert.equal(await superReadOnly(c, db2), 0, "a reload changes no role")
        }

        // --- rejoin, ack-recovery ---------------------------------------------------------
        await expectCode(c, db3, ["rejoin"], 0)
        const rejoin = await cli(c, db2, ["rejoin", db3])
        if (landed("rejoin db3 run on db2 (forwarded to db3)", rejoin)) {
          assert.equal(rejoin.code, 0, rejoin.stderr)
          console.log(`--- mha-agent rejoin db3 (on db2)\n${rejoin.stdout}`)
        }
        await waitReplicates(c, db3, db2)
        await expectCode(c, db2, ["ack-recovery"], 0)

        // --- demote db1 --source db2 (db1 already replicates from db2: stays so, fenced) ------
        const demote = await cli(c, db2, ["demote", db1, "--source", db2])
        if (landed("demote", demote)) {
          assert.equal(demote.code, 0, demote.stderr)
          console.log(`--- mha-agent demote db1 --source db2 (on db2)\n${demote.stdout}`)
          await waitReplicates(c, db1, db2)
          assert.equal(await superReadOnly(c, db1), 1)
          assert.equal(await superReadOnly(c, db2), 0)
        }

        // --- clone --recipient db3 (scenario 13 is tested elsewhere: here only the CLI) -------
        const clone = await cli(c, db2, ["clone", "--recipient", db3])
        if (landed("clone", clone)) {
          assert.equal(clone.code, 0, clone.stderr)
          console.log(`--- mha-agent clone --recipient db3 (on db2)\n${clone.stdout}`)
          await waitReplicates(c, db3, db2, 120_000)
          // The clone restarted db3's mysqld: a connection may still be reset once.
          let errant: string | null = null
          await waitFor(
            "db3's mysqld to answer after the clone",
            async () => {
              errant = await errantInMysql(c, db3, db2).catch(() => null)
              return errant !== null
            },
            30_000,
            1000,
          )
          assert.equal(errant, "")
        }

        // --- a stopped agent: exit 3, one line naming the socket --------------------------
        await c.agents.stop(db3)
        const down = await expectCode(c, db3, ["status"], 3)
        assert.match(
          down.stderr,
          new RegExp(
            `^mha-agent: cannot reach the agent at ${c.agents.socketPath(db3)}: (ENOENT|ECONNREFUSED) \\(is mha-agent running\\?\\)\\n$`,
          ),
        )
        await c.agents.start(db3)
        await waitFor(
          "db3's agent back and STANDBY",
          async () => {
            const r = await cli(c, db3, ["status", "--json"])
            if (r.code !== 0) return false
            const s = (JSON.parse(r.stdout) as { status: Status }).status
            return s.leader === db2 && s.members.find((m) => m.name === db3)?.role === "STANDBY"
          },
          30_000,
          250,
        )

        // --- the invariants -------------------------------------------------------------
        const result = await c.check(faultAt)
        assert.deepEqual(result.problems, [], `the invariants hold: ${result.problems.join("; ")}`)
        console.log(
          `operator CLI: ${result.acked} acknowledged writes, none lost; write downtime over the run ${result.downtimeMs} ms`,
        )
        if (pending.length > 0) {
          console.log(
            `PENDING (daemon side not landed; gated, not asserted):\n  ${pending.join("\n  ")}`,
          )
        }
      },
    ),
)
