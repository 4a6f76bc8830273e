/**
 * Bytes the agent has allocated on its V8 heap since it started: at each
 * collection, what was in use before it minus what the one before left
 * (V8's GC profiler reports both). Short-lived garbage never shows in the
 * RSS or heap-used gauges, yet the CPU pays for every byte of it, so the
 * rate is what tells an agent that churns from one that idles (issue 12).
 * /metrics reads it; the profiler's records are also folded in once a
 * minute, so that they never pile up when nobody scrapes.
 */
import { GCProfiler } from "node:v8"

const DRAIN_EVERY_MS = 60_000

let profiler: GCProfiler | undefined
/** Allocated up to the last collection folded in. */
let total = 0
/** In use after that collection. */
let lastAfter: number | undefined
/** The highest value reported: a counter never goes back. */
let reported = 0

const drain = (): void => {
  if (profiler === undefined) return
  const result = profiler.stop()
  profiler.start()
  for (const gc of result?.statistics ?? []) {
    const before = gc.beforeGC.heapStatistics.usedHeapSize
    if (lastAfter !== undefined) total += Math.max(0, before - lastAfter)
    lastAfter = gc.afterGC.heapStatistics.usedHeapSize
  }
}

/** Starts counting (once per process). */
export const startHeapAllocationCount = (): void => {
  if (profiler !== undefined) return
  profiler = new GCProfiler()
  profiler.start()
  setInterval(drain, DRAIN_EVERY_MS).unref()
}

/** Heap bytes allocated so far, up to now (undefined before counting started). */
export const heapAllocatedBytes = (used: number): number | undefined => {
  if (profiler === undefined) return undefined
  drain()
  const sinceLast = lastAfter === undefined ? 0 : Math.max(0, used - lastAfter)
  reported = Math.max(reported, total + sinceLast)
  return reported
}
