/**
 * Local probes by number. The core numbers every probe of its own mysqld it
 * asks for, and each answer names the probe it answers. Probes run
 * concurrently (a periodic one, one after a restart, one after a vote
 * freeze), so answers may come back in any order; without numbers, an answer
 * to a probe sent before an action finished would pass for news of the
 * action: a restart seen as not done (and done twice), a vote decided on
 * data read before the IO thread stopped (section 9 step 3).
 *
 * - An answer to a probe older than one already answered is stale: it is
 *   dropped (what it read is older than what the core knows).
 * - A routine that waits for a probe after some point notes `nextProbe(s)`
 *   then, and goes on once `answeredSince` holds for it.
 * - `takenAt` is when the newest answered probe was sent: its data is at
 *   least that recent (the answer's arrival says less).
 */
import type { Outputs } from "./outputs.ts"
import type { AgentState, AwaitedEffect, LocalProbes } from "./types.ts"

export const noProbes: LocalProbes = {
  next: 1,
  outstanding: new Map(),
  answered: 0,
  takenAt: null,
}

/** The number the next probe will carry: any answer numbered from it on was read after now. */
export const nextProbe = (s: AgentState): number => s.probes.next

/** Asks for a probe of the local mysqld now. */
export const probeLocal = (s: AgentState, out: Outputs): AgentState => {
  const n = s.probes.next
  out.push({ _tag: "ProbeLocal", probe: n })
  const outstanding = new Map(s.probes.outstanding)
  outstanding.set(n, s.now)
  return { ...s, probes: { ...s.probes, next: n + 1, outstanding } }
}

/** The newest answered probe was sent at or after probe `n` was. */
export const answeredSince = (s: AgentState, n: number): boolean => s.probes.answered >= n

/**
 * Probe `n` answered: the state with it taken in, or null when the answer is
 * stale (a newer probe answered first). Older probes still out are stale from
 * now on and forgotten; an effect awaited from `n` or before is visible now.
 */
export const takeAnswer = (s: AgentState, n: number): AgentState | null => {
  if (n < s.probes.answered) return null
  const outstanding = new Map(s.probes.outstanding)
  const sentAt = outstanding.get(n) ?? null
  for (const k of outstanding.keys()) if (k <= n) outstanding.delete(k)
  let awaitingProbe = s.awaitingProbe
  for (const [effect, from] of s.awaitingProbe) {
    if (from > n) continue
    if (awaitingProbe === s.awaitingProbe) awaitingProbe = new Map(s.awaitingProbe)
    ;(awaitingProbe as Map<AwaitedEffect, number>).delete(effect)
  }
  return {
    ...s,
    awaitingProbe,
    probes: { ...s.probes, outstanding, answered: n, takenAt: sentAt ?? s.probes.takenAt },
  }
}

/** `effect` is done but not yet seen: routines wait for a probe sent from now on. */
export const awaitProbe = (s: AgentState, effect: AwaitedEffect): AgentState => {
  const awaitingProbe = new Map(s.awaitingProbe)
  awaitingProbe.set(effect, s.probes.next)
  return { ...s, awaitingProbe }
}
