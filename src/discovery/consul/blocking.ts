/**
 * @module discovery/consul/blocking
 * The blocking-query loop of one watch, with the rules of Consul's "Blocking Queries" documentation:
 *
 * - the first read (and the first after a failure) has no index and returns at once; each next one sends the
 *   last X-Consul-Index and blocks until something changes or the wait is over;
 * - an index lower than the last one (a restored snapshot, a reaped KV tombstone, an upgrade) restarts the
 *   loop from index 0; an index below 1 is never sent back, so a server that answers 0 cannot make the loop
 *   spin;
 * - the loop is rate-limited by a token bucket (a burst of 2, then one read per minInterval), so quick
 *   deliveries go through at once and a result that churns is read at a steady pace, not in a busy loop;
 * - failures are retried after a backoff with jitter that doubles up to retryMax;
 * - each read asks for the configured wait less up to a sixteenth at random, so watches started together
 *   do not wake together.
 *
 * A read's node list is reported when it differs from the last one reported, and always after a failure
 * (the first answer after an outage tells the manager the source is back).
 */
import { canonicalNodes, sameNodes } from '../spec.js';
import type { DiscoveredNode, DiscoveryHandlers, DiscoveryLogger, DiscoveryWatch } from '../types.js';

export interface BlockingResult {
  /** X-Consul-Index of the answer. */
  index: number;
  nodes: DiscoveredNode[];
}

/** One read: index 0 returns at once; more blocks up to waitMs. Rejects on any failure. */
export type BlockingRead = (index: number, waitMs: number, signal: AbortSignal) => Promise<BlockingResult>;

export interface BlockingOptions {
  /** The configured wait, in milliseconds. */
  waitMs: number;
  /** Milliseconds between reads once the burst of 2 is spent (default 1000). */
  minInterval?: number;
  /** Milliseconds before the first retry after a failure (default 500); doubles with each failure in a row. */
  retryMin?: number;
  /** The longest retry delay (default 10000). */
  retryMax?: number;
  /** Random numbers in [0, 1) (tests may make the jitter predictable). */
  random?: () => number;
}

export const DEFAULT_MIN_INTERVAL_MS = 1000;
export const DEFAULT_RETRY_MIN_MS = 500;
export const DEFAULT_RETRY_MAX_MS = 10_000;
const BURST = 2;

/** A token bucket: `burst` reads at once, then one every `intervalMs`. */
export class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(
    readonly burst: number,
    readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.#tokens = burst;
    this.#at = now();
  }

  /** Milliseconds to wait before the next read may go (0: now); takes the token when it returns 0. */
  take(): number {
    const now = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#at) / this.intervalMs);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.#tokens) * this.intervalMs);
  }
}

/** The delay before retry number `failures` (1-based): doubling from min to max, the upper half at random. */
export function retryDelay(failures: number, min: number, max: number, random: () => number = Math.random): number {
  const full = Math.min(max, min * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(full / 2 + random() * (full / 2));
}

/** The wait sent with one read: the configured one less up to a sixteenth, at random. */
export function jitteredWait(waitMs: number, random: () => number = Math.random): number {
  return Math.max(1, Math.round(waitMs - random() * (waitMs / 16)));
}

/** The index to send next, from the one sent and the one the answer carried. */
export function nextIndex(sent: number, answered: number): { index: number; backwards: boolean } {
  // An answer of 0 is a server bug, not a step back: it counts as 1, which is always safe to block on.
  const index = Math.max(1, answered);
  if (index < sent) return { index: 0, backwards: true };
  return { index, backwards: false };
}

export class BlockingWatch implements DiscoveryWatch {
  readonly #read: BlockingRead;
  readonly #handlers: DiscoveryHandlers;
  readonly #log: DiscoveryLogger;
  readonly #fields: Record<string, unknown>;
  readonly #waitMs: number;
  readonly #retryMin: number;
  readonly #retryMax: number;
  readonly #random: () => number;
  readonly #bucket: TokenBucket;
  readonly #abort = new AbortController();
  #closed = false;
  #timer: NodeJS.Timeout | null = null;
  #wake: (() => void) | null = null;

  constructor(read: BlockingRead, handlers: DiscoveryHandlers, log: DiscoveryLogger, fields: Record<string, unknown>, opts: BlockingOptions) {
    this.#read = read;
    this.#handlers = handlers;
    this.#log = log;
    this.#fields = fields;
    this.#waitMs = opts.waitMs;
    this.#retryMin = opts.retryMin ?? DEFAULT_RETRY_MIN_MS;
    this.#retryMax = opts.retryMax ?? DEFAULT_RETRY_MAX_MS;
    this.#random = opts.random ?? Math.random;
    this.#bucket = new TokenBucket(BURST, opts.minInterval ?? DEFAULT_MIN_INTERVAL_MS);
  }

  start(): void {
    void this.#loop();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#wake?.();
  }

  /** Resolves after ms, or at once when the watch is closed. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#wake = null;
        resolve();
      }, ms);
    });
  }

  async #loop(): Promise<void> {
    let index = 0;
    let failures = 0;
    let last: DiscoveredNode[] | null = null;
    let mustReport = true;
    while (!this.#closed) {
      const pause = this.#bucket.take();
      if (pause > 0) {
        await this.#sleep(pause);
        continue;
      }
      let result: BlockingResult;
      try {
        result = await this.#read(index, jitteredWait(this.#waitMs, this.#random), this.#abort.signal);
      } catch (e) {
        if (this.#closed) return;
        failures++;
        mustReport = true;
        // Start over with a read that returns at once: a server restarted or restored meanwhile is read
        // without waiting out a blocking query on an index it may never reach.
        index = 0;
        const err = e instanceof Error ? e : new Error(String(e));
        const delay = retryDelay(failures, this.#retryMin, this.#retryMax, this.#random);
        this.#log.debug({ ...this.#fields, err: err.message, failures, retryIn: delay }, 'consul read failed');
        this.#call(() => this.#handlers.onError(err));
        await this.#sleep(delay);
        continue;
      }
      if (this.#closed) return;
      // The manager logs the outage and the recovery; this is the backend's side of it, for debugging.
      if (failures > 0) this.#log.debug({ ...this.#fields, failures }, 'consul answers again');
      failures = 0;
      const next = nextIndex(index, result.index);
      if (next.backwards) {
        this.#log.info({ ...this.#fields, was: index, now: result.index }, 'consul index went backwards: restarting the blocking query from index 0');
      }
      index = next.index;
      const nodes = canonicalNodes(result.nodes);
      if (mustReport || last === null || !sameNodes(last, nodes)) {
        last = nodes;
        mustReport = false;
        this.#call(() => this.#handlers.onNodes(nodes));
      }
    }
  }

  /** A handler that throws must not end the loop. */
  #call(fn: () => void): void {
    if (this.#closed) return;
    try {
      fn();
    } catch (e) {
      this.#log.error({ ...this.#fields, err: (e as Error)?.message ?? String(e) }, 'discovery handler failed');
    }
  }
}
