/**
 * @module control/gateway-metrics.test
 * Reading the gateways' per-route counters: one tenant's series only, sums over instances (histograms bucket
 * by bucket), scrapes that fail in every way a status port can (refused, an error status, a redirect, too slow,
 * too large, a line without end) reported per instance, one scrape round shared by concurrent and close
 * callers, a bound on scrapes at once, the instance records that are not read; and the dashboard's rates over
 * instances, which never go negative when a gateway restarts, leaves or misses a reading.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatewayMetrics, instanceTargets, scrapeRouteMetrics, sumRouteCounters, summarizeRouteMetrics, type RouteCounters } from './gateway-metrics.js';
import { baseline, rates, reporting, type InstanceReading, type MetricsReading } from '../../dashboard/src/metrics.js';

/** The per-route series of a gateway as its status port writes them (bounds in seconds). */
function exposition(routes: Record<string, { byStatus: Record<string, number>; buckets?: Array<[string, number]>; sum?: number }>): string {
  const out = ['# HELP gatehouse_http_requests_total Requests answered, by route and status.', '# TYPE gatehouse_http_requests_total counter'];
  for (const [route, r] of Object.entries(routes)) for (const [s, n] of Object.entries(r.byStatus)) out.push(`gatehouse_http_requests_total{route="${route}",status="${s}"} ${n}`);
  out.push('# TYPE gatehouse_http_request_duration_seconds histogram');
  for (const [route, r] of Object.entries(routes)) {
    if (!r.buckets) continue;
    for (const [le, n] of r.buckets) out.push(`gatehouse_http_request_duration_seconds_bucket{route="${route}",le="${le}"} ${n}`);
    out.push(`gatehouse_http_request_duration_seconds_sum{route="${route}"} ${r.sum ?? 0}`);
    out.push(`gatehouse_http_request_duration_seconds_count{route="${route}"} ${r.buckets.at(-1)![1]}`);
  }
  out.push('gatehouse_connections_total 12', '');
  return out.join('\n');
}

interface StatusPort {
  url: string;
  scrapes: number;
  close(): Promise<void>;
}

async function statusPort(t: { after(fn: () => unknown): void }, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<StatusPort> {
  const server: Server = createServer((req, res) => {
    port.scrapes++;
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port: StatusPort = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    scrapes: 0,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  t.after(() => port.close());
  return port;
}

const serve = (text: string) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
  res.end(text);
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a tenant gets its own routes only: the label prefix up to the first dot is the tenant', () => {
  const text = exposition({
    'shop.users': { byStatus: { '200': 9 } },
    'shop.a.b': { byStatus: { '404': 1 } },
    'shop-x.users': { byStatus: { '200': 5 } },
    shopx: { byStatus: { '200': 5 } },
    '': { byStatus: { '404': 3 } },
    'shop.': { byStatus: { '200': 2 } },
  });
  assert.deepEqual(
    summarizeRouteMetrics(text, 'shop').map((r) => [r.id, r.requests]),
    [
      ['a.b', { '404': 1 }],
      ['users', { '200': 9 }],
    ],
  );
  assert.deepEqual(summarizeRouteMetrics(text, 'shop-x').map((r) => r.id), ['users']);
  assert.deepEqual(summarizeRouteMetrics(text, 'sho'), []);
});

test('a histogram is read whole even when written oddly: a bound twice, no +Inf bucket', () => {
  const text = [
    'gatehouse_http_request_duration_seconds_bucket{route="shop.users",le="0.005"} 3',
    'gatehouse_http_request_duration_seconds_bucket{route="shop.users",le="0.001"} 1',
    'gatehouse_http_request_duration_seconds_bucket{route="shop.users",le="0.005"} 4',
    'gatehouse_http_request_duration_seconds_count{route="shop.users"} 6',
    'gatehouse_http_request_duration_seconds_sum{route="shop.users"} 0.01',
    'gatehouse_http_requests_total{route="shop.users",status="200",__proto__="x"} 6',
    'gatehouse_http_requests_total{route="shop.users",status="2xx"} 6',
    'gatehouse_http_requests_total{route="shop.users",status="500"} NaN',
  ].join('\n');
  assert.deepEqual(summarizeRouteMetrics(text, 'shop'), [{ id: 'users', requests: { '200': 6 }, latency: { bucketsMs: [1, 5], counts: [1, 4, 6], sumMs: 10, count: 6 } }]);
});

test('routes of several instances add up: requests by status, and histograms bucket by bucket even with other bounds', () => {
  const a: RouteCounters[] = [
    { id: 'users', requests: { '200': 7, '502': 1 }, latency: { bucketsMs: [1, 5, 10], counts: [2, 6, 8, 8], sumMs: 20.5, count: 8 } },
    { id: 'only-a', requests: { '200': 1 }, latency: { bucketsMs: [1, 5, 10], counts: [1, 1, 1, 1], sumMs: 0.5, count: 1 } },
  ];
  const b: RouteCounters[] = [{ id: 'users', requests: { '200': 4 }, latency: { bucketsMs: [1, 5, 10], counts: [1, 3, 4, 4], sumMs: 10, count: 4 } }];
  const sum = sumRouteCounters([a, b]);
  assert.deepEqual(sum.map((r) => r.id), ['only-a', 'users']);
  const users = sum.find((r) => r.id === 'users')!;
  assert.deepEqual(users.requests, { '200': 11, '502': 1 });
  assert.deepEqual(users.latency, { bucketsMs: [1, 5, 10], counts: [3, 9, 12, 12], sumMs: 30.5, count: 12 });
  // Another bound set (an instance of another version): each counted at its highest bound not above.
  const c: RouteCounters[] = [{ id: 'users', requests: { '200': 3 }, latency: { bucketsMs: [2, 10], counts: [1, 3, 3], sumMs: 9, count: 3 } }];
  assert.deepEqual(sumRouteCounters([b, c])[0]!.latency, { bucketsMs: [1, 2, 5, 10], counts: [1, 2, 4, 7, 7], sumMs: 19, count: 7 });
  assert.deepEqual(sumRouteCounters([]), []);
});

test('a scrape reads the per-route series as they arrive, and fails with a reason on every kind of bad answer', async (t) => {
  const limits = { timeoutMs: 1000, maxBytes: 64 * 1024 };
  const good = await statusPort(t, (_req, res) => {
    // In pieces, a line and a multi-byte label split across them.
    res.writeHead(200);
    const text = exposition({ 'shop.caf\u00e9': { byStatus: { '200': 3 }, buckets: [['0.001', 1], ['0.005', 3], ['+Inf', 3]], sum: 0.004 } });
    const cut = text.indexOf('\u00e9') + 1;
    const bytes = Buffer.from(text);
    const at = Buffer.byteLength(text.slice(0, cut)) - 1;
    res.write(bytes.subarray(0, at));
    setTimeout(() => res.end(bytes.subarray(at)), 20);
  });
  const byTenant = await scrapeRouteMetrics(good.url, limits);
  assert.deepEqual(byTenant.get('shop'), [{ id: 'caf\u00e9', requests: { '200': 3 }, latency: { bucketsMs: [1, 5], counts: [1, 3, 3], sumMs: 4, count: 3 } }]);

  const failing = await statusPort(t, (_req, res) => {
    res.writeHead(500);
    res.end('{"error":{}}');
  });
  await assert.rejects(scrapeRouteMetrics(failing.url, limits), /answered HTTP 500/);

  const redirect = await statusPort(t, (_req, res) => {
    res.writeHead(302, { location: good.url + '/metrics' });
    res.end();
  });
  const goodScrapes = good.scrapes;
  await assert.rejects(scrapeRouteMetrics(redirect.url, limits), /answered HTTP 302/);
  assert.equal(good.scrapes, goodScrapes, 'the redirect is not followed');

  const slow = await statusPort(t, (_req, res) => {
    res.writeHead(200);
    res.write('gatehouse_http_requests_total{route="shop.users",status="200"} 1\n');
    // ...and never ends
  });
  await assert.rejects(scrapeRouteMetrics(slow.url, { ...limits, timeoutMs: 200 }), /no complete \/metrics answer within 200 ms/);

  const silent = await statusPort(t, () => {
    /* accepts, never answers */
  });
  await assert.rejects(scrapeRouteMetrics(silent.url, { ...limits, timeoutMs: 200 }), /within 200 ms/);

  const huge = await statusPort(t, (_req, res) => {
    res.writeHead(200);
    const line = 'gatehouse_http_requests_total{route="shop.users",status="200"} 1\n'.repeat(100);
    let sent = 0;
    const more = () => {
      while (sent < 200 && res.write(line)) sent++;
      if (sent < 200 && !res.destroyed) res.once('drain', more);
      else res.end();
    };
    more();
  });
  await assert.rejects(scrapeRouteMetrics(huge.url, limits), /larger than 65536 bytes/);

  const declared = await statusPort(t, (_req, res) => {
    res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) });
    res.write('x');
  });
  await assert.rejects(scrapeRouteMetrics(declared.url, limits), /larger than 65536 bytes/);

  const endless = await statusPort(t, (_req, res) => {
    res.writeHead(200);
    res.end(`gatehouse_http_requests_total{route="shop.${'x'.repeat(70 * 1024)}",status="200"} 1\n`);
  });
  await assert.rejects(scrapeRouteMetrics(endless.url, { ...limits, maxBytes: 1024 * 1024 }), /a line longer than 65536 characters/);

  const cut = await statusPort(t, (req, res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('gatehouse_http_requests_total{route="shop.users",status="200"} 1\n');
    setTimeout(() => req.socket.destroy(), 20);
  });
  await assert.rejects(scrapeRouteMetrics(cut.url, limits), /cut off|ECONNRESET/);

  const closed = good.url;
  await good.close();
  await assert.rejects(scrapeRouteMetrics(closed, limits), /refused the connection/);
});

test('a reading sums the instances that answered, lists each with its own counters, and reports the others', async (t) => {
  const a = await statusPort(t, serve(exposition({ 'shop.users': { byStatus: { '200': 7 }, buckets: [['0.001', 7], ['+Inf', 7]], sum: 0.002 }, 'other.secret': { byStatus: { '200': 50 } } })));
  const b = await statusPort(t, serve(exposition({ 'shop.users': { byStatus: { '200': 4, '503': 1 }, buckets: [['0.001', 2], ['+Inf', 5]], sum: 0.5 } })));
  const down = await statusPort(t, serve(''));
  const downUrl = down.url;
  await down.close();
  const metrics = new GatewayMetrics({
    cacheMs: 0,
    targets: async () => [
      { id: 'gw-b', startedAt: '2026-01-01T00:00:00.000Z', statusUrl: b.url },
      { id: 'gw-a', startedAt: '2026-01-01T00:00:01.000Z', statusUrl: a.url },
      { id: 'gw-c', startedAt: null, statusUrl: downUrl },
      { id: 'gw-old', startedAt: null, statusUrl: null, problem: 'it advertises no status address' },
    ],
  });
  const m = await metrics.read('shop');
  assert.deepEqual(m.routes, [{ id: 'users', requests: { '200': 11, '503': 1 }, latency: { bucketsMs: [1], counts: [9, 12], sumMs: 502, count: 12 } }]);
  assert.deepEqual(
    m.instances.map((i) => [i.id, i.ok, i.startedAt, i.routes.map((r) => r.requests)]),
    [
      ['gw-a', true, '2026-01-01T00:00:01.000Z', [{ '200': 7 }]],
      ['gw-b', true, '2026-01-01T00:00:00.000Z', [{ '200': 4, '503': 1 }]],
      ['gw-c', false, null, []],
      ['gw-old', false, null, []],
    ],
  );
  assert.match(m.instances[2]!.error!, /refused the connection \(http:\/\/127\.0\.0\.1:\d+\)/);
  assert.equal(m.instances[3]!.error, 'it advertises no status address');
  for (const i of m.instances) assert.ok(Date.parse(i.at) > 0);
  assert.equal(JSON.stringify(m).includes('secret'), false, "another tenant's route is in no part of the answer");
  assert.deepEqual((await metrics.read('other')).routes.map((r) => r.id), ['secret']);
  assert.deepEqual((await metrics.read('nobody')).routes, []);
});

test('one scrape round serves concurrent callers and every caller within cacheMs; later callers get a new one', async (t) => {
  let requests = 1;
  const port = await statusPort(t, (_req, res) => {
    setTimeout(() => serve(exposition({ 'shop.users': { byStatus: { '200': requests++ } } }))(_req, res), 30);
  });
  let listed = 0;
  const metrics = new GatewayMetrics({
    cacheMs: 300,
    targets: async () => {
      listed++;
      return [{ id: 'gw-a', startedAt: null, statusUrl: port.url }];
    },
  });
  const [x, y, z] = await Promise.all([metrics.read('shop'), metrics.read('shop'), metrics.read('other')]);
  assert.equal(port.scrapes, 1);
  assert.equal(listed, 1);
  assert.deepEqual(x, y);
  assert.deepEqual(z.routes, []);
  await metrics.read('shop');
  assert.equal(port.scrapes, 1, 'within cacheMs of the last round');
  await sleep(350);
  const later = await metrics.read('shop');
  assert.equal(port.scrapes, 2);
  assert.deepEqual(later.routes[0]!.requests, { '200': 2 });
});

test('a failing instance list fails the reading, and is not kept', async (t) => {
  const port = await statusPort(t, serve(exposition({ 'shop.users': { byStatus: { '200': 1 } } })));
  let fail = true;
  const metrics = new GatewayMetrics({
    targets: async () => {
      if (fail) throw new Error('etcd is unreachable');
      return [{ id: 'gw-a', startedAt: null, statusUrl: port.url }];
    },
  });
  await assert.rejects(metrics.read('shop'), /etcd is unreachable/);
  fail = false;
  assert.equal((await metrics.read('shop')).instances[0]!.ok, true);
});

test('no more scrapes than `concurrency` run at once, and a slow instance holds back no other', async (t) => {
  let inFlight = 0;
  let most = 0;
  const ports: StatusPort[] = [];
  for (let i = 0; i < 6; i++) {
    ports.push(
      await statusPort(t, (req, res) => {
        inFlight++;
        most = Math.max(most, inFlight);
        setTimeout(() => {
          inFlight--;
          serve(exposition({ 'shop.r': { byStatus: { '200': 1 } } }))(req, res);
        }, 40);
      }),
    );
  }
  const stuck = await statusPort(t, () => {
    /* never answers */
  });
  const targets = ports.map((p, i) => ({ id: `gw-${i}`, startedAt: null, statusUrl: p.url }));
  const all = await new GatewayMetrics({ concurrency: 2, targets: async () => targets }).read('shop');
  assert.equal(all.routes[0]!.requests['200'], 6);
  assert.equal(most, 2, 'two at once, never more');
  // The stuck instance (read first: ids are read in order) holds one of the two slots until it times out; the
  // other slot reads the rest, one at a time.
  most = 0;
  const metrics = new GatewayMetrics({ concurrency: 2, timeoutMs: 600, targets: async () => [{ id: 'a-stuck', startedAt: null, statusUrl: stuck.url }, ...targets] });
  const m = await metrics.read('shop');
  assert.equal(most, 1);
  assert.equal(m.routes[0]!.requests['200'], 6);
  assert.deepEqual(
    m.instances.filter((i) => !i.ok).map((i) => i.id),
    ['a-stuck'],
  );
  assert.match(m.instances.find((i) => i.id === 'a-stuck')!.error!, /within 600 ms/);
});

test('instance records that cannot be read are reported with the reason, not read', () => {
  const targets = instanceTargets(
    [
      { id: 'a', hostname: 'cp-host', startedAt: 's1', statusUrl: 'http://127.0.0.1:9091' },
      { id: 'b', hostname: 'gw-host-2', startedAt: 's2', statusUrl: 'http://127.0.0.1:9091' },
      { id: 'c', hostname: 'gw-host-3', startedAt: 's3', statusUrl: 'http://10.0.0.3:9091' },
      { id: 'd', hostname: 'gw-host-4', startedAt: 's4', statusUrl: 'http://10.0.0.3:9091/' },
      { id: 'e', hostname: 'gw-host-5', startedAt: 's5', statusUrl: null },
      { id: 'f', hostname: 'gw-host-6', startedAt: 's6' },
      { id: 'g', hostname: 'gw-host-7', startedAt: 's7', statusUrl: 'file:///etc/passwd' },
      { id: 'h', hostname: 'gw-host-8', startedAt: 's8', statusUrl: 'http://10.0.0.8:9091/admin?x=1' },
      { id: 'i', hostname: 'gw-host-9', startedAt: 's9', statusUrl: 'http://user:pw@10.0.0.9:9091' },
      { id: 'j', hostname: 'gw-host-10', startedAt: 's10', statusUrl: 'http://[::1]:9091' },
      { id: 'k', hostname: 'gw-host-11', startedAt: 's11', statusUrl: 'http://[fd00::11]:9091' },
    ],
    'cp-host',
  );
  const by = Object.fromEntries(targets.map((x) => [x.id, x]));
  assert.equal(by.a!.statusUrl, 'http://127.0.0.1:9091', 'loopback on the same machine');
  assert.equal(by.a!.startedAt, 's1');
  assert.match(by.b!.problem!, /loopback status address http:\/\/127\.0\.0\.1:9091 from another machine \(gw-host-2\): set status\.host or status\.advertiseAddress/);
  assert.equal(by.c!.statusUrl, 'http://10.0.0.3:9091');
  assert.match(by.d!.problem!, /the same status address as c/);
  assert.match(by.e!.problem!, /advertises no status address/);
  assert.match(by.f!.problem!, /advertises no status address/);
  for (const id of ['g', 'h', 'i']) assert.match(by[id]!.problem!, /unusable status address/, id);
  assert.match(by.j!.problem!, /loopback/);
  assert.equal(by.k!.statusUrl, 'http://[fd00::11]:9091');
});

// ---- the dashboard's rates over instances

const bounds = [1, 5, 10];
const route = (ok: number, failed: number, cum: number[]): RouteCounters => ({
  id: 'users',
  requests: { '200': ok, '502': failed },
  latency: { bucketsMs: bounds, counts: cum, sumMs: 0, count: cum.at(-1)! },
});
const inst = (id: string, startedAt: string, at: string, routes: RouteCounters[] | null): InstanceReading =>
  routes === null ? { id, startedAt, at, ok: false, error: 'no complete /metrics answer within 2000 ms', routes: [] } : { id, startedAt, at, ok: true, routes };
const reading = (at: string, instances: InstanceReading[]): MetricsReading => ({ at, routes: sumRouteCounters(instances.filter((i) => i.ok).map((i) => i.routes)), instances });
const T = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

test('rates add up per instance: two gateways, each over its own interval', () => {
  const r1 = reading(T(10), [inst('a', T(0), T(10), [route(100, 0, [50, 100, 100, 100])]), inst('b', T(0), T(10), [route(40, 0, [40, 40, 40, 40])])]);
  const r2 = reading(T(20), [inst('a', T(0), T(20), [route(190, 10, [50, 100, 190, 200])]), inst('b', T(0), T(20), [route(90, 0, [90, 90, 90, 90])])]);
  const [r] = rates(r1, r2);
  assert.equal(r!.id, 'users');
  assert.equal(r!.rps, 15, '100 requests on a and 50 on b in 10 s');
  assert.equal(r!.errorRate, 10 / 150);
  assert.equal(r!.p99Ms, 10);
  assert.deepEqual(reporting(r2), { answered: 2, total: 2, missing: [] });
});

test('a gateway restart never makes a rate negative: the restarted instance counts from zero', () => {
  const r1 = reading(T(10), [inst('a', T(0), T(10), [route(1000, 0, [1000, 1000, 1000, 1000])]), inst('b', T(0), T(10), [route(500, 0, [500, 500, 500, 500])])]);
  // b restarted at T(12): a new start, 30 requests since; the cluster total fell from 1500 to 1130.
  const r2 = reading(T(20), [inst('a', T(0), T(20), [route(1100, 0, [1100, 1100, 1100, 1100])]), inst('b', T(12), T(20), [route(30, 0, [30, 30, 30, 30])])]);
  assert.ok(r2.routes[0]!.requests['200']! < r1.routes[0]!.requests['200']!, 'the summed counter dropped');
  const [r] = rates(r1, r2);
  assert.equal(r!.rps, 13, '100 on a and the 30 b counted since it started, in 10 s');
  assert.equal(r!.errorRate, 0);
});

test('an instance that leaves adds nothing, one not seen before waits a reading, one that missed a reading spans the gap', () => {
  const r1 = reading(T(10), [inst('a', T(0), T(10), [route(100, 0, [100, 100, 100, 100])]), inst('b', T(0), T(10), [route(100, 0, [100, 100, 100, 100])])]);
  // b left; c, running since before the last reading, is seen for the first time.
  const r2 = reading(T(20), [inst('a', T(0), T(20), [route(150, 0, [150, 150, 150, 150])]), inst('c', T(5), T(20), [route(5000, 0, [5000, 5000, 5000, 5000])])]);
  assert.equal(rates(r1, r2)[0]!.rps, 5, 'only a: 50 in 10 s');
  // Then a misses a reading (timed out), c goes on.
  const base2 = baseline(r1, r2);
  const r3 = reading(T(30), [inst('a', T(0), T(30), null), inst('c', T(5), T(30), [route(5100, 0, [5100, 5100, 5100, 5100])])]);
  assert.equal(rates(base2, r3)[0]!.rps, 10, 'only c: 100 in 10 s');
  assert.deepEqual(reporting(r3), { answered: 1, total: 2, missing: [{ id: 'a', error: 'no complete /metrics answer within 2000 ms' }] });
  // a answers again: its increase is over the 20 s since its last good reading.
  const base3 = baseline(base2, r3);
  assert.equal(base3.instances!.find((i) => i.id === 'a')!.at, T(20), "a's last good counters are kept");
  const r4 = reading(T(40), [inst('a', T(0), T(40), [route(350, 0, [350, 350, 350, 350])]), inst('c', T(5), T(40), [route(5200, 0, [5200, 5200, 5200, 5200])])]);
  assert.equal(rates(base3, r4)[0]!.rps, 200 / 20 + 10);
});

test('a counter that went down within one start counts from zero; no increase is ever negative', () => {
  const r1 = reading(T(10), [inst('a', T(0), T(10), [route(100, 5, [100, 105, 105, 105])])]);
  const r2 = reading(T(20), [inst('a', T(0), T(20), [route(20, 0, [20, 20, 20, 20])])]);
  const [r] = rates(r1, r2);
  assert.equal(r!.rps, 2);
  assert.equal(r!.errorRate, 0);
  assert.equal(r!.p99Ms, 0.99, 'the 20 new requests all under 1 ms');
  // One status's count lower while the total grew: that status adds nothing rather than a negative number.
  const r3 = reading(T(30), [inst('a', T(0), T(30), [{ ...route(40, 0, [40, 40, 40, 40]), requests: { '200': 40 } }])]);
  const r4 = reading(T(40), [inst('a', T(0), T(40), [{ ...route(60, 0, [60, 60, 60, 60]), requests: { '200': 30, '404': 30 } }])]);
  assert.equal(rates(r3, r4)[0]!.rps, 3);
  for (const x of [...rates(r1, r2), ...rates(r3, r4), ...rates(r2, r1)]) {
    assert.ok(x.rps >= 0 && x.errorRate >= 0, JSON.stringify(x));
  }
});

test('readings without instances (a single gateway) work as before', () => {
  const a = { at: T(0), routes: [route(100, 0, [50, 100, 100, 100])] };
  const b = { at: T(10), routes: [route(190, 10, [50, 100, 190, 200])] };
  const [r] = rates(a, b);
  assert.equal(r!.rps, 10);
  assert.equal(r!.errorRate, 0.1);
  assert.equal(reporting(b), null);
  assert.equal(baseline(a, b), b);
});
