// Booted lab hosts (lab.md "Booted hosts"): each host is a systemd-nspawn
// container with systemd as PID 1, booted inside the host's network
// namespace from an overlay of the cached booted root (booted-rootfs.ts).
// This module knows only containers and mounts (not the Lab), so that
// Lab.down can halt them without an import cycle.
import { execFile } from "node:child_process"
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from "node:fs"
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { alive, LabError, run, sleep, spawnDetached, tryRun, waitFor } from "./exec.ts"

/** Where the booted hosts' overlays live (a real filesystem: an overlay's upper dir cannot be on tmpfs over overlay). */
export const bootedBase = (): string => process.env.MHA_LAB_BOOTED ?? "/var/lib/mha-lab-booted"
export const bootedLabDir = (labId: string): string => join(bootedBase(), labId)

const NSPAWN_RUN = "/run/systemd/nspawn"
/** Our note that we mounted the tmpfs on NSPAWN_RUN (and so may unmount it). */
const NSPAWN_MOUNT_NOTE = join(bootedBase(), ".nspawn-tmpfs-mounted-by-lab")

/** The host's files: its overlay (upper, work, merged root) and the systemd-nspawn pid. */
export interface BootedHostPaths {
  readonly dir: string
  readonly root: string
}

export const bootedHostPaths = (labId: string, host: string): BootedHostPaths => {
  const dir = join(bootedLabDir(labId), host)
  return { dir, root: join(dir, "root") }
}

const isMounted = (path: string): boolean =>
  readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[1] === path)

/**
 * systemd-nspawn refuses to run unless /run/systemd/nspawn is on a tmpfs
 * (/run is not one on this machine). Mounted once, noted, and unmounted by
 * the last teardown, so the machine is left as it was.
 */
let nspawnRunReady: Promise<void> | undefined
// One at a time: hosts boot concurrently, and two mounts would stack.
const ensureNspawnRun = (): Promise<void> => {
  nspawnRunReady ??= mountNspawnRun().finally(() => {
    nspawnRunReady = undefined
  })
  return nspawnRunReady
}

const mountNspawnRun = async (): Promise<void> => {
  if (isMounted(NSPAWN_RUN)) return
  const r = await tryRun("stat", ["-f", "-c", "%T", "/run"])
  if (r.ok && r.stdout.trim() === "tmpfs") return
  await mkdir(NSPAWN_RUN, { recursive: true })
  await run("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", NSPAWN_RUN])
  await mkdir(bootedBase(), { recursive: true })
  await writeFile(NSPAWN_MOUNT_NOTE, `${new Date().toISOString()}\n`)
}

/**
 * Each container's systemd needs a cgroup v2 subtree of its own: on this
 * machine (cgroup v1, no systemd) nspawn would otherwise hand every container
 * the root of the v2 hierarchy, and the containers' units would share
 * cgroups (db1's mha-agent.service holding db2's agent: a stop of one waits
 * for the others to exit). systemd-nspawn --keep-unit takes the cgroup it is
 * started in as the container's root.
 */
const CGROUP2_HOST = "/sys/fs/cgroup/unified"
const CGROUP2_MOUNT_NOTE = join(bootedBase(), ".cgroup2-mounted-by-lab")

let cgroup2Ready: Promise<string> | undefined
const cgroup2Root = (): Promise<string> => {
  cgroup2Ready ??= findOrMountCgroup2().finally(() => {
    cgroup2Ready = undefined
  })
  return cgroup2Ready
}

const findOrMountCgroup2 = async (): Promise<string> => {
  const mounted = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .find((f) => f[2] === "cgroup2")?.[1]
  if (mounted !== undefined) return mounted
  await mkdir(CGROUP2_HOST, { recursive: true })
  await run("mount", ["-t", "cgroup2", "cgroup2", CGROUP2_HOST])
  await mkdir(bootedBase(), { recursive: true })
  await writeFile(CGROUP2_MOUNT_NOTE, `${new Date().toISOString()}\n`)
  return CGROUP2_HOST
}

const hostCgroupName = (labId: string, host: string) => `mha-lab-${labId}-${host}`

/** Removes a container's cgroup subtree (after its processes are gone), deepest first. */
const removeCgroup = async (dir: string): Promise<void> => {
  // A container whose systemd-nspawn had to be killed leaves its processes
  // behind: cgroup.kill ends everything in this container's subtree, and
  // nothing else.
  if (existsSync(join(dir, "cgroup.kill")))
    await writeFile(join(dir, "cgroup.kill"), "1").catch(() => {})
  // A cgroup whose last process just exited may still be busy for a moment.
  for (let attempt = 0; attempt < 20 && existsSync(dir); attempt++) {
    await tryRun("find", [dir, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
    if (existsSync(dir)) await sleep(250)
  }
}

const nspawnRunning = (): boolean =>
  readdirSync("/proc").some((p) => {
    if (!/^\d+$/.test(p)) return false
    try {
      return readFileSync(`/proc/${p}/comm`, "utf8").trim() === "systemd-nspawn"
    } catch {
      return false
    }
  })

/** Makes the host's overlay of the cached root; returns the root the container boots. */
export const makeHostRoot = async (
  lower: string,
  labId: string,
  host: string,
): Promise<BootedHostPaths> => {
  const paths = bootedHostPaths(labId, host)
  for (const d of ["upper", "work", "root"]) await mkdir(join(paths.dir, d), { recursive: true })
  await run("mount", [
    "-t",
    "overlay",
    "overlay",
    "-o",
    `lowerdir=${lower},upperdir=${join(paths.dir, "upper")},workdir=${join(paths.dir, "work")}`,
    paths.root,
  ])
  return paths
}

/** Boots the container in the host's network namespace; returns the pid of its systemd (PID 1 inside). */
export const bootHost = async (
  labId: string,
  host: string,
  netns: string,
  timeoutMs = 120_000,
): Promise<number> => {
  await ensureNspawnRun()
  const { dir, root } = bootedHostPaths(labId, host)
  const cgroup = join(await cgroup2Root(), hostCgroupName(labId, host))
  await mkdir(cgroup, { recursive: true })
  const fd = openSync(join(dir, "console.log"), "a")
  let pid: number
  try {
    pid = spawnDetached(
      "sh",
      [
        "-c",
        // Into its own cgroup first, then become systemd-nspawn (same pid).
        'echo $$ > "$0/cgroup.procs" && exec "$@"',
        cgroup,
        "systemd-nspawn",
        // No system bus on this machine: no registration with machined, no scope unit.
        "--keep-unit",
        "--register=no",
        "--boot",
        "--console=read-only",
        // The namespace is this host's own network: its root may manage it
        // (nspawn keeps CAP_NET_ADMIN out of the container's bounding set
        // unless asked, and the agent's unit hands it on for the VIP).
        "--capability=CAP_NET_ADMIN",
        `--network-namespace-path=/run/netns/${netns}`,
        "-D",
        root,
        "-M",
        `${labId}-${host}`,
      ],
      fd,
      // sid's systemd needs the unified cgroup hierarchy.
      { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1" },
    )
  } finally {
    closeSync(fd)
  }
  await writeFile(join(dir, "nspawn.pid"), String(pid))
  let leader: number | undefined
  await waitFor(
    `the container of ${host} to start systemd`,
    () => {
      if (!alive(pid)) {
        throw new LabError(
          `systemd-nspawn for ${host} exited; its output is in ${join(dir, "console.log")}`,
        )
      }
      leader = containerLeader(pid)
      return leader !== undefined
    },
    timeoutMs,
    100,
  )
  await writeFile(join(dir, "leader.pid"), String(leader))
  return leader!
}

/** PID 1 of the container: the one child of systemd-nspawn whose command is systemd. */
const containerLeader = (nspawnPid: number): number | undefined => {
  try {
    for (const task of readdirSync(`/proc/${nspawnPid}/task`)) {
      const children = readFileSync(`/proc/${nspawnPid}/task/${task}/children`, "utf8")
        .trim()
        .split(" ")
        .filter((c) => c !== "")
        .map(Number)
      for (const c of children) {
        const comm = readFileSync(`/proc/${c}/comm`, "utf8").trim()
        if (comm === "systemd") return c
      }
    }
  } catch {
    // not there yet, or gone
  }
  return undefined
}

const CONTAINER_ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]

/** Runs a command inside a booted host (all its namespaces, a clean environment), as root. */
export const inContainer = (
  leader: number,
  argv: ReadonlyArray<string>,
  timeoutMs = 120_000,
): Promise<{ stdout: string; stderr: string }> =>
  run("nsenter", ["-t", String(leader), "-a", ...CONTAINER_ENV, ...argv], { timeoutMs })

/** Like inContainer, but a non-zero exit is a result; keeps stdout and the exit code. */
export const tryInContainer = (
  leader: number,
  argv: ReadonlyArray<string>,
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(
      "nsenter",
      ["-t", String(leader), "-a", ...CONTAINER_ENV, ...argv],
      { timeout: timeoutMs, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0
        resolve({ code, stdout, stderr })
      },
    )
  })

/**
 * Halts every booted host of a lab (SIGTERM to systemd-nspawn: a clean
 * shutdown of the container; SIGKILL after 30 s), unmounts the overlays and
 * removes their files; then unmounts the nspawn tmpfs if we mounted it and
 * no container runs any more. Idempotent; works after a crashed test.
 */
const removeLabCgroups = async (labId: string): Promise<void> => {
  const cgroupRoot = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .find((f) => f[2] === "cgroup2")?.[1]
  if (cgroupRoot === undefined || !existsSync(cgroupRoot)) return
  for (const e of await readdir(cgroupRoot)) {
    if (e.startsWith(`mha-lab-${labId}-`)) await removeCgroup(join(cgroupRoot, e))
  }
}

export const haltBootedHosts = async (labId: string): Promise<void> => {
  const labDir = bootedLabDir(labId)
  if (existsSync(labDir)) {
    const hosts = await readdir(labDir)
    const pids: number[] = []
    for (const h of hosts) {
      const file = join(labDir, h, "nspawn.pid")
      if (!existsSync(file)) continue
      const pid = Number((await readFile(file, "utf8")).trim())
      if (pid > 0 && alive(pid) && isNspawn(pid)) {
        process.kill(pid, "SIGTERM")
        pids.push(pid)
      }
    }
    const deadline = Date.now() + 30_000
    while (pids.some(alive) && Date.now() < deadline) await sleep(200)
    const stuck = pids.filter(alive)
    for (const pid of stuck) process.kill(pid, "SIGKILL")
    if (stuck.length > 0) {
      console.error(
        `booted lab ${labId}: ${stuck.length} container(s) did not halt within 30 s; killed`,
      )
    }
    // Whatever is left of the containers goes before their roots are unmounted.
    await removeLabCgroups(labId)
    for (const h of hosts) {
      const root = join(labDir, h, "root")
      if (isMounted(root)) {
        const r = await tryRun("umount", [root])
        if (!r.ok) await tryRun("umount", ["-l", root])
      }
    }
    await rm(labDir, { recursive: true, force: true })
  }
  await removeLabCgroups(labId)
  if (existsSync(CGROUP2_MOUNT_NOTE) && !nspawnRunning()) {
    await tryRun("umount", [CGROUP2_HOST])
    await rm(CGROUP2_MOUNT_NOTE, { force: true })
  }
  if (existsSync(NSPAWN_MOUNT_NOTE) && !nspawnRunning()) {
    if (isMounted(NSPAWN_RUN)) await tryRun("umount", [NSPAWN_RUN])
    await rm(NSPAWN_MOUNT_NOTE, { force: true })
  }
}

const isNspawn = (pid: number): boolean => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "systemd-nspawn"
  } catch {
    return false
  }
}

/** Lab ids that have booted hosts on this machine. */
export const bootedLabIds = async (): Promise<string[]> =>
  existsSync(bootedBase()) ? (await readdir(bootedBase())).filter((e) => !e.startsWith(".")) : []
