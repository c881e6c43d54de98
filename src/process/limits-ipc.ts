/**
 * @module process/limits-ipc
 * The gateway's shared limits across node:cluster IPC: the primary keeps the one LocalLimits of the gateway
 * and answers its workers; each worker reaches it through a LimitsChannel (leases for counters, a round trip
 * for buckets and concurrency slots). Slots a worker held are given back when it dies.
 */
import type { Logger } from 'pino';
import { LocalLimits } from '../dataplane/limits/local.js';
import type { LimitsChannel } from '../dataplane/limits/leased.js';
import type { LimitsOp, PrimaryToWorker, WorkerToPrimary } from '../sync/messages.js';
import type { Grant } from '../dataplane/limits/local.js';
import type { CounterLimit } from '../dataplane/limits/types.js';

/** How long a worker waits for the primary before it lets the request through (the primary is gone or stuck). */
const REPLY_TIMEOUT_MS = 2000;

export class WorkerLimitsChannel implements LimitsChannel {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; timer: NodeJS.Timeout }>();

  constructor(
    private readonly send: (msg: WorkerToPrimary) => void,
    private readonly log: Logger,
  ) {}

  /** A 'limits' reply from the primary. */
  onReply(msg: Extract<PrimaryToWorker, { t: 'limits' }>): void {
    const w = this.waiting.get(msg.id);
    if (w === undefined) return;
    this.waiting.delete(msg.id);
    clearTimeout(w.timer);
    w.resolve(msg.reply);
  }

  private ask<T>(op: LimitsOp, fallback: T): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        this.log.error({ op: op.op }, 'the primary did not answer a limits request; letting the request through');
        resolve(fallback);
      }, REPLY_TIMEOUT_MS);
      timer.unref();
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, timer });
      this.send({ t: 'limits', id, op });
    });
  }

  grant(key: string, limits: Parameters<LimitsChannel['grant']>[1], cost: number): ReturnType<LimitsChannel['grant']> {
    return this.ask({ op: 'grant', key, limits: [...limits], cost }, limits.map(() => ({ granted: cost, remaining: 0, end: Date.now() + 1 })));
  }

  bucket(key: string, rate: number, burst: number): ReturnType<LimitsChannel['bucket']> {
    return this.ask({ op: 'bucket', key, rate, burst }, { allowed: true, delayMs: 0, retryAfterMs: 0 });
  }

  acquire(key: string, max: number): Promise<boolean> {
    return this.ask({ op: 'acquire', key, max }, true);
  }

  release(key: string): void {
    this.send({ t: 'limits-release', key });
  }
}

/** How long the primary waits for workers to give back unspent tokens before it answers a spent limit. */
const RECLAIM_TIMEOUT_MS = 200;

/** The primary's side: one LocalLimits for all workers, and the slots each worker holds. */
export class PrimaryLimits {
  readonly limits = new LocalLimits().startSweeping();
  private readonly held = new Map<number, Map<string, number>>();
  private seq = 0;
  private readonly reclaiming = new Map<number, (returned: Array<{ tokens: number; end: number }> | null) => void>();

  constructor(
    private readonly workers: () => number,
    /** Send a message to one worker; false when it is gone. */
    private readonly sendTo: (worker: number, msg: PrimaryToWorker) => boolean = () => false,
  ) {}

  /** A worker's answer to a reclaim. */
  returned(msg: { id: number; returned: Array<{ tokens: number; end: number }> }): void {
    this.reclaiming.get(msg.id)?.(msg.returned);
  }

  private askBack(worker: number, key: string, limits: CounterLimit[]): Promise<Array<{ tokens: number; end: number }> | null> {
    const id = ++this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(null), RECLAIM_TIMEOUT_MS);
      const done = (r: Array<{ tokens: number; end: number }> | null) => {
        clearTimeout(timer);
        this.reclaiming.delete(id);
        resolve(r);
      };
      this.reclaiming.set(id, done);
      if (!this.sendTo(worker, { t: 'limits-reclaim', id, key, limits })) done(null);
    });
  }

  /**
   * Grant leases; when a limit is spent while other workers still hold tokens of it, take their unspent tokens
   * back first and grant again, so the gateway as a whole refuses only once the limit is really used up.
   */
  private async grant(worker: number, key: string, limits: CounterLimit[], cost: number): Promise<Grant[]> {
    const grants = this.limits.grant(key, limits, cost, this.workers(), worker);
    const spent = limits.filter((_, i) => grants[i]!.granted === 0);
    if (spent.length === 0) return grants;
    const holders = new Set(spent.flatMap((l) => this.limits.holders(key, l, worker)));
    if (holders.size === 0) return grants;
    const answers = await Promise.all([...holders].map(async (w) => ({ w, r: await this.askBack(w, key, limits) })));
    for (const { w, r } of answers) {
      if (r === null) continue;
      r.forEach((x, i) => this.limits.giveBack(key, limits[i]!, w, x.tokens, x.end));
    }
    const again = this.limits.grant(key, spent, cost, this.workers(), worker);
    return grants.map((g, i) => (g.granted === 0 ? again[spent.indexOf(limits[i]!)]! : g));
  }

  handle(worker: number, op: LimitsOp): unknown {
    switch (op.op) {
      case 'grant':
        return this.grant(worker, op.key, op.limits, op.cost);
      case 'bucket':
        return this.limits.bucket(op.key, op.rate, op.burst);
      case 'acquire': {
        const ok = this.limits.acquire(op.key, op.max);
        if (ok) {
          let m = this.held.get(worker);
          if (m === undefined) this.held.set(worker, (m = new Map()));
          m.set(op.key, (m.get(op.key) ?? 0) + 1);
        }
        return ok;
      }
    }
  }

  release(worker: number, key: string): void {
    const m = this.held.get(worker);
    const n = m?.get(key) ?? 0;
    if (n === 0) return;
    if (n === 1) m!.delete(key);
    else m!.set(key, n - 1);
    this.limits.release(key);
  }

  /** A worker died: its requests are gone, so are their slots. */
  workerGone(worker: number): void {
    const m = this.held.get(worker);
    if (m === undefined) return;
    for (const [key, n] of m) this.limits.release(key, n);
    this.held.delete(worker);
  }

  close(): void {
    this.limits.close();
  }
}
