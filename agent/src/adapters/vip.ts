/**
 * The virtual IP (protocol.md section 11) on this host's interface, with the
 * tools every host has (iproute2 and iputils-arping; Node has no packet
 * sockets):
 *
 * - `holds`: is the address on the interface (`ip -j -4 addr show dev IFACE`);
 * - `detectDuplicate`: `arping -D -c 2 -w 2 -I IFACE ADDR`; its exit status
 *   says whether another host answers for the address, and the answer's MAC
 *   is logged;
 * - `acquire`: duplicate detection (logged, not fatal: the caller holds the
 *   lease and the other holder must fence itself), `ip addr add`, then
 *   gratuitous ARP both ways (`arping -U` and `arping -A`, in parallel), a
 *   burst now and a second burst `garpDelayMs` later in the background;
 * - `refresh`: one burst (the periodic `garp_refresh`, and after a heal), none
 *   while one still runs;
 * - `release`: cancels a pending delayed burst (never announce an address
 *   after giving it up), then `ip addr del`;
 * - `reconcile(shouldHold)`: makes "VIP present" equal to shouldHold.
 *
 * Every command runs in its own process group with a timeout; a failure is a
 * {@link VipCommandError} naming the command, how it ended and its stderr.
 * Adding an address that is present, or deleting one that is absent, is not
 * an error. IPv4 only: arping has no IPv6 counterpart here.
 */
import { isIPv4 } from "node:net"
import { Effect, Fiber, Schema, type Scope } from "effect"
import type { Config } from "../../../shared/config.ts"
import { describeRun, type ProcessRunResult, runInProcessGroup } from "./process-group.ts"

export interface VipOptions {
  /** IPv4 address of the VIP. */
  readonly address: string
  readonly prefix: number
  readonly interface: string
  /** Packets per gratuitous-ARP burst (each of -U and -A). Default 3. */
  readonly garpCount?: number
  /** Delay of the second burst after taking the VIP. Default 5000 ms (0: no second burst). */
  readonly garpDelayMs?: number
  /** Timeout of each `ip` command. Default 5000 ms. */
  readonly commandTimeoutMs?: number
  /** Probes of the duplicate detection (`arping -D -c N -w W`). Defaults 2 and 2 s. */
  readonly duplicateProbes?: number
  readonly duplicateWaitSeconds?: number
  /**
   * "before": acquire waits for the duplicate check (default). "background":
   * the address is added at once and the check runs beside the announcements,
   * so that a failover does not wait the check's seconds; a holder it finds is
   * logged all the same (protocol.md section 11 only asks to log it).
   */
  readonly duplicateCheck?: "before" | "background"
  /** Executables (looked up in PATH). */
  readonly ipCommand?: string
  readonly arpingCommand?: string
}

/** The VIP options of a config, or undefined when the config has no VIP. */
export const vipOptionsFromConfig = (config: Config): VipOptions | undefined => {
  const vip = config.vip
  if (vip === undefined) return undefined
  const [address = "", prefix = "32"] = vip.address.split("/")
  return {
    address,
    prefix: Number(prefix),
    interface: vip.interface,
    garpCount: vip.garp_count,
    garpDelayMs: vip.garp_delay,
  }
}

/** A command of the VIP adapter failed. */
export class VipCommandError extends Schema.TaggedError<VipCommandError>()("VipCommandError", {
  command: Schema.String,
  outcome: Schema.Literals(["exited", "timed-out", "signaled", "spawn-failed"]),
  exitCode: Schema.NullOr(Schema.Number),
  stderr: Schema.String,
  summary: Schema.String,
}) {
  override get message(): string {
    return `${this.command} ${this.summary}${this.stderr === "" ? "" : `: ${this.stderr}`}`
  }
}

/** The VIP options are unusable (not IPv4, bad prefix, empty interface). */
export class VipConfigError extends Schema.TaggedError<VipConfigError>()("VipConfigError", {
  detail: Schema.String,
}) {
  override get message(): string {
    return `VIP configuration: ${this.detail}`
  }
}

export type DuplicateCheck =
  | { readonly _tag: "Free" }
  /** Another host answered for the address; its MAC address(es). */
  | { readonly _tag: "Taken"; readonly macs: ReadonlyArray<string> }

export interface AcquireResult {
  /** False when the address was already on the interface. */
  readonly added: boolean
  /** Only checked when the address had to be added. */
  readonly duplicate: DuplicateCheck | null
}

export type ReconcileResult = "added" | "removed" | "unchanged"

export interface VipMetrics {
  readonly bursts: number
  readonly burstFailures: number
  readonly duplicatesSeen: number
  readonly adds: number
  readonly removes: number
}

export interface VipService {
  readonly address: string
  readonly interface: string
  readonly holds: Effect.Effect<boolean, VipCommandError>
  readonly detectDuplicate: Effect.Effect<DuplicateCheck, VipCommandError>
  readonly acquire: Effect.Effect<AcquireResult, VipCommandError>
  readonly release: Effect.Effect<boolean, VipCommandError>
  readonly refresh: Effect.Effect<void, VipCommandError>
  /** Keeps the address, announced no more: cancels a burst still pending from acquire. */
  readonly quiet: Effect.Effect<void>
  readonly reconcile: (shouldHold: boolean) => Effect.Effect<ReconcileResult, VipCommandError>
  /** Waits until the announcements started by the last acquire have finished (or were cancelled). */
  readonly awaitAnnouncements: Effect.Effect<void>
  readonly metrics: Effect.Effect<VipMetrics>
}

// ---------------------------------------------------------------------------

interface Ran {
  readonly command: string
  readonly result: ProcessRunResult
}

const runCommand = (
  file: string,
  args: ReadonlyArray<string>,
  timeoutMs: number,
): Effect.Effect<Ran> =>
  Effect.map(
    runInProcessGroup({ file, args, timeoutMs, killGraceMs: 200, env: process.env }),
    (result) => ({ command: [file, ...args].join(" "), result }),
  )

const toError = ({ command, result }: Ran): VipCommandError =>
  new VipCommandError({
    command,
    outcome:
      result._tag === "Exited"
        ? "exited"
        : result._tag === "TimedOut"
          ? "timed-out"
          : result._tag === "Signaled"
            ? "signaled"
            : "spawn-failed",
    exitCode: result._tag === "Exited" ? result.code : null,
    stderr: (result._tag === "SpawnFailed" ? result.reason : result.stderrTail).trim(),
    summary: describeRun(result),
  })

const exitCode = (r: Ran): number | null => (r.result._tag === "Exited" ? r.result.code : null)

const MAC = /\[([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})\]/g

/** MAC addresses in arping's "Unicast reply from A [MAC]" lines. */
export const parseArpingMacs = (stdout: string): ReadonlyArray<string> =>
  [...new Set([...stdout.matchAll(MAC)].map((m) => (m[1] ?? "").toLowerCase()))].filter(
    (m) => m !== "",
  )

interface AddrInfo {
  readonly family?: string
  readonly local?: string
  readonly prefixlen?: number
}

/** The prefix length of `address` on the interface, from `ip -j addr show`; undefined when absent. */
export const findAddress = (json: string, address: string): number | undefined => {
  const links = JSON.parse(json === "" ? "[]" : json) as ReadonlyArray<{
    addr_info?: ReadonlyArray<AddrInfo>
  }>
  for (const link of links) {
    for (const a of link.addr_info ?? []) {
      if (a.family === "inet" && a.local === address) return a.prefixlen ?? 32
    }
  }
  return undefined
}

/** Builds the VIP adapter; the delayed bursts run in the given scope. */
export const makeVip = (
  options: VipOptions,
): Effect.Effect<VipService, VipConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    if (!isIPv4(options.address)) {
      return yield* new VipConfigError({ detail: `${options.address} is not an IPv4 address` })
    }
    if (!Number.isInteger(options.prefix) || options.prefix < 1 || options.prefix > 32) {
      return yield* new VipConfigError({ detail: `prefix /${options.prefix} is not 1 to 32` })
    }
    if (!/^[^\s/]{1,15}$/.test(options.interface)) {
      return yield* new VipConfigError({
        detail: `'${options.interface}' is not an interface name`,
      })
    }
    const scope = yield* Effect.scope
    const ip = options.ipCommand ?? "ip"
    const arping = options.arpingCommand ?? "arping"
    const iface = options.interface
    const address = options.address
    const count = Math.max(1, options.garpCount ?? 3)
    const delayMs = Math.max(0, options.garpDelayMs ?? 5_000)
    const timeoutMs = options.commandTimeoutMs ?? 5_000
    const dadProbes = Math.max(1, options.duplicateProbes ?? 2)
    const dadWait = Math.max(1, options.duplicateWaitSeconds ?? 2)
    // arping sends one packet a second.
    const burstTimeoutMs = (count + 3) * 1_000
    const counters = { bursts: 0, burstFailures: 0, duplicatesSeen: 0, adds: 0, removes: 0 }
    let delayed: Fiber.Fiber<void> | undefined

    const annotate = Effect.annotateLogs({
      component: "vip",
      vip: `${address}/${options.prefix}`,
      interface: iface,
    })

    const mustSucceed = (r: Ran): Effect.Effect<Ran, VipCommandError> =>
      exitCode(r) === 0 ? Effect.succeed(r) : Effect.fail(toError(r))

    const prefixOnInterface: Effect.Effect<number | undefined, VipCommandError> = runCommand(
      ip,
      ["-j", "-4", "addr", "show", "dev", iface],
      timeoutMs,
    ).pipe(
      Effect.flatMap(mustSucceed),
      Effect.flatMap((r) =>
        Effect.try({
          try: () =>
            findAddress(r.result._tag === "Exited" ? r.result.stdoutTail.trim() : "", address),
          catch: (e) =>
            new VipCommandError({
              command: r.command,
              outcome: "exited",
              exitCode: 0,
              stderr: "",
              summary: `printed output that is not JSON (${String(e)})`,
            }),
        }),
      ),
    )

    const holds = Effect.map(prefixOnInterface, (p) => p !== undefined).pipe(
      Effect.withSpan("Vip.holds"),
    )

    const detectDuplicate: Effect.Effect<DuplicateCheck, VipCommandError> = Effect.gen(
      function* () {
        const r = yield* runCommand(
          arping,
          ["-D", "-c", String(dadProbes), "-w", String(dadWait), "-I", iface, address],
          (dadWait + 3) * 1_000,
        )
        // arping -D: 0 = nobody answered, 1 = a reply (the address is in use).
        const code = exitCode(r)
        if (code === 0) return { _tag: "Free" } as const
        if (code === 1 && r.result._tag === "Exited") {
          const macs = parseArpingMacs(r.result.stdoutTail)
          if (macs.length > 0) {
            counters.duplicatesSeen += 1
            yield* Effect.logWarning(
              `VIP ${address} is already answered for on ${iface} by ${macs.join(", ")}`,
            ).pipe(Effect.annotateLogs({ event: "vip-duplicate", macs: macs.join(",") }))
            return { _tag: "Taken", macs } as const
          }
        }
        return yield* Effect.fail(toError(r))
      },
    ).pipe(annotate, Effect.withSpan("Vip.detectDuplicate"))

    const burst: Effect.Effect<void, VipCommandError> = Effect.gen(function* () {
      const runs = yield* Effect.all(
        [
          runCommand(arping, ["-U", "-c", String(count), "-I", iface, address], burstTimeoutMs),
          runCommand(arping, ["-A", "-c", String(count), "-I", iface, address], burstTimeoutMs),
        ],
        { concurrency: 2 },
      )
      // Unsolicited ARP expects no answers, so arping's exit status is not a
      // verdict on its own: a failure is a timeout, a signal, or stderr output.
      const failed = runs.find(
        (r) =>
          r.result._tag !== "Exited" || (exitCode(r) !== 0 && r.result.stderrTail.trim() !== ""),
      )
      counters.bursts += 1
      if (failed) {
        counters.burstFailures += 1
        return yield* Effect.fail(toError(failed))
      }
    }).pipe(annotate, Effect.withSpan("Vip.garpBurst"))

    const cancelDelayed = Effect.suspend(() => {
      const f = delayed
      delayed = undefined
      return f === undefined ? Effect.void : Fiber.interrupt(f)
    })

    const add = Effect.gen(function* () {
      const r = yield* runCommand(
        ip,
        ["addr", "add", `${address}/${options.prefix}`, "dev", iface],
        timeoutMs,
      )
      if (exitCode(r) === 0) {
        counters.adds += 1
        return true
      }
      if (r.result._tag === "Exited" && /File exists/i.test(r.result.stderrTail)) return false
      return yield* Effect.fail(toError(r))
    })

    const acquire: Effect.Effect<AcquireResult, VipCommandError> = Effect.gen(function* () {
      yield* cancelDelayed
      const present = yield* prefixOnInterface
      let duplicate: DuplicateCheck | null = null
      let added = false
      if (present === undefined) {
        if (options.duplicateCheck === "background") {
          yield* Effect.forkIn(Effect.ignore(detectDuplicate), scope)
        } else {
          duplicate = yield* detectDuplicate
        }
        added = yield* add
      }
      yield* Effect.logInfo(
        `VIP ${address}/${options.prefix} ${added ? "added to" : "already on"} ${iface}; announcing it`,
      ).pipe(Effect.annotateLogs({ event: "vip-acquired" }))
      // The first burst runs now, the second after the delay; neither holds up
      // the caller, and release() cancels whatever has not run yet.
      const announce = Effect.andThen(
        burst,
        delayMs > 0 ? Effect.andThen(Effect.sleep(delayMs), burst) : Effect.void,
      ).pipe(
        Effect.catch((e) =>
          Effect.logWarning(`gratuitous ARP for ${address} failed: ${e.message}`).pipe(
            Effect.annotateLogs({ event: "vip-garp-failed" }),
          ),
        ),
        annotate,
      )
      delayed = yield* Effect.forkIn(announce, scope)
      return { added, duplicate }
    }).pipe(annotate, Effect.withSpan("Vip.acquire"))

    const release: Effect.Effect<boolean, VipCommandError> = Effect.gen(function* () {
      yield* cancelDelayed
      const present = yield* prefixOnInterface
      if (present === undefined) return false
      const r = yield* runCommand(
        ip,
        ["addr", "del", `${address}/${present}`, "dev", iface],
        timeoutMs,
      )
      if (exitCode(r) !== 0) {
        if (
          r.result._tag === "Exited" &&
          /Cannot assign requested address|Address not found/i.test(r.result.stderrTail)
        )
          return false
        return yield* Effect.fail(toError(r))
      }
      counters.removes += 1
      yield* Effect.logInfo(`VIP ${address} removed from ${iface}`).pipe(
        Effect.annotateLogs({ event: "vip-released" }),
      )
      return true
    }).pipe(annotate, Effect.withSpan("Vip.release"))

    const reconcile = (shouldHold: boolean): Effect.Effect<ReconcileResult, VipCommandError> =>
      Effect.gen(function* () {
        const has = yield* holds
        if (has === shouldHold) return "unchanged" as const
        if (shouldHold) {
          yield* acquire
          return "added" as const
        }
        yield* release
        yield* Effect.logWarning(`removed a stray VIP ${address} from ${iface}`).pipe(
          Effect.annotateLogs({ event: "vip-stray-removed" }),
        )
        return "removed" as const
      }).pipe(annotate, Effect.withSpan("Vip.reconcile", { attributes: { shouldHold } }))

    // Closing the scope (agent shutdown) cancels a pending delayed burst but
    // leaves the address alone: the next agent start reconciles it.
    yield* Effect.addFinalizer(() => cancelDelayed)

    // A refresh while a burst still runs (garp_refresh shorter than a burst) adds nothing.
    let refreshing = false
    const refresh = Effect.suspend(() => {
      if (refreshing) return Effect.void
      refreshing = true
      return burst.pipe(
        Effect.ensuring(
          Effect.sync(() => {
            refreshing = false
          }),
        ),
      )
    })

    return {
      address,
      interface: iface,
      holds,
      detectDuplicate,
      acquire,
      release,
      refresh,
      quiet: cancelDelayed,
      reconcile,
      awaitAnnouncements: Effect.suspend(() =>
        delayed === undefined ? Effect.void : Effect.asVoid(Fiber.await(delayed)),
      ),
      metrics: Effect.sync(() => ({ ...counters })),
    } satisfies VipService
  })
