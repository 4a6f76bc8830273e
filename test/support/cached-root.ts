// A Debian root filesystem built once with debootstrap and kept in the lab's
// cache (the lab's sid root, the booted hosts' root, the package tests'
// bookworm root). What they share: a recipe version in a marker file, so a
// changed recipe rebuilds the cache; a build into a temporary directory that
// is renamed into place only once complete, so an interrupted build never
// leaves a root that looks ready.
import { existsSync } from "node:fs"
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import { dirname, join } from "node:path"

export interface CachedRoot {
  /** Where the finished root lives. */
  readonly dir: string
  /** The marker file's name inside the root; it holds `recipe`. */
  readonly marker: string
  /** Bumped when the recipe changes, so old caches are rebuilt. */
  readonly recipe: string
  /** Paths (relative to the root) that a ready root has. */
  readonly needs: ReadonlyArray<string>
  /** For the log: what is built and how long it takes ("the ... root (about 2 min)"). */
  readonly what: string
  /** Builds the root into `tmp` (an empty path: debootstrap creates it). */
  readonly build: (tmp: string) => Promise<void>
  /** The error the caller's tests throw (LabError, PkgTestError). */
  readonly error: (message: string) => Error
}

const isReady = async (r: CachedRoot): Promise<boolean> => {
  const marker = join(r.dir, r.marker)
  if (!existsSync(marker)) return false
  if ((await readFile(marker, "utf8")).trim() !== r.recipe) return false
  return r.needs.every((p) => existsSync(join(r.dir, p)))
}

/** Returns the cached root, building it first when it is missing or stale. */
export const ensureCachedRoot = async (
  r: CachedRoot,
  log: (line: string) => void,
): Promise<string> => {
  if (await isReady(r)) return r.dir
  if (!existsSync("/usr/sbin/debootstrap")) {
    throw r.error(
      "debootstrap is missing: install it with 'apt-get install -y debootstrap' (npm run setup does this)",
    )
  }
  await mkdir(dirname(r.dir), { recursive: true })
  const tmp = `${r.dir}.build-${process.pid}`
  await rm(tmp, { recursive: true, force: true })
  log(`building ${r.what} in ${r.dir}`)
  const started = Date.now()
  try {
    await r.build(tmp)
    await writeFile(join(tmp, r.marker), `${r.recipe}\n`)
    await rm(r.dir, { recursive: true, force: true })
    await rename(tmp, r.dir)
  } catch (e) {
    await rm(tmp, { recursive: true, force: true })
    throw e
  }
  log(`${r.dir} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return r.dir
}
