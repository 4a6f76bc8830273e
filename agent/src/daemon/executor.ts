// Executes the core's outputs with the adapters and turns their results back
// into inputs. One step's outputs run in order ("remove VIP, fence, kill
// sessions" is an order); steps may run concurrently. Hard states are written
// as soon as their step comes, by the core's number (an older one never
// overwrites a newer one), and reported back (Persisted, PersistFailed): the
// core holds every message that depends on one until then (core/durability.ts),
// and asks the agent to halt when a write fails (Halt).
import { Cause, Clock, Effect, Exit, Fiber, Semaphore } from "effect"
import type pino from "pino"
import type { Config } from "../../../shared/config.ts"
import type { PeerMessage } from "../../../shared/peer-messages.ts"
import type { HardStateStore } from "../adapters/hard-state-file.ts"
import { describeHookRun, type HookRunnerService, hookAllows } from "../adapters/hook-runner.ts"
import type { MeshService } from "../adapters/mesh.ts"
import type { MysqlActions } from "../adapters/mysql-actuator.ts"
import type { MysqlEndpoint } from "../adapters/mysql-connection.ts"
import { MysqlError, memberEndpoint, readMysqlSettings } from "../adapters/mysql-connection.ts"
import { type MysqlProberService, toMysqlProbe } from "../adapters/mysql-prober.ts"
import { describeRun, runInProcessGroup } from "../adapters/process-group.ts"
import { type RestartResult, restartOptionsFromConfig } from "../adapters/service-manager.ts"
import type { VipService } from "../adapters/vip.ts"
import type {
  HardState,
  Input,
  MysqlAction,
  MysqldStart,
  Output,
  SendOutput,
} from "../core/types.ts"
import { countOutputs } from "./metrics.ts"
import { sourceSsl } from "./mysql-tls.ts"

/** An input waiting for its `now`, which the decision loop stamps when it takes it. */
export type PendingInput = (now: number) => Input

export interface ExecutorServices {
  readonly config: () => Config
  readonly log: pino.Logger
  readonly enqueue: (input: PendingInput) => void
  /**
   * How probe results come back: stepped at once when the decision loop is
   * free (decision-loop.ts deliverInput), a queue hop and a fiber wake-up
   * fewer for each of the two or three probes a second (issue 12). Default: `enqueue`.
   */
  readonly deliver?: (input: PendingInput) => void
  readonly hardState: HardStateStore<HardState>
  readonly mesh: MeshService<PeerMessage>
  readonly prober: MysqlProberService
  readonly mysql: { readonly local: MysqlActions; readonly at: (e: MysqlEndpoint) => MysqlActions }
  readonly vip: VipService | undefined
  /**
   * Publishes the primary for service discovery (adapters/etcd.ts); undefined
   * without an `etcd` section. Both calls return at once.
   */
  readonly discovery?: {
    readonly publish: (term: number) => void
    readonly withdraw: (term: number) => void
  }
  /** Records the mysqld process whose relay log is intact, in the background (adapters/relay-intact-file.ts). */
  readonly relayIntact?: { readonly record: (started: MysqldStart) => void }
  /** Writes the heartbeat row in the background (adapters/lag-heartbeat.ts); undefined without `lag.source: heartbeat_table`. */
  readonly lagHeartbeat?: { readonly write: (term: number) => void }
  readonly restart: (
    options: ReturnType<typeof restartOptionsFromConfig>,
  ) => Effect.Effect<RestartResult>
  readonly hooks: HookRunnerService
  /**
   * Reads a MySQL user's password file (and TLS files) afresh; the simulator
   * gives its own (test/sim/sim-adapters.ts). Default: readMysqlSettings.
   */
  readonly mysqlSettings?: typeof readMysqlSettings
  /** Runs fence_command and service.kill_command; the simulator gives its own. Default: runInProcessGroup. */
  readonly runProcess?: typeof runInProcessGroup
  /**
   * The agent cannot go on safely (the hard state could not be written): it
   * logs why and exits non-zero, so that its service manager restarts it from
   * the file.
   */
  readonly fatal: (reason: string) => void
  readonly operatorReply: (
    requestId: number,
    reply: {
      readonly ok: boolean
      readonly message: string
      readonly answeredBy?: string
      readonly steps?: ReadonlyArray<string>
    },
  ) => void
}

/** A member name for the (host, port) a replica reports as its source. */
export const sourceNameOf =
  (config: Config) =>
  (host: string, port: number): string =>
    config.cluster.members.find((m) => m.address === host && m.mysql_port === port)?.name ??
    `${host}:${port}`

const errorText = (e: unknown): string =>
  e !== null && typeof e === "object" && "message" in e
    ? String((e as { message: unknown }).message)
    : String(e)

/**
 * Outputs started in the background: nothing after them in their batch waits
 * for them. Probes and the grants check report back as inputs; a gratuitous
 * ARP burst takes seconds (garp_count packets a second), and a heartbeat due
 * at the same tick must not wait behind it.
 */
const background = (o: Output): boolean =>
  o._tag === "ProbeLocal" ||
  o._tag === "ProbePrimary" ||
  o._tag === "CheckPrivileges" ||
  (o._tag === "Vip" && o.op === "refresh") ||
  (o._tag === "Mysql" && o.action._tag === "FenceRemote" && o.action.background === true)

/**
 * Outputs with nothing to wait for at their turn: a message is only queued on
 * the mesh (it never waits for the network); the others were handled when the
 * batch arrived (executeNow: events logged, discovery and the background
 * writers told, hard-state writes started apart).
 */
const instant = (output: Output): boolean => {
  switch (output._tag) {
    case "Send":
    case "Event":
    case "PublishPrimary":
    case "WithdrawPrimary":
    case "WriteLagHeartbeat":
    case "RecordRelayIntact":
    case "PersistHardState":
      return true
    default:
      return false
  }
}

export const makeExecutor = (services: ExecutorServices) => {
  const { log, enqueue } = services
  const deliver = services.deliver ?? enqueue
  const mysqlSettings = services.mysqlSettings ?? readMysqlSettings
  const runProcess = services.runProcess ?? runInProcessGroup
  const persistLock = Semaphore.makeUnsafe(1)
  /**
   * Hard states in the order their steps came, across runs of the decision
   * loop (the core's numbers start again with each run; this executor serves
   * them all), and the newest one on disk (each holds the whole state).
   */
  let ordered = 0
  let written = 0

  /**
   * Writes hard state `seq` of the run `incarnation` and reports it to the
   * core (core/durability.ts), which only then lets the messages behind it
   * leave. One write at a time, and an older state never overwrites a newer
   * one, not even one of an earlier run still being written when the loop
   * restarted. Started as soon as its step is (not behind the step's MySQL
   * actions, which may take seconds): the messages wait for the write, not
   * for them.
   */
  const persist = (hard: HardState, seq: number, incarnation: string): Effect.Effect<void> => {
    const order = ++ordered
    return persistLock
      .withPermits(1)(
        Effect.gen(function* () {
          if (order > written) {
            yield* services.hardState.save(hard)
            written = order
          }
        }),
      )
      .pipe(
        Effect.matchEffect({
          onFailure: (e) =>
            Effect.sync(() =>
              enqueue((now) => ({
                _tag: "PersistFailed",
                now,
                incarnation,
                seq,
                error: errorText(e),
              })),
            ),
          onSuccess: () =>
            Effect.sync(() => enqueue((now) => ({ _tag: "Persisted", now, incarnation, seq }))),
        }),
      )
  }

  /** `wanted`: the core still wants this action (a drain stops waiting once it does not). */
  const mysqlAction = (
    action: MysqlAction,
    wanted: () => boolean,
  ): Effect.Effect<void, unknown> => {
    const { local } = services.mysql
    const config = services.config()
    const monitorUser = config.mysql.monitor.user
    switch (action._tag) {
      case "Fence":
        return fenceKillingBlockers(
          local,
          monitorUser,
          action.until === "pending"
            ? local.fenceLeftPending(config.timings.fence_timeout)
            : local.fence,
        )
      case "KillSessions":
        return local.killClientSessions({ skipUsers: [monitorUser] })
      case "MakeWritable":
        return local.unfence
      case "StopReplicaIo":
        return local.stopReplicaIoThread
      case "ResetReplicaAll":
        return local.resetReplicaAll
      case "ReplicateFrom": {
        const source = memberEndpoint(config, action.source)
        if (source === undefined || "socketPath" in source) {
          return Effect.fail(new Error(`${action.source} is not a data member`))
        }
        const tls = config.mysql.tls
        // The password file read afresh: a rotated password applies (issue 17).
        return mysqlSettings(config, "replication").pipe(
          Effect.flatMap((replication) =>
            local.repoint({
              host: source.host,
              port: source.port,
              user: replication.user,
              password: replication.password,
              auth: tls === undefined ? { _tag: "GetSourcePublicKey" } : sourceSsl(tls),
              semiSyncReplica: config.semi_sync.mode !== "off",
            }),
          ),
        )
      }
      case "StartReplica":
        return local.startReplica
      case "WaitForExecuted":
        return local
          .waitForExecutedGtidSet(action.gtids, action.timeoutMs / 1000)
          .pipe(
            Effect.flatMap((r) =>
              r._tag === "Applied"
                ? Effect.void
                : Effect.fail(new Error(`not applied within ${action.timeoutMs} ms`)),
            ),
          )
      case "WaitForExecutedAt": {
        const target = memberEndpoint(config, action.target)
        if (target === undefined)
          return Effect.fail(new Error(`${action.target} is not a data member`))
        return services.mysql
          .at(target)
          .waitForExecutedGtidSet(action.gtids, action.timeoutMs / 1000)
          .pipe(
            Effect.flatMap((r) =>
              r._tag === "Applied"
                ? Effect.void
                : Effect.fail(
                    new Error(`not executed on ${action.target} within ${action.timeoutMs} ms`),
                  ),
            ),
          )
      }
      case "WaitForRelayLog":
        return local
          .waitForRelayLog(action.timeoutMs / 1000)
          .pipe(
            Effect.flatMap(({ result }) =>
              result._tag === "Applied"
                ? Effect.void
                : Effect.fail(new Error(`relay log not applied within ${action.timeoutMs} ms`)),
            ),
          )
      case "SetSemiSync":
        return Effect.all([
          local.setSemiSyncSource({
            enabled: action.source,
            // Strict: a commit never falls back to async (a year is "never" here).
            timeoutMs:
              config.semi_sync.mode === "strict" ? 31_536_000_000 : config.semi_sync.timeout,
            waitForReplicaCount: Math.max(1, action.waitForReplicaCount),
          }),
          local.setSemiSyncReplica(action.replica),
        ])
      case "DrainSessions": {
        // Never fails: whatever is still busy at the deadline is killed by the fence after it.
        // Monotonic: a wall-clock step must not stretch the drain (issue 16). Effect's clock,
        // so that the simulator drives it.
        const monotonicMs = Effect.map(Clock.monotonicTimeNanos, (ns) => Number(ns / 1_000_000n))
        let deadline = 0
        const poll: Effect.Effect<void> = local
          .busyClientSessions({ skipUsers: [monitorUser] })
          .pipe(
            Effect.catch(() => Effect.succeed(0)),
            Effect.flatMap((busy) => {
              if (busy === 0) {
                log.info({ event: "drained" }, "no client session busy: fencing")
                return Effect.void
              }
              if (!wanted()) {
                log.info(
                  { event: "drain-superseded" },
                  `${busy} client session(s) still busy, but the switchover that asked for the drain is over: stopped waiting`,
                )
                return Effect.void
              }
              return Effect.flatMap(monotonicMs, (now) => {
                if (now >= deadline) {
                  log.warn(
                    { event: "drain-timeout" },
                    `${busy} client session(s) still busy after ${action.timeoutMs} ms: the fence kills them`,
                  )
                  return Effect.void
                }
                return Effect.andThen(Effect.sleep(100), poll)
              })
            }),
          )
        return Effect.flatMap(monotonicMs, (now) => {
          deadline = now + action.timeoutMs
          return poll
        })
      }
      case "InjectEmpty":
        return local.injectEmptyTransactions(action.gtids)
      case "FenceRemote": {
        const target = memberEndpoint(config, action.target)
        if (target === undefined)
          return Effect.fail(new Error(`${action.target} is not a data member`))
        const remote = services.mysql.at(target)
        return remote.fence.pipe(
          Effect.andThen(remote.killClientSessions({ skipUsers: [monitorUser] })),
        )
      }
      case "Clone": {
        // The donor's user needs BACKUP_ADMIN there: the monitor user (checkGrants names it),
        // its password read again now (a rotated file applies).
        const donor = memberEndpoint(config, action.donor)
        if (donor === undefined || "socketPath" in donor) {
          return Effect.fail(new Error(`${action.donor} is not a data member`))
        }
        return mysqlSettings(config, "monitor").pipe(
          Effect.flatMap((monitor) =>
            local.clone({
              donorHost: donor.host,
              donorPort: donor.port,
              user: monitor.user,
              password: monitor.password,
            }),
          ),
          Effect.tap((r) =>
            Effect.sync(() =>
              log.info(
                { event: "clone-done", donor: action.donor },
                `clone: ${r.durationMs} ms in all, the copy ${r.copyMs} ms (${r.ending})`,
              ),
            ),
          ),
          Effect.asVoid,
        )
      }
      default: {
        const unhandled: never = action
        return Effect.die(new Error(`unhandled mysql action ${JSON.stringify(unhandled)}`))
      }
    }
  }

  /** Runs a fence_command or a hook; resolves to its exit code (0 when not configured). */
  const runHook = (hook: string, env: Readonly<Record<string, string>>): Effect.Effect<number> => {
    const config = services.config()
    if (hook === "fence_command") {
      if (config.fence_command === undefined) return Effect.succeed(0)
      return runProcess({
        file: "/bin/sh",
        args: ["-c", config.fence_command],
        timeoutMs: config.timings.fence_timeout,
        env: { ...process.env, ...env, MHA_CLUSTER: config.cluster.name, MHA_NODE: config.node },
      }).pipe(
        Effect.map((r) => {
          if (!(r._tag === "Exited" && r.code === 0))
            log.warn({ event: "fence-command" }, describeRun(r))
          return r._tag === "Exited" ? r.code : 1
        }),
      )
    }
    const {
      MHA_OLD_PRIMARY: oldPrimary,
      MHA_NEW_PRIMARY: newPrimary,
      MHA_TERM: term,
      MHA_REASON: reason,
      MHA_EVENT: _event,
      ...extra
    } = env
    const event = {
      oldPrimary,
      newPrimary,
      term: term === undefined ? undefined : Number(term),
      reason,
      extra,
    }
    if (hook === "pre_failover" || hook === "pre_switchover") {
      return services.hooks.runBlocking({ hook, ...event }).pipe(
        Effect.map((r) => {
          if (!hookAllows(r)) log.warn({ event: "hook-blocked", hook }, describeHookRun(r))
          return hookAllows(r) ? 0 : 1
        }),
      )
    }
    return services.hooks
      .enqueue({ hook: hook as Parameters<HookRunnerService["enqueue"]>[0]["hook"], ...event })
      .pipe(Effect.as(0))
  }

  /** Queues a peer message; one the mesh refuses (stopped, unknown peer, unencodable) is dropped. */
  const send = (output: SendOutput): void => {
    const error = services.mesh.sendNow(output.to, output.message)
    if (error !== undefined) log.debug({ event: "send-dropped", to: output.to }, errorText(error))
  }

  const one = (output: Output, incarnation: string, wanted: () => boolean): Effect.Effect<void> => {
    switch (output._tag) {
      case "PersistHardState":
        // Started with its step (executeNow), not behind the step's earlier actions.
        return Effect.void
      case "Send":
        // The core emits a message only once the hard state it depends on is written.
        return Effect.sync(() => send(output))
      case "Halt":
        return Effect.sync(() => services.fatal(output.reason))
      case "Mysql":
        return Effect.exit(mysqlAction(output.action, wanted)).pipe(
          Effect.map((exit) => {
            const error = Exit.isFailure(exit) ? errorText(Cause.squash(exit.cause)) : null
            // The core logs the failure with its purpose (mysql-action-failed, promotion-aborted ...).
            if (error !== null)
              log.debug({ event: "mysql-action-error", action: output.action._tag }, error)
            enqueue((now) => ({
              _tag: "MysqlDone",
              now,
              incarnation,
              id: output.id,
              ok: error === null,
              error,
            }))
          }),
        )
      case "Vip": {
        const vip = services.vip
        if (vip === undefined) {
          return Effect.sync(() =>
            enqueue((now) => ({ _tag: "VipDone", now, op: output.op, ok: true })),
          )
        }
        // Nothing for the core to track: the address stays, its pending announcements stop.
        if (output.op === "quiet") return vip.quiet
        // The adapter logs what it did (vip-acquired, vip-released): one line per event.
        const op =
          output.op === "add" ? vip.acquire : output.op === "remove" ? vip.release : vip.refresh
        return Effect.exit(op).pipe(
          Effect.map((exit) => {
            // The core logs a failure (vip-failed) with this error.
            const error = Exit.isFailure(exit) ? errorText(Cause.squash(exit.cause)) : undefined
            enqueue((now) => ({
              _tag: "VipDone",
              now,
              op: output.op,
              ok: Exit.isSuccess(exit),
              ...(error === undefined ? {} : { error }),
            }))
          }),
        )
      }
      case "PublishPrimary":
      case "WithdrawPrimary":
      case "WriteLagHeartbeat":
      case "RecordRelayIntact":
        // Handed to the publisher (the heartbeat writer, the relay-intact file) when the
        // batch arrived (executeNow).
        return Effect.void
      case "RestartMysqld":
        // One attempt per output: the core counts attempts and decides what follows.
        return Effect.forkDetach(
          services.restart({ ...restartOptionsFromConfig(services.config()), attempts: 1 }).pipe(
            Effect.map((r) => {
              log.warn(
                { event: "mysqld-restart", attempt: output.attempt },
                r._tag === "Succeeded"
                  ? "mysqld restarted"
                  : `restart failed: ${JSON.stringify(r.history)}`,
              )
              enqueue((now) => ({ _tag: "RestartDone", now, ok: r._tag === "Succeeded" }))
            }),
          ),
        ).pipe(Effect.asVoid)
      case "KillMysqld": {
        const config = services.config()
        return runProcess({
          file: "/bin/sh",
          args: ["-c", config.service.kill_command],
          timeoutMs: config.timings.fence_timeout,
          env: process.env,
        }).pipe(
          Effect.map((r) => {
            const ok = r._tag === "Exited" && r.code === 0
            log[ok ? "warn" : "error"](
              { event: "mysqld-killed", ok },
              `${config.service.kill_command}: ${describeRun(r)}`,
            )
          }),
        )
      }
      case "RunHook":
        return Effect.forkDetach(
          runHook(output.hook, output.env).pipe(
            Effect.map((exitCode) =>
              enqueue((now) => ({ _tag: "HookDone", now, incarnation, id: output.id, exitCode })),
            ),
          ),
        ).pipe(Effect.asVoid)
      case "ProbeLocal":
        return services.prober.probeLocal.pipe(
          Effect.map((o) => toMysqlProbe(o, sourceNameOf(services.config()))),
          Effect.exit,
          Effect.map((exit) => {
            const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : null
            deliver((now) => ({
              _tag: "LocalProbed",
              now,
              incarnation,
              probe: output.probe,
              result: Exit.isSuccess(exit)
                ? { _tag: "Up", mysql: exit.value }
                : {
                    _tag: "Down",
                    reason: errorText(error),
                    // No answer in time (TCP accepted, nothing answers): a hung mysqld.
                    hung: error instanceof MysqlError && error.kind === "timeout",
                  },
            }))
          }),
        )
      case "ProbePrimary": {
        const target = memberEndpoint(services.config(), output.target)
        if (target === undefined) return Effect.void
        return services.prober.probeRemote(target).pipe(
          Effect.map((r) =>
            deliver((now) => ({
              _tag: "PrimaryProbed",
              now,
              target: output.target,
              reachable: r._tag === "Reachable",
              superReadOnly: r._tag === "Reachable" ? r.superReadOnly : null,
            })),
          ),
        )
      }
      case "CheckPrivileges":
        return services.mysql.local.checkGrants.pipe(
          Effect.exit,
          Effect.map((exit) =>
            enqueue((now) => ({
              _tag: "PrivilegesChecked",
              now,
              result: Exit.isSuccess(exit)
                ? {
                    _tag: "Checked",
                    user: exit.value.user,
                    missing: exit.value.missing.map((m) => ({
                      privilege: m.privilege,
                      neededBy: m.neededBy,
                      forProbe: m.forProbe,
                    })),
                  }
                : { _tag: "Failed", reason: errorText(Cause.squash(exit.cause)) },
            })),
          ),
        )
      case "Event":
        // Logged when the step made it (executeNow), not behind the step's earlier actions.
        return Effect.void
      case "OperatorReply":
        return Effect.sync(() => services.operatorReply(output.requestId, output))
      default: {
        const unhandled: never = output
        return Effect.die(new Error(`unhandled output ${JSON.stringify(unhandled)}`))
      }
    }
  }

  /**
   * Asks the core, at `output`'s turn, whether it may still be performed; if not, says
   * so, and reports a withdrawn MySQL action like a failed one.
   */
  const stillPerformable = (
    output: Output,
    incarnation: string,
    wanted: () => boolean,
  ): boolean => {
    if (wanted()) return true
    log.info(
      {
        event: "superseded",
        output: output._tag === "Mysql" ? output.action._tag : output._tag,
      },
      "not performed: the decision that issued it was withdrawn before its turn",
    )
    // Reported like a failure, so that no routine waits for it for ever
    // (a withdrawn id is unknown to the core and its report ignored).
    if (output._tag === "Mysql")
      enqueue((now) => ({
        _tag: "MysqlDone",
        now,
        incarnation,
        id: output.id,
        ok: false,
        error: "not performed: superseded",
      }))
    return false
  }

  /**
   * Performs the batch's leading instant outputs, in order, each while still wanted;
   * returns how many there were (the rest starts with one that must wait).
   */
  const performInstant = (
    outputs: ReadonlyArray<Output>,
    incarnation: string,
    stillWanted: (output: Output) => boolean,
    fork: ((effect: Effect.Effect<void>) => void) | undefined,
  ): number => {
    let performed = 0
    for (const o of outputs) {
      const wanted = () => stillWanted(o)
      if (instant(o)) {
        if (stillPerformable(o, incarnation, wanted) && o._tag === "Send") send(o)
      } else if (fork !== undefined && background(o)) {
        // Started here as in its turn below, so that the heartbeats behind a probe need no fiber.
        if (stillPerformable(o, incarnation, wanted))
          fork(Effect.suspend(() => one(o, incarnation, wanted)))
      } else break
      performed++
    }
    return performed
  }

  /** Runs outputs one after the other, each only if still wanted at its turn. */
  const inOrder = (
    outputs: ReadonlyArray<Output>,
    incarnation: string,
    stillWanted: (output: Output) => boolean,
  ): Effect.Effect<void> =>
    Effect.forEach(
      outputs,
      (o) =>
        Effect.suspend(() => {
          const wanted = () => stillWanted(o)
          if (!stillPerformable(o, incarnation, wanted)) return Effect.void
          return background(o)
            ? Effect.forkDetach(one(o, incarnation, wanted))
            : one(o, incarnation, wanted)
        }),
      { discard: true },
    )

  /**
   * Runs one step's outputs in order. Probes (and the grants check) are started in the background:
   * their results come back as inputs and nothing in the step waits for them.
   * `incarnation` is the bootId of the decision loop's run that made the
   * step; completions carry it back. `stillWanted` is the core's answer,
   * from its current state, whether an output may still be performed: asked
   * just before each one, since an earlier one (a drain, a fence behind a
   * lock) may outlast the decision that issued the batch (issue 16).
   *
   * The batch's leading instant outputs are performed before it returns, in the
   * caller's turn: at rest nearly every step's outputs are heartbeats,
   * acknowledgements and events, and a fiber for each such step cost more CPU
   * than the agent's real work (issue 12). Background outputs among them (a
   * probe before the heartbeats of a tick) are started there with `fork`, when
   * given, as they would be at their turn. It returns the rest, from the first
   * output that must wait on (a message behind it waits too), with the start of
   * the step's hard-state writes: to run in a fiber of the caller's; undefined
   * when nothing is left.
   */
  const executeNow = (
    outputs: ReadonlyArray<Output>,
    incarnation: string,
    stillWanted: (output: Output) => boolean = () => true,
    fork?: (effect: Effect.Effect<void>) => void,
  ): Effect.Effect<void> | undefined => {
    countOutputs(outputs)
    // An event tells what the core decided, so it is logged now: in its batch it would wait
    // behind the actions before it (a fence pending behind a commit that waits for an
    // acknowledgement holds the batch up to fence_timeout), and the log would be silent
    // about a decision already taken (a resignation logged 10 s late).
    for (const o of outputs) {
      if (o._tag !== "Event") continue
      // The event's name and its typed facts (events.ts: a promotion's kind and term).
      const { _tag, level, reason, ...fields } = o
      log[level](fields, reason)
    }
    // Service discovery too: the publisher only records the wish and works in the background,
    // and a withdrawal must not wait behind a fence pending on an acknowledgement.
    for (const o of outputs) {
      if (o._tag === "PublishPrimary") services.discovery?.publish(o.term)
      else if (o._tag === "WithdrawPrimary") services.discovery?.withdraw(o.term)
      // Never behind a fence pending on an acknowledgement, and only while still wanted (ACTIVE).
      else if (o._tag === "WriteLagHeartbeat" && stillWanted(o))
        services.lagHeartbeat?.write(o.term)
      // A file beside the hard state, written in the background: nothing waits for it.
      else if (o._tag === "RecordRelayIntact") services.relayIntact?.record(o.started)
    }
    // Hard states are written at once, each reported to the core once on disk (persist).
    const writes = outputs.flatMap((o) =>
      o._tag === "PersistHardState" ? [persist(o.hard, o.seq, incarnation)] : [],
    )
    const waiting = outputs.slice(performInstant(outputs, incarnation, stillWanted, fork))
    if (writes.length === 0 && waiting.length === 0) return undefined
    const started = Effect.forEach(writes, (w) => Effect.forkDetach(w), { discard: true })
    return waiting.length === 0
      ? started
      : Effect.andThen(started, inOrder(waiting, incarnation, stillWanted))
  }

  /**
   * `executeNow` as one Effect, for a caller that waits for the whole batch (tests):
   * the instant part is performed when called, the rest when the Effect runs.
   */
  const execute = (
    outputs: ReadonlyArray<Output>,
    incarnation: string,
    stillWanted?: (output: Output) => boolean,
  ): Effect.Effect<void> => executeNow(outputs, incarnation, stillWanted) ?? Effect.void

  return { execute, executeNow }
}

/** How long a pending `super_read_only = ON` may wait before the sessions that hold it up are killed. */
const FENCE_PATIENCE_MS = 1_000

/**
 * `SET GLOBAL super_read_only = ON` waits behind LOCK TABLES or a commit
 * that waits for a semi-sync acknowledgement nobody can send (a primary cut
 * off from its replicas). Aborting that SET at its timeout makes MySQL put
 * the old value back: the server would be writable again (lab scenario 7).
 * So on a node that must not be writable the SET is never aborted (a
 * switchover's fence is: its rollback wants the server as it was): it stays pending while, after a short
 * patience, the client sessions are killed from a second connection: their
 * clients get an error at once, never OK, and LOCK TABLES holders let go.
 * A commit waiting for an acknowledgement is never released here (section 9):
 * turning semi-sync off would give OK to every client in its binlog group,
 * killed or not (test/lab/semisync-behaviour.test.ts). While one waits, the
 * fence fails at fence_timeout, still pending (writes wait behind it), and
 * the core stops mysqld hard (fencing.ts), which ends it.
 */
const fenceKillingBlockers = (
  local: MysqlActions,
  monitorUser: string,
  fence: Effect.Effect<void, MysqlError>,
) =>
  Effect.gen(function* () {
    const helper = yield* Effect.forkChild(
      Effect.sleep(FENCE_PATIENCE_MS).pipe(
        Effect.andThen(Effect.ignore(local.killClientSessions({ skipUsers: [monitorUser] }))),
      ),
    )
    const fenced = yield* Effect.exit(fence)
    yield* Fiber.interrupt(helper)
    if (Exit.isFailure(fenced)) return yield* Effect.failCause(fenced.cause)
  })
