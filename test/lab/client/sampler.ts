// Samples every node's writability from the client namespace: a node counts
// as writable when a client can reach it and it has read_only and
// super_read_only both OFF. Used to check "never two writable nodes at once".
//   sampler.ts --hosts db1=10.88.0.11,db2=10.88.0.12 --out FILE [--interval-ms 100]
// Output, one JSON object per round: {"t":ms,"nodes":{"db1":"writable"|"read-only"|"unreachable",...}}
import { appendFileSync, readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import mysql from "mysql2/promise"

const { values } = parseArgs({
  options: {
    hosts: { type: "string" },
    out: { type: "string" },
    user: { type: "string", default: "mha" },
    password: { type: "string", default: "mha-lab-agent" },
    "interval-ms": { type: "string", default: "100" },
    /** TLS to MySQL, the servers verified against this CA. */
    ca: { type: "string" },
  },
})
if (!values.hosts || !values.out) {
  console.error("usage: sampler.ts --hosts name=addr,... --out FILE [--interval-ms N]")
  process.exit(2)
}
const out = values.out
const ssl = values.ca === undefined ? {} : { ssl: { ca: readFileSync(values.ca, "utf8") } }
const hosts = values.hosts.split(",").map((pair) => {
  const [name, address] = pair.split("=")
  return { name: name ?? "", address: address ?? "" }
})
let stopping = false
process.on("SIGTERM", () => {
  stopping = true
})

type Sample = "writable" | "read-only" | "unreachable"
const connections = new Map<string, mysql.Connection>()

const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T> =>
  Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error("timeout")), ms)),
  ])

const sample = async (h: { name: string; address: string }): Promise<Sample> => {
  try {
    let conn = connections.get(h.name)
    if (!conn) {
      conn = await withTimeout(
        mysql.createConnection({
          host: h.address,
          user: values.user,
          password: values.password,
          connectTimeout: 300,
          ...ssl,
        }),
        400,
      )
      connections.set(h.name, conn)
    }
    const [rows] = await withTimeout(
      conn.query("SELECT @@read_only AS ro, @@super_read_only AS sro"),
      300,
    )
    const row = (rows as Array<{ ro: number; sro: number }>)[0]
    return row && row.ro === 0 && row.sro === 0 ? "writable" : "read-only"
  } catch {
    connections.get(h.name)?.destroy()
    connections.delete(h.name)
    return "unreachable"
  }
}

while (!stopping) {
  const started = Date.now()
  const results = await Promise.all(hosts.map(sample))
  const nodes = Object.fromEntries(hosts.map((h, i) => [h.name, results[i]]))
  appendFileSync(out, `${JSON.stringify({ t: started, nodes })}\n`)
  await new Promise((r) =>
    setTimeout(r, Math.max(0, Number(values["interval-ms"]) - (Date.now() - started))),
  )
}
for (const c of connections.values()) c.destroy()
