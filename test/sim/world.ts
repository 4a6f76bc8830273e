/**
 * The deterministic simulator: N agents running the real reducer, a
 * simulated mysqld per data node, a client that writes and records what was
 * acknowledged, a network, per-node clocks, all driven by one seed.
 *
 * The reducer's outputs are performed by the daemon's own executor
 * (agent/src/daemon/executor.ts) over simulated adapters (sim-adapters.ts):
 * the order and escalation of side effects is the daemon's, not a copy.
 * Fibers run on a scheduler the world drains after each simulated event, on
 * the node's simulated clock.
 */

import { compareVersions } from "../../agent/src/core/cluster-record.ts"
import {
  type ClusterConfig,
  defaultTimings,
  type MemberConfig,
  quorumOf,
  strictAckCount,
} from "../../agent/src/core/config.ts"
import { changedBeyondClock, nextDeadline, routineRunning } from "../../agent/src/core/deadline.ts"
import { whyNoElection } from "../../agent/src/core/election.ts"
import {
  contains,
  emptyGtidSet,
  formatGtidSet,
  type GtidSet,
  isSubset,
  subtract,
  union,
} from "../../agent/src/core/gtid.ts"
import { defaultHealthThresholds } from "../../agent/src/core/health.ts"
import { leaseValid } from "../../agent/src/core/lease.ts"
import { initialState, type StepResult, step } from "../../agent/src/core/reducer.ts"
import { leaderOf, promotionOf, roleName } from "../../agent/src/core/roles.ts"
import { stillWanted } from "../../agent/src/core/supersession.ts"
import type {
  AgentState,
  HardState,
  HookName,
  Input,
  MysqldStart,
  OperatorRequest,
} from "../../agent/src/core/types.ts"
import type { ClusterRecord, PeerMessage } from "../../shared/peer-messages.ts"
import { Network } from "./network.ts"
import { Prng } from "./prng.ts"
import {
  FiberTasks,
  type SimAgentProcess,
  type SimHost,
  simAgentProcess,
  simDaemonConfig,
} from "./sim-adapters.ts"
import { type PendingWrite, SimMysqld } from "./sim-mysqld.ts"

export type Reducer = (state: AgentState, input: Input) => StepResult

export interface Violation {
  readonly invariant: "I1" | "I2" | "I3" | "I4" | "I5" | "L1" | "L2" | "L3" | "D1"
  readonly at: number
  readonly detail: string
}

export interface WorldOptions {
  readonly seed: number
  readonly members: ReadonlyArray<MemberConfig>
  readonly config?: Partial<Omit<ClusterConfig, "members">>
  readonly reducer?: Reducer | undefined
  /** Max clock rate error of each node, as a fraction (must stay under the drift margin / 2). */
  readonly maxDrift?: number
  readonly traceSize?: number
  /** Client write interval in ms (0: no client). */
  readonly writeIntervalMs?: number
  /** Initial topology: who replicates from whom at time 0 (default: first data node is the source). */
  readonly initialSource?: string | null
  /**
   * Adoption of a running replication set (issue 14): the initial source
   * starts writable (super_read_only and read_only OFF), as before any agent ran.
   */
  readonly writableSource?: boolean
  /** When each node's agent first starts, in ms (default: at random within 200 ms). */
  readonly agentStartAt?: Readonly<Record<string, number>>
  /**
   * Hosts beside the members, for membership changes (core/members.ts): in no
   * config file, their mysqld fresh and replicating from nobody, their agent
   * started only by `startSpare` (after `member add`, with the member list the
   * operator was given).
   */
  readonly spares?: ReadonlyArray<MemberConfig>
}

interface Node {
  readonly name: string
  readonly member: MemberConfig
  readonly mysqld: SimMysqld | null
  state: AgentState
  disk: HardState | null
  /** The relay-intact file beside the hard state (core/relay-intact.ts). */
  relayIntact: MysqldStart | null
  agentUp: boolean
  /** Bumped on every agent crash: outputs of a dead process never run. */
  incarnation: number
  pausedUntil: number
  deferred: Array<() => void>
  clockOffset: number
  clockRate: number
  restartFails: boolean
  /** A crash loop: mysqld dies this long after every start, and the service manager starts it again. */
  crashLoopUpMs: number | null
  /** The running agent process's executor (the daemon's, over simulated adapters). */
  process: SimAgentProcess | null
  readonly hookExit: Map<HookName, number>
  /** How long a hook runs before it exits (default 5 ms). */
  readonly hookMs: Map<HookName, number>
  /** Privileges the agent's MySQL user lacks on this node (what SHOW GRANTS would show missing). */
  readonly missingPrivileges: Set<string>
  /** The vote request this agent holds unanswered while its freeze is under way, and since when (L3). */
  voteWait: { readonly request: unknown; at: number } | null
  readonly trace: Array<string>
  /** The config file's members for this host (a spare's is written when it is started). */
  fileMembers: ReadonlyArray<MemberConfig> | null
}

interface Event {
  readonly at: number
  readonly seq: number
  readonly run: () => void
}

/** A binary min-heap on (at, seq). */
class EventQueue {
  private readonly heap: Array<Event> = []
  private seq = 0

  push(at: number, run: () => void): void {
    const e = { at, seq: this.seq++, run }
    const h = this.heap
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (less(h[p]!, e)) break
      h[i] = h[p]!
      i = p
    }
    h[i] = e
  }

  pop(): Event | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (top === undefined || last === undefined || h.length === 0) return top
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= h.length) break
      const r = l + 1
      const c = r < h.length && less(h[r]!, h[l]!) ? r : l
      if (less(last, h[c]!)) break
      h[i] = h[c]!
      i = c
    }
    h[i] = last
    return top
  }

  peekAt(): number {
    return this.heap[0]?.at ?? Number.POSITIVE_INFINITY
  }
}

const less = (a: Event, b: Event): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq)

const uuidFor = (i: number): string =>
  `${(i + 1).toString(16).padStart(8, "0")}-0000-4000-8000-${(0xabc000 + i).toString(16).padStart(12, "0")}`

const TICK_MS = 50
/**
 * L3: a voter whose freeze (STOP REPLICA IO_THREAD) has not finished answers
 * the vote request within this long (rpc_timeout bounds the wait, protocol.md
 * section 7: "could not stop replication in time"; a tick and slack).
 */
const VOTE_ANSWER_LIMIT_MS = 4_000
const MYSQL_TICK_MS = 20

/** The timings every simulated run uses unless a script overrides them: the defaults, quicker to give up. */
export const simTimings = { ...defaultTimings, applyTimeoutMs: 3000, recoveryBlockPeriodMs: 0 }

export const makeConfig = (
  members: ReadonlyArray<MemberConfig>,
  overrides: Partial<Omit<ClusterConfig, "members">> = {},
): ClusterConfig => ({
  members,
  timings: { ...defaultTimings, recoveryBlockPeriodMs: 0 },
  health: { ...defaultHealthThresholds, failuresToFail: 3, failuresToCritical: 2 },
  semiSync: "strict",
  autoRejoin: true,
  failback: false,
  initialPrimary: null,
  failoverBeforeHealthy: false,
  allowErrantPromotion: false,
  fenceCommand: null,
  ...overrides,
})

export const dataMembers = (n: number, witnesses = 0): Array<MemberConfig> => [
  ...Array.from({ length: n }, (_, i) => ({
    name: `db${i + 1}`,
    priority: 100 - i,
    promotable: true,
    kind: "data" as const,
  })),
  ...Array.from({ length: witnesses }, (_, i) => ({
    name: `w${i + 1}`,
    priority: 0,
    promotable: false,
    kind: "witness" as const,
  })),
]

export class World implements SimHost {
  readonly rng: Prng
  readonly net: Network
  readonly config: ClusterConfig
  readonly nodes: Map<string, Node> = new Map()
  readonly names: ReadonlyArray<string>
  /** Hosts that are no member at the start (WorldOptions.spares). */
  readonly spares = new Set<string>()
  readonly violations: Array<Violation> = []
  readonly faultLog: Array<string> = []
  readonly operatorReplies: Array<{
    node: string
    requestId: number
    ok: boolean
    message: string
    answeredBy: string | null
    steps: ReadonlyArray<string>
  }> = []
  private readonly queue = new EventQueue()
  /** Every agent's fiber tasks, drained after each event. */
  readonly fibers = new FiberTasks()
  private readonly reducer: Reducer
  private readonly traceSize: number
  now = 0
  // The client
  private writeSeq = 0
  acked: GtidSet = emptyGtidSet
  ackedCount = 0
  /** Writes that took place on each node's mysqld while it was writable (for I2 accounting). */
  private vipHolders = new Set<string>()
  /**
   * The simulated etcd (config.publishPrimary): the primary key, and the term
   * key that refuses a lower term (adapters/etcd.ts's transaction). Always
   * reachable; a withdrawal deletes the key only if it is still the
   * withdrawing node's publication of that term (its lease).
   */
  private published: { readonly primary: string; readonly term: number } | null = null
  private publishedTerm = 0
  // Ledgers for invariants
  private readonly votes = new Map<string, string>()
  /** The last vote each voter refused each candidate, and whether it granted a pre-vote since (L2). */
  private readonly voteRefusals = new Map<string, { reason: string; preVoteGranted: boolean }>()
  private readonly recordParents = new Map<string, string | null>()
  private committedRecords: Array<string> = []
  private readonly recordContent = new Map<string, string>()
  private gapStart: number | null = 0
  private longestGap = 0
  /** Set while a scenario deliberately made a node writable by hand. */
  splitBrainByHand = false
  /**
   * mysqlds the operator made writable by hand, until fenced again: what their
   * clients write there is errant by the operator's hand, not a write the
   * agents acknowledged (I3 does not count it; the agents report it as errant).
   */
  private readonly writableByHand = new Set<SimMysqld>()
  /** Relay-log disks the heal leaves full: L1 does not ask those replicas to replicate. */
  private readonly fullBeyondHeal = new Set<string>()
  /** Agents that die right after they next grant a vote, and for how long (`crashAgentAfterVote`). */
  private readonly crashAfterVote = new Map<string, number>()
  /** Called when a node starts a real vote: lets a fault schedule strike mid-election. */
  onCandidate: ((name: string) => void) | null = null
  /** Every event name the agents emitted, and promotion kinds as `promoted:<kind>`. */
  readonly eventsSeen = new Set<string>()
  stats = {
    elections: 0,
    promotions: 0,
    inputs: 0,
    twoWritableSteps: 0,
    /** Most nodes stood for election, one after another, without anyone being elected. */
    electionsWithoutLeader: 0,
    /** Longest a vote request waited for its voter's freeze (L3). */
    longestVoteWait: 0,
  }
  private standingSinceLeader = 0
  private readonly promotedTerms = new Set<number>()
  /** Every completed promotion (any kind, reclaims too): when and whom. */
  readonly promotions: Array<{ readonly at: number; readonly node: string }> = []

  constructor(options: WorldOptions) {
    this.rng = new Prng(options.seed)
    this.net = new Network(this.rng.fork())
    this.config = makeConfig(options.members, options.config)
    this.reducer = options.reducer ?? step
    this.traceSize = options.traceSize ?? 40
    const spares = options.spares ?? []
    this.names = [...options.members, ...spares].map((m) => m.name)
    const maxDrift = options.maxDrift ?? this.config.timings.driftMargin / 3
    let dataIndex = 0
    for (const member of [...options.members, ...spares]) {
      const mysqld =
        member.kind === "data" ? new SimMysqld(member.name, uuidFor(dataIndex++)) : null
      this.nodes.set(member.name, {
        name: member.name,
        member,
        mysqld,
        state: initialState(this.config, member.name),
        disk: null,
        relayIntact: null,
        agentUp: false,
        incarnation: 0,
        pausedUntil: 0,
        deferred: [],
        clockOffset: this.rng.int(0, 1_000_000),
        clockRate: 1 + (this.rng.next() * 2 - 1) * maxDrift,
        restartFails: false,
        crashLoopUpMs: null,
        process: null,
        hookExit: new Map(),
        hookMs: new Map(),
        missingPrivileges: new Set(),
        voteWait: null,
        trace: [],
        fileMembers: null,
      })
      if (spares.includes(member)) this.spares.add(member.name)
    }
    // Initial topology: one source, every other data node replicating from it, all read-only.
    const source =
      options.initialSource === undefined
        ? (options.members.find((m) => m.kind === "data")?.name ?? null)
        : options.initialSource
    for (const n of this.nodes.values()) {
      if (n.mysqld === null || source === null || n.name === source || this.spares.has(n.name))
        continue
      n.mysqld.replicateFrom(source)
      n.mysqld.semiSyncWaitCount = strictAckCount(this.config)
    }
    const src = source === null ? undefined : this.nodes.get(source)?.mysqld
    if (src) {
      src.semiSyncWaitCount = strictAckCount(this.config)
      src.semiSyncSourceEnabled = this.config.semiSync !== "off"
    }
    if (src && options.writableSource === true) {
      src.superReadOnly = false
      src.readOnly = false
    }
    for (const n of this.nodes.values())
      if (!this.spares.has(n.name))
        this.startAgent(n, options.agentStartAt?.[n.name] ?? this.rng.int(0, 200))
    this.every(MYSQL_TICK_MS, () => this.mysqlTick())
    const writeInterval = options.writeIntervalMs ?? 100
    if (writeInterval > 0) this.scheduleWrites(writeInterval)
  }

  // -------------------------------------------------------------------------
  // Time

  localNow(n: Node, at: number = this.now): number {
    return Math.floor(n.clockOffset + at * n.clockRate)
  }

  schedule(at: number, run: () => void): void {
    this.queue.push(Math.max(at, this.now), run)
  }

  private every(interval: number, run: () => void): void {
    const loop = () => {
      run()
      this.schedule(this.now + interval, loop)
    }
    this.schedule(this.now + interval, loop)
  }

  /** Runs the simulation until `until` (real ms). */
  runUntil(until: number): void {
    while (this.queue.peekAt() <= until) {
      const e = this.queue.pop()
      if (e === undefined) break
      this.now = e.at
      e.run()
      this.fibers.flush()
      this.checkSafety()
    }
    this.now = until
  }

  // -------------------------------------------------------------------------
  // Agents

  private trace(n: Node, line: string): void {
    n.trace.push(`${this.now.toFixed(1).padStart(9)} ${n.name} ${line}`)
    if (n.trace.length > this.traceSize) n.trace.shift()
  }

  private startAgent(n: Node, delay: number): void {
    this.schedule(this.now + delay, () => {
      n.agentUp = true
      n.incarnation++
      const incarnation = n.incarnation
      n.process = simAgentProcess({
        host: this,
        self: n.name,
        config: simDaemonConfig(
          n.name,
          n.fileMembers ?? this.config.members,
          this.config.semiSync,
          this.config.fenceCommand !== null,
        ),
        alive: () => n.agentUp && n.incarnation === incarnation,
        enqueue: (make) => this.input(n, make),
        // A hard state that could not be written: the agent exits (never in the simulator).
        fatal: (reason) => this.traceNode(n.name, `fatal: ${reason}`),
      })
      n.state = initialState(
        n.fileMembers === null ? this.config : { ...this.config, members: n.fileMembers },
        n.name,
      )
      n.voteWait = null
      // A restarted voter judges afresh (its post-restart abstention is a new refusal).
      for (const key of this.voteRefusals.keys())
        if (key.startsWith(`${n.name}>`)) this.voteRefusals.delete(key)
      n.pausedUntil = 0
      n.deferred = []
      this.input(n, (now) => ({
        _tag: "Start",
        now,
        hard: n.disk,
        relayIntact: n.relayIntact,
        bootId: `${n.name}-${n.incarnation}`,
        random: this.rng.next(),
      }))
      this.scheduleTick(n, n.incarnation)
    })
  }

  /**
   * Starts the agent of a spare host (WorldOptions.spares) after `member add`:
   * its config file lists the members that the primary's record lists (the
   * block the command printed), itself included.
   */
  startSpare(name: string): void {
    const n = this.node(name)
    if (!this.spares.has(name)) throw new Error(`${name} is not a spare host`)
    const p = this.primary()
    const listed = p === null ? null : this.node(p).state.config.members
    const members = listed ?? this.config.members
    n.fileMembers = members.some((m) => m.name === name) ? members : [...members, n.member]
    this.fault(
      `agent of ${name} started with members ${n.fileMembers.map((m) => m.name).join(",")}`,
    )
    this.startAgent(n, 0)
  }

  private scheduleTick(n: Node, incarnation: number): void {
    this.schedule(this.now + TICK_MS / n.clockRate, () => {
      if (n.incarnation !== incarnation || !n.agentUp) return
      this.input(n, (now) => ({ _tag: "Tick", now, random: this.rng.next() }))
      this.scheduleTick(n, incarnation)
    })
  }

  /** Feeds an input to the agent now (or when its pause ends). */
  input(n: Node, make: (localNow: number) => Input): void {
    if (!n.agentUp) return
    if (this.now < n.pausedUntil) {
      n.deferred.push(() => this.input(n, make))
      return
    }
    const input = make(this.localNow(n))
    this.stats.inputs++
    const before = n.state
    const result = this.reducer(before, input)
    n.state = result.state
    // L3 times a freeze that has not finished (a finished one waits for a probe after it).
    const pv = n.state.pendingVote
    if (pv === null || pv.stopped) n.voteWait = null
    else if (n.voteWait?.request !== pv.request) n.voteWait = { request: pv.request, at: this.now }
    if (input._tag === "Tick" && this.reducer === step) this.checkDeadline(n, before, input, result)
    this.observeTransition(n, before, input)
    if (result.outputs.length === 0 || n.process === null) return
    // As the decision loop does: the batch runs in the background, each output asked
    // before its turn whether the core (its state then) still wants it.
    const bootId = n.state.bootId
    n.process.execute(result.outputs, bootId, (o) => stillWanted(n.state, o, bootId))
  }

  // -------------------------------------------------------------------------
  // The world as the simulated adapters see it (SimHost, sim-adapters.ts)

  localNowOf(name: string, at: number = this.now): number {
    return this.localNow(this.node(name), at)
  }

  realMsOf(name: string, ms: number): number {
    return ms / this.node(name).clockRate
  }

  mysqldOf(name: string): SimMysqld | null {
    return this.nodes.get(name)?.mysqld ?? null
  }

  reachable(from: string, to: string): boolean {
    return this.net.roundTrip(from, to, "mysql")
  }

  semiSyncClientsOf(name: string): number {
    return this.semiSyncClients(this.node(name))
  }

  deliver(from: string, to: string, message: PeerMessage): void {
    const target = this.nodes.get(to)
    if (target === undefined) return
    for (const d of this.net.deliveries(from, to)) {
      this.schedule(this.now + d, () =>
        this.input(target, (now) => ({ _tag: "PeerReceived", now, from, message })),
      )
    }
  }

  onPersisted(name: string, hard: HardState): void {
    this.node(name).disk = hard
    this.onPersist()
  }

  onRelayIntact(name: string, started: MysqldStart): void {
    this.node(name).relayIntact = started
  }

  onDiscovery(name: string, op: "publish" | "withdraw", term: number): void {
    if (op === "publish") {
      if (term < this.publishedTerm) return
      this.published = { primary: name, term }
      this.publishedTerm = term
    } else if (this.published?.primary === name && this.published.term === term) {
      this.published = null
    }
  }

  /** Who the simulated etcd names as primary (null: nobody). */
  publishedPrimary(): { readonly primary: string; readonly term: number } | null {
    return this.published
  }

  onVip(name: string, op: "add" | "remove" | "refresh"): void {
    if (op === "remove") this.vipHolders.delete(name)
    else this.vipHolders.add(name)
  }

  restartMysqld(name: string, done: (ok: boolean) => void): void {
    const n = this.node(name)
    const m = n.mysqld
    this.trace(n, "restart mysqld")
    const duration = 600 + this.rng.next() * 1500
    this.schedule(this.now + duration, () => {
      let ok = false
      if (m !== null && !n.restartFails) {
        if (m.up) this.lose(m.crash(), m)
        this.boot(n, m)
        ok = true
      }
      done(ok)
    })
  }

  stopMysqldHard(name: string, reason: string): void {
    // SIGKILL through the service manager, which starts it again (Restart=on-failure).
    const n = this.node(name)
    const m = n.mysqld
    this.trace(n, `kill -9 mysqld: ${reason}`)
    if (m?.up) this.lose(m.crash(), m)
    this.schedule(this.now + 600 + this.rng.next() * 1500, () => {
      if (m !== null && !m.up && !n.restartFails) m.boot(this.now)
    })
  }

  hookResult(name: string, hook: HookName): { readonly exitCode: number; readonly ms: number } {
    const n = this.node(name)
    return { exitCode: n.hookExit.get(hook) ?? 0, ms: n.hookMs.get(hook) ?? 5 }
  }

  missingPrivileges(name: string): ReadonlyArray<string> {
    return [...this.node(name).missingPrivileges]
  }

  traceNode(name: string, line: string): void {
    this.trace(this.node(name), line)
  }

  operatorReply(
    name: string,
    requestId: number,
    r: {
      readonly ok: boolean
      readonly message: string
      readonly answeredBy?: string
      readonly steps?: ReadonlyArray<string>
    },
  ): void {
    this.operatorReplies.push({
      node: name,
      requestId,
      ok: r.ok,
      message: r.message,
      answeredBy: r.answeredBy ?? null,
      steps: r.steps ?? [],
    })
    this.trace(this.node(name), `operator reply ${r.ok ? "ok" : "refused"}: ${r.message}`)
  }

  logged(name: string, level: string, fields: unknown, message: string): void {
    const event =
      typeof fields === "object" && fields !== null && "event" in fields
        ? String((fields as { event: unknown }).event)
        : "log"
    this.eventsSeen.add(event)
    if (level !== "info" || tracedEvents.has(event)) {
      this.trace(this.node(name), `${level} ${event}: ${message}`)
    }
  }

  private observeTransition(n: Node, before: AgentState, input: Input): void {
    const s = n.state
    if (s.hard.term !== before.hard.term || roleName(s) !== roleName(before)) {
      this.trace(
        n,
        `term ${before.hard.term}->${s.hard.term} role ${roleName(before)}->${roleName(s)} (${input._tag}${input._tag === "PeerReceived" ? `:${input.message._tag} from ${input.from}` : ""})`,
      )
      if (s.role._tag === "Leader" && before.role._tag !== "Leader") this.standingSinceLeader = 0
      if (s.role._tag === "Candidate" && before.role._tag !== "Candidate") {
        this.stats.elections++
        this.standingSinceLeader++
        this.stats.electionsWithoutLeader = Math.max(
          this.stats.electionsWithoutLeader,
          this.standingSinceLeader,
        )
        // A candidate votes for itself: that is a vote too (I4).
        this.recordVote(n.name, s.hard.term, n.name)
        this.onCandidate?.(n.name)
      }
    }
    const promoted = promotionOf(s)
    if (promoted?.step === "done" && promotionOf(before)?.step !== "done") {
      this.stats.promotions++
      this.promotions.push({ at: this.now, node: n.name })
      this.eventsSeen.add(`promoted:${promoted.kind}`)
      if (
        promoted.kind !== "reclaim" &&
        promoted.kind !== "bootstrap" &&
        promoted.oldPrimary !== null
      ) {
        this.promotedTerms.add(s.hard.term)
      }
    }
    // I5 ledger: a leader writing a new record version records its parent.
    if (s.hard.record === before.hard.record) return
    const v = versionKey(s.hard.record)
    if (!this.recordParents.has(v) && s.hard.record.term > 0) {
      this.recordParents.set(v, s.hard.record.term === 0 ? null : versionKey(before.hard.record))
      this.recordContent.set(v, JSON.stringify(s.hard.record))
      this.checkRecordNotLost(n, v)
    } else if (s.hard.record.term > 0) {
      const content = this.recordContent.get(v)
      if (content !== undefined && content !== JSON.stringify(s.hard.record)) {
        this.violate("I5", `two different records share version ${v}`)
      }
    }
  }

  // -------------------------------------------------------------------------
  // MySQL replication and the client

  private readonly replDelay = 2
  private readonly applyDelay = 5

  private mysqlTick(): void {
    for (const n of this.nodes.values()) {
      const m = n.mysqld
      if (m === null || !m.up || m.hung || m.source === null) continue
      if (m.ioRunning) this.pull(n, m)
      if (m.sqlRunning) this.applyRelay(m, this.now - this.applyDelay)
    }
  }

  private pull(n: Node, m: SimMysqld): void {
    // Waiting for disk space: it holds what it fetched, writes and acknowledges nothing.
    if (m.ioWaitingForDisk) return
    const src = this.nodes.get(m.source!)
    const s = src?.mysqld
    if (!src || !s?.up || s.hung || !this.net.roundTrip(n.name, src.name, "mysql")) return
    if (m.ioSourceIncarnation !== s.incarnation) {
      // (Re)connect with auto-position: the source sends everything we do not have.
      const have = m.received
      m.ioBacklog = s.log.filter((t) => !contains(have, t.sid, t.gno))
      m.ioCursor = s.log.length
      m.ioSourceIncarnation = s.incarnation
    }
    const fresh: Array<(typeof s.log)[number]> = m.ioBacklog
    m.ioBacklog = []
    while (m.ioCursor < s.log.length && s.log[m.ioCursor]!.at <= this.now - this.replDelay) {
      fresh.push(s.log[m.ioCursor]!)
      m.ioCursor++
    }
    if (fresh.length === 0) return
    if (m.relayDiskFull) {
      m.ioBacklog = fresh
      m.ioWaitingForDisk = true
      this.trace(n, "IO thread waiting for disk space")
      return
    }
    let retrieved = m.retrieved
    for (const t of fresh) {
      if (contains(retrieved, t.sid, t.gno) || contains(m.executed, t.sid, t.gno)) continue
      retrieved = union(retrieved, { sids: new Map([[t.sid, [{ start: t.gno, end: t.gno }]]]) })
      m.relay.push({ ...t, at: this.now })
      if (t.sid === s.uuid) this.ackSemiSync(s, t.gno, n.name)
    }
    m.retrieved = retrieved
  }

  private ackSemiSync(s: SimMysqld, gno: number, replica: string): void {
    if (s.pending.length === 0) return
    const keep: Array<PendingWrite> = []
    const acked: Array<PendingWrite> = []
    for (const p of s.pending) {
      if (p.gno === gno) p.acks.add(replica)
      if (p.acks.size >= s.semiSyncWaitCount) acked.push(p)
      else keep.push(p)
    }
    if (acked.length === 0) return
    this.acknowledge(s, acked)
    s.setPending(keep)
  }

  /** The clients of these commits on `s` got OK (the client-level ledger of I3). */
  acknowledge(s: SimMysqld, writes: ReadonlyArray<{ readonly gno: number }>): void {
    if (this.writableByHand.has(s)) return
    for (const p of writes) {
      this.acked = union(this.acked, { sids: new Map([[s.uuid, [{ start: p.gno, end: p.gno }]]]) })
      this.ackedCount++
    }
  }

  private lose(_writes: ReadonlyArray<PendingWrite>, _m: SimMysqld): void {
    // The client saw an error for these: never acknowledged, nothing to record.
  }

  applyRelay(m: SimMysqld, upTo: number): void {
    if (m.applyStalled) return
    let i = 0
    while (i < m.relay.length && m.relay[i]!.at <= upTo) {
      const t = m.relay[i]!
      if (!contains(m.executed, t.sid, t.gno)) m.appendToBinlog(t)
      i++
    }
    if (i > 0) m.relay = m.relay.slice(i)
  }

  private scheduleWrites(interval: number): void {
    const loop = () => {
      for (const n of this.nodes.values()) {
        const m = n.mysqld
        if (m !== null && !m.writable) this.writableByHand.delete(m)
        if (m === null || !m.writable || m.hung) continue
        // Without semi-sync as a source the client gets OK at once.
        const waits = m.semiSyncSourceEnabled
        const p = m.commit(++this.writeSeq, this.now)
        if (!waits) this.acknowledge(m, [p])
      }
      this.schedule(this.now + interval * (0.5 + this.rng.next()), loop)
    }
    this.schedule(this.now + interval, loop)
  }

  // -------------------------------------------------------------------------
  // Invariants

  /**
   * D1: a Tick before the deadline the core named (core/deadline.ts) changes
   * nothing but the clock: the daemon, which sleeps until that deadline,
   * would have missed it.
   */
  private checkDeadline(n: Node, before: AgentState, input: Input, result: StepResult): void {
    // While a routine runs the core asks for the fixed tick: its timers keep their old precision.
    if (!before.started || routineRunning(before) || input.now >= nextDeadline(before)) return
    if (result.outputs.length === 0 && !changedBeyondClock(before, result.state)) return
    const fields = (Object.keys(result.state) as Array<keyof AgentState>).filter(
      (k) => k !== "now" && result.state[k] !== before[k],
    )
    this.violate(
      "D1",
      `${n.name}: a Tick at ${input.now.toFixed(1)} before its deadline ${nextDeadline(before).toFixed(1)} changed ${fields.join(", ") || "nothing"} and output ${result.outputs.map((o) => o._tag).join(", ") || "nothing"}`,
    )
  }

  private violate(invariant: Violation["invariant"], detail: string): void {
    if (this.violations.some((v) => v.invariant === invariant)) return
    this.violations.push({ invariant, at: this.now, detail })
  }

  private checkSafety(): void {
    // I1: at most one node whose lease, by its own clock, is valid.
    let holders = 0
    let writable = 0
    let who = ""
    for (const n of this.nodes.values()) {
      if (n.agentUp && n.state.role._tag === "Leader" && leaseValid(n.state, this.localNow(n))) {
        holders++
        who += ` ${n.name}(term ${n.state.hard.term})`
      }
      if (n.mysqld?.writable && !n.mysqld.hung) writable++
      const wait = n.voteWait
      if (wait !== null && n.agentUp && this.now >= n.pausedUntil) {
        const ms = this.now - wait.at
        if (ms > this.stats.longestVoteWait) this.stats.longestVoteWait = ms
        if (ms > VOTE_ANSWER_LIMIT_MS) {
          const req = n.state.pendingVote?.request
          this.violate(
            "L3",
            `${n.name} left ${req?.from}'s vote request of term ${req?.term} unanswered for ${ms.toFixed(0)} ms (its freeze never finished)`,
          )
        }
      }
    }
    if (holders > 1) this.violate("I1", `leases held by${who}`)
    if (writable === 0) this.gapStart ??= this.now
    else if (this.gapStart !== null) {
      this.longestGap = Math.max(this.longestGap, this.now - this.gapStart)
      this.gapStart = null
    }
    if (writable > 1) {
      this.stats.twoWritableSteps++
      // I2: at most one node that accepts writes that can be acknowledged.
      const ws = [...this.nodes.values()].filter((n) => this.acceptsAcknowledgedWrites(n))
      if (ws.length > 1 && !this.splitBrainByHand) {
        this.violate(
          "I2",
          `accepting acknowledgeable writes at once: ${ws.map((n) => n.name).join(", ")}`,
        )
      }
    }
  }

  /**
   * Writable, answering, and with enough replicas connected to acknowledge
   * (semi-sync) a commit. A hung or cut-off writable server is unsafe only
   * once it could get acknowledgements again; the agents must fence it first.
   */
  private acceptsAcknowledgedWrites(n: Node): boolean {
    const m = n.mysqld
    if (m === null || !m.writable || m.hung) return false
    if (!m.semiSyncSourceEnabled) return true
    return this.semiSyncClients(n) >= m.semiSyncWaitCount
  }

  /** Replicas whose IO thread pulls from `n`'s mysqld now (Rpl_semi_sync_source_clients). */
  semiSyncClients(n: Node): number {
    const m = n.mysqld
    let connected = 0
    for (const r of this.nodes.values()) {
      const rm = r.mysqld
      if (rm === null || rm === m || !rm.up || rm.hung || rm.source !== n.name || !rm.ioRunning)
        continue
      if (this.net.roundTrip(n.name, r.name, "mysql")) connected++
    }
    return connected
  }

  /** I3: a node becoming writable must hold every acknowledged write. */
  onBecomesWritable(name: string, m: SimMysqld): void {
    const n = this.node(name)
    if (!isSubset(this.acked, m.executed)) {
      this.violate(
        "I3",
        `${n.name} became writable in term ${n.state.hard.term} without acknowledged ${formatGtidSet(subtract(this.acked, m.executed))}`,
      )
    }
  }

  /** I4: no node votes twice in one term; L2: no pre-vote granted for a vote refused again. */
  onSend(from: string, to: string, message: PeerMessage): void {
    if (message._tag === "PreVoteResponse" && message.granted) {
      const last = this.voteRefusals.get(`${from}>${to}`)
      if (last !== undefined) last.preVoteGranted = true
    }
    if (message._tag !== "VoteResponse") return
    if (message.granted) {
      this.voteRefusals.delete(`${from}>${to}`)
      this.recordVote(from, message.term, to)
      const downForMs = this.crashAfterVote.get(from)
      if (downForMs !== undefined) {
        // The vote leaves (the mesh delivers it after this); nothing the agent would do next runs.
        this.crashAfterVote.delete(from)
        this.killAgent(from, downForMs)
      }
      return
    }
    // Refusals the pre-vote cannot foresee: a race with another candidate, or a state only a
    // freeze shows (a primary stepping down is still writable until its fence completes; the
    // frozen voter may have received, from the candidate itself, what its request lacks).
    // The very same reason (a lease's end time included: a new lease is a new reason).
    const reason = message.reason
    if (
      /^(already voted|stale term|deciding on|my mysqld is still writable)|lacks transactions/.test(
        reason,
      )
    )
      return
    const key = `${from}>${to}`
    const last = this.voteRefusals.get(key)
    if (last !== undefined && last.reason === reason && last.preVoteGranted) {
      this.violate(
        "L2",
        `${from} granted ${to}'s pre-vote, then refused its vote of term ${message.term} again: ${message.reason} (terms climb at every attempt)`,
      )
    }
    this.voteRefusals.set(key, { reason, preVoteGranted: false })
  }

  private recordVote(voter: string, term: number, candidate: string): void {
    const key = `${voter}@${term}`
    const before = this.votes.get(key)
    if (before !== undefined && before !== candidate) {
      this.violate("I4", `${voter} voted for ${before} and ${candidate} in term ${term}`)
    }
    this.votes.set(key, candidate)
  }

  /** I5: track which record versions a quorum persisted. */
  private onPersist(): void {
    const nodes = [...this.nodes.values()]
    const disks = nodes.map((n) => (n.disk ? versionKey(n.disk.record) : null))
    for (const v of new Set(disks)) {
      if (v === null || this.committedRecords.includes(v)) continue
      // Committed by a quorum of the members the record itself lists (core/members.ts).
      const record = nodes.find((n) => n.disk !== null && versionKey(n.disk.record) === v)?.disk
        ?.record
      const listed = record?.members?.map((m) => m.name) ?? this.config.members.map((m) => m.name)
      const holders = nodes.filter(
        (n, i) => listed.includes(n.name) && disks[i] != null && this.descends(disks[i]!, v),
      ).length
      if (holders >= quorumOf(listed.length)) this.committedRecords.push(v)
    }
  }

  private descends(v: string, ancestor: string): boolean {
    let cur: string | null | undefined = v
    for (let i = 0; cur !== null && cur !== undefined && i < 10_000; i++) {
      if (cur === ancestor) return true
      cur = this.recordParents.get(cur)
    }
    return false
  }

  private checkRecordNotLost(n: Node, v: string): void {
    for (const c of this.committedRecords) {
      if (compareVersions(parseVersion(c), parseVersion(v)) < 0 && !this.descends(v, c)) {
        this.violate(
          "I5",
          `${n.name} wrote record ${v} which does not contain committed record ${c}`,
        )
      }
    }
  }

  /** L1: exactly one ACTIVE primary, every healthy data node replicating from it. */
  checkLiveness(): string | null {
    const active = [...this.nodes.values()].filter(
      (n) =>
        n.agentUp &&
        n.state.role._tag === "Leader" &&
        promotionOf(n.state)?.step === "done" &&
        leaseValid(n.state, this.localNow(n)) &&
        n.mysqld?.writable === true,
    )
    if (active.length !== 1) return `${active.length} ACTIVE primaries`
    const p = active[0]!
    if (!this.vipHolders.has(p.name) || this.vipHolders.size !== 1) {
      return `VIP on ${[...this.vipHolders].join(",") || "nobody"}, primary ${p.name}`
    }
    if (this.config.publishPrimary === true && this.published?.primary !== p.name) {
      return `etcd names ${this.published?.primary ?? "nobody"}, primary ${p.name}`
    }
    for (const n of this.nodes.values()) {
      const m = n.mysqld
      if (n === p || m === null || !m.up || !n.agentUp || n.state.local.diverged) continue
      // A host the primary's member list leaves out (removed, or not added yet) is no member.
      if (!p.state.config.members.some((x) => x.name === n.name)) continue
      // Its disk still full: not a healthy node; its IO thread may hang in a STOP (repoint).
      if (m.relayDiskFull) continue
      if (m.source !== p.name || !m.ioRunning || !m.sqlRunning) {
        return `${n.name} does not replicate from ${p.name} (source ${m.source}, io ${m.ioRunning}, sql ${m.sqlRunning})`
      }
    }
    return null
  }

  requireLiveness(): void {
    const why = this.checkLiveness()
    if (why !== null) this.violate("L1", why)
    const p = this.primary()
    const m = p === null ? null : this.node(p).mysqld
    if (m && !isSubset(this.acked, m.executed)) {
      this.violate(
        "I3",
        `final primary ${p} lacks acknowledged ${formatGtidSet(subtract(this.acked, m.executed))}`,
      )
    }
  }

  // -------------------------------------------------------------------------
  // Faults and operator actions

  node(name: string): Node {
    const n = this.nodes.get(name)
    if (n === undefined) throw new Error(`unknown node ${name}`)
    return n
  }

  fault(line: string): void {
    this.faultLog.push(`${this.now.toFixed(0).padStart(7)} ${line}`)
    for (const n of this.nodes.values()) this.trace(n, `FAULT ${line}`)
  }

  killMysqld(name: string, restartFails: boolean): void {
    const n = this.node(name)
    if (n.mysqld === null || !n.mysqld.up) return
    this.fault(`kill -9 mysqld on ${name}${restartFails ? " (restart will fail)" : ""}`)
    this.lose(n.mysqld.crash(), n.mysqld)
    n.restartFails = restartFails
  }

  /** Boots mysqld; in a crash loop it dies again `crashLoopUpMs` later. */
  private boot(n: Node, m: SimMysqld): void {
    m.boot(this.now)
    if (n.crashLoopUpMs === null) return
    const inc = m.incarnation
    this.schedule(this.now + n.crashLoopUpMs, () => {
      if (n.crashLoopUpMs === null || !m.up || m.incarnation !== inc) return
      this.trace(n, "mysqld crashes again (crash loop)")
      this.lose(m.crash(), m)
      this.superviseRestart(n, m)
    })
  }

  /**
   * The service manager (Restart=always) starts a crashed mysqld again: 1 s
   * of restart delay plus 1 to 2 s of startup, as the lab's supervisor and a
   * MySQL 9.7 crash recovery take.
   */
  private superviseRestart(n: Node, m: SimMysqld): void {
    this.schedule(this.now + 2000 + this.rng.next() * 1000, () => {
      if (!m.up && !n.restartFails) this.boot(n, m)
    })
  }

  /** mysqld dies `upMs` after every start (now first), and is started again by its service manager. */
  startCrashLoop(name: string, upMs: number): void {
    const n = this.node(name)
    const m = n.mysqld
    if (m === null) return
    this.fault(`crash loop of mysqld on ${name}: it dies ${upMs} ms after every start`)
    n.crashLoopUpMs = upMs
    if (m.up) this.lose(m.crash(), m)
    this.superviseRestart(n, m)
  }

  stopCrashLoop(name: string): void {
    this.fault(`crash loop of mysqld on ${name} ends`)
    this.node(name).crashLoopUpMs = null
  }

  hangMysqld(name: string, forMs: number): void {
    const m = this.node(name).mysqld
    if (m === null || !m.up) return
    this.fault(`SIGSTOP mysqld on ${name} for ${forMs} ms`)
    m.hung = true
    const inc = m.incarnation
    this.schedule(this.now + forMs, () => {
      if (m.incarnation === inc) m.hung = false
    })
  }

  /**
   * The relay log's disk fills up: the IO thread waits for disk space at its
   * next transaction. `beyondHeal`: the heal leaves it full (freed after the run).
   */
  fillRelayDisk(name: string, beyondHeal = false): void {
    const m = this.node(name).mysqld
    if (m === null || m.relayDiskFull) return
    this.fault(`relay-log disk of ${name} full${beyondHeal ? " (until after the run)" : ""}`)
    m.relayDiskFull = true
    if (beyondHeal) this.fullBeyondHeal.add(name)
  }

  /** Room again: the IO thread writes (and acknowledges) what it held; a pending STOP then stops it. */
  freeRelayDisk(name: string): void {
    const n = this.node(name)
    const m = n.mysqld
    if (m === null || !m.relayDiskFull) return
    this.fault(`relay-log disk of ${name} freed`)
    m.relayDiskFull = false
    if (m.ioWaitingForDisk) {
      m.ioWaitingForDisk = false
      if (m.up && !m.hung && m.source !== null && m.ioRunning) this.pull(n, m)
    }
    m.diskFreed()
  }

  /**
   * CLONE INSTANCE FROM `donor`: the copy (0.5 to 1.5 s), then the recipient's
   * mysqld restarts with the donor's data through its service manager (1 to 2 s).
   */
  cloneMysqld(name: string, donor: string, done: (error: string | null) => void): void {
    const n = this.node(name)
    const m = n.mysqld
    const d = this.nodes.get(donor)?.mysqld ?? null
    this.trace(n, `CLONE INSTANCE FROM ${donor}`)
    this.schedule(this.now + 500 + this.rng.next() * 1000, () => {
      if (m === null || !m.up) return done("the recipient's mysqld went away during the clone")
      if (d === null || !d.up || d.hung || !this.net.roundTrip(name, donor, "mysql"))
        return done(`clone donor ${donor} unreachable`)
      this.lose(m.crash(), m)
      m.cloneFrom(d)
      this.schedule(this.now + 1000 + this.rng.next() * 1000, () => {
        if (m.up || n.restartFails) return done("mysqld did not come back after the clone")
        this.boot(n, m)
        this.trace(n, `mysqld restarted with ${donor}'s data`)
        done(null)
      })
    })
  }

  killAgent(name: string, downForMs: number): void {
    const n = this.node(name)
    if (!n.agentUp) return
    this.fault(`kill agent on ${name} for ${downForMs} ms`)
    n.agentUp = false
    // Its etcd lease is no longer refreshed: the key goes (the TTL is not modelled).
    if (this.published?.primary === name) this.published = null
    n.incarnation++
    this.startAgent(n, downForMs)
  }

  /**
   * The agent on `name` is killed right after it next sends a granted vote
   * (the vote leaves; nothing it would do after the send runs), and starts
   * again `downForMs` later: a crash in the narrowest window after a vote.
   */
  crashAgentAfterVote(name: string, downForMs: number): void {
    this.node(name)
    this.fault(`agent on ${name} dies right after its next vote, for ${downForMs} ms`)
    this.crashAfterVote.set(name, downForMs)
  }

  pauseAgent(name: string, forMs: number): void {
    const n = this.node(name)
    if (!n.agentUp) return
    this.fault(`SIGSTOP agent on ${name} for ${forMs} ms`)
    n.pausedUntil = this.now + forMs
    const inc = n.incarnation
    this.schedule(n.pausedUntil, () => {
      if (n.incarnation !== inc) return
      const work = n.deferred
      n.deferred = []
      // A stopped process answers nothing: L3 counts from its resumption.
      if (n.voteWait !== null) n.voteWait.at = this.now
      for (const w of work) w()
    })
  }

  errant(name: string): void {
    const m = this.node(name).mysqld
    if (m === null || !m.up) return
    this.fault(`errant transaction on ${name}`)
    m.commitErrant(this.now)
  }

  makeWritableByHand(name: string): void {
    const m = this.node(name).mysqld
    if (m === null || !m.up) return
    this.fault(`SET GLOBAL super_read_only=OFF by hand on ${name}`)
    this.splitBrainByHand = true
    this.writableByHand.add(m)
    m.makeWritable()
  }

  /** Hands `request` to the agent on `name`; returns its request id (see operatorReplies). */
  operator(name: string, request: OperatorRequest): number {
    this.fault(`operator on ${name}: ${JSON.stringify(request)}`)
    const requestId = ++this.writeSeq
    this.input(this.node(name), (now) => ({
      _tag: "Operator",
      now,
      requestId,
      request,
    }))
    this.fibers.flush()
    return requestId
  }

  /** Ends every fault: network healed, agents resumed, mysqlds restartable and restarted. */
  /** The operator brings back one mysqld that could not restart (the lab's start-mysqld). */
  startMysqld(name: string): void {
    const n = this.node(name)
    this.fault(`start mysqld on ${name}`)
    n.restartFails = false
    if (n.mysqld !== null && !n.mysqld.up) n.mysqld.boot(this.now)
  }

  healAll(): void {
    this.fault("heal everything")
    this.net.heal()
    for (const n of this.nodes.values()) {
      n.restartFails = false
      n.crashLoopUpMs = null
      if (n.mysqld !== null) n.mysqld.applyStalled = false
      if (n.mysqld?.relayDiskFull && !this.fullBeyondHeal.has(n.name)) this.freeRelayDisk(n.name)
      if (!n.agentUp) this.startAgent(n, 0)
      const m = n.mysqld
      if (m?.hung) m.hung = false
      // The operator brings back a mysqld that could not restart.
      if (m !== null && !m.up) m.boot(this.now)
    }
  }

  // -------------------------------------------------------------------------
  // Views for scenarios and reports

  resetWriteGap(): void {
    this.longestGap = 0
    if (this.gapStart !== null) this.gapStart = this.now
  }

  /** Longest stretch without any writable mysqld since the last `resetWriteGap`. */
  longestWriteGapSince(_mark: number): number {
    return Math.max(this.longestGap, this.gapStart === null ? 0 : this.now - this.gapStart)
  }

  primary(): string | null {
    const active = [...this.nodes.values()].filter(
      (n) =>
        n.agentUp &&
        n.state.role._tag === "Leader" &&
        promotionOf(n.state)?.step === "done" &&
        n.mysqld?.writable,
    )
    return active.length === 1 ? active[0]!.name : null
  }

  /** The newest cluster record any node holds. */
  highestRecord(): ClusterRecord {
    let best: ClusterRecord | null = null
    for (const n of this.nodes.values()) {
      const r = n.state.hard.record
      if (best === null || compareVersions(r, best) > 0) best = r
    }
    return best ?? this.node(this.names[0]!).state.hard.record
  }

  /** Promotions that moved the role to another node (not bootstrap, reclaim, or the last primary elected again). */
  failovers(): number {
    return this.promotedTerms.size
  }

  renderTrace(lastPerNode = 20): string {
    const lines: Array<string> = [`faults:`, ...this.faultLog.map((l) => `  ${l}`)]
    for (const n of this.nodes.values()) {
      const m = n.mysqld
      lines.push(
        `-- ${n.name} (term ${n.state.hard.term}, ${roleName(n.state)}, leader ${leaderOf(n.state)}, agent ${n.agentUp ? "up" : "down"}, mysqld ${m ? `${m.up ? "up" : "down"} sro=${m.superReadOnly} src=${m.source} io=${m.ioRunning}` : "none"}; election: ${n.agentUp ? whyNoElection(n.state) : "-"})`,
      )
      for (const l of n.trace.slice(-lastPerNode)) lines.push(`  ${l}`)
    }
    return lines.join("\n")
  }
}

const versionKey = (r: { term: number; seq: number }): string => `${r.term}.${r.seq}`
const parseVersion = (v: string): { term: number; seq: number } => {
  const [t, s] = v.split(".")
  return { term: Number(t), seq: Number(s) }
}

/** Info-level events worth a line in the trace. */
const tracedEvents = new Set([
  "promoted",
  "elected",
  "vote-refused",
  "pre-vote-refused",
  "election-timeout",
  "repoint",
])
