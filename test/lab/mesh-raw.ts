// A hand-made mesh client for the lab tests: dials one agent with a given
// certificate (good, rogue, outsider) and TLS version, sends raw frames
// (well-formed, malformed, oversize, binary), then reports one JSON line:
//   {"opened":bool,"tlsProtocol":..,"error":..,"closeCode":..,"closeReason":..,"sent":n}
//
// usage: node mesh-raw.ts '<RawClientConfig as JSON>'
import { readFileSync } from "node:fs"
import type { IncomingMessage } from "node:http"
import type { TLSSocket } from "node:tls"
import WebSocket from "ws"
import { MESH_PATH } from "../../agent/src/adapters/mesh.ts"

export type RawFrame =
  | { readonly kind: "json"; readonly value: unknown }
  | { readonly kind: "text"; readonly data: string }
  /** A JSON Beat padded to about `bytes` bytes. */
  | { readonly kind: "padded"; readonly from: string; readonly seq: number; readonly bytes: number }
  | { readonly kind: "binary"; readonly bytes: number }

export interface RawClientConfig {
  readonly address: string
  readonly port: number
  /** SNI and the name we expect (not checked: this client trusts any name). */
  readonly servername: string
  readonly ca: string
  readonly cert: string
  readonly key: string
  readonly maxVersion?: "TLSv1.2" | "TLSv1.3"
  readonly frames: ReadonlyArray<RawFrame>
  /** Pause between frames. */
  readonly gapMs?: number
  /** How long to stay connected after the last frame. */
  readonly lingerMs: number
}

const cfg = JSON.parse(process.argv[2] ?? "{}") as RawClientConfig
const result: Record<string, unknown> = { opened: false, sent: 0 }
const finish = () => {
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}
setTimeout(finish, 20_000).unref()

const ws = new WebSocket(`wss://${cfg.address}:${cfg.port}${MESH_PATH}`, {
  ca: readFileSync(cfg.ca),
  cert: readFileSync(cfg.cert),
  key: readFileSync(cfg.key),
  servername: cfg.servername,
  maxVersion: cfg.maxVersion ?? "TLSv1.3",
  checkServerIdentity: () => undefined,
  handshakeTimeout: 3_000,
  perMessageDeflate: false,
} as unknown as WebSocket.ClientOptions)

ws.on("upgrade", (res: IncomingMessage) => {
  result.tlsProtocol = (res.socket as TLSSocket).getProtocol()
})
ws.on("error", (e: Error & { code?: string }) => {
  result.error = `${e.code ?? ""} ${e.message}`.trim()
})
ws.on("close", (code: number, reason: Buffer) => {
  result.closeCode = code
  result.closeReason = reason.toString("utf8")
  finish()
})
ws.on("open", async () => {
  result.opened = true
  for (const f of cfg.frames) {
    if (ws.readyState !== WebSocket.OPEN) break
    switch (f.kind) {
      case "json":
        ws.send(JSON.stringify(f.value))
        break
      case "text":
        ws.send(f.data)
        break
      case "padded": {
        const base = JSON.stringify({ _tag: "Beat", from: f.from, seq: f.seq, pad: "" })
        ws.send(
          JSON.stringify({
            _tag: "Beat",
            from: f.from,
            seq: f.seq,
            pad: "x".repeat(Math.max(0, f.bytes - base.length)),
          }),
        )
        break
      }
      case "binary":
        ws.send(Buffer.alloc(f.bytes, 7), { binary: true })
        break
    }
    result.sent = Number(result.sent) + 1
    await new Promise((r) => setTimeout(r, cfg.gapMs ?? 50))
  }
  setTimeout(() => {
    ws.close(1000, "done")
    setTimeout(finish, 1_000)
  }, cfg.lingerMs)
})
