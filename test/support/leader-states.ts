/**
 * Leader states built by hand for unit tests of the reducer (the role is a
 * tagged union, roles.ts): a leader in the middle of a promotion, and a
 * running primary next to a switchover target whose progress the test sets.
 */
import { sidsOf, singleton } from "../../agent/src/core/gtid.ts"
import { noLease } from "../../agent/src/core/lease.ts"
import { asLeader } from "../../agent/src/core/roles.ts"
import type { AgentState, Leader, Promotion } from "../../agent/src/core/types.ts"

/** A leader not ACTIVE yet, without lease or switchover, at `promotion`. */
export const promotingLeader = (promotion: Promotion): Leader => ({
  _tag: "Leader",
  leaderActive: false,
  lease: noLease,
  switchover: null,
  promotion,
})

/**
 * db1 (the leader `s`) executed 1..primaryN, its probe answered at `now`; db2
 * executed 1..target.executed and received 1..target.received, heard at `now`.
 * db1's lease is valid: the heartbeat rounds that renew it do not run here.
 */
export const primaryAndTarget = (
  s: AgentState,
  now: number,
  primaryN: number,
  target: { readonly executed: number; readonly received: number },
): AgentState => {
  const sid = sidsOf(s.local.probe!.executed)[0]!
  const v = s.peers.get("db2")!
  return asLeader(
    {
      ...s,
      now,
      local: {
        ...s.local,
        probe: { ...s.local.probe!, executed: singleton(sid, 1, primaryN) },
        lastProbeAt: now,
        // Its probe answered (a probe left unanswered would count as late).
        probeSentAt: null,
      },
      peers: new Map(s.peers).set("db2", {
        ...v,
        executed: singleton(sid, 1, target.executed),
        received: singleton(sid, 1, target.received),
        lastHeardAt: now,
      }),
    },
    (r) => ({ lease: { ...r.lease, validUntil: now + 10_000 } }),
  )
}
