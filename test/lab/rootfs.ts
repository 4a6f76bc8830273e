// The Debian sid root filesystem with MySQL 9.7 that every lab host runs its
// mysqld from (bookworm has no MySQL server; sid's needs a newer libc).
// Built once with debootstrap into a cache directory and reused.
import { mkdir } from "node:fs/promises"
import { join } from "node:path"
import { ensureCachedRoot } from "../support/cached-root.ts"
import { LabError, run } from "./exec.ts"

/** Bump when the recipe below changes, so old caches are rebuilt. */
const RECIPE_VERSION = "1"
const PACKAGES = ["mysql-server-core", "mysql-client-core"]

export const cacheDir = (): string => process.env.MHA_LAB_CACHE ?? "/var/cache/mha-lab"
export const rootfsPath = (): string => join(cacheDir(), "rootfs-sid-mysql")

export const requireRoot = (what: string): void => {
  if (process.getuid?.() !== 0) {
    throw new LabError(`${what} needs root rights (network namespaces, chroot); run it as root`)
  }
}

/** Returns the cached root filesystem, building it first when it is missing or stale. */
export const ensureRootfs = async (log: (line: string) => void = () => {}): Promise<string> => {
  requireRoot("the lab's root filesystem")
  return ensureCachedRoot(
    {
      dir: rootfsPath(),
      marker: ".mha-lab-rootfs",
      recipe: RECIPE_VERSION,
      needs: ["usr/sbin/mysqld"],
      what: "the MySQL 9.7 root filesystem with debootstrap (about 35 s)",
      error: (m) => new LabError(m),
      build: async (tmp) => {
        await run(
          "debootstrap",
          ["--variant=minbase", `--include=${PACKAGES.join(",")}`, "sid", tmp],
          { timeoutMs: 15 * 60_000 },
        )
        // mysqld runs as the unprivileged mysql user, as a packaged server would.
        await run("chroot", [
          tmp,
          "sh",
          "-c",
          "getent group mysql >/dev/null || groupadd -r mysql; " +
            "getent passwd mysql >/dev/null || useradd -r -g mysql -d /nonexistent -s /usr/sbin/nologin mysql",
        ])
        await mkdir(join(tmp, "var/lib/mha-lab"), { recursive: true })
      },
    },
    log,
  )
}
