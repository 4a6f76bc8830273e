/**
 * The simulated network between hosts: per-direction cuts for agent (mesh)
 * traffic and MySQL traffic (replication, probes, remote fencing), random
 * loss, delay with jitter (which reorders), and duplication.
 */
import type { Prng } from "./prng.ts"

export type Traffic = "agent" | "mysql"

export class Network {
  private readonly cuts = new Set<string>()
  /** Loss probability of agent messages. */
  loss = 0
  duplicate = 0
  baseDelayMs = 0.5
  jitterMs = 3
  readonly rng: Prng

  constructor(rng: Prng) {
    this.rng = rng
  }

  private key(from: string, to: string, traffic: Traffic): string {
    return `${from}>${to}>${traffic}`
  }

  cut(from: string, to: string, traffic: Traffic): void {
    this.cuts.add(this.key(from, to, traffic))
  }

  /** Cuts `node` off from `others` in both directions, for the given kinds of traffic. */
  isolate(node: string, others: ReadonlyArray<string>, traffic: ReadonlyArray<Traffic>): void {
    for (const o of others) {
      if (o === node) continue
      for (const t of traffic) {
        this.cut(node, o, t)
        this.cut(o, node, t)
      }
    }
  }

  heal(): void {
    this.cuts.clear()
    this.loss = 0
    this.duplicate = 0
  }

  get partitioned(): boolean {
    return this.cuts.size > 0
  }

  open(from: string, to: string, traffic: Traffic): boolean {
    return !this.cuts.has(this.key(from, to, traffic))
  }

  /** A TCP exchange needs both directions. */
  roundTrip(a: string, b: string, traffic: Traffic): boolean {
    return a === b || (this.open(a, b, traffic) && this.open(b, a, traffic))
  }

  /** Delivery delays for one agent message (empty: lost; two: duplicated). */
  deliveries(from: string, to: string): ReadonlyArray<number> {
    if (!this.open(from, to, "agent")) return []
    if (this.loss > 0 && this.rng.chance(this.loss)) return []
    const d = this.baseDelayMs + this.rng.next() * this.jitterMs
    if (this.duplicate > 0 && this.rng.chance(this.duplicate)) {
      return [d, d + this.rng.next() * this.jitterMs * 3]
    }
    return [d]
  }

  describe(): string {
    return [...this.cuts].sort().join(" ")
  }
}
