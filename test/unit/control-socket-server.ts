// A control socket served as the daemon serves it, over an ACTIVE primary's
// state, in a process of its own: test/unit/control-socket.test.ts abuses it
// and reads this process's RSS. Arguments: the socket path, then optionally
// a JSON of limits. Prints "ready" once listening; stops on SIGTERM.
import { Effect } from "effect"
import pino from "pino"
import {
  type ControlSocketLimits,
  DEFAULT_CONTROL_LIMITS,
  serveControlSocket,
} from "../../agent/src/daemon/control-socket.ts"
import { activeState } from "./daemon-states.ts"

const [path, limitsJson] = process.argv.slice(2)
if (path === undefined) throw new Error("usage: control-socket-server.ts SOCKET [LIMITS_JSON]")
const limits: ControlSocketLimits = {
  ...DEFAULT_CONTROL_LIMITS,
  ...(limitsJson === undefined ? {} : (JSON.parse(limitsJson) as Partial<ControlSocketLimits>)),
}
const state = activeState()
const program = Effect.scoped(
  Effect.gen(function* () {
    yield* serveControlSocket(
      {
        path,
        cluster: () => "unit",
        state: () => state,
        ask: async () => ({ ok: true, message: "done" }),
        reload: async () => ({ ok: true, message: "nothing changed" }),
        log: pino({ level: "silent" }),
      },
      limits,
    )
    process.stdout.write("ready\n")
    yield* Effect.callback<void>((resume) => {
      process.once("SIGTERM", () => resume(Effect.void))
    })
  }),
)
Effect.runPromise(program).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${String(e)}\n`)
    process.exit(1)
  },
)
