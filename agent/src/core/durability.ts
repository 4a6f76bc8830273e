/**
 * The Ready/Advance seam (issue 11 item 1; etcd-io/raft's Ready with
 * MustSync, then Advance). A peer may rely on what a message says only if the
 * term, vote and record behind it survive a crash of this agent: a vote
 * granted, then forgotten after a restart, could elect two leaders in a term.
 *
 * So a step's messages do not simply leave. `ready` assembles what the step
 * yields: its hard states to write (numbered), its actions, and the messages
 * that may leave now; a message emitted while a hard state before it is not
 * yet known written is held here, in the core. The executor writes each hard
 * state and reports `Persisted` with its number; `onPersisted` then releases
 * the messages that waited for it, in their order. A write that fails
 * (`PersistFailed`) has one outcome: nothing held or later leaves, and the
 * agent halts; its service manager restarts it from the file, which holds
 * the last state written.
 *
 * Each hard state holds the whole state, so "number n written" covers every
 * number before it.
 */
import { event, type Outputs } from "./outputs.ts"
import type { AgentState, Durability, Output, SendOutput } from "./types.ts"

type Held = { readonly after: number; readonly send: SendOutput }

const isPersist = (o: Output): boolean => o._tag === "PersistHardState"

export const noDurability: Durability = { emitted: 0, written: 0, held: [], failed: false }

/**
 * A step's outputs as they leave: first the held messages whose hard state is
 * now written (they are older), then the step's own, each message held back
 * while any hard state emitted before it is not yet known written.
 */
export const ready = (s: AgentState, outputs: Outputs): [AgentState, Outputs] => {
  const d = s.durability
  if (d.held.length === 0 && !d.failed && d.emitted === d.written && !outputs.some(isPersist))
    return [s, outputs]
  const leaving: Outputs = []
  const held: Array<Held> = []
  for (const h of d.held) {
    if (h.after <= d.written) leaving.push(h.send)
    else held.push(h)
  }
  const released = leaving.length
  let emitted = d.emitted
  let dropped = 0
  for (const o of outputs) {
    if (o._tag === "PersistHardState") emitted = o.seq
    if (o._tag === "Send" && (d.failed || emitted > d.written)) {
      // After a failed write nothing leaves at all: it is dropped, not held.
      if (d.failed) dropped++
      else held.push({ after: emitted, send: o })
      continue
    }
    leaving.push(o)
  }
  // The same state when nothing was released, held or numbered (deadline.ts: an early Tick
  // must change nothing).
  if (released === 0 && held.length === d.held.length && emitted === d.emitted)
    return [s, dropped === 0 ? outputs : leaving]
  return [{ ...s, durability: { ...d, emitted, held } }, leaving]
}

/** Hard state `seq` (and every one before it) is on disk: what waited for it leaves (`ready`). */
export const onPersisted = (s: AgentState, seq: number): AgentState => {
  const d = s.durability
  if (d.failed || seq <= d.written) return s
  return { ...s, durability: { ...d, written: Math.min(seq, d.emitted) } }
}

/** Hard state `seq` could not be written: no message that may depend on it leaves; the agent halts. */
export const onPersistFailed = (
  s: AgentState,
  out: Outputs,
  seq: number,
  error: string,
): AgentState => {
  const d = s.durability
  if (d.failed) return s
  const reason = `the hard state could not be written: ${error} (hard state ${seq}); no message that depends on it is sent, and the agent exits so that its service manager restarts it from the file`
  event(out, "error", "hard-state-write-failed", reason)
  out.push({ _tag: "Halt", reason })
  return { ...s, durability: { ...d, held: [], failed: true } }
}
