// The Debian sid root a booted lab host runs (lab.md "Booted hosts"):
// systemd as PID 1, dbus, polkitd and Debian's own mysql-server package, as
// an operator's host has them. Built once into the lab cache next to the
// plain root filesystem (rootfs.ts), with a recipe version of its own; each
// booted host then runs an overlay of it.
import { rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { ensureCachedRoot } from "../support/cached-root.ts"
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

/** Returns the cached booted-host root, building it first when it is missing or stale. */
export const ensureBootedRootfs = async (
  log: (line: string) => void = () => {},
): Promise<string> => {
  requireRoot("the booted hosts' root filesystem")
  return ensureCachedRoot(
    {
      dir: bootedRootfsPath(),
      marker: ".mha-lab-booted-rootfs",
      recipe: RECIPE_VERSION,
      needs: ["usr/sbin/mysqld", "usr/lib/polkit-1/polkitd"],
      what: "the booted hosts' root (systemd, mysql-server, polkitd; about 2 min)",
      error: (m) => new LabError(m),
      build: async (tmp) => {
        await run(
          "debootstrap",
          ["--variant=minbase", `--include=${PACKAGES.join(",")}`, "sid", tmp],
          { timeoutMs: 20 * 60_000 },
        )
        // polkitd fails inside debootstrap's own configure step (lab.md), so it
        // comes afterwards; no daemon may start in the chroot meanwhile.
        await writeFile(join(tmp, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", {
          mode: 0o755,
        })
        await run(
          "chroot",
          [tmp, "sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q polkitd"],
          { timeoutMs: 10 * 60_000 },
        )
        await rm(join(tmp, "usr/sbin/policy-rc.d"), { force: true })
        // Each host initializes its own datadir (its own server_uuid and users);
        // the package's datadir would give every host the same uuid.
        await run("sh", [
          "-c",
          `rm -rf "${tmp}/var/lib/mysql/"* "${tmp}/var/cache/apt/archives/"*.deb`,
        ])
        // No getty on a console that nobody reads; a quicker boot.
        await rm(join(tmp, "etc/systemd/system/getty.target.wants"), {
          recursive: true,
          force: true,
        })
      },
    },
    log,
  )
}
