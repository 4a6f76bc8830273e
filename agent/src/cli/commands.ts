// The commands answered by the running agent over its control socket: what
// each accepts, what `--help` says about it, and the request it sends
// (shared/control.ts). Pure data and small functions: main.ts imports this
// statically for `--help` without loading Effect.
import type { ControlRequest } from "../../../shared/control.ts"
import { type OptionSpec, type ParsedArgs, parseSeconds, UsageProblem } from "./args.ts"

export const DEFAULT_SOCKET = "/run/mha-agent/agent.sock"

/** How a successful reply is shown to people (`--json` always prints the reply). */
export type Rendering = "status" | "topology" | "errant" | "history" | "steps" | "message"

export interface Plan {
  readonly request: ControlRequest
  /** Printed instead of sending anything (`member replace` prints its two steps). */
  readonly printOnly?: string
  readonly rendering: Rendering
  /** How long to wait for the reply; default {@link DEFAULT_TIMEOUT_S}. */
  readonly timeoutS?: number
}

export interface ControlCommandSpec {
  readonly usage: string
  readonly summary: string
  /** Paragraph(s) for `mha-agent <command> --help`. */
  readonly description: string
  /** The command's own options (the common ones are {@link COMMON_OPTIONS}). */
  readonly options: ReadonlyArray<OptionSpec>
  /** A node name as a plain word (`exclude db3`), if the command takes one. */
  readonly positional?: { readonly name: string; readonly required: boolean; readonly help: string }
  /** How many plain words it takes (default 1 with `positional`): `member add NAME`. */
  readonly maxPositional?: number
  readonly plan: (p: ParsedArgs) => Plan
}

export const DEFAULT_TIMEOUT_S = 120

export const COMMON_OPTIONS: ReadonlyArray<OptionSpec> = [
  { name: "--json", help: "print the agent's reply as one JSON line instead of text" },
  {
    name: "--socket",
    value: "PATH",
    help: `the agent's control socket (default: $MHA_AGENT_SOCKET, else ${DEFAULT_SOCKET})`,
  },
  {
    name: "--timeout",
    value: "S",
    help: `seconds to wait for the agent's reply (default ${DEFAULT_TIMEOUT_S}; clone 3600)`,
  },
]

/** Exit codes of every control command, for `--help`. */
export const CONTROL_EXIT_CODES: ReadonlyArray<readonly [number, string]> = [
  [0, "success"],
  [1, "the agent refused or the command failed (its reason is printed)"],
  [2, "bad command line"],
  [3, "the agent could not be reached (not running, permission denied, no reply)"],
]

const required = (p: ParsedArgs, option: string, placeholder: string): string => {
  const v = p.values.get(option)
  if (v === undefined) throw new UsageProblem(`${option} ${placeholder} is required`)
  return v
}

const node = (p: ParsedArgs): string => {
  const n = p.positional[0]
  if (n === undefined) throw new UsageProblem("NODE is required")
  return n
}

const integer = (p: ParsedArgs, option: string, fallback: number | null): number | null => {
  const v = p.values.get(option)
  if (v === undefined) return fallback
  if (!/^\d{1,9}$/.test(v)) throw new UsageProblem(`${option} must be a whole number, not '${v}'`)
  return Number(v)
}

/** `member add|remove|replace ...`: the request, or for replace the two steps to print. */
const memberPlan = (p: ParsedArgs): Plan => {
  const [action, name, second] = p.positional
  if (name === undefined) throw new UsageProblem("member ACTION NAME: NAME is required")
  const kind = p.values.get("--kind") ?? "data"
  if (kind !== "data" && kind !== "witness")
    throw new UsageProblem(`--kind must be data or witness, not '${kind}'`)
  const add = (member: string) => {
    const address = required(p, "--address", "A")
    return {
      _tag: "MemberAdd" as const,
      name: member,
      address,
      kind: kind as "data" | "witness",
      agentPort: integer(p, "--agent-port", null),
      mysqlPort: integer(p, "--mysql-port", 3306) ?? 3306,
      priority: integer(p, "--priority", 0) ?? 0,
      promotable: !p.flags.has("--not-promotable"),
    }
  }
  switch (action) {
    case "add":
      if (second !== undefined) throw new UsageProblem("member add takes one NAME")
      return { request: add(name), rendering: "message" }
    case "remove":
      if (second !== undefined) throw new UsageProblem("member remove takes one NAME")
      return { request: { _tag: "MemberRemove", node: name }, rendering: "message" }
    case "replace": {
      if (second === undefined) throw new UsageProblem("member replace OLD NEW: NEW is required")
      const r = add(second)
      const extra = [
        `--kind ${r.kind}`,
        ...(r.agentPort === null ? [] : [`--agent-port ${r.agentPort}`]),
        ...(r.mysqlPort === 3306 ? [] : [`--mysql-port ${r.mysqlPort}`]),
        ...(r.priority === 0 ? [] : [`--priority ${r.priority}`]),
        ...(r.promotable ? [] : ["--not-promotable"]),
      ].join(" ")
      return {
        request: { _tag: "Status" },
        rendering: "message",
        printOnly:
          "A replacement is two changes, one member at a time (each committed before the next):\n" +
          `  1. mha-agent member remove ${name}\n` +
          `  2. mha-agent member add ${second} --address ${r.address} ${extra}\n` +
          `     then start the agent of ${second} with the members block step 2 prints.\n` +
          `If ${name} is the ACTIVE primary, switch over to another node first.\n`,
      }
    }
    default:
      throw new UsageProblem(`member ACTION must be add, remove or replace, not '${action ?? ""}'`)
  }
}

const simple = (request: ControlRequest): ((p: ParsedArgs) => Plan) => {
  return () => ({ request, rendering: "message" })
}

export const controlCommands: Readonly<Record<string, ControlCommandSpec>> = {
  status: {
    usage: "status",
    summary: "the cluster in one line, then one line per member",
    description:
      "Shows the cluster as this node's agent sees it: health, primary, term, how many\n" +
      "nodes are healthy, paused, excluded nodes and why no election runs; then one\n" +
      "line per member with its role, health, lag, source and when it was last heard.",
    options: [],
    plan: () => ({ request: { _tag: "Status" }, rendering: "status" }),
  },
  topology: {
    usage: "topology",
    summary: "tree: the primary and its replicas with state, health, lag, GTIDs, errant flag",
    description:
      "Shows the replication tree as this node's agent sees it: the primary, then the\n" +
      "nodes replicating from it (indented), each with its role, health, lag, a summary\n" +
      "of its executed GTID set (server UUIDs shortened to 8 characters), whether it has\n" +
      "errant transactions, and when this agent last heard from it.",
    options: [],
    plan: () => ({ request: { _tag: "Status" }, rendering: "topology" }),
  },
  switchover: {
    usage: "switchover --to NODE [--dry-run] [--drain-timeout S]",
    summary: "planned handover of the primary role to NODE",
    description:
      "Hands the primary role to NODE: the primary stops writes, waits until NODE has\n" +
      "executed everything, and transfers leadership; the old primary becomes a replica.\n" +
      "Sent to the primary (the local agent forwards it). NODE must be a caught-up,\n" +
      "eligible replica of the primary.",
    options: [
      { name: "--to", value: "NODE", help: "the node to promote (required)" },
      { name: "--dry-run", help: "print every step and check it would make, change nothing" },
      {
        name: "--drain-timeout",
        value: "S",
        help: "seconds to let client sessions finish before they are killed",
      },
    ],
    plan: (p) => {
      const to = required(p, "--to", "NODE")
      const drain = p.values.get("--drain-timeout")
      const drainS = drain === undefined ? null : parseSeconds("--drain-timeout", drain)
      const dryRun = p.flags.has("--dry-run")
      return {
        request: {
          _tag: "Switchover",
          to,
          dryRun,
          drainTimeoutMs: drainS === null ? null : Math.round(drainS * 1000),
        },
        rendering: dryRun ? "steps" : "message",
        ...(drainS === null ? {} : { timeoutS: DEFAULT_TIMEOUT_S + drainS }),
      }
    },
  },
  failover: {
    usage: "failover [--to NODE] --force",
    summary: "manual failover when the primary is gone (may lose transactions)",
    description:
      "Makes NODE (default: this node) stand for election although the automatic\n" +
      "failover did not run (for example while paused). Voters still check leases and\n" +
      "GTID completeness, but transactions the old primary acknowledged and no replica\n" +
      "received are lost: --force confirms that you accept this.",
    options: [
      { name: "--to", value: "NODE", help: "the node to promote (default: this node)" },
      { name: "--force", help: "confirm the possible loss of acknowledged transactions" },
    ],
    plan: (p) => {
      if (!p.flags.has("--force")) {
        throw new UsageProblem(
          "a manual failover may lose transactions the old primary acknowledged; add --force to confirm",
        )
      }
      return {
        request: { _tag: "Failover", to: p.values.get("--to") ?? null },
        rendering: "message",
      }
    },
  },
  pause: {
    usage: "pause",
    summary: "stop all automatic actions, cluster-wide",
    description:
      "Stops elections, failovers, failback and automatic rejoins on every node (kept\n" +
      "in the cluster record, so it survives restarts) until `mha-agent resume`.",
    options: [],
    plan: simple({ _tag: "Pause" }),
  },
  resume: {
    usage: "resume",
    summary: "restart the automatic actions stopped by pause",
    description: "Lifts `mha-agent pause` on every node.",
    options: [],
    plan: simple({ _tag: "Resume" }),
  },
  exclude: {
    usage: "exclude NODE",
    summary: "take NODE out of candidacy and out of the agent's repairs (maintenance)",
    description:
      "NODE is never promoted, by failover or switchover, until `mha-agent include NODE`,\n" +
      "and its agent repairs nothing in its replication meanwhile: threads stopped by\n" +
      "hand stay stopped, no semi-sync change, no repointing (rejoin, demote and clone\n" +
      "still act when asked). Kept in the cluster record.",
    options: [],
    positional: { name: "NODE", required: true, help: "the node to exclude" },
    plan: (p) => ({ request: { _tag: "Exclude", node: node(p) }, rendering: "message" }),
  },
  include: {
    usage: "include NODE",
    summary: "make NODE a candidate again",
    description: "Undoes `mha-agent exclude NODE`.",
    options: [],
    positional: { name: "NODE", required: true, help: "the node to include" },
    plan: (p) => ({ request: { _tag: "Include", node: node(p) }, rendering: "message" }),
  },
  member: {
    usage: "member add|remove|replace NAME [NEW] [--address A] [--kind data|witness]",
    summary: "change the cluster's members online, one member at a time (on the primary)",
    description:
      "Run on the ACTIVE primary's host. `member add NAME --address A [--kind data|witness]`\n" +
      "adds one member, `member remove NAME` removes one: the member list lives in the\n" +
      "cluster record and counts on every agent as soon as it accepts it; one change at\n" +
      "a time, committed before the next. Refused while another change is not committed,\n" +
      "while paused or inside the anti-flap block, for the ACTIVE primary itself (switch\n" +
      "over first), and when strict semi-sync would wait for more acknowledgements than\n" +
      "the data replicas can send. Every agent must speak mesh protocol 1.3 or later.\n" +
      "Prints the `members:` block to put in every agent's config file (an agent warns\n" +
      "with config-members-stale while its file disagrees). Start a new member's agent\n" +
      "after its add, with that block. `member replace OLD NEW --address A` prints the\n" +
      "two steps (remove OLD, then add NEW).",
    options: [
      { name: "--address", value: "A", help: "the new member's address (add, replace)" },
      { name: "--kind", value: "KIND", help: "data (default) or witness (add, replace)" },
      {
        name: "--agent-port",
        value: "P",
        help: "the new member's agent port (default: this agent's own)",
      },
      { name: "--mysql-port", value: "P", help: "the new member's mysqld port (default 3306)" },
      { name: "--priority", value: "N", help: "its priority (default 0)" },
      { name: "--not-promotable", help: "never promote it (promotable: false)" },
    ],
    positional: {
      name: "ACTION NAME [NEW]",
      required: true,
      help: "add NAME, remove NAME, or replace OLD NEW",
    },
    maxPositional: 3,
    plan: (p) => memberPlan(p),
  },
  "ack-recovery": {
    usage: "ack-recovery",
    summary: "lift the anti-flap block after a failover",
    description:
      "After a failover, another automatic failover to yet another node is blocked\n" +
      "for timings.recovery_block_period (the last primary may still take the role\n" +
      "back when it is healthy and its data the most complete); this lifts the block\n" +
      "once you have looked at what happened. Without a primary it lifts the block\n" +
      "on this node only.",
    options: [],
    plan: simple({ _tag: "AckRecovery" }),
  },
  rejoin: {
    usage: "rejoin [NODE] [--force]",
    summary: "bring NODE (default: this node) back as a replica of the primary",
    description:
      "Makes NODE replicate from the primary again. A node with transactions the\n" +
      "primary lacks (DIVERGED) is refused unless --force: those transactions stay on\n" +
      "it and are not on the primary (re-seed it with `mha-agent clone` instead).",
    options: [{ name: "--force", help: "rejoin even though NODE has diverged" }],
    positional: { name: "NODE", required: false, help: "the node to rejoin (default: this node)" },
    plan: (p) => ({
      request: { _tag: "Rejoin", node: p.positional[0] ?? null, force: p.flags.has("--force") },
      rendering: "message",
    }),
  },
  demote: {
    usage: "demote NODE --source M",
    summary: "fence NODE and make it a replica of the primary M",
    description:
      "Fences NODE (super_read_only, VIP removed) and makes it replicate from M,\n" +
      "which must be the primary. For a node that is writable but should not be.",
    options: [
      { name: "--source", value: "M", help: "the primary NODE replicates from (required)" },
    ],
    positional: { name: "NODE", required: true, help: "the node to demote" },
    plan: (p) => {
      const n = node(p)
      return {
        request: { _tag: "Demote", node: n, source: required(p, "--source", "M") },
        rendering: "message",
      }
    },
  },
  clone: {
    usage: "clone --recipient N [--donor M]",
    summary: "re-seed N with the CLONE plugin, then rejoin it",
    description:
      "Replaces N's data with a copy of M's (CLONE INSTANCE FROM), then makes N\n" +
      "replicate from the primary. Default donor: a healthy replica, else the primary.\n" +
      "Everything on N that the donor lacks is lost.",
    options: [
      { name: "--recipient", value: "N", help: "the node to re-seed (required)" },
      { name: "--donor", value: "M", help: "the node to copy from" },
    ],
    plan: (p) => ({
      request: {
        _tag: "Clone",
        recipient: required(p, "--recipient", "N"),
        donor: p.values.get("--donor") ?? null,
      },
      rendering: "message",
      timeoutS: 3600,
    }),
  },
  "errant-gtid": {
    usage: "errant-gtid [--fix] [--dry-run]",
    summary: "list errant transactions; --fix injects empty ones on the primary",
    description:
      "Lists, per member, the transactions it executed that the primary has not\n" +
      "(errant GTIDs). --fix makes the primary commit an empty transaction for each\n" +
      "of them, so that they no longer stand in the way of a failover; the data those\n" +
      "transactions changed on the replica stays as it is. --fix --dry-run prints\n" +
      "the steps without changing anything.",
    options: [
      { name: "--fix", help: "inject empty transactions on the primary for every errant GTID" },
      { name: "--dry-run", help: "with --fix: print the steps, change nothing" },
    ],
    plan: (p) => {
      if (!p.flags.has("--fix")) return { request: { _tag: "Status" }, rendering: "errant" }
      const dryRun = p.flags.has("--dry-run")
      return { request: { _tag: "FixErrant", dryRun }, rendering: dryRun ? "steps" : "message" }
    },
  },
  history: {
    usage: "history",
    summary: "past failovers and switchovers with terms, times and reasons",
    description:
      "Lists the failovers and switchovers kept in the cluster record, oldest first:\n" +
      "when the new primary became ACTIVE, the kind, the term, old -> new primary, how\n" +
      "long it took from the trigger, and why.",
    options: [],
    plan: () => ({ request: { _tag: "History" }, rendering: "history" }),
  },
  reload: {
    usage: "reload",
    summary: "re-read the config file (as SIGHUP does)",
    description:
      "Makes the local agent re-read its config file: timings, thresholds, hooks, log\n" +
      "level and HTTP settings change live; a change of members or identity is refused\n" +
      "until restart. The reply says what changed or why the file was refused.",
    options: [],
    plan: simple({ _tag: "Reload" }),
  },
}
