// The agent binary of an earlier release, built from its commit once and kept
// in the lab's cache keyed by that commit (like cached-root.ts keeps roots):
// the mixed-version tests run it beside the current agent. The build is the
// release's own packaging/build.sh, run in a detached git worktree outside
// the checkout; a build goes to a temporary directory renamed into place only
// once complete, so an interrupted build never leaves a binary that looks ready.
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { copyFile, mkdir, readFile, rename, rm, symlink } from "node:fs/promises"
import { join } from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)
const repo = join(import.meta.dirname, "../..")

/** The release the rolling-upgrade tests start from: the last one that landed. */
export const PREVIOUS_RELEASE = "dfc83b6"

const cacheDir = (): string => process.env.MHA_LAB_CACHE ?? "/var/cache/mha-lab"

/** Bumped when the build below changes, so cached builds are redone. */
const RECIPE = "r2"

const git = async (args: ReadonlyArray<string>, cwd = repo): Promise<string> =>
  (await run("git", [...args], { cwd, maxBuffer: 16 * 1024 * 1024 })).stdout.trim()

/** The dependency lists of a package.json, for "can this tree use our node_modules". */
const deps = (text: string): string => {
  const p = JSON.parse(text) as Record<string, unknown>
  return JSON.stringify([p.dependencies ?? {}, p.devDependencies ?? {}])
}

export interface PreviousRelease {
  /** The full commit id. */
  readonly commit: string
  /** The release's single `mha-agent` binary. */
  readonly binary: string
  /** Its .deb, for the booted hosts. */
  readonly deb: string
}

/**
 * Returns the binary and .deb of `commit`, building them first when the cache
 * has none (about 1 min; CI builds each release once). The tree uses this
 * checkout's node_modules when its package.json lists the same dependencies,
 * and runs its own `npm ci` otherwise.
 */
export const ensurePreviousRelease = async (
  commit: string = PREVIOUS_RELEASE,
  log: (line: string) => void = () => {},
): Promise<PreviousRelease> => {
  let full: string
  try {
    full = await git(["rev-parse", "--verify", `${commit}^{commit}`])
  } catch {
    throw new Error(
      `the previous release ${commit} is not in this clone's history: fetch it (git fetch --unshallow) to run the mixed-version tests`,
    )
  }
  const dir = join(cacheDir(), "releases", `${full}-${RECIPE}`)
  const ready = async (): Promise<PreviousRelease | undefined> => {
    const binary = join(dir, "mha-agent")
    if (!existsSync(binary) || !existsSync(join(dir, "deb"))) return undefined
    const deb = join(dir, (await readFile(join(dir, "deb"), "utf8")).trim())
    return existsSync(deb) ? { commit: full, binary, deb } : undefined
  }
  const cached = await ready()
  if (cached !== undefined) return cached

  await mkdir(join(cacheDir(), "releases"), { recursive: true })
  const tmp = `${dir}.build-${process.pid}`
  const tree = `${tmp}/src`
  await rm(tmp, { recursive: true, force: true })
  await mkdir(tmp, { recursive: true })
  log(`building the release ${commit} (${full}) in ${tmp}`)
  const started = Date.now()
  try {
    await git(["worktree", "add", "--detach", tree, full])
    const same =
      deps(await readFile(join(tree, "package.json"), "utf8")) ===
      deps(await readFile(join(repo, "package.json"), "utf8"))
    if (same) await symlink(join(repo, "node_modules"), join(tree, "node_modules"))
    else await run("npm", ["ci", "--no-audit", "--no-fund"], { cwd: tree, maxBuffer: 64 << 20 })
    const dist = join(tmp, "dist")
    // VERSION-COMMIT, packaged as VERSION~COMMIT: it sorts before this checkout's
    // VERSION, so `apt-get install` of the current .deb is an upgrade, and back a downgrade.
    const version = (
      JSON.parse(await readFile(join(tree, "package.json"), "utf8")) as { version: string }
    ).version
    await run("bash", ["packaging/build.sh"], {
      cwd: tree,
      env: {
        ...process.env,
        MHA_DIST: dist,
        MHA_COMPRESS: "gzip",
        MHA_VERSION: `${version.split("-")[0]}-${full.slice(0, 7)}`,
      },
      maxBuffer: 64 << 20,
    })
    const { stdout } = await run("bash", ["-c", `cd '${dist}' && ls mha-agent_*.deb`])
    const deb = stdout.trim().split("\n")[0] ?? ""
    if (deb === "") throw new Error(`the build of ${commit} made no .deb in ${dist}`)
    await copyFile(join(dist, "mha-agent"), join(tmp, "mha-agent"))
    await copyFile(join(dist, deb), join(tmp, deb))
    await run("chmod", ["0755", join(tmp, "mha-agent")])
    await run("bash", ["-c", `printf '%s\\n' '${deb}' > '${tmp}/deb'`])
  } catch (e) {
    await git(["worktree", "remove", "--force", tree]).catch(() => "")
    await rm(tmp, { recursive: true, force: true })
    throw e
  }
  await git(["worktree", "remove", "--force", tree]).catch(() => "")
  await rm(tree, { recursive: true, force: true })
  await rm(join(tmp, "dist"), { recursive: true, force: true })
  await rm(dir, { recursive: true, force: true })
  await rename(tmp, dir)
  log(`release ${commit} built in ${((Date.now() - started) / 1000).toFixed(1)} s: ${dir}`)
  const built = await ready()
  if (built === undefined) throw new Error(`the build of ${commit} left no binary in ${dir}`)
  return built
}
