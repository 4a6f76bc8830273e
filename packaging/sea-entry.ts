// The binary's entry point (packaging/build.sh). Only `run`, `check-config`
// and the day-1 commands need the whole agent: the 4.6 MB bundle that V8 would parse
// on every start (about +20 MB RSS and +100 ms CPU for each `mha-agent
// status`, issue 16). So the binary's main script is the CLI alone (main.ts
// bundled without the daemon, Effect or mysql2), and the whole agent is a
// SEA asset, with its own V8 code cache, compiled only for those two commands.
import { getAsset } from "node:sea"
import { compileFunction } from "node:vm"
import { gunzipSync } from "node:zlib"

/** The CommonJS wrapper's parameters: build.sh makes the code cache with the same ones. */
const PARAMS = ["exports", "require", "module", "__filename", "__dirname"]

/** Commands that load the config, Effect or mysql2: the whole agent runs them. */
const WHOLE_AGENT = new Set(["run", "check-config", "make-certs", "mysql-accounts", "check-mysql"])

const command = process.argv[2]
if (command !== undefined && WHOLE_AGENT.has(command)) {
  // Two libuv threads instead of four (read when the pool first starts, which is
  // later): the agent's file and DNS work is light, and every thread that
  // allocates keeps a malloc arena of its own (issue 12). The operator's setting wins.
  process.env.UV_THREADPOOL_SIZE ??= "2"
  // Gzipped in the binary (build.sh): what an agent reads of it stays resident.
  const code = gunzipSync(getAsset("mha-agent.cjs.gz")).toString("utf8")
  const wrapper = compileFunction(code, PARAMS, {
    filename: "mha-agent.cjs",
    cachedData: gunzipSync(getAsset("mha-agent.cache.gz")),
  }) as ((...args: Array<unknown>) => void) & { cachedDataRejected?: boolean }
  if (wrapper.cachedDataRejected === true) {
    process.stderr.write("mha-agent: V8 rejected the agent's code cache (a slower start)\n")
  }
  const module = { exports: {} }
  // The bundle requires Node's built-in modules only: the SEA's require serves those.
  wrapper(module.exports, require, module, "mha-agent.cjs", ".")
} else {
  // main.ts runs the command itself when it is the program (__MHA_BUILD__ is defined).
  require("../agent/src/main.ts")
}
