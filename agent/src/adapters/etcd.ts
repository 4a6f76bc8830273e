/**
 * Publishing the primary in etcd (the optional `etcd` section), through
 * etcd's v3 JSON gateway over HTTP(S) (`/v3/lease/grant`, `/v3/kv/txn`,
 * ...: keys and values base64, 64-bit numbers as strings), with Node's own
 * http and https modules: no client library, and TLS options (CA, client
 * certificate) that `fetch` would not take.
 *
 * The core decides when (core/discovery.ts: PublishPrimary while ACTIVE,
 * WithdrawPrimary when not); {@link makePrimaryPublisher} only keeps etcd
 * equal to the latest wish, in the background: `publish` and `withdraw`
 * return at once, so an unreachable etcd never holds up a failover. Every
 * failed request is logged and counted (`mha_etcd_publish_errors_total`) and
 * retried after a short pause.
 *
 * Layout, with `key` = etcd.key (default /mha-agent/<cluster>/primary):
 * - `key`: JSON {cluster, primary, host, port, term, published_at}, attached
 *   to a lease of etcd.lease_ttl that the publisher refreshes every ttl / 3.
 *   Withdrawing revokes the lease, which deletes the key only if it is still
 *   attached to it (a later primary's put attaches its own lease): a
 *   withdrawal never deletes another primary's key. A crashed agent's key is
 *   gone lease_ttl after its last refresh.
 * - `key/term`: the highest term ever published, zero-padded to 20 digits so
 *   that etcd's byte-wise comparison is numeric; no lease, it outlives the
 *   primary key. Why a separate key: an etcd compare cannot look inside a JSON
 *   value, and a compare on the primary key itself (its value or its
 *   mod_revision) protects nothing once its lease has expired, which is
 *   exactly when a stale primary might write. One transaction publishes:
 *   if `key/term` does not exist (create_revision = 0), or its value is below
 *   term + 1 (i.e. at most our term), put both keys; else nothing is written
 *   and the stored term is read back (refused, logged as an error).
 */
import { readFileSync } from "node:fs"
import http from "node:http"
import https from "node:https"
import type pino from "pino"
import type { Config } from "../../../shared/config.ts"

export interface EtcdClientOptions {
  readonly endpoints: ReadonlyArray<string>
  readonly requestTimeoutMs: number
  /** PEM contents (read at start). */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string }
  readonly auth?: { readonly username: string; readonly password: string }
}

/** An etcd request that failed: which endpoint(s), and why. */
export class EtcdError extends Error {
  override readonly name = "EtcdError"
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const unb64 = (s: string | undefined): string =>
  s === undefined ? "" : Buffer.from(s, "base64").toString("utf8")

/** A term as etcd compares it: 20 digits, so that byte order is numeric order. */
export const termText = (term: number): string => String(term).padStart(20, "0")

export type PublishResult =
  | { readonly _tag: "Published" }
  | { readonly _tag: "Refused"; readonly storedTerm: number }

interface Kv {
  readonly key?: string
  readonly value?: string
  readonly lease?: string
  readonly mod_revision?: string
}
interface RangeResponse {
  readonly kvs?: ReadonlyArray<Kv>
}
interface TxnResponse {
  readonly succeeded?: boolean
  readonly responses?: ReadonlyArray<{
    readonly response_txn?: TxnResponse
    readonly response_range?: RangeResponse
  }>
}

/** The few etcd v3 calls the publisher needs. */
export const makeEtcdClient = (options: EtcdClientOptions) => {
  let preferred = 0
  let token: string | null = null

  const post = (endpoint: string, path: string, body: unknown): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const url = new URL(path, endpoint)
      const tls = url.protocol === "https:" ? (options.tls ?? {}) : null
      const headers: Record<string, string> = { "content-type": "application/json" }
      if (token !== null && !path.startsWith("/v3/auth/")) headers.authorization = token
      const req = (tls === null ? http : https).request(
        url,
        {
          method: "POST",
          headers,
          agent: false,
          ...(tls === null ? {} : tls),
        },
        (res) => {
          const chunks: Array<Buffer> = []
          res.on("data", (c: Buffer) => chunks.push(c))
          res.on("end", () => {
            clearTimeout(timer)
            const text = Buffer.concat(chunks).toString("utf8")
            // A streaming call (lease keep-alive) answers one JSON object per line.
            const first = text.split("\n").find((l) => l.trim() !== "") ?? ""
            let json: unknown
            try {
              json = first === "" ? {} : JSON.parse(first)
            } catch {
              return reject(new EtcdError(`${endpoint}${path}: HTTP ${res.statusCode}: ${text}`))
            }
            const error = (json as { error?: unknown; message?: unknown } | null)?.error
            if (res.statusCode !== 200 || error !== undefined) {
              const message =
                (json as { message?: string }).message ??
                (typeof error === "string" ? error : JSON.stringify(error ?? text))
              return reject(new EtcdError(`${endpoint}${path}: HTTP ${res.statusCode}: ${message}`))
            }
            resolve(json)
          })
          res.on("error", (e) => {
            clearTimeout(timer)
            reject(e)
          })
        },
      )
      const timer = setTimeout(
        () =>
          req.destroy(
            new EtcdError(`${endpoint}${path}: no answer within ${options.requestTimeoutMs} ms`),
          ),
        options.requestTimeoutMs,
      )
      req.on("error", (e) => {
        clearTimeout(timer)
        reject(e instanceof EtcdError ? e : new EtcdError(`${endpoint}${path}: ${e.message}`))
      })
      req.end(JSON.stringify(body))
    })

  const authenticate = async (endpoint: string): Promise<void> => {
    if (options.auth === undefined) return
    const r = (await post(endpoint, "/v3/auth/authenticate", {
      name: options.auth.username,
      password: options.auth.password,
    })) as { token?: string }
    if (typeof r.token !== "string")
      throw new EtcdError(`${endpoint}: authentication gave no token`)
    token = r.token
  }

  /** One call, on the endpoint that last answered first, then on the others in turn. */
  const call = async (path: string, body: unknown): Promise<unknown> => {
    const errors: Array<string> = []
    const n = options.endpoints.length
    for (let i = 0; i < n; i++) {
      const index = (preferred + i) % n
      const endpoint = options.endpoints[index] ?? ""
      try {
        if (options.auth !== undefined && token === null) await authenticate(endpoint)
        let result: unknown
        try {
          result = await post(endpoint, path, body)
        } catch (e) {
          // An expired token (etcd's simple tokens last 5 minutes): once more with a new one.
          if (options.auth === undefined || !/token|auth/i.test(String(e))) throw e
          token = null
          await authenticate(endpoint)
          result = await post(endpoint, path, body)
        }
        preferred = index
        return result
      } catch (e) {
        errors.push(e instanceof Error ? e.message : String(e))
      }
    }
    throw new EtcdError(errors.join("; "))
  }

  return {
    /** A new lease of `ttlSeconds`; its id. */
    grant: async (ttlSeconds: number): Promise<string> => {
      const r = (await call("/v3/lease/grant", { TTL: String(ttlSeconds) })) as { ID?: string }
      if (r.ID === undefined) throw new EtcdError("lease grant answered no ID")
      return r.ID
    },
    /** Refreshes a lease; the TTL it has again, 0 when it expired (or was revoked). */
    keepAlive: async (lease: string): Promise<number> => {
      const r = (await call("/v3/lease/keepalive", { ID: lease })) as {
        result?: { TTL?: string }
      }
      return Number(r.result?.TTL ?? 0)
    },
    /** Revokes a lease (deleting the keys still attached to it); an unknown lease is no error. */
    revoke: async (lease: string): Promise<void> => {
      try {
        await call("/v3/lease/revoke", { ID: lease })
      } catch (e) {
        if (!/lease not found/i.test(String(e))) throw e
      }
    },
    /** The value of a key, null when absent. */
    get: async (key: string): Promise<string | null> => {
      const r = (await call("/v3/kv/range", { key: b64(key) })) as RangeResponse
      const kv = r.kvs?.[0]
      return kv === undefined ? null : unb64(kv.value)
    },
    /** Puts a key without any condition (tests: a stale writer). */
    put: async (key: string, value: string): Promise<void> => {
      await call("/v3/kv/put", { key: b64(key), value: b64(value) })
    },
    /**
     * Writes `value` at `key` under `lease` and `term` at `termKey`, in one
     * transaction, only if `termKey` holds no higher term (see the header).
     */
    publish: async (
      key: string,
      termKey: string,
      value: string,
      term: number,
      lease: string,
    ): Promise<PublishResult> => {
      const puts = [
        { request_put: { key: b64(termKey), value: b64(termText(term)) } },
        { request_put: { key: b64(key), value: b64(value), lease } },
      ]
      const r = (await call("/v3/kv/txn", {
        compare: [{ key: b64(termKey), target: "CREATE", result: "EQUAL", create_revision: "0" }],
        success: puts,
        failure: [
          {
            request_txn: {
              compare: [
                {
                  key: b64(termKey),
                  target: "VALUE",
                  result: "LESS",
                  value: b64(termText(term + 1)),
                },
              ],
              success: puts,
              failure: [{ request_range: { key: b64(termKey) } }],
            },
          },
        ],
      })) as TxnResponse
      if (r.succeeded === true) return { _tag: "Published" }
      const inner = r.responses?.[0]?.response_txn
      if (inner?.succeeded === true) return { _tag: "Published" }
      const stored = inner?.responses?.[0]?.response_range?.kvs?.[0]?.value
      return { _tag: "Refused", storedTerm: Number(unb64(stored)) }
    },
  }
}

export type EtcdClient = ReturnType<typeof makeEtcdClient>

/** How the publisher fared, for /metrics. */
export interface EtcdCounters {
  /** Requests to etcd that failed (unreachable, timed out, refused by etcd). */
  errors: number
  /** Publications refused because etcd holds a higher term. */
  refused: number
  publishes: number
  withdrawals: number
  /** 1 while this agent's key is in etcd as far as it knows. */
  published: number
}

/** This process's publisher counters (one publisher per agent). */
export const etcdCounters: EtcdCounters = {
  errors: 0,
  refused: 0,
  publishes: 0,
  withdrawals: 0,
  published: 0,
}

export interface PublisherOptions {
  readonly client: EtcdClient
  readonly key: string
  readonly leaseTtlSeconds: number
  /** The JSON value for a term. */
  readonly value: (term: number) => string
  readonly log: pino.Logger
  readonly counters?: EtcdCounters
  /** How long `close` may take (default 2000 ms): a stopping agent does not wait for an unreachable etcd. */
  readonly closeWithinMs?: number
}

export interface PrimaryPublisher {
  /** Keep this node published as the primary of `term` (returns at once). */
  readonly publish: (term: number) => void
  /** Not the primary any more: remove the key (returns at once). */
  readonly withdraw: (term: number) => void
  /** Stops the background loop and revokes the lease if one is held, within closeWithinMs. */
  readonly close: () => Promise<void>
}

/**
 * Keeps etcd equal to the latest wish, in one background loop: grant a
 * lease and publish (the term-guarded transaction), refresh the lease every
 * ttl / 3, publish again if it expired, revoke it on withdrawal. A failure
 * is logged, counted and retried after min(1 s, ttl / 3).
 */
export const makePrimaryPublisher = (o: PublisherOptions): PrimaryPublisher => {
  const counters = o.counters ?? etcdCounters
  const ttlMs = o.leaseTtlSeconds * 1000
  const refreshMs = Math.max(200, Math.floor(ttlMs / 3))
  const retryMs = Math.min(1000, refreshMs)
  const termKey = `${o.key}/term`
  let desired: number | null = null
  let refusedTerm: number | null = null
  let held: { term: number; lease: string; refreshedAt: number } | null = null
  /** Leases of publications whose outcome is unknown: revoked when possible (else they expire). */
  const orphans = new Map<string, number>()
  let closed = false
  let wake: (() => void) | null = null
  let failing = false

  /** A wish arrived since the loop last looked: it must not sleep. */
  let kicked = false
  const kick = () => {
    kicked = true
    const w = wake
    wake = null
    w?.()
  }
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (kicked) return resolve()
      const t = setTimeout(() => {
        wake = null
        resolve()
      }, ms)
      // The loop alone never keeps the process alive.
      t.unref()
      wake = () => {
        clearTimeout(t)
        resolve()
      }
    })
  const failed = (what: string, e: unknown) => {
    counters.errors++
    // One warning per outage, then debug: a long etcd outage must not flood the log.
    const text = e instanceof Error ? e.message : String(e)
    if (!failing) o.log.warn({ event: "etcd-error" }, `etcd: ${what} failed: ${text}`)
    else o.log.debug({ event: "etcd-error" }, `etcd: ${what} failed: ${text}`)
    failing = true
  }

  const revokeOrphans = async () => {
    for (const [lease, at] of orphans) {
      if (Date.now() - at > ttlMs) {
        orphans.delete(lease)
        continue
      }
      await o.client.revoke(lease)
      orphans.delete(lease)
    }
  }

  const once = async (): Promise<number> => {
    const want = desired
    if (want === null || want === refusedTerm) {
      if (held !== null) {
        const { lease, term } = held
        await o.client.revoke(lease)
        held = null
        counters.withdrawals++
        counters.published = 0
        o.log.info(
          { event: "etcd-withdrawn", term },
          `etcd: ${o.key} withdrawn (lease revoked; term ${term})`,
        )
      }
      await revokeOrphans()
      return orphans.size > 0 ? retryMs : 3_600_000
    }
    if (held !== null && held.term !== want) {
      // A new term while published (a reclaim): the new publication replaces the old one.
      orphans.set(held.lease, held.refreshedAt)
      held = null
    }
    if (held === null) {
      const lease = await o.client.grant(o.leaseTtlSeconds)
      const grantedAt = Date.now()
      orphans.set(lease, grantedAt)
      const r = await o.client.publish(o.key, termKey, o.value(want), want, lease)
      orphans.delete(lease)
      if (r._tag === "Refused") {
        refusedTerm = want
        counters.refused++
        counters.errors++
        o.log.error(
          { event: "etcd-refused", term: want, stored: r.storedTerm },
          `etcd: not published: ${termKey} holds term ${r.storedTerm}, above this node's term ${want} (a stale primary never overwrites a newer one)`,
        )
        await o.client.revoke(lease)
        return 0
      }
      held = { term: want, lease, refreshedAt: grantedAt }
      counters.publishes++
      counters.published = 1
      o.log.info(
        { event: "etcd-published", term: want },
        `etcd: ${o.key} names this node, term ${want} (lease ${o.leaseTtlSeconds} s)`,
      )
      await revokeOrphans()
      return refreshMs
    }
    const due = held.refreshedAt + refreshMs - Date.now()
    if (due > 0) return due
    const ttl = await o.client.keepAlive(held.lease)
    if (ttl <= 0) {
      // Expired (etcd unreachable for longer than the lease, or restarted): publish again.
      o.log.warn(
        { event: "etcd-lease-lost", term: held.term },
        `etcd: the lease of ${o.key} expired; publishing again`,
      )
      held = null
      counters.published = 0
      return 0
    }
    held = { ...held, refreshedAt: Date.now() }
    return refreshMs
  }

  const loop = async () => {
    while (!closed) {
      kicked = false
      let wait: number
      try {
        wait = await once()
        failing = false
      } catch (e) {
        failed(desired === null ? "withdrawal" : "publication", e)
        if (held !== null && Date.now() - held.refreshedAt > ttlMs) {
          // The lease has run out in etcd anyway: start over once etcd answers.
          held = null
          counters.published = 0
        }
        wait = retryMs
      }
      if (!closed && wait > 0) await pause(wait)
    }
    // Stopped: the key goes with its lease now rather than lease_ttl later.
    const lease = held?.lease
    held = null
    counters.published = 0
    if (lease !== undefined) await o.client.revoke(lease).catch(() => undefined)
  }
  const running = loop()

  return {
    publish: (term) => {
      if (desired === term) return
      desired = term
      kick()
    },
    withdraw: (term) => {
      if (desired !== null && desired > term) return
      desired = null
      kick()
    },
    close: async () => {
      closed = true
      kick()
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        running,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, o.closeWithinMs ?? 2_000)
        }),
      ])
      clearTimeout(timer)
    },
  }
}

/** The publisher's settings from the config file; undefined without an `etcd` section. */
export const etcdOptionsFromConfig = (
  c: Config,
):
  | {
      readonly client: EtcdClientOptions
      readonly key: string
      readonly leaseTtlSeconds: number
      readonly value: (term: number) => string
    }
  | undefined => {
  const e = c.etcd
  if (e === undefined) return undefined
  const read = (p: string | undefined) => (p === undefined ? undefined : readFileSync(p, "utf8"))
  const self = c.cluster.members.find((m) => m.name === c.node)
  const tls =
    e.tls === undefined
      ? undefined
      : {
          ...(e.tls.ca === undefined ? {} : { ca: read(e.tls.ca) ?? "" }),
          ...(e.tls.cert === undefined ? {} : { cert: read(e.tls.cert) ?? "" }),
          ...(e.tls.key === undefined ? {} : { key: read(e.tls.key) ?? "" }),
        }
  const password = read(e.password_file)?.replace(/\r?\n$/, "")
  return {
    client: {
      endpoints: e.endpoints,
      requestTimeoutMs: e.request_timeout,
      ...(tls === undefined ? {} : { tls }),
      ...(e.username === undefined || password === undefined
        ? {}
        : { auth: { username: e.username, password } }),
    },
    key: e.key ?? `/mha-agent/${c.cluster.name}/primary`,
    leaseTtlSeconds: e.lease_ttl / 1000,
    value: (term) =>
      JSON.stringify({
        cluster: c.cluster.name,
        primary: c.node,
        host: self?.address ?? "",
        port: self?.mysql_port ?? 3306,
        term,
        published_at: new Date().toISOString(),
      }),
  }
}
