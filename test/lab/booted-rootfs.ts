// The Debian sid root a booted lab host runs (lab.md "Booted hosts"):
// systemd as PID 1, dbus, polkitd and Debian's own mysql-server package, as
// an operator's host has them. Built once into the lab cache next to the
// plain root filesystem (rootfs.ts), with a recipe version of its own; each
// booted host then runs an overlay of it.
import { existsSync } from "node:fs"
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { LabError, run } from "./exec.ts"
import { cacheDir, requireRoot } from "./rootfs.ts"

/** Bump when the recipe below changes, so old caches are rebuilt. */
const RECIPE_VERSION = "1"
// adduser: the mha-agent package's postinst makes its system user with it.
const PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "iproute2",
  "iputils-arping",
  "procps",
  "adduser",
  "mysql-server",
]

export const bootedRootfsPath = (): string => join(cacheDir(), "rootfs-sid-booted")
const marker = (dir: string) => join(dir, ".mha-lab-booted-rootfs")

const isReady = async (dir: string): Promise<boolean> => {
  if (!existsSync(marker(dir))) return false
  const recipe = (await readFile(marker(dir), "utf8")).trim()
  return (
    recipe === RECIPE_VERSION &&
    existsSync(join(dir, "usr/sbin/mysqld")) &&
    existsSync(join(dir, "usr/lib/polkit-1/polkitd"))
  )
}

/** Returns the cached booted-host root, building it first when it is missing or stale. */
export const ensureBootedRootfs = async (
  log: (line: string) => void = () => {},
): Promise<string> => {
  requireRoot("the booted hosts' root filesystem")
  const dir = bootedRootfsPath()
  if (await isReady(dir)) return dir
  if (!existsSync("/usr/sbin/debootstrap")) {
    throw new LabError(
      "debootstrap is missing: install it with 'apt-get install -y debootstrap' (npm test does this)",
    )
  }
  await mkdir(cacheDir(), { recursive: true })
  const tmp = `${dir}.build-${process.pid}`
  await rm(tmp, { recursive: true, force: true })
  log(`building the booted hosts' root (systemd, mysql-server, polkitd) in ${dir} (about 2 min)`)
  const started = Date.now()
  try {
    await run("debootstrap", ["--variant=minbase", `--include=${PACKAGES.join(",")}`, "sid", tmp], {
      timeoutMs: 20 * 60_000,
    })
    // polkitd fails inside debootstrap's own configure step (lab.md), so it
    // comes afterwards; no daemon may start in the chroot meanwhile.
    await writeFile(join(tmp, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", { mode: 0o755 })
    await run(
      "chroot",
      [tmp, "sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q polkitd"],
      { timeoutMs: 10 * 60_000 },
    )
    await rm(join(tmp, "usr/sbin/policy-rc.d"), { force: true })
    // Each host initializes its own datadir (its own server_uuid and users);
    // the package's datadir would give every host the same uuid.
    await run("sh", ["-c", `rm -rf "${tmp}/var/lib/mysql/"* "${tmp}/var/cache/apt/archives/"*.deb`])
    // No getty on a console that nobody reads; a quicker boot.
    await rm(join(tmp, "etc/systemd/system/getty.target.wants"), { recursive: true, force: true })
    await writeFile(marker(tmp), `${RECIPE_VERSION}\n`)
    await rm(dir, { recursive: true, force: true })
    await rename(tmp, dir)
  } catch (e) {
    await rm(tmp, { recursive: true, force: true })
    throw e
  }
  log(`booted hosts' root ready in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return dir
}
