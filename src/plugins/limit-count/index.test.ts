/**
 * @module plugins/limit-count/index.test
 * limit-count: schema and checks with field paths; traffic through an in-process gateway (headers, 429 with
 * Retry-After, keys by client, consumer and header, scopes and groups, several limits, counters kept across a
 * reload); the Redis policy against a real redis-server (two gateways sharing one counter, hashed keys, fail
 * open and fail closed while Redis is stopped, recovery). Window arithmetic with a fake clock is covered in
 * dataplane/limits/limits.test.ts; sharing across worker processes in test/limits-cluster.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { harness } from '../../../test/helpers/harness.js';
import { node } from '../../../test/helpers/upstream.js';
import { json, send, type Reply } from '../../../test/helpers/http.js';
import { redisSkip, TestRedis } from '../../../test/helpers/redis.js';
import { waitUntil } from '../../../test/helpers/cli.js';

const { upstream, gateway } = harness();

function problemsOf(plugin: unknown): string[] {
  const r = validateDeclarative(
    { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { 'limit-count': plugin } }] },
    builtinRegistry(),
  );
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

const P = 'routes[0].plugins.limit-count';

describe('limit-count schema', () => {
  it('accepts limits with seconds or named windows, keys, algorithms and the redis policy', () => {
    assert.deepEqual(problemsOf({ count: 100, timeWindow: 60, key: 'remote_addr', policy: 'local' }), [], 'the one-limit form of the declarative file');
    assert.deepEqual(problemsOf({ count: 100, timeWindow: 'day', key: 'consumer' }), []);
    assert.deepEqual(problemsOf({ limits: [{ count: 10, window: 60 }] }), []);
    assert.deepEqual(problemsOf({ limits: [{ count: 10, window: 'second' }, { count: 100000, window: 'month' }], key: ['consumer'] }), []);
    assert.deepEqual(problemsOf({ limits: [{ count: 5, window: 'minute' }], algorithm: 'sliding', key: ['remote_addr', 'header:X-Tenant', 'query:app', 'cookie:sid', 'route', 'service'] }), []);
    assert.deepEqual(problemsOf({ limits: [{ count: 5, window: 1 }], policy: 'redis', redis: { host: '127.0.0.1', password: 's3cret' }, onRedisFailure: 'reject', group: 'shared-1' }), []);
  });

  it('refuses bad configs with the field path', () => {
    assert.deepEqual(problemsOf({}), [`${P}.count: is required (with timeWindow), or give limits`]);
    assert.deepEqual(problemsOf({ count: 5 }), [`${P}.timeWindow: is required with count`]);
    assert.deepEqual(problemsOf({ timeWindow: 5 }), [`${P}.count: is required with timeWindow`]);
    assert.deepEqual(problemsOf({ count: 5, timeWindow: 5, limits: [{ count: 1, window: 1 }] }), [`${P}.limits: give either count and timeWindow or limits, not both`]);
    assert.ok(problemsOf({ count: 5, timeWindow: 5, key: 'ip' }).some((p) => p.startsWith(`${P}.key`)), 'ip is not a key part: remote_addr is');
    assert.deepEqual(problemsOf({ count: 1, timeWindow: 'year', algorithm: 'sliding' }), [`${P}.timeWindow: a sliding window cannot be a calendar month or year`]);
    assert.ok(problemsOf({ limits: [] }).some((p) => p.startsWith(`${P}.limits:`)));
    assert.ok(problemsOf({ limits: [{ count: 0, window: 1 }] }).some((p) => p.startsWith(`${P}.limits[0].count:`)));
    assert.ok(problemsOf({ limits: [{ count: 1, window: 'fortnight' }] }).some((p) => p.startsWith(`${P}.limits[0].window`)));
    assert.ok(problemsOf({ limits: [{ count: 1, window: 1 }], key: ['header:'] }).some((p) => p.startsWith(`${P}.key[0]`)));
    assert.ok(problemsOf({ limits: [{ count: 1, window: 1 }], key: ['remote_addr', 'remote_addr'] }).some((p) => p.startsWith(`${P}.key`)));
    assert.deepEqual(problemsOf({ limits: [{ count: 1, window: 1 }], policy: 'redis' }), [`${P}.redis: is required with policy redis`]);
    assert.deepEqual(problemsOf({ limits: [{ count: 1, window: 1 }], redis: { host: 'r' } }), [`${P}.redis: is only used with policy redis`]);
    assert.deepEqual(problemsOf({ limits: [{ count: 1, window: 'month' }], algorithm: 'sliding' }), [`${P}.limits[0].window: a sliding window cannot be a calendar month or year`]);
    assert.deepEqual(problemsOf({ limits: [{ count: 1, window: 60 }, { count: 5, window: 'minute' }] }), [`${P}.limits[1].window: another limit has the same window`]);
    assert.ok(problemsOf({ limits: [{ count: 1, window: 1 }], rejectedStatus: 200 }).some((p) => p.startsWith(`${P}.rejectedStatus`)));
  });
});

/** A route config with limit-count (a day window: no boundary falls inside a test run in practice). */
function config(port: number, plugin: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    upstreams: [{ id: 'u', nodes: [node(port)] }],
    routes: [
      { id: 'a', paths: ['/a'], upstreamId: 'u', plugins: { 'limit-count': plugin } },
      { id: 'b', paths: ['/b'], upstreamId: 'u', plugins: { 'limit-count': plugin } },
    ],
    ...extra,
  };
}

async function statuses(port: number, path: string, n: number, headers: Record<string, string> = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await send(port, path, { headers })).status);
  return out;
}

describe('limit-count traffic (policy local)', () => {
  it('sends RateLimit headers, then 429 with Retry-After and the JSON error once the limit is spent', async () => {
    const up = await upstream();
    const gw = await gateway(config(up.port, { count: 3, timeWindow: 86400, key: 'remote_addr', policy: 'local' }));
    const first = await send(gw.http, '/a');
    assert.equal(first.status, 200);
    assert.equal(first.headers['ratelimit-limit'], '3');
    assert.equal(first.headers['ratelimit-remaining'], '2');
    const reset = Number(first.headers['ratelimit-reset']);
    assert.ok(reset > 0 && reset <= 86400, `reset in seconds: ${reset}`);
    assert.deepEqual(await statuses(gw.http, '/a', 2), [200, 200]);
    const refused = await send(gw.http, '/a');
    assert.equal(refused.status, 429);
    assert.equal(json<{ error: { code: string } }>(refused).error.code, 'GH_ERR_RATE_LIMITED');
    assert.equal(refused.headers['ratelimit-remaining'], '0');
    assert.ok(Number(refused.headers['retry-after']) > 0);
    assert.equal(up.seen.length, 3, 'refused requests never reach the upstream');
  });

  it('each route counts on its own by default; a group shares one counter', async () => {
    const up = await upstream();
    const own = await gateway(config(up.port, { limits: [{ count: 2, window: 'day' }] }));
    assert.deepEqual([...(await statuses(own.http, '/a', 3)), ...(await statuses(own.http, '/b', 3))], [200, 200, 429, 200, 200, 429]);
    const grouped = await gateway(config(up.port, { limits: [{ count: 2, window: 'day' }], group: 'shared' }));
    assert.deepEqual([...(await statuses(grouped.http, '/a', 1)), ...(await statuses(grouped.http, '/b', 2))], [200, 200, 429]);
  });

  it('a limit on a service is shared by its routes', async () => {
    const up = await upstream();
    const gw = await gateway({
      upstreams: [{ id: 'u', nodes: [node(up.port)] }],
      services: [{ id: 's', upstreamId: 'u', plugins: { 'limit-count': { limits: [{ count: 2, window: 'day' }] } } }],
      routes: [
        { id: 'a', paths: ['/a'], serviceId: 's' },
        { id: 'b', paths: ['/b'], serviceId: 's' },
      ],
    });
    assert.deepEqual([...(await statuses(gw.http, '/a', 1)), ...(await statuses(gw.http, '/b', 2))], [200, 200, 429]);
  });

  it('keys by a header, falling back to the client address when it is missing', async () => {
    const up = await upstream();
    const gw = await gateway(config(up.port, { count: 1, timeWindow: 'day', key: 'header:X-Tenant' }));
    assert.deepEqual(await statuses(gw.http, '/a', 2, { 'x-tenant': 'one' }), [200, 429]);
    assert.deepEqual(await statuses(gw.http, '/a', 2, { 'x-tenant': 'two' }), [200, 429]);
    assert.deepEqual(await statuses(gw.http, '/a', 2), [200, 429], 'no header: counted per client address');
  });

  it('per-consumer quotas: a consumer config replaces the route\'s, and counts across routes', async () => {
    const up = await upstream();
    const gw = await gateway({
      upstreams: [{ id: 'u', nodes: [node(up.port)] }],
      consumers: [
        { username: 'alice', credentials: { 'key-auth': { key: 'alice-key-0001' } } },
        {
          username: 'bob',
          credentials: { 'key-auth': { key: 'bob-key-00000001' } },
          plugins: { 'limit-count': { limits: [{ count: 3, window: 'month' }], key: ['consumer'] } },
        },
      ],
      routes: [
        { id: 'a', paths: ['/a'], upstreamId: 'u', plugins: { 'key-auth': {}, 'limit-count': { limits: [{ count: 1, window: 'day' }], key: ['consumer'] } } },
        { id: 'b', paths: ['/b'], upstreamId: 'u', plugins: { 'key-auth': {}, 'limit-count': { limits: [{ count: 1, window: 'day' }], key: ['consumer'] } } },
      ],
    });
    const alice = { apikey: 'alice-key-0001' };
    const bob = { apikey: 'bob-key-00000001' };
    assert.deepEqual(await statuses(gw.http, '/a', 2, alice), [200, 429], 'alice: the route limit');
    const bobFirst = await send(gw.http, '/a', { headers: bob });
    assert.equal(bobFirst.headers['ratelimit-limit'], '3', 'bob: his own quota');
    assert.deepEqual([...(await statuses(gw.http, '/b', 2, bob)), ...(await statuses(gw.http, '/a', 1, bob))], [200, 200, 429], 'bob\'s quota spans routes');
    assert.equal((await send(gw.http, '/a')).status, 401, 'auth still comes first');
  });

  it('several limits: the tightest is reported, and the first spent refuses', async () => {
    const up = await upstream();
    const gw = await gateway(config(up.port, { limits: [{ count: 5, window: 'day' }, { count: 2, window: 'year' }] }));
    const r = await send(gw.http, '/a');
    assert.deepEqual([r.headers['ratelimit-limit'], r.headers['ratelimit-remaining']], ['2', '1']);
    assert.deepEqual(await statuses(gw.http, '/a', 2), [200, 429]);
  });

  it('counters survive a config reload; changing the window starts new ones', async () => {
    const up = await upstream();
    const cfg = config(up.port, { limits: [{ count: 2, window: 'day' }] });
    const gw = await gateway(cfg);
    assert.deepEqual(await statuses(gw.http, '/a', 2), [200, 200]);
    gw.apply(config(up.port, { limits: [{ count: 2, window: 'day' }] }, { globalPlugins: { 'request-id': {} } }));
    assert.deepEqual(await statuses(gw.http, '/a', 1), [429], 'same limit after an unrelated change');
    gw.apply(config(up.port, { limits: [{ count: 3, window: 'day' }] }));
    assert.deepEqual(await statuses(gw.http, '/a', 1), [200], 'a higher count applies to the same counter');
    gw.apply(config(up.port, { limits: [{ count: 2, window: 'year' }] }));
    assert.deepEqual(await statuses(gw.http, '/a', 3), [200, 200, 429], 'a new window counts afresh');
  });

  it('headers: false sends none; a custom status and message', async () => {
    const up = await upstream();
    const gw = await gateway(config(up.port, { limits: [{ count: 1, window: 'day' }], headers: false, rejectedStatus: 503, rejectedMessage: 'slow down' }));
    const ok = await send(gw.http, '/a');
    assert.equal(ok.headers['ratelimit-limit'], undefined);
    const refused = await send(gw.http, '/a');
    assert.equal(refused.status, 503);
    assert.deepEqual(json(refused), { error: { code: 'GH_ERR_RATE_LIMITED', message: 'slow down' } });
    assert.equal(refused.headers['retry-after'], undefined);
  });
});

describe('limit-count policy redis (real redis-server)', { skip: redisSkip() }, () => {
  let redis: TestRedis;
  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis.stop();
  });

  const redisPlugin = (extra: Record<string, unknown> = {}) => ({
    limits: [{ count: 4, window: 'day' }],
    policy: 'redis',
    redis: { host: '127.0.0.1', port: redis.port, timeout: 300 },
    ...extra,
  });

  it('two gateways share one counter; keys in Redis hold a hash, never the key material', async () => {
    const up = await upstream();
    const plugin = redisPlugin({ key: ['header:X-Api-Key'], group: 'two-gateways' });
    const g1 = await gateway(config(up.port, plugin));
    const g2 = await gateway(config(up.port, plugin));
    await waitUntil('both connected', 5000, async () => ((await send(g1.http, '/a', { headers: { 'x-api-key': 'warmup' } })).headers['ratelimit-limit'] ? true : undefined));
    const h = { 'x-api-key': 'very-secret-api-key' };
    const got: Reply[] = [];
    for (let i = 0; i < 3; i++) {
      got.push(await send(g1.http, '/a', { headers: h }));
      got.push(await send(g2.http, '/a', { headers: h }));
    }
    assert.deepEqual(
      got.map((r) => r.status),
      [200, 200, 200, 200, 429, 429],
    );
    assert.deepEqual(
      got.slice(0, 4).map((r) => r.headers['ratelimit-remaining']),
      ['3', '2', '1', '0'],
    );
    const keys = await redis.command('KEYS', '*');
    assert.match(keys, /gatehouse:limit-count:\{/);
    assert.ok(!keys.includes('very-secret-api-key') && !keys.includes('two-gateways'), 'no key material in Redis');
  });

  it('while Redis is stopped: fail open lets requests through, fail closed answers 503, neither stalls; then it recovers', async () => {
    const up = await upstream();
    const open = await gateway(config(up.port, redisPlugin({ group: 'outage-open' })));
    const closed = await gateway(config(up.port, redisPlugin({ group: 'outage-closed', onRedisFailure: 'reject' })));
    await waitUntil('connected', 5000, async () => ((await send(open.http, '/a')).headers['ratelimit-limit'] ? true : undefined));
    await waitUntil('connected', 5000, async () => ((await send(closed.http, '/a')).status === 200 ? true : undefined));
    await redis.stop();
    const during = await Promise.all([send(open.http, '/a'), send(open.http, '/b'), send(closed.http, '/a'), send(closed.http, '/b')]);
    assert.deepEqual(
      during.map((r) => r.status),
      [200, 200, 503, 503],
    );
    assert.equal(during[0]!.headers['ratelimit-limit'], undefined, 'no limit headers when nothing was counted');
    assert.equal(json<{ error: { code: string } }>(during[2]!).error.code, 'GH_ERR_RATE_LIMIT_UNAVAILABLE');
    assert.ok(!during[2]!.body.includes(String(redis.port)) && !during[2]!.body.includes('127.0.0.1'), 'no server details in the error');
    await redis.start();
    await waitUntil('counting again after Redis is back', 10_000, async () => ((await send(closed.http, '/b')).headers['ratelimit-limit'] ? true : undefined), 100);
  });

  it('a server that does not answer in time counts as failed (timeout), not a stalled request', async () => {
    const up = await upstream();
    const gw = await gateway(config(up.port, redisPlugin({ group: 'paused', onRedisFailure: 'reject', redis: { host: '127.0.0.1', port: redis.port, timeout: 200 } })));
    await waitUntil('connected', 5000, async () => ((await send(gw.http, '/a')).status === 200 ? true : undefined));
    // DEBUG SLEEP blocks the server for longer than the timeout.
    const blocker = redis.command('DEBUG', 'SLEEP', '1.5');
    await new Promise((r) => setTimeout(r, 200)); // the server is asleep by now
    const r = await send(gw.http, '/a', { timeout: 1200 });
    assert.equal(r.status, 503);
    await blocker;
  });
});
