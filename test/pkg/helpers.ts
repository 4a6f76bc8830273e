// Helpers of the package install tests: the packages under test (dist/ when
// it is newer than every source, else a quick build), a second build with a
// bumped version for the upgrade, and a Debian bookworm root filesystem
// (debootstrap, cached like the lab's sid one in test/lab/rootfs.ts) that each
// test copies, installs into with chroot, and removes.
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ensureCachedRoot } from "../support/cached-root.ts"

export const repoRoot = join(import.meta.dirname, "..", "..")

export class PkgTestError extends Error {
  override readonly name = "PkgTestError"
}

export interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv
  /** Only `env`, nothing of this process's environment (for commands inside a root filesystem). */
  readonly cleanEnv?: boolean
  readonly timeoutMs?: number
  readonly cwd?: string
}

/** Runs a program (no shell); resolves with its exit code and output, never rejects on a non-zero exit. */
export const exec = (
  file: string,
  args: ReadonlyArray<string>,
  options: RunOptions = {},
): Promise<Ran> =>
  new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      {
        maxBuffer: 64 * 1024 * 1024,
        timeout: options.timeoutMs ?? 120_000,
        encoding: "utf8",
        env: options.cleanEnv === true ? { ...options.env } : { ...process.env, ...options.env },
        cwd: options.cwd ?? repoRoot,
      },
      (error, stdout, stderr) => {
        const code =
          error === null ? 0 : typeof error.code === "number" ? error.code : error.killed ? 124 : 1
        resolve({ code, stdout, stderr })
      },
    )
    child.stdin?.end()
  })

/** Like exec, but a non-zero exit is an error naming the command and its output. */
export const run = async (
  file: string,
  args: ReadonlyArray<string>,
  options: RunOptions = {},
): Promise<Ran> => {
  const r = await exec(file, args, options)
  if (r.code !== 0) {
    throw new PkgTestError(
      `${[file, ...args].join(" ")} exited ${r.code}:\n${r.stderr.trim()}\n${r.stdout.trim()}`.trim(),
    )
  }
  return r
}

export const requireRoot = (): void => {
  if (process.getuid?.() !== 0) {
    throw new PkgTestError(
      "the package tests need root (chroot, dpkg, rpm --root); run them as root",
    )
  }
}

// ---------------------------------------------------------------------------
// The packages
// ---------------------------------------------------------------------------

export interface Packages {
  readonly dir: string
  readonly version: string
  readonly deb: string
  readonly rpm: string
}

const packageVersion = async (): Promise<string> =>
  (JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { version: string })
    .version

/** The newest modification time of the files the packages are built from. */
const newestSource = async (): Promise<number> => {
  let newest = 0
  const walk = async (path: string): Promise<void> => {
    const s = await stat(path).catch(() => undefined)
    if (s === undefined) return
    if (s.isDirectory()) {
      for (const entry of await readdir(path)) await walk(join(path, entry))
    } else newest = Math.max(newest, s.mtimeMs)
  }
  for (const p of ["agent", "shared", "packaging", "package.json", "package-lock.json"]) {
    await walk(join(repoRoot, p))
  }
  return newest
}

const findPackages = async (dir: string, version: string): Promise<Packages | undefined> => {
  const deb = join(dir, `mha-agent_${version.replaceAll("-", "~")}-1_amd64.deb`)
  const rpm = join(dir, `mha-agent-${version.replaceAll("-", "~")}-1.x86_64.rpm`)
  if (!existsSync(deb) || !existsSync(rpm)) return undefined
  return { dir, version, deb, rpm }
}

/** Builds the packages with packaging/build.sh into `dir` (gzip: a quick build). */
export const buildPackages = async (
  dir: string,
  version: string,
  compress: "gzip" | "xz" = "gzip",
): Promise<Packages> => {
  await run("bash", [join(repoRoot, "packaging/build.sh")], {
    env: { MHA_DIST: dir, MHA_VERSION: version, MHA_COMPRESS: compress },
    timeoutMs: 15 * 60_000,
  })
  const found = await findPackages(dir, version)
  if (found === undefined) throw new PkgTestError(`packaging/build.sh made no packages in ${dir}`)
  return found
}

/**
 * The packages under test: $MHA_PKG_DIST's, or dist/'s when they are newer
 * than every source file, or else a quick build into `scratch`.
 */
export const packagesUnderTest = async (
  scratch: string,
  log: (line: string) => void,
): Promise<Packages> => {
  const version = await packageVersion()
  const given = process.env.MHA_PKG_DIST
  if (given !== undefined && given !== "") {
    const found = await findPackages(given, version)
    if (found === undefined)
      throw new PkgTestError(`MHA_PKG_DIST=${given} holds no ${version} packages`)
    return found
  }
  const dist = await findPackages(join(repoRoot, "dist"), version)
  if (dist !== undefined) {
    const built = Math.min((await stat(dist.deb)).mtimeMs, (await stat(dist.rpm)).mtimeMs)
    if (built > (await newestSource())) {
      log(`using the packages in ${dist.dir} (newer than every source)`)
      return dist
    }
  }
  log("dist/ is missing or older than the sources: building the packages")
  return buildPackages(scratch, version)
}

/** 1.2.3 -> 1.2.4 (a pre-release suffix is dropped). */
export const bumpPatch = (version: string): string => {
  const [major, minor, patch] = (version.split("-")[0] ?? version).split(".").map(Number)
  return `${major ?? 0}.${minor ?? 0}.${(patch ?? 0) + 1}`
}

export const scratchDir = (what: string): Promise<string> =>
  mkdtemp(join(tmpdir(), `mha-pkg-${what}-`))

// ---------------------------------------------------------------------------
// The bookworm root filesystem
// ---------------------------------------------------------------------------

/** Bump when the recipe below changes, so old caches are rebuilt. */
const RECIPE_VERSION = "2"
/** The package's dependencies, downloaded (not installed) into the cache so installs need no network. */
const DEPENDENCIES = ["adduser", "iproute2", "iputils-arping", "procps"]

export const cacheDir = (): string => process.env.MHA_LAB_CACHE ?? "/var/cache/mha-lab"
export const bookwormPath = (): string => join(cacheDir(), "rootfs-bookworm-pkg")

const chrootEnv = {
  DEBIAN_FRONTEND: "noninteractive",
  LC_ALL: "C",
  PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
}

/** Runs a command inside a root filesystem. */
export const inRoot = (
  dir: string,
  args: ReadonlyArray<string>,
  timeoutMs = 300_000,
): Promise<Ran> => exec("chroot", [dir, ...args], { env: chrootEnv, cleanEnv: true, timeoutMs })

/** Like inRoot, but a non-zero exit is an error. */
export const inRootOk = (dir: string, args: ReadonlyArray<string>, timeoutMs = 300_000) =>
  run("chroot", [dir, ...args], { env: chrootEnv, cleanEnv: true, timeoutMs })

/** Returns the cached bookworm root filesystem, building it first when missing or stale. */
export const ensureBookworm = async (log: (line: string) => void = () => {}): Promise<string> => {
  requireRoot()
  return ensureCachedRoot(
    {
      dir: bookwormPath(),
      marker: ".mha-pkg-rootfs",
      recipe: RECIPE_VERSION,
      needs: [],
      what: "the bookworm root filesystem with debootstrap (about a minute)",
      error: (m) => new PkgTestError(m),
      build: async (tmp) => {
        await run("debootstrap", ["--variant=minbase", "bookworm", tmp], {
          timeoutMs: 15 * 60_000,
        })
        // Package lists, and the dependencies' .debs in apt's cache: installing
        // the package later resolves them as apt would, without the network.
        await inRootOk(tmp, ["apt-get", "update", "-qq"])
        await inRootOk(tmp, ["apt-get", "install", "-y", "-qq", "--download-only", ...DEPENDENCIES])
      },
    },
    log,
  )
}

/**
 * A fresh copy of the bookworm root filesystem for one test, with a
 * policy-rc.d that keeps any service from starting. Remove it with `rm`.
 */
export const freshRoot = async (name: string, log: (line: string) => void): Promise<string> => {
  const base = await ensureBookworm(log)
  const dir = `${base}.${name}-${process.pid}`
  await rm(dir, { recursive: true, force: true })
  // cp -a, not fs.cp: debootstrap leaves device nodes in /dev.
  await run("cp", ["-a", base, dir], { timeoutMs: 300_000 })
  await writeFile(join(dir, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", { mode: 0o755 })
  return dir
}

/** The `name:x:uid:gid:gecos:home:shell` line of a user in a root filesystem's /etc/passwd. */
export const passwdEntry = async (dir: string, user: string) => {
  const line = (await readFile(join(dir, "etc/passwd"), "utf8"))
    .split("\n")
    .find((l) => l.startsWith(`${user}:`))
  if (line === undefined) return undefined
  const [, , uid, gid, , home, shell] = line.split(":")
  return { uid: Number(uid), gid: Number(gid), home, shell }
}

export const groupExists = async (dir: string, group: string): Promise<boolean> =>
  (await readFile(join(dir, "etc/group"), "utf8"))
    .split("\n")
    .some((l) => l.startsWith(`${group}:`))
