// agent/src/core/ is the pure decision core (architecture.md, "Layers"): no
// I/O, no clock, no randomness, no Node. This test reads every .ts file under
// it and fails, naming the file, line and offending text, when one imports
// anything but core itself, shared/ or effect's pure modules, or touches the
// clock, timers, randomness, the process or the console.
import assert from "node:assert/strict"
import { readdirSync, readFileSync } from "node:fs"
import path from "node:path"
import { describe, test } from "node:test"
import { fileURLToPath } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const coreDir = path.join(repoRoot, "agent/src/core")
const sharedDir = path.join(repoRoot, "shared")

interface Violation {
  readonly line: number
  readonly text: string
  readonly reason: string
}

// ---------------------------------------------------------------------------
// A small TypeScript lexer: blanks out comments (and, in the second view,
// string and template text) while keeping every newline, so that positions
// still map to the original lines.

interface Views {
  /** Comments blanked; strings kept (import specifiers are read from this). */
  readonly code: string
  /** Comments and the text of strings, templates and regexes blanked. */
  readonly bare: string
}

const REGEX_PRECEDERS = new Set("(,=:[!&|?{};+-*%<>~^".split(""))
const REGEX_KEYWORDS = new Set(["return", "typeof", "case", "do", "else", "in", "of", "void"])

function lex(src: string): Views {
  const code = src.split("")
  const bare = src.split("")
  const blank = (arr: string[], from: number, to: number): void => {
    for (let k = from; k < to; k++) if (arr[k] !== "\n") arr[k] = " "
  }
  // Braces opened inside template `${ }` expressions, innermost last.
  const templateDepth: number[] = []
  let braceDepth = 0
  let i = 0
  const n = src.length

  const previousSignificant = (): string => {
    let k = i - 1
    while (k >= 0 && /\s/.test(bare[k]!)) k--
    if (k < 0) return ""
    if (/[A-Za-z0-9_$]/.test(bare[k]!)) {
      let s = k
      while (s > 0 && /[A-Za-z0-9_$]/.test(bare[s - 1]!)) s--
      return bare.slice(s, k + 1).join("")
    }
    return bare[k]!
  }

  // Scans a template literal body from i (just after ` or }) up to its end or
  // the next `${`; returns true if it stopped at `${`.
  const scanTemplate = (): boolean => {
    const start = i
    while (i < n) {
      const c = src[i]!
      if (c === "\\") {
        i += 2
      } else if (c === "`") {
        blank(bare, start, i)
        i++
        return false
      } else if (c === "$" && src[i + 1] === "{") {
        blank(bare, start, i)
        i += 2
        return true
      } else {
        i++
      }
    }
    blank(bare, start, n)
    return false
  }

  while (i < n) {
    const c = src[i]!
    const next = src[i + 1]
    if (c === "/" && next === "/") {
      const end = src.indexOf("\n", i)
      const stop = end === -1 ? n : end
      blank(code, i, stop)
      blank(bare, i, stop)
      i = stop
    } else if (c === "/" && next === "*") {
      const end = src.indexOf("*/", i + 2)
      const stop = end === -1 ? n : end + 2
      blank(code, i, stop)
      blank(bare, i, stop)
      i = stop
    } else if (c === '"' || c === "'") {
      const start = i
      i++
      while (i < n && src[i] !== c && src[i] !== "\n") i += src[i] === "\\" ? 2 : 1
      blank(bare, start + 1, Math.min(i, n))
      i++
    } else if (c === "`") {
      i++
      if (scanTemplate()) templateDepth.push(braceDepth)
    } else if (c === "{") {
      braceDepth++
      i++
    } else if (c === "}") {
      if (templateDepth.length > 0 && templateDepth[templateDepth.length - 1] === braceDepth) {
        templateDepth.pop()
        i++
        if (scanTemplate()) templateDepth.push(braceDepth)
      } else {
        braceDepth--
        i++
      }
    } else if (c === "/") {
      const prev = previousSignificant()
      if (prev === "" || REGEX_PRECEDERS.has(prev) || REGEX_KEYWORDS.has(prev)) {
        // A regular expression literal.
        const start = i
        i++
        let inClass = false
        while (i < n && src[i] !== "\n") {
          const r = src[i]!
          if (r === "/" && !inClass) break
          if (r === "[") inClass = true
          else if (r === "]") inClass = false
          i += r === "\\" ? 2 : 1
        }
        blank(bare, start + 1, Math.min(i, n))
        i++
      } else {
        i++
      }
    } else {
      i++
    }
  }
  return { code: code.join(""), bare: bare.join("") }
}

// ---------------------------------------------------------------------------
// The rules

/** Effect entry points that are I/O, time, randomness or runtime, not pure data. */
const EFFECT_FORBIDDEN =
  /^effect\/(ai|cli|cluster|crypto|devtools|eventlog|graphql|http|http-api|net|observability|persistence|process|reactivity|rpc|socket|sql|testing|workers|workflow|unstable|internal)(\/|$)|^effect\/(Clock|Random|Console|FileSystem|Path|Terminal|Stdio|Logger|ManagedRuntime|Runtime|Scheduler|Tracer)$/

function checkSpecifier(file: string, spec: string): string | undefined {
  if (spec.startsWith("node:")) return `imports the Node builtin "${spec}"`
  if (spec.startsWith(".") || spec.startsWith("/")) {
    const target = path.resolve(path.dirname(file), spec)
    const inside = (dir: string): boolean => target === dir || target.startsWith(dir + path.sep)
    if (inside(coreDir) || inside(sharedDir)) return undefined
    return `imports "${spec}" from outside agent/src/core and shared/`
  }
  if (spec === "effect" || spec.startsWith("effect/")) {
    return EFFECT_FORBIDDEN.test(spec) ? `imports the impure effect module "${spec}"` : undefined
  }
  return `imports the package "${spec}" (core may import only core, shared/ and effect)`
}

// A global used directly (not as a property `x.Date` or part of a longer name).
const g = (name: string, after = "\\b"): RegExp => new RegExp(`(?<![.\\w$])${name}${after}`)

const FORBIDDEN_USES: ReadonlyArray<readonly [RegExp, string]> = [
  [g("Date"), "uses Date (the clock comes in with the input)"],
  [g("performance", "\\s*\\."), "uses performance (the clock comes in with the input)"],
  [g("process", "\\s*[.[]"), "uses process"],
  [
    g("(setTimeout|setInterval|setImmediate|clearTimeout|clearInterval|queueMicrotask)"),
    "uses a timer",
  ],
  [g("Math", "\\s*\\.\\s*random\\b"), "uses Math.random (randomness comes in with the input)"],
  [g("crypto", "\\s*\\."), "uses crypto (randomness comes in with the input)"],
  [g("require", "\\s*\\("), "uses require()"],
  [g("console", "\\s*\\."), "uses the console (the core returns outputs, it does not log)"],
  [g("fetch", "\\s*\\("), "uses fetch()"],
  [g("(Buffer|globalThis|__dirname|__filename)"), "uses a host global"],
  [/\bimport\s*\.\s*meta\b/, "uses import.meta"],
]

// `from "m"` (static imports and re-exports, also multi-line import lists) and
// `import "m"`, read from the comment-free text; a violation is reported on
// the line where its import or export statement starts.
const FROM_CLAUSE = /\bfrom\s*(["'])([^"'\n]+)\1/g
const SIDE_EFFECT_IMPORT = /\bimport\s*(["'])([^"'\n]+)\1/g
const DYNAMIC_IMPORT = /\bimport\s*\(/g
const DYNAMIC_LITERAL = /^import\s*\(\s*(["'`])([^"'`$\n]+)\1\s*\)/
const STATEMENT_START = /\b(import|export)\b/g

function checkSource(file: string, src: string): Violation[] {
  const { code, bare } = lex(src)
  const lines = src.split("\n")
  const lineAt = (index: number): number => src.slice(0, index).split("\n").length
  const violation = (index: number, reason: string): Violation => {
    const line = lineAt(index)
    return { line, text: (lines[line - 1] ?? "").trim(), reason }
  }
  const out: Violation[] = []

  const statementStart = (index: number): number => {
    let start = index
    for (const m of bare.slice(0, index + "import".length).matchAll(STATEMENT_START)) {
      start = m.index
    }
    return start
  }
  for (const re of [FROM_CLAUSE, SIDE_EFFECT_IMPORT]) {
    for (const m of code.matchAll(re)) {
      // Skip matches whose keyword sits inside a string or template text.
      if (bare[m.index] !== code[m.index]) continue
      const reason = checkSpecifier(file, m[2]!)
      if (reason !== undefined) out.push(violation(statementStart(m.index), reason))
    }
  }
  for (const m of bare.matchAll(DYNAMIC_IMPORT)) {
    const literal = DYNAMIC_LITERAL.exec(code.slice(m.index))
    if (literal === null) {
      out.push(violation(m.index, "uses import() with a computed specifier"))
    } else {
      const reason = checkSpecifier(file, literal[2]!)
      if (reason !== undefined) out.push(violation(m.index, reason))
    }
  }
  const bareLines = bare.split("\n")
  bareLines.forEach((text, k) => {
    for (const [re, reason] of FORBIDDEN_USES) {
      if (re.test(text)) out.push({ line: k + 1, text: (lines[k] ?? "").trim(), reason })
    }
  })
  return out.sort((x, y) => x.line - y.line)
}

function listTsFiles(dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) out.push(...listTsFiles(full))
    else if (/\.(ts|mts|cts|tsx)$/.test(entry.name)) out.push(full)
  }
  return out.sort()
}

function report(file: string, violations: ReadonlyArray<Violation>): string {
  const rel = path.relative(repoRoot, file)
  return violations.map((v) => `${rel}:${v.line}: ${v.reason}\n    ${v.text}`).join("\n")
}

// ---------------------------------------------------------------------------

describe("agent/src/core is pure", () => {
  const files = listTsFiles(coreDir)

  test("there are core files to check", () => {
    assert.ok(files.length > 0, `no .ts files under ${coreDir}`)
  })

  for (const file of files) {
    const rel = path.relative(repoRoot, file)
    test(rel, () => {
      const violations = checkSource(file, readFileSync(file, "utf8"))
      assert.equal(
        violations.length,
        0,
        `${rel} breaks the purity rule of agent/src/core:\n${report(file, violations)}`,
      )
    })
  }
})

describe("the purity checker itself", () => {
  const file = path.join(coreDir, "example.ts")
  const reasons = (src: string): string[] =>
    checkSource(file, src).map((v) => `${v.line}: ${v.reason}`)

  test("accepts core, shared and pure effect imports", () => {
    const src = [
      `import { Schema } from "effect"`,
      `import * as Option from "effect/Option"`,
      `import type { GtidSet } from "./gtid.ts"`,
      `import { x } from "./sub/dir.ts"`,
      `import { PeerMessage } from "../../../shared/peer-messages.ts"`,
      `export * from "./health.ts"`,
      `export { y } from "./y.ts"`,
      `const m = await import("./lazy.ts")`,
    ].join("\n")
    assert.deepEqual(reasons(src), [])
  })

  test("rejects Node builtins, drivers, loggers and other layers, naming the line", () => {
    const src = [
      `import fs from "node:fs"`,
      `import { createConnection } from "mysql2/promise"`,
      `import {`,
      `  WebSocket,`,
      `} from "ws"`,
      `import pino from "pino"`,
      `import * as os from "os"`,
      `import "child_process"`,
      `export { spawn } from "node:child_process"`,
      `import type { Prober } from "../adapters/mysql.ts"`,
      `const net = await import("net")`,
      `const x = await import(name)`,
      `import { NodeHttpServer } from "@effect/platform-node/NodeHttpServer"`,
      `import { Clock } from "effect/Clock"`,
      `import { HttpClient } from "effect/http"`,
    ].join("\n")
    assert.deepEqual(reasons(src), [
      `1: imports the Node builtin "node:fs"`,
      `2: imports the package "mysql2/promise" (core may import only core, shared/ and effect)`,
      `3: imports the package "ws" (core may import only core, shared/ and effect)`,
      `6: imports the package "pino" (core may import only core, shared/ and effect)`,
      `7: imports the package "os" (core may import only core, shared/ and effect)`,
      `8: imports the package "child_process" (core may import only core, shared/ and effect)`,
      `9: imports the Node builtin "node:child_process"`,
      `10: imports "../adapters/mysql.ts" from outside agent/src/core and shared/`,
      `11: imports the package "net" (core may import only core, shared/ and effect)`,
      `12: uses import() with a computed specifier`,
      `13: imports the package "@effect/platform-node/NodeHttpServer" (core may import only core, shared/ and effect)`,
      `14: imports the impure effect module "effect/Clock"`,
      `15: imports the impure effect module "effect/http"`,
    ])
  })

  test("rejects clocks, timers, randomness, process and console", () => {
    const src = [
      `const now = Date.now()`,
      `const t = new Date()`,
      `const p = performance.now()`,
      `const e = process.env.HOME`,
      `setTimeout(() => {}, 10)`,
      `const h = setInterval(f, 1)`,
      `const r = Math.random()`,
      `const u = crypto.randomUUID()`,
      `console.log("x")`,
      `const fs = require("fs")`,
    ].join("\n")
    assert.deepEqual(
      checkSource(file, src).map((v) => v.line),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    )
  })

  test("ignores words in comments, strings, templates and regexes", () => {
    const src = [
      `// no Date, no setTimeout, no Math.random(), import x from "node:fs"`,
      `/* process.env and`,
      `   import "ws" */`,
      `const message = "uses Date and process.exit and import('fs')"`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: TypeScript source under test
      'const t = `Date ${count} import x from "node:fs" ${`nested Date`}`',
      `const re = /Date|setTimeout|"/g`,
      `const dateLike = updatedAt + DateTime`,
      `function processInput(process2: number) { return process2 / 2 }`,
    ].join("\n")
    assert.deepEqual(reasons(src), [])
  })

  test("still sees code inside template expressions", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: TypeScript source under test
    const src = "const s = `at ${Date.now()} ms`"
    assert.deepEqual(reasons(src), ["1: uses Date (the clock comes in with the input)"])
  })

  test("the failure message names the file and the offending line", () => {
    const violations = checkSource(file, `const a = 1\nimport { x } from "mysql2"\n`)
    const message = report(file, violations)
    assert.match(message, /agent\/src\/core\/example\.ts:2: imports the package "mysql2"/)
    assert.match(message, /import \{ x \} from "mysql2"/)
  })
})
