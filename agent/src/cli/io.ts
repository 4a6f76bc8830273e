// Where the CLI writes: process.stdout and process.stderr when it runs, string
// buffers in the unit tests (so they run the real code in-process).

export interface Io {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
}

export const processIo: Io = {
  out: (text) => {
    process.stdout.write(text)
  },
  err: (text) => {
    process.stderr.write(text)
  },
}

/** An Io that keeps what was written (tests). */
export const bufferIo = (): Io & { stdout: () => string; stderr: () => string } => {
  let out = ""
  let err = ""
  return {
    out: (t) => {
      out += t
    },
    err: (t) => {
      err += t
    },
    stdout: () => out,
    stderr: () => err,
  }
}
