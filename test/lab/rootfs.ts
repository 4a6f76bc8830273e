// The Debian sid root filesystem with MySQL 9.7 that every lab host runs its
// mysqld from (bookworm has no MySQL server; sid's needs a newer libc).
// Built once with debootstrap into a cache directory and reused.
import { existsSync } from "node:fs"
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { LabError, run } from "./exec.ts"

/** Bump when the recipe below changes, so old caches are rebuilt. */
const RECIPE_VERSION = "1"
const PACKAGES = ["mysql-server-core", "mysql-client-core"]

export const cacheDir = (): string => process.env.MHA_LAB_CACHE ?? "/var/cache/mha-lab"
export const rootfsPath = (): string => join(cacheDir(), "rootfs-sid-mysql")
const marker = (dir: string) => join(dir, ".mha-lab-rootfs")

export const requireRoot = (what: string): void => {
  if (process.getuid?.() !== 0) {
    throw new LabError(`${what} needs root rights (network namespaces, chroot); run it as root`)
  }
}

const isReady = async (dir: string): Promise<boolean> => {
  if (!existsSync(marker(dir))) return false
  const recipe = (await readFile(marker(dir), "utf8")).trim()
  return recipe === RECIPE_VERSION && existsSync(join(dir, "usr/sbin/mysqld"))
}

/** Returns the cached root filesystem, building it first when it is missing or stale. */
export const ensureRootfs = async (log: (line: string) => void = () => {}): Promise<string> => {
  requireRoot("the lab's root filesystem")
  const dir = rootfsPath()
  if (await isReady(dir)) return dir
  if (!existsSync("/usr/sbin/debootstrap")) {
    throw new LabError(
      "debootstrap is missing: install it with 'apt-get install -y debootstrap' (npm test does this)",
    )
  }
  await mkdir(cacheDir(), { recursive: true })
  const tmp = `${dir}.build-${process.pid}`
  await rm(tmp, { recursive: true, force: true })
  log(`building the MySQL 9.7 root filesystem in ${dir} with debootstrap (about 35 s)`)
  const started = Date.now()
  try {
    await run("debootstrap", ["--variant=minbase", `--include=${PACKAGES.join(",")}`, "sid", tmp], {
      timeoutMs: 15 * 60_000,
    })
    // mysqld runs as the unprivileged mysql user, as a packaged server would.
    await run("chroot", [
      tmp,
      "sh",
      "-c",
      "getent group mysql >/dev/null || groupadd -r mysql; " +
        "getent passwd mysql >/dev/null || useradd -r -g mysql -d /nonexistent -s /usr/sbin/nologin mysql",
    ])
    await mkdir(join(tmp, "var/lib/mha-lab"), { recursive: true })
    await writeFile(marker(tmp), `${RECIPE_VERSION}\n`)
    await rm(dir, { recursive: true, force: true })
    await rename(tmp, dir)
  } catch (e) {
    await rm(tmp, { recursive: true, force: true })
    throw e
  }
  log(`root filesystem ready in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return dir
}
