/**
 * TLS towards mysqld (issue 15 item 3): what replication is told, and the
 * check at start.
 *
 * At start, before anything is bound, the agent reads `mysql.tls`'s files
 * and opens one TLS session to its own mysqld at the member's address (the
 * name every peer and every replica uses for it). A file that holds no
 * certificate, a key that does not match its certificate, or a server
 * certificate that does not verify against the CA (or does not name the
 * address, with `verify_identity`) refuses the start, naming the file or the
 * host and what failed: an agent whose probes cannot log in would take its
 * healthy mysqld for dead. A mysqld that does not answer now says nothing
 * about the certificates: the agent starts (its mysqld may be starting too).
 */
import { createPrivateKey, X509Certificate } from "node:crypto"
import { readFile } from "node:fs/promises"
import { Effect } from "effect"
import type { Config } from "../../../shared/config.ts"
import type { RepointOptions } from "../adapters/mysql-actuator.ts"
import {
  describeEndpoint,
  type MysqlError,
  MysqlSettingsError,
  memberEndpoint,
  readMysqlSettings,
  str,
  withSession,
} from "../adapters/mysql-connection.ts"

type MysqlTlsConfig = NonNullable<Config["mysql"]["tls"]>

/**
 * CHANGE REPLICATION SOURCE's TLS options: the files as the local mysqld reads
 * them (`source_ssl_*`, default the agent's own paths), the name checked when
 * the agent checks it.
 */
export const sourceSsl = (tls: MysqlTlsConfig): RepointOptions["auth"] => {
  const ca = tls.source_ssl_ca ?? tls.ca
  const cert = tls.source_ssl_cert ?? tls.cert
  const key = tls.source_ssl_key ?? tls.key
  return {
    _tag: "Ssl",
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    verifyServerCert: tls.verify_identity,
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g

/** Problems with the PEM text of `mysql.tls`'s files (pure: the texts are given), one line each. */
export const tlsFileProblems = (
  tls: MysqlTlsConfig,
  pem: {
    readonly ca?: string | undefined
    readonly cert?: string | undefined
    readonly key?: string | undefined
  },
  nowMs: number,
): ReadonlyArray<string> => {
  const out: Array<string> = []
  const certificates = (key: "ca" | "cert", path: string, text: string) => {
    const blocks = text.match(PEM_CERT) ?? []
    if (blocks.length === 0) {
      out.push(`mysql.tls.${key} (${path}): holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
      return []
    }
    const parsed: Array<X509Certificate> = []
    blocks.forEach((block, i) => {
      try {
        const x = new X509Certificate(block)
        if (Date.parse(x.validTo) < nowMs)
          out.push(`mysql.tls.${key} (${path}): certificate ${x.subject} expired on ${x.validTo}`)
        else if (Date.parse(x.validFrom) > nowMs)
          out.push(
            `mysql.tls.${key} (${path}): certificate ${x.subject} is not valid before ${x.validFrom}`,
          )
        parsed.push(x)
      } catch (e) {
        out.push(
          `mysql.tls.${key} (${path}): certificate ${i + 1} cannot be read: ${e instanceof Error ? e.message : String(e)}`,
        )
      }
    })
    return parsed
  }
  if (tls.ca !== undefined && pem.ca !== undefined) {
    for (const x of certificates("ca", tls.ca, pem.ca))
      if (!x.ca) out.push(`mysql.tls.ca (${tls.ca}): ${x.subject} is not a CA certificate`)
  }
  if (
    tls.cert !== undefined &&
    pem.cert !== undefined &&
    tls.key !== undefined &&
    pem.key !== undefined
  ) {
    const [leaf] = certificates("cert", tls.cert, pem.cert)
    try {
      const key = createPrivateKey(pem.key)
      if (leaf !== undefined && !leaf.checkPrivateKey(key))
        out.push(`mysql.tls.key (${tls.key}) is not the key of mysql.tls.cert (${tls.cert})`)
    } catch (e) {
      out.push(
        `mysql.tls.key (${tls.key}): not a private key: ${e instanceof Error ? e.message : String(e)}`,
      )
    }
  }
  return out
}

/**
 * A certificate that does not verify or does not name the host, as Node words
 * it (mysql2 replaces Node's code by HANDSHAKE_SSL_ERROR, whatever failed).
 */
const CERTIFICATE_FAILURE =
  /certificate|altnames|self[- ]signed|unable to (get|verify)|no certificate|wrong version number|alert/i

/** Whether a failed connect failed on TLS grounds (the certificate, or no TLS at all). */
export const isCertificateFailure = (e: MysqlError): boolean =>
  e.kind === "connect" &&
  (e.code === "HANDSHAKE_NO_SSL_SUPPORT" ||
    (e.code === "HANDSHAKE_SSL_ERROR" && CERTIFICATE_FAILURE.test(e.reason)))

/** Why the local mysqld's certificate refuses the start, in words an operator can act on. */
export const describeCertificateFailure = (
  tls: MysqlTlsConfig,
  target: string,
  e: MysqlError,
): string => {
  if (e.code === "HANDSHAKE_NO_SSL_SUPPORT")
    return `mysql.tls is set but the local mysqld ${target} offers no TLS (ssl_cert and ssl_key in its my.cnf): ${e.reason}`
  if (/altnames/i.test(e.reason))
    return `the certificate of the local mysqld ${target} does not name ${target.replace(/:\d+$/, "")} (mysql.tls.verify_identity is on: a SAN IP or DNS entry must equal this member's address): ${e.reason}`
  return `the certificate of the local mysqld ${target} does not verify against mysql.tls.ca (${tls.ca ?? "none"}): ${e.reason}`
}

export interface TlsStartCheck {
  /** Set when the agent must not start. */
  readonly refusal: string | null
  /** What was checked, or why the handshake could not be tried now (logged). */
  readonly notes: ReadonlyArray<string>
}

const readPem = (key: string, path: string | undefined) =>
  path === undefined
    ? Effect.succeed(undefined)
    : Effect.tryPromise({
        try: () => readFile(path, "utf8"),
        catch: (e) =>
          new MysqlSettingsError({
            path,
            key,
            reason: e instanceof Error ? e.message : String(e),
          }),
      })

/** The check at start (see the module comment). Never fails: a refusal is a value. */
export const checkMysqlTlsAtStart = (config: Config): Effect.Effect<TlsStartCheck> => {
  const tls = config.mysql.tls
  if (tls === undefined)
    return Effect.succeed({
      refusal: null,
      notes: ["mysql.tls is not set: MySQL connections are not encrypted"],
    })
  return Effect.gen(function* () {
    const pem = {
      ca: yield* readPem("mysql.tls.ca", tls.ca),
      cert: yield* readPem("mysql.tls.cert", tls.cert),
      key: yield* readPem("mysql.tls.key", tls.key),
    }
    const problems = tlsFileProblems(tls, pem, Date.now())
    if (problems.length > 0) return { refusal: problems.join("; "), notes: [] }
    const local = memberEndpoint(config, config.node)
    if (local === undefined) return { refusal: null, notes: [] }
    const settings = yield* readMysqlSettings(config, "monitor")
    const target = describeEndpoint(local)
    return yield* withSession("tls-check", local, settings, (s) =>
      s.query("tls-check", "SHOW SESSION STATUS LIKE 'Ssl_version'"),
    ).pipe(
      Effect.map(
        (rows): TlsStartCheck => ({
          refusal: null,
          notes: [
            `TLS to the local mysqld ${target}: ${str(rows[0], "Value") || "?"}, ` +
              (tls.ca === undefined
                ? "the certificate NOT verified (no mysql.tls.ca)"
                : `certificate verified against ${tls.ca}${tls.verify_identity ? ` and naming ${target}` : " (the name not checked)"}`),
          ],
        }),
      ),
      Effect.catch((e: MysqlError) =>
        Effect.succeed(
          isCertificateFailure(e)
            ? { refusal: describeCertificateFailure(tls, target, e), notes: [] }
            : {
                refusal: null,
                notes: [
                  `TLS to the local mysqld ${target} not checked at start (${e.message}); the probes use the same settings`,
                ],
              },
        ),
      ),
    )
  }).pipe(
    Effect.catchTag("MysqlSettingsError", (e) => Effect.succeed({ refusal: e.message, notes: [] })),
  )
}
