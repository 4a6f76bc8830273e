// Certificates for the mesh (operations.md, Security): a cluster CA and one
// certificate per member whose CN and SAN DNS name are the member name, made
// with the openssl CLI into a fresh directory. For the negative tests it also
// makes a rogue CA with a certificate that claims a member's name, and a
// certificate from the right CA for a name that is not a member.
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { LabError, run, tryRun } from "./exec.ts"

export interface CertFiles {
  readonly name: string
  readonly cert: string
  readonly key: string
}

export interface LabCerts {
  readonly dir: string
  /** The cluster CA certificate (what every agent trusts). */
  readonly ca: string
  /** One certificate per member, by member name. */
  readonly members: Readonly<Record<string, CertFiles>>
  /** A CA nobody trusts. */
  readonly rogueCa: string
  /** Signed by the rogue CA, claiming the name of a member (`rogueName`). */
  readonly rogue: CertFiles
  /** Signed by the cluster CA, for a name that is not a member (`outsiderName`). */
  readonly outsider: CertFiles
  /** Issues one more certificate from the cluster CA. */
  readonly issue: (name: string) => Promise<CertFiles>
  readonly remove: () => Promise<void>
}

export interface CertOptions {
  readonly members: ReadonlyArray<string>
  /** Default: the first member. */
  readonly rogueName?: string
  readonly outsiderName?: string
  /** Default: a new directory under the system temp dir. */
  readonly dir?: string
  readonly days?: number
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/

/** Fails with a clear message when the openssl CLI is missing (install: apt-get install -y openssl). */
export const requireOpenssl = async (): Promise<void> => {
  const r = await tryRun("openssl", ["version"])
  if (!r.ok)
    throw new LabError(`the openssl CLI is required (apt-get install -y openssl): ${r.stderr}`)
}

const openssl = (args: ReadonlyArray<string>) => run("openssl", args, { timeoutMs: 30_000 })

const makeCa = async (dir: string, base: string, cn: string, days: number) => {
  const key = join(dir, `${base}.key`)
  const cert = join(dir, `${base}.crt`)
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    String(days),
    "-subj",
    `/CN=${cn}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ])
  return { cert, key }
}

const makeLeaf = async (
  dir: string,
  base: string,
  name: string,
  ca: { cert: string; key: string },
  days: number,
  /** More subjectAltName entries ("IP:10.0.0.1"); the name is always there as DNS. */
  altNames: ReadonlyArray<string> = [],
): Promise<CertFiles> => {
  if (!NAME.test(name)) throw new LabError(`'${name}' is not a valid member name for a certificate`)
  const key = join(dir, `${base}.key`)
  const csr = join(dir, `${base}.csr`)
  const cert = join(dir, `${base}.crt`)
  const ext = join(dir, `${base}.ext`)
  await openssl([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    csr,
    "-subj",
    `/CN=${name}`,
  ])
  await writeFile(
    ext,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth,clientAuth",
      `subjectAltName=${[`DNS:${name}`, ...altNames].join(",")}`,
      "",
    ].join("\n"),
  )
  const serial = `0x${Array.from({ length: 16 }, () => Math.floor(Math.random() * 16).toString(16)).join("")}`
  await openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    "-set_serial",
    serial,
    "-days",
    String(days),
    "-extfile",
    ext,
    "-out",
    cert,
  ])
  return { name, cert, key }
}

/** Makes the cluster CA, member certificates, and the rogue and outsider certificates. */
export const makeCerts = async (options: CertOptions): Promise<LabCerts> => {
  await requireOpenssl()
  const days = options.days ?? 30
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "mha-certs-")))
  const remove = () => rm(dir, { recursive: true, force: true })
  try {
    const ca = await makeCa(dir, "ca", "mha-agent cluster CA (lab)", days)
    const rogueCa = await makeCa(dir, "rogue-ca", "rogue CA (lab)", days)
    const members: Record<string, CertFiles> = {}
    for (const m of options.members) members[m] = await makeLeaf(dir, m, m, ca, days)
    const rogueName = options.rogueName ?? options.members[0] ?? "db1"
    const rogue = await makeLeaf(dir, "rogue", rogueName, rogueCa, days)
    const outsider = await makeLeaf(dir, "outsider", options.outsiderName ?? "intruder", ca, days)
    return {
      dir,
      ca: ca.cert,
      members,
      rogueCa: rogueCa.cert,
      rogue,
      outsider,
      issue: (name) => makeLeaf(dir, `extra-${name}`, name, ca, days),
      remove,
    }
  } catch (e) {
    await remove()
    throw e
  }
}

export interface MysqlServerCerts {
  readonly dir: string
  /** The CA every mysqld's certificate chains to. */
  readonly ca: string
  /** One server certificate per host, naming the host (DNS) and its address (IP). */
  readonly hosts: Readonly<Record<string, CertFiles>>
  /** From the same CA, naming a host and an address no member has: a name mismatch. */
  readonly wrongName: CertFiles
  /** A CA that signed none of them. */
  readonly rogueCa: string
}

/** Server certificates for the lab's mysqlds (TLS to MySQL, issue 15 item 3), into `dir`. */
export const makeMysqlServerCerts = async (
  dir: string,
  hosts: ReadonlyArray<{ readonly name: string; readonly address: string }>,
  days = 30,
): Promise<MysqlServerCerts> => {
  await requireOpenssl()
  const ca = await makeCa(dir, "ca", "MySQL servers CA (lab)", days)
  const rogueCa = await makeCa(dir, "rogue-ca", "rogue MySQL CA (lab)", days)
  const out: Record<string, CertFiles> = {}
  for (const h of hosts)
    out[h.name] = await makeLeaf(dir, h.name, h.name, ca, days, [`IP:${h.address}`])
  const wrongName = await makeLeaf(dir, "wrong-name", "elsewhere", ca, days, ["IP:192.0.2.1"])
  return { dir, ca: ca.cert, hosts: out, wrongName, rogueCa: rogueCa.cert }
}
