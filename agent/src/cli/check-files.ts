// `mha-agent check-config --files`: the files a valid config names, as the
// agent will meet them. The mesh certificate must name this member (and no
// other: adapters/mesh-identity.ts refuses an ambiguous one), be issued by the
// configured CA, be valid now and match its key; every file the agent reads
// must be readable by the agent's user (it runs as `mha-agent`, not root), and
// the secrets (keys, password files) by nobody else.
import { createPrivateKey, X509Certificate } from "node:crypto"
import { readFileSync, statSync } from "node:fs"
import { dirname } from "node:path"
import type { Config } from "../../../shared/config.ts"
import { certificateNames } from "../adapters/mesh-identity.ts"
import { tlsFileProblems } from "../daemon/mysql-tls.ts"

export interface Account {
  readonly name: string
  readonly uid: number
  readonly gids: ReadonlyArray<number>
}

/** The user's uid, primary gid and supplementary groups, from /etc/passwd and /etc/group. */
export const lookupAccount = (
  user: string,
  files = { passwd: "/etc/passwd", group: "/etc/group" },
): Account | undefined => {
  const read = (f: string) => {
    try {
      return readFileSync(f, "utf8").split("\n")
    } catch {
      return []
    }
  }
  const entry = read(files.passwd)
    .map((l) => l.split(":"))
    .find((f) => f[0] === user)
  if (entry === undefined || entry[2] === undefined || entry[3] === undefined) return undefined
  const gids = new Set([Number(entry[3])])
  for (const line of read(files.group)) {
    const [, , gid, members] = line.split(":")
    if (gid !== undefined && (members ?? "").split(",").includes(user)) gids.add(Number(gid))
  }
  return { name: user, uid: Number(entry[2]), gids: [...gids] }
}

interface Mode {
  readonly mode: number
  readonly uid: number
  readonly gid: number
}

/** Whether `account` has `bit` (4 read, 1 search) on a file of this mode (root may do anything). */
export const permits = (account: Account, st: Mode, bit: 4 | 1): boolean => {
  if (account.uid === 0) return bit === 4 || (st.mode & 0o111) !== 0
  if (st.uid === account.uid) return ((st.mode >> 6) & bit) !== 0
  if (account.gids.includes(st.gid)) return ((st.mode >> 3) & bit) !== 0
  return (st.mode & bit) !== 0
}

/** Why `account` cannot read `file` (a directory on the way it cannot enter, or the file), or null. */
export const unreadableBy = (
  account: Account,
  file: string,
  stat: (p: string) => Mode = statSync,
): string | null => {
  let st: Mode
  try {
    st = stat(file)
  } catch (e) {
    return `${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String(e)}`
  }
  const dirs: Array<string> = []
  for (let d = dirname(file); ; d = dirname(d)) {
    dirs.unshift(d)
    if (d === dirname(d)) break
  }
  for (const d of dirs) {
    const ds = stat(d)
    if (!permits(account, ds, 1))
      return `${file}: user ${account.name} cannot enter ${d} (mode ${octal(ds.mode)}, owner ${ds.uid}:${ds.gid})`
  }
  if (!permits(account, st, 4))
    return `${file}: not readable by user ${account.name} (mode ${octal(st.mode)}, owner ${st.uid}:${st.gid}; e.g. chown root:${account.name} and chmod 0640)`
  return null
}

const octal = (mode: number) => `0${(mode & 0o777).toString(8)}`

/** The problems of the files a (valid) config names; empty when all is well. */
export const checkFiles = (
  config: Config,
  account: Account,
  now: Date = new Date(),
): { readonly problems: ReadonlyArray<string>; readonly notes: ReadonlyArray<string> } => {
  const problems: Array<string> = []
  const notes: Array<string> = []
  const secrets: Array<[string, string]> = [
    ["mesh.key", config.mesh.key],
    ["mysql.monitor.password_file", config.mysql.monitor.password_file],
    ["mysql.replication.password_file", config.mysql.replication.password_file],
  ]
  const files: Array<[string, string]> = [
    ["mesh.ca", config.mesh.ca],
    ["mesh.cert", config.mesh.cert],
    ...secrets,
  ]
  const tls = config.mysql.tls
  if (tls?.ca !== undefined) files.push(["mysql.tls.ca", tls.ca])
  if (tls?.cert !== undefined) files.push(["mysql.tls.cert", tls.cert])
  if (tls?.key !== undefined) {
    files.push(["mysql.tls.key", tls.key])
    secrets.push(["mysql.tls.key", tls.key])
  }
  for (const [path, file] of files) {
    const why = unreadableBy(account, file)
    if (why !== null) problems.push(`${path}: ${why}`)
  }
  for (const [path, file] of secrets) {
    try {
      const st = statSync(file)
      if ((st.mode & 0o004) !== 0)
        problems.push(
          `${path}: ${file} is readable by every user (mode ${octal(st.mode)}): chmod o-rwx ${file}`,
        )
    } catch {
      // Named above already.
    }
  }
  // The mesh certificate: this member's name, from the configured CA, valid now, with its key.
  const load = (path: string, file: string): X509Certificate | null => {
    try {
      return new X509Certificate(readFileSync(file))
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === undefined || !String(e).includes("ENOENT"))
        problems.push(`${path}: ${file} is not a PEM certificate (${errText(e)})`)
      return null
    }
  }
  const ca = load("mesh.ca", config.mesh.ca)
  const cert = load("mesh.cert", config.mesh.cert)
  if (ca !== null && !ca.ca) problems.push(`mesh.ca: ${config.mesh.ca} is not a CA certificate`)
  if (cert !== null) {
    const names = certificateNames({
      subject: { CN: cnOf(cert.subject) },
      subjectaltname: cert.subjectAltName,
    })
    const members = new Set(config.cluster.members.map((m) => m.name))
    const named = names.filter((n) => members.has(n))
    if (named.length === 0)
      problems.push(
        `mesh.cert: ${config.mesh.cert} names ${names.join(", ") || "nobody"}, no member of the cluster (it must name ${config.node}: CN and SAN DNS)`,
      )
    else if (named.length > 1)
      problems.push(
        `mesh.cert: ${config.mesh.cert} names several members (${named.join(", ")}): peers refuse it; make one for ${config.node} alone`,
      )
    else if (named[0] !== config.node)
      problems.push(
        `mesh.cert: ${config.mesh.cert} names member ${named[0]}, but this host is ${config.node} (node): copy ${config.node}'s certificate here`,
      )
    else notes.push(`mesh certificate names ${config.node}`)
    if (ca !== null && !(cert.checkIssued(ca) && cert.verify(ca.publicKey)))
      problems.push(
        `mesh.cert: ${config.mesh.cert} is not issued by the CA in ${config.mesh.ca} (mesh.ca): peers refuse it`,
      )
    const to = new Date(cert.validTo)
    if (to.getTime() < now.getTime())
      problems.push(`mesh.cert: ${config.mesh.cert} expired on ${to.toISOString()}`)
    else if (new Date(cert.validFrom).getTime() > now.getTime())
      problems.push(`mesh.cert: ${config.mesh.cert} is not valid before ${cert.validFrom}`)
    else notes.push(`mesh certificate valid until ${to.toISOString().slice(0, 10)}`)
    try {
      if (!cert.checkPrivateKey(createPrivateKey(readFileSync(config.mesh.key))))
        problems.push(
          `mesh.key: ${config.mesh.key} is not the key of ${config.mesh.cert} (mesh.cert)`,
        )
    } catch (e) {
      if (!String(e).includes("ENOENT"))
        problems.push(`mesh.key: ${config.mesh.key} is not a PEM private key (${errText(e)})`)
    }
  }
  // TLS to mysqld: the same checks as `run` makes at start (daemon/mysql-tls.ts).
  if (tls !== undefined) {
    const text = (file: string | undefined) => {
      try {
        return file === undefined ? undefined : readFileSync(file, "utf8")
      } catch {
        return undefined // named above already
      }
    }
    problems.push(
      ...tlsFileProblems(
        tls,
        { ca: text(tls.ca), cert: text(tls.cert), key: text(tls.key) },
        now.getTime(),
      ),
    )
  }
  return { problems, notes }
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** The CN(s) of an X509Certificate subject ("C=DE\nCN=db1"). */
const cnOf = (subject: string): ReadonlyArray<string> =>
  subject
    .split("\n")
    .filter((l) => l.startsWith("CN="))
    .map((l) => l.slice(3))
