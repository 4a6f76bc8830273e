/**
 * Make-before-break VIP handover (issue 13; protocol.md sections 11, 12, 13).
 *
 * When the old primary dropped the VIP as it fenced, a client's SYN sent
 * between that removal and the new primary's gratuitous ARP went to a host
 * that no longer owns the address and was dropped in silence: the client
 * waited out TCP's 1 s retransmission (or its connect timeout). So an old
 * primary that can no longer take a write keeps the address meanwhile: a
 * dead mysqld's port answers with a reset, a fenced one with a read-only
 * error, and the client retries at once; the new primary adds the VIP and
 * announces it, and the old one removes it `heartbeatIntervalMs` after that
 * announce (or at `until`, whatever happens).
 *
 * No client ever writes to a node that is not the primary: the VIP is kept
 * only while this node's mysqld is certainly not writable (connections
 * refused, or super_read_only and read_only ON as probed), or while a
 * switchover of this very primary is fencing it (it is still the primary of
 * its term until the transfer, and the target waits for the fence before it
 * becomes writable). A node whose lease ran out (isolated) still removes the
 * VIP first: nothing would tell it when to let go.
 */
import type { Outputs } from "./outputs.ts"
import { activeLeaderOf, switchoverOf } from "./roles.ts"
import type { AgentState, VipHandover } from "./types.ts"

/**
 * Starts a handover at the fence of the primary of the current term. The VIP
 * stays, announced no more: a gratuitous ARP burst still pending from its
 * acquire (garp_delay) would move clients back from the new primary.
 */
export const beginVipHandover = (s: AgentState, out: Outputs, forMs: number): AgentState => {
  out.push({ _tag: "Vip", op: "quiet" })
  return { ...s, vipHandover: { term: s.hard.term, until: s.now + forMs, announced: false } }
}

/** This node's mysqld can take no write: connections refused, or fenced as probed. */
const certainlyReadOnly = (s: AgentState): boolean => {
  if (!s.local.up) return s.local.refused === true && !s.local.hung
  const p = s.local.probe
  return p?.superReadOnly === true && p.readOnly
}

/** Could this node's mysqld be the cause of the handover (resign) right now. */
export const mysqldRefuses = (s: AgentState): boolean =>
  !s.local.up && s.local.refused === true && !s.local.hung

/**
 * Whether the reconcile loop leaves the VIP in place for now; shortens the
 * handover once a later primary announced itself and ends it when it is over.
 */
export const keepVipForHandover = (
  s: AgentState,
): { readonly keep: boolean; readonly state: AgentState } => {
  const h = s.vipHandover
  if (h === undefined || h === null) return { keep: false, state: s }
  let handover: VipHandover = h
  if (
    !h.announced &&
    s.hard.term > h.term &&
    activeLeaderOf(s) !== null &&
    activeLeaderOf(s) !== s.self
  ) {
    // The new primary added the VIP with its announce: let its gratuitous ARP land first.
    const until = Math.min(h.until, s.now + s.config.timings.heartbeatIntervalMs)
    handover = { ...h, until, announced: true }
  }
  // The switchover of this primary has fenced it (fencing.ts switchoverFenced, not imported:
  // fencing.ts imports this module).
  const sw = switchoverOf(s)
  const ownSwitchover =
    sw !== null && sw.phase !== "converging" && sw.phase !== "pre-hook" && s.hard.term === h.term
  const keep = s.now < handover.until && (ownSwitchover || certainlyReadOnly(s))
  if (!keep) return { keep: false, state: { ...s, vipHandover: null } }
  return { keep: true, state: handover === h ? s : { ...s, vipHandover: handover } }
}
