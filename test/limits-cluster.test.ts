/**
 * @module test/limits-cluster
 * The limit plugins with `policy: local` in a real multi-worker gateway (the `gatehouse` command, two worker
 * processes): one limit for the whole gateway, not one per worker. Requests go on fresh connections, many at a
 * time, so both workers serve them; the totals must still be exact. And limit-count with `policy: redis` shared
 * by two separate gateway processes through a real redis-server, which is then stopped and started again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Gatehouse, get, sleep, waitUntil } from './helpers/cli.js';
import { redisSkip, TestRedis } from './helpers/redis.js';
import { startUpstream, node } from './helpers/upstream.js';

function yaml(upstreamPort: number): string {
  return JSON.stringify({
    upstreams: [{ id: 'u', nodes: [node(upstreamPort)] }],
    routes: [
      { id: 'count', paths: ['/count'], upstreamId: 'u', plugins: { 'limit-count': { limits: [{ count: 50, window: 'day' }] } } },
      { id: 'conn', paths: ['/conn'], upstreamId: 'u', plugins: { 'limit-conn': { max: 3 } } },
      { id: 'req', paths: ['/req'], upstreamId: 'u', plugins: { 'limit-req': { rate: 1, burst: 4, nodelay: true } } },
    ],
  });
}

test('limit-count, limit-conn and limit-req hold for the whole gateway across two workers', { timeout: 60_000 }, async (t) => {
  let holding: Array<() => void> = [];
  const up = await startUpstream((req, res) => {
    if (req.url === '/conn') {
      // Hold /conn requests until the test lets them go.
      holding.push(() => res.end('done'));
      return;
    }
    res.end('ok');
  });
  t.after(() => up.close());
  const gw = await Gatehouse.start(t, yaml(up.port), { workers: 2 });

  // limit-count: 80 requests, 10 at a time, on new connections: exactly 50 pass.
  const codes: number[] = [];
  for (let i = 0; i < 8; i++) {
    const batch = await Promise.all(Array.from({ length: 10 }, () => get(gw.proxyPort, '/count')));
    codes.push(...batch.map((r) => r.status));
  }
  assert.equal(codes.filter((c) => c === 200).length, 50, `exactly the limit passes: ${codes.join(',')}`);
  assert.equal(codes.filter((c) => c === 429).length, 30);

  // limit-conn: 8 concurrent requests held by the upstream: 3 in flight, 5 refused at once.
  const inflight = Array.from({ length: 8 }, () => get(gw.proxyPort, '/conn', 15_000));
  const refused: number[] = [];
  await Promise.race([
    Promise.all(inflight.map((p) => p.then((r) => r.status === 429 && refused.push(r.status)))),
    (async () => {
      for (let i = 0; i < 200 && refused.length < 5; i++) await sleep(25);
    })(),
  ]);
  assert.equal(refused.length, 5, 'five refused while three are held');
  // The three let through may still be on their way to the upstream.
  for (let i = 0; i < 200 && holding.length < 3; i++) await sleep(25);
  assert.equal(holding.length, 3, 'three reached the upstream');
  for (const h of holding) h();
  holding = [];
  const done = await Promise.all(inflight);
  assert.equal(done.filter((r) => r.status === 200).length, 3);
  // The slots were given back: three more can be in flight again. A slot is released when the worker closes the
  // response, by a message to the primary, so the client can see the end of its response a moment before.
  await sleep(200);
  const again = Array.from({ length: 3 }, () => get(gw.proxyPort, '/conn', 15_000));
  for (let i = 0; i < 200 && holding.length < 3; i++) await sleep(25);
  assert.equal(holding.length, 3, 'slots released when the responses ended');
  for (const h of holding) h();
  assert.deepEqual((await Promise.all(again)).map((r) => r.status), [200, 200, 200]);

  // limit-req: rate 1/s with a burst of 4 and nodelay: of 12 quick requests, 5 pass (within a second or so,
  // one more may drain in).
  const req = await Promise.all(Array.from({ length: 12 }, () => get(gw.proxyPort, '/req')));
  const passed = req.filter((r) => r.status === 200).length;
  assert.ok(passed >= 5 && passed <= 6, `burst + 1 pass across both workers, got ${passed}`);
  assert.ok(req.filter((r) => r.status === 429).every((r) => Number(r.headers['retry-after']) >= 1));
});

test('limit-count policy redis: two gateway processes share one counter; Redis stopped: fail open, then recovery', { timeout: 60_000, skip: redisSkip() }, async (t) => {
  const redis = await TestRedis.start();
  t.after(() => redis.stop());
  const up = await startUpstream((_req, res) => res.end('ok'));
  t.after(() => up.close());
  const routes = JSON.stringify({
    upstreams: [{ id: 'u', nodes: [node(up.port)] }],
    routes: [
      {
        id: 'shared',
        paths: ['/shared'],
        upstreamId: 'u',
        plugins: { 'limit-count': { count: 6, timeWindow: 'day', policy: 'redis', group: 'two-processes', redis: { host: '127.0.0.1', port: redis.port, timeout: 300 } } },
      },
    ],
  });
  const a = await Gatehouse.start(t, routes, { workers: 1 });
  const b = await Gatehouse.start(t, routes, { workers: 1 });
  const codes: number[] = [];
  for (let i = 0; i < 5; i++) {
    codes.push((await get(a.proxyPort, '/shared')).status);
    codes.push((await get(b.proxyPort, '/shared')).status);
  }
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 200, 429, 429, 429, 429], 'six in all, across both processes');
  await redis.stop();
  const during = await Promise.all([get(a.proxyPort, '/shared'), get(b.proxyPort, '/shared')]);
  assert.deepEqual(during.map((r) => r.status), [200, 200], 'fail open (the default) while Redis is down, without stalling');
  await redis.start();
  // A fresh Redis has no counters: counting starts again once the gateways reconnect.
  const back = await waitUntil('counting again', 10_000, async () => {
    const r = await get(a.proxyPort, '/shared');
    return r.headers['ratelimit-remaining'] !== undefined ? r : undefined;
  }, 100);
  assert.equal(back.status, 200);
});
