/**
 * The decision core's vocabulary: what comes in (Input), what goes out
 * (Output) and what an agent remembers between steps (AgentState).
 *
 * Contract with the driver (the daemon, or the simulator):
 * - Feed every event as an Input; time (monotonic ms) and randomness enter
 *   only through inputs.
 * - Execute the outputs of one step IN ORDER. `PersistHardState`, `Vip` and
 *   `Mysql` outputs must finish before the next output of the same step
 *   starts (a vote or an acknowledgement comes after the persist it depends
 *   on; "remove VIP, super_read_only=ON, kill sessions" is an order; a
 *   resignation leaves only after the fence). Sends, probes, restarts and
 *   hooks only need to be started; their results come back as inputs.
 * - Each PersistHardState carries the whole hard state. Writes happen in
 *   emission order and an older one never overwrites a newer one (steps
 *   may run their outputs concurrently).
 * - Report completions back as inputs (MysqlDone, VipDone, RestartDone, ...);
 *   MysqlDone and HookDone carry the bootId of the Start that issued them.
 */
import type {
  ClusterRecord,
  ForwardedRequest,
  NodeRole,
  PeerMessage,
  RecordMember,
  VoteKind,
  VoteRequestMessage,
} from "../../../shared/peer-messages.ts"
import type { RecordVersion } from "./cluster-record.ts"
import type { ClusterConfig, MemberConfig } from "./config.ts"
import type { ReplicationCredentials } from "./credentials.ts"
import type { CoreEvent } from "./events.ts"
import type { GtidSet } from "./gtid.ts"
import type { HealthState } from "./health.ts"

// ---------------------------------------------------------------------------
// Durable state (section 4)

export interface HardState {
  readonly term: number
  readonly votedFor: string | null
  readonly record: ClusterRecord
}

// ---------------------------------------------------------------------------
// Observations of MySQL

/** One successful probe of the local mysqld (section 2). */
export interface MysqlProbe {
  readonly serverUuid: string
  readonly readOnly: boolean
  readonly superReadOnly: boolean
  /**
   * @@relay_log_recovery. ON: every mysqld start discards the relay log, so a
   * crash loses what was received and not yet applied. OFF (recommended, with
   * GTID auto-positioning): the relay log survives a mysqld crash. Unknown
   * (undefined) counts as ON.
   */
  readonly relayLogRecovery?: boolean
  /** Status `Uptime` in seconds, when known: a restart resets it. */
  readonly uptimeSeconds?: number
  /** When this mysqld process started, when the agent can tell (relay-intact.ts). */
  readonly started?: MysqldStart
  readonly executed: GtidSet
  /**
   * This server's own commits in flight (its GTIDs in @@gtid_owned): in its
   * binlog, where a replica may already have them, but not yet in `executed`,
   * e.g. a commit waiting for its semi-sync acknowledgement. Absent: none.
   */
  readonly committing?: GtidSet
  /** Null when the server is not configured as a replica. */
  readonly replica: ReplicaStatus | null
  readonly semiSyncSourceOn: boolean
  /**
   * rpl_semi_sync_source_enabled alone (undefined: not probed). Enabled while
   * semiSyncSourceOn is false: the source fell back to asynchronous
   * replication (Rpl_semi_sync_source_status OFF), see semi-sync-fallback.ts.
   */
  readonly semiSyncSourceEnabled?: boolean
  /**
   * rpl_semi_sync_replica_enabled: a runtime setting that a restarted mysqld
   * loses unless its my.cnf sets it, so the agent checks it on every probe.
   */
  readonly semiSyncReplicaOn: boolean
  /**
   * Rpl_semi_sync_source_wait_sessions: commits waiting for an acknowledgement
   * now. Disabling semi-sync as a source would give their clients OK.
   */
  readonly semiSyncWaiters: number
  /**
   * Client sessions stuck in commit other than for an acknowledgement (a full
   * binlog disk), and the longest wait in seconds; undefined when unknown.
   */
  readonly commitWait?: { readonly sessions: number; readonly oldestSeconds: number }
  /** Rpl_semi_sync_source_clients: semi-sync replicas connected now (undefined: not probed). */
  readonly semiSyncClients?: number
  /** rpl_semi_sync_source_wait_for_replica_count (undefined: not probed). */
  readonly semiSyncWaitCount?: number
  /**
   * The heartbeat table's rows (`lag.source: heartbeat_table`), their age on
   * this mysqld's clock; undefined when not read (not configured, or the
   * table is not there yet).
   */
  readonly heartbeats?: ReadonlyArray<LagHeartbeatRow>
}

/** One row of the heartbeat table, as a replica reads it (lag-heartbeat.ts). */
export interface LagHeartbeatRow {
  /** The member whose agent wrote it while primary. */
  readonly member: string
  /** The term it was written in. */
  readonly term: number
  /** UTC_TIMESTAMP(6) - ts on the reading mysqld, in seconds. */
  readonly ageSeconds: number
}

/**
 * When a mysqld process started, on the agent host's clock since boot
 * (/proc/uptime less the server's Uptime), with the host's boot id: what
 * tells one process from the next (relay-intact.ts).
 */
export interface MysqldStart {
  readonly boot: string
  readonly sinceBootSeconds: number
}

export interface ReplicaStatus {
  /** The member it replicates from. */
  readonly source: string
  readonly ioRunning: boolean
  /**
   * Replica_IO_Running "Connecting": configured and retrying the connection by
   * itself every SOURCE_CONNECT_RETRY (test/lab/mysql-adapters.test.ts "... shows
   * Connecting and reconnects by itself"); not running, but no START REPLICA helps.
   */
  readonly ioConnecting?: boolean
  /** Replica_IO_State ("Waiting for disk space", ...); undefined when unknown. */
  readonly ioStatus?: string
  readonly sqlRunning: boolean
  readonly retrieved: GtidSet
  readonly lagSeconds: number | null
  readonly lastError: string | null
  /** Last_IO_Errno (0 or absent: none), e.g. 1045 when the IO thread cannot log in. */
  readonly ioErrno?: number | null
  /** Source_UUID (absent or empty before the IO thread first connected): names the source when Source_Host is not the config's address. */
  readonly sourceUuid?: string
}

/** A privilege the agent's MySQL user lacks, and the actions that need it. */
export interface MissingPrivilege {
  readonly privilege: string
  readonly neededBy: ReadonlyArray<string>
  /** The local probe needs it: without it every probe fails though mysqld runs. */
  readonly forProbe?: boolean
}

/** The outcome of one check of the agent's MySQL grants against what its actions need. */
export type PrivilegeCheckResult =
  | {
      readonly _tag: "Checked"
      /** CURRENT_USER(), e.g. `mha@%`. */
      readonly user: string
      readonly missing: ReadonlyArray<MissingPrivilege>
    }
  | { readonly _tag: "Failed"; readonly reason: string }

/**
 * The agent's MySQL privileges as last checked. A node that could not carry
 * out a promotion must never stand (issue 10 item 3): until a check
 * succeeded, and while one is missing, it does not stand (it still votes).
 */
export interface PrivilegeState {
  /** What the last successful check found missing; null until a check succeeded. */
  readonly missing: ReadonlyArray<MissingPrivilege> | null
  readonly user: string | null
  readonly checkedAt: number | null
  /** A check is running (one at a time). */
  readonly inFlight: boolean
  /** When the next check is due (at start, after mysqld came back, on reload, periodically). */
  readonly dueAt: number
  /** Why the last check failed, while it keeps failing. */
  readonly lastError: string | null
}

export type LocalProbeResult =
  | { readonly _tag: "Up"; readonly mysql: MysqlProbe }
  /**
   * `hung`: the probe got no answer in time (connect or query timeout: a
   * server that accepts TCP but does not answer, such as a SIGSTOPped or
   * wedged mysqld), as opposed to refused or failed with an error.
   */
  | { readonly _tag: "Down"; readonly reason: string; readonly hung: boolean }

// ---------------------------------------------------------------------------
// Actions on MySQL, executed by the driver on the local mysqld unless noted.

export type MysqlAction =
  /**
   * `SET GLOBAL super_read_only = ON` (implies read_only), killing client
   * sessions that hold it up. `until`: what happens when it has not completed
   * within fence_timeout. "pending": it stays pending (an aborted SET puts
   * the old value back) and the action fails, for a node that must not be
   * writable: the core then stops mysqld hard. "abort": aborted, the server
   * as it was, for a switchover that rolls back.
   */
  | { readonly _tag: "Fence"; readonly until: "pending" | "abort" }
  /** Kill every client session (not replication or system threads). */
  | { readonly _tag: "KillSessions" }
  /** `super_read_only = OFF, read_only = OFF`: only the lease holder does this. */
  | { readonly _tag: "MakeWritable" }
  | { readonly _tag: "StopReplicaIo" }
  /** `STOP REPLICA; RESET REPLICA ALL`. */
  | { readonly _tag: "ResetReplicaAll" }
  /** `CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION=1 ...; START REPLICA`. */
  | { readonly _tag: "ReplicateFrom"; readonly source: string }
  | { readonly _tag: "StartReplica" }
  /** `WAIT_FOR_EXECUTED_GTID_SET(gtids, timeout)`: fails on timeout. */
  | { readonly _tag: "WaitForExecuted"; readonly gtids: GtidSet; readonly timeoutMs: number }
  /**
   * Over the network, on another member's mysqld: `WAIT_FOR_EXECUTED_GTID_SET(gtids,
   * timeout)`. Fails on timeout, or when that mysqld cannot be reached.
   */
  | {
      readonly _tag: "WaitForExecutedAt"
      readonly target: string
      readonly gtids: GtidSet
      readonly timeoutMs: number
    }
  /**
   * Reads Retrieved_Gtid_Set now (the IO thread is stopped) and waits until it
   * is executed: `WAIT_FOR_EXECUTED_GTID_SET(retrieved, timeout)`. Fails on timeout.
   */
  | { readonly _tag: "WaitForRelayLog"; readonly timeoutMs: number }
  | {
      readonly _tag: "SetSemiSync"
      readonly source: boolean
      readonly replica: boolean
      readonly waitForReplicaCount: number
    }
  /** Commit one empty transaction per GTID (errant-gtid --fix, on the primary). */
  | { readonly _tag: "InjectEmpty"; readonly gtids: GtidSet }
  /** Over the network, on another member's mysqld: super_read_only=ON, kill sessions. */
  | {
      readonly _tag: "FenceRemote"
      readonly target: string
      /**
       * Started, not awaited: the outputs after it in the step do not wait for it (a
       * promotion that does not wait for the fence of an unreachable old primary, issue 13).
       */
      readonly background?: boolean
    }
  /**
   * Waits up to `timeoutMs` until no client session runs a statement or holds
   * an open transaction (not system, replication or agent sessions); never
   * fails: what is left is killed by the fence that follows.
   */
  | { readonly _tag: "DrainSessions"; readonly timeoutMs: number }
  /**
   * `SET GLOBAL clone_valid_donor_list`, `CLONE INSTANCE FROM user@donor`: re-seeds the
   * local mysqld from `donor` (read_only stays ON); done once mysqld is back after the
   * restart that the clone causes. Fails with MySQL's error.
   */
  | { readonly _tag: "Clone"; readonly donor: string }

export type HookName =
  | "on_failure_detected"
  | "pre_failover"
  | "post_failover"
  | "post_unsuccessful_failover"
  | "pre_switchover"
  | "post_switchover"
  | "on_fence"
  | "on_role_change"
  | "on_split_brain"
  | "on_lag_threshold_exceeded"
  | "on_lag_recovered"
  | "on_writes_blocked"
  | "on_writes_unblocked"
  | "on_semi_sync_fallback"
  | "on_semi_sync_restored"
  | "fence_command"

/**
 * "quiet": keep the address but announce it no more (cancel a gratuitous ARP burst still
 * pending from its acquire): an old primary keeping the VIP for a make-before-break
 * handover must not pull clients back from the new primary (vip-handover.ts).
 */
export type VipOp = "add" | "remove" | "refresh" | "quiet"

// ---------------------------------------------------------------------------
// Operator requests (the CLI, through the daemon's control socket)

/**
 * What an operator can ask of the core: the control socket's requests that
 * the core runs (Switchover, Failover, Pause, Resume, Exclude, Include,
 * AckRecovery, Rejoin, Demote, Clone, FixErrant: the same shapes travel over
 * the mesh when they run on another member, see ForwardedRequest in
 * shared/peer-messages.ts), and the daemon's graceful stop.
 */
export type OperatorRequest =
  | ForwardedRequest
  /** Graceful stop of the agent (section 14). */
  | { readonly _tag: "Shutdown" }
  /**
   * Membership change, one member at a time (members.ts): run on the ACTIVE
   * primary's agent only, never forwarded (a peer of protocol 1.2 could not decode it).
   */
  | { readonly _tag: "MemberAdd"; readonly member: RecordMember }
  | { readonly _tag: "MemberRemove"; readonly node: string }

// ---------------------------------------------------------------------------
// Inputs

export type Input =
  /** The agent (re)started: the hard state read from disk, null on a fresh node. */
  | {
      readonly _tag: "Start"
      readonly now: number
      readonly hard: HardState | null
      readonly bootId: string
      readonly random: number
      /** Wall-clock epoch ms at `now` (for history times); the sim leaves it out. */
      readonly wallClock?: number
      /** The mysqld process an earlier run recorded as holding all it received (relay-intact.ts). */
      readonly relayIntact?: MysqldStart | null
    }
  /** Timer tick; `random` in [0, 1) drives election timeout jitter. */
  | { readonly _tag: "Tick"; readonly now: number; readonly random: number }
  /** The answer to local probe number `probe` of the decision loop's run `incarnation` (local-probes.ts). */
  | {
      readonly _tag: "LocalProbed"
      readonly now: number
      readonly incarnation: string
      readonly probe: number
      readonly result: LocalProbeResult
    }
  /** Probe of the current primary's mysqld from this host (connect + SELECT 1). */
  | {
      readonly _tag: "PrimaryProbed"
      readonly now: number
      readonly target: string
      readonly reachable: boolean
      readonly superReadOnly: boolean | null
    }
  | {
      readonly _tag: "PeerReceived"
      readonly now: number
      /** From the TLS certificate, not from the message. */
      readonly from: string
      readonly message: PeerMessage
    }
  | {
      readonly _tag: "MysqlDone"
      readonly now: number
      /**
       * The bootId of the Start whose run issued the action. Ids start at 1
       * again when the decision loop restarts while old actions still run:
       * a completion of another incarnation is not this run's.
       */
      readonly incarnation: string
      readonly id: number
      readonly ok: boolean
      readonly error: string | null
    }
  | {
      readonly _tag: "VipDone"
      readonly now: number
      readonly op: VipOp
      readonly ok: boolean
      /** What the adapter said when it failed (logged by the core). */
      readonly error?: string
    }
  /** The answer to a CheckPrivileges output. */
  | {
      readonly _tag: "PrivilegesChecked"
      readonly now: number
      readonly result: PrivilegeCheckResult
    }
  | { readonly _tag: "RestartDone"; readonly now: number; readonly ok: boolean }
  /** Hard state number `seq` of the run `incarnation` (and every one before it) is on disk. */
  | {
      readonly _tag: "Persisted"
      readonly now: number
      readonly incarnation: string
      readonly seq: number
    }
  /** Hard state number `seq` could not be written. */
  | {
      readonly _tag: "PersistFailed"
      readonly now: number
      readonly incarnation: string
      readonly seq: number
      readonly error: string
    }
  | {
      readonly _tag: "HookDone"
      readonly now: number
      /** As for MysqlDone: the bootId of the run that started the hook. */
      readonly incarnation: string
      readonly id: number
      readonly exitCode: number
    }
  | {
      readonly _tag: "Operator"
      readonly now: number
      readonly requestId: number
      readonly request: OperatorRequest
    }
  /**
   * The config was reloaded (SIGHUP, `mha-agent reload`): timings, health
   * thresholds and policies apply from now on. Members and identity never
   * change here (the daemon refuses such a reload).
   */
  | {
      readonly _tag: "Reconfigure"
      readonly now: number
      readonly config: ClusterConfig
      /** The password files whose content changed (never the passwords themselves). */
      readonly changedSecrets?: ReadonlyArray<"monitor" | "replication">
    }

// ---------------------------------------------------------------------------
// Outputs

export type LogLevel = "info" | "warn" | "error"

export type Output =
  /**
   * Write the hard state, then report `Persisted` (or `PersistFailed`) with
   * its number: the messages that depend on it leave only then (durability.ts).
   */
  | { readonly _tag: "PersistHardState"; readonly hard: HardState; readonly seq: number }
  | { readonly _tag: "Send"; readonly to: string; readonly message: PeerMessage }
  /** The agent must exit: its service manager restarts it from the hard-state file. */
  | { readonly _tag: "Halt"; readonly reason: string }
  | { readonly _tag: "Mysql"; readonly id: number; readonly action: MysqlAction }
  | { readonly _tag: "Vip"; readonly op: VipOp }
  /**
   * Service discovery (etcd, discovery.ts): keep this node published as the
   * primary of `term` until a WithdrawPrimary. The driver performs both at
   * once, without waiting for the outputs before them, and never lets them
   * hold anything up (an unreachable registry must not slow a failover).
   */
  | { readonly _tag: "PublishPrimary"; readonly term: number }
  | { readonly _tag: "WithdrawPrimary"; readonly term: number }
  /**
   * One heartbeat row (lag-heartbeat.ts), written by the primary of `term` on
   * its own connection; the driver never waits for it (it may wait for a
   * semi-sync acknowledgement) and skips it while the previous one runs.
   */
  | { readonly _tag: "WriteLagHeartbeat"; readonly term: number }
  /**
   * Record this mysqld process as holding everything it received (relay-intact.ts),
   * in a file beside the hard state; the driver never waits for it, and a failed
   * write only costs the next agent start a resync.
   */
  | { readonly _tag: "RecordRelayIntact"; readonly started: MysqldStart }
  | { readonly _tag: "RestartMysqld"; readonly attempt: number }
  /** SIGKILL of the local mysqld (`service.kill_command`): the fence's escalation. */
  | { readonly _tag: "KillMysqld"; readonly reason: string }
  | {
      readonly _tag: "RunHook"
      readonly id: number
      readonly hook: HookName
      readonly env: Readonly<Record<string, string>>
    }
  /** Numbered, so that its answer is known for what it is (local-probes.ts). */
  | { readonly _tag: "ProbeLocal"; readonly probe: number }
  | { readonly _tag: "ProbePrimary"; readonly target: string }
  /** SHOW GRANTS on the local mysqld against the privileges the agent's actions need. */
  | { readonly _tag: "CheckPrivileges" }
  /** Something worth a log line and a place in `status`; always says why (events.ts). */
  | ({ readonly _tag: "Event"; readonly level: LogLevel; readonly reason: string } & CoreEvent)
  | {
      readonly _tag: "OperatorReply"
      readonly requestId: number
      readonly ok: boolean
      readonly message: string
      /** The member that answered, when the request was forwarded over the mesh. */
      readonly answeredBy?: string
      /** Dry runs: every check and step, in order. */
      readonly steps?: ReadonlyArray<string>
    }

// ---------------------------------------------------------------------------
// State

/** The role's name as status, logs and operators see it (roleName in roles.ts maps the tag). */
export type RoleName = "follower" | "pre-candidate" | "candidate" | "leader"

/**
 * The agent's role in its term, with what only that role carries (issue 11
 * item 6). Each variant is built by one `become...` of roles.ts, which leaves
 * behind what the role entered does not carry. Read through the accessors
 * of roles.ts (leaderOf, electionOf, promotionOf, ...) or match on `_tag`.
 */
export type RoleState = Follower | PreCandidate | Candidate | Leader

/** Follows `leader` of `hard.term` (null: nobody, or still unknown). */
export interface Follower {
  readonly _tag: "Follower"
  /** The leader of `hard.term` this agent believes in. */
  readonly leader: string | null
  /** That leader announced that its promotion finished. */
  readonly leaderActive: boolean
}

/** Asks whether peers would elect it: its term does not change, so it still follows its leader. */
export interface PreCandidate {
  readonly _tag: "PreCandidate"
  readonly leader: string | null
  readonly leaderActive: boolean
  readonly election: Election
}

/** Stands for `election.term` (its own vote persisted): it follows nobody. */
export interface Candidate {
  readonly _tag: "Candidate"
  readonly election: Election
}

/** Leads `hard.term`: its own leader, with a lease and, once begun, its promotion. */
export interface Leader {
  readonly _tag: "Leader"
  /** Its promotion finished (recordActive): it is ACTIVE. */
  readonly leaderActive: boolean
  readonly lease: LeaderLease
  /** Begun by promotion.ts beginPromotion right after becomeLeader; null only in between. */
  readonly promotion: Promotion | null
  readonly switchover: Switchover | null
}

/** What this agent knows about a peer, from its heartbeats. */
export interface PeerView {
  readonly lastHeardAt: number
  readonly term: number
  readonly leader: string | null
  readonly active: boolean
  readonly role: NodeRole | null
  readonly mysqlUp: boolean
  readonly serverUuid: string | null
  readonly writable: boolean
  readonly executed: GtidSet
  /** retrieved ∪ executed */
  readonly received: GtidSet
  readonly source: string | null
  readonly replicating: boolean
  readonly replicationError: string | null
  readonly backlog: number
  /** Replication lag the peer last probed, in seconds; null when unknown or not a replica. */
  readonly lagSeconds: number | null
  readonly errant: boolean
  readonly healthy: boolean
  readonly eligible: boolean
  readonly probedPrimary: string | null
  readonly primaryReachable: boolean | null
  readonly primaryFenced: boolean | null
  /** Local time at which the peer last heard each other member (indirect evidence). */
  readonly heardOthersAt: ReadonlyMap<string, number>
  /**
   * Since when (local time) the peer, no longer claiming to lead, has reported
   * its mysqld quiet: it can release no commit waiting for an acknowledgement
   * (section 7). Null (or absent) when it did not in its last heartbeat.
   */
  readonly quietSince?: number | null
  /** Raw GTID texts, kept to skip parsing when they did not change. */
  readonly executedText: string
  readonly retrievedText: string
  /** The peer is the primary and says its writes are blocked (the words), else null. */
  readonly writesBlocked?: string | null
  /** The peer is the primary and says its semi-sync fell back to asynchronous (the words), else null. */
  readonly semiSyncFallback?: string | null
  /** As a switchover's target it stands on a probe of its own (Heartbeat.standsOnOwnProbe); absent: it does not. */
  readonly standsOnOwnProbe?: boolean
  /**
   * The version of the cluster record the peer reported in its last heartbeat
   * (Heartbeat.recordVersion, protocol 1.4); null or absent when it reported
   * none (an older agent): it gets the record in every heartbeat (heartbeat.ts).
   */
  readonly recordVersion?: RecordVersion | null
}

/** The local mysqld as the agent last saw it. */
export interface LocalNode {
  readonly probe: MysqlProbe | null
  readonly up: boolean
  readonly health: HealthState
  readonly lastProbeAt: number | null
  /** Last known retrieved ∪ executed, kept while mysqld is down (for votes). */
  readonly received: GtidSet
  readonly executedText: string
  readonly retrievedText: string
  readonly errant: GtidSet
  /**
   * The replica's mysqld went down: a restart with relay_log_recovery drops
   * relay logs that may hold the only copy of acknowledged transactions.
   * Until it has caught up with the active primary again it neither stands
   * nor vouches for its data in a vote.
   */
  readonly resyncNeeded: boolean
  /** Local time from which the primary's reported gtid_executed counts for the resync. */
  readonly resyncSince: number
  /**
   * mysqld went down with relay_log_recovery OFF: what it had received then.
   * The relay log should survive a mysqld crash; the first probe after it
   * comes back checks that it still holds all of it (else: resync).
   */
  readonly keptCheck: GtidSet | null
  /**
   * The mysqld process last recorded as holding everything it received
   * (relay-intact.ts), and what an earlier run recorded, checked against the
   * first probe that answers after the agent started (then null).
   */
  readonly relayIntact: {
    readonly recorded: MysqldStart | null
    readonly atStart: MysqldStart | null
  }
  /**
   * An outage of the probes: when the last good probe was taken, the
   * mysqld's uptime then, and whether a resync was needed before it. A
   * mysqld that only stopped answering (its IO thread stuck on a full disk
   * blocks the probe queries) did not restart and lost nothing: when it
   * answers again with an uptime that ran on, the resync the outage began is
   * dropped.
   */
  readonly outage: {
    readonly lastUpAt: number
    readonly uptimeSeconds: number
    readonly resyncBefore: boolean
  } | null
  /**
   * Why replication cannot make progress, seen in the probe (the IO thread
   * waits for disk space): health is CRITICAL while it lasts, the node does
   * not stand, and it cannot freeze for a vote. Null when none.
   */
  readonly stall: string | null
  /**
   * The primary's gtid_executed as first seen at `at`: the replica's real
   * lag is the age of the oldest such mark it has not executed yet
   * (Seconds_Behind_Source stays 0 when the IO thread is stuck).
   */
  readonly mark: { readonly set: GtidSet; readonly at: number } | null
  /** A vote freeze (STOP REPLICA IO_THREAD) timed out and has not ended yet. */
  readonly freezeStuck: boolean
  readonly diverged: boolean
  /** The operator ran `rejoin --force`: replicate from the primary despite errant transactions. */
  readonly rejoinForced: boolean
  /** The operator ran `rejoin` (or `demote`): replicate from the primary even with auto_rejoin off. */
  readonly rejoinRequested: boolean
  /** The replication credentials the channel holds: re-applied on a changed file, rejoin, 1045. */
  readonly credentials: ReplicationCredentials
  /** The VIP as the last VipDone reported it, and the operation in flight. */
  readonly vip: { readonly held: boolean | "unknown"; readonly pending: VipOp | null }
  /**
   * Replication lag above the health lag threshold (on_lag_threshold_exceeded
   * ran), and good probes in a row below it since (on_lag_recovered after
   * `successesToRecover` of them).
   */
  readonly lag: { readonly exceeded: boolean; readonly belowStreak: number }
  readonly privileges: PrivilegeState
  /** When the periodic probe not answered yet was sent (null: none outstanding). */
  readonly probeSentAt: number | null
  /**
   * The latest miss was a probe that got no answer in time (late or timed
   * out): mysqld is hung, so a restart must kill it first (a graceful stop
   * would wait behind the hung process).
   */
  readonly hung: boolean
  /** The last failed probe was refused (ECONNREFUSED, ENOENT): no mysqld listens. */
  readonly refused?: boolean
}

/** A heartbeat round of the leader's, until a quorum acknowledged it or a newer one. */
export interface LeaseRound {
  readonly sentAt: number
  readonly acks: ReadonlySet<string>
}

export interface LeaderLease {
  /** The rounds that may still extend the lease (lease.ts). */
  readonly rounds: ReadonlyMap<number, LeaseRound>
  readonly validUntil: number
  /** Set when this leader fenced itself for lack of a lease. */
  readonly fencedAt: number | null
}

export interface LeasePromise {
  readonly leader: string
  readonly term: number
  readonly until: number
}

export interface Election {
  readonly kind: VoteKind
  readonly phase: "pre" | "vote"
  readonly term: number
  readonly granted: ReadonlySet<string>
  readonly records: ReadonlyArray<ClusterRecord>
  readonly deadline: number
  readonly resentAt: number | null
  /** When this node judged the election necessary (failure detected, transfer requested). */
  readonly triggeredAt: number
  /** Why, for the history. */
  readonly reason: string
}

export type PromotionStep =
  | "fence-old-primary"
  | "fence-command"
  | "pre-failover"
  | "apply-relay-log"
  | "read-gtids"
  | "commit-record"
  | "await-lease"
  | "reset-replica"
  | "semi-sync"
  | "make-writable"
  | "done"

export interface Promotion {
  readonly term: number
  readonly kind: Election["kind"]
  readonly step: PromotionStep
  readonly oldPrimary: string | null
  /** The outstanding action or hook of the current step. */
  readonly waitingFor: number | null
  /** read-gtids: the probe sent on entering the step; its answer (or a later one) is read. */
  readonly freshFrom: number | null
  readonly stepDeadline: number
  readonly startedAt: number
  /** From the election: when and why it was triggered (for the history). */
  readonly triggeredAt: number
  readonly reason: string
}

export interface RecordProposal {
  readonly record: ClusterRecord
  readonly acks: ReadonlySet<string>
  readonly lastSentAt: number
}

/**
 * The restart routine of section 12. A run lasts from a failure of mysqld
 * (health FAIL, down) until mysqld has answered every probe for
 * `restartStableMs`: only then did the restart succeed. Failures are
 * remembered across runs for the `restartWindowMs` bound.
 */
export interface RestartRoutine {
  /** Restart commands issued in the current run. */
  readonly attempts: number
  readonly inFlight: boolean
  /** When the current run of restarts must have brought mysqld back (-1: held on a replica). */
  readonly deadline: number | null
  /** Past a bound: no more restarts by the agent, and no standing for election, until the run ends. */
  readonly gaveUp: boolean
  /** A run is open: mysqld failed and has not yet stayed up for restartStableMs. */
  readonly running: boolean
  /** In a run, since when mysqld has answered every probe (null: not up since its last miss). */
  readonly upSince: number | null
  /** In a run, mysqld was seen up since the last failure counted: going down again is a new failure. */
  readonly back: boolean
  /** When mysqld failed, oldest first: the last restartAttempts + 1, all the window bound needs. */
  readonly failures: ReadonlyArray<number>
  /** When the restart command in flight (or the last one) was issued. */
  readonly issuedAt?: number
}

/** The switchover target's executed set as a heartbeat brought it, with its local arrival time. */
export interface TargetSample {
  readonly at: number
  readonly executed: GtidSet
}

interface SwitchoverCommon {
  readonly requestId: number
  readonly to: string
  readonly requestedAt: number
  /** Wait this long for client sessions to finish before the fence (0: none). */
  readonly drainTimeoutMs: number
  /** Why, for the history. */
  readonly reason: string
  /** The agent is stopping (section 14): a refusal or rollback fences and resigns instead. */
  readonly resignIfRefused: boolean
}

/**
 * A planned switchover on the primary, by phase. Before the fence
 * ("converging", "pre-hook") the node stays writable with the VIP; from
 * "fencing" on it is fenced. `deadline` bounds each stretch: converging
 * within switchover_timeout of the request (then refuse, nothing blocked),
 * the rest within switchover_timeout of the end of converging (then roll back).
 */
export type Switchover =
  /**
   * Unfenced: waiting until the target could apply what it still lacks
   * within the block budget, estimated from its apply rate between heartbeats.
   */
  | (SwitchoverCommon & {
      readonly phase: "converging"
      readonly deadline: number
      /** The last heartbeat sample that counted, and the apply rate (transactions per ms) it gave. */
      readonly last: TargetSample | null
      readonly rate: number | null
    })
  | (SwitchoverCommon & {
      readonly phase: "pre-hook" | "fencing"
      readonly deadline: number
      readonly waitingFor: number
    })
  /**
   * Fenced: `target` is what this node executed, from the first probe after the fence (null
   * until then). `asked`: the id of the wait on the target's mysqld for `target` (null until
   * the probe); whichever says first that the target has it, that wait or a heartbeat, counts.
   */
  | (SwitchoverCommon & {
      readonly phase: "catch-up"
      readonly deadline: number
      readonly target: GtidSet | null
      readonly asked: number | null
    })
  | (SwitchoverCommon & {
      readonly phase: "transferring"
      readonly deadline: number
      readonly target: GtidSet
    })

/**
 * Commits that do not progress on this node's mysqld (commit-stall.ts): seen
 * since `since` with gtid_executed at `executed`.
 */
export interface CommitStall {
  readonly since: number
  readonly executed: GtidSet
  /** Why, as status and the log say it. */
  readonly cause: string
  /** This node gave up its term for it: it stands for no election until its server commits again. */
  readonly resigned: boolean
}

/**
 * What an action with an id (Mysql, RunHook) was issued for: its completion
 * (MysqlDone, HookDone) goes back to this routine (completions.ts matches it
 * exhaustively). Completions of an earlier run of the decision loop are
 * dropped by their incarnation before they get here (reducer.ts), and a
 * restart empties `inFlight`: every purpose here is of the current run.
 */
export type ActionPurpose =
  /** A step of the promotion plan of `term` (promotion.ts): its action or hook. */
  | { readonly _tag: "Promotion"; readonly term: number }
  /** STOP REPLICA IO_THREAD as this node stands for `term` (election.ts). */
  | { readonly _tag: "Revoke"; readonly term: number }
  /** STOP REPLICA IO_THREAD before granting a vote for `term` (election.ts). */
  | { readonly _tag: "VoteFreeze"; readonly term: number }
  /** pre_switchover and the switchover's fence (switchover.ts). */
  | { readonly _tag: "Switchover" }
  | { readonly _tag: "DrainSessions" }
  | { readonly _tag: "SwitchoverKillSessions" }
  /** The wait on the target's mysqld for the fenced primary's GTIDs (switchover.ts). */
  | { readonly _tag: "SwitchoverCatchUp" }
  /** A self-fence or an operator's fence and its session kill (fencing.ts, operator.ts). */
  | { readonly _tag: "Fence" }
  | { readonly _tag: "KillSessions" }
  /** The guard's unfence of a lease holder, semi-sync as a source first (fencing.ts). */
  | { readonly _tag: "MakeWritable" }
  | { readonly _tag: "SemiSyncSource" }
  /** Repointing and starting replication, semi-sync as a replica (replication.ts). */
  | { readonly _tag: "Replication" }
  | { readonly _tag: "SemiSync" }
  /** The clone routine's fence, reset and CLONE (clone.ts). */
  | { readonly _tag: "CloneFence" }
  | { readonly _tag: "CloneReset" }
  | { readonly _tag: "Clone" }
  /** The operator's fix-errant (operator.ts). */
  | { readonly _tag: "FixErrant" }
  /** A hook nobody waits for (on_fence, post_failover, ...). */
  | { readonly _tag: "Hook" }

/**
 * What the next local probe is awaited for: a finished action (its purpose)
 * or a command without an id (KILL -9 of mysqld by the fence's escalation,
 * a restart of mysqld).
 */
export type AwaitedEffect = ActionPurpose["_tag"] | "KillMysqld" | "Restart"

export interface AgentState {
  readonly self: string
  readonly config: ClusterConfig
  readonly started: boolean
  readonly bootId: string
  readonly now: number
  readonly hard: HardState
  /**
   * The role and what only it carries (roles.ts). What stays below spans roles,
   * or outlives the role that set it:
   * - the vote a voter waits to grant (`pendingVote`), its promise and consent
   *   (`promise`, `transferConsent`), the election clock (`electionDueAt`, and
   *   `electionArmedAt`, kept across rounds), a forced failover or a transfer it
   *   waits to stand for (`forcedFailover`, `transferStanding`): a follower's and
   *   a pre-candidate's alike;
   * - what an old primary keeps as a follower after its leadership ended
   *   (`handedOver`, `vipHandover`, `resignedTerm`, `reclaimTried`);
   * - what follows the local mysqld, the VIP and the registry rather than the
   *   role (`writesBlocked`, `semiSyncFallback`, `commitStall`, `lagHeartbeatAt`,
   *   `nextGarpRefreshAt`, `published`): their routines clear them when the node
   *   stops being writable, which a fenced leader is too.
   */
  readonly role: RoleState
  readonly local: LocalNode
  /** Last probe of the primary's mysqld from here. */
  readonly primaryProbe: {
    readonly target: string
    readonly reachable: boolean
    readonly fenced: boolean
    readonly at: number
  } | null
  readonly peers: ReadonlyMap<string, PeerView>
  readonly round: number
  readonly nextHeartbeatAt: number
  readonly nextProbeAt: number
  readonly promise: LeasePromise | null
  /** When the election timeout fires, null while no election is allowed. */
  readonly electionDueAt: number | null
  readonly proposal: RecordProposal | null
  /** The highest record this agent knows to be committed by a quorum. */
  readonly committed: { readonly term: number; readonly seq: number }
  readonly restart: RestartRoutine
  /** A consented leadership transfer: who may collect votes while we are in lease. */
  readonly transferConsent: { readonly to: string; readonly term: number } | null
  /** The leader of this term resigned: replicas may elect without a lease wait. */
  readonly resignedTerm: number
  /** Local time until which the anti-flap block holds for `hard.record.lastFailoverTerm`. */
  readonly recoveryBlock: { readonly term: number; readonly until: number } | null
  /** Actions in flight: id -> purpose, so completions reach the right routine (completions.ts). */
  readonly inFlight: ReadonlyMap<number, ActionPurpose>
  /**
   * Finished actions (by purpose) and local commands whose effect no local
   * probe has shown yet, each with the first probe number sent after it: an
   * answer to that probe or a later one clears it (local-probes.ts).
   */
  readonly awaitingProbe: ReadonlyMap<AwaitedEffect, number>
  /** The local probes asked for and answered, by number (local-probes.ts). */
  readonly probes: LocalProbes
  readonly nextId: number
  /** Operator requests answered once their record change commits. */
  /** A vote waiting for this replica's IO thread to stop and a fresh probe (section 9 step 3). */
  readonly pendingVote: {
    readonly request: VoteRequestMessage
    readonly stopped: boolean
    readonly since: number
    /** The first probe sent after the IO thread was seen stopped: only its answer or a later one counts. */
    readonly freshFrom: number
  } | null
  /** Since when the failback target has been ready (section 13). */
  readonly failbackSince: number | null
  /** A restarted recorded primary tries once to reclaim leadership before it fences. */
  readonly reclaimTried: boolean
  readonly pendingOperator: ReadonlyArray<{ readonly requestId: number; readonly seq: number }>
  /** Operator requests forwarded over the mesh, both ways. */
  readonly forwarding: Forwarding
  /** Wall-clock epoch ms minus `now` (history times); 0 when unknown. */
  readonly wallClockOffset: number
  /** Hard states emitted and known written, and the messages held until theirs is (durability.ts). */
  readonly durability: Durability
  /** When the election clock was armed (the failure was judged), for the history. */
  readonly electionArmedAt: number | null
  /** `clone` on this node: re-seeding (`cloning`), then rejoining until it is a STANDBY. */
  readonly clone: Clone | null
  /**
   * This node's pre_failover hook refused (or timed out) its promotion: it does not
   * stand again until a primary is ACTIVE, the operator runs ack-recovery, or `until`.
   */
  readonly preFailoverRefused: {
    readonly term: number
    readonly until: number
    readonly reason: string
  } | null
  /** The primary failure on_failure_detected last ran for ("primary@record term.seq"). */
  readonly failureSeen: string | null
  /** A forced failover to this node asked `from` (the live primary) to resign; until then it waits. */
  readonly forcedFailover?: { readonly from: string; readonly until: number } | null
  /**
   * The peer this node was repointed to while standing, to fetch what it lacked
   * (catch-up.ts); undefined or null: none. Should that peer win, replication.ts
   * still judges the node against it as on any repoint (errant, DIVERGED).
   */
  readonly catchingUpFrom?: string | null
  /** This primary resigned for `to` at the operator's request: it does not stand until `until`. */
  readonly handedOver?: { readonly to: string; readonly until: number } | null
  /** Commits stuck on the local mysqld (undefined: none seen). */
  readonly commitStall?: CommitStall | null
  /**
   * What on_role_change compares with: the role state last seen (null before the
   * first probe), the last ACTIVE primary known, and the one before it.
   */
  readonly roleSeen: {
    readonly role: NodeRole
    readonly primary: string | null
    readonly former: string | null
  } | null
  /** This primary's commits cannot get their semi-sync acknowledgements (writes-blocked.ts). */
  readonly writesBlocked?: WritesBlocked | null
  /** This primary's semi-sync fell back to asynchronous replication (semi-sync-fallback.ts). */
  readonly semiSyncFallback?: SemiSyncFallback | null
  /** A primary resigned: send a heartbeat right after the next local probe (resignation.ts). */
  readonly freshViewWanted?: boolean
  /** The VIP this old primary keeps, fenced, for a make-before-break handover (vip-handover.ts). */
  readonly vipHandover?: VipHandover | null
  /** When the VIP's holder announces it again (vip-refresh.ts); null while it holds none. */
  readonly nextGarpRefreshAt?: number | null
  /** The term this node last asked to be published as primary for, until withdrawn (discovery.ts). */
  readonly published?: { readonly term: number } | null
  /** When this primary last asked for a heartbeat row (lag-heartbeat.ts); null or absent: never. */
  readonly lagHeartbeatAt?: number | null
  /** Handed the primary role by a switchover: standing once a fresh probe is in (transfer-standing.ts). */
  readonly transferStanding?: TransferStanding | null
  /**
   * The config file's members, kept when the record's list counts instead
   * (members.ts); absent: `config.members` are the file's.
   */
  readonly fileMembers?: ReadonlyArray<MemberConfig>
  /** A membership change this primary is making, until committed (member-change.ts). */
  readonly memberChange?: MemberChangeInProgress | null
  /**
   * Data members this primary removed that may still acknowledge its commits
   * (their mysqld may still replicate from it): each raises the strict wait
   * count by one until it is seen to have left (members.ts wantedWaitCount).
   */
  readonly removedNotLeft?: ReadonlyArray<string>
  /** This node's accepted member list leaves it out, and it said so (member-change.ts). */
  readonly removedNoticed?: boolean
  /** The record version whose member list the config file was last said to disagree with. */
  readonly membersStaleWarned?: string | null
}

/**
 * A membership change of this primary (member-change.ts): `raising`, the
 * strict wait count is being raised to what the new list needs before the
 * record is proposed; `proposed`, the record carrying the new list is out,
 * until committed. `before`: how many members counted before it; `record`:
 * the version with the new list; the operator request answered once committed.
 */
export interface MemberChangeInProgress {
  readonly phase: "raising" | "proposed"
  /** When the change started (a raise that does not show within the switchover timeout gives up). */
  readonly since: number
  readonly before: number
  /** The wait count the list after it needs (its strays included): raised to before proposing. */
  readonly raiseTo: number
  readonly record: ClusterRecord
  readonly requestId: number
  readonly what: string
}

/**
 * A transfer to this node that waits for a probe of its own mysqld taken
 * after the transfer arrived: `answers` probe answers still to come (the one
 * asked for, and one in flight before it), at the latest until `deadline`.
 */
export interface TransferStanding {
  readonly from: string
  readonly term: number
  readonly reason: string
  readonly triggeredAt: number
  /** The probe asked for on consent: the node stands once it (or a later one) answered. */
  readonly freshFrom: number
  readonly deadline: number
}

/** Local probes by number (local-probes.ts). */
export interface LocalProbes {
  /** The number the next probe carries. */
  readonly next: number
  /** Probes sent and not yet answered: number -> when sent. */
  readonly outstanding: ReadonlyMap<number, number>
  /** The newest probe answered (0: none). */
  readonly answered: number
  /** When the newest answered probe was sent: its data is at least this recent. */
  readonly takenAt: number | null
}

/**
 * Seen on the writable primary's own probe, semi-sync "on" or "strict":
 * rpl_semi_sync_source_enabled but Rpl_semi_sync_source_status OFF, so
 * commits no longer wait for any replica. `reported` once it lasted the grace period.
 */
export interface SemiSyncFallback {
  readonly needed: number
  readonly connected: number
  readonly since: number
  readonly reported: boolean
}

/**
 * The old primary of `term`, fenced (super_read_only, or its mysqld refuses
 * connections), keeps the VIP until a primary of a later term announced
 * itself and had time to take it, or `until` at the latest.
 */
export interface VipHandover {
  readonly term: number
  readonly until: number
  /** The later primary's announce was seen: `until` is already shortened. */
  readonly announced: boolean
}

/**
 * Seen on the writable primary's own probe: fewer semi-sync replicas connected
 * than `rpl_semi_sync_source_wait_for_replica_count`, with semi-sync on as a
 * source, so every commit waits. `reported` once it lasted the grace period.
 */
export interface WritesBlocked {
  readonly needed: number
  readonly connected: number
  /** Commits waiting for an acknowledgement at the last probe. */
  readonly waiting: number
  readonly since: number
  readonly reported: boolean
}

export interface Clone {
  readonly requestId: number
  readonly donor: string
  readonly phase: "cloning" | "rejoining"
  readonly since: number
}

export interface Forwarding {
  /** Requests this node sent elsewhere: requestId -> where, and until when it waits. */
  readonly sent: ReadonlyMap<
    number,
    { readonly to: string; readonly deadline: number; readonly timeoutMs: number }
  >
  /** Requests run here for another member: local id (negative) -> origin and its id. */
  readonly served: ReadonlyMap<
    number,
    { readonly from: string; readonly requestId: number; readonly at: number }
  >
  readonly nextServedId: number
}

/** A message that leaves once the hard state it depends on is written. */
export type SendOutput = Extract<Output, { readonly _tag: "Send" }>

/** The Ready/Advance seam's state (durability.ts). */
export interface Durability {
  /** The number of the last hard state emitted in this run (0: none). */
  readonly emitted: number
  /** Every hard state up to this number is on disk. */
  readonly written: number
  /** Messages waiting for hard state `after` to be written, in the order they were sent. */
  readonly held: ReadonlyArray<{ readonly after: number; readonly send: SendOutput }>
  /** A write failed: nothing more leaves, and the agent halts. */
  readonly failed: boolean
}
