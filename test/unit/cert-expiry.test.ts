// The metrics the shipped alerts need beyond the existing ones: when the
// mesh certificates run out (daemon/cert-expiry.ts, from the bytes the mesh
// loaded) and how often the split-brain guard fenced this node.
import assert from "node:assert/strict"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { beforeEach, describe, test } from "node:test"
import { earliestExpiry, meshCertificateExpiries } from "../../agent/src/daemon/cert-expiry.ts"
import { countOutputs, renderMetrics, resetCounters } from "../../agent/src/daemon/metrics.ts"
import { parsePromText, sampleValue } from "./prom-text.ts"

/** A self-signed certificate valid for `days` (openssl, as the lab's certificates). */
const selfSigned = (dir: string, name: string, days: number): string => {
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
      .concat(["-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.pem`)])
      .concat(["-days", String(days), "-subj", `/CN=${name}`]),
    { stdio: "ignore" },
  )
  return readFileSync(join(dir, `${name}.pem`), "utf8")
}

beforeEach(() => resetCounters())

describe("metrics for the shipped alerts", () => {
  test("certificate expiry: the earliest notAfter of each PEM, in seconds since the epoch", () => {
    const dir = mkdtempSync(join(tmpdir(), "mha-cert-expiry-"))
    try {
      const cert = selfSigned(dir, "db1", 10)
      const ca = selfSigned(dir, "ca", 400)
      const day = 86_400
      const now = Date.now() / 1000
      const c = earliestExpiry(cert)
      assert.ok(c !== null && Math.abs(c - (now + 10 * day)) < day, `${c}`)
      // A bundle: the earliest counts.
      assert.equal(earliestExpiry(`${ca}\n${cert}`), c)
      assert.equal(earliestExpiry("not a certificate"), null)
      const certificates = meshCertificateExpiries({ cert: Buffer.from(cert), ca })
      assert.deepEqual(
        certificates.map((x) => x.certificate),
        ["mesh_cert", "mesh_ca"],
      )
      const f = parsePromText(
        renderMetrics({ cluster: "prod", node: "db1", state: undefined, certificates }),
      )
      assert.equal(
        sampleValue(f, "mha_certificate_expiry_timestamp_seconds", { certificate: "mesh_cert" }),
        c,
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test("split-brain fences: counted from the on_split_brain hook the guard always asks for", () => {
    countOutputs([
      { _tag: "Mysql", id: 1, action: { _tag: "Fence", until: "pending" } },
      { _tag: "RunHook", id: 2, hook: "on_split_brain", env: {} },
      { _tag: "RunHook", id: 3, hook: "on_fence", env: {} },
    ])
    const f = parsePromText(renderMetrics({ cluster: "prod", node: "db1", state: undefined }))
    assert.equal(sampleValue(f, "mha_split_brain_fences_total"), 1)
    assert.equal(sampleValue(f, "mha_fencing_actions_total", { action: "local_fence" }), 1)
  })
})
