/**
 * @module plugins/prometheus/index.test
 * prometheus: the schema (defaults, refused configs with their paths, no consumer scope), then real traffic
 * through an in-process gateway with its status server: counts by route, service, consumer and status;
 * bandwidth equal to the bodies sent; cumulative histograms whose count matches; upstream latency per node;
 * consumerLabel and metrics options; 499 for clients that leave; a global config and reloads. Then the store:
 * merging dumps as the primary does (across workers, a dead worker's last dump, over JSON as IPC sends them),
 * label escaping, `promtool check metrics` on the real output, and a two-worker gateway aggregating the
 * plugin's series and keeping them when a worker is replaced.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'node:http';
import { parse } from 'yaml';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { Metrics, mergeDumps, renderPrometheus, TRAFFIC_BANDWIDTH, TRAFFIC_REQUESTS, type MetricsDump } from '../../status/metrics.js';
import { harness } from '../../../test/helpers/harness.js';
import { node, type TestUpstream } from '../../../test/helpers/upstream.js';
import { send, type Reply } from '../../../test/helpers/http.js';
import { childPids, Gatehouse, get, metricValue, parsePrometheus, waitUntil, type Sample } from '../../../test/helpers/cli.js';
import type { InProcessGateway } from '../../process/in-process.js';
import { skipUnlessPresent } from '../../../test/helpers/required.js';

const { upstream, gateway } = harness();
const P = 'routes[0].plugins.prometheus';
const ALL = ['requests', 'latency', 'upstreamLatency', 'bandwidth', 'nodeLatency'];

function validate(plugins: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return validateDeclarative(
    { upstreams: [{ id: 'app', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'app', plugins }], ...extra },
    builtinRegistry(),
  );
}

function problemsOf(config: unknown): string[] {
  const r = validate({ prometheus: config });
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

// ---------------------------------------------------------------------------------------------------------
// promtool: required in CI (the Debian package `prometheus` ships it), may be missing on a laptop.

function hasPromtool(): boolean {
  const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  return r.status === 0;
}

/** Run `promtool check metrics` on `text`; null when promtool is missing outside CI (the caller skips). */
function promtool(t: { skip(msg: string): void }, text: string): { status: number | null; output: string } | null {
  const why = skipUnlessPresent(hasPromtool() ? null : 'promtool is not installed (Debian package prometheus)');
  if (why) {
    t.skip(why);
    return null;
  }
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

// ---------------------------------------------------------------------------------------------------------

describe('prometheus schema', () => {
  it('fills defaults: consumer label on, every series', () => {
    const r = validate({ prometheus: {} });
    assert.ok(r.ok);
    assert.deepEqual((r.value.routes[0] as { plugins: Record<string, unknown> }).plugins.prometheus, { consumerLabel: true, metrics: ALL });
  });

  it('refuses bad configs with the field path', () => {
    assert.deepEqual(problemsOf({ consumerLabel: false, metrics: ['requests', 'bandwidth'] }), []);
    assert.deepEqual(problemsOf({ metrics: [] }), [`${P}.metrics: must NOT have fewer than 1 items`]);
    assert.deepEqual(problemsOf({ metrics: ['requests', 'requests'] }), [`${P}.metrics: must NOT have duplicate items (items ## 1 and 0 are identical)`]);
    assert.deepEqual(problemsOf({ metrics: ['requests', 'status'] }), [
      `${P}.metrics[1]: must be one of "requests", "latency", "upstreamLatency", "bandwidth", "nodeLatency"`,
    ]);
    assert.deepEqual(problemsOf({ consumerLabel: 'yes' }), [`${P}.consumerLabel: must be boolean`]);
    assert.ok(problemsOf({ prefix: 'x' }).some((p) => p.startsWith(P)));
  });

  it('may be global or on a service, not on a consumer', () => {
    assert.ok(validate({}, { globalPlugins: { prometheus: {} } }).ok);
    assert.ok(validate({}, { services: [{ id: 's', upstreamId: 'app', plugins: { prometheus: {} } }] }).ok);
    const r = validate({}, { consumers: [{ username: 'c', plugins: { prometheus: {} } }] });
    assert.ok(!r.ok);
    assert.deepEqual(r.problems, [{ path: 'consumers[0].plugins.prometheus', message: '"prometheus" cannot be configured on a consumer (only on: global, service, route)' }]);
  });

  it('the examples in docs/plugins/prometheus.md are valid', () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/prometheus.md', import.meta.url), 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1]!) as Record<string, unknown>);
    const configs = blocks.filter((b) => 'routes' in b || 'globalPlugins' in b);
    assert.ok(configs.length >= 1, 'the doc has a config example');
    for (const c of configs) {
      const r = validateDeclarative(c, builtinRegistry());
      assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

/** Upstream: /bytes/N answers N bytes, /status/404 answers 404 "nope", /slow answers after 350 ms, /hang after 3 s; bodies are read. */
function appHandler(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '').split('?')[0]!;
  const answer = (status: number, body: string) => {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const bytes = /\/bytes\/(\d+)$/.exec(path);
  if (bytes) return answer(200, 'x'.repeat(Number(bytes[1])));
  if (path.endsWith('/status/404')) return answer(404, 'nope');
  if (path.endsWith('/slow')) return void setTimeout(() => answer(200, 'slow'), 350).unref();
  if (path.endsWith('/hang')) return void setTimeout(() => answer(200, 'late'), 3000).unref();
  answer(200, 'ok');
}

const KEYS = { alice: 'alice-secret-key', bob: 'bob-secret-key' };

function trafficConfig(port: number): Record<string, unknown> {
  return {
    upstreams: [{ id: 'app', nodes: [node(port)] }],
    services: [{ id: 'billing', upstreamId: 'app', plugins: { 'key-auth': {}, prometheus: {} } }],
    consumers: [
      { username: 'alice', credentials: { 'key-auth': { key: KEYS.alice } } },
      { username: 'bob', credentials: { 'key-auth': { key: KEYS.bob } } },
    ],
    routes: [
      { id: 'open', paths: ['/open/*'], upstreamId: 'app', plugins: { prometheus: {} } },
      { id: 'billing', paths: ['/billing/*'], serviceId: 'billing' },
      { id: 'quiet', paths: ['/quiet/*'], upstreamId: 'app', plugins: { 'key-auth': {}, prometheus: { consumerLabel: false, metrics: ['requests'] } } },
      { id: 'plain', paths: ['/plain/*'], upstreamId: 'app' },
    ],
  };
}

async function scrape(gw: InProcessGateway): Promise<{ text: string; samples: Sample[] }> {
  const r = await get(gw.status!, '/metrics');
  assert.equal(r.status, 200);
  return { text: r.body, samples: parsePrometheus(r.body) };
}

/** Scrape until `ready` holds (the log phase runs just after each response), at most 5 s. */
async function scrapeUntil(gw: InProcessGateway, ready: (s: Sample[]) => boolean): Promise<{ text: string; samples: Sample[] }> {
  const end = Date.now() + 5000;
  for (;;) {
    const m = await scrape(gw);
    if (ready(m.samples) || Date.now() > end) return m;
    await new Promise((r) => setTimeout(r, 20));
  }
}

function sumOf(samples: Sample[], name: string, labels: Record<string, string>): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

const req = (route: string, service: string, consumer: string, status: string) => ({ route, service, consumer, status });
const series = (route: string, service: string, consumer: string) => ({ route, service, consumer });

describe('prometheus traffic', () => {
  let up: TestUpstream;
  let gw: InProcessGateway;
  let m: { text: string; samples: Sample[] };
  const egress = { open200: 0, open404: 0, alice: 0, anon401: 0 };
  const POSTED = 1000;

  before(async () => {
    up = await upstream(appHandler);
    gw = await gateway(trafficConfig(up.port), {}, { statusServer: true });
    const add = (r: Reply) => Buffer.byteLength(r.body);
    for (let i = 0; i < 3; i++) egress.open200 += add(await send(gw.http, '/open/bytes/100'));
    for (let i = 0; i < 2; i++) egress.open404 += add(await send(gw.http, '/open/status/404'));
    const posted = await send(gw.http, '/open/echo', { method: 'POST', body: Buffer.alloc(POSTED, 7) });
    assert.equal(posted.status, 200);
    egress.open200 += add(posted);
    egress.open200 += add(await send(gw.http, '/open/slow'));
    for (let i = 0; i < 2; i++) egress.alice += add(await send(gw.http, '/billing/bytes/10', { headers: { apikey: KEYS.alice } }));
    assert.equal((await send(gw.http, '/billing/bytes/10', { headers: { apikey: KEYS.bob } })).status, 200);
    const missing = await send(gw.http, '/billing/bytes/10');
    const wrong = await send(gw.http, '/billing/bytes/10', { headers: { apikey: 'not-a-key-at-all' } });
    assert.equal(missing.status, 401);
    assert.equal(wrong.status, 401);
    egress.anon401 = add(missing) + add(wrong);
    for (let i = 0; i < 2; i++) assert.equal((await send(gw.http, '/quiet/x', { headers: { apikey: KEYS.alice } })).status, 200);
    assert.equal((await send(gw.http, '/plain/x')).status, 200);
    m = await scrapeUntil(
      gw,
      (s) => sumOf(s, 'gatehouse_route_requests_total', {}) === 7 + 5 + 2 && (metricValue(s, 'gatehouse_http_requests_total', { route: 'plain', status: '200' }) ?? 0) === 1,
    );
  });

  it('counts requests by route, service, consumer and status', () => {
    const v = (l: Record<string, string>) => metricValue(m.samples, 'gatehouse_route_requests_total', l);
    assert.equal(v(req('open', '', '', '200')), 5, m.text);
    assert.equal(v(req('open', '', '', '404')), 2, m.text);
    // key-auth on the service: the consumer it identified, and the service label.
    assert.equal(v(req('billing', 'billing', 'alice', '200')), 2, m.text);
    assert.equal(v(req('billing', 'billing', 'bob', '200')), 1, m.text);
    // Refused by key-auth: counted, without a consumer.
    assert.equal(v(req('billing', 'billing', '', '401')), 2, m.text);
    // consumerLabel: false records the authenticated requests with consumer="".
    assert.equal(v(req('quiet', '', '', '200')), 2, m.text);
    assert.ok(!m.samples.some((s) => s.name.startsWith('gatehouse_route_') && s.labels.route === 'quiet' && s.labels.consumer !== ''), m.text);
    // A route without the plugin has only the gateway's own series.
    assert.ok(!m.samples.some((s) => s.labels.route === 'plain' && s.name !== 'gatehouse_http_requests_total' && !s.name.startsWith('gatehouse_http_request_duration') && !s.name.startsWith('gatehouse_upstream_response')), m.text);
    // The gateway's per-route series count the same requests.
    assert.equal(metricValue(m.samples, 'gatehouse_http_requests_total', { route: 'open', status: '200' }), 5);
  });

  it('counts body bytes: ingress equals the bodies sent, egress the bodies received', () => {
    const b = (l: Record<string, string>, type: string) => metricValue(m.samples, 'gatehouse_route_bandwidth_bytes_total', { ...l, type });
    assert.equal(b(req('open', '', '', '200'), 'ingress'), POSTED, m.text);
    assert.equal(b(req('open', '', '', '200'), 'egress'), egress.open200, m.text);
    assert.equal(b(req('open', '', '', '404'), 'ingress'), 0);
    assert.equal(b(req('open', '', '', '404'), 'egress'), egress.open404);
    assert.equal(egress.open404, 8);
    assert.equal(b(req('billing', 'billing', 'alice', '200'), 'egress'), egress.alice);
    assert.equal(egress.alice, 20);
    assert.equal(b(req('billing', 'billing', '', '401'), 'egress'), egress.anon401);
    assert.ok(egress.anon401 > 0);
  });

  it('latency histograms: cumulative buckets, count matching the requests, the slow request in its bucket', () => {
    const name = 'gatehouse_route_request_duration_seconds';
    const open = series('open', '', '');
    const buckets = m.samples.filter((s) => s.name === `${name}_bucket` && s.labels.route === 'open');
    assert.equal(buckets.length, 16, 'one series: 15 bounds and +Inf');
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'cumulative');
    assert.equal(metricValue(m.samples, `${name}_count`, open), 7);
    assert.equal(metricValue(m.samples, `${name}_bucket`, { ...open, le: '+Inf' }), 7);
    // /open/slow took at least 350 ms: it is above the 0.25 s bound and counted from 0.5 s on.
    assert.ok(metricValue(m.samples, `${name}_bucket`, { ...open, le: '0.25' })! <= 6, m.text);
    assert.ok(metricValue(m.samples, `${name}_sum`, open)! >= 0.35, m.text);
    assert.equal(metricValue(m.samples, `${name}_count`, series('billing', 'billing', '')), 2);
    // Upstream latency: only requests that reached the upstream (not the 401s).
    const upName = 'gatehouse_route_upstream_response_seconds';
    assert.equal(metricValue(m.samples, `${upName}_count`, open), 7);
    assert.equal(metricValue(m.samples, `${upName}_count`, series('billing', 'billing', 'alice')), 2);
    assert.equal(metricValue(m.samples, `${upName}_count`, series('billing', 'billing', '')), undefined, m.text);
    assert.ok(metricValue(m.samples, `${upName}_sum`, open)! >= 0.35);
    // No status label on histograms (see the doc: it would multiply their series).
    assert.ok(!m.samples.some((s) => s.name.startsWith(name) && 'status' in s.labels));
  });

  it('upstream latency per node, with the upstream key of gatehouse_upstream_node_healthy', () => {
    const labels = { upstream: 'upstream:app', node: `127.0.0.1:${up.port}` };
    // open (7) and billing (3) record node latency; quiet asked for requests only.
    assert.equal(metricValue(m.samples, 'gatehouse_upstream_node_response_seconds_count', labels), 10, m.text);
    assert.equal(metricValue(m.samples, 'gatehouse_upstream_node_healthy', labels), 1, m.text);
  });

  it('metrics: ["requests"] exports no histogram or bandwidth series for that route', () => {
    assert.ok(!m.samples.some((s) => s.labels.route === 'quiet' && s.name.startsWith('gatehouse_route_') && s.name !== 'gatehouse_route_requests_total'), m.text);
  });

  it('the output passes promtool check metrics', (t) => {
    const r = promtool(t, m.text);
    if (r === null) return;
    assert.equal(r.output, '', r.output);
    assert.equal(r.status, 0);
  });

  it('a client that leaves before the answer is counted as 499', async () => {
    await new Promise<void>((resolve, reject) => {
      const c = request({ host: '127.0.0.1', port: gw.http, path: '/open/hang', agent: false });
      c.on('error', () => resolve());
      c.on('response', () => reject(new Error('no answer was expected')));
      c.end();
      const seen = up.seen.length;
      const poll = setInterval(() => {
        if (up.seen.length > seen) {
          clearInterval(poll);
          c.destroy();
        }
      }, 10);
    });
    const after = await scrapeUntil(gw, (s) => metricValue(s, 'gatehouse_route_requests_total', req('open', '', '', '499')) === 1);
    assert.equal(metricValue(after.samples, 'gatehouse_route_requests_total', req('open', '', '', '499')), 1, after.text);
    assert.equal(metricValue(after.samples, 'gatehouse_route_bandwidth_bytes_total', { ...req('open', '', '', '499'), type: 'egress' }), 0);
  });
});

describe('prometheus global config and reloads', () => {
  it('a global config covers every route; a route config replaces it; counts survive reloads', async () => {
    const up = await upstream(appHandler);
    const base = {
      upstreams: [{ id: 'app', nodes: [node(up.port)] }],
      globalPlugins: { prometheus: { metrics: ['requests', 'bandwidth'] } },
      routes: [
        { id: 'a', paths: ['/a/*'], upstreamId: 'app' },
        { id: 'b', paths: ['/b/*'], upstreamId: 'app' },
      ],
    };
    const gw = await gateway(base, {}, { statusServer: true });
    await send(gw.http, '/a/x');
    await send(gw.http, '/b/x');
    let m = await scrapeUntil(gw, (s) => sumOf(s, 'gatehouse_route_requests_total', {}) === 2);
    assert.equal(metricValue(m.samples, 'gatehouse_route_requests_total', req('a', '', '', '200')), 1, m.text);
    assert.equal(metricValue(m.samples, 'gatehouse_route_requests_total', req('b', '', '', '200')), 1, m.text);
    assert.ok(!m.text.includes('gatehouse_route_request_duration_seconds'), 'latency not asked for');

    // Route b now has its own config (latency only); the counters of a and b keep going.
    const next = structuredClone(base) as typeof base & { routes: Array<Record<string, unknown>> };
    next.routes[1]!.plugins = { prometheus: { metrics: ['requests', 'latency'] } };
    gw.apply(next);
    await send(gw.http, '/a/x');
    await send(gw.http, '/b/x');
    m = await scrapeUntil(gw, (s) => sumOf(s, 'gatehouse_route_requests_total', {}) === 4);
    assert.equal(metricValue(m.samples, 'gatehouse_route_requests_total', req('a', '', '', '200')), 2, m.text);
    assert.equal(metricValue(m.samples, 'gatehouse_route_requests_total', req('b', '', '', '200')), 2, m.text);
    assert.equal(metricValue(m.samples, 'gatehouse_route_request_duration_seconds_count', series('b', '', '')), 1, m.text);
    assert.equal(metricValue(m.samples, 'gatehouse_route_request_duration_seconds_count', series('a', '', '')), undefined);
  });
});

// ---------------------------------------------------------------------------------------------------------

/** A worker's store after some traffic, recorded as the plugin does. */
function workerMetrics(n: { alice200: number; anon401: number; bytes: number }): Metrics {
  const metrics = new Metrics();
  const alice = metrics.trafficStats('orders', 'shop', 'alice');
  alice.families |= TRAFFIC_REQUESTS | TRAFFIC_BANDWIDTH;
  for (let i = 0; i < n.alice200; i++) {
    const c = alice.status(200);
    c.count++;
    c.bytesOut += n.bytes;
    c.bytesIn += 1;
  }
  const anon = metrics.trafficStats('orders', 'shop', '');
  anon.families |= TRAFFIC_REQUESTS;
  anon.status(401).count += n.anon401;
  return metrics;
}

describe('prometheus store across workers', () => {
  it('mergeDumps adds the series of several workers (sent over IPC as JSON); families are OR-ed', () => {
    const w1 = workerMetrics({ alice200: 3, anon401: 1, bytes: 10 });
    const w2 = workerMetrics({ alice200: 2, anon401: 0, bytes: 5 });
    w2.trafficStats('orders', 'shop', 'bob').status(200).count += 4;
    w2.trafficStats('orders', 'shop', 'bob').families |= TRAFFIC_REQUESTS;
    const ipc = (d: MetricsDump) => JSON.parse(JSON.stringify(d)) as MetricsDump;
    const merged = mergeDumps([ipc(w1.dump()), ipc(w2.dump())]);
    const byConsumer = new Map(merged.traffic!.map((t) => [t.consumer, t]));
    assert.deepEqual(byConsumer.get('alice')!.byStatus, [[200, 5, 5, 40]]);
    assert.equal(byConsumer.get('alice')!.families, TRAFFIC_REQUESTS | TRAFFIC_BANDWIDTH);
    assert.deepEqual(byConsumer.get('')!.byStatus, [[401, 1, 0, 0]]);
    assert.deepEqual(byConsumer.get('bob')!.byStatus, [[200, 4, 0, 0]]);

    const text = renderPrometheus([ipc(w1.dump()), ipc(w2.dump())]);
    const samples = parsePrometheus(text);
    assert.equal(metricValue(samples, 'gatehouse_route_requests_total', req('orders', 'shop', 'alice', '200')), 5, text);
    assert.equal(metricValue(samples, 'gatehouse_route_bandwidth_bytes_total', { ...req('orders', 'shop', 'alice', '200'), type: 'egress' }), 40);
    // bob's series did not ask for bandwidth.
    assert.equal(metricValue(samples, 'gatehouse_route_bandwidth_bytes_total', { ...req('orders', 'shop', 'bob', '200'), type: 'egress' }), undefined);
  });

  it('a dead worker\'s last dump folded in (as the primary keeps it) keeps counters from going down; inputs are not changed', () => {
    const dead = workerMetrics({ alice200: 3, anon401: 2, bytes: 10 }).dump();
    const live = workerMetrics({ alice200: 1, anon401: 0, bytes: 10 });
    const node = live.upstreamNode('upstream:app', '10.0.0.1:80');
    node.count++;
    node.sum += 12;
    node.buckets[4]!++;
    const deadBefore = JSON.stringify(dead);
    const retired = mergeDumps([dead]);
    const once = mergeDumps([retired, live.dump()]);
    const again = mergeDumps([mergeDumps([retired]), live.dump()]);
    assert.deepEqual(again, once, 'merging a merged dump again changes nothing');
    assert.equal(JSON.stringify(dead), deadBefore, 'the dump given to mergeDumps is unchanged');
    const samples = parsePrometheus(renderPrometheus([mergeDumps([retired]), live.dump()]));
    assert.equal(metricValue(samples, 'gatehouse_route_requests_total', req('orders', 'shop', 'alice', '200')), 4);
    assert.equal(metricValue(samples, 'gatehouse_route_requests_total', req('orders', 'shop', '', '401')), 2);
    assert.equal(metricValue(samples, 'gatehouse_upstream_node_response_seconds_count', { upstream: 'upstream:app', node: '10.0.0.1:80' }), 1);
    assert.equal(metricValue(samples, 'gatehouse_upstream_node_response_seconds_sum', { upstream: 'upstream:app', node: '10.0.0.1:80' }), 0.012);
    assert.equal(metricValue(samples, 'gatehouse_upstream_node_response_seconds_bucket', { upstream: 'upstream:app', node: '10.0.0.1:80', le: '0.01' }), 0);
    assert.equal(metricValue(samples, 'gatehouse_upstream_node_response_seconds_bucket', { upstream: 'upstream:app', node: '10.0.0.1:80', le: '0.025' }), 1);
  });

  it('dumps of workers without the plugin\'s series (older format) merge and render as before', () => {
    const w = new Metrics();
    w.route('r').record(200, 3, 1);
    const { traffic: _t, upstreamNodes: _u, ...old } = w.dump();
    const text = renderPrometheus([old, old]);
    assert.equal(metricValue(parsePrometheus(text), 'gatehouse_http_requests_total', { route: 'r', status: '200' }), 2);
    assert.ok(!text.includes('gatehouse_route_'), 'no plugin families without plugin data');
  });

  it('escapes label values (backslash, double quote, line feed) and promtool accepts them', (t) => {
    const metrics = new Metrics();
    const odd = 'a"b\\c\nd';
    const s = metrics.trafficStats(odd, 'svc "x"', 'c\\d');
    s.families |= TRAFFIC_REQUESTS;
    s.status(200).count++;
    const text = renderPrometheus([metrics.dump()], { health: [{ upstream: 'up"1', node: 'n\n1', healthy: false }] });
    assert.ok(text.includes('gatehouse_route_requests_total{route="a\\"b\\\\c\\nd",service="svc \\"x\\"",consumer="c\\\\d",status="200"} 1'), text);
    const samples = parsePrometheus(text);
    assert.equal(metricValue(samples, 'gatehouse_route_requests_total', { route: odd, service: 'svc "x"', consumer: 'c\\d', status: '200' }), 1);
    assert.equal(metricValue(samples, 'gatehouse_upstream_node_healthy', { upstream: 'up"1', node: 'n\n1' }), 0);
    const r = promtool(t, text);
    if (r === null) return;
    assert.equal(r.status, 0, r.output);
  });

  it('promtool does reject what it should (the check above is not vacuous)', (t) => {
    const r = promtool(t, '# HELP gatehouse_things Things.\n# TYPE gatehouse_things counter\ngatehouse_things 1\n');
    if (r === null) return;
    assert.notEqual(r.status, 0);
    assert.match(r.output, /_total/);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('prometheus in a two-worker gateway', () => {
  it('series are summed over the workers and kept when a worker is replaced', { timeout: 60_000 }, async (t) => {
    const up = await upstream(appHandler);
    const yaml = [
      'upstreams:',
      `  - { id: app, nodes: [{ host: 127.0.0.1, port: ${up.port} }] }`,
      'consumers:',
      `  - { username: alice, credentials: { key-auth: { key: ${KEYS.alice} } } }`,
      'routes:',
      '  - id: orders',
      '    paths: ["/orders/*"]',
      '    upstreamId: app',
      '    plugins: { key-auth: {}, prometheus: {} }',
      '',
    ].join('\n');
    const gw = await Gatehouse.start(t, yaml, { workers: 2 });
    const labels = req('orders', '', 'alice', '200');
    const count = async () => metricValue((await gw.metrics()).samples, 'gatehouse_route_requests_total', labels) ?? 0;
    const waitCount = async (n: number) => {
      const end = Date.now() + 5000;
      let c = await count();
      while (c !== n && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 25));
        c = await count();
      }
      return c;
    };
    const burst = async (n: number) => {
      // New connections each, in parallel batches: both workers take some.
      for (let i = 0; i < n; i += 5) {
        const replies = await Promise.all(Array.from({ length: 5 }, () => send(gw.proxyPort, '/orders/bytes/10', { headers: { apikey: KEYS.alice } })));
        for (const r of replies) assert.equal(r.status, 200);
      }
    };
    await burst(20);
    assert.equal(await waitCount(20), 20);
    const m = await gw.metrics();
    assert.equal(metricValue(m.samples, 'gatehouse_route_bandwidth_bytes_total', { ...labels, type: 'egress' }), 200, m.text);
    assert.equal(metricValue(m.samples, 'gatehouse_route_request_duration_seconds_count', series('orders', '', 'alice')), 20, m.text);
    const check = promtool(t, m.text);
    if (check !== null) assert.equal(check.status, 0, check.output);

    const workers = await childPids(gw.pid);
    assert.equal(workers.length, 2);
    // Kill a worker that served some of them (access log lines carry the worker's pid).
    await waitUntil('access log lines', 5000, () => (gw.logs.filter((l) => l.type === 'access').length >= 20 ? true : undefined));
    const served = new Set(gw.logs.filter((l) => l.type === 'access').map((l) => l.pid as number));
    const victim = workers.find((p) => served.has(p)) ?? workers[0]!;
    const since = gw.mark();
    process.kill(victim, 'SIGKILL');
    await gw.waitLog('worker died', (l) => l.msg === 'gateway worker died; starting a new one', { since });
    await gw.waitReady(15_000, (b) => b.serving === 2);
    assert.equal(await count(), 20, 'the dead worker\'s counts are kept');
    await burst(10);
    assert.equal(await waitCount(30), 30);
  });
});
