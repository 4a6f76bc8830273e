/**
 * A tiny interpreter for scenario scripts (test/sim/testdata/*.txt), in the
 * spirit of etcd-io/raft's data-driven tests. One command per line, `#`
 * starts a comment. Every script also fails on any safety violation (I1-I5).
 *
 *   cluster data=3 witness=0 seed=7 initial_primary=db1 recovery_block=10m failback=true
 *           failback_delay=5s auto_rejoin=false source=none fence_command=required
 *           writable_source=true agents_at=db1:0,db2:3s,db3:6s etcd=true allow_errant_promotion=true
 *   run 10s
 *   kill-mysqld db1 restart=fail | start-mysqld db1
 *   crash-loop db1 up=1s | crash-loop db1 off
 *   isolate db1 | cut db1 db2 [agent|mysql] | cut-agent db1 | cut-mysql db1
 *   loss 30 | heal | heal-all
 *   hang-mysqld db1 3s | kill-agent db1 3s | pause-agent db1 3s
 *   crash-agent-after-vote w1 5s (its agent dies right after it next grants a vote, back 5 s later)
 *   stall-apply db2 | deny-system-variables db2 | errant db3 | writable-by-hand db2 | hook db2 pre_switchover exit=1 [ms=800]
 *   revoke db2 SYSTEM_VARIABLES_ADMIN | grant db2 SYSTEM_VARIABLES_ADMIN (seen at the next grants check)
 *   op db1 switchover db2 [dry-run] | op db1 pause | op db1 exclude db2 | op db3 rejoin force ...
 *   mark
 *   expect primary db2 | expect primary none | expect primary-not db1
 *   expect failovers 0 | expect role db1 DIVERGED | expect replicating db3 db2
 *   expect writable db2 no | expect errant db3 yes | expect reply ok [text] | expect term db1 1
 *   expect converged | expect write-gap-under 1s | expect acked-at-least 10
 *   expect promoted-since-mark db1 no | expect writes-blocked db1 yes
 *   expect published db2 | expect published none (etcd=true: whom the simulated etcd names)
 *
 * Membership changes (core/members.ts): `cluster data=3 spares=1 spare_witnesses=1` adds
 * hosts db4 and w1 that are no member yet (fresh mysqld, agent not started);
 *   op db1 member-add db4 [witness] | op db1 member-remove db3
 *   start-agent db4                 (its config lists the primary's members and itself)
 *   expect members db2 db1,db2,db3,db4 (the list db2 counts) | expect wait-count db1 2
 */

import type { MemberConfig } from "../../agent/src/core/config.ts"
import { isEmpty, isSubset } from "../../agent/src/core/gtid.ts"
import { nodeRole } from "../../agent/src/core/status.ts"
import type { HookName, OperatorRequest } from "../../agent/src/core/types.ts"
import type { Traffic } from "./network.ts"
import { dataMembers, type Reducer, simTimings, World } from "./world.ts"

export interface ScenarioResult {
  readonly ok: boolean
  readonly failures: ReadonlyArray<string>
  readonly world: World | null
}

const duration = (text: string | undefined): number => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text ?? "")
  if (m === null) throw new Error(`bad duration ${text}`)
  const v = Number(m[1])
  return m[2] === "ms" ? v : m[2] === "s" ? v * 1000 : v * 60_000
}

const options = (words: ReadonlyArray<string>): Map<string, string> => {
  const m = new Map<string, string>()
  for (const w of words) {
    const i = w.indexOf("=")
    if (i > 0) m.set(w.slice(0, i), w.slice(i + 1))
  }
  return m
}

/**
 * Commands a caller adds to the language (the golden tests' `record` and
 * `vote`): called for a command the interpreter does not know; true when handled.
 */
export type ExtraCommand = (world: World, cmd: string, args: ReadonlyArray<string>) => boolean

export const runScenario = (
  script: string,
  reducer?: Reducer,
  extra?: ExtraCommand,
): ScenarioResult => {
  const failures: Array<string> = []
  let world: World | null = null
  let markAt = 0
  const w = (): World => {
    if (world === null) throw new Error("`cluster` must come first")
    return world
  }
  const lines = script.split("\n")
  for (let ln = 0; ln < lines.length; ln++) {
    const line = lines[ln]!.replace(/#.*$/, "").trim()
    if (line === "") continue
    const [cmd, ...args] = line.split(/\s+/)
    const fail = (what: string) => failures.push(`line ${ln + 1} \`${line}\`: ${what}`)
    try {
      switch (cmd) {
        case "cluster": {
          const o = options(args)
          const members = dataMembers(Number(o.get("data") ?? 3), Number(o.get("witness") ?? 0))
          const spares = spareHosts(
            members,
            Number(o.get("spares") ?? 0),
            Number(o.get("spare_witnesses") ?? 0),
          )
          const source = o.get("source")
          world = new World({
            seed: Number(o.get("seed") ?? 1),
            members,
            ...(spares.length > 0 ? { spares } : {}),
            reducer,
            initialSource: source === "none" ? null : (source ?? "db1"),
            writableSource: o.get("writable_source") === "true",
            // agents_at=db1:0,db2:3s,db3:6s: each agent starts then (adoption, one host at a time).
            ...(o.has("agents_at")
              ? {
                  agentStartAt: Object.fromEntries(
                    (o.get("agents_at") ?? "").split(",").map((x) => {
                      const [name, at] = x.split(":")
                      return [name, at === "0" ? 0 : duration(at)]
                    }),
                  ),
                }
              : {}),
            config: {
              initialPrimary: o.get("initial_primary") ?? null,
              autoRejoin: o.get("auto_rejoin") !== "false",
              failback: o.get("failback") === "true",
              failoverBeforeHealthy: o.get("failover_before_healthy") === "true",
              allowErrantPromotion: o.get("allow_errant_promotion") === "true",
              publishPrimary: o.get("etcd") === "true",
              fenceCommand: o.has("fence_command")
                ? { required: o.get("fence_command") === "required" }
                : null,
              timings: {
                ...simTimings,
                recoveryBlockPeriodMs: o.has("recovery_block")
                  ? duration(o.get("recovery_block"))
                  : 0,
                failbackDelayMs: o.has("failback_delay")
                  ? duration(o.get("failback_delay"))
                  : 30_000,
              },
            },
          })
          break
        }
        case "run":
          w().runUntil(w().now + duration(args[0]))
          break
        case "mark":
          markAt = w().now
          w().resetWriteGap()
          break
        case "kill-mysqld":
          w().killMysqld(args[0]!, options(args).get("restart") === "fail")
          break
        case "crash-loop":
          if (args[1] === "off") w().stopCrashLoop(args[0]!)
          else w().startCrashLoop(args[0]!, duration(options(args).get("up")))
          break
        case "hang-mysqld":
          w().hangMysqld(args[0]!, duration(args[1]))
          break
        case "kill-agent":
          w().killAgent(args[0]!, duration(args[1]))
          break
        case "crash-agent-after-vote":
          w().crashAgentAfterVote(args[0]!, duration(args[1]))
          break
        case "pause-agent":
          w().pauseAgent(args[0]!, duration(args[1]))
          break
        case "isolate":
          w().fault(`isolate ${args[0]}`)
          w().net.isolate(args[0]!, w().names, ["agent", "mysql"])
          break
        case "cut-agent":
          w().fault(`cut agent traffic of ${args[0]}`)
          w().net.isolate(args[0]!, w().names, ["agent"])
          break
        case "cut-mysql":
          w().fault(`cut mysql traffic of ${args[0]}`)
          w().net.isolate(args[0]!, w().names, ["mysql"])
          break
        case "cut": {
          const kinds: ReadonlyArray<Traffic> =
            args[2] === "agent" || args[2] === "mysql" ? [args[2]] : ["agent", "mysql"]
          w().fault(`cut ${args[0]} -> ${args[1]} ${kinds.join("+")}`)
          for (const k of kinds) w().net.cut(args[0]!, args[1]!, k)
          break
        }
        case "loss":
          w().fault(`loss ${args[0]} %`)
          w().net.loss = Number(args[0]) / 100
          break
        case "heal":
          w().fault("network healed")
          w().net.heal()
          break
        case "heal-all":
          w().healAll()
          break
        case "stall-apply":
          w().fault(`SQL thread of ${args[0]} stalls`)
          w().node(args[0]!).mysqld!.applyStalled = true
          break
        case "start-agent":
          w().startSpare(args[0]!)
          break
        case "start-mysqld":
          w().startMysqld(args[0]!)
          break
        case "fill-relay-disk":
          w().fillRelayDisk(args[0]!)
          break
        case "free-relay-disk":
          w().freeRelayDisk(args[0]!)
          break
        case "deny-system-variables":
          w().fault(`${args[0]}'s agent user loses SYSTEM_VARIABLES_ADMIN`)
          w().node(args[0]!).mysqld!.systemVariablesDenied = true
          break
        case "errant":
          w().errant(args[0]!)
          break
        case "writable-by-hand":
          w().makeWritableByHand(args[0]!)
          break
        case "hook": {
          const node = w().node(args[0]!)
          node.hookExit.set(args[1] as HookName, Number(options(args).get("exit") ?? 0))
          const ms = options(args).get("ms")
          if (ms !== undefined) node.hookMs.set(args[1] as HookName, Number(ms))
          break
        }
        case "revoke":
          w().fault(`revoke ${args[1]} from the agent's user on ${args[0]}`)
          w().node(args[0]!).missingPrivileges.add(args[1]!)
          break
        case "grant":
          w().fault(`grant ${args[1]} to the agent's user on ${args[0]}`)
          w().node(args[0]!).missingPrivileges.delete(args[1]!)
          break
        case "op":
          w().operator(args[0]!, operatorRequest(args.slice(1)))
          break
        case "expect":
          expect(w(), args, markAt, fail)
          break
        default:
          if (extra === undefined || !extra(w(), cmd!, args)) fail(`unknown command ${cmd}`)
      }
    } catch (e) {
      fail(String(e))
    }
  }
  if (world !== null) {
    for (const v of (world as World).violations) {
      if (v.invariant !== "L1")
        failures.push(`${v.invariant} at ${v.at.toFixed(0)} ms: ${v.detail}`)
    }
  }
  return { ok: failures.length === 0, failures, world }
}

/** Hosts beside the members: data hosts numbered after the data members, witnesses after theirs. */
const spareHosts = (
  members: ReadonlyArray<MemberConfig>,
  data: number,
  witnesses: number,
): Array<MemberConfig> => {
  const d = members.filter((m) => m.kind === "data").length
  const wi = members.length - d
  return [
    ...Array.from({ length: data }, (_, i) => ({
      name: `db${d + i + 1}`,
      priority: 10,
      promotable: true,
      kind: "data" as const,
    })),
    ...Array.from({ length: witnesses }, (_, i) => ({
      name: `w${wi + i + 1}`,
      priority: 0,
      promotable: false,
      kind: "witness" as const,
    })),
  ]
}

const operatorRequest = (words: ReadonlyArray<string>): OperatorRequest => {
  const [what, arg] = words
  switch (what) {
    case "switchover":
      return {
        _tag: "Switchover",
        to: arg!,
        dryRun: words.includes("dry-run"),
        drainTimeoutMs: null,
      }
    case "failover":
      return { _tag: "Failover", to: arg ?? null }
    case "pause":
      return { _tag: "Pause" }
    case "resume":
      return { _tag: "Resume" }
    case "exclude":
      return { _tag: "Exclude", node: arg! }
    case "include":
      return { _tag: "Include", node: arg! }
    case "ack-recovery":
      return { _tag: "AckRecovery" }
    case "rejoin":
      return { _tag: "Rejoin", node: null, force: arg === "force" }
    case "fix-errant":
      return { _tag: "FixErrant", dryRun: words.includes("dry-run") }
    case "shutdown":
      return { _tag: "Shutdown" }
    case "clone":
      return { _tag: "Clone", recipient: arg!, donor: words[2] ?? null }
    case "member-add": {
      const witness = words.includes("witness")
      return {
        _tag: "MemberAdd",
        member: {
          name: arg!,
          kind: witness ? "witness" : "data",
          address: arg!,
          agentPort: 7878,
          mysqlPort: 3306,
          priority: witness ? 0 : 10,
          promotable: !witness,
        },
      }
    }
    case "member-remove":
      return { _tag: "MemberRemove", node: arg! }
    default:
      throw new Error(`unknown operator request ${what}`)
  }
}

const expect = (
  w: World,
  args: ReadonlyArray<string>,
  markAt: number,
  fail: (what: string) => void,
): void => {
  const [what, a, b] = args
  switch (what) {
    case "primary": {
      const p = w.primary()
      if ((a === "none" ? null : a) !== p) fail(`primary is ${p ?? "none"}`)
      return
    }
    case "term": {
      const t = w.node(a!).state.hard.term
      if (t !== Number(b)) fail(`${a} is in term ${t}`)
      return
    }
    case "published": {
      // expect published db2 | expect published none: whom the simulated etcd names.
      const p = w.publishedPrimary()?.primary ?? null
      if ((a === "none" ? null : a) !== p) fail(`etcd names ${p ?? "nobody"}`)
      return
    }
    case "primary-not": {
      const p = w.primary()
      if (p === null || p === a) fail(`primary is ${p ?? "none"}`)
      return
    }
    case "failovers": {
      const n = w.failovers()
      if (n !== Number(a)) fail(`${n} failovers/switchovers since bootstrap`)
      return
    }
    case "role": {
      const role = nodeRole(w.node(a!).state)
      if (role !== b) fail(`${a} is ${role}`)
      return
    }
    case "replicating": {
      const m = w.node(a!).mysqld
      if (m === null || m.source !== b || !m.ioRunning || !m.sqlRunning) {
        fail(`${a} replicates from ${m?.source} (io ${m?.ioRunning}, sql ${m?.sqlRunning})`)
      }
      return
    }
    case "writable": {
      const m = w.node(a!).mysqld
      if ((m?.writable ?? false) !== (b === "yes")) fail(`${a} writable: ${m?.writable}`)
      return
    }
    case "errant": {
      const has = !isEmpty(w.node(a!).state.local.errant)
      if (has !== (b === "yes")) fail(`${a} errant: ${has}`)
      return
    }
    case "reply": {
      const r = w.operatorReplies[w.operatorReplies.length - 1]
      const text = args.slice(2).join(" ")
      if (r === undefined || r.ok !== (a === "ok") || !r.message.includes(text)) {
        fail(`last operator reply: ${r ? `${r.ok ? "ok" : "refused"}: ${r.message}` : "none"}`)
      }
      return
    }
    case "converged": {
      const why = w.checkLiveness()
      if (why !== null) fail(`not converged: ${why}`)
      return
    }
    case "write-gap-under": {
      const gap = w.longestWriteGapSince(markAt)
      if (gap >= duration(a)) fail(`longest time without a writable primary: ${gap.toFixed(0)} ms`)
      return
    }
    case "promoted-since-mark": {
      const times = w.promotions.filter((p) => p.node === a && p.at >= markAt).map((p) => p.at)
      if (times.length > 0 !== (b === "yes"))
        fail(
          `${a} promoted since the mark at ${times.map((t) => t.toFixed(0)).join(", ") || "no time"}`,
        )
      return
    }
    case "acked-at-least":
      if (w.ackedCount < Number(a)) fail(`only ${w.ackedCount} writes acknowledged`)
      return
    case "writes-blocked": {
      // The primary's own report (writes-blocked.ts), past its grace period.
      const blocked = w.node(a!).state.writesBlocked?.reported === true
      if (blocked !== (b === "yes")) fail(`${a} reports writes blocked: ${blocked}`)
      return
    }
    case "io-waiting-for-disk": {
      const m = w.node(a!).mysqld
      if ((m?.ioWaitingForDisk ?? false) !== (b === "yes"))
        fail(`${a}'s IO thread waiting for disk space: ${m?.ioWaitingForDisk}`)
      return
    }
    case "seconds-behind-source": {
      const lag = w.node(a!).mysqld?.probe().replica?.lagSeconds
      if (lag !== Number(b)) fail(`${a}'s Seconds_Behind_Source is ${lag}`)
      return
    }
    case "holds-executed-of": {
      // `a`'s mysqld holds every transaction `b`'s has (a clone copied them).
      const m = w.node(a!).mysqld
      const d = w.node(b!).mysqld
      if (m === null || d === null || !isSubset(d.executed, m.executed))
        fail(`${a} lacks transactions of ${b}`)
      return
    }
    case "members": {
      const names = w
        .node(a!)
        .state.config.members.map((m) => m.name)
        .join(",")
      if (names !== b) fail(`${a} counts members ${names}`)
      return
    }
    case "wait-count": {
      const count = w.node(a!).mysqld?.semiSyncWaitCount
      if (count !== Number(b))
        fail(`${a}'s rpl_semi_sync_source_wait_for_replica_count is ${count}`)
      return
    }
    case "no-violations":
      if (w.violations.length > 0)
        fail(w.violations.map((v) => `${v.invariant}: ${v.detail}`).join("; "))
      return
    default:
      fail(`unknown expectation ${what}`)
  }
}
