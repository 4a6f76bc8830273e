// One agent's core, fed by hand, from a settled simulated cluster: the unit
// tests of one core rule start from db1 ACTIVE and db2 STANDBY as the
// simulator left them, change the config they test, and step inputs.
import assert from "node:assert/strict"
import type { ClusterConfig } from "../../agent/src/core/config.ts"
import { defaultHealthThresholds } from "../../agent/src/core/health.ts"
import { step } from "../../agent/src/core/reducer.ts"
import type { AgentState, Input, Output } from "../../agent/src/core/types.ts"
import { runScenario } from "../sim/scenario.ts"

/** db1 the primary and db2 a replica of a 3-node cluster after 6 s, with `config` laid over. */
export const settledCluster = (config: Partial<ClusterConfig> = {}) => {
  const r = runScenario("cluster data=3 seed=11\nrun 6s\nexpect primary db1")
  assert.ok(r.ok, r.failures.join("\n"))
  const configured = (s: AgentState): AgentState => ({
    ...s,
    config: { ...s.config, health: defaultHealthThresholds, ...config },
  })
  return {
    primary: configured(r.world!.node("db1").state),
    replica: configured(r.world!.node("db2").state),
  }
}

/** Feeds inputs through the reducer; keeps every output. */
export class CoreNode {
  readonly out: Output[] = []
  s: AgentState
  constructor(s: AgentState) {
    this.s = s
  }
  feed(make: (now: number) => Input, afterMs = 0): this {
    const r = step(this.s, make(this.s.now + afterMs))
    this.s = r.state
    this.out.push(...r.outputs)
    return this
  }
  tick(afterMs: number): this {
    return this.feed((now) => ({ _tag: "Tick", now, random: 0.5 }), afterMs)
  }
}
