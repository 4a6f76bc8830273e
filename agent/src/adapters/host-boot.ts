/**
 * This host's boot and its clock since boot (/proc): with a server's Uptime,
 * when that mysqld process started, a time no wall-clock step on this host
 * moves (core/relay-intact.ts).
 */
import { readFileSync } from "node:fs"
import type { MysqldStart } from "../core/types.ts"

export interface HostBoot {
  readonly bootId: string
  /** Seconds since this host booted (/proc/uptime). */
  readonly uptimeSeconds: number
}

/** Reads /proc; null where there is none (not Linux). The boot id is read once. */
export const makeHostBoot = (): (() => HostBoot | null) => {
  let bootId: string | undefined
  return () => {
    try {
      bootId ??= readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim()
      const uptimeSeconds = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0])
      return bootId !== "" && Number.isFinite(uptimeSeconds) ? { bootId, uptimeSeconds } : null
    } catch {
      return null
    }
  }
}

/** When the server that reported `serverUptimeSeconds` (status Uptime) now started. */
export const mysqldStart = (
  boot: HostBoot | null,
  serverUptimeSeconds: number | null,
): MysqldStart | null =>
  boot === null || serverUptimeSeconds === null || !Number.isFinite(serverUptimeSeconds)
    ? null
    : {
        boot: boot.bootId,
        // Centiseconds: /proc/uptime's own precision.
        sinceBootSeconds: Math.round((boot.uptimeSeconds - serverUptimeSeconds) * 100) / 100,
      }
