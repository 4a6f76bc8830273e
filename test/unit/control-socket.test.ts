// The control socket bounds what local clients can make the agent hold
// (issue 16 item 4): 200 clients looping status plus 50 sending garbage
// (binary, 10 MB lines, endless bad lines, silence) get a status or a
// refusal that says why, and the server's RSS stays bounded.
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import { readFileSync, rmSync } from "node:fs"
import { connect } from "node:net"
import { join } from "node:path"
import { test } from "node:test"
import { abuseControlSocket } from "../lab/control-abuse.ts"

const here = import.meta.dirname

const startServer = async (path: string, limits: object = {}) => {
  const child = spawn(
    process.execPath,
    // The packaged binary's V8 flags (packaging/build.sh): the heap the agent really runs with.
    [
      "--max-semi-space-size=1",
      "--optimize-for-size",
      "--max-old-space-size=64",
      join(here, "control-socket-server.ts"),
      path,
      JSON.stringify(limits),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  )
  await new Promise<void>((resolve, reject) => {
    child.stdout.once("data", () => resolve())
    child.once("exit", (code) => reject(new Error(`the server exited ${code}`)))
  })
  const rssMiB = (): number =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1]) / 1024
  const stop = async () => {
    const exited = new Promise((r) => child.once("exit", r))
    child.kill("SIGTERM")
    await exited
    rmSync(path, { force: true })
  }
  return { rssMiB, stop }
}

const exchange = (path: string, send: string | Buffer): Promise<string | null> =>
  new Promise((resolve) => {
    const socket = connect(path)
    let buffer = ""
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write(send))
    socket.on("data", (c: string) => {
      buffer += c
      const nl = buffer.indexOf("\n")
      if (nl >= 0) {
        socket.destroy()
        resolve(buffer.slice(0, nl))
      }
    })
    socket.on("close", () => resolve(null))
    socket.on("error", () => resolve(null))
  })

test("control socket: each limit answers with a reply that says why", async () => {
  const path = `/tmp/mha-control-unit-${process.pid}-a.sock`
  const server = await startServer(path, { maxConnections: 2, idleTimeoutMs: 300 })
  try {
    const ok = JSON.parse((await exchange(path, '{"_tag":"Status"}\n')) ?? "{}")
    assert.equal(ok.ok, true)
    assert.equal(ok.status.members.length, 3)
    const bad = JSON.parse((await exchange(path, "{not json\n")) ?? "{}")
    assert.match(bad.message, /malformed request: not JSON/)
    const long = JSON.parse((await exchange(path, Buffer.alloc(200_000, "x"))) ?? "{}")
    assert.match(long.message, /request too long: more than 65536 bytes/)
    const silent = JSON.parse((await exchange(path, "")) ?? "{}")
    assert.match(silent.message, /idle for 300 ms/)
    // Two connections held open: the third is told the agent is busy.
    const held = [connect(path), connect(path)]
    await new Promise((r) => setTimeout(r, 100))
    const busy = JSON.parse((await exchange(path, '{"_tag":"Status"}\n')) ?? "{}")
    assert.match(busy.message, /busy: 2 control connections already open; retry/)
    for (const s of held) s.destroy()
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(JSON.parse((await exchange(path, '{"_tag":"Status"}\n')) ?? "{}").ok, true)
    // 20000 requests in one write, no reply ever read: answered one at a time
    // as the client reads, so the agent holds one reply, not 20000.
    const rssBefore = server.rssMiB()
    const greedy = connect(path)
    greedy.pause()
    greedy.on("error", () => {})
    greedy.write('{"_tag":"Status"}\n'.repeat(20_000))
    let rssMax = rssBefore
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100))
      rssMax = Math.max(rssMax, server.rssMiB())
    }
    greedy.destroy()
    assert.ok(
      rssMax - rssBefore < 10,
      `RSS +${(rssMax - rssBefore).toFixed(1)} MiB for unread replies`,
    )
  } finally {
    await server.stop()
  }
})

test("control socket: 200 clients looping status and 50 sending garbage; RSS bounded and back afterwards", async () => {
  const path = `/tmp/mha-control-unit-${process.pid}-b.sock`
  const server = await startServer(path)
  try {
    const before = server.rssMiB()
    let max = before
    const sampler = setInterval(() => {
      max = Math.max(max, server.rssMiB())
    }, 50)
    const result = await abuseControlSocket({
      socketPath: path,
      statusClients: 200,
      garbageClients: 50,
      durationMs: 4_000,
    }).finally(() => clearInterval(sampler))
    await new Promise((r) => setTimeout(r, 3_000))
    const after = server.rssMiB()
    console.log(
      `statuses ${result.statusOk}, refused ${JSON.stringify([...result.refused])}, garbage answered ${JSON.stringify([...result.garbageAnswered])}, closed ${result.garbageClosed}, client errors ${JSON.stringify([...result.errors])}; RSS ${before.toFixed(1)} -> max ${max.toFixed(1)} -> ${after.toFixed(1)} MiB 3 s later`,
    )
    assert.deepEqual(result.wrong.slice(0, 5), [])
    // Statuses keep being served while the socket is flooded: not a rate (a
    // benchmark's business). Runs here saw 168 to 582 in the 4 s, fewer on a
    // loaded 2-core machine, the rest refused as busy with a reason.
    assert.ok(result.statusOk >= 50, `statuses: ${result.statusOk}`)
    // A flooding client may see its write fail (EPIPE) before it reads the
    // refusal, more so on a loaded machine: each refusal must be seen, not by every client.
    const answered = [...result.garbageAnswered.keys()]
    for (const why of ["request too long", "malformed request"]) {
      assert.ok(
        answered.some((k) => k.includes(`: ${why}`)),
        `a garbage client was told "${why}"`,
      )
    }
    assert.ok(max - before < 50, `RSS +${(max - before).toFixed(1)} MiB under abuse`)
    assert.ok(after - before < 25, `RSS +${(after - before).toFixed(1)} MiB afterwards`)
  } finally {
    await server.stop()
  }
})
