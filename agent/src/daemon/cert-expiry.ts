// When the certificates the agent uses run out, for the
// mha_certificate_expiry_timestamp_seconds metric (and the alert shipped in
// packaging/prometheus/mha-agent-alerts.yml): read once from the bytes the
// mesh loaded at start, which are what it presents until a restart, not
// from the files (which an operator may already have replaced).
import { X509Certificate } from "node:crypto"

export interface CertificateExpiry {
  /** Which certificate: mesh_cert (this agent's), mesh_ca (the cluster CA). */
  readonly certificate: string
  /** notAfter, in seconds since the epoch. */
  readonly notAfterSeconds: number
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** The earliest notAfter among the PEM certificates in `pem` (a chain or a CA bundle), or null. */
export const earliestExpiry = (pem: string | Buffer): number | null => {
  let earliest: number | null = null
  for (const block of String(pem).match(PEM_BLOCK) ?? []) {
    try {
      const at = Date.parse(new X509Certificate(block).validTo) / 1000
      if (Number.isFinite(at) && (earliest === null || at < earliest)) earliest = at
    } catch {
      // Not a certificate Node can parse: the mesh would have refused it at start anyway.
    }
  }
  return earliest
}

/** The mesh's certificate and CA as loaded (those that parse). */
export const meshCertificateExpiries = (tls: {
  readonly cert: string | Buffer
  readonly ca: string | Buffer
}): ReadonlyArray<CertificateExpiry> =>
  (
    [
      ["mesh_cert", tls.cert],
      ["mesh_ca", tls.ca],
    ] as const
  ).flatMap(([certificate, pem]) => {
    const notAfterSeconds = earliestExpiry(pem)
    return notAfterSeconds === null ? [] : [{ certificate, notAfterSeconds }]
  })
