// The CLI path stays small (issue 16 item 4): what `mha-agent status` (and
// every control command) loads is main.ts and cli/control.ts with their
// static imports; none of it may reach the daemon, the adapters, mysql2,
// pino or the mesh. The daemon is loaded by `run` alone (a dynamic import).
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { test } from "node:test"

const repo = resolve(import.meta.dirname, "../..")

/** Static value imports of one module (not `import type`, not `import()`). */
const staticImports = (file: string): Array<string> => {
  const text = readFileSync(file, "utf8")
  const found: Array<string> = []
  for (const m of text.matchAll(/^import\s+(?!type\s)[^;]*?from\s+"([^"]+)"/gms)) {
    if (m[1] !== undefined) found.push(m[1])
  }
  return found
}

/** Every module reachable from `entry` by static imports: ours as repo paths, packages by name. */
const graph = (entry: string): { ours: Set<string>; packages: Set<string> } => {
  const ours = new Set<string>()
  const packages = new Set<string>()
  const visit = (file: string) => {
    const rel = relative(repo, file)
    if (ours.has(rel)) return
    ours.add(rel)
    for (const spec of staticImports(file)) {
      if (spec.startsWith(".")) {
        if (!spec.endsWith(".ts")) continue // package.json
        visit(join(dirname(file), spec))
      } else if (!spec.startsWith("node:")) packages.add(spec.split("/")[0] ?? spec)
    }
  }
  visit(join(repo, entry))
  return { ours, packages }
}

test("the CLI's control commands load no daemon or adapter module, and no package", () => {
  const main = graph("agent/src/main.ts")
  const control = graph("agent/src/cli/control.ts")
  const all = new Set([...main.ours, ...control.ours])
  const daemonSide = [...all].filter((f) => /agent\/src\/(daemon|adapters)\//.test(f))
  assert.deepEqual(daemonSide, [], `the CLI path loads ${daemonSide.join(", ")}`)
  assert.deepEqual([...main.packages], [], "main.ts loads no package before a command runs")
  assert.deepEqual([...control.packages], [], "no package: not even effect (2.3 MB to parse)")
  // The core modules it may use are pure helpers (GTID sets for rendering).
  const core = [...all].filter((f) => f.startsWith("agent/src/core/"))
  assert.deepEqual(core, ["agent/src/core/gtid.ts"])
})

test("main.ts loads the daemon only for `run`, by a dynamic import", () => {
  const text = readFileSync(join(repo, "agent/src/main.ts"), "utf8")
  const daemonImports = [...text.matchAll(/import\("\.\/daemon\/([^"]+)"\)/g)].map((m) => m[1])
  assert.deepEqual(daemonImports.sort(), ["config-load.ts", "run.ts"])
  assert.doesNotMatch(text, /^import [^;]*"\.\/daemon\//m)
})
