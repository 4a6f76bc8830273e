// The HTTP endpoints (agent/src/daemon/http.ts): what each path answers for
// an ACTIVE, a STANDBY, a FAIL and a fresh node, and a real listener that
// survives malformed requests and answers HEAD without a body.
import assert from "node:assert/strict"
import { connect, createServer } from "node:net"
import { describe, test } from "node:test"
import { Effect, Exit, Scope } from "effect"
import pino from "pino"
import type { AgentState } from "../../agent/src/core/types.ts"
import { answerHttp, type HttpView, LIVENESS_MS, serveHttp } from "../../agent/src/daemon/http.ts"
import { notePublished, resetCounters } from "../../agent/src/daemon/metrics.ts"
import type { Config } from "../../shared/config.ts"
import { activeState, failState, freshState, standbyState } from "./daemon-states.ts"
import { parsePromText } from "./prom-text.ts"

const view = (state: AgentState | undefined, loopAgeMs: number | null = 20): HttpView => ({
  cluster: "prod",
  node: state?.self ?? "db1",
  state,
  loopAgeMs,
  metrics: () => "# TYPE mha_x gauge\nmha_x 1\n",
})

const get = (v: HttpView, url: string) => answerHttp(v, "GET", url)
const status = (v: HttpView, url: string) => get(v, url).status

describe("the HTTP endpoints", () => {
  test("/primary and /read-write: 200 only on the ACTIVE node", () => {
    for (const path of ["/primary", "/read-write"]) {
      assert.equal(status(view(activeState()), path), 200, path)
      assert.equal(status(view(standbyState()), path), 503)
      assert.equal(status(view(failState()), path), 503)
      assert.equal(status(view(freshState()), path), 503)
      assert.equal(status(view(undefined), path), 503)
    }
    assert.match(get(view(activeState()), "/primary").body, /^ACTIVE: .*term 3\n$/)
    assert.match(get(view(standbyState()), "/primary").body, /^STANDBY: leader db1, term 3\n$/)
  })

  test("/primary: a stalled decision loop or a lease that ran out since the last step is 503", () => {
    assert.equal(status(view(activeState(), LIVENESS_MS + 1), "/primary"), 503)
    // The lease had 3 s left when the state was published, 3.1 s ago.
    assert.equal(status(view(activeState(), 3_100), "/primary"), 503)
    assert.equal(status(view(activeState(), null), "/primary"), 503)
  })

  test("/replica: a STANDBY, within max_lag when given", () => {
    assert.equal(status(view(standbyState(7)), "/replica"), 200)
    assert.equal(status(view(standbyState(7)), "/replica?max_lag=10"), 200)
    assert.equal(status(view(standbyState(7)), "/replica?max_lag=7"), 200)
    assert.equal(status(view(standbyState(7)), "/replica?max_lag=5"), 503)
    assert.match(get(view(standbyState(7)), "/replica?max_lag=5").body, /lag 7 s > max_lag 5 s/)
    assert.equal(status(view(standbyState(null)), "/replica?max_lag=5"), 503)
    assert.equal(status(view(standbyState(null)), "/replica"), 200)
    assert.equal(status(view(activeState()), "/replica"), 503)
    assert.equal(status(view(failState()), "/replica"), 503)
    for (const bad of ["abc", "-1", "", "1e999"]) {
      assert.equal(status(view(standbyState()), `/replica?max_lag=${bad}`), 400, bad)
    }
  })

  test("/read-only: the primary or a healthy replica", () => {
    assert.equal(status(view(activeState()), "/read-only"), 200)
    assert.equal(status(view(standbyState()), "/read-only"), 200)
    assert.equal(status(view(failState()), "/read-only"), 503)
    const s = standbyState()
    const critical = {
      ...s,
      local: { ...s.local, health: { ...s.local.health, level: "CRITICAL" as const } },
    }
    assert.equal(status(view(critical), "/read-only"), 503)
  })

  test("/health, /liveness, /readiness", () => {
    assert.equal(status(view(activeState()), "/health"), 200)
    assert.equal(status(view(failState()), "/health"), 503)
    assert.equal(status(view(freshState()), "/health"), 503)
    assert.equal(status(view(activeState(), 100), "/liveness"), 200)
    assert.equal(status(view(activeState(), LIVENESS_MS + 500), "/liveness"), 503)
    assert.equal(status(view(undefined, null), "/liveness"), 503)
    assert.equal(status(view(activeState()), "/readiness"), 200)
    assert.equal(status(view(standbyState()), "/readiness"), 200)
    assert.equal(status(view(failState()), "/readiness"), 200, "joined, even if its mysqld is down")
    assert.equal(status(view(freshState()), "/readiness"), 503)
    assert.equal(status(view(undefined), "/readiness"), 503)
  })

  test("/cluster and /metrics always answer 200", () => {
    const c = get(view(activeState()), "/cluster")
    assert.equal(c.status, 200)
    const json = JSON.parse(c.body) as { node: string; role: string; members: unknown[] }
    assert.equal(json.node, "db1")
    assert.equal(json.role, "ACTIVE")
    assert.equal(json.members.length, 3)
    assert.deepEqual(JSON.parse(get(view(undefined), "/cluster").body), {
      cluster: "prod",
      node: "db1",
      starting: true,
    })
    assert.equal(status(view(undefined), "/metrics"), 200)
  })

  test("unknown paths, other methods, odd targets", () => {
    assert.equal(status(view(activeState()), "/nope"), 404)
    assert.equal(status(view(activeState()), "/primary/"), 404)
    const post = answerHttp(view(activeState()), "POST", "/primary")
    assert.equal(post.status, 405)
    assert.equal(post.headers?.Allow, "GET, HEAD")
    assert.equal(answerHttp(view(activeState()), undefined, undefined).status, 405)
    assert.equal(status(view(activeState()), "/primary?x=%zz"), 200, "a broken query is ignored")
    assert.equal(status(view(activeState()), "//primary"), 404)
  })
})

const raw = (port: number, request: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1")
    let data = ""
    socket.setEncoding("utf8")
    socket.on("data", (d: string) => {
      data += d
    })
    socket.on("end", () => resolve(data))
    socket.on("close", () => resolve(data))
    socket.on("error", reject)
    socket.write(request)
    setTimeout(() => socket.end(), 300)
  })

describe("the HTTP listener", () => {
  test("serves GET and HEAD, and survives malformed requests", async () => {
    resetCounters()
    const state = activeState()
    notePublished(state)
    const port = 20_000 + Math.floor(Math.random() * 20_000)
    const config = {
      cluster: { name: "prod", members: [] },
      node: "db1",
      http: { listen: `127.0.0.1:${port}` },
    } as unknown as Config
    const scope = Effect.runSync(Scope.make())
    await Effect.runPromise(
      Scope.provide(scope)(
        serveHttp({ config: () => config, state: () => state, log: pino({ level: "silent" }) }),
      ),
    )
    try {
      const base = `http://127.0.0.1:${port}`
      const primary = await fetch(`${base}/primary`)
      assert.equal(primary.status, 200)
      assert.match(await primary.text(), /^ACTIVE/)
      const head = await fetch(`${base}/primary`, { method: "HEAD" })
      assert.equal(head.status, 200)
      assert.equal(await head.text(), "")
      assert.ok(Number(head.headers.get("content-length")) > 0, "HEAD announces the GET length")
      const metrics = await fetch(`${base}/metrics`)
      assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/)
      assert.ok(parsePromText(await metrics.text()).has("mha_term"))
      assert.equal(
        (await fetch(`${base}/primary`, { method: "POST", body: "x".repeat(100_000) })).status,
        405,
      )

      assert.match(await raw(port, "GARBAGE\r\n\r\n"), /^HTTP\/1\.1 400/)
      assert.match(
        await raw(port, `GET /primary HTTP/1.1\r\nX: ${"a".repeat(40_000)}\r\n\r\n`),
        /^HTTP\/1\.1 4\d\d/,
      )
      await raw(port, "GET /prim")
      await raw(port, "\x00\xff\xfe binary \r\n\r\n")
      const many = await Promise.all(Array.from({ length: 50 }, () => fetch(`${base}/cluster`)))
      assert.ok(many.every((r) => r.status === 200))
      assert.equal((await fetch(`${base}/health`)).status, 200, "still serving")
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
    await assert.rejects(fetch(`http://127.0.0.1:${port}/primary`), "closed with its scope")
  })

  test("a port in use fails the start; a new http.listen (SIGHUP) moves the listener once told of the new config; one that cannot be bound keeps the old", async () => {
    resetCounters()
    const state = activeState()
    notePublished(state)
    const port = 20_000 + Math.floor(Math.random() * 20_000)
    let listen = `127.0.0.1:${port}`
    const config = () =>
      ({
        cluster: { name: "prod", members: [] },
        node: "db1",
        http: { listen },
      }) as unknown as Config
    // What AgentConfig.replace does on a reload: the new config, then its listeners.
    const replaced = new Set<() => void>()
    const replace = (next: string) => {
      listen = next
      for (const listener of replaced) listener()
    }
    const logged: Array<string> = []
    const log = pino({ level: "info" }, { write: (line: string) => void logged.push(line) })
    const options = {
      config,
      state: () => state,
      log,
      onConfigReplaced: (listener: () => void) => {
        replaced.add(listener)
        return () => replaced.delete(listener)
      },
    }
    const serving = async (address: string) =>
      (await fetch(`http://${address}/liveness`).catch(() => undefined))?.status === 200
    const scope = Effect.runSync(Scope.make())
    await Effect.runPromise(Scope.provide(scope)(serveHttp(options)))
    // Another listener on a port: the address a reload will fail to bind.
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(port + 2, "127.0.0.1", resolve))
    try {
      const second = await Effect.runPromiseExit(Effect.scoped(serveHttp(options)))
      assert.ok(Exit.isFailure(second), "the same address twice")
      assert.match(String(second.cause), /HTTP listener could not start on 127\.0\.0\.1:\d+/)
      assert.equal(replaced.size, 1, "the failed start left no listener behind")
      const first = `127.0.0.1:${port}`
      replace(`127.0.0.1:${port + 1}`)
      await waitFor(() => serving(`127.0.0.1:${port + 1}`))
      await waitFor(async () => !(await serving(first)))
      assert.ok(logged.some((l) => l.includes(`HTTP moved from ${first} to 127.0.0.1:${port + 1}`)))
      replace(`127.0.0.1:${port + 2}`)
      await waitFor(async () => logged.some((l) => l.includes("could not be bound")))
      assert.ok(
        logged.some((l) =>
          l.includes(
            `HTTP stays on 127.0.0.1:${port + 1}: 127.0.0.1:${port + 2} could not be bound`,
          ),
        ),
      )
      assert.ok(await serving(`127.0.0.1:${port + 1}`), "still on the old address")
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await new Promise((resolve) => taken.close(resolve))
    }
    assert.equal(replaced.size, 0, "the subscription ends with the scope")
    assert.equal(await serving(`127.0.0.1:${port + 1}`), false, "closed with its scope")
  })
})

describe("held checks (?wait=MS), for a load balancer that polls", () => {
  test("a bad wait, or a wait on a path that is not a role path, is a 400 naming it", () => {
    for (const bad of ["abc", "-1", "1.5", "", "5001"]) {
      const r = get(view(activeState()), `/primary?wait=${bad}`)
      assert.equal(r.status, 400, bad)
      assert.match(r.body, /wait must be a whole number of milliseconds from 0 to 5000/)
    }
    const r = get(view(activeState()), "/health?wait=100")
    assert.equal(r.status, 400)
    assert.match(
      r.body,
      /wait applies to \/primary, \/read-write, \/replica, \/read-only, not to \/health/,
    )
    assert.equal(status(view(activeState()), "/primary?wait=1000"), 200, "the answer itself")
  })

  test("held until the status changes (a fenced primary, a new one) or the wait ends; a poller that leaves is forgotten", async () => {
    resetCounters()
    let state = activeState()
    notePublished(state)
    const listeners = new Set<() => void>()
    const publish = (s: AgentState) => {
      state = s
      notePublished(s)
      for (const listener of listeners) listener()
    }
    const port = 20_000 + Math.floor(Math.random() * 20_000)
    const config = {
      cluster: { name: "prod", members: [] },
      node: "db1",
      http: { listen: `127.0.0.1:${port}` },
    } as unknown as Config
    const scope = Effect.runSync(Scope.make())
    await Effect.runPromise(
      Scope.provide(scope)(
        serveHttp({
          config: () => config,
          state: () => state,
          log: pino({ level: "silent" }),
          onPublish: (listener) => {
            listeners.add(listener)
            return () => listeners.delete(listener)
          },
        }),
      ),
    )
    const base = `http://127.0.0.1:${port}`
    const timed = async (path: string) => {
      const t0 = Date.now()
      const r = await fetch(`${base}${path}`)
      return { status: r.status, body: await r.text(), ms: Date.now() - t0 }
    }
    try {
      // A poller seen for the first time is answered at once: what it believes is unknown.
      const first = await timed("/primary?wait=5000")
      assert.equal(first.status, 200)
      assert.ok(first.ms < 4_000, `answered at once (${first.ms} ms)`)
      // Nothing changes: the answer comes when the wait ends, as it is then.
      const quiet = await timed("/primary?wait=300")
      assert.equal(quiet.status, 200)
      assert.ok(quiet.ms >= 250, `held for the wait (${quiet.ms} ms)`)
      assert.equal(listeners.size, 0, "no listener left once answered")

      // The primary is fenced while its check is held: 503 at once, not at the end of the wait.
      const fenced = timed("/primary?wait=5000")
      await waitFor(async () => listeners.size === 1)
      publish(activeState()) // published again, still ACTIVE: stays held
      await new Promise((r) => setTimeout(r, 50))
      assert.equal(listeners.size, 1, "a state with the same answer does not end the hold")
      publish(standbyState())
      const down = await fenced
      assert.equal(down.status, 503)
      assert.match(down.body, /^STANDBY/)
      assert.ok(down.ms < 4_000, `answered on the change (${down.ms} ms)`)

      // A replica's held check answers 200 the moment it is the ACTIVE primary.
      const promoted = timed("/primary?wait=5000")
      await waitFor(async () => listeners.size === 1)
      publish(activeState())
      const up = await promoted
      assert.equal(up.status, 200)
      assert.ok(up.ms < 4_000, `answered on the change (${up.ms} ms)`)

      // Fenced between two checks (no check held then): the next check is answered at
      // once, since this poller was last told 200; held, it would believe 200 for 5 s.
      publish(standbyState())
      const between = await timed("/primary?wait=5000")
      assert.equal(between.status, 503)
      assert.ok(between.ms < 4_000, `answered at once (${between.ms} ms)`)

      // A poller that gives up (its check timeout) leaves no listener behind.
      assert.equal((await timed("/replica?wait=5000")).status, 200, "first: at once")
      const gone = new AbortController()
      const abandoned = fetch(`${base}/replica?wait=5000`, { signal: gone.signal }).catch(
        () => "aborted",
      )
      await waitFor(async () => listeners.size === 1)
      gone.abort()
      assert.equal(await abandoned, "aborted")
      await waitFor(async () => listeners.size === 0)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })
})

const waitFor = async (check: () => Promise<boolean>): Promise<void> => {
  for (let i = 0; i < 50; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error("timed out")
}
