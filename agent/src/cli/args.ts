// The operator's command line: `--name VALUE`, `--name=VALUE`, `--flag` and
// positional words, checked against what one command accepts. Anything else is
// a UsageProblem naming the word (one line on stderr, exit 2).

/** One option of a command: `--to NODE` (valued) or `--dry-run` (a flag). */
export interface OptionSpec {
  readonly name: string
  /** The value's placeholder for valued options (`NODE`, `S`); absent for flags. */
  readonly value?: string
  readonly help: string
}

/** A bad command line, worded for the operator (without the `mha-agent <command>:` prefix). */
export class UsageProblem extends Error {
  override readonly name = "UsageProblem"
}

export interface ParsedArgs {
  readonly values: ReadonlyMap<string, string>
  readonly flags: ReadonlySet<string>
  readonly positional: ReadonlyArray<string>
}

/**
 * Parses `args` against `options`; at most `maxPositional` plain words. A
 * word after `--` is positional even if it starts with `--`.
 */
export const parseArgs = (
  args: ReadonlyArray<string>,
  options: ReadonlyArray<OptionSpec>,
  maxPositional: number,
): ParsedArgs => {
  const values = new Map<string, string>()
  const flags = new Set<string>()
  const positional: string[] = []
  let onlyPositional = false
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? ""
    if (!onlyPositional && arg === "--") {
      onlyPositional = true
      continue
    }
    if (onlyPositional || !arg.startsWith("-") || arg === "-") {
      if (positional.length >= maxPositional) {
        throw new UsageProblem(
          maxPositional === 0
            ? `unexpected argument '${arg}' (this command takes no node name)`
            : `unexpected argument '${arg}'`,
        )
      }
      positional.push(arg)
      continue
    }
    const eq = arg.indexOf("=")
    const name = eq > 0 ? arg.slice(0, eq) : arg
    const spec = options.find((o) => o.name === name)
    if (spec === undefined) throw new UsageProblem(`unknown option '${name}'`)
    if (values.has(name) || flags.has(name)) throw new UsageProblem(`${name} given twice`)
    if (spec.value === undefined) {
      if (eq > 0) throw new UsageProblem(`${name} takes no value`)
      flags.add(name)
      continue
    }
    let value: string | undefined
    if (eq > 0) value = arg.slice(eq + 1)
    else {
      value = args[i + 1]
      if (value?.startsWith("--")) value = undefined
      else i++
    }
    if (value === undefined || value === "") {
      throw new UsageProblem(`${name} needs a value (${name} ${spec.value})`)
    }
    values.set(name, value)
  }
  return { values, flags, positional }
}

/** A duration in seconds as the operator writes it: `30`, `30s`, `1.5`, `500ms`, `2m`. */
export const parseSeconds = (option: string, text: string): number => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim())
  if (m === null) {
    throw new UsageProblem(`${option} expects seconds (e.g. 30, 30s, 500ms, 2m), got '${text}'`)
  }
  const n = Number(m[1])
  const unit = m[2] ?? "s"
  return unit === "ms" ? n / 1000 : unit === "m" ? n * 60 : n
}
