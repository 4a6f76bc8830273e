/**
 * Section 11: the holder of the VIP announces it again (a gratuitous ARP
 * burst) every `garp_refresh`, so that a switch or a client whose ARP entry
 * went stale or wrong (a missed announcement, a cache flushed) finds the
 * primary again. Not while the VIP is kept only for a make-before-break
 * handover (vip-handover.ts): an announcement then would pull clients back
 * from the new primary.
 */
import type { Outputs } from "./outputs.ts"
import type { AgentState } from "./types.ts"

export const vipRefreshTimer = (s: AgentState, out: Outputs): AgentState => {
  const every = s.config.garpRefreshMs
  const due = s.nextGarpRefreshAt ?? null
  const announcing = s.local.vip.held === true && (s.vipHandover ?? null) === null
  if (every === undefined || !announcing)
    return due === null ? s : { ...s, nextGarpRefreshAt: null }
  // Just acquired (or handed back): the acquisition announced it; the first refresh comes later.
  if (due === null) return { ...s, nextGarpRefreshAt: s.now + every }
  if (s.now < due) return s
  out.push({ _tag: "Vip", op: "refresh" })
  return { ...s, nextGarpRefreshAt: s.now + every }
}
