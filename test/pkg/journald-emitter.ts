// Test-only: the agent's logger (agent/src/daemon/log.ts, exactly as the
// daemon builds it) writes four lines to stdout, for journald.test.ts, which
// runs this under systemd-cat with JOURNAL_STREAM set as systemd sets it.
// The secret that must never reach the journal comes in MHA_TEST_SECRET, not
// in argv: journald records the sender's command line (_CMDLINE).
import { makeLogger, underJournald } from "../../agent/src/daemon/log.ts"

const secret = process.env.MHA_TEST_SECRET
if (secret === undefined || secret === "") {
  process.stderr.write("journald-emitter.ts: set MHA_TEST_SECRET\n")
  process.exit(2)
}

const log = makeLogger({
  level: "info",
  journald: underJournald(),
  cluster: "jtest",
  node: "db1",
}).child({ term: 7 })

log.info({ event: "agent_started" }, "journald test: info")
log.warn({ event: "replica_lagging", lag_seconds: 42 }, "journald test: warning")
log.error({ event: "probe_failed" }, "journald test: error")

// What a failed CHANGE REPLICATION SOURCE looks like: mysql2's error echoes
// the statement, and the caller logs its config next to it.
const sql = `CHANGE REPLICATION SOURCE TO SOURCE_HOST = '10.0.0.2', SOURCE_USER = 'repl', SOURCE_PASSWORD = '${secret}', SOURCE_AUTO_POSITION = 1`
const err = Object.assign(new Error(`ER_ACCESS_DENIED_ERROR: Access denied; statement: ${sql}`), {
  code: "ER_ACCESS_DENIED_ERROR",
  errno: 1045,
  sql,
})
log.error(
  {
    event: "demote_failed",
    err,
    config: { mysql: { replication: { user: "repl", password: secret } } },
    url: `mysql://repl@10.0.0.2/?password=${secret}`,
  },
  "journald test: error with a password",
)
