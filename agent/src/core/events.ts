/**
 * The decision core's events (the `Event` output): one name per event,
 * kebab-case, each the `event` field of a log line and a place in `status`.
 * The daemon counts them for its metrics by matching this union
 * exhaustively (daemon/metrics.ts), never by reading the log text: an event
 * that a metric needs a fact of carries that fact as a typed field.
 */
import type { VoteKind } from "../../../shared/peer-messages.ts"

/** Events that carry nothing beyond their name and reason. */
export type PlainEventName =
  | "agent-start"
  | "catch-up"
  | "clone-failed"
  | "clone-rejoined"
  | "clone-started"
  | "cloned"
  | "commit-stalled"
  | "commits-resumed"
  | "converged"
  | "crash-loop"
  | "credentials"
  | "demoted"
  | "diverged"
  | "elected"
  | "election"
  | "election-timeout"
  | "errant-transactions"
  | "failback"
  | "fence-escalated"
  | "fence-not-awaited"
  | "forced-failover"
  | "forced-vote"
  | "lag-recovered"
  | "lag-threshold-exceeded"
  | "lease-regained"
  | "config-members-stale"
  | "member-change"
  | "member-change-committed"
  | "member-removed"
  | "mysql-action-failed"
  | "mysqld-failed"
  | "mysqld-failed-again"
  | "mysqld-restarted"
  | "new-primary"
  | "no-restart"
  | "old-primary-unreachable"
  | "operator"
  | "operator-forwarded"
  | "operator-request"
  | "peer-message-dropped"
  | "pre-vote"
  | "pre-vote-refused"
  | "primary-failure-detected"
  | "primary-resigned"
  | "privilege-check-failed"
  | "privilege-missing"
  | "privileges-complete"
  | "reconfigured"
  | "record-committed"
  | "relay-log-intact"
  | "relay-log-lost"
  | "replication-restart"
  | "replication-resumed"
  | "replication-stalled"
  | "repoint"
  | "resigned"
  | "restart-failed"
  | "restart-held"
  | "restart-mysqld"
  | "restart-succeeded"
  | "role-change"
  | "self-fenced"
  | "semi-sync-fallback"
  | "semi-sync-replica"
  | "semi-sync-restored"
  | "semi-sync-source"
  | "split-brain-guard"
  | "stale-completion"
  | "hard-state-write-failed"
  | "step-down"
  | "switchover"
  | "switchover-converged"
  | "switchover-refused"
  | "switchover-rollback"
  | "transfer"
  | "transfer-refused"
  | "vip-failed"
  | "vote-refused"
  | "writes-blocked"
  | "writes-unblocked"

/** An event of the core, tagged by `event`. */
export type CoreEvent =
  /** This node finished a promotion: ACTIVE for `term`, elected as `kind` says. */
  | { readonly event: "promoted"; readonly kind: VoteKind; readonly term: number }
  /** This node's promotion failed (`kind` null: no promotion was under way any more). */
  | {
      readonly event: "promotion-aborted"
      readonly kind: VoteKind | null
      readonly term: number
    }
  | { readonly event: PlainEventName }

export type EventName = CoreEvent["event"]
