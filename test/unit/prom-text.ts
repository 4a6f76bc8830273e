// A strict parser of the Prometheus text exposition format 0.0.4, for tests:
// it throws, naming the line, on anything a Prometheus server would reject or
// that the format says must not happen (a family's TYPE after its samples or
// twice, samples of one family split apart, a duplicate series, a bad name,
// a bad escape, a value that is not a float, a negative or NaN counter, a
// summary sample without a quantile label).

export type PromType = "counter" | "gauge" | "summary" | "histogram" | "untyped"

export interface PromSample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface PromFamily {
  readonly name: string
  type: PromType
  help: string | undefined
  readonly samples: Array<PromSample>
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/
const FLOAT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|inf|NaN|nan)$/
const TYPES: ReadonlyArray<PromType> = ["counter", "gauge", "summary", "histogram", "untyped"]

const parseFloatStrict = (s: string, where: string): number => {
  if (!FLOAT.test(s)) throw new Error(`${where}: '${s}' is not a float`)
  if (/^[+-]?[Ii]nf$/.test(s)) return s.startsWith("-") ? -Infinity : Infinity
  if (/^[+-]?(NaN|nan)$/.test(s)) return Number.NaN
  return Number(s)
}

const unescapeHelp = (s: string, where: string): string =>
  s.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\"
    if (c === "n") return "\n"
    throw new Error(`${where}: bad escape \\${c} in HELP`)
  })

/** The family a sample name belongs to, given the families seen. */
const familyOf = (
  name: string,
  families: ReadonlyMap<string, PromFamily>,
): PromFamily | undefined => {
  const direct = families.get(name)
  if (direct !== undefined) return direct
  for (const suffix of ["_sum", "_count", "_bucket"]) {
    if (!name.endsWith(suffix)) continue
    const f = families.get(name.slice(0, -suffix.length))
    if (f === undefined) continue
    if (f.type === "summary" && suffix !== "_bucket") return f
    if (f.type === "histogram") return f
  }
  return undefined
}

export const parsePromText = (text: string): Map<string, PromFamily> => {
  if (text !== "" && !text.endsWith("\n"))
    throw new Error("the exposition must end with a line feed")
  const families = new Map<string, PromFamily>()
  const series = new Set<string>()
  const closed = new Set<string>()
  let current: string | undefined
  const lines = text.split("\n")
  lines.pop()
  const enter = (name: string, where: string) => {
    if (current === name) return
    if (closed.has(name))
      throw new Error(`${where}: samples or metadata of ${name} are not contiguous`)
    if (current !== undefined) closed.add(current)
    current = name
  }
  lines.forEach((line, i) => {
    const where = `line ${i + 1} '${line}'`
    if (line.trim() === "") return
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line)
      if (m === null) return // a plain comment
      const [, kind, name = "", rest = ""] = m
      if (!new RegExp(`${METRIC_NAME.source}$`).test(name))
        throw new Error(`${where}: bad metric name`)
      enter(name, where)
      let f = families.get(name)
      if (f === undefined) {
        f = { name, type: "untyped", help: undefined, samples: [] }
        families.set(name, f)
      }
      if (kind === "HELP") {
        if (f.help !== undefined) throw new Error(`${where}: second HELP for ${name}`)
        f.help = unescapeHelp(rest, where)
      } else {
        const type = rest.trim() as PromType
        if (!TYPES.includes(type)) throw new Error(`${where}: unknown type '${rest}'`)
        if (f.samples.length > 0) throw new Error(`${where}: TYPE of ${name} after its samples`)
        if ((f as { typed?: boolean }).typed) throw new Error(`${where}: second TYPE for ${name}`)
        ;(f as { typed?: boolean }).typed = true
        f.type = type
      }
      return
    }
    // name{labels} value [timestamp]
    const nm = METRIC_NAME.exec(line)
    if (nm === null) throw new Error(`${where}: no metric name`)
    const name = nm[0]
    let pos = name.length
    const labels: Record<string, string> = {}
    if (line[pos] === "{") {
      pos++
      for (;;) {
        while (line[pos] === " ") pos++
        if (line[pos] === "}") {
          pos++
          break
        }
        const ln = LABEL_NAME.exec(line.slice(pos))
        if (ln === null) throw new Error(`${where}: bad label name at ${pos}`)
        const label = ln[0]
        if (label in labels) throw new Error(`${where}: label ${label} twice`)
        pos += label.length
        if (line[pos] !== "=" || line[pos + 1] !== '"')
          throw new Error(`${where}: expected =" after ${label}`)
        pos += 2
        let value = ""
        for (;;) {
          const c = line[pos]
          if (c === undefined) throw new Error(`${where}: unterminated label value`)
          if (c === '"') {
            pos++
            break
          }
          if (c === "\\") {
            const e = line[pos + 1]
            if (e === "\\") value += "\\"
            else if (e === '"') value += '"'
            else if (e === "n") value += "\n"
            else throw new Error(`${where}: bad escape \\${e ?? ""} in a label value`)
            pos += 2
            continue
          }
          value += c
          pos++
        }
        labels[label] = value
        while (line[pos] === " ") pos++
        if (line[pos] === ",") pos++
        else if (line[pos] !== "}") throw new Error(`${where}: expected , or } after a label`)
      }
    }
    if (line[pos] !== " ") throw new Error(`${where}: expected a space before the value`)
    const fields = line.slice(pos).trim().split(/\s+/)
    if (fields.length < 1 || fields.length > 2)
      throw new Error(`${where}: expected value [timestamp]`)
    const value = parseFloatStrict(fields[0] ?? "", where)
    if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1]))
      throw new Error(`${where}: bad timestamp`)
    const f = familyOf(name, families)
    if (f === undefined) throw new Error(`${where}: sample of ${name} before its TYPE`)
    enter(f.name, where)
    const key = `${name}{${Object.entries(labels)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(",")}}`
    if (series.has(key)) throw new Error(`${where}: series ${key} twice`)
    series.add(key)
    if (f.type === "counter" && (Number.isNaN(value) || value < 0))
      throw new Error(`${where}: a counter must be >= 0`)
    if (f.type === "summary" && name === f.name && labels.quantile === undefined)
      throw new Error(`${where}: a summary quantile sample needs a quantile label`)
    if (f.type === "summary" && name === f.name) parseFloatStrict(labels.quantile ?? "", where)
    f.samples.push({ name, labels, value })
  })
  return families
}

/** The value of one series, or undefined when it is absent. */
export const sampleValue = (
  families: ReadonlyMap<string, PromFamily>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined => {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue
      const keys = Object.keys(labels)
      if (keys.every((k) => s.labels[k] === labels[k])) return s.value
    }
  }
  return undefined
}
