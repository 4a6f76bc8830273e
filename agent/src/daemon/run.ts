// `mha-agent run`: the daemon. It only wires: layers, one concern each,
// composed with Layer.provideMerge at the bottom (`agentLayer`):
//   config → inbox → adapters → fibers → reload → control socket + HTTP, signals.
// The fibers (decision loop, the alarm that ticks at the core's next
// deadline, mesh inbound pump) connect the pure core to the world. SIGHUP reloads the config (a bad one keeps the running one); SIGTERM
// hands over or resigns (protocol.md section 14) and exits 0; a fiber
// restarted too often exits 1 so that systemd restarts the whole agent.
import { join } from "node:path"
import { setFlagsFromString } from "node:v8"
import { Context, Deferred, Effect, Exit, Layer, Queue, Schema, Stream } from "effect"
import type pino from "pino"
import type { Config } from "../../../shared/config.ts"
import type { ControlReply } from "../../../shared/control.ts"
import { ClusterRecord, PeerMessage, type RecordMember } from "../../../shared/peer-messages.ts"
import { formatVersion, speaksMemberList } from "../../../shared/protocol-version.ts"
import { decodeRoundMessage } from "../../../shared/round-decode.ts"
import { etcdOptionsFromConfig, makeEtcdClient, makePrimaryPublisher } from "../adapters/etcd.ts"
import { HardStateFile } from "../adapters/hard-state-file.ts"
import { HookRunner, hookSettingsFromConfig } from "../adapters/hook-runner.ts"
import { makeLagHeartbeatWriter } from "../adapters/lag-heartbeat.ts"
import { Mesh, type MeshPeer, meshOptionsFromConfig } from "../adapters/mesh.ts"
import { mysqlActions } from "../adapters/mysql-actuator.ts"
import { type MysqlEndpoint, memberEndpoint } from "../adapters/mysql-connection.ts"
import { MysqlProber } from "../adapters/mysql-prober.ts"
import { loadRelayIntact, makeRelayIntactRecorder } from "../adapters/relay-intact-file.ts"
import { ServiceManager } from "../adapters/service-manager.ts"
import { makeVip, type VipService, vipOptionsFromConfig } from "../adapters/vip.ts"
import { BUSY_TICK_MS } from "../core/deadline.ts"
import { whyNoElection } from "../core/election.ts"
import { removedTargets } from "../core/members.ts"
import type { AgentState, OperatorRequest } from "../core/types.ts"
import { type CertificateExpiry, meshCertificateExpiries } from "./cert-expiry.ts"
import {
  ConfigError,
  configWarnings,
  diffForReload,
  formatReloadPlan,
  loadConfig,
} from "./config-load.ts"
import { serveControlSocket } from "./control-socket.ts"
import { toClusterConfig } from "./core-config.ts"
import {
  changedSecrets,
  describeSecretChange,
  monitorLoginRefusal,
  readSecrets,
  rotatingPassword,
  type Secrets,
} from "./credentials.ts"
import {
  type Alarm,
  type DirectStep,
  deliverInput,
  runAlarm,
  runDecisionLoop,
} from "./decision-loop.ts"
import { makeExecutor, type PendingInput } from "./executor.ts"
import { HARD_STATE_FORMAT } from "./hard-state-format.ts"
import { serveHttp } from "./http.ts"
import { effectLoggerLayer, makeLogger, underJournald } from "./log.ts"
import { noteLoopDelay, notePublished } from "./metrics.ts"
import { checkMysqlTlsAtStart } from "./mysql-tls.ts"
import { copyName, datagramCopy, forPeerVersion } from "./peer-datagrams.ts"
import { supervise } from "./supervision.ts"

const DEFAULT_CONFIG = "/etc/mha-agent/config.yaml"
/**
 * The core names when it next needs a Tick (core/deadline.ts); the alarm never
 * sleeps longer than this all the same, and wakes this soon after a (re)start.
 */
const MAX_SLEEP_MS = 1_000
/** How long the control socket waits for a clone's answer (the copy may take long). */
const CLONE_ANSWER_MS = 6 * 3_600_000

export const HardStateSchema = Schema.Struct({
  term: Schema.Int,
  votedFor: Schema.NullOr(Schema.String),
  record: ClusterRecord,
})

/**
 * MHA_AGENT_INJECT_DEFECT=child:n[,child:n...] makes each named fiber die once
 * (the decision loop at its n-th step, the others after n ms): how the tests
 * show that a crashed fiber is restarted without losing the agent.
 */
const injectedDefect = (child: string): number | undefined => {
  for (const spec of (process.env.MHA_AGENT_INJECT_DEFECT ?? "").split(",")) {
    const [name, n] = spec.split(":")
    if (name === child) return Number(n ?? "1")
  }
  return undefined
}

/** A child whose work is a loop; with an injected defect it dies once after `n` rounds. */
const withInjectedDefect = <E, R>(child: string, loop: Effect.Effect<unknown, E, R>) => {
  const at = injectedDefect(child)
  if (at === undefined) return loop
  let fired = false
  return Effect.suspend(() => {
    if (fired) return loop
    fired = true
    return Effect.andThen(Effect.sleep(at), Effect.die(new Error(`injected defect in ${child}`)))
  })
}

// ---------------------------------------------------------------------------
// Services of the daemon (the adapters' own services come from their modules)

/** Completed with the exit code when the agent is to stop (SIGTERM, a fatal error). */
export class Stopping extends Context.Service<Stopping, Deferred.Deferred<number>>()(
  "mha-agent/daemon/Stopping",
) {
  static readonly layer: Layer.Layer<Stopping> = Layer.effect(Stopping, Deferred.make<number>())
}

const stop = (stopping: Deferred.Deferred<number>, code: number): void => {
  Effect.runFork(Deferred.succeed(stopping, code))
}

/** The config in force (a reload replaces it), its passwords, the logger, and what start fixed. */
export class AgentConfig extends Context.Service<
  AgentConfig,
  {
    readonly path: string
    readonly log: pino.Logger
    readonly current: () => Config
    readonly secrets: () => Secrets
    /** A reload's accepted config and passwords; calls the `onReplaced` listeners. */
    readonly replace: (config: Config, secrets: Secrets) => void
    /** Calls `listener` after every `replace`; returns its removal. */
    readonly onReplaced: (listener: () => void) => () => void
    readonly self: string
    /** False on a witness: no mysqld, no VIP. */
    readonly isData: boolean
    /** The local mysqld. */
    readonly local: MysqlEndpoint
    /** The monitor password, replaced on reload (daemon/credentials.ts). */
    readonly monitor: ReturnType<typeof rotatingPassword>
  }
>()("mha-agent/daemon/AgentConfig") {
  static readonly layer = (path: string, config0: Config, log: pino.Logger) =>
    Layer.effect(AgentConfig, makeAgentConfig(path, config0, log))
}

const makeAgentConfig = Effect.fn("daemon.config")(function* (
  path: string,
  config0: Config,
  log: pino.Logger,
) {
  let config = config0
  let secrets = yield* readSecrets(config)
  const replaced = new Set<() => void>()
  const self = config.node
  const member = config.cluster.members.find((m) => m.name === self)
  return AgentConfig.of({
    path,
    log,
    current: () => config,
    secrets: () => secrets,
    replace: (next, nextSecrets) => {
      config = next
      secrets = nextSecrets
      for (const listener of replaced) listener()
    },
    onReplaced: (listener) => {
      replaced.add(listener)
      return () => replaced.delete(listener)
    },
    self,
    isData: member?.kind !== "witness",
    local: memberEndpoint(config, self) ?? { host: "127.0.0.1", port: 3306 },
    // The replication password is read again by every repoint.
    monitor: rotatingPassword(secrets.monitor),
  })
})

/**
 * How inputs reach the decision loop, and the operator requests waiting for
 * the core's reply.
 */
export class Inbox extends Context.Service<
  Inbox,
  {
    readonly queue: Queue.Queue<PendingInput>
    /** Filled in while the decision loop runs (decision-loop.ts). */
    readonly direct: DirectStep
    /** Ticks, peer messages and probe results: stepped at once while the decision loop runs. */
    readonly deliver: (input: PendingInput) => void
    /** Everything else: through the queue, in arrival order. */
    readonly enqueue: (input: PendingInput) => void
    /** Hands an operator request to the core; resolves with its reply (or a timeout). */
    readonly ask: (request: OperatorRequest) => Promise<ControlReply>
    /** Hands a request to the core and calls `onReply` with its reply (no timeout). */
    readonly request: (request: OperatorRequest, onReply: (reply: ControlReply) => void) => void
    /** The core's reply to request `requestId` (the executor calls it). */
    readonly answer: (requestId: number, reply: ControlReply) => void
  }
>()("mha-agent/daemon/Inbox") {
  static readonly layer = Layer.effect(
    Inbox,
    Effect.gen(function* () {
      const { current } = yield* AgentConfig
      return yield* makeInbox(current)
    }),
  )
}

const makeInbox = Effect.fn("daemon.inbox")(function* (config: () => Config) {
  const queue = yield* Queue.unbounded<PendingInput>()
  const direct: DirectStep = { current: null }
  const enqueue = (input: PendingInput) => {
    Queue.offerUnsafe(queue, input)
  }
  const replies = new Map<number, (reply: ControlReply) => void>()
  let requestIds = 0
  const request = (
    operatorRequest: OperatorRequest,
    onReply: (reply: ControlReply) => void,
  ): number => {
    const requestId = ++requestIds
    replies.set(requestId, onReply)
    enqueue((now) => ({ _tag: "Operator", now, requestId, request: operatorRequest }))
    return requestId
  }
  const ask = (asked: OperatorRequest) =>
    new Promise<ControlReply>((resolve) => {
      const t = config().timings
      // A clone answers when the copy is done; a switchover once the transfer is;
      // the core refuses a forwarded request nobody answered well before this.
      const timeoutMs =
        asked._tag === "Clone"
          ? CLONE_ANSWER_MS
          : t.switchover_timeout * 3 +
            t.apply_timeout +
            (asked._tag === "Switchover" ? (asked.drainTimeoutMs ?? 0) : 0) +
            5_000
      const timer = setTimeout(() => {
        replies.delete(requestId)
        resolve({ ok: false, message: "no answer from the decision loop in time" })
      }, timeoutMs)
      const requestId = request(asked, (reply) => {
        clearTimeout(timer)
        resolve(reply)
      })
    })
  return Inbox.of({
    queue,
    direct,
    deliver: (input) => deliverInput(direct, queue, input),
    enqueue,
    ask,
    request: (r, onReply) => {
      request(r, onReply)
    },
    answer: (requestId, reply) => {
      replies.get(requestId)?.(reply)
      replies.delete(requestId)
    },
  })
})

/**
 * The file's config with the members the cluster record lists beyond it
 * (core/members.ts): where an action on another member (repoint, probe,
 * catch-up wait, clone) finds a member added online before the file names it.
 */
export const withRecordMembers = (
  c: Config,
  s: AgentState | undefined,
  /** Members some record listed before: a removed one this primary still probes (until it left). */
  seen: ReadonlyMap<string, RecordMember> = new Map(),
): Config => {
  const listed = [
    ...(s?.hard.record.members ?? []),
    ...(s === undefined ? [] : removedTargets(s)).flatMap((n) => {
      const m = seen.get(n)
      return m === undefined ? [] : [m]
    }),
  ]
  const extra = listed.filter((m) => !c.cluster.members.some((x) => x.name === m.name))
  if (extra.length === 0) return c
  return {
    ...c,
    cluster: {
      ...c.cluster,
      members: [
        ...c.cluster.members,
        ...extra.map((m) => ({
          name: m.name,
          address: m.address,
          mysql_port: m.mysqlPort,
          agent_port: m.agentPort,
          priority: m.priority,
          promotable: m.promotable,
          kind: m.kind,
        })),
      ],
    },
  }
}

/** The mesh to the other agents, typed with the peer protocol. */
const PeerMesh = Mesh.tag<PeerMessage>()

/** This host's VIP; undefined on a witness or without `vip` in the config. */
export class AgentVip extends Context.Service<AgentVip, VipService | undefined>()(
  "mha-agent/daemon/AgentVip",
) {}

/** When the certificates the mesh loaded at start run out (a metric and an alert). */
export class MeshCertificates extends Context.Service<
  MeshCertificates,
  ReadonlyArray<CertificateExpiry>
>()("mha-agent/daemon/MeshCertificates") {}

/** The latest core state (status, HTTP, metrics), published by the decision loop. */
export class AgentView extends Context.Service<
  AgentView,
  {
    readonly state: () => AgentState | undefined
    /** Calls `listener` after every published state (held HTTP checks); returns its removal. */
    readonly onPublish: (listener: () => void) => () => void
  }
>()("mha-agent/daemon/AgentView") {}

/** Re-reads the config and the password files (SIGHUP, `mha-agent reload`). */
export class Reload extends Context.Service<
  Reload,
  { readonly reload: () => Promise<ControlReply> }
>()("mha-agent/daemon/Reload") {}

// ---------------------------------------------------------------------------
// Adapters

const proberLayer = Layer.unwrap(
  Effect.gen(function* () {
    const { local, monitor, current } = yield* AgentConfig
    return MysqlProber.layer({
      local,
      settings: monitor.settings,
      // Read with every probe while enabled (a reload may switch it on or off).
      lagHeartbeatTable: () => {
        const lag = current().lag
        return lag.source === "heartbeat_table" ? lag.table : undefined
      },
    })
  }),
)

const vipLayer = Layer.effect(
  AgentVip,
  Effect.gen(function* () {
    const { current, isData } = yield* AgentConfig
    const options = vipOptionsFromConfig(current())
    return isData && options !== undefined
      ? yield* makeVip({ ...options, duplicateCheck: "background" })
      : undefined
  }),
)

const meshLayer = Layer.unwrap(
  Effect.gen(function* () {
    const { current } = yield* AgentConfig
    const { deliver } = yield* Inbox
    const options = yield* meshOptionsFromConfig(current(), PeerMessage, {
      claimedSender: (m) => m.from,
      // What the lease lives on also goes as datagrams, which packet loss does not stall.
      datagram: datagramCopy,
      // The first of the two copies counts; the second is not stepped through the core again.
      datagramId: copyName,
      // The same name from the JSON as received: a second copy is not decoded at all.
      encodedDatagramId: copyName,
      // Heartbeats and acknowledgements without Schema's generic machinery (round-decode.ts).
      fastDecode: decodeRoundMessage,
      // An acknowledgement riding on a heartbeat goes apart to a peer older than protocol 1.5.
      forPeerVersion,
      deliver: (m) =>
        deliver((now) => ({ _tag: "PeerReceived", now, from: m.from, message: m.message })),
      // A vote request or heartbeat older than the rpc timeout is useless.
      queueMaxAgeMs: current().timings.rpc_timeout,
    })
    return Layer.merge(
      Mesh.layer(options),
      Layer.succeed(MeshCertificates, meshCertificateExpiries(options.tls)),
    )
  }),
)

const hooksLayer = Layer.unwrap(
  Effect.gen(function* () {
    const { current } = yield* AgentConfig
    // The hook worker lives as long as the agent.
    return HookRunner.layer(Effect.sync(() => hookSettingsFromConfig(current())))
  }),
)

/** Every adapter the fibers use, in the order the agent has always started them. */
const adaptersLayer = Layer.mergeAll(
  proberLayer,
  vipLayer,
  meshLayer,
  hooksLayer,
  HardStateFile.layer,
  ServiceManager.layer,
)

// ---------------------------------------------------------------------------
// Fibers: the executor and the supervised children

const startFibers = Effect.fn("daemon.fibers")(function* () {
  const { current, log, self, local, monitor, isData } = yield* AgentConfig
  const inbox = yield* Inbox
  const stopping = yield* Stopping
  const prober = yield* MysqlProber
  const mesh = yield* PeerMesh
  const vip = yield* AgentVip
  const hooks = yield* HookRunner
  const { restart } = yield* ServiceManager
  const store = (yield* HardStateFile).store({
    path: join(current().state_dir, "hard-state.json"),
    schema: HardStateSchema,
    format: HARD_STATE_FORMAT,
  })
  const mysql = {
    local: mysqlActions(local, monitor.settings, current().timings.fence_timeout),
    at: (e: MysqlEndpoint) => mysqlActions(e, monitor.settings, current().timings.fence_timeout),
  }
  // Service discovery (optional `etcd` section): a background publisher the executor only
  // tells what the core wants; closed (its lease revoked) when the agent stops.
  const etcd = isData ? etcdOptionsFromConfig(current()) : undefined
  const discovery =
    etcd === undefined
      ? undefined
      : yield* Effect.acquireRelease(
          Effect.sync(() =>
            makePrimaryPublisher({
              client: makeEtcdClient(etcd.client),
              key: etcd.key,
              leaseTtlSeconds: etcd.leaseTtlSeconds,
              value: etcd.value,
              log: log.child({ child: "etcd" }),
            }),
          ),
          (p) => Effect.promise(() => p.close()),
        )
  // The heartbeat table's writer (lag.source: heartbeat_table): the core says when; it needs
  // nothing while disabled, so it is always there on a data node (a reload may enable it).
  const lagHeartbeat = isData
    ? yield* Effect.acquireRelease(
        Effect.sync(() =>
          makeLagHeartbeatWriter({
            endpoint: local,
            settings: monitor.settings,
            table: () => current().lag.table,
            member: self,
            log: log.child({ child: "lag-heartbeat" }),
          }),
        ),
        (w) => Effect.sync(() => w.close()),
      )
    : undefined
  // The latest core state (published by the decision loop); the executor reads it too.
  let latest: AgentState | undefined
  const seenMembers = new Map<string, RecordMember>()
  const executor = makeExecutor({
    // Members the cluster record lists beyond the file (a membership change) are reachable too.
    config: () => withRecordMembers(current(), latest, seenMembers),
    log,
    enqueue: inbox.enqueue,
    deliver: inbox.deliver,
    ...(discovery === undefined ? {} : { discovery }),
    ...(lagHeartbeat === undefined ? {} : { lagHeartbeat }),
    relayIntact: makeRelayIntactRecorder(current().state_dir, log),
    hardState: store,
    mesh,
    prober,
    mysql,
    vip,
    restart,
    hooks,
    // A hard state that could not be written: exit non-zero; systemd (Restart=on-failure)
    // starts the agent again from the file.
    fatal: (reason) => {
      log.fatal({ event: "agent-exit", child: "executor" }, reason)
      stop(stopping, 1)
    },
    operatorReply: (id, r) =>
      inbox.answer(id, {
        ok: r.ok,
        message: r.message,
        ...(r.answeredBy === undefined ? {} : { answeredBy: r.answeredBy }),
        ...(r.steps === undefined ? {} : { steps: [...r.steps] }),
      }),
  })
  const listeners = new Set<() => void>()
  let lastWhy = ""
  const alarm: Alarm = { current: null }
  // The mesh follows the member list the core counts (the cluster record's, core/members.ts),
  // and keeps a member this primary removed until it left (it must hear that it was removed).
  const addresses = new Map<string, MeshPeer>(
    current().cluster.members.map((m) => [
      m.name,
      { name: m.name, address: m.address, port: m.agent_port },
    ]),
  )
  let meshKey = ""
  /** What the mesh's list was last made from: it runs after every step, and rarely changes. */
  let followed: readonly [unknown, unknown, unknown] = [undefined, undefined, undefined]
  const followMembers = (s: AgentState): void => {
    const removed = removedTargets(s)
    const from = [s.hard.record.members, s.config.members, removed.length === 0 ? null : removed]
    if (from.every((x, i) => x === followed[i])) return
    followed = [from[0], from[1], from[2]]
    for (const m of s.hard.record.members ?? []) seenMembers.set(m.name, m)
    for (const m of s.config.members)
      if (m.address !== undefined && m.agentPort !== undefined && m.agentPort > 0)
        addresses.set(m.name, { name: m.name, address: m.address, port: m.agentPort })
    const names = new Set([...s.config.members.map((m) => m.name), ...removed])
    const peers = [...names].flatMap((n) => {
      const p = addresses.get(n)
      return p === undefined ? [] : [p]
    })
    const key = peers
      .map((p) => `${p.name}@${p.address}:${p.port}`)
      .sort()
      .join(",")
    if (key === meshKey) return
    meshKey = key
    // The same list as the mesh has (at start, from the file) changes nothing there.
    Effect.runSync(mesh.setMembers(peers))
  }

  const children = {
    "decision-loop": runDecisionLoop({
      self,
      clusterConfig: () => toClusterConfig(current()),
      inbox: inbox.queue,
      direct: inbox.direct,
      hardState: store,
      relayIntact: () => loadRelayIntact(current().state_dir, log),
      execute: executor.executeNow,
      alarm,
      publish: (s, changed) => {
        latest = s
        notePublished(s)
        followMembers(s)
        for (const listener of listeners) listener()
        if (!changed) return
        // Safety over speed, said out loud: why no election runs, whenever that changes.
        const why = s.role._tag === "Leader" ? "" : whyNoElection(s)
        if (why !== lastWhy) {
          lastWhy = why
          if (why !== "") log.info({ event: "election-status", term: s.hard.term }, why)
        }
      },
      log,
      ...(injectedDefect("decision-loop") === undefined
        ? {}
        : { injectDefectAt: injectedDefect("decision-loop") as number }),
    }),
    ticker: withInjectedDefect(
      "ticker",
      runAlarm(inbox.deliver, alarm, MAX_SLEEP_MS, BUSY_TICK_MS, noteLoopDelay),
    ),
    // Peer messages go straight to the decision loop (the mesh's `deliver`): this stays idle.
    "mesh-inbound": withInjectedDefect(
      "mesh-inbound",
      Stream.runForEach(mesh.inbound, (m) =>
        Effect.sync(() =>
          inbox.enqueue((now) => ({
            _tag: "PeerReceived",
            now,
            from: m.from,
            message: m.message,
          })),
        ),
      ),
    ),
  }
  for (const [name, child] of Object.entries(children)) {
    yield* Effect.forkScoped(
      supervise(name, child).pipe(
        Effect.catch((e) =>
          Effect.andThen(
            Effect.sync(() => log.fatal({ event: "agent-exit", child: name }, e.message)),
            Deferred.succeed(stopping, 1),
          ),
        ),
      ),
    )
  }
  return AgentView.of({
    state: () => latest,
    onPublish: (listener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  })
})

const fibersLayer = Layer.effect(AgentView, startFibers())

// ---------------------------------------------------------------------------
// Reload: SIGHUP and `mha-agent reload` re-read the config and the password
// files; a bad or refused one keeps the running one.

const makeReload = Effect.fn("daemon.reload")(function* () {
  const config = yield* AgentConfig
  const { log, local, monitor } = config
  const prober = yield* MysqlProber
  const { enqueue } = yield* Inbox
  const view = yield* AgentView
  const refuse = (message: string): ControlReply => {
    log.error({ event: "reload-refused" }, `reload: ${message}`)
    return { ok: false, message: `reload refused; the running config stays in force: ${message}` }
  }
  const reload = (): Promise<ControlReply> =>
    Effect.runPromise(
      Effect.gen(function* () {
        const next = yield* loadConfig(config.path)
        const nextSecrets = yield* readSecrets(next)
        const plan = diffForReload(
          config.current(),
          next,
          view.state()?.hard.record.members ?? null,
        )
        if (!plan.ok) {
          const lines = formatReloadPlan(plan)
          log.error({ event: "reload-refused" }, lines.join("; "))
          return { ok: false, message: lines.join("\n") }
        }
        const changed = changedSecrets(config.secrets(), nextSecrets)
        if (changed.includes("monitor")) {
          const refusal = yield* monitorLoginRefusal(local, nextSecrets.monitor)
          if (refusal !== null) return refuse(refusal)
        }
        const planLines = formatReloadPlan(plan)
        const lines =
          changed.length === 0
            ? planLines
            : [
                "reload: changing live:",
                ...(plan.live.length === 0 ? [] : planLines.slice(1)),
                ...changed.map(describeSecretChange),
              ]
        config.replace(next, nextSecrets)
        // What the plan calls live must be: the core's timings and policies, the log level.
        log.level = next.log.level
        if (changed.includes("monitor")) {
          // Connections opened from now on log in with it; the kept probe connection
          // is dropped so that the next probe does at once.
          monitor.replace(nextSecrets.monitor.password)
          yield* prober.reset
        }
        enqueue((now) => ({
          _tag: "Reconfigure",
          now,
          config: toClusterConfig(next),
          ...(changed.length === 0 ? {} : { changedSecrets: changed }),
        }))
        log.info({ event: "reloaded" }, lines.join("; "))
        return { ok: true, message: lines.join("\n") } satisfies ControlReply
      }).pipe(Effect.catch((e) => Effect.succeed(refuse(e.message)))),
    )
  return Reload.of({ reload })
})

const reloadLayer = Layer.effect(Reload, makeReload())

// ---------------------------------------------------------------------------
// Control socket and HTTP

const serveControl = Effect.fn("daemon.control")(function* () {
  const { current, log, onReplaced } = yield* AgentConfig
  const { ask } = yield* Inbox
  const { state, onPublish } = yield* AgentView
  const { reload } = yield* Reload
  const mesh = yield* PeerMesh
  const vip = yield* AgentVip
  const hooks = yield* HookRunner
  const certificates = yield* MeshCertificates
  yield* serveControlSocket({
    path: current().control.socket,
    cluster: () => current().cluster.name,
    state,
    ask,
    reload,
    log,
    agentPort: () =>
      current().cluster.members.find((m) => m.name === current().node)?.agent_port ?? 7946,
    olderPeers: () =>
      Effect.runSync(mesh.peerStates).flatMap((p) =>
        p.protocol !== undefined && !speaksMemberList(p.protocol)
          ? [`${p.name} (${formatVersion(p.protocol)})`]
          : [],
      ),
  })
  yield* serveHttp({
    config: current,
    onConfigReplaced: onReplaced,
    state,
    log,
    mesh,
    vip,
    hooks,
    certificates,
    onPublish,
  })
})

const controlLayer = Layer.effectDiscard(serveControl())

// ---------------------------------------------------------------------------
// Signals: SIGHUP reloads; SIGTERM and SIGINT hand over or resign (section 14), then exit 0.

const handleSignals = Effect.fn("daemon.signals")(function* () {
  const { current, log } = yield* AgentConfig
  const inbox = yield* Inbox
  const stopping = yield* Stopping
  const { reload } = yield* Reload
  const onHup = () => {
    reload().catch((e: unknown) => log.error({ event: "reload-refused" }, `reload: ${String(e)}`))
  }
  const onTerm = () => {
    log.info({ event: "stopping" }, "SIGTERM: handing over or resigning before exit")
    inbox.request({ _tag: "Shutdown" }, ({ ok, message }) => {
      log.info({ event: "stopped", ok }, message)
      stop(stopping, 0)
    })
    // Never hang on the way out: whatever happened by then, stop. The handover may converge
    // unfenced for a switchover_timeout, then fence and wait for the target for another.
    setTimeout(() => stop(stopping, 0), 2 * current().timings.switchover_timeout + 2_000).unref()
  }
  process.on("SIGHUP", onHup)
  process.on("SIGTERM", onTerm)
  process.on("SIGINT", onTerm)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      process.off("SIGHUP", onHup)
      process.off("SIGTERM", onTerm)
      process.off("SIGINT", onTerm)
    }),
  )
})

const signalsLayer = Layer.effectDiscard(handleSignals())

// ---------------------------------------------------------------------------
// The agent: each layer provided with the ones it needs, built in this order.

export const agentLayer = (configPath: string, config: Config, log: pino.Logger) =>
  Layer.mergeAll(controlLayer, signalsLayer).pipe(
    Layer.provideMerge(reloadLayer),
    Layer.provideMerge(fibersLayer),
    Layer.provideMerge(adaptersLayer),
    Layer.provideMerge(Inbox.layer),
    Layer.provideMerge(AgentConfig.layer(configPath, config, log)),
    Layer.provideMerge(Stopping.layer),
  )

/** Runs the agent until it is told to stop; its exit code. */
const runAgent = Effect.gen(function* () {
  const { log, self, current } = yield* AgentConfig
  log.info(
    { event: "agent-running", members: current().cluster.members.length },
    `agent ${self} running`,
  )
  for (const w of configWarnings(current())) log.warn({ event: "config-warning" }, w)
  return yield* Deferred.await(yield* Stopping)
})

/** The config named on the command line (`--config FILE`), or a usage error. */
const parseArgs = (args: ReadonlyArray<string>): string | { readonly usage: string } => {
  let configPath = DEFAULT_CONFIG
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === "--config") configPath = args[++i] ?? ""
    else if (a?.startsWith("--config=")) configPath = a.slice("--config=".length)
    else
      return {
        usage: `mha-agent run: unknown argument '${a}' (usage: mha-agent run [--config FILE])\n`,
      }
  }
  return configPath
}

export const main = async (args: ReadonlyArray<string>): Promise<number> => {
  const configPath = parseArgs(args)
  if (typeof configPath !== "string") {
    process.stderr.write(configPath.usage)
    return 2
  }
  const loaded = await Effect.runPromiseExit(loadConfig(configPath))
  if (Exit.isFailure(loaded)) {
    const e = loaded.cause.reasons.find((r) => r._tag === "Fail")
    const lines =
      e && e._tag === "Fail" && e.error instanceof ConfigError
        ? e.error.lines
        : [String(loaded.cause)]
    process.stderr.write(
      `mha-agent run: the config is invalid; not starting\n${lines.join("\n")}\n`,
    )
    // EX_CONFIG: the unit's RestartPreventExitStatus=78 keeps systemd from retrying a bad config.
    return 78
  }
  const config = loaded.value
  const log = makeLogger({
    level: config.log.level,
    journald: underJournald(),
    cluster: config.cluster.name,
    node: config.node,
  })
  // TLS to mysqld checked before anything is bound (daemon/mysql-tls.ts).
  const tls = await Effect.runPromise(checkMysqlTlsAtStart(config))
  for (const note of tls.notes) log.info({ event: "mysql-tls" }, note)
  if (tls.refusal !== null) {
    log.fatal({ event: "mysql-tls-refused" }, `mysql.tls: ${tls.refusal}; not starting`)
    process.stderr.write(`mha-agent run: mysql.tls: ${tls.refusal}; not starting\n`)
    return 78
  }
  // MHA_AGENT_TRACE_GC=1: a line per garbage collection on stdout (V8's
  // --trace-gc, which NODE_OPTIONS does not take): the heap in use before and
  // after each one, from which the bench reads the allocation rate.
  if (process.env.MHA_AGENT_TRACE_GC === "1") setFlagsFromString("--trace-gc")
  const program = runAgent.pipe(
    Effect.provide(agentLayer(configPath, config, log)),
    Effect.provide(effectLoggerLayer(log)),
  )
  const exit = await Effect.runPromiseExit(program)
  if (Exit.isSuccess(exit)) return exit.value
  log.fatal({ event: "agent-exit" }, `the agent could not run: ${String(exit.cause)}`)
  return 1
}
