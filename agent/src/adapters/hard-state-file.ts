/**
 * The hard state on disk (protocol.md section 4): `term`, `voted_for` and the
 * highest accepted cluster record, persisted before any message that depends
 * on it is sent. The document's shape is whatever Effect Schema the caller
 * passes, so the decision core's hard state type plugs in unchanged.
 *
 * Writes are atomic and durable: a temp file in the same directory, fsync,
 * rename over the target, fsync of the directory. A crash leaves either the
 * old document or the new one, never a mix (a leftover temp file is ignored
 * and cleaned up by the next load).
 *
 * Loading never resets anything silently: a missing file is "no state yet"
 * (a fresh member), but an empty, unparsable or schema-invalid file is a
 * typed error naming the file and what is wrong. Starting from nothing after
 * a vote would let this member vote twice in one term (invariant I4).
 *
 * Versions (shared/protocol-version.ts): with a `format`, the document carries
 * `"format": "MAJOR.MINOR"` unless the caller's `legacy` form (1.0, no
 * `format` key: what the release before versions wrote and reads) says the
 * same. A file of a newer major is refused naming both versions; one of the
 * same major and a newer minor is read ignoring the fields this reader does
 * not know (a minor only adds ignorable ones); any other unknown field is an
 * error, as is everything unexpected in a file that holds a vote.
 */
import { randomBytes } from "node:crypto"
import { open, readdir, readFile, rename, unlink } from "node:fs/promises"
import { basename, dirname, join } from "node:path"
import { Context, Effect, Layer, Option, Schema, SchemaIssue, Semaphore } from "effect"
import {
  formatVersion,
  type ProtocolVersion,
  parseVersion,
  UNVERSIONED,
} from "../../../shared/protocol-version.ts"

/** The file exists but cannot be trusted: empty, not JSON, or not the expected shape. */
export class HardStateCorruptError extends Schema.TaggedError<HardStateCorruptError>()(
  "HardStateCorruptError",
  { path: Schema.String, reason: Schema.String },
) {
  override get message(): string {
    return (
      `hard state file ${this.path} is unusable: ${this.reason}. ` +
      "The agent refuses to start from an empty state, which could let it vote twice in one term; " +
      "inspect the file (or restore it from a backup) before starting again"
    )
  }
}

/** The file was written in a format of a major version this agent cannot read (a newer release). */
export class HardStateVersionError extends Schema.TaggedError<HardStateVersionError>()(
  "HardStateVersionError",
  { path: Schema.String, fileVersion: Schema.String, ownVersion: Schema.String },
) {
  override get message(): string {
    return (
      `hard state file ${this.path} is in format ${this.fileVersion}, this agent reads format ${this.ownVersion} ` +
      "and older: it was written by a newer release. Start that release again (or one that reads both); " +
      "do not delete the file, it holds this member's term and vote"
    )
  }
}

/** A file system operation on the hard state failed. */
export class HardStateIoError extends Schema.TaggedError<HardStateIoError>()("HardStateIoError", {
  path: Schema.String,
  operation: Schema.Literals(["read", "encode", "write", "fsync", "rename", "fsync-dir"]),
  reason: Schema.String,
}) {
  override get message(): string {
    return `hard state file ${this.path}: ${this.operation} failed: ${this.reason}`
  }
}

export type HardStateError = HardStateCorruptError | HardStateIoError | HardStateVersionError

/** One hard state document at one path, typed by its schema. */
export interface HardStateStore<A> {
  readonly path: string
  /** `None` when the file does not exist (a member that has never persisted anything). */
  readonly load: Effect.Effect<Option.Option<A>, HardStateError>
  /** Atomically replaces the document; returns once it is durable. */
  readonly save: (value: A) => Effect.Effect<void, HardStateIoError>
}

export interface HardStateStoreOptions<A, I> {
  readonly path: string
  readonly schema: Schema.Codec<A, I>
  /** Versioned documents (see the top of this file); none: the document as the schema encodes it. */
  readonly format?: HardStateFormat<I>
}

export interface HardStateFormat<I> {
  /** The version written (when the legacy form cannot say the same) and the newest major read. */
  readonly version: ProtocolVersion
  /** The 1.0 document for `encoded`, or undefined when 1.0 cannot say the same. */
  readonly legacy?: (encoded: I) => unknown
}

/** The key of the format version in a versioned document. */
export const FORMAT_KEY = "format"

const TMP_INFIX = ".tmp-"

const reasonOf = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException
  return err instanceof Error ? err.message : String(e)
}

const formatIssue = SchemaIssue.makeFormatterDefault()

const encodeDocument = <A, I>(
  schema: Schema.Codec<A, I>,
  path: string,
  value: A,
  format?: HardStateFormat<I>,
) =>
  Schema.encodeEffect(schema)(value).pipe(
    Effect.map((encoded) => {
      const doc =
        format === undefined
          ? encoded
          : (format.legacy?.(encoded) ?? {
              [FORMAT_KEY]: formatVersion(format.version),
              ...(encoded as object),
            })
      return `${JSON.stringify(doc, null, 2)}\n`
    }),
    Effect.mapError(
      (e) => new HardStateIoError({ path, operation: "encode", reason: formatIssue(e.issue) }),
    ),
  )

const decodeDocument = <A, I>(
  schema: Schema.Codec<A, I>,
  path: string,
  text: string,
  format?: HardStateFormat<I>,
) =>
  Effect.gen(function* () {
    if (text.trim() === "") {
      return yield* new HardStateCorruptError({ path, reason: "the file is empty" })
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return yield* new HardStateCorruptError({ path, reason: `not valid JSON (${reasonOf(e)})` })
    }
    let onExcessProperty: "error" | "ignore" = "error"
    if (format !== undefined && typeof json === "object" && json !== null && !Array.isArray(json)) {
      const { [FORMAT_KEY]: tag, ...rest } = json as Record<string, unknown>
      const parsed =
        tag === undefined
          ? ({ ok: true, version: UNVERSIONED } as const)
          : typeof tag === "string"
            ? parseVersion(tag)
            : ({
                ok: false,
                error: `${FORMAT_KEY} ${JSON.stringify(tag)} is not a string`,
              } as const)
      if (!parsed.ok) return yield* new HardStateCorruptError({ path, reason: parsed.error })
      const own = format.version
      if (parsed.version.major > own.major) {
        return yield* new HardStateVersionError({
          path,
          fileVersion: formatVersion(parsed.version),
          ownVersion: formatVersion(own),
        })
      }
      // Same major, newer minor: its extra fields are ignorable by the rule of minors.
      if (parsed.version.major === own.major && parsed.version.minor > own.minor) {
        onExcessProperty = "ignore"
      }
      json = rest
    }
    return yield* Schema.decodeUnknownEffect(schema)(json, { onExcessProperty }).pipe(
      Effect.mapError(
        (e) =>
          new HardStateCorruptError({
            path,
            reason: `does not match the hard state schema: ${formatIssue(e.issue).replaceAll("\n", " ")}`,
          }),
      ),
    )
  })

const io = <A>(
  path: string,
  operation: HardStateIoError["operation"],
  f: () => Promise<A>,
): Effect.Effect<A, HardStateIoError> =>
  Effect.tryPromise({
    try: f,
    catch: (e) => new HardStateIoError({ path, operation, reason: reasonOf(e) }),
  })

/** Writes `text` to `path` atomically and durably (temp file, fsync, rename, fsync dir). */
export const writeFileAtomic = (
  path: string,
  text: string,
): Effect.Effect<void, HardStateIoError> => {
  const dir = dirname(path)
  const tmp = join(
    dir,
    `${basename(path)}${TMP_INFIX}${process.pid}-${randomBytes(4).toString("hex")}`,
  )
  const removeTmp = Effect.promise(() => unlink(tmp).catch(() => undefined))
  return Effect.gen(function* () {
    const fh = yield* io(path, "write", () => open(tmp, "wx", 0o600))
    yield* Effect.ensuring(
      Effect.andThen(
        io(path, "write", () => fh.writeFile(text, "utf8")),
        io(path, "fsync", () => fh.sync()),
      ),
      Effect.promise(() => fh.close().catch(() => undefined)),
    )
    yield* io(path, "rename", () => rename(tmp, path))
    const dh = yield* io(path, "fsync-dir", () => open(dir, "r"))
    yield* Effect.ensuring(
      io(path, "fsync-dir", () => dh.sync()),
      Effect.promise(() => dh.close().catch(() => undefined)),
    )
  }).pipe(
    Effect.tapError((e) => (e.operation === "fsync-dir" ? Effect.void : removeTmp)),
    Effect.uninterruptible,
  )
}

/** Removes temp files that a crashed writer left next to `path` (best effort). */
const cleanStaleTemps = (path: string): Effect.Effect<void> =>
  Effect.promise(async () => {
    const prefix = `${basename(path)}${TMP_INFIX}`
    const dir = dirname(path)
    const names = await readdir(dir).catch(() => [] as Array<string>)
    await Promise.all(
      names
        .filter((n) => n.startsWith(prefix))
        .map((n) => unlink(join(dir, n)).catch(() => undefined)),
    )
  })

const makeFileStore = <A, I>(options: HardStateStoreOptions<A, I>): HardStateStore<A> => {
  const { path, schema, format } = options
  const lock = Semaphore.makeUnsafe(1)
  const load = Effect.gen(function* () {
    const text = yield* Effect.tryPromise({
      try: () => readFile(path, "utf8"),
      catch: (e) => e as NodeJS.ErrnoException,
    }).pipe(
      Effect.map(Option.some),
      Effect.catch((e) =>
        e?.code === "ENOENT"
          ? Effect.succeed(Option.none<string>())
          : Effect.fail(new HardStateIoError({ path, operation: "read", reason: reasonOf(e) })),
      ),
    )
    yield* cleanStaleTemps(path)
    if (Option.isNone(text)) return Option.none<A>()
    return Option.some(yield* decodeDocument(schema, path, text.value, format))
  }).pipe(
    Semaphore.withPermit(lock),
    Effect.withSpan("HardStateFile.load", { attributes: { path } }),
  )
  const save = (value: A) =>
    encodeDocument(schema, path, value, format).pipe(
      Effect.flatMap((text) => writeFileAtomic(path, text)),
      Semaphore.withPermit(lock),
      Effect.withSpan("HardStateFile.save", { attributes: { path } }),
    )
  return { path, load, save }
}

const makeMemoryStore = <A, I>(
  files: Map<string, string>,
  options: HardStateStoreOptions<A, I>,
): HardStateStore<A> => {
  const { path, schema, format } = options
  return {
    path,
    load: Effect.suspend(() => {
      const text = files.get(path)
      return text === undefined
        ? Effect.succeed(Option.none<A>())
        : Effect.map(decodeDocument(schema, path, text, format), Option.some)
    }),
    save: (value) =>
      Effect.map(encodeDocument(schema, path, value, format), (text) => {
        files.set(path, text)
      }),
  }
}

/**
 * Opens hard state stores. `layer` writes real files; `layerMemory` keeps
 * the same JSON documents in memory (for daemon tests), optionally seeded
 * with file contents by path.
 */
export class HardStateFile extends Context.Service<
  HardStateFile,
  {
    readonly store: <A, I>(options: HardStateStoreOptions<A, I>) => HardStateStore<A>
  }
>()("mha-agent/adapters/HardStateFile") {
  static readonly layer: Layer.Layer<HardStateFile> = Layer.succeed(
    HardStateFile,
    HardStateFile.of({ store: makeFileStore }),
  )

  static readonly layerMemory = (
    seed: Iterable<readonly [string, string]> = [],
  ): Layer.Layer<HardStateFile> =>
    Layer.sync(HardStateFile, () => {
      const files = new Map<string, string>(seed)
      return HardStateFile.of({ store: (options) => makeMemoryStore(files, options) })
    })
}
