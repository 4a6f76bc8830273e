/**
 * Seeded random runs with membership changes (core/members.ts): a cluster of
 * three data members and two spare hosts; the operator adds and removes
 * members one at a time on whichever node is primary (a spare's agent starts
 * once its add was answered), while random faults hit the cluster; then
 * everything heals and the cluster must converge (L1) under its final list.
 * Safety (I1-I5) is checked on every event, as in random-run.ts.
 */
import { step } from "../../agent/src/core/reducer.ts"
import type { RecordMember } from "../../shared/peer-messages.ts"
import { Prng } from "./prng.ts"
import { dataMembers, type Reducer, type Violation, World } from "./world.ts"

export interface MemberRunResult {
  readonly seed: number
  readonly violations: ReadonlyArray<Violation>
  readonly faults: ReadonlyArray<string>
  readonly trace: () => string
  /** Member changes answered ok / refused. */
  readonly changes: { readonly ok: number; readonly refused: number }
  readonly finalMembers: ReadonlyArray<string>
}

const recordMember = (name: string): RecordMember => ({
  name,
  kind: "data",
  address: name,
  agentPort: 7878,
  mysqlPort: 3306,
  priority: 10,
  promotable: true,
})

export const memberRun = (seed: number, reducer: Reducer = step): MemberRunResult => {
  const rng = new Prng(seed ^ 0x3e3b)
  const spares = ["db4", "db5"].map((name) => ({
    name,
    priority: 10,
    promotable: true,
    kind: "data" as const,
  }))
  const world = new World({ seed, members: dataMembers(3), spares, reducer })
  const started = new Set<string>()
  const healAt = 40_000
  const changes = { ok: 0, refused: 0 }
  // Membership changes every few seconds, each on the node that is primary then.
  for (let at = 5000; at < healAt - 2000; at += rng.range(2500, 6000)) {
    world.schedule(at, () => {
      const p = world.primary()
      if (p === null) return
      const members = world.node(p).state.config.members.map((m) => m.name)
      const outside = ["db1", "db2", "db3", "db4", "db5"].filter((n) => !members.includes(n))
      const grow = members.length <= 3 || (members.length < 5 && rng.chance(0.5))
      const id = grow
        ? world.operator(p, { _tag: "MemberAdd", member: recordMember(rng.pick(outside)) })
        : world.operator(p, {
            _tag: "MemberRemove",
            node: rng.pick(members.filter((n) => n !== p)),
          })
      // The operator reads the answer and starts a new host's agent with the printed block.
      world.schedule(world.now + 1500, () => {
        const r = world.operatorReplies.find((x) => x.requestId === id && x.node === p)
        if (r === undefined) return
        if (!r.ok) {
          changes.refused++
          return
        }
        changes.ok++
        const added = /^(db\d) \(data\) added/.exec(r.message)?.[1]
        if (added !== undefined && world.spares.has(added) && !started.has(added)) {
          started.add(added)
          world.startSpare(added)
        }
      })
    })
  }
  // A few faults among the changes.
  const faults = rng.int(1, 4)
  for (let i = 0; i < faults; i++) {
    const at = rng.range(6000, healAt - 4000)
    const kind = rng.int(0, 5)
    const duration = rng.range(500, 6000)
    world.schedule(at, () => {
      const p = world.primary()
      const target = p !== null && rng.chance(0.7) ? p : rng.pick(["db1", "db2", "db3"])
      switch (kind) {
        case 0:
          world.killMysqld(target, rng.chance(0.4))
          break
        case 1:
          world.killAgent(target, duration)
          break
        case 2:
          world.fault(`isolate ${target} for ${duration.toFixed(0)} ms`)
          world.net.isolate(target, world.names, ["agent", "mysql"])
          world.schedule(world.now + duration, () => {
            world.fault("network healed")
            world.net.heal()
          })
          break
        case 3:
          world.fault(`cut agent traffic of ${target} for ${duration.toFixed(0)} ms`)
          world.net.isolate(target, world.names, ["agent"])
          world.schedule(world.now + duration, () => {
            world.fault("network healed")
            world.net.heal()
          })
          break
        default: {
          const loss = rng.range(0.05, 0.3)
          world.fault(`loss ${(loss * 100).toFixed(0)} % for ${duration.toFixed(0)} ms`)
          world.net.loss = loss
          world.schedule(world.now + duration, () => {
            world.net.loss = 0
          })
        }
      }
    })
  }
  world.runUntil(healAt)
  world.healAll()
  world.runUntil(healAt + 16_000)
  world.requireLiveness()
  const p = world.primary()
  return {
    seed,
    violations: world.violations,
    faults: world.faultLog,
    trace: () => world.renderTrace(),
    changes,
    finalMembers: p === null ? [] : world.node(p).state.config.members.map((m) => m.name),
  }
}
