/**
 * @module dataplane/limits/local
 * The limit state of one gateway, in memory: exact when used directly (a gateway in one process), and the
 * authority the primary process keeps for its workers, which take counter tokens from it in leases so that
 * most requests need no message to the primary (see leased.ts). The clock is injectable for tests.
 */
import { windowAt, windowName, type BucketVerdict, type CounterLimit, type CounterVerdict, type SharedLimits } from './types.js';

interface CounterState {
  /** Id of the window `cur` counts. */
  id: number;
  cur: number;
  /** The count of window id - 1 (sliding windows weigh it in). */
  prev: number;
  /** When this state is of no more use (the end of the window after the current one). */
  staleAt: number;
  /** Tokens granted in this window per worker id (spent or not), for reclaiming unspent ones; null: none. */
  held: Map<number, number> | null;
}

interface BucketState {
  /** Requests over the rate, as a fraction. */
  excess: number;
  last: number;
}

/** What one limit of a lease request got. */
export interface Grant {
  /** Tokens handed out (0: the limit is spent). */
  granted: number;
  /** What the limit has left at the authority after this grant. */
  remaining: number;
  /** Absolute end of the window the tokens belong to (Unix ms). */
  end: number;
}

/** A share of what is left that one lease may take: small enough that other workers rarely starve. */
const LEASE_SHARE = 4;

export class LocalLimits implements SharedLimits {
  private readonly counters = new Map<string, CounterState>();
  private readonly buckets = new Map<string, BucketState>();
  private readonly slots = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  /** Sweep stale state every `ms` (unref'd); without it, call sweep() yourself. */
  startSweeping(ms = 10_000): this {
    this.timer ??= setInterval(() => this.sweep(), ms);
    this.timer.unref();
    return this;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Forget windows and buckets that can no longer matter. */
  sweep(): void {
    const now = this.now();
    for (const [k, s] of this.counters) if (s.staleAt <= now) this.counters.delete(k);
    for (const [k, b] of this.buckets) if (b.excess <= 0 || b.last + 3_600_000 < now) this.buckets.delete(k);
  }

  /** Entries held, for tests and metrics. */
  get size(): { counters: number; buckets: number; slots: number } {
    return { counters: this.counters.size, buckets: this.buckets.size, slots: this.slots.size };
  }

  /** The state of one limit under `key` as of `now`, moved on to the current window. */
  private state(key: string, limit: CounterLimit, now: number): { s: CounterState; used: number; end: number } {
    const k = `${key}\0${windowName(limit.window, limit.sliding)}`;
    const w = windowAt(limit.window, now);
    let s = this.counters.get(k);
    if (s === undefined) {
      s = { id: w.id, cur: 0, prev: 0, staleAt: 0, held: null };
      this.counters.set(k, s);
    } else if (s.id !== w.id) {
      s.prev = s.id === w.id - 1 ? s.cur : 0;
      s.cur = 0;
      s.id = w.id;
      s.held = null;
    }
    s.staleAt = w.end + (w.end - w.start);
    let used = s.cur;
    if (limit.sliding && s.prev > 0) used += s.prev * ((w.end - now) / (w.end - w.start));
    return { s, used, end: w.end };
  }

  count(key: string, limits: readonly CounterLimit[], cost: number): CounterVerdict {
    const now = this.now();
    const states = limits.map((l) => this.state(key, l, now));
    let best: CounterVerdict | null = null;
    for (let i = 0; i < limits.length; i++) {
      const left = limits[i]!.count - states[i]!.used;
      if (left < cost) return { allowed: false, limit: limits[i]!.count, remaining: 0, resetMs: states[i]!.end - now };
    }
    for (let i = 0; i < limits.length; i++) {
      const st = states[i]!;
      st.s.cur += cost;
      const remaining = Math.max(0, Math.floor(limits[i]!.count - st.used - cost));
      if (best === null || remaining < best.remaining) best = { allowed: true, limit: limits[i]!.count, remaining, resetMs: st.end - now };
    }
    return best!;
  }

  /**
   * Hand out tokens for each limit independently, for a worker to spend on its own: at least `cost` when that
   * much is left, more while much is left, so leases shrink to one request at a time as a limit runs out.
   * Tokens are counted as used when granted, so the workers together never let more through than the limit.
   */
  grant(key: string, limits: readonly CounterLimit[], cost: number, workers: number, worker = 0): Grant[] {
    const now = this.now();
    return limits.map((l) => {
      const st = this.state(key, l, now);
      const left = Math.floor(l.count - st.used);
      if (left < cost) return { granted: 0, remaining: Math.max(0, left), end: st.end };
      const granted = Math.min(left, Math.max(cost, Math.floor(left / (Math.max(1, workers) * LEASE_SHARE))));
      st.s.cur += granted;
      const held = (st.s.held ??= new Map());
      held.set(worker, (held.get(worker) ?? 0) + granted);
      return { granted, remaining: left - granted, end: st.end };
    });
  }

  /** Workers other than `except` that were granted tokens of this limit in its current window. */
  holders(key: string, limit: CounterLimit, except: number): number[] {
    const st = this.state(key, limit, this.now());
    return [...(st.s.held ?? [])].filter(([w, n]) => w !== except && n > 0).map(([w]) => w);
  }

  /** A worker gave back its unspent tokens of the window ending at `end` (and holds none of it any more). */
  giveBack(key: string, limit: CounterLimit, worker: number, tokens: number, end: number): void {
    const st = this.state(key, limit, this.now());
    if (st.end !== end) return;
    st.s.cur = Math.max(0, st.s.cur - Math.max(0, tokens));
    st.s.held?.delete(worker);
  }

  /** Leaky bucket as nginx's limit_req: the first request finds an empty bucket; each adds one, the rate drains it. */
  bucket(key: string, rate: number, burst: number): BucketVerdict {
    const now = this.now();
    const b = this.buckets.get(key);
    const excess = b === undefined ? 0 : Math.max(b.excess - (rate * (now - b.last)) / 1000 + 1, 0);
    if (excess > burst) return { allowed: false, delayMs: 0, retryAfterMs: Math.ceil(((excess - burst) / rate) * 1000) };
    if (b === undefined) this.buckets.set(key, { excess, last: now });
    else {
      b.excess = excess;
      b.last = now;
    }
    return { allowed: true, delayMs: (excess / rate) * 1000, retryAfterMs: 0 };
  }

  acquire(key: string, max: number): boolean {
    const n = this.slots.get(key) ?? 0;
    if (n >= max) return false;
    this.slots.set(key, n + 1);
    return true;
  }

  release(key: string, n = 1): void {
    const left = (this.slots.get(key) ?? 0) - n;
    if (left > 0) this.slots.set(key, left);
    else this.slots.delete(key);
  }
}
