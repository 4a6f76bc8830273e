/**
 * Publishing the primary for service discovery (the optional `etcd` section,
 * operations.md): the decision of WHEN belongs here, the etcd adapter only
 * keeps what it is told.
 *
 * Rule: this node is published exactly while it is ACTIVE, i.e. while it may
 * be writable (fencing.ts mayBeWritable: the promoted leader of its term,
 * inside its lease, not fenced by a switchover). It is the same condition
 * that keeps the VIP, checked after the same guards, so the publication
 * follows every way of losing ACTIVE without a case of its own: a fence for
 * a lost lease, a resignation, a higher term, a switchover's fence, a
 * shutdown. A new term while still ACTIVE (a reclaim) publishes again with
 * the new term. The adapter guards the other direction: it never writes a
 * lower term over a higher one in etcd.
 */
import { isDataNode } from "./config.ts"
import { mayBeWritable } from "./fencing.ts"
import type { Outputs } from "./outputs.ts"
import type { AgentState } from "./types.ts"

/** Emits PublishPrimary when this node becomes ACTIVE (or ACTIVE in a new term), WithdrawPrimary when it stops. */
export const guardPublication = (s: AgentState, out: Outputs): AgentState => {
  const published = s.published ?? null
  const want = s.config.publishPrimary === true && isDataNode(s.config, s.self) && mayBeWritable(s)
  if (want) {
    if (published?.term === s.hard.term) return s
    out.push({ _tag: "PublishPrimary", term: s.hard.term })
    return { ...s, published: { term: s.hard.term } }
  }
  if (published === null) return s
  out.push({ _tag: "WithdrawPrimary", term: published.term })
  return { ...s, published: null }
}
