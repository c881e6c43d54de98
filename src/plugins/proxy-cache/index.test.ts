/**
 * @module plugins/proxy-cache/index.test
 * proxy-cache: the schema (defaults, refused configs with their paths, the docs example), then real traffic
 * through an in-process gateway to real upstreams: miss then hit, expiry with an injected clock, freshness
 * from the response, client bypass, Vary variants, conditional requests, HEAD, the key (query, host, headers,
 * consumer), responses that are not stored, LRU eviction by bytes, a failed upstream, one upstream request for
 * concurrent misses (and what waiters do when that fill fails or takes too long), purge through the status
 * port, and the store across config reloads.
 */
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import proxyCache, { cacheClock } from './index.js';
import type { PluginContext, PluginResponse } from '../../dataplane/plugins/types.js';
import { pluginEnv } from '../../../test/helpers/plugin-env.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { harness } from '../../../test/helpers/harness.js';
import { closedPort, node, type TestUpstream } from '../../../test/helpers/upstream.js';
import { send, json, type Reply } from '../../../test/helpers/http.js';

const { upstream, gateway } = harness();
const P = 'routes[0].plugins.proxy-cache';
const realNow = cacheClock.now;

function validate(plugin: unknown) {
  return validateDeclarative(
    { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'proxy-cache': plugin } }] },
    builtinRegistry(),
  );
}

function problemsOf(plugin: unknown): string[] {
  const r = validate(plugin);
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

/** Poll `cond` every 10 ms for at most `ms`. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Answer {
  status?: number;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** Send the head and this much of the body, then cut the connection. */
  breakAfter?: string;
  /** Send the body without Content-Length (chunked). */
  chunked?: boolean;
}

interface Origin {
  up: TestUpstream;
  /** Requests the origin got. */
  readonly count: number;
  /** Let held answers go and stop holding (when made with hold: true). */
  release(): void;
  /** Let the answers held so far go; later requests are still held. */
  releasePending(): void;
}

/**
 * An upstream that answers what `answer` says; the default body names the path and the request's number, so a
 * cached answer is told apart from a fresh one. With `hold`, answers wait for release().
 */
async function origin(answer: (req: IncomingMessage, n: number) => Answer = () => ({}), opts: { hold?: boolean } = {}): Promise<Origin> {
  let n = 0;
  let held: Array<() => void> | null = opts.hold ? [] : null;
  const up = await upstream((req: IncomingMessage, res: ServerResponse) => {
    const seq = ++n;
    const reply = () => {
      if (res.destroyed) return;
      const a = answer(req, seq);
      const body = a.body === undefined ? Buffer.from(`${req.url} #${seq}`) : Buffer.from(a.body);
      const headers: Record<string, string | string[] | number> = { 'content-type': 'text/plain', ...a.headers };
      if (!a.chunked) headers['content-length'] ??= body.length;
      res.writeHead(a.status ?? 200, headers);
      if (a.breakAfter !== undefined) {
        res.write(a.breakAfter);
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      if (a.chunked) {
        res.write(body.subarray(0, 1));
        res.end(body.subarray(1));
      } else res.end(body);
    };
    if (held !== null) held.push(reply);
    else reply();
  });
  return {
    up,
    get count() {
      return n;
    },
    release() {
      const h = held ?? [];
      held = null;
      for (const r of h) r();
    },
    releasePending() {
      const h = held ?? [];
      if (held !== null) held = [];
      for (const r of h) r();
    },
  };
}

async function setup(o: Origin, plugin: Record<string, unknown> = {}, more: Record<string, unknown> = {}) {
  return gateway(
    {
      upstreams: [{ id: 'u', nodes: [node(o.up.port)] }],
      routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'proxy-cache': { ...plugin } } }],
      ...more,
    },
    undefined,
    { statusServer: true },
  );
}

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return send(port, path, { method, headers, timeout: 10000 });
}

const cacheStatus = (r: Reply) => r.headers['x-cache-status'];

/** A GET that reports whether its body arrived whole, for upstreams that break. */
function loose(port: number, path: string): Promise<{ status: number; complete: boolean; body: string; cache: string | undefined }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => {});
      res.on('close', () =>
        resolve({ status: res.statusCode ?? 0, complete: res.complete, body: Buffer.concat(chunks).toString(), cache: res.headers['x-cache-status'] as string | undefined }),
      );
    });
    req.on('error', () => resolve({ status: 0, complete: false, body: '', cache: undefined }));
    req.end();
  });
}

function purge(statusPort: number, body: unknown): Promise<Reply> {
  return send(statusPort, '/plugins/proxy-cache/purge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Freeze the cache's clock; returns a function that moves it on by seconds. */
function fakeClock(): (seconds: number) => void {
  let t = Date.now();
  cacheClock.now = () => t;
  return (s) => {
    t += s * 1000;
  };
}

describe('proxy-cache config', () => {
  it('fills defaults', () => {
    const r = validate({});
    assert.ok(r.ok);
    const conf = (r.value.routes[0] as { plugins: Record<string, unknown> }).plugins['proxy-cache'];
    assert.deepEqual(conf, {
      memorySize: 64 * 1024 * 1024,
      maxObjectSize: 1024 * 1024,
      ttl: 300,
      methods: ['GET', 'HEAD'],
      statuses: [200, 301, 404],
      keyHeaders: [],
      keyQuery: 'keep',
      perConsumer: true,
      setCookie: 'refuse',
      clientBypass: true,
      lockTimeout: 5000,
    });
  });

  it('refuses configs that cannot work, with the path of the field', () => {
    assert.deepEqual(problemsOf({ memorySize: 1024 * 1024, maxObjectSize: 2 * 1024 * 1024 }), [
      `${P}.maxObjectSize: is larger than memorySize: no such response could be stored`,
    ]);
    assert.deepEqual(problemsOf({ methods: ['HEAD'] }), [`${P}.methods: HEAD requests are answered from stored GET responses: list GET too`]);
    assert.deepEqual(problemsOf({ statuses: [200, 206, 304] }), [
      `${P}.statuses[1]: 206 is a part of a response (a Range request) and cannot be stored as the whole`,
      `${P}.statuses[2]: 304 answers a conditional request and has no body to store`,
    ]);
    assert.deepEqual(problemsOf({ keyHeaders: ['X-Tenant', 'x-tenant'] }), [`${P}.keyHeaders[1]: is listed twice`]);
    for (const [bad, field] of [
      [{ methods: ['POST'] }, 'methods'],
      [{ keyQuery: 'random' }, 'keyQuery'],
      [{ memorySize: 10 }, 'memorySize'],
      [{ ttl: 0 }, 'ttl'],
      [{ statuses: [199] }, 'statuses'],
      [{ keyHeaders: ['bad header'] }, 'keyHeaders'],
      [{ setCookie: 'keep' }, 'setCookie'],
      [{ lockTimeout: -1 }, 'lockTimeout'],
    ] as const) {
      const problems = problemsOf(bad);
      assert.ok(problems.some((p) => p.startsWith(`${P}.${field}`)), `${JSON.stringify(bad)}: ${problems.join('; ')}`);
    }
    assert.ok(problemsOf({ extra: 1 }).length > 0);
  });

  it('the example in docs/plugins/proxy-cache.md is valid', () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/proxy-cache.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
    const r = validateDeclarative(parse(yaml), builtinRegistry());
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    const conf = (r.value.routes[0] as { plugins: Record<string, unknown> }).plugins['proxy-cache'] as Record<string, unknown>;
    assert.equal(conf.memorySize, 256 * 1024 * 1024);
    assert.deepEqual(conf.keyHeaders, ['Accept-Language']);
  });
});

describe('proxy-cache hits, misses and expiry', () => {
  afterEach(() => {
    cacheClock.now = realNow;
  });

  it('stores a miss and answers the next request from memory with Age; headers and body are the same', async () => {
    const advance = fakeClock();
    const o = await origin(() => ({ headers: { 'x-origin': 'yes', etag: '"v1"' } }));
    const gw = await setup(o);
    const a = await get(gw.http, '/items/1?x=1');
    assert.equal(a.status, 200);
    assert.equal(cacheStatus(a), 'MISS');
    assert.equal(a.body, '/items/1?x=1 #1');
    advance(30);
    const b = await get(gw.http, '/items/1?x=1');
    assert.equal(cacheStatus(b), 'HIT');
    assert.equal(b.body, '/items/1?x=1 #1');
    assert.equal(b.headers.age, '30');
    assert.equal(b.headers['x-origin'], 'yes');
    assert.equal(b.headers['content-type'], 'text/plain');
    assert.equal(b.headers['content-length'], String(b.body.length));
    assert.equal(b.headers.etag, '"v1"');
    assert.equal(o.count, 1);
    // Another path, another entry.
    assert.equal(cacheStatus(await get(gw.http, '/items/2')), 'MISS');
    assert.equal(o.count, 2);
  });

  it('an entry past its ttl is EXPIRED: fetched again and stored anew', async () => {
    const advance = fakeClock();
    const o = await origin();
    const gw = await setup(o, { ttl: 60 });
    assert.equal(cacheStatus(await get(gw.http, '/a')), 'MISS');
    advance(59);
    assert.equal(cacheStatus(await get(gw.http, '/a')), 'HIT');
    advance(2);
    const stale = await get(gw.http, '/a');
    assert.equal(cacheStatus(stale), 'EXPIRED');
    assert.equal(stale.body, '/a #2');
    const again = await get(gw.http, '/a');
    assert.equal(cacheStatus(again), 'HIT');
    assert.equal(again.body, '/a #2');
    assert.equal(again.headers.age, '0');
    assert.equal(o.count, 2);
  });

  it('takes freshness from the response: s-maxage over max-age over Expires over ttl, less the Age it came with', async () => {
    const advance = fakeClock();
    const expires = new Date(cacheClock.now() + 20_000).toUTCString();
    const o = await origin((req): Answer => {
      if (req.url === '/max-age') return { headers: { 'cache-control': 'max-age=10' } };
      if (req.url === '/s-maxage') return { headers: { 'cache-control': 'max-age=10, s-maxage=100' } };
      if (req.url === '/expires') return { headers: { expires, date: new Date(cacheClock.now()).toUTCString() } };
      return { headers: { 'cache-control': 'max-age=100', age: '95' } };
    });
    const gw = await setup(o, { ttl: 1000 });
    for (const p of ['/max-age', '/s-maxage', '/expires', '/aged']) assert.equal(cacheStatus(await get(gw.http, p)), 'MISS', p);
    advance(4);
    const aged = await get(gw.http, '/aged');
    assert.equal(cacheStatus(aged), 'HIT');
    assert.equal(aged.headers.age, '99', 'the Age it came with counts');
    advance(8); // 12 s
    assert.equal(cacheStatus(await get(gw.http, '/aged')), 'EXPIRED', 'aged: 100 - 95 s fresh');
    assert.equal(cacheStatus(await get(gw.http, '/max-age')), 'EXPIRED');
    assert.equal(cacheStatus(await get(gw.http, '/s-maxage')), 'HIT');
    assert.equal(cacheStatus(await get(gw.http, '/expires')), 'HIT');
    advance(10); // 22 s
    assert.equal(cacheStatus(await get(gw.http, '/expires')), 'EXPIRED');
    assert.equal(cacheStatus(await get(gw.http, '/s-maxage')), 'HIT');
  });
});

describe('proxy-cache bypass and conditional requests', () => {
  it('Cache-Control no-cache and Pragma no-cache go upstream (BYPASS) and refresh the entry; no-store leaves it', async () => {
    const o = await origin();
    const gw = await setup(o);
    assert.equal(cacheStatus(await get(gw.http, '/p')), 'MISS');
    const bypass = await get(gw.http, '/p', { 'cache-control': 'no-cache' });
    assert.equal(cacheStatus(bypass), 'BYPASS');
    assert.equal(bypass.body, '/p #2');
    const refreshed = await get(gw.http, '/p');
    assert.equal(cacheStatus(refreshed), 'HIT');
    assert.equal(refreshed.body, '/p #2', 'the fresh answer replaced the stored one');
    const noStore = await get(gw.http, '/p', { 'cache-control': 'no-store' });
    assert.equal(cacheStatus(noStore), 'BYPASS');
    assert.equal(noStore.body, '/p #3');
    assert.equal((await get(gw.http, '/p')).body, '/p #2', 'no-store: the answer was not kept');
    const pragma = await get(gw.http, '/p', { pragma: 'no-cache' });
    assert.equal(cacheStatus(pragma), 'BYPASS');
    assert.equal(o.count, 4);
  });

  it('clientBypass false answers such requests from the cache', async () => {
    const o = await origin();
    const gw = await setup(o, { clientBypass: false });
    await get(gw.http, '/p');
    const r = await get(gw.http, '/p', { 'cache-control': 'no-cache', pragma: 'no-cache' });
    assert.equal(cacheStatus(r), 'HIT');
    assert.equal(o.count, 1);
  });

  it('answers a matching If-None-Match or If-Modified-Since with 304 from the entry', async () => {
    const lastModified = 'Tue, 01 Jan 2030 00:00:00 GMT';
    const o = await origin(() => ({ headers: { etag: 'W/"v1"', 'last-modified': lastModified, 'cache-control': 'max-age=60' } }));
    const gw = await setup(o);
    await get(gw.http, '/c');
    const nm = await get(gw.http, '/c', { 'if-none-match': '"v0", "v1"' });
    assert.equal(nm.status, 304);
    assert.equal(cacheStatus(nm), 'HIT');
    assert.equal(nm.body, '');
    assert.equal(nm.headers.etag, 'W/"v1"');
    assert.equal(nm.headers['cache-control'], 'max-age=60');
    assert.equal((await get(gw.http, '/c', { 'if-none-match': '"v2"' })).status, 200);
    assert.equal((await get(gw.http, '/c', { 'if-modified-since': lastModified })).status, 304);
    assert.equal((await get(gw.http, '/c', { 'if-modified-since': 'Mon, 31 Dec 2029 00:00:00 GMT' })).status, 200);
    assert.equal(o.count, 1);
  });
});

describe('proxy-cache Vary and HEAD', () => {
  it('keeps one variant per value of the headers Vary names', async () => {
    const o = await origin((req, n) => ({ headers: { vary: 'Accept-Language' }, body: `lang=${req.headers['accept-language'] ?? '-'} #${n}` }));
    const gw = await setup(o);
    const en = await get(gw.http, '/v', { 'accept-language': 'en' });
    assert.equal(cacheStatus(en), 'MISS');
    assert.equal(cacheStatus(await get(gw.http, '/v', { 'accept-language': 'fr' })), 'MISS');
    const en2 = await get(gw.http, '/v', { 'accept-language': 'en' });
    assert.equal(cacheStatus(en2), 'HIT');
    assert.equal(en2.body, 'lang=en #1');
    assert.equal(en2.headers.vary, 'Accept-Language');
    assert.equal((await get(gw.http, '/v', { 'accept-language': 'fr' })).body, 'lang=fr #2');
    const none = await get(gw.http, '/v');
    assert.equal(cacheStatus(none), 'MISS', 'no such header is a variant of its own');
    assert.equal((await get(gw.http, '/v')).body, 'lang=- #3');
    assert.equal(o.count, 3);
  });

  it('Vary: * is never stored', async () => {
    const o = await origin(() => ({ headers: { vary: 'accept-encoding, *' } }));
    const gw = await setup(o);
    assert.equal(cacheStatus(await get(gw.http, '/s')), 'MISS');
    assert.equal(cacheStatus(await get(gw.http, '/s')), 'MISS');
    assert.equal(o.count, 2);
  });

  it('HEAD is answered from a stored GET (with its length, without a body); a HEAD miss stores nothing', async () => {
    const o = await origin();
    const gw = await setup(o);
    const h1 = await get(gw.http, '/h', {}, 'HEAD');
    assert.equal(cacheStatus(h1), 'MISS');
    const g = await get(gw.http, '/h');
    assert.equal(cacheStatus(g), 'MISS', 'the HEAD answer had no body to store');
    const h2 = await get(gw.http, '/h', {}, 'HEAD');
    assert.equal(cacheStatus(h2), 'HIT');
    assert.equal(h2.body, '');
    assert.equal(h2.headers['content-length'], String(g.body.length));
    assert.deepEqual(o.up.seen.map((s) => s.method), ['HEAD', 'GET']);
  });

  it('methods [GET] leaves HEAD alone', async () => {
    const o = await origin();
    const gw = await setup(o, { methods: ['GET'] });
    await get(gw.http, '/h');
    const h = await get(gw.http, '/h', {}, 'HEAD');
    assert.equal(cacheStatus(h), undefined);
    assert.equal(o.count, 2);
  });

  it('a WebSocket upgrade is never answered from the cache', async () => {
    const o = await origin();
    const gw = await gateway({
      upstreams: [{ id: 'u', nodes: [node(o.up.port)] }],
      routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', websocket: true, plugins: { 'proxy-cache': {} } }],
    });
    await get(gw.http, '/ws');
    assert.equal(cacheStatus(await get(gw.http, '/ws')), 'HIT');
    const upgrade = await get(gw.http, '/ws', { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' });
    assert.equal(cacheStatus(upgrade), undefined);
    assert.equal(o.count, 2, 'the upgrade was asked of the upstream');
    assert.equal(o.up.seen[1]!.headers.upgrade, 'websocket');
  });

  it('POST and other methods are never cached and carry no X-Cache-Status', async () => {
    const o = await origin();
    const gw = await setup(o);
    await get(gw.http, '/m');
    const p = await send(gw.http, '/m', { method: 'POST', body: 'x' });
    assert.equal(cacheStatus(p), undefined);
    assert.equal(p.body, '/m #2');
  });
});

describe('proxy-cache key', () => {
  it('query: keep tells argument orders apart, sort does not, ignore drops the query', async () => {
    for (const [mode, second, third] of [
      ['keep', 'MISS', 'MISS'],
      ['sort', 'HIT', 'MISS'],
      ['ignore', 'HIT', 'HIT'],
    ] as const) {
      const o = await origin();
      const gw = await setup(o, { keyQuery: mode });
      await get(gw.http, '/q?a=1&b=2');
      assert.equal(cacheStatus(await get(gw.http, '/q?b=2&a=1')), second, mode);
      assert.equal(cacheStatus(await get(gw.http, '/q?a=3')), third, mode);
    }
  });

  it('the host (without port, any case) and the chosen headers are part of the key', async () => {
    const o = await origin();
    const gw = await setup(o, { keyHeaders: ['X-Tenant'] });
    await get(gw.http, '/k', { host: 'a.example', 'x-tenant': 't1' });
    assert.equal(cacheStatus(await get(gw.http, '/k', { host: 'A.Example:8080', 'x-tenant': 't1' })), 'HIT');
    assert.equal(cacheStatus(await get(gw.http, '/k', { host: 'b.example', 'x-tenant': 't1' })), 'MISS');
    assert.equal(cacheStatus(await get(gw.http, '/k', { host: 'a.example', 'x-tenant': 't2' })), 'MISS');
    assert.equal(cacheStatus(await get(gw.http, '/k', { host: 'a.example' })), 'MISS');
    assert.equal(o.count, 4);
  });

  it('answers only authenticated requests, keyed per consumer unless perConsumer is false', async () => {
    for (const perConsumer of [true, false]) {
      const o = await origin((req, n) => ({ body: `for ${req.headers['x-consumer-username']} #${n}` }));
      const gw = await gateway({
        upstreams: [{ id: 'u', nodes: [node(o.up.port)] }],
        consumers: [
          { username: 'alice', credentials: { 'key-auth': { key: 'alice-key-0001' } } },
          { username: 'bob', credentials: { 'key-auth': { key: 'bob-key-00000001' } } },
        ],
        routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'key-auth': {}, 'proxy-cache': { perConsumer } } }],
      });
      assert.equal((await get(gw.http, '/me', { apikey: 'alice-key-0001' })).body, 'for alice #1');
      const anonymous = await get(gw.http, '/me');
      assert.equal(anonymous.status, 401, 'a cached answer never reaches a client the gateway refuses');
      const bob = await get(gw.http, '/me', { apikey: 'bob-key-00000001' });
      assert.equal(bob.body, perConsumer ? 'for bob #2' : 'for alice #1');
      assert.equal(cacheStatus(bob), perConsumer ? 'MISS' : 'HIT');
      assert.equal((await get(gw.http, '/me', { apikey: 'alice-key-0001' })).body, 'for alice #1');
    }
  });
});

describe('proxy-cache responses that are not stored', () => {
  it('no-store, private, no-cache, Set-Cookie, max-age=0, an unlisted status, an Authorization request without public', async () => {
    const o = await origin((req): Answer => {
      switch (req.url) {
        case '/no-store':
          return { headers: { 'cache-control': 'no-store' } };
        case '/private':
          return { headers: { 'cache-control': 'private, max-age=60' } };
        case '/no-cache':
          return { headers: { 'cache-control': 'no-cache' } };
        case '/cookie':
          return { headers: { 'set-cookie': 'session=abc' } };
        case '/max-age-0':
          return { headers: { 'cache-control': 'max-age=0' } };
        case '/500':
          return { status: 500 };
        case '/404':
          return { status: 404 };
        case '/public':
          return { headers: { 'cache-control': 'public, max-age=60' } };
        default:
          return {};
      }
    });
    const gw = await setup(o);
    for (const path of ['/no-store', '/private', '/no-cache', '/cookie', '/max-age-0', '/500']) {
      const before = o.count;
      assert.equal(cacheStatus(await get(gw.http, path)), 'MISS', path);
      assert.equal(cacheStatus(await get(gw.http, path)), 'MISS', path);
      assert.equal(o.count, before + 2, path);
    }
    assert.equal(cacheStatus(await get(gw.http, '/auth', { authorization: 'Bearer x' })), 'MISS');
    assert.equal(cacheStatus(await get(gw.http, '/auth', { authorization: 'Bearer x' })), 'MISS', 'RFC 9111 3.5');
    await get(gw.http, '/public', { authorization: 'Bearer x' });
    assert.equal(cacheStatus(await get(gw.http, '/public', { authorization: 'Bearer x' })), 'HIT', 'public allows it');
    await get(gw.http, '/404');
    assert.equal(cacheStatus(await get(gw.http, '/404')), 'HIT', '404 is listed by default');
  });

  it('setCookie strip stores the answer without its Set-Cookie', async () => {
    const o = await origin(() => ({ headers: { 'set-cookie': ['a=1', 'b=2'] } }));
    const gw = await setup(o, { setCookie: 'strip' });
    const first = await get(gw.http, '/c');
    assert.deepEqual(first.headers['set-cookie'], ['a=1', 'b=2'], 'the client that caused the fill gets its cookies');
    const hit = await get(gw.http, '/c');
    assert.equal(cacheStatus(hit), 'HIT');
    assert.equal(hit.headers['set-cookie'], undefined);
  });

  it('bodies over maxObjectSize are passed through whole and not stored, by Content-Length or as they stream', async () => {
    const big = 'x'.repeat(5000);
    const o = await origin((req) => ({ body: big, chunked: req.url === '/chunked' }));
    const gw = await setup(o, { maxObjectSize: 4096 });
    for (const path of ['/sized', '/chunked']) {
      const a = await get(gw.http, path);
      assert.equal(a.body, big);
      assert.equal(cacheStatus(a), 'MISS');
      assert.equal(cacheStatus(await get(gw.http, path)), 'MISS', path);
    }
    assert.equal(o.count, 4);
  });

  it('a response whose upstream fails mid-body is not stored; neither is a gateway error', async () => {
    const o = await origin((_req, n) => (n === 1 ? { headers: { 'content-length': '100' }, breakAfter: 'partial' } : {}));
    const gw = await setup(o);
    const broken = await loose(gw.http, '/f');
    assert.equal(broken.complete, false);
    const second = await get(gw.http, '/f');
    assert.equal(cacheStatus(second), 'MISS');
    assert.equal(second.body, '/f #2');
    assert.equal(cacheStatus(await get(gw.http, '/f')), 'HIT');

    const dead = await gateway({
      upstreams: [{ id: 'u', nodes: [node(await closedPort())] }],
      routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'proxy-cache': { statuses: [200, 502] } } }],
    });
    const e1 = await get(dead.http, '/x');
    assert.equal(e1.status, 502);
    assert.equal(cacheStatus(e1), 'MISS');
    assert.equal(cacheStatus(await get(dead.http, '/x')), 'MISS', 'the gateway\'s own 502 is never stored');
  });
});

describe('proxy-cache hooks on their own', () => {
  function fakeCtx(over: Record<string, unknown> = {}): PluginContext {
    return {
      method: 'GET',
      headers: {},
      path: '/x',
      query: '',
      routeId: 'r',
      consumer: null,
      fwd: { proto: 'http', host: 'h.example' },
      vars: {},
      res: { destroyed: false },
      upstreamLatency: 3,
      errorCode: null,
      responseExtra: null,
      ...over,
    } as unknown as PluginContext;
  }

  it('headers other plugins set for one request are not stored with the answer', () => {
    const r = validate({});
    assert.ok(r.ok);
    const config = (r.value.routes[0] as unknown as { plugins: Record<string, never> }).plugins['proxy-cache'];
    const inst = proxyCache.create(config, pluginEnv({ plugin: 'proxy-cache', scope: 'route:unit' }));
    const fill = fakeCtx({ responseExtra: ['X-Request-Id', 'id-1', 'RateLimit-Remaining', '9'] });
    assert.equal(inst.beforeUpstream!(fill), undefined);
    const head = { status: 200, headers: ['Content-Type', 'text/plain', 'X-Request-Id', 'id-1', 'RateLimit-Remaining', '9', 'X-Origin', 'a', 'X-Origin', 'b'] };
    inst.responseHeaders!(fill, head);
    assert.deepEqual(head.headers.slice(-2), ['X-Cache-Status', 'MISS']);
    inst.responseTap!(fill, Buffer.from('hel'), false);
    inst.responseTap!(fill, Buffer.from('lo'), false);
    inst.responseTap!(fill, Buffer.alloc(0), true);
    const hit = fakeCtx();
    const answer = inst.beforeUpstream!(hit) as PluginResponse;
    assert.equal(answer.status, 200);
    assert.deepEqual({ ...answer.headers }, { 'content-type': 'text/plain', 'x-origin': 'a, b' });
    assert.equal(String(answer.body), 'hello');
  });
});

describe('proxy-cache memory bound', () => {
  it('evicts the least recently used entries when memorySize would be passed', async () => {
    const o = await origin((req) => ({ body: `${req.url}`.padEnd(20_000, '.') }));
    const gw = await setup(o, { memorySize: 64 * 1024, maxObjectSize: 32 * 1024 });
    for (const p of ['/a', '/b', '/c']) await get(gw.http, p);
    assert.equal(cacheStatus(await get(gw.http, '/a')), 'HIT');
    await get(gw.http, '/d');
    assert.equal(cacheStatus(await get(gw.http, '/b')), 'MISS', '/b was the least recently used');
    // Storing /b again pushed out /c, the least recently used by then.
    assert.equal(cacheStatus(await get(gw.http, '/a')), 'HIT');
    assert.equal(cacheStatus(await get(gw.http, '/d')), 'HIT');
    assert.equal(cacheStatus(await get(gw.http, '/c')), 'MISS');
  });
});

describe('proxy-cache concurrent misses', () => {
  it('N concurrent misses for one key make one upstream request; the others are answered from it', async () => {
    const o = await origin(undefined, { hold: true });
    const gw = await setup(o);
    const all = Array.from({ length: 8 }, () => get(gw.http, '/slow'));
    assert.ok(await until(() => o.count >= 1));
    // Time for every request to reach the gateway and queue behind the first: none may go upstream.
    await sleep(300);
    assert.equal(o.count, 1);
    o.release();
    const replies = await Promise.all(all);
    assert.equal(o.count, 1);
    assert.ok(replies.every((r) => r.status === 200 && r.body === '/slow #1'));
    assert.deepEqual(replies.map(cacheStatus).sort(), ['HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'MISS']);
  });

  it('when the first answer cannot be stored, the waiters all go upstream at once', async () => {
    const o = await origin(() => ({ headers: { 'cache-control': 'no-store' } }), { hold: true });
    const gw = await setup(o);
    const all = Array.from({ length: 5 }, () => get(gw.http, '/ns'));
    assert.ok(await until(() => o.count >= 1));
    await sleep(300);
    assert.equal(o.count, 1);
    // Only the first answer goes; the waiters' own requests are held: had one of them taken the lock, the
    // others would wait behind it (up to lockTimeout, 5 s) instead of reaching the upstream now.
    o.releasePending();
    assert.ok(await until(() => o.count === 5, 2000), `upstream got ${o.count} of 5`);
    o.release();
    const replies = await Promise.all(all);
    assert.ok(replies.every((r) => r.status === 200 && cacheStatus(r) === 'MISS'));
  });

  it('when the first fill breaks mid-body, the waiters go upstream themselves', async () => {
    const o = await origin((_req, n) => (n === 1 ? { headers: { 'content-length': '100' }, breakAfter: 'part' } : {}), { hold: true });
    const gw = await setup(o);
    const first = loose(gw.http, '/b');
    assert.ok(await until(() => o.count >= 1));
    const waiters = Array.from({ length: 3 }, () => get(gw.http, '/b'));
    await sleep(300);
    assert.equal(o.count, 1);
    o.release();
    assert.equal((await first).complete, false);
    const replies = await Promise.all(waiters);
    assert.ok(replies.every((r) => r.status === 200 && /^\/b #[234]$/.test(r.body)), replies.map((r) => r.body).join());
    assert.equal(o.count, 4);
  });

  it('a Range request that misses holds no lock: plain GETs fill the key; a HEAD waits for them', async () => {
    const o = await origin(undefined, { hold: true });
    const gw = await setup(o);
    const ranged = get(gw.http, '/r', { range: 'bytes=0-1' });
    assert.ok(await until(() => o.count === 1));
    const gets = Array.from({ length: 3 }, () => get(gw.http, '/r'));
    assert.ok(await until(() => o.count === 2), 'a GET went upstream beside the Range request');
    const head = get(gw.http, '/r', {}, 'HEAD');
    await sleep(300);
    assert.equal(o.count, 2, 'the other GETs and the HEAD wait for the first GET');
    o.release();
    assert.equal((await ranged).status, 200);
    const replies = await Promise.all(gets);
    assert.deepEqual(replies.map(cacheStatus).sort(), ['HIT', 'HIT', 'MISS']);
    assert.equal(new Set(replies.map((r) => r.body)).size, 1);
    assert.equal(cacheStatus(await head), 'HIT');
    assert.equal(o.count, 2);
  });

  it('a waiter goes upstream itself after lockTimeout', async () => {
    const o = await origin(undefined, { hold: true });
    const gw = await setup(o, { lockTimeout: 100 });
    const all = Array.from({ length: 3 }, () => get(gw.http, '/t'));
    assert.ok(await until(() => o.count === 3), `upstream got ${o.count}`);
    o.release();
    const replies = await Promise.all(all);
    assert.ok(replies.every((r) => r.status === 200 && cacheStatus(r) === 'MISS'));
  });
});

describe('proxy-cache purge through the status port', () => {
  async function filled() {
    const o = await origin();
    const gw = await gateway(
      {
        upstreams: [{ id: 'u', nodes: [node(o.up.port)] }],
        routes: [
          { id: 'r', paths: ['/a/*', '/b'], upstreamId: 'u', plugins: { 'proxy-cache': {} } },
          { id: 's', paths: ['/s'], upstreamId: 'u', plugins: { 'proxy-cache': { keyQuery: 'sort' } } },
        ],
      },
      undefined,
      { statusServer: true },
    );
    for (const p of ['/a/1', '/a/2', '/a/2?x=1', '/b', '/s?b=2&a=1']) assert.equal(cacheStatus(await get(gw.http, p)), 'MISS', p);
    return { o, gw, status: gw.status! };
  }

  it('purges one path (every query) or one query; the next request is a MISS', async () => {
    const { gw, status } = await filled();
    const r = await purge(status, { path: '/a/2', query: 'x=1' });
    assert.equal(r.status, 200);
    assert.deepEqual(json(r), { workers: [{ removed: 1 }] });
    assert.equal(cacheStatus(await get(gw.http, '/a/2?x=1')), 'MISS');
    assert.equal(cacheStatus(await get(gw.http, '/a/2')), 'HIT');
    assert.deepEqual(json(await purge(status, { path: '/a/2', method: 'GET' })), { workers: [{ removed: 2 }] });
    assert.equal(cacheStatus(await get(gw.http, '/a/2')), 'MISS');
    assert.equal(cacheStatus(await get(gw.http, '/a/1')), 'HIT');
    // A query is compared as the key holds it: sorted for route s.
    assert.deepEqual(json(await purge(status, { path: '/s', query: 'a=1&b=2' })), { workers: [{ removed: 1 }] });
  });

  it('purges by path prefix, by host, in one scope, or all', async () => {
    const { gw, status } = await filled();
    assert.deepEqual(json(await purge(status, { pathPrefix: '/a/', host: 'other.example' })), { workers: [{ removed: 0 }] });
    assert.deepEqual(json(await purge(status, { pathPrefix: '/a/', host: '127.0.0.1' })), { workers: [{ removed: 3 }] });
    assert.equal(cacheStatus(await get(gw.http, '/b')), 'HIT');
    assert.deepEqual(json(await purge(status, { all: true, scope: 'route:s' })), { workers: [{ removed: 1 }] });
    assert.equal(cacheStatus(await get(gw.http, '/b')), 'HIT');
    assert.deepEqual(json(await purge(status, { all: true, host: 'other.example' })), { workers: [{ removed: 0 }] });
    assert.deepEqual(json(await purge(status, { all: true })), { workers: [{ removed: 1 }] });
    assert.equal(cacheStatus(await get(gw.http, '/b')), 'MISS');
  });

  it('refuses bad requests with 400 and a clear message', async () => {
    const { status } = await filled();
    const cases: Array<[unknown, RegExp]> = [
      [{}, /exactly one of path, pathPrefix or all/],
      [{ path: '/a', all: true }, /exactly one of/],
      [{ path: 'a' }, /path must start with "\/"/],
      [{ path: '/a', method: 'POST' }, /method must be GET or HEAD/],
      [{ path: '/a', extra: 1 }, /unknown field "extra"/],
      [{ all: 'yes' }, /all must be true/],
      [{ path: 7 }, /path must be a non-empty string/],
      [{ path: '/a', query: '?x=1' }, /without the leading "\?"/],
      [{ all: true, scope: 'route:nope' }, /no proxy-cache config at scope "route:nope"/],
    ];
    for (const [body, message] of cases) {
      const r = await purge(status, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      const err = json<{ error: { code: string; message: string } }>(r).error;
      assert.equal(err.code, 'GH_ERR_BAD_REQUEST');
      assert.match(err.message, message, JSON.stringify(body));
    }
    const notJson = await send(status, '/plugins/proxy-cache/purge', { method: 'POST', body: '{' });
    assert.equal(notJson.status, 400);
  });

  it('an answer in flight when a purge runs is not stored', async () => {
    const o = await origin(undefined, { hold: true });
    const gw = await setup(o);
    const pending = get(gw.http, '/p');
    assert.ok(await until(() => o.count === 1));
    assert.deepEqual(json(await purge(gw.status!, { all: true })), { workers: [{ removed: 0 }] });
    o.release();
    assert.equal(cacheStatus(await pending), 'MISS');
    const next = get(gw.http, '/p');
    assert.ok(await until(() => o.count === 2), 'the purged fill was not stored');
    o.release();
    assert.equal(cacheStatus(await next), 'MISS');
  });
});

describe('proxy-cache across config reloads', () => {
  it('keeps entries when other parts of the config change, and empties them when the cache rules change', async () => {
    const o = await origin();
    const config = (cache: Record<string, unknown>, extraRoute: boolean) => ({
      upstreams: [{ id: 'u', nodes: [node(o.up.port)] }],
      routes: [
        { id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'proxy-cache': cache } },
        ...(extraRoute ? [{ id: 'other', paths: ['/other'], upstreamId: 'u' }] : []),
      ],
    });
    const gw = await gateway(config({}, false));
    await get(gw.http, '/r');
    gw.apply(config({}, true));
    assert.equal(cacheStatus(await get(gw.http, '/r')), 'HIT');
    gw.apply(config({ memorySize: 1024 * 1024 }, true));
    assert.equal(cacheStatus(await get(gw.http, '/r')), 'HIT', 'a new size keeps what fits');
    gw.apply(config({ memorySize: 1024 * 1024, ttl: 10 }, true));
    assert.equal(cacheStatus(await get(gw.http, '/r')), 'MISS', 'entries stored under other rules are dropped');
    assert.equal(o.count, 2);
  });
});
