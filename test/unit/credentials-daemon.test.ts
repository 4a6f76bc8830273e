// Issue 17 item 1, the daemon's part: both password files are read again on
// reload, a changed password is named (never shown), and the monitor
// password can be replaced under the settings the prober and actions hold.
import assert from "node:assert/strict"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { test } from "node:test"
import { Effect, Redacted } from "effect"
import { loadConfig } from "../../agent/src/daemon/config-load.ts"
import {
  changedSecrets,
  describeSecretChange,
  readSecrets,
  rotatingPassword,
} from "../../agent/src/daemon/credentials.ts"

test("a changed password file is a change, named without its content", async () => {
  const dir = await mkdtemp(join(tmpdir(), "mha-creds-"))
  try {
    const example = await Effect.runPromise(loadConfig("packaging/config.example.yaml"))
    const { tls: _tls, ...mysql } = example.mysql
    const config = {
      ...example,
      mysql: {
        ...mysql,
        monitor: { ...example.mysql.monitor, password_file: join(dir, "monitor") },
        replication: { ...example.mysql.replication, password_file: join(dir, "replication") },
      },
    }
    await writeFile(join(dir, "monitor"), "m-1\n")
    await writeFile(join(dir, "replication"), "r-1\n")
    const before = await Effect.runPromise(readSecrets(config))
    assert.deepEqual(changedSecrets(before, await Effect.runPromise(readSecrets(config))), [])
    await writeFile(join(dir, "replication"), "r-2\n")
    const after = await Effect.runPromise(readSecrets(config))
    assert.deepEqual(changedSecrets(before, after), ["replication"])
    assert.equal(Redacted.value(after.replication.password), "r-2")
    const line = describeSecretChange("replication")
    assert.match(line, /mysql\.replication\.password_file: the password changed/)
    assert.ok(!line.includes("r-2") && !String(after.replication.password).includes("r-2"))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test("the rotating monitor settings give every new connection the current password", () => {
  const rotating = rotatingPassword({
    user: "mha",
    password: Redacted.make("old"),
    connectTimeoutMs: 1_000,
    queryTimeoutMs: 1_000,
  })
  const held = rotating.settings
  assert.equal(Redacted.value(held.password), "old")
  rotating.replace(Redacted.make("new"))
  assert.equal(Redacted.value(held.password), "new")
  assert.equal(held.user, "mha")
})
