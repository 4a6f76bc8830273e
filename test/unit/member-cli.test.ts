/**
 * The operator side of membership changes (issue 15 item 1): `mha-agent
 * member add|remove|replace` on the command line, the control socket's
 * request, and a reload whose members say what the cluster record says.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { planCommand, runControlCommand } from "../../agent/src/cli/control.ts"
import { bufferIo } from "../../agent/src/cli/io.ts"
import { initialState } from "../../agent/src/core/reducer.ts"
import type { OperatorRequest } from "../../agent/src/core/types.ts"
import { diffForReload, parseConfigText } from "../../agent/src/daemon/config-load.ts"
import { answer } from "../../agent/src/daemon/control-socket.ts"
import type { Config } from "../../shared/config.ts"
import { minimal } from "../support/config-text.ts"
import { config3 } from "./daemon-states.ts"

const req = (...args: string[]) => planCommand("member", args, {}).plan.request

test("member add NAME --address A [--kind] [--agent-port] [--priority] [--not-promotable]", () => {
  assert.deepEqual(req("add", "db4", "--address", "10.0.0.14"), {
    _tag: "MemberAdd",
    name: "db4",
    address: "10.0.0.14",
    kind: "data",
    agentPort: null,
    mysqlPort: 3306,
    priority: 0,
    promotable: true,
  })
  assert.deepEqual(
    req(
      "add",
      "w1",
      "--address",
      "10.0.0.21",
      "--kind",
      "witness",
      "--agent-port",
      "7950",
      "--priority",
      "5",
      "--not-promotable",
    ),
    {
      _tag: "MemberAdd",
      name: "w1",
      address: "10.0.0.21",
      kind: "witness",
      agentPort: 7950,
      mysqlPort: 3306,
      priority: 5,
      promotable: false,
    },
  )
  assert.deepEqual(req("remove", "db3"), { _tag: "MemberRemove", node: "db3" })
})

test("member: bad command lines are usage problems naming what is wrong", () => {
  const problem = (args: string[], pattern: RegExp) =>
    assert.throws(
      () => req(...args),
      (e: Error) => pattern.test(e.message),
      args.join(" "),
    )
  problem(["add", "db4"], /--address A is required/)
  problem(["add", "db4", "--address", "x", "--kind", "arbiter"], /--kind must be data or witness/)
  problem(
    ["add", "db4", "--address", "x", "--agent-port", "seven"],
    /--agent-port must be a whole number/,
  )
  problem(["grow", "db4"], /member ACTION must be add, remove or replace, not 'grow'/)
  problem(["remove"], /NAME is required/)
  problem(["remove", "db3", "db4"], /member remove takes one NAME/)
  problem(["replace", "db3"], /NEW is required/)
})

test("member replace OLD NEW prints the two steps and sends nothing", async () => {
  const io = bufferIo()
  const code = await runControlCommand(
    "member",
    ["replace", "db3", "db4", "--address", "10.0.0.14", "--socket", "/nonexistent/agent.sock"],
    io,
  )
  assert.equal(code, 0, io.stderr())
  assert.match(io.stdout(), /1\. mha-agent member remove db3\n/)
  assert.match(io.stdout(), /2\. mha-agent member add db4 --address 10\.0\.0\.14 --kind data\n/)
  assert.match(io.stdout(), /switch over to another node first/)
})

/** Control-socket options around a 3-member state that record what is asked of the core. */
const socketOptions = <E extends object>(extra: E) => {
  const asked: Array<OperatorRequest> = []
  const options = {
    path: "/unused",
    cluster: () => "prod",
    state: () => initialState(config3, "db1"),
    ask: async (r: OperatorRequest) => {
      asked.push(r)
      return { ok: true, message: "fine" }
    },
    reload: async () => ({ ok: true, message: "" }),
    log: { error: () => {}, info: () => {}, warn: () => {} } as never,
    ...extra,
  }
  return { asked, options }
}

test("the control socket hands member add to the core, with this agent's port when none is given", async () => {
  const { asked, options } = socketOptions({ agentPort: () => 7946 })
  const line = JSON.stringify({
    _tag: "MemberAdd",
    name: "w1",
    address: "10.0.0.21",
    kind: "witness",
    agentPort: null,
    mysqlPort: 3306,
    priority: 0,
    promotable: true,
  })
  const reply = await answer(options, line)
  assert.equal(reply.ok, true, reply.message)
  assert.deepEqual(asked, [
    {
      _tag: "MemberAdd",
      member: {
        name: "w1",
        kind: "witness",
        address: "10.0.0.21",
        agentPort: 7946,
        mysqlPort: 3306,
        priority: 0,
        // A witness is never promotable, whatever the request says.
        promotable: false,
      },
    },
  ])
})

test("the control socket refuses a member change while a connected agent speaks a protocol older than 1.3", async () => {
  const { asked, options } = socketOptions({ olderPeers: () => ["db3 (1.2)"] })
  const reply = await answer(options, JSON.stringify({ _tag: "MemberRemove", node: "db2" }))
  assert.equal(reply.ok, false)
  assert.equal(
    reply.message,
    "member change refused: db3 (1.2) speaks a mesh protocol older than 1.3 and would not count the new member list: upgrade every agent first",
  )
  assert.deepEqual(asked, [])
  // Other requests are not held back by it.
  const pause = await answer(options, JSON.stringify({ _tag: "Pause" }))
  assert.equal(pause.ok, true)
})

const config = (members: string): Config => {
  const r = parseConfigText(minimal("", members))
  if (r._tag !== "Ok") assert.fail(JSON.stringify(r.problems))
  return r.config
}
const m = (name: string, ip: number) =>
  `    - name: ${name}\n      address: 10.0.0.${ip}\n      agent_port: 7946\n`

test("reload: members that say what the cluster record says change live; others are refused", () => {
  const three = config(m("db1", 11) + m("db2", 12) + m("db3", 13))
  const four = config(m("db1", 11) + m("db2", 12) + m("db3", 13) + m("db4", 14))
  const recorded = ["db1", "db2", "db3", "db4"].map((name) => ({ name, kind: "data" }))
  const ok = diffForReload(three, four, recorded)
  assert.equal(ok.ok, true)
  assert.deepEqual(
    ok.live.map((c) => c.path),
    ["cluster.members"],
  )
  // The record lists no members, or others: a file edit would change the quorum on this node only.
  for (const record of [null, recorded.slice(0, 3)]) {
    const plan = diffForReload(three, four, record)
    assert.equal(plan.ok, false)
    assert.match(plan.refused[0]?.reason ?? "", /run `mha-agent member add\|remove` on the primary/)
  }
})
