import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect } from "effect"
import {
  effectLoggerLayer,
  makeLogger,
  scrubSecrets,
  underJournald,
} from "../../agent/src/daemon/log.ts"

const capture = (journald: boolean) => {
  const lines: string[] = []
  const logger = makeLogger(
    { level: "debug", journald, cluster: "c1", node: "db1" },
    { write: (line: string) => lines.push(line) },
  )
  return { lines, logger }
}

test("under journald every line starts with its syslog priority", () => {
  const { lines, logger } = capture(true)
  logger.debug("d")
  logger.info({ event: "lease_renewed", term: 3 }, "i")
  logger.warn("w")
  logger.error("e")
  logger.fatal("f")
  assert.deepEqual(
    lines.map((l) => l.slice(0, 3)),
    ["<7>", "<6>", "<4>", "<3>", "<2>"],
  )
  const info = JSON.parse(lines[1]!.slice(3)) as Record<string, unknown>
  assert.equal(info.cluster, "c1")
  assert.equal(info.node, "db1")
  assert.equal(info.event, "lease_renewed")
  assert.equal(info.term, 3)
})

test("without journald lines are plain JSON", () => {
  const { lines, logger } = capture(false)
  logger.warn("w")
  assert.equal(lines[0]?.[0], "{")
})

test("passwords never reach the log, wherever they hide", () => {
  const { lines, logger } = capture(true)
  const secret = "s3cr3t-Pa55"
  logger.error(
    {
      err: {
        message: "failed",
        sql: `CHANGE REPLICATION SOURCE TO SOURCE_HOST='db1', SOURCE_PASSWORD = '${secret}'`,
      },
    },
    "repoint failed",
  )
  logger.warn({ mysql: { monitor: { user: "mha", password: secret } } }, "config")
  logger.info(`CREATE USER 'x'@'%' IDENTIFIED WITH caching_sha2_password BY '${secret}'`)
  logger.info(`mysql://mha:pw@h/?password=${secret}`)
  for (const line of lines) assert.ok(!line.includes(secret), line)
  assert.match(lines[0]!, /SOURCE_PASSWORD = '\[redacted\]'/)
  assert.equal(JSON.parse(lines[1]!.slice(3)).mysql.monitor.password, "[redacted]")
})

test("scrubbing leaves ordinary text alone, password file paths included", () => {
  const text = '{"msg":"lease renewed","term":4,"password_file":"/etc/mha-agent/monitor.pw"}'
  assert.equal(scrubSecrets(text), text)
  assert.equal(scrubSecrets("read_only=ON"), "read_only=ON")
})

test("Effect's log calls go to the same logger with their annotations", async () => {
  const { lines, logger } = capture(true)
  await Effect.runPromise(
    Effect.logWarning("prober crashed").pipe(
      Effect.annotateLogs({ event: "fiber-restart", child: "prober" }),
      Effect.provide(effectLoggerLayer(logger)),
    ),
  )
  assert.equal(lines.length, 1)
  assert.equal(lines[0]!.slice(0, 3), "<4>")
  const entry = JSON.parse(lines[0]!.slice(3)) as Record<string, unknown>
  assert.equal(entry.msg, "prober crashed")
  assert.equal(entry.child, "prober")
})

test("journald is detected from JOURNAL_STREAM", () => {
  assert.equal(underJournald({ JOURNAL_STREAM: "8:1234" }), true)
  assert.equal(underJournald({}), false)
})
