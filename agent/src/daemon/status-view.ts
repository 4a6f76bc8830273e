// What `mha-agent status` and the HTTP endpoints show: the core's state put
// into the words of the control protocol (shared/control.ts).
import type { StatusView } from "../../../shared/control.ts"
import { whyNoElection } from "../core/election.ts"
import { formatGtidSet } from "../core/gtid.ts"
import { describeLagSource, localReportedLag } from "../core/lag-heartbeat.ts"
import { leaderActiveOf, leaderOf } from "../core/roles.ts"
import {
  clusterSemiSyncFallback,
  clusterWritesBlocked,
  nodeRole,
  observation,
} from "../core/status.ts"
import type { AgentState } from "../core/types.ts"

/** A witness runs no mysqld: its role is WITNESS, its health whether its agent is heard. */
const witnessHealth = (s: AgentState, name: string): string => {
  if (name === s.self) return "OK"
  const v = s.peers.get(name)
  if (v === undefined) return "UNKNOWN"
  return s.now - v.lastHeardAt <= s.config.timings.leaseDurationMs ? "OK" : "FAIL"
}

export const statusView = (s: AgentState, cluster: string): StatusView => {
  const self = observation(s)
  const writesBlocked = clusterWritesBlocked(s)
  const semiSyncFallback = clusterSemiSyncFallback(s)
  const lag = localReportedLag(s)
  // Said only when the heartbeat table is configured and this node replicates.
  const lagSource =
    s.config.lagHeartbeat === true && s.local.up && s.local.probe?.replica != null
      ? describeLagSource(lag.source)
      : null
  return {
    cluster,
    node: s.self,
    term: s.hard.term,
    role: nodeRole(s),
    leader: leaderOf(s),
    leaderActive: leaderActiveOf(s),
    paused: s.hard.record.paused,
    excluded: [...s.hard.record.excluded],
    electionStatus: s.role._tag === "Leader" ? `leading term ${s.hard.term}` : whyNoElection(s),
    ...(s.local.privileges.missing === null
      ? {}
      : { missingPrivileges: s.local.privileges.missing.map((m) => m.privilege) }),
    ...(self?.replicationError == null ? {} : { replicationError: self.replicationError }),
    ...(writesBlocked === null ? {} : { writesBlocked }),
    ...(semiSyncFallback === null ? {} : { semiSyncFallback }),
    ...(lagSource === null ? {} : { lagSource }),
    members: s.config.members.map((m) => {
      if (m.kind === "witness") {
        const v = s.peers.get(m.name)
        return {
          name: m.name,
          kind: m.kind,
          role: "WITNESS",
          health: witnessHealth(s, m.name),
          lastHeardMs:
            m.name === s.self || v === undefined ? null : Math.round(s.now - v.lastHeardAt),
          source: null,
          executed: "",
          errant: "",
          lagSeconds: null,
        }
      }
      if (m.name === s.self) {
        return {
          name: m.name,
          kind: m.kind,
          role: nodeRole(s),
          health: s.local.health.level,
          lastHeardMs: null,
          source: self?.source ?? null,
          executed: s.local.executedText,
          errant: formatGtidSet(s.local.errant),
          lagSeconds: lag.seconds,
        }
      }
      const v = s.peers.get(m.name)
      return {
        name: m.name,
        kind: m.kind,
        role: v?.role ?? "UNKNOWN",
        health: v === undefined ? "UNKNOWN" : v.healthy ? "OK" : "FAIL",
        lastHeardMs: v === undefined ? null : Math.round(s.now - v.lastHeardAt),
        source: v?.source ?? null,
        executed: v?.executedText ?? "",
        errant: v?.errant ? "yes" : "",
        lagSeconds: v?.source === null || v === undefined ? null : v.lagSeconds,
      }
    }),
  }
}
