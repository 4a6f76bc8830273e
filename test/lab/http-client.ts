// Asking the agents' HTTP endpoints from the lab's client namespace, as a
// load balancer or a Prometheus server on the application side would (curl).
import type { Lab } from "./lab.ts"
import { HTTP_PORT } from "./network.ts"

export interface HttpAnswer {
  readonly status: number
  readonly body: string
}

const STATUS_MARK = "\n__status__:"

/** GET (or HEAD) http://<host>:8080<path> from the client namespace; status 0 when nothing answered. */
export const agentHttp = async (
  lab: Lab,
  host: string,
  path: string,
  method: "GET" | "HEAD" = "GET",
): Promise<HttpAnswer> => {
  const url = `http://${lab.host(host).address}:${HTTP_PORT}${path}`
  const args = ["curl", "-sS", "-m", "3", "-w", `${STATUS_MARK}%{http_code}`]
  if (method === "HEAD") args.push("--head", "-o", "/dev/null")
  try {
    const { stdout } = await lab.exec("client", [...args, url])
    const at = stdout.lastIndexOf(STATUS_MARK)
    return { status: Number(stdout.slice(at + STATUS_MARK.length)), body: stdout.slice(0, at) }
  } catch (e) {
    return { status: 0, body: e instanceof Error ? e.message : String(e) }
  }
}

/** Status of `path` on every host, by host name. */
export const statusesOf = async (lab: Lab, path: string): Promise<Record<string, number>> => {
  const entries = await Promise.all(
    lab.hosts.map(async (h) => [h.name, (await agentHttp(lab, h.name, path)).status] as const),
  )
  return Object.fromEntries(entries)
}
