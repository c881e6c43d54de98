/**
 * @module plugins/proxy-cache/store
 * The memory store of proxy-cache: responses by key and Vary variant, bounded in bytes with least-recently-used
 * eviction, and the fill locks that let one request per key go upstream while the others wait for its answer.
 * One store per config scope, kept across config reloads (PluginEnv.state); each worker process has its own.
 */
import type { PluginResponse } from '../../dataplane/plugins/types.js';

/** What a stored response was keyed on, for purges by key part. */
export interface KeyParts {
  routeId: string;
  scheme: string;
  /** Lower-case host name without the port. */
  host: string;
  /** Canonical path. */
  path: string;
  /** The query as it is in the key (kept, sorted or empty, per the config's keyQuery). */
  query: string;
}

/**
 * Bytes counted for an entry besides its key, headers and body: the objects that hold it. A rough figure, so
 * that a store full of tiny responses is still bounded by memorySize.
 */
export const ENTRY_OVERHEAD = 256;

/** One stored response (a variant of a resource). Linked into the store's LRU list. */
export class CacheEntry {
  /** Towards the most recently used end. */
  newer: CacheEntry | null = null;
  /** Towards the least recently used end. */
  older: CacheEntry | null = null;

  constructor(
    readonly resource: Resource,
    /** The values of the request headers the response's Vary names ('' without Vary). */
    readonly variant: string,
    /** Served as is on a hit: never changed after it is built (the gateway only reads it). */
    readonly response: PluginResponse,
    /** The 304 answer for a conditional request that matches, or null when the response has no validator. */
    readonly notModified: PluginResponse | null,
    readonly etag: string | undefined,
    /** Last-Modified in ms since the epoch, or NaN. */
    readonly lastModified: number,
    /** Clock ms when the response came from the upstream. */
    readonly storedAt: number,
    /** Seconds the response had already spent in caches before it reached us (its Age header). */
    readonly initialAge: number,
    /** Clock ms from which the entry is stale. */
    readonly expiresAt: number,
    /** Bytes counted against the store's memorySize. */
    readonly size: number,
  ) {}
}

/**
 * A cached resource: the responses of one key. `vary` holds the (lower-case, sorted) request header names the
 * last stored response's Vary named; each variant is a response for one set of values of those headers.
 */
export class Resource {
  readonly variants = new Map<string, CacheEntry>();
  constructor(
    readonly key: string,
    readonly parts: KeyParts,
    readonly vary: readonly string[],
  ) {}
}

export type LockOutcome = 'stored' | 'failed' | 'timeout';

/** The request filling a key holds its lock; requests for the same key wait on it. */
export class FillLock {
  private waiters: Array<(o: LockOutcome) => void> | null = null;
  private outcome: LockOutcome | null = null;

  constructor(readonly since: number) {}

  /** Resolves when the fill ends (stored or failed), or with 'timeout' after `ms`. */
  wait(ms: number): Promise<LockOutcome> {
    if (this.outcome !== null) return Promise.resolve(this.outcome);
    return new Promise((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        resolve('timeout');
      }, ms);
      (this.waiters ??= []).push((o) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(o);
      });
    });
  }

  /** Wake every waiter. Later calls do nothing. */
  settle(outcome: LockOutcome): void {
    if (this.outcome !== null) return;
    this.outcome = outcome;
    const w = this.waiters;
    this.waiters = null;
    if (w !== null) for (const wake of w) wake(outcome);
  }
}

/** What insert() needs besides the key: the parts of a CacheEntry. */
export interface NewEntry {
  response: PluginResponse;
  notModified: PluginResponse | null;
  etag: string | undefined;
  lastModified: number;
  storedAt: number;
  initialAge: number;
  expiresAt: number;
  /** Header and body bytes (the key and ENTRY_OVERHEAD are added). */
  bytes: number;
}

export class MemoryCache {
  private readonly resources = new Map<string, Resource>();
  private newest: CacheEntry | null = null;
  private oldest: CacheEntry | null = null;
  /** Bytes counted for the stored entries. */
  bytes = 0;
  /** Stored entries (variants). */
  count = 0;
  /**
   * Bumped by every purge and clear: a fill that began before (its response may predate the purge) is not stored.
   */
  generation = 0;
  /** Fill locks by lookup key. */
  readonly locks = new Map<string, FillLock>();
  /** What requests found (X-Cache-Status), counted for /metrics; the scope names this cache's series. */
  readonly events = { hit: 0, miss: 0, expired: 0, bypass: 0 };
  scope = '';

  /** Counters for /metrics (gatehouse_plugin_events_total). */
  metrics(): Array<{ event: string; value: number; labels: Record<string, string> }> {
    const labels = { scope: this.scope };
    return Object.entries(this.events).map(([event, value]) => ({ event, value, labels }));
  }

  constructor(
    /** Bytes the entries may take in all. */
    public capacity: number,
    /** The config the entries were stored under; a different one clears the store (see create()). */
    public fingerprint: string,
    /** How the key's query is built ('keep', 'sort' or 'ignore'), for purges by query. */
    public keyQuery: string,
  ) {}

  resource(key: string): Resource | undefined {
    return this.resources.get(key);
  }

  /** Mark an entry as just used. HOT PATH on hits: pointer moves only. */
  touch(e: CacheEntry): void {
    if (this.newest === e) return;
    this.unlink(e);
    this.linkNewest(e);
  }

  /**
   * Store a response as the variant `variant` of `key`, replacing what was there; least recently used entries
   * are evicted to make room. A different Vary list than the resource had drops its other variants (they were
   * keyed on other headers). Returns the entry, or null when it is larger than the whole store.
   */
  insert(key: string, parts: KeyParts, vary: readonly string[], variant: string, n: NewEntry): CacheEntry | null {
    const size = n.bytes + key.length + variant.length + ENTRY_OVERHEAD;
    if (size > this.capacity) return null;
    let res = this.resources.get(key);
    if (res !== undefined) {
      if (!sameList(res.vary, vary)) for (const e of [...res.variants.values()]) this.remove(e);
      else {
        const old = res.variants.get(variant);
        if (old !== undefined) this.remove(old);
      }
    }
    while (this.bytes + size > this.capacity && this.oldest !== null) this.remove(this.oldest);
    // A resource left without variants by the removals above is gone from the map: start it anew.
    res = this.resources.get(key);
    if (res === undefined) {
      res = new Resource(key, parts, vary);
      this.resources.set(key, res);
    }
    const e = new CacheEntry(res, variant, n.response, n.notModified, n.etag, n.lastModified, n.storedAt, n.initialAge, n.expiresAt, size);
    res.variants.set(variant, e);
    this.linkNewest(e);
    this.bytes += size;
    this.count++;
    return e;
  }

  remove(e: CacheEntry): void {
    const res = e.resource;
    if (res.variants.get(e.variant) !== e) return;
    res.variants.delete(e.variant);
    if (res.variants.size === 0 && this.resources.get(res.key) === res) this.resources.delete(res.key);
    this.unlink(e);
    this.bytes -= e.size;
    this.count--;
  }

  /** Remove the entries of every resource whose key parts match; returns how many entries went. */
  purge(match: (parts: KeyParts) => boolean): number {
    this.generation++;
    let removed = 0;
    for (const res of [...this.resources.values()]) {
      if (!match(res.parts)) continue;
      for (const e of [...res.variants.values()]) {
        this.remove(e);
        removed++;
      }
    }
    return removed;
  }

  /** Remove everything; returns how many entries went. */
  clear(): number {
    this.generation++;
    const n = this.count;
    this.resources.clear();
    this.newest = null;
    this.oldest = null;
    this.bytes = 0;
    this.count = 0;
    return n;
  }

  /** A new memorySize: evict down to it. */
  resize(capacity: number): void {
    this.capacity = capacity;
    while (this.bytes > capacity && this.oldest !== null) this.remove(this.oldest);
  }

  /**
   * The live fill lock of a lookup key, if another request holds one. A lock held longer than `maxAgeMs` no
   * longer counts (its holder may be stuck behind a slow upstream; nginx's proxy_cache_lock_age): the next
   * request takes it over, and its waiters time out on their own.
   */
  heldLock(key: string, now: number, maxAgeMs: number): FillLock | undefined {
    const held = this.locks.get(key);
    return held !== undefined && now - held.since < maxAgeMs ? held : undefined;
  }

  /** Take the fill lock of a lookup key (replacing a lock heldLock no longer counts). */
  takeLock(key: string, now: number): FillLock {
    const lock = new FillLock(now);
    this.locks.set(key, lock);
    return lock;
  }

  /** The fill that held `lock` ended: wake its waiters and free the key (unless another request took it over). */
  unlock(key: string, lock: FillLock, outcome: LockOutcome): void {
    if (this.locks.get(key) === lock) this.locks.delete(key);
    lock.settle(outcome);
  }

  /** The store is dropped (no config asks for it any more, or the gateway stops). */
  close(): void {
    this.clear();
    for (const lock of this.locks.values()) lock.settle('failed');
    this.locks.clear();
  }

  private linkNewest(e: CacheEntry): void {
    e.older = this.newest;
    e.newer = null;
    if (this.newest !== null) this.newest.newer = e;
    this.newest = e;
    if (this.oldest === null) this.oldest = e;
  }

  private unlink(e: CacheEntry): void {
    if (e.newer !== null) e.newer.older = e.older;
    else if (this.newest === e) this.newest = e.older;
    if (e.older !== null) e.older.newer = e.newer;
    else if (this.oldest === e) this.oldest = e.newer;
    e.newer = null;
    e.older = null;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
