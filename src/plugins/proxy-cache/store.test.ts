/**
 * @module plugins/proxy-cache/store.test
 * proxy-cache's parts on their own: the memory store (LRU eviction by bytes, Vary variants, purge, resize, fill
 * locks with waiters, timeouts and takeover) and the HTTP rules (Cache-Control parsing, freshness, Vary, request
 * directives, entity tag matching).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ENTRY_OVERHEAD, FillLock, MemoryCache, type KeyParts, type NewEntry } from './store.js';
import { ageSeconds, etagMatches, freshnessLifetime, NO_CACHE_REQUEST, NO_STORE_REQUEST, parseCacheControl, requestDirectives, varyNames } from './policy.js';

function parts(path: string, host = 'example.com', query = ''): KeyParts {
  return { routeId: 'r', scheme: 'http', host, path, query };
}

function entry(bytes: number, expiresAt = Number.MAX_SAFE_INTEGER): NewEntry {
  return {
    response: { status: 200, headers: {}, body: Buffer.alloc(bytes) },
    notModified: null,
    etag: undefined,
    lastModified: NaN,
    storedAt: 0,
    initialAge: 0,
    expiresAt,
    bytes,
  };
}

/** What an entry of `bytes` with a one-letter key and no variant counts. */
const SIZE = (bytes: number) => bytes + 1 + ENTRY_OVERHEAD;

describe('proxy-cache memory store', () => {
  it('evicts the least recently used entries to stay within its bytes; a hit makes an entry recent', () => {
    const c = new MemoryCache(SIZE(1000) * 3, '', 'keep');
    for (const k of ['a', 'b', 'c']) assert.ok(c.insert(k, parts(`/${k}`), [], '', entry(1000)));
    assert.equal(c.bytes, SIZE(1000) * 3);
    c.touch(c.resource('a')!.variants.get('')!);
    c.insert('d', parts('/d'), [], '', entry(1000));
    assert.equal(c.resource('b'), undefined, 'b was the least recently used');
    assert.deepEqual(['a', 'c', 'd'].map((k) => c.resource(k) !== undefined), [true, true, true]);
    assert.equal(c.count, 3);
    // One large entry pushes out as many as it needs, oldest first (c, then a).
    c.insert('e', parts('/e'), [], '', entry(1500));
    assert.deepEqual(['a', 'c', 'd', 'e'].map((k) => c.resource(k) !== undefined), [false, false, true, true]);
    assert.equal(c.bytes, SIZE(1000) + SIZE(1500));
  });

  it('refuses an entry larger than the whole store and keeps what it has', () => {
    const c = new MemoryCache(2000, '', 'keep');
    c.insert('a', parts('/a'), [], '', entry(100));
    assert.equal(c.insert('big', parts('/big'), [], '', entry(5000)), null);
    assert.ok(c.resource('a'));
    assert.equal(c.count, 1);
  });

  it('replaces a variant in place and counts bytes once', () => {
    const c = new MemoryCache(100_000, '', 'keep');
    c.insert('a', parts('/a'), [], '', entry(100));
    c.insert('a', parts('/a'), [], '', entry(300));
    assert.equal(c.count, 1);
    assert.equal(c.bytes, SIZE(300));
  });

  it('keeps variants per Vary values, and drops them all when the Vary list changes', () => {
    const c = new MemoryCache(100_000, '', 'keep');
    c.insert('a', parts('/a'), ['accept-language'], '\n=en', entry(10));
    c.insert('a', parts('/a'), ['accept-language'], '\n=fr', entry(10));
    assert.equal(c.resource('a')!.variants.size, 2);
    c.insert('a', parts('/a'), ['accept-encoding'], '\n=gzip', entry(10));
    assert.deepEqual([...c.resource('a')!.variants.keys()], ['\n=gzip']);
    assert.deepEqual(c.resource('a')!.vary, ['accept-encoding']);
    assert.equal(c.count, 1);
  });

  it('purges by key parts with its count, clears, and resizes down by evicting', () => {
    const c = new MemoryCache(100_000, '', 'keep');
    c.insert('1', parts('/a/1'), [], '', entry(10));
    c.insert('2', parts('/a/2'), ['x'], '\n=1', entry(10));
    c.insert('2', parts('/a/2'), ['x'], '\n=2', entry(10));
    c.insert('3', parts('/b', 'other.example'), [], '', entry(10));
    const gen = c.generation;
    assert.equal(c.purge((p) => p.path.startsWith('/a/')), 3);
    assert.ok(c.generation > gen, 'a purge ends fills that began before it');
    assert.equal(c.count, 1);
    assert.equal(c.purge((p) => p.host === 'example.com'), 0);
    for (let i = 0; i < 5; i++) c.insert(`k${i}`, parts(`/k${i}`), [], '', entry(1000));
    c.resize(SIZE(1000) * 2 + 10);
    assert.equal(c.count, 2);
    assert.ok(c.resource('k4') && c.resource('k3'), 'the most recent stay');
    assert.equal(c.clear(), 2);
    assert.equal(c.bytes, 0);
  });

  it('gives one fill lock per key; waiters wake with the outcome; a lock older than the limit is taken over', async () => {
    const c = new MemoryCache(100_000, '', 'keep');
    assert.equal(c.heldLock('k', 1000, 5000), undefined);
    const first = c.takeLock('k', 1000);
    assert.equal(c.heldLock('k', 2000, 5000), first);
    const waiting = [first.wait(10_000), first.wait(10_000)];
    c.unlock('k', first, 'stored');
    assert.deepEqual(await Promise.all(waiting), ['stored', 'stored']);
    assert.equal(c.locks.size, 0);
    assert.equal(await first.wait(10_000), 'stored', 'a settled lock answers at once');

    const old = c.takeLock('j', 0);
    assert.equal(c.heldLock('j', 6000, 5000), undefined, 'held past the limit: no longer counts');
    const taken = c.takeLock('j', 6000);
    // The first holder ending must not free the key the new holder has.
    c.unlock('j', old, 'failed');
    assert.equal(c.locks.get('j'), taken);
  });

  it('a waiter stops waiting after its time; close fails every lock', async () => {
    const lock = new FillLock(0);
    assert.equal(await lock.wait(20), 'timeout');
    const c = new MemoryCache(100_000, '', 'keep');
    const l = c.takeLock('k', 0);
    const w = l.wait(10_000);
    c.close();
    assert.equal(await w, 'failed');
  });
});

describe('proxy-cache HTTP rules', () => {
  it('parses Cache-Control, quoted arguments holding commas included; the first duplicate wins', () => {
    const d = parseCacheControl('private="set-cookie, x-a", max-age=5, max-age=100, s-maxage=7');
    assert.equal(d.private, true);
    assert.equal(d.maxAge, 5);
    assert.equal(d.sMaxAge, 7);
    assert.equal(d.noStore, false);
    const e = parseCacheControl('No-Store,PUBLIC , must-revalidate, no-cache="set-cookie"');
    assert.deepEqual([e.noStore, e.public, e.mustRevalidate, e.noCache], [true, true, true, true]);
    assert.equal(parseCacheControl('max-age=abc').maxAge, 0, 'an invalid delta is stale at once');
    assert.equal(parseCacheControl('max-age').maxAge, 0);
    assert.equal(parseCacheControl('').maxAge, -1);
  });

  it('works out freshness: s-maxage, then max-age, then Expires minus Date, then the default', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    assert.equal(freshnessLifetime(parseCacheControl('max-age=10, s-maxage=20'), undefined, undefined, now, 300), 20);
    assert.equal(freshnessLifetime(parseCacheControl('max-age=10'), 'Tue, 01 Jan 2030 01:00:00 GMT', undefined, now, 300), 10);
    assert.equal(freshnessLifetime(parseCacheControl(''), 'Tue, 01 Jan 2030 00:02:00 GMT', 'Tue, 01 Jan 2030 00:01:00 GMT', now, 300), 60);
    assert.equal(freshnessLifetime(parseCacheControl(''), 'Tue, 01 Jan 2030 00:02:00 GMT', undefined, now, 300), 120);
    assert.equal(freshnessLifetime(parseCacheControl(''), '0', undefined, now, 300), 0, 'an Expires that is not a date means expired');
    assert.equal(freshnessLifetime(parseCacheControl('public'), undefined, undefined, now, 300), 300);
    assert.equal(ageSeconds('12'), 12);
    assert.equal(ageSeconds('-3'), 0);
    assert.equal(ageSeconds(undefined), 0);
  });

  it('reads Vary names lower-case, sorted, once; Vary: * is null', () => {
    assert.deepEqual(varyNames('Accept-Language, accept-encoding,Accept-Language'), ['accept-encoding', 'accept-language']);
    assert.deepEqual(varyNames(undefined), []);
    assert.equal(varyNames('*'), null);
    assert.equal(varyNames('accept-encoding, *'), null);
  });

  it('reads no-cache and no-store from the request; Pragma only without Cache-Control', () => {
    assert.equal(requestDirectives(undefined, undefined), 0);
    assert.equal(requestDirectives('max-age=0', undefined), 0);
    assert.equal(requestDirectives('No-Cache', undefined), NO_CACHE_REQUEST);
    assert.equal(requestDirectives('no-cache, no-store', undefined), NO_STORE_REQUEST);
    assert.equal(requestDirectives(undefined, 'no-cache'), NO_CACHE_REQUEST);
    assert.equal(requestDirectives('max-age=60', 'no-cache'), 0);
    assert.equal(requestDirectives('x-no-cache-please', undefined), 0);
  });

  it('matches entity tags weakly, in lists and with *', () => {
    assert.equal(etagMatches('"a"', '"a"'), true);
    assert.equal(etagMatches('W/"a"', '"a"'), true);
    assert.equal(etagMatches('"b", W/"a"', 'W/"a"'), true);
    assert.equal(etagMatches('"b"', '"a"'), false);
    assert.equal(etagMatches(' * ', '"a"'), true);
  });
});
