// Runs one operation of the real VIP adapter inside a lab host (the agent's
// process runs in the host's network namespace, so this does too), then
// prints one JSON line: {"ok":true,"result":..,"metrics":..} or
// {"ok":false,"error":{..}} (exit status 0 either way, so the caller gets the line).
//
// usage: node vip-node.ts '<VipNodeRequest as JSON>'
import { Effect, Logger } from "effect"
import { makeVip, type VipOptions } from "../../agent/src/adapters/vip.ts"

export type VipOp =
  | "holds"
  | "detect"
  | "acquire"
  | "release"
  | "refresh"
  | "reconcile-hold"
  | "reconcile-release"
  /** acquire, then release at once: the pending announcements must stop. */
  | "acquire-then-release"

export interface VipNodeRequest {
  readonly op: VipOp
  readonly options: VipOptions
  /** Wait until the gratuitous-ARP bursts of an acquire have finished. */
  readonly awaitAnnouncements?: boolean
}

const request = JSON.parse(process.argv[2] ?? "{}") as VipNodeRequest

const program = Effect.gen(function* () {
  const vip = yield* makeVip(request.options)
  const result: unknown = yield* (() => {
    switch (request.op) {
      case "holds":
        return vip.holds
      case "detect":
        return vip.detectDuplicate
      case "acquire":
        return vip.acquire
      case "release":
        return vip.release
      case "refresh":
        return vip.refresh
      case "reconcile-hold":
        return vip.reconcile(true)
      case "reconcile-release":
        return vip.reconcile(false)
      case "acquire-then-release":
        return Effect.gen(function* () {
          yield* vip.acquire
          yield* Effect.sleep(100)
          const released = yield* vip.release
          // Had the release not cancelled them, the bursts would run now.
          yield* Effect.sleep((request.options.garpDelayMs ?? 0) + 3_000)
          return released
        })
    }
  })()
  if (request.awaitAnnouncements) yield* vip.awaitAnnouncements
  const metrics = yield* vip.metrics
  return { result: result ?? null, metrics }
}).pipe(Effect.scoped)

const exit = await Effect.runPromiseExit(
  program.pipe(Effect.provide(Logger.layer([Logger.consoleJson]))),
)
if (exit._tag === "Success") {
  process.stdout.write(`${JSON.stringify({ ok: true, ...exit.value })}\n`)
} else {
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  const error = failure?._tag === "Fail" ? failure.error : String(exit.cause)
  process.stdout.write(
    `${JSON.stringify({ ok: false, error, message: (error as { message?: string }).message ?? String(error) })}\n`,
  )
}
