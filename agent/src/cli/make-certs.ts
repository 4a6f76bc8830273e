// `mha-agent make-certs`: the cluster CA and one mesh certificate per member
// (operations.md, Security), made with the openssl CLI. The member name is the
// certificate's CN and its only SAN DNS name, as adapters/mesh-identity.ts
// identifies peers. Modes: certificates 0644; keys 0640 owned by root and the
// agent's group when that group exists (the agent runs as its own user and
// must read its key), else 0600; the CA key 0600 (it stays with the operator:
// copy only ca.pem, NAME.pem and NAME.key to host NAME).
import { execFile } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { chmod, chown, mkdir, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import {
  DEFAULT_CONFIG,
  EXIT_FAILED,
  EXIT_OK,
  loadValidConfig,
  parseOptions,
  UsageError,
} from "../main.ts"
import type { Io } from "./io.ts"

/** The same rule as the config's member names (shared/config.ts). */
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/

export const DEFAULT_AGENT_GROUP = "mha-agent"

const openssl = (args: ReadonlyArray<string>): Promise<void> =>
  new Promise((resolve, reject) => {
    execFile("openssl", [...args], { timeout: 30_000 }, (error, _stdout, stderr) => {
      if (error === null) return resolve()
      const why =
        (error as NodeJS.ErrnoException).code === "ENOENT"
          ? "the openssl command is not installed (apt-get install openssl)"
          : `openssl ${args[0]} failed: ${String(stderr).trim() || error.message}`
      reject(new Error(why))
    })
  })

/** The gid of a group in /etc/group, or undefined. */
export const groupId = (group: string, groupFile = "/etc/group"): number | undefined => {
  let text: string
  try {
    text = readFileSync(groupFile, "utf8")
  } catch {
    return undefined
  }
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":")
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid)
  }
  return undefined
}

export interface MadeCerts {
  readonly ca: string
  readonly caKey: string
  readonly reusedCa: boolean
  readonly members: ReadonlyArray<{ name: string; cert: string; key: string }>
  /** The key's group (null: mode 0600, owned by whoever ran the command). */
  readonly keyGroup: string | null
}

/** Makes (or reuses) DIR/ca.pem + ca.key, then DIR/NAME.pem + NAME.key per member. */
export const makeCerts = async (options: {
  readonly dir: string
  readonly members: ReadonlyArray<string>
  readonly days: number
  readonly group: string
}): Promise<MadeCerts> => {
  const { dir, members, days } = options
  for (const m of members) {
    if (!NAME.test(m))
      throw new UsageError(
        `make-certs: '${m}' is not a member name (letters, digits, '.', '_', '-'; 1 to 64 characters)`,
      )
  }
  const dup = members.find((m, i) => members.indexOf(m) !== i)
  if (dup !== undefined) throw new UsageError(`make-certs: member '${dup}' given twice`)
  const ca = join(dir, "ca.pem")
  const caKey = join(dir, "ca.key")
  if (existsSync(ca) !== existsSync(caKey)) {
    throw new Error(
      `${existsSync(ca) ? caKey : ca} is missing but ${existsSync(ca) ? ca : caKey} exists: give both (to issue more certificates from that CA) or neither`,
    )
  }
  for (const m of members) {
    for (const f of [join(dir, `${m}.pem`), join(dir, `${m}.key`)]) {
      if (existsSync(f)) throw new Error(`${f} exists already: remove it first (nothing was made)`)
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o755 })
  const reusedCa = existsSync(ca)
  if (!reusedCa) {
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      caKey,
      "-out",
      ca,
      "-days",
      String(days),
      "-subj",
      "/CN=mha-agent cluster CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ])
    await chmod(caKey, 0o600)
    await chmod(ca, 0o644)
  }
  const gid = groupId(options.group)
  const made: Array<{ name: string; cert: string; key: string }> = []
  for (const name of members) {
    const key = join(dir, `${name}.key`)
    const cert = join(dir, `${name}.pem`)
    const csr = join(dir, `${name}.csr`)
    const ext = join(dir, `${name}.ext`)
    try {
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
          `subjectAltName=DNS:${name}`,
          "",
        ].join("\n"),
      )
      await openssl([
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        caKey,
        "-CAcreateserial",
        "-days",
        String(days),
        "-extfile",
        ext,
        "-out",
        cert,
      ])
    } finally {
      await rm(csr, { force: true })
      await rm(ext, { force: true })
    }
    await chmod(cert, 0o644)
    if (gid !== undefined) {
      await chown(key, 0, gid)
      await chmod(key, 0o640)
    } else await chmod(key, 0o600)
    made.push({ name, cert, key })
  }
  await rm(join(dir, "ca.srl"), { force: true })
  return {
    ca,
    caKey,
    reusedCa,
    members: made,
    keyGroup: gid === undefined ? null : options.group,
  }
}

export const main = async (args: ReadonlyArray<string>, io: Io): Promise<number> => {
  const { values } = parseOptions("make-certs", args, {
    values: ["--dir", "--members", "--config", "--days", "--group"],
  })
  const dir = values.get("--dir")
  if (dir === undefined) throw new UsageError("make-certs: --dir DIR is required")
  const daysText = values.get("--days") ?? "825"
  if (!/^\d+$/.test(daysText) || Number(daysText) < 1)
    throw new UsageError(`make-certs: --days expects a whole number of days, got '${daysText}'`)
  let members: ReadonlyArray<string>
  const list = values.get("--members")
  if (list !== undefined && values.has("--config"))
    throw new UsageError("make-certs: give --members or --config, not both")
  if (list !== undefined) {
    members = list.split(",").map((m) => m.trim())
  } else {
    const config = await loadValidConfig(values.get("--config") ?? DEFAULT_CONFIG, io)
    if (config === null) return EXIT_FAILED
    members = config.cluster.members.map((m) => m.name)
  }
  try {
    const made = await makeCerts({
      dir,
      members,
      days: Number(daysText),
      group: values.get("--group") ?? DEFAULT_AGENT_GROUP,
    })
    const keyMode =
      made.keyGroup === null
        ? `0600 (no group '${values.get("--group") ?? DEFAULT_AGENT_GROUP}' here: chown root:mha-agent and chmod 0640 on the host)`
        : `0640 root:${made.keyGroup}`
    io.out(
      [
        `${made.reusedCa ? "reused" : "made"} the cluster CA: ${made.ca} (key ${made.caKey}, 0600: keep it off the hosts)`,
        ...made.members.map((m) => `  ${m.name}: ${m.cert} (0644), ${m.key} (${keyMode})`),
        "copy ca.pem, NAME.pem and NAME.key to host NAME's /etc/mha-agent/tls/, then run 'mha-agent check-config --files' there",
        "",
      ].join("\n"),
    )
    return EXIT_OK
  } catch (e) {
    if (e instanceof UsageError) throw e
    io.err(`mha-agent make-certs: ${e instanceof Error ? e.message : String(e)}\n`)
    return EXIT_FAILED
  }
}
