/**
 * @module dataplane/limits/leased
 * A worker's view of the gateway's shared limits, whose authority is the primary process. Counters are spent
 * from leases: the primary hands a worker a share of what a limit has left, the worker spends it with no
 * message per request and asks again when it runs out, so most requests cost a map lookup. Leases shrink as a
 * limit runs out, so the workers together never exceed it; at worst a worker refuses a request while another
 * still holds a few unspent tokens. Buckets and concurrency slots go to the primary on every request.
 */
import type { Grant } from './local.js';
import { windowName, type BucketVerdict, type CounterLimit, type CounterVerdict, type SharedLimits } from './types.js';

/** How a worker reaches the primary's LocalLimits. */
export interface LimitsChannel {
  grant(key: string, limits: readonly CounterLimit[], cost: number): Promise<Grant[]>;
  bucket(key: string, rate: number, burst: number): Promise<BucketVerdict>;
  acquire(key: string, max: number): Promise<boolean>;
  release(key: string): void;
}

interface Lease {
  tokens: number;
  /** What the primary had left after its last grant (other workers' unspent tokens count as used). */
  remaining: number;
  end: number;
  /**
   * The primary had nothing left: until then, refuse without asking again. For a fixed window that is its end
   * (spent tokens are never given back); a sliding window frees room as it slides, so it is asked again soon.
   */
  spentUntil: number;
}

/** How soon a worker asks again about a spent sliding window: the time one request's worth slides out, bounded. */
function slideRetry(l: CounterLimit, end: number, now: number): number {
  const len = 'ms' in l.window ? l.window.ms : end - now;
  return now + Math.min(1000, Math.max(10, len / l.count));
}

export class LeasedLimits implements SharedLimits {
  private readonly leases = new Map<string, Lease>();
  /** A grant request in flight per counter key: requests that find no tokens meanwhile wait for it. */
  private readonly pending = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly channel: LimitsChannel,
    private readonly now: () => number = Date.now,
  ) {}

  startSweeping(ms = 10_000): this {
    this.timer ??= setInterval(() => this.sweep(), ms);
    this.timer.unref();
    return this;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  sweep(): void {
    const now = this.now();
    for (const [k, l] of this.leases) if (l.end <= now) this.leases.delete(k);
  }

  /** HOT PATH: spend from leases when every limit has enough; else ask the primary for the ones short. */
  count(key: string, limits: readonly CounterLimit[], cost: number): CounterVerdict | Promise<CounterVerdict> {
    const v = this.spend(key, limits, cost);
    return v ?? this.countAfterRefill(key, limits, cost);
  }

  /**
   * Ask the primary until this request is decided: requests waiting on one refill compete for its tokens, and
   * one that finds them taken asks again. Every round either grants tokens (so some request goes through) or
   * finds the limit spent (so spend() refuses): the loop ends; the bound is a safety net.
   */
  private async countAfterRefill(key: string, limits: readonly CounterLimit[], cost: number): Promise<CounterVerdict> {
    for (let round = 0; round < 1000; round++) {
      await this.refill(key, limits, cost);
      const v = this.spend(key, limits, cost);
      if (v !== null) return v;
    }
    return this.refused(key, limits, cost);
  }

  private leaseKey(key: string, l: CounterLimit): string {
    return `${key}\0${windowName(l.window, l.sliding)}`;
  }

  /** Spend `cost` from each limit's lease if all have it; a refusal when one is known spent; null to ask. */
  private spend(key: string, limits: readonly CounterLimit[], cost: number): CounterVerdict | null {
    const now = this.now();
    let best: Lease | null = null;
    let bestLimit = 0;
    let ask = false;
    for (let i = 0; i < limits.length; i++) {
      const lease = this.leases.get(limits.length === 1 ? key : this.leaseKey(key, limits[i]!));
      if (lease === undefined || lease.end <= now) ask = true;
      else if (lease.tokens < cost) {
        if (lease.spentUntil > now) return { allowed: false, limit: limits[i]!.count, remaining: 0, resetMs: lease.end - now };
        ask = true;
      }
    }
    if (ask) return null;
    for (let i = 0; i < limits.length; i++) {
      const lease = this.leases.get(limits.length === 1 ? key : this.leaseKey(key, limits[i]!))!;
      lease.tokens -= cost;
      if (best === null || lease.remaining + lease.tokens < best.remaining + best.tokens) {
        best = lease;
        bestLimit = limits[i]!.count;
      }
    }
    return { allowed: true, limit: bestLimit, remaining: best!.remaining + best!.tokens, resetMs: best!.end - now };
  }

  /** The verdict when a refill left some limit short: report that limit. */
  private refused(key: string, limits: readonly CounterLimit[], cost: number): CounterVerdict {
    const now = this.now();
    for (const l of limits) {
      const lease = this.leases.get(limits.length === 1 ? key : this.leaseKey(key, l));
      if (lease === undefined || lease.end <= now || lease.tokens < cost) {
        return { allowed: false, limit: l.count, remaining: 0, resetMs: Math.max(0, (lease?.end ?? now) - now) };
      }
    }
    return { allowed: false, limit: limits[0]!.count, remaining: 0, resetMs: 0 };
  }

  /** Ask the primary for the limits whose lease is short; one request at a time per key. */
  private refill(key: string, limits: readonly CounterLimit[], cost: number): Promise<void> {
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined) return inFlight;
    const now = this.now();
    const short: CounterLimit[] = [];
    const keys: string[] = [];
    for (const l of limits) {
      const k = limits.length === 1 ? key : this.leaseKey(key, l);
      const lease = this.leases.get(k);
      if (lease === undefined || lease.end <= now || lease.tokens < cost) {
        short.push(l);
        keys.push(k);
      }
    }
    const p = this.channel.grant(key, short, cost).then(
      (grants) => {
        this.pending.delete(key);
        grants.forEach((g, i) => {
          const k = keys[i]!;
          const lease = this.leases.get(k);
          const l = short[i]!;
          const now2 = this.now();
          const spentUntil = g.granted >= cost ? 0 : l.sliding ? slideRetry(l, g.end, now2) : g.end;
          // Unspent tokens of an ended window are worth nothing; of the current one they add up.
          if (lease !== undefined && lease.end === g.end) {
            lease.tokens += g.granted;
            lease.remaining = g.remaining;
            lease.spentUntil = spentUntil;
          } else this.leases.set(k, { tokens: g.granted, remaining: g.remaining, end: g.end, spentUntil });
        });
      },
      (err: unknown) => {
        this.pending.delete(key);
        throw err;
      },
    );
    this.pending.set(key, p);
    return p;
  }

  /**
   * The primary needs this key's unspent tokens back (another worker found the limit spent): hand them over and
   * hold none, so the next request here asks the primary again.
   */
  reclaim(key: string, limits: readonly CounterLimit[]): Array<{ tokens: number; end: number }> {
    const now = this.now();
    return limits.map((l) => {
      const lease = this.leases.get(limits.length === 1 ? key : this.leaseKey(key, l));
      if (lease === undefined || lease.end <= now) return { tokens: 0, end: 0 };
      const tokens = lease.tokens;
      lease.tokens = 0;
      lease.spentUntil = 0;
      return { tokens, end: lease.end };
    });
  }

  bucket(key: string, rate: number, burst: number): Promise<BucketVerdict> {
    return this.channel.bucket(key, rate, burst);
  }

  acquire(key: string, max: number): Promise<boolean> {
    return this.channel.acquire(key, max);
  }

  release(key: string): void {
    this.channel.release(key);
  }
}
