// Reading the agent's reply in the CLI without Effect (issue 16 item 4):
// Effect's Schema is 2.3 MB of bundled code that every `mha-agent status`
// would parse and run (about +5 MB and +80 ms of CPU per call), so the CLI
// checks the reply against this plain description of shared/control.ts's
// ControlReply instead. test/unit/cli-reply.test.ts keeps the two in step.
import type { ControlReply } from "../../../shared/control.ts"

type Shape =
  | "string"
  | "number"
  | "boolean"
  | { readonly nullOr: Shape }
  | { readonly optional: Shape }
  | { readonly array: Shape }
  | { readonly literals: ReadonlyArray<string> }
  | { readonly struct: Readonly<Record<string, Shape>> }

const nullOr = (s: Shape): Shape => ({ nullOr: s })
const optional = (s: Shape): Shape => ({ optional: s })
const array = (s: Shape): Shape => ({ array: s })

const memberStatus: Shape = {
  struct: {
    name: "string",
    kind: "string",
    role: "string",
    health: "string",
    lastHeardMs: nullOr("number"),
    source: nullOr("string"),
    executed: "string",
    errant: "string",
    lagSeconds: optional(nullOr("number")),
  },
}

const statusView: Shape = {
  struct: {
    cluster: "string",
    node: "string",
    term: "number",
    role: "string",
    leader: nullOr("string"),
    leaderActive: "boolean",
    paused: "boolean",
    excluded: array("string"),
    electionStatus: "string",
    missingPrivileges: optional(array("string")),
    lagSource: optional("string"),
    members: array(memberStatus),
  },
}

const historyEntry: Shape = {
  struct: {
    kind: { literals: ["failover", "switchover"] },
    term: "number",
    at: "string",
    reason: "string",
    oldPrimary: nullOr("string"),
    newPrimary: "string",
    durationMs: nullOr("number"),
  },
}

export const controlReplyShape: Shape = {
  struct: {
    ok: "boolean",
    message: "string",
    answeredBy: optional("string"),
    steps: optional(array("string")),
    status: optional(statusView),
    history: optional(array(historyEntry)),
  },
}

/** The first place `value` does not fit `shape`, or undefined when it fits. */
const mismatch = (shape: Shape, value: unknown, path: string): string | undefined => {
  if (typeof shape === "string") {
    return typeof value === shape ? undefined : `${path}: expected ${shape}, got ${show(value)}`
  }
  if ("nullOr" in shape) return value === null ? undefined : mismatch(shape.nullOr, value, path)
  if ("optional" in shape) {
    return value === undefined ? undefined : mismatch(shape.optional, value, path)
  }
  if ("literals" in shape) {
    return typeof value === "string" && shape.literals.includes(value)
      ? undefined
      : `${path}: expected one of ${shape.literals.join(", ")}, got ${show(value)}`
  }
  if ("array" in shape) {
    if (!Array.isArray(value)) return `${path}: expected an array, got ${show(value)}`
    for (let i = 0; i < value.length; i++) {
      const m = mismatch(shape.array, value[i], `${path}[${i}]`)
      if (m !== undefined) return m
    }
    return undefined
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return `${path}: expected an object, got ${show(value)}`
  }
  const record = value as Record<string, unknown>
  for (const [key, field] of Object.entries(shape.struct)) {
    const m = mismatch(field, record[key], path === "" ? key : `${path}.${key}`)
    if (m !== undefined) return m
  }
  return undefined
}

const show = (value: unknown): string =>
  value === undefined ? "nothing" : (JSON.stringify(value) ?? String(value)).slice(0, 40)

/** The reply, or a throw naming the first field that is wrong. */
export const decodeReply = (value: unknown): ControlReply => {
  const m = mismatch(controlReplyShape, value, "")
  if (m !== undefined) throw new Error(m.startsWith(": ") ? m.slice(2) : m)
  return value as ControlReply
}
