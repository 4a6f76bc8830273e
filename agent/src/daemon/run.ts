// `mha-agent run`: the daemon. It only wires: config, log, adapters, and the
// supervised fibers (decision loop, ticker, mesh inbound pump, VIP refresher)
// that connect the pure core to the world. SIGHUP reloads the config (a bad
// one keeps the running one); SIGTERM hands over or resigns (protocol.md
// section 14) and exits 0; a fiber restarted too often exits 1 so that
// systemd restarts the whole agent.
import { join } from "node:path"
import { Context, Deferred, Effect, Exit, Layer, Queue, Schema, Stream } from "effect"
import type pino from "pino"
import type { Config } from "../../../shared/config.ts"
import type { ControlReply } from "../../../shared/control.ts"
import { ClusterRecord, PeerMessage } from "../../../shared/peer-messages.ts"
import { HardStateFile } from "../adapters/hard-state-file.ts"
import { HookRunner, hookSettingsFromConfig } from "../adapters/hook-runner.ts"
import { makeMesh, meshOptionsFromConfig } from "../adapters/mesh.ts"
import { mysqlActions } from "../adapters/mysql-actuator.ts"
import { memberEndpoint } from "../adapters/mysql-connection.ts"
import { makeMysqlProber } from "../adapters/mysql-prober.ts"
import { restartService } from "../adapters/service-manager.ts"
import { makeVip, vipOptionsFromConfig } from "../adapters/vip.ts"
import { whyNoElection } from "../core/election.ts"
import type { AgentState, OperatorRequest } from "../core/types.ts"
import { meshCertificateExpiries } from "./cert-expiry.ts"
import { ConfigError, diffForReload, formatReloadPlan, loadConfig } from "./config-load.ts"
import { serveControlSocket } from "./control-socket.ts"
import { toClusterConfig } from "./core-config.ts"
import {
  changedSecrets,
  describeSecretChange,
  monitorLoginRefusal,
  readSecrets,
  rotatingPassword,
} from "./credentials.ts"
import { type DirectStep, deliverInput, runDecisionLoop, runTicker } from "./decision-loop.ts"
import { makeExecutor, type PendingInput } from "./executor.ts"
import { serveHttp } from "./http.ts"
import { effectLoggerLayer, makeLogger, underJournald } from "./log.ts"
import { notePublished } from "./metrics.ts"
import { supervise } from "./supervision.ts"

const DEFAULT_CONFIG = "/etc/mha-agent/config.yaml"
/** How often the core hears that time passed; well under every timing it keeps. */
const TICK_MS = 50
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

export interface RunningAgent {
  /** The latest core state (status, HTTP, metrics). */
  readonly state: () => AgentState | undefined
  readonly config: () => Config
}

const agent = (
  configPath: string,
  config0: Config,
  log: pino.Logger,
  stopping: Deferred.Deferred<number>,
) =>
  Effect.gen(function* () {
    let config = config0
    const currentConfig = () => config
    const clusterConfig = () => toClusterConfig(config)
    const self = config.node
    const member = config.cluster.members.find((m) => m.name === self)
    const isData = member?.kind !== "witness"

    let secrets = yield* readSecrets(config)
    // The monitor password is replaced on reload (daemon/credentials.ts); the
    // replication one is read again by every repoint.
    const monitorPassword = rotatingPassword(secrets.monitor)
    const monitor = monitorPassword.settings
    const local = memberEndpoint(config, self) ?? { host: "127.0.0.1", port: 3306 }
    const prober = yield* makeMysqlProber({ local, settings: monitor })
    const mysql = {
      local: mysqlActions(local, monitor, config.timings.fence_timeout),
      at: (e: typeof local) => mysqlActions(e, monitor, config.timings.fence_timeout),
    }
    const vipOptions = vipOptionsFromConfig(config)
    const vip =
      isData && vipOptions !== undefined
        ? yield* makeVip({ ...vipOptions, duplicateCheck: "background" })
        : undefined
    const inbox = yield* Queue.unbounded<PendingInput>()
    // Ticks and peer messages are stepped at once while the decision loop runs (decision-loop.ts).
    const direct: DirectStep = { current: null }
    const deliver = (input: PendingInput) => deliverInput(direct, inbox, input)
    const meshOptions = yield* meshOptionsFromConfig(config, PeerMessage, {
      claimedSender: (m) => m.from,
      deliver: (m) =>
        deliver((now) => ({ _tag: "PeerReceived", now, from: m.from, message: m.message })),
      // A vote request or heartbeat older than the rpc timeout is useless.
      queueMaxAgeMs: config.timings.rpc_timeout,
    })
    const mesh = yield* makeMesh(meshOptions)
    // Built in the agent's scope: the hook worker lives as long as the agent.
    const hooks = Context.get(
      yield* Layer.build(HookRunner.layer(Effect.sync(() => hookSettingsFromConfig(config)))),
      HookRunner,
    )
    const store = Context.get(yield* Layer.build(HardStateFile.layer), HardStateFile).store({
      path: join(config.state_dir, "hard-state.json"),
      schema: HardStateSchema,
    })

    const enqueue = (input: PendingInput) => {
      Queue.offerUnsafe(inbox, input)
    }
    const replies = new Map<number, (reply: ControlReply) => void>()
    const executor = makeExecutor({
      config: currentConfig,
      log,
      enqueue,
      hardState: store,
      mesh,
      prober,
      mysql,
      vip,
      restart: restartService,
      hooks,
      // A hard state that could not be written: exit non-zero; systemd (Restart=on-failure)
      // starts the agent again from the file.
      fatal: (reason) => {
        log.fatal({ event: "agent-exit", child: "executor" }, reason)
        Effect.runFork(Deferred.succeed(stopping, 1))
      },
      operatorReply: (id, r) => {
        replies.get(id)?.({
          ok: r.ok,
          message: r.message,
          ...(r.answeredBy === undefined ? {} : { answeredBy: r.answeredBy }),
          ...(r.steps === undefined ? {} : { steps: [...r.steps] }),
        })
        replies.delete(id)
      },
    })
    let latest: AgentState | undefined
    let requestIds = 0
    let lastWhy = ""

    const children = {
      "decision-loop": runDecisionLoop({
        self,
        clusterConfig,
        inbox,
        direct,
        hardState: store,
        execute: executor.execute,
        publish: (s, changed) => {
          latest = s
          notePublished(s)
          if (!changed) return
          // Safety over speed, said out loud: why no election runs, whenever that changes.
          const why = s.role === "leader" ? "" : whyNoElection(s)
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
      ticker: withInjectedDefect("ticker", runTicker(deliver, TICK_MS)),
      // Peer messages go straight to the decision loop (`deliver` above): this stays idle.
      "mesh-inbound": withInjectedDefect(
        "mesh-inbound",
        Stream.runForEach(mesh.inbound, (m) =>
          Effect.sync(() =>
            enqueue((now) => ({ _tag: "PeerReceived", now, from: m.from, message: m.message })),
          ),
        ),
      ),
      // Section 11: gratuitous ARP again every garp_refresh while holding the VIP.
      "vip-refresher": withInjectedDefect(
        "vip-refresher",
        Effect.forever(
          Effect.andThen(
            Effect.sleep(config.vip?.garp_refresh ?? 10_000),
            // Suspended: whether the VIP is held is read after every sleep, not once at start.
            Effect.suspend(() =>
              vip !== undefined && latest?.local.vip.held === true
                ? Effect.ignore(vip.refresh)
                : Effect.void,
            ),
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

    /** Hands an operator request to the core; resolves with its reply (or a timeout). */
    const ask = (request: OperatorRequest) =>
      new Promise<ControlReply>((resolve) => {
        const requestId = ++requestIds
        const t = config.timings
        // A clone answers when the copy is done; a switchover once the transfer is;
        // the core refuses a forwarded request nobody answered well before this.
        const timeoutMs =
          request._tag === "Clone"
            ? CLONE_ANSWER_MS
            : t.switchover_timeout * 3 +
              t.apply_timeout +
              (request._tag === "Switchover" ? (request.drainTimeoutMs ?? 0) : 0) +
              5_000
        const timer = setTimeout(() => {
          replies.delete(requestId)
          resolve({ ok: false, message: "no answer from the decision loop in time" })
        }, timeoutMs)
        replies.set(requestId, (reply) => {
          clearTimeout(timer)
          resolve(reply)
        })
        enqueue((now) => ({ _tag: "Operator", now, requestId, request }))
      })
    yield* serveControlSocket({
      path: config.control.socket,
      cluster: () => config.cluster.name,
      state: () => latest,
      ask,
      reload: () => reload(),
      log,
    })
    yield* serveHttp({
      config: currentConfig,
      state: () => latest,
      log,
      mesh,
      vip,
      hooks,
      certificates: meshCertificateExpiries(meshOptions.tls),
    })

    // SIGHUP and `mha-agent reload`: re-read the config and the password files;
    // a bad or refused one keeps the running one.
    const refuse = (message: string): ControlReply => {
      log.error({ event: "reload-refused" }, `reload: ${message}`)
      return { ok: false, message: `reload refused; the running config stays in force: ${message}` }
    }
    const reload = (): Promise<ControlReply> =>
      Effect.runPromise(
        Effect.gen(function* () {
          const next = yield* loadConfig(configPath)
          const nextSecrets = yield* readSecrets(next)
          const plan = diffForReload(config, next)
          if (!plan.ok) {
            const lines = formatReloadPlan(plan)
            log.error({ event: "reload-refused" }, lines.join("; "))
            return { ok: false, message: lines.join("\n") }
          }
          const changed = changedSecrets(secrets, nextSecrets)
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
          config = next
          secrets = nextSecrets
          // What the plan calls live must be: the core's timings and policies, the log level.
          log.level = next.log.level
          if (changed.includes("monitor")) {
            // Connections opened from now on log in with it; the kept probe connection
            // is dropped so that the next probe does at once.
            monitorPassword.replace(nextSecrets.monitor.password)
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
    const onHup = () => {
      reload().catch((e: unknown) => log.error({ event: "reload-refused" }, `reload: ${String(e)}`))
    }
    // SIGTERM: section 14, hand over or resign, then exit 0.
    const onTerm = () => {
      const requestId = ++requestIds
      log.info({ event: "stopping" }, "SIGTERM: handing over or resigning before exit")
      replies.set(requestId, ({ ok, message }) => {
        log.info({ event: "stopped", ok }, message)
        Effect.runFork(Deferred.succeed(stopping, 0))
      })
      enqueue((now) => ({ _tag: "Operator", now, requestId, request: { _tag: "Shutdown" } }))
      // Never hang on the way out: whatever happened by then, stop. The handover may converge
      // unfenced for a switchover_timeout, then fence and wait for the target for another.
      setTimeout(
        () => Effect.runFork(Deferred.succeed(stopping, 0)),
        2 * config.timings.switchover_timeout + 2_000,
      ).unref()
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
    log.info(
      { event: "agent-running", members: config.cluster.members.length },
      `agent ${self} running`,
    )
    return { state: () => latest, config: currentConfig } satisfies RunningAgent
  })

export const main = async (args: ReadonlyArray<string>): Promise<number> => {
  let configPath = DEFAULT_CONFIG
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === "--config") configPath = args[++i] ?? ""
    else if (a?.startsWith("--config=")) configPath = a.slice("--config=".length)
    else {
      process.stderr.write(
        `mha-agent run: unknown argument '${a}' (usage: mha-agent run [--config FILE])\n`,
      )
      return 2
    }
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
  const program = Effect.scoped(
    Effect.gen(function* () {
      const stopping = yield* Deferred.make<number>()
      yield* agent(configPath, config, log, stopping)
      return yield* Deferred.await(stopping)
    }),
  ).pipe(Effect.provide(effectLoggerLayer(log)))
  const exit = await Effect.runPromiseExit(program)
  if (Exit.isSuccess(exit)) return exit.value
  log.fatal({ event: "agent-exit" }, `the agent could not run: ${String(exit.cause)}`)
  return 1
}
