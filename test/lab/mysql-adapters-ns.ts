// Runs inside a lab host's network namespace (lab.exec) and uses the mysql2
// adapters over TCP exactly as the agent does: its own mysqld on
// 127.0.0.1:3306, the other members on their addresses, caching_sha2_password
// without TLS (the server's RSA key is fetched). Prints one JSON document.
//   node mysql-adapters-ns.ts '{"local":{"host":..,"port":..}|null,"remotes":[..],"user":..,"password":..,
//                              "connectTimeoutMs":..,"queryTimeoutMs":..,"probes":N}'
import { generateKeyPairSync } from "node:crypto"
import { Effect, Redacted } from "effect"
import {
  type MysqlClientSettings,
  type MysqlEndpoint,
  nameValueMap,
  withSession,
} from "../../agent/src/adapters/mysql-connection.ts"
import { makeMysqlProber } from "../../agent/src/adapters/mysql-prober.ts"
import { formatGtidSet } from "../../agent/src/core/gtid.ts"

interface Args {
  readonly local: { host: string; port: number } | null
  readonly remotes: ReadonlyArray<{ host: string; port: number }>
  readonly user: string
  readonly password: string
  readonly connectTimeoutMs: number
  readonly queryTimeoutMs: number
  readonly probes?: number
  /** Also check pinning the server's RSA key (serverPublicKey): the right key logs in, a wrong one does not. */
  readonly pinCheck?: boolean
}

const args = JSON.parse(process.argv[2] ?? "{}") as Args
const settings: MysqlClientSettings = {
  user: args.user,
  password: Redacted.make(args.password),
  connectTimeoutMs: args.connectTimeoutMs,
  queryTimeoutMs: args.queryTimeoutMs,
}

const program = Effect.gen(function* () {
  const local = args.local
  let localResult: unknown = null
  if (local !== null) {
    const endpoint: MysqlEndpoint = local
    // The login itself: TLS off, and which user the server saw.
    const session = yield* withSession("ns-check", endpoint, settings, (s) =>
      Effect.zipWith(
        s.query("ns-check", "SHOW SESSION STATUS LIKE 'Ssl_cipher'"),
        s.query("ns-check", "SELECT CURRENT_USER() AS u, @@port AS port"),
        (ssl, [who]) => ({
          sslCipher: nameValueMap(ssl).get("ssl_cipher") ?? null,
          currentUser: String(who?.u ?? ""),
          port: Number(who?.port),
        }),
      ),
    ).pipe(Effect.result)
    const prober = yield* makeMysqlProber({ local: endpoint, settings })
    const probes: Array<unknown> = []
    const costs: Array<number> = []
    for (let i = 0; i < (args.probes ?? 2); i++) {
      const r = yield* Effect.result(prober.probeLocal)
      if (r._tag === "Success") {
        costs.push(r.success.durationMs)
        if (i < 2)
          probes.push({
            ok: true,
            serverUuid: r.success.serverUuid,
            superReadOnly: r.success.superReadOnly,
            executed: formatGtidSet(r.success.executed),
            sourceHost: r.success.replica?.sourceHost ?? null,
            reconnected: r.success.reconnected,
            durationMs: r.success.durationMs,
          })
      } else probes.push({ ok: false, error: r.failure.message })
    }
    let pin: unknown = null
    if (args.pinCheck) {
      // LOCAL: a plain FLUSH PRIVILEGES is written to the binary log, which
      // on a replica is an errant transaction.
      const flush = withSession("ns-flush", endpoint, settings, (s) =>
        s.query("ns-flush", "FLUSH LOCAL PRIVILEGES"),
      )
      const pem = yield* withSession("ns-key", endpoint, settings, (s) =>
        s.query("ns-key", "SHOW STATUS LIKE 'Caching_sha2_password_rsa_public_key'"),
      ).pipe(
        Effect.map((rows) => nameValueMap(rows).get("caching_sha2_password_rsa_public_key") ?? ""),
      )
      const login = (serverPublicKey: string) =>
        Effect.andThen(
          flush,
          withSession(
            "ns-pinned",
            endpoint,
            { ...settings, connectTimeoutMs: 10_000, serverPublicKey },
            (s) => s.query("ns-pinned", "SELECT 1"),
          ),
        ).pipe(
          Effect.match({
            onSuccess: () => ({ ok: true }),
            onFailure: (e) => ({ ok: false, kind: e.kind, errno: e.errno }),
          }),
        )
      const wrong = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({
        type: "spki",
        format: "pem",
      }) as string
      pin = { keyLength: pem.length, right: yield* login(pem), wrong: yield* login(wrong) }
    }
    localResult = {
      pin,
      session:
        session._tag === "Success"
          ? { ok: true, ...session.success }
          : { ok: false, error: session.failure.message },
      probes,
      costs,
    }
  }
  const prober = yield* makeMysqlProber({
    local: args.local ?? { host: "127.0.0.1", port: 3306 },
    settings,
  })
  const remotes: Array<unknown> = []
  for (const r of args.remotes) {
    const started = performance.now()
    const p = yield* prober.probeRemote(r)
    const elapsedMs = performance.now() - started
    remotes.push(
      p._tag === "Reachable"
        ? { ...p, elapsedMs }
        : { _tag: p._tag, target: p.target, kind: p.error.kind, error: p.error.message, elapsedMs },
    )
  }
  return { local: localResult, remotes }
})

Effect.runPromise(Effect.scoped(program)).then(
  (out) => {
    process.stdout.write(`${JSON.stringify(out)}\n`)
  },
  (e) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`)
    process.exit(1)
  },
)
