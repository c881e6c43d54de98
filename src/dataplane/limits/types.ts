/**
 * @module dataplane/limits/types
 * What the limit plugins ask of the gateway's shared limit state: fixed and sliding window counters, leaky
 * buckets and concurrency slots. One gateway (all its workers) shares one state; across gateways the counters
 * go to Redis instead (see redis-counter.ts).
 */

/** A window length in milliseconds (aligned to the Unix epoch, so a day is a UTC day), or a UTC calendar month or year. */
export type LimitWindow = { ms: number } | { calendar: 'month' | 'year' };

export interface CounterLimit {
  /** Requests allowed per window. */
  count: number;
  window: LimitWindow;
  /** Sliding window: the previous window's count weighs in by how much of it still overlaps. Only for `ms` windows. */
  sliding: boolean;
}

export interface CounterVerdict {
  allowed: boolean;
  /** The limit to report: on a refusal the one that refused, else the one closest to running out. */
  limit: number;
  /** Requests left in that limit's window (0 on a refusal). */
  remaining: number;
  /** Milliseconds until that limit's window resets. */
  resetMs: number;
}

export interface BucketVerdict {
  allowed: boolean;
  /** Milliseconds the request should wait before it goes on (0: at once). */
  delayMs: number;
  /** On a refusal: milliseconds until a request would be let through. */
  retryAfterMs: number;
}

export interface SharedLimits {
  /** Count `cost` against every limit under `key`; allowed only when all have room (nothing is counted otherwise). */
  count(key: string, limits: readonly CounterLimit[], cost: number): CounterVerdict | Promise<CounterVerdict>;
  /** Leaky bucket: `rate` requests per second with `burst` more queued (delayed) or let through. */
  bucket(key: string, rate: number, burst: number): BucketVerdict | Promise<BucketVerdict>;
  /** Take one of `max` concurrency slots under `key`; false when all are taken. Give it back with `release`. */
  acquire(key: string, max: number): boolean | Promise<boolean>;
  release(key: string): void;
}

/** The window containing `now`: its id (consecutive windows have consecutive ids), start and end. */
export function windowAt(w: LimitWindow, now: number): { id: number; start: number; end: number } {
  if ('ms' in w) {
    const id = Math.floor(now / w.ms);
    return { id, start: id * w.ms, end: (id + 1) * w.ms };
  }
  const d = new Date(now);
  const y = d.getUTCFullYear();
  if (w.calendar === 'year') return { id: y, start: Date.UTC(y, 0, 1), end: Date.UTC(y + 1, 0, 1) };
  const m = d.getUTCMonth();
  return { id: y * 12 + m, start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) };
}

/** A short stable name of a window, part of counter keys: a changed window length starts new counters. */
export function windowName(w: LimitWindow, sliding: boolean): string {
  return `${'ms' in w ? w.ms : w.calendar}${sliding ? 's' : 'f'}`;
}
