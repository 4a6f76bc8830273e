/**
 * Who is on the other end of a mesh connection: the member name in its
 * certificate (operations.md, Security: "a peer whose certificate does not
 * name a configured member is refused"). Pure functions, so the rules are
 * unit-testable without sockets.
 *
 * A certificate's names are its subject CN and its SAN DNS entries. It
 * identifies a member when exactly one of those names is a configured
 * member; a certificate that names two members is ambiguous and refused.
 */

/** The parts of a Node `PeerCertificate` that name it. */
export interface CertificateNames {
  readonly subject?: { readonly CN?: string | ReadonlyArray<string> } | null
  readonly subjectaltname?: string | undefined
}

export type RefusalReason =
  /** TLS handshake failed on certificate grounds: another CA, expired, no certificate. */
  | "bad-certificate"
  /** The peer offered no TLS 1.3. */
  | "tls-version"
  /** The handshake failed for another reason (reset, timeout, garbage). */
  | "handshake-failed"
  /** The certificate names no configured member. */
  | "not-a-member"
  /** The certificate names more than one configured member. */
  | "ambiguous-certificate"
  /** The certificate carries our own name. */
  | "self"
  /** Outbound: the certificate names another member than the one we dialled. */
  | "name-mismatch"
  /** Inbound from a member that we dial ourselves (one connection per pair). */
  | "wrong-direction"
  /** The peer speaks another major protocol version (shared/protocol-version.ts). */
  | "protocol-version"

export const REFUSAL_REASONS: ReadonlyArray<RefusalReason> = [
  "bad-certificate",
  "tls-version",
  "handshake-failed",
  "not-a-member",
  "ambiguous-certificate",
  "self",
  "name-mismatch",
  "wrong-direction",
  "protocol-version",
]

/** Every name a certificate carries: CN(s) and SAN DNS names, without duplicates. */
export const certificateNames = (
  cert: CertificateNames | null | undefined,
): ReadonlyArray<string> => {
  if (cert === null || cert === undefined) return []
  const names = new Set<string>()
  const cn = cert.subject?.CN
  if (typeof cn === "string") names.add(cn)
  else if (Array.isArray(cn)) for (const n of cn) if (typeof n === "string") names.add(n)
  for (const entry of (cert.subjectaltname ?? "").split(",")) {
    const m = /^\s*DNS:(.+?)\s*$/.exec(entry)
    if (m?.[1]) names.add(m[1])
  }
  return [...names]
}

/**
 * One connection per pair of members: the member whose name sorts first
 * (code-unit order, the same on every host) dials, the other accepts.
 */
export const dials = (self: string, peer: string): boolean => self < peer

export type Identity =
  | { readonly _tag: "Member"; readonly name: string }
  | {
      readonly _tag: "Refused"
      readonly reason: RefusalReason
      readonly names: ReadonlyArray<string>
    }

const memberNamesIn = (names: ReadonlyArray<string>, members: ReadonlySet<string>) =>
  names.filter((n) => members.has(n))

/** The sender of an inbound connection, from its (already CA-verified) certificate. */
export const identifyInbound = (
  cert: CertificateNames | null | undefined,
  self: string,
  members: ReadonlySet<string>,
): Identity => {
  const names = certificateNames(cert)
  const found = memberNamesIn(names, members)
  if (found.length === 0) return { _tag: "Refused", reason: "not-a-member", names }
  if (found.length > 1) return { _tag: "Refused", reason: "ambiguous-certificate", names }
  const name = found[0] as string
  if (name === self) return { _tag: "Refused", reason: "self", names }
  if (!dials(name, self)) return { _tag: "Refused", reason: "wrong-direction", names }
  return { _tag: "Member", name }
}

/** Checks that the server we dialled as `expected` presents exactly that member's name. */
export const identifyOutbound = (
  cert: CertificateNames | null | undefined,
  expected: string,
  members: ReadonlySet<string>,
): Identity => {
  const names = certificateNames(cert)
  const found = memberNamesIn(names, members)
  if (found.length === 0) return { _tag: "Refused", reason: "not-a-member", names }
  if (found.length > 1) return { _tag: "Refused", reason: "ambiguous-certificate", names }
  if (found[0] !== expected) return { _tag: "Refused", reason: "name-mismatch", names }
  return { _tag: "Member", name: expected }
}

const CERT_ERROR =
  /CERT|VERIFY|SIGNATURE|ISSUER|UNKNOWN_CA|unknown ca|certificate|PEER_DID_NOT_RETURN|self.signed/i
const VERSION_ERROR = /PROTOCOL|VERSION|no protocols available|unsupported protocol/i

/** Classifies a failed TLS handshake (Node's error code and message). */
export const classifyTlsError = (error: unknown): RefusalReason => {
  const e = error as { code?: unknown; message?: unknown } | null
  const text = `${String(e?.code ?? "")} ${String(e?.message ?? "")}`
  if (VERSION_ERROR.test(text)) return "tls-version"
  if (CERT_ERROR.test(text)) return "bad-certificate"
  return "handshake-failed"
}
