/**
 * The daemon's executor (agent/src/daemon/executor.ts, makeExecutor) with
 * simulated adapters: the simulator performs the core's outputs with the
 * same code, in the same order and with the same escalation (pending fence,
 * the session kills after its patience, each hard state reported once written, superseded
 * actions) as the daemon. Only the adapters differ: MySQL actions act on
 * the node's SimMysqld, the mesh on the simulated network, the hard state on
 * the node's simulated disk, the VIP on the world's VIP ledger.
 *
 * Effects run deterministically: every fiber runs on a scheduler whose
 * tasks the world drains after each simulated event (never the event
 * loop), and Effect's clock is the node's simulated clock (Effect.sleep
 * schedules a simulated event). An adapter that takes time completes in a
 * simulated event, drawn from the world's generator like every latency.
 */
import { Clock, Context, Duration, Effect, Option, Redacted, Scheduler } from "effect"
import type pino from "pino"
import type { HardStateStore } from "../../agent/src/adapters/hard-state-file.ts"
import type { HookRunnerService, HookRunResult } from "../../agent/src/adapters/hook-runner.ts"
import type { MeshService } from "../../agent/src/adapters/mesh.ts"
import type {
  CloneResult,
  GrantsReport,
  MysqlActions,
  WaitResult,
} from "../../agent/src/adapters/mysql-actuator.ts"
import { MysqlError } from "../../agent/src/adapters/mysql-connection.ts"
import type {
  LocalObservation,
  MysqlProberService,
  RemoteProbe,
} from "../../agent/src/adapters/mysql-prober.ts"
import type { ProcessRunResult } from "../../agent/src/adapters/process-group.ts"
import type { RestartResult } from "../../agent/src/adapters/service-manager.ts"
import type { VipService } from "../../agent/src/adapters/vip.ts"
import { emptyGtidSet, type GtidSet, isSubset } from "../../agent/src/core/gtid.ts"
import type { HardState, HookName, MysqldStart, Output } from "../../agent/src/core/types.ts"
import {
  type ExecutorServices,
  makeExecutor,
  type PendingInput,
} from "../../agent/src/daemon/executor.ts"
import type { Config } from "../../shared/config.ts"
import type { PeerMessage } from "../../shared/peer-messages.ts"
import type { SimMysqld } from "./sim-mysqld.ts"

/** Fiber tasks of every node, run by the world after each simulated event (FIFO). */
export class FiberTasks {
  private tasks: Array<() => void> = []
  private head = 0
  readonly scheduler: Scheduler.Scheduler = {
    executionMode: "sync",
    // Never yield to the event loop: a fiber runs until it waits for a simulated event.
    shouldYield: () => false,
    makeDispatcher: () => ({
      scheduleTask: (task) => void this.tasks.push(task),
      flush: () => this.flush(),
    }),
  }

  flush(): void {
    while (this.head < this.tasks.length) {
      const task = this.tasks[this.head++]!
      task()
    }
    this.tasks = []
    this.head = 0
  }
}

/** What the adapters of one node need from the world (world.ts implements it). */
export interface SimHost {
  readonly rng: { next(): number }
  readonly now: number
  readonly config: { readonly timings: { readonly rpcTimeoutMs: number } }
  readonly fibers: FiberTasks
  schedule(at: number, run: () => void): void
  /** The node's local (drifting) clock at real time `at`. */
  localNowOf(name: string, at?: number): number
  /** Real ms that pass while `ms` pass on the node's clock. */
  realMsOf(name: string, ms: number): number
  mysqldOf(name: string): SimMysqld | null
  reachable(from: string, to: string): boolean
  semiSyncClientsOf(name: string): number
  /** Clients of these commits got OK / an error. */
  acknowledge(m: SimMysqld, writes: ReadonlyArray<{ readonly gno: number }>): void
  onBecomesWritable(name: string, m: SimMysqld): void
  onSend(from: string, to: string, message: PeerMessage): void
  deliver(from: string, to: string, message: PeerMessage): void
  onPersisted(name: string, hard: HardState): void
  /** The relay-intact file beside the hard state. */
  onRelayIntact(name: string, started: MysqldStart): void
  onVip(name: string, op: "add" | "remove" | "refresh"): void
  /** Service discovery: the simulated etcd (world.ts). */
  onDiscovery(name: string, op: "publish" | "withdraw", term: number): void
  restartMysqld(name: string, done: (ok: boolean) => void): void
  /** CLONE INSTANCE FROM `donor` on `name`'s mysqld; `done(null)` once it restarted with the donor's data. */
  cloneMysqld(name: string, donor: string, done: (error: string | null) => void): void
  /** service.kill_command: SIGKILL through the service manager, which starts mysqld again. */
  stopMysqldHard(name: string, reason: string): void
  hookResult(name: string, hook: HookName): { readonly exitCode: number; readonly ms: number }
  missingPrivileges(name: string): ReadonlyArray<string>
  traceNode(name: string, line: string): void
  operatorReply(
    name: string,
    requestId: number,
    reply: Parameters<ExecutorServices["operatorReply"]>[1],
  ): void
  /** The agent logged an event (the world keeps the set, traces some). */
  logged(name: string, level: string, fields: unknown, message: string): void
}

const MYSQL_POLL_MS = 20
/** A pending-fence SET aborted by the client's query timeout (config mysql.query_timeout). */
const QUERY_TIMEOUT_MS = 1_000
/**
 * The bound of one MySQL action in the actuator (mysql-actuator.ts `act`):
 * fence_timeout + connect_timeout of simDaemonConfig. A STOP REPLICA that
 * waits longer fails with a timeout (the statement itself stays pending in
 * mysqld).
 */
const ACTION_BOUND_MS = 10_000 + 1_000

/** The daemon's config as the executor reads it, for a simulated member. */
export const simDaemonConfig = (
  self: string,
  members: ReadonlyArray<{ readonly name: string; readonly kind: "data" | "witness" }>,
  semiSync: "off" | "on" | "strict",
  fenceCommand: boolean,
): Config =>
  ({
    node: self,
    cluster: {
      name: "sim",
      members: members.map((m) => ({
        name: m.name,
        kind: m.kind,
        address: m.name,
        mysql_port: 3306,
      })),
    },
    mysql: {
      monitor: { user: "mha", password_file: "-" },
      replication: { user: "repl", password_file: "-" },
      connect_timeout: 1_000,
      query_timeout: QUERY_TIMEOUT_MS,
    },
    timings: {
      fence_timeout: 10_000,
      restart_timeout: 10_000,
      restart_attempts: 1,
      restart_retry_delay: 1_000,
    },
    semi_sync: { mode: semiSync, timeout: 10_000 },
    service: { restart_command: "sim:restart-mysqld", kill_command: "sim:kill-mysqld" },
    ...(fenceCommand ? { fence_command: "sim:fence_command" } : {}),
  }) as unknown as Config

const mysqlError = (
  action: string,
  target: string,
  kind: MysqlError["kind"],
  reason: string,
): MysqlError =>
  new MysqlError({
    action,
    target,
    kind,
    // A stopped mysqld: nothing listens, the connect is refused (as mysql2 reports it).
    code: reason === "connection refused" ? "ECONNREFUSED" : null,
    errno: null,
    sqlState: null,
    reason,
  })

const exited = (code: number, durationMs: number): ProcessRunResult => ({
  _tag: "Exited",
  code,
  durationMs,
  stdoutTail: "",
  stderrTail: "",
  pid: undefined,
})

/** A pino logger that hands every line to the world. */
const simLogger = (host: SimHost, name: string): pino.Logger => {
  const at =
    (level: string) =>
    (fields: unknown, message?: string): void =>
      host.logged(name, level, fields, message ?? "")
  const logger = {
    trace: () => {},
    debug: () => {},
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    fatal: at("fatal"),
  }
  return logger as unknown as pino.Logger
}

export interface SimAgentProcess {
  readonly execute: (
    outputs: ReadonlyArray<Output>,
    bootId: string,
    stillWanted: (o: Output) => boolean,
  ) => void
}

/**
 * One run of a node's agent process: the daemon's executor over simulated
 * adapters. `alive()` is false once this process died: from then on its
 * adapters do nothing and never complete (a dead process performs nothing).
 */
export const simAgentProcess = (options: {
  readonly host: SimHost
  readonly self: string
  readonly config: Config
  readonly alive: () => boolean
  readonly enqueue: (input: PendingInput) => void
  readonly fatal: (reason: string) => void
}): SimAgentProcess => {
  const { host, self, alive } = options
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: () => host.localNowOf(self),
    currentTimeMillis: Effect.sync(() => host.localNowOf(self)),
    currentTimeNanosUnsafe: () => BigInt(host.localNowOf(self)) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(host.localNowOf(self)) * 1_000_000n),
    monotonicTimeNanosUnsafe: () => BigInt(host.localNowOf(self)) * 1_000_000n,
    monotonicTimeNanos: Effect.sync(() => BigInt(host.localNowOf(self)) * 1_000_000n),
    sleep: (d) =>
      Effect.callback<void>((resume) => {
        host.schedule(host.now + host.realMsOf(self, Duration.toMillis(d)), () => {
          if (alive()) resume(Effect.void)
        })
      }),
  }
  const context = Context.make(Scheduler.Scheduler, host.fibers.scheduler).pipe(
    Context.add(Clock.Clock, clock),
  )
  const run = Effect.runForkWith(context)

  /** Completes after `ms` of simulated time with `result()` (evaluated then), unless the process died. */
  const after = <A, E>(ms: number, result: () => Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.callback<A, E>((resume) => {
      if (!alive()) return
      host.schedule(host.now + ms, () => {
        if (alive()) resume(result())
      })
    })

  const target = `${self}:3306`
  /**
   * One statement on the local mysqld: refused at once when it is down,
   * a timeout after a while when it is hung (accepts, never answers).
   */
  const statement = <A>(
    action: string,
    body: (m: SimMysqld) => Effect.Effect<A, MysqlError>,
  ): Effect.Effect<A, MysqlError> =>
    Effect.suspend(() => {
      const m = host.mysqldOf(self)
      if (m === null) return Effect.fail(mysqlError(action, target, "connect", "no mysqld"))
      const latency = !m.up ? 2 : m.hung ? 1000 : 1 + host.rng.next() * 5
      return after(latency, () => {
        if (!m.up) return Effect.fail(mysqlError(action, target, "connect", "connection refused"))
        if (m.hung) return Effect.fail(mysqlError(action, target, "timeout", "query timeout"))
        return body(m)
      })
    })

  const denied = (action: string) =>
    Effect.fail(
      mysqlError(
        action,
        target,
        "server",
        "Access denied; you need (at least one of) the SUPER or SYSTEM_VARIABLES_ADMIN privilege(s)",
      ),
    )

  /** Polls every MYSQL_POLL_MS of simulated time until `done(m)` or `timeoutMs`. */
  const pollUntil = (
    m: SimMysqld,
    timeoutMs: number,
    done: (m: SimMysqld) => boolean,
  ): Effect.Effect<boolean, MysqlError> => {
    const start = host.now
    const loop: Effect.Effect<boolean, MysqlError> = Effect.suspend(() => {
      if (!m.up) return Effect.fail(mysqlError("wait", target, "connection-lost", "mysqld died"))
      if (!m.hung && done(m)) return Effect.succeed(true)
      if (host.now - start >= timeoutMs) return Effect.succeed(false)
      return Effect.andThen(
        after(MYSQL_POLL_MS, () => Effect.void),
        loop,
      )
    })
    return loop
  }

  /**
   * A callback's resume that takes effect once (the first of an answer and a
   * timeout wins), and only while this node's world is alive.
   */
  const settleOnce = (resume: (e: Effect.Effect<void, MysqlError>) => void) => {
    let done = false
    return {
      settle: (e: Effect.Effect<void, MysqlError>): void => {
        if (done) return
        done = true
        if (alive()) resume(e)
      },
      settled: (): boolean => done,
    }
  }

  /**
   * `SET GLOBAL super_read_only = ON` on `m`: done at once, or pending behind
   * waiting commits until they end; `abortAfterMs`: the client's timeout kills
   * the SET (MySQL then puts the old value back); `giveUpAfterMs`: the caller
   * stops waiting and leaves it pending.
   */
  const setSuperReadOnly = (
    m: SimMysqld,
    at: string,
    limit: { readonly abortAfterMs: number } | { readonly giveUpAfterMs: number },
  ): Effect.Effect<void, MysqlError> =>
    Effect.callback<void, MysqlError>((resume) => {
      const { settle, settled } = settleOnce(resume)
      const doneNow = m.requestFence((done) =>
        settle(
          done
            ? Effect.void
            : Effect.fail(mysqlError("fence", at, "connection-lost", "the SET was aborted")),
        ),
      )
      if (doneNow) return settle(Effect.void)
      if ("abortAfterMs" in limit) {
        host.schedule(host.now + limit.abortAfterMs, () => {
          if (settled()) return
          m.abortFence()
          settle(Effect.fail(mysqlError("fence", at, "timeout", "query timeout")))
        })
      } else {
        host.schedule(host.now + limit.giveUpAfterMs, () =>
          settle(
            Effect.fail(
              mysqlError(
                "fence",
                at,
                "timeout",
                `super_read_only = ON still pending after ${limit.giveUpAfterMs} ms (left pending: writes wait behind it)`,
              ),
            ),
          ),
        )
      }
    })

  /**
   * The STOP REPLICA part of a statement: at once, or, while the IO thread
   * waits for disk space, once the disk is freed; the client gives up at the
   * action's bound.
   */
  const stopIoThread = (m: SimMysqld, action: string): Effect.Effect<void, MysqlError> =>
    Effect.callback<void, MysqlError>((resume) => {
      const { settle } = settleOnce(resume)
      const stoppedNow = m.requestIoStop((stopped) =>
        settle(
          stopped
            ? Effect.void
            : Effect.fail(mysqlError(action, target, "connection-lost", "mysqld died")),
        ),
      )
      if (stoppedNow) return settle(Effect.void)
      host.traceNode(
        self,
        `${action}: STOP REPLICA waits for the IO thread (waiting for disk space)`,
      )
      host.schedule(host.now + ACTION_BOUND_MS, () =>
        settle(
          Effect.fail(
            mysqlError(action, target, "timeout", `did not finish within ${ACTION_BOUND_MS} ms`),
          ),
        ),
      )
    })

  const killSessions = (m: SimMysqld) =>
    Effect.sync(() => {
      const killed = m.killSessions()
      host.acknowledge(m, [])
      return killed.map((p) => ({ id: p.writeId, user: "app", host: "client", command: "Query" }))
    })

  const local: MysqlActions = {
    target,
    fence: statement("fence", (m) =>
      setSuperReadOnly(m, target, { abortAfterMs: QUERY_TIMEOUT_MS }),
    ),
    fenceLeftPending: (patienceMs) =>
      statement("fence", (m) => setSuperReadOnly(m, target, { giveUpAfterMs: patienceMs })),
    unfence: statement("unfence", (m) =>
      Effect.sync(() => {
        if (!m.writable) host.onBecomesWritable(self, m)
        m.makeWritable()
      }),
    ),
    killClientSessions: () => statement("kill", killSessions),
    // The simulated client is not drained by the VIP: a drain never waits (the fence after it kills).
    busyClientSessions: () => statement("busy", () => Effect.succeed(0)),
    stopReplica: statement("stop-replica", (m) =>
      Effect.sync(() => {
        m.sqlRunning = false
      }).pipe(Effect.andThen(stopIoThread(m, "stop-replica"))),
    ),
    stopReplicaIoThread: statement("stop-io", (m) => stopIoThread(m, "stop-io")),
    startReplica: statement("start-replica", (m) => Effect.sync(() => m.startReplica())),
    resetReplicaAll: statement("reset-replica", (m) =>
      stopIoThread(m, "reset-replica").pipe(Effect.andThen(Effect.sync(() => m.resetReplicaAll()))),
    ),
    repoint: (o) =>
      statement("repoint", (m) =>
        stopIoThread(m, "repoint").pipe(
          Effect.andThen(
            Effect.sync(() => {
              m.replicateFrom(o.host)
              host.traceNode(self, `mysql ReplicateFrom(${o.host}) ok`)
            }),
          ),
        ),
      ),
    waitForExecutedGtidSet: (set, timeoutSeconds) =>
      statement("wait", (m) =>
        pollUntil(m, timeoutSeconds * 1000, (x) => isSubset(set, x.gtidExecuted)).pipe(
          Effect.map((ok) => (ok ? { _tag: "Applied" as const } : { _tag: "TimedOut" as const })),
        ),
      ),
    waitForRelayLog: (timeoutSeconds) =>
      statement("wait-relay-log", (m) => {
        const retrieved = m.retrieved
        return pollUntil(m, timeoutSeconds * 1000, (x) => x.relayApplied()).pipe(
          Effect.map((ok) => ({
            result: ok ? { _tag: "Applied" as const } : { _tag: "TimedOut" as const },
            retrieved,
          })),
        )
      }),
    setSemiSyncSource: (o) =>
      statement("semi-sync-source", (m) => {
        if (m.systemVariablesDenied) return denied("semi-sync-source")
        return Effect.sync(() => {
          const released = m.setSemiSyncSource(o.enabled, o.waitForReplicaCount)
          if (released.length > 0) {
            host.traceNode(
              self,
              `${o.enabled ? "semi-sync wait count lowered" : "semi-sync off as a source"} released ${released.length} waiting commit(s)`,
            )
            host.acknowledge(m, released)
          }
        })
      }),
    setSemiSyncReplica: () =>
      statement("semi-sync-replica", (m) =>
        m.systemVariablesDenied
          ? denied("semi-sync-replica")
          : Effect.succeed({ ioThreadRestarted: false }),
      ),
    injectEmptyTransactions: (gtids) =>
      statement("inject-empty", (m) =>
        Effect.sync(() => {
          m.injectEmpty(gtids, host.now)
          return 0
        }),
      ),
    // The copy, then mysqld restarts with the donor's data: the reply once it answers again.
    clone: (o) =>
      statement("clone", (m) =>
        Effect.callback<CloneResult, MysqlError>((resume) => {
          const began = host.now
          host.cloneMysqld(self, o.donorHost, (error) => {
            if (!alive()) return
            resume(
              error === null
                ? Effect.succeed({
                    executed: m.executed,
                    durationMs: host.now - began,
                    copyMs: host.now - began,
                    ending: "the server restarted",
                  })
                : Effect.fail(mysqlError("clone", target, "server", error)),
            )
          })
        }),
      ),
    checkGrants: Effect.suspend(() => {
      const m = host.mysqldOf(self)
      // A fixed latency: no draw from the generator.
      return after(2, () =>
        m === null || !m.up || m.hung
          ? Effect.fail(mysqlError("grants", target, "connect", "connection refused"))
          : Effect.succeed<GrantsReport>({
              user: "mha@%",
              granted: [],
              roles: [],
              missing: host.missingPrivileges(self).map((privilege) => ({
                privilege,
                anyOf: [privilege],
                neededBy: ["promotion"],
                forProbe: false,
              })),
            }),
      )
    }),
  }

  /** Another member's mysqld over the network (FenceRemote). */
  const remote = (name: string): MysqlActions => {
    const at = `${name}:3306`
    const reachable = () => {
      const t = host.mysqldOf(name)
      return t?.up === true && !t.hung && host.reachable(self, name)
    }
    const call = <A>(action: string, body: (t: SimMysqld) => Effect.Effect<A, MysqlError>) =>
      Effect.suspend(() => {
        const ok = reachable()
        const latency = ok ? 2 + host.rng.next() * 4 : host.config.timings.rpcTimeoutMs
        return after(latency, () => {
          const t = host.mysqldOf(name)
          return t === null || !reachable()
            ? Effect.fail(mysqlError(action, at, "timeout", "unreachable"))
            : body(t)
        })
      })
    const unsupported = Effect.die(new Error(`remote action on ${name} not simulated`))
    /** WAIT_FOR_EXECUTED_GTID_SET over the network: the answer needs the way back too. */
    const waitExecuted = (set: GtidSet, timeoutMs: number) =>
      call("wait", (t) => {
        const start = host.now
        const loop: Effect.Effect<WaitResult, MysqlError> = Effect.suspend(() => {
          if (!reachable()) return Effect.fail(mysqlError("wait", at, "connection-lost", "lost"))
          if (isSubset(set, t.gtidExecuted)) return Effect.succeed({ _tag: "Applied" as const })
          if (host.now - start >= timeoutMs) return Effect.succeed({ _tag: "TimedOut" as const })
          return Effect.andThen(
            after(MYSQL_POLL_MS, () => Effect.void),
            loop,
          )
        })
        return loop
      })
    return {
      ...local,
      target: at,
      waitForExecutedGtidSet: (set, timeoutSeconds) => waitExecuted(set, timeoutSeconds * 1000),
      fence: call("fence", (t) => setSuperReadOnly(t, at, { abortAfterMs: QUERY_TIMEOUT_MS })),
      killClientSessions: () => call("kill", killSessions),
      fenceLeftPending: () => unsupported,
      unfence: unsupported,
    }
  }

  const prober: MysqlProberService = {
    probeLocal: Effect.suspend(() => {
      const m = host.mysqldOf(self)
      if (m === null) return Effect.never
      const hung = m.up && m.hung
      return after(hung ? 400 : 1 + host.rng.next() * 3, () => {
        if (!m.up) return Effect.fail(mysqlError("probe", target, "connect", "connection refused"))
        if (m.hung) return Effect.fail(mysqlError("probe", target, "timeout", "timeout"))
        const p = m.probe(host.semiSyncClientsOf(self))
        const o: LocalObservation = {
          serverUuid: p.serverUuid,
          serverId: 1,
          version: "9.7.0-sim",
          readOnly: p.readOnly,
          superReadOnly: p.superReadOnly,
          relayLogRecovery: true,
          executed: p.executed,
          committing: p.committing ?? emptyGtidSet,
          replica:
            p.replica === null
              ? null
              : {
                  sourceHost: p.replica.source,
                  sourcePort: 3306,
                  sourceUuid: "",
                  ioState: p.replica.ioRunning ? "Yes" : "No",
                  ioRunning: p.replica.ioRunning,
                  ioStatus: p.replica.ioStatus ?? "",
                  sqlRunning: p.replica.sqlRunning,
                  retrieved: p.replica.retrieved,
                  executed: p.executed,
                  secondsBehindSource: p.replica.lagSeconds,
                  autoPosition: true,
                  lastIoError: null,
                  lastSqlError: null,
                },
          semiSync: {
            sourcePluginLoaded: true,
            replicaPluginLoaded: true,
            sourceEnabled: p.semiSyncSourceOn,
            sourceActive: p.semiSyncSourceOn,
            sourceClients: p.semiSyncClients ?? 0,
            sourceWaitSessions: p.semiSyncWaiters,
            sourceTimeoutMs: null,
            waitForReplicaCount: p.semiSyncWaitCount ?? null,
            replicaEnabled: p.semiSyncReplicaOn,
            replicaActive: p.semiSyncReplicaOn,
          },
          // The host's clock since boot is the world's: a mysqld started when it last booted.
          uptimeSeconds: Math.floor((host.now - m.bootedAt) / 1000),
          started: { boot: `sim-${self}`, sinceBootSeconds: m.bootedAt / 1000 },
          commitWait: { sessions: 0, oldestSeconds: 0 },
          durationMs: 1,
          reconnected: false,
        }
        return Effect.succeed(o)
      })
    }),
    probeRemote: (endpoint) =>
      Effect.suspend(() => {
        const name = "socketPath" in endpoint ? self : endpoint.host
        const reachable = (): boolean => {
          const t = host.mysqldOf(name)
          return t?.up === true && !t.hung && host.reachable(self, name)
        }
        return after(reachable() ? 2 : 400, () => {
          const t = host.mysqldOf(name)
          const r: RemoteProbe =
            t !== null && reachable()
              ? {
                  _tag: "Reachable",
                  target: name,
                  serverUuid: t.uuid,
                  readOnly: t.readOnly,
                  superReadOnly: t.superReadOnly,
                  latencyMs: 2,
                }
              : {
                  _tag: "Unreachable",
                  target: name,
                  error: mysqlError("probe", name, "timeout", "unreachable"),
                  latencyMs: 400,
                }
          return Effect.succeed(r)
        })
      }),
    reset: Effect.void,
  }

  const hardState: HardStateStore<HardState> = {
    path: `sim:${self}/hard-state.json`,
    load: Effect.succeed(Option.none()),
    save: (hard) =>
      after(0.5 + host.rng.next() * 2, () => Effect.sync(() => host.onPersisted(self, hard))),
  }

  const mesh = {
    self,
    sendNow: (to: string, message: PeerMessage) => {
      if (!alive()) return undefined
      host.onSend(self, to, message)
      host.deliver(self, to, message)
      return undefined
    },
  } as unknown as MeshService<PeerMessage>

  const vipOp = <A>(op: "add" | "remove" | "refresh", value: A) =>
    Effect.suspend(() =>
      after(3 + host.rng.next() * 4, () =>
        Effect.sync(() => {
          host.onVip(self, op)
          return value
        }),
      ),
    )
  const vip = {
    address: "10.0.0.100",
    interface: "sim0",
    acquire: vipOp("add", { added: true, duplicate: null }),
    release: vipOp("remove", true),
    refresh: vipOp("refresh", undefined),
    quiet: Effect.void,
  } as unknown as VipService

  const restart = (): Effect.Effect<RestartResult> =>
    Effect.callback<RestartResult>((resume) => {
      host.restartMysqld(self, (ok) => {
        if (alive())
          resume(
            Effect.succeed(
              ok
                ? { _tag: "Succeeded", attempts: 1, history: [] }
                : { _tag: "Failed", history: [] },
            ),
          )
      })
    })

  const hookRun = (hook: HookName) => {
    const { exitCode, ms } = host.hookResult(self, hook)
    return after(ms, () =>
      Effect.succeed({
        _tag: "Ran",
        hook,
        path: `sim:${hook}`,
        run: exited(exitCode, ms),
      } as HookRunResult),
    )
  }
  const hooks = {
    runBlocking: (event: { readonly hook: HookName }) => hookRun(event.hook),
    enqueue: () => Effect.void,
  } as unknown as HookRunnerService

  const runProcess = (o: {
    readonly args?: ReadonlyArray<string>
  }): Effect.Effect<ProcessRunResult> => {
    const command = o.args?.[1] ?? ""
    if (command === "sim:kill-mysqld") {
      return Effect.sync(() => {
        host.stopMysqldHard(self, "service.kill_command")
        return exited(0, 1)
      })
    }
    if (command === "sim:fence_command") {
      const { exitCode, ms } = host.hookResult(self, "fence_command")
      return after(ms, () => Effect.succeed(exited(exitCode, ms)))
    }
    return Effect.succeed(exited(127, 0))
  }

  const services: ExecutorServices = {
    config: () => options.config,
    log: simLogger(host, self),
    enqueue: (input) => {
      if (alive()) options.enqueue(input)
    },
    hardState,
    mesh,
    prober,
    mysql: { local, at: (e) => remote("socketPath" in e ? self : e.host) },
    vip,
    // Service discovery: the world's simulated etcd (used when config.publishPrimary is set).
    discovery: {
      publish: (term) => {
        if (alive()) host.onDiscovery(self, "publish", term)
      },
      withdraw: (term) => {
        if (alive()) host.onDiscovery(self, "withdraw", term)
      },
    },
    relayIntact: {
      record: (started) => {
        if (alive()) host.onRelayIntact(self, started)
      },
    },
    restart,
    hooks,
    mysqlSettings: (() =>
      Effect.succeed({
        user: "mha",
        password: Redacted.make("sim"),
        connectTimeoutMs: 1_000,
        queryTimeoutMs: QUERY_TIMEOUT_MS,
      })) as unknown as NonNullable<ExecutorServices["mysqlSettings"]>,
    runProcess: runProcess as unknown as NonNullable<ExecutorServices["runProcess"]>,
    fatal: options.fatal,
    operatorReply: (id, reply) => host.operatorReply(self, id, reply),
  }
  const executor = makeExecutor(services)
  return {
    // As the decision loop does (decision-loop.ts): a fiber only for what must wait.
    execute: (outputs, bootId, stillWanted) => {
      const rest = executor.executeNow(outputs, bootId, stillWanted, run)
      if (rest !== undefined) run(rest)
    },
  }
}
