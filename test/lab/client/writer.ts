// The client application of the lab: runs in the client namespace and writes
// through the VIP (or HAProxy), as an application would, logging every
// acknowledged write. A write is acknowledged when COMMIT returned OK; with
// semi-sync strict that means a replica has it too.
//   writer.ts --host H --port P --out FILE [--interval-ms 20] [--seconds S]
// Output, one JSON object a line: {"ack":id,"t":ms} for an acknowledged write,
// {"err":"...","id":id,"t":ms} for a failed or unknown one.
import { appendFileSync, readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import mysql from "mysql2/promise"

const { values } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string", default: "3306" },
    out: { type: "string" },
    user: { type: "string", default: "app" },
    password: { type: "string", default: "mha-lab-app" },
    "interval-ms": { type: "string", default: "20" },
    seconds: { type: "string", default: "0" },
    "query-timeout-ms": { type: "string", default: "3000" },
    /** TLS to MySQL, the servers verified against this CA (not their names: the VIP is in none). */
    ca: { type: "string" },
  },
})
if (!values.host || !values.out) {
  console.error("usage: writer.ts --host H --port P --out FILE [--interval-ms N] [--seconds S]")
  process.exit(2)
}
const out = values.out
const ssl = values.ca === undefined ? {} : { ssl: { ca: readFileSync(values.ca, "utf8") } }
const interval = Number(values["interval-ms"])
const stopAt = Number(values.seconds) > 0 ? Date.now() + Number(values.seconds) * 1000 : Infinity
const queryTimeout = Number(values["query-timeout-ms"])
let stopping = false
process.on("SIGTERM", () => {
  stopping = true
})

const record = (line: object) => appendFileSync(out, `${JSON.stringify(line)}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// Every attempt gets a new id (the pid keeps ids of writer restarts apart), so
// a write whose outcome is unknown never collides with a later one.
let id = process.pid * 1_000_000
let conn: mysql.Connection | undefined

while (!stopping && Date.now() < stopAt) {
  id++
  try {
    conn ??= await mysql.createConnection({
      host: values.host,
      port: Number(values.port),
      user: values.user,
      password: values.password,
      database: "app",
      connectTimeout: 1000,
      ...ssl,
    })
    await conn.query({
      sql: "INSERT INTO writes (id, client_ms) VALUES (?, ?)",
      values: [id, Date.now()],
      timeout: queryTimeout,
    })
    record({ ack: id, t: Date.now() })
    await sleep(interval)
  } catch (e) {
    record({ err: e instanceof Error ? e.message : String(e), id, t: Date.now() })
    conn?.destroy()
    conn = undefined
    await sleep(50)
  }
}
conn?.destroy()
