// packaging/README.package, the operator's guide, without booting anything:
// its marked blocks are the steps the booted-hosts test follows (which runs
// them), and its config.yaml is one the agent accepts. The quick half of
// "the guide cannot rot" (test/lab/booted-guide.ts).
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { test } from "node:test"
import { decodeConfig } from "../../shared/config.ts"
import { GUIDE_FILE, GUIDE_STEPS, guideConfig, parseGuide } from "../lab/booted-guide.ts"

const text = readFileSync(GUIDE_FILE, "utf8")

test("the guide's blocks are the steps the booted-hosts test follows", () => {
  const blocks = parseGuide(text)
  assert.deepEqual([...blocks.map((b) => b.step)].sort(), [...GUIDE_STEPS].sort())
  for (const b of blocks) assert.ok(b.body.trim() !== "", `step ${b.step} has no command`)
})

test("the guide's config.yaml is valid for each of its members", () => {
  const config = guideConfig(parseGuide(text))
  for (const m of config.cluster.members) {
    const own = (p: string) => p.replaceAll(config.node, m.name)
    const r = decodeConfig({
      ...config,
      node: m.name,
      mesh: { ...config.mesh, cert: own(config.mesh.cert), key: own(config.mesh.key) },
    })
    assert.equal(r._tag, "Ok", JSON.stringify(r))
  }
})

test("a guide missing a step, or with an unmarked block, is refused with the reason", () => {
  const withoutPolkit = text.replace(/```sh on=every-host step=polkit\n[^`]*```\n/, "")
  assert.notEqual(withoutPolkit, text)
  assert.throws(() => parseGuide(withoutPolkit), /missing polkit/)
  const unmarked = `${text}\n\`\`\`sh\nrm -rf /\n\`\`\`\n`
  assert.throws(() => parseGuide(unmarked), /without on=WHERE step=NAME/)
  const unknown = text.replace("step=status", "step=look")
  assert.throws(() => parseGuide(unknown), /missing status; unknown look/)
})
