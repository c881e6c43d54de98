/**
 * @module test/cluster-metrics
 * The dashboard's traffic counters in cluster mode, with the real commands: one `gatehouse control-plane` and two
 * `gatehouse gateway` processes (gw-a, gw-b) on a real etcd. Requests sent to each gateway add up exactly in
 * GET /api/v1/tenants/{t}/metrics, each instance listed with its own counts; another tenant's routes are in no
 * part of the answer; a gateway that was killed is reported as not answering while the call still succeeds,
 * and when it comes back it is a new start whose counters begin again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminCall, freePort, Gatehouse, get, waitUntil, type Answer } from './helpers/cli.js';
import { startUpstream, node } from './helpers/upstream.js';
import { etcdSkip, TestEtcd } from './helpers/etcd.js';


const api = (port: number, method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> =>
  adminCall(port, method, `/api/v1${path}`, opts);

interface Counters {
  id: string;
  requests: Record<string, number>;
  latency: { bucketsMs: number[]; counts: number[]; sumMs: number; count: number };
}
interface Instance {
  id: string;
  startedAt: string | null;
  at: string;
  ok: boolean;
  error?: string;
  routes: Counters[];
}
interface Reading {
  at: string;
  routes: Counters[];
  instances: Instance[];
}

const requestsOf = (routes: Counters[], id: string) => Object.values(routes.find((r) => r.id === id)?.requests ?? {}).reduce((a, b) => a + b, 0);

test('cluster mode: the control plane sums every gateway instance\'s route counters for the tenant, and reports the ones that do not answer', { timeout: 120_000, skip: etcdSkip() }, async (t) => {
  const etcd = await TestEtcd.start();
  t.after(() => etcd.stop());
  const up = await startUpstream((req, res) => res.end(`ok ${req.url}`));
  t.after(() => up.close());

  const adminPort = await freePort();
  const cpData = await mkdtemp(join(tmpdir(), 'gh-cluster-metrics-cp-'));
  t.after(() => rm(cpData, { recursive: true, force: true }));
  const password = 'cluster-metrics-admin-password';
  const etcdEnv = { GATEHOUSE_CONFIG_PROVIDER_TYPE: 'etcd', GATEHOUSE_CONFIG_PROVIDER_ENDPOINTS: etcd.endpoint, GATEHOUSE_CONFIG_PROVIDER_PREFIX: '/gh-metrics' };
  await Gatehouse.start(t, '', {
    args: () => ['control-plane'],
    env: { ...etcdEnv, GATEHOUSE_ADMIN_PORT: String(adminPort), GATEHOUSE_ADMIN_PASSWORD: password, GATEHOUSE_DATA_DIR: cpData },
    ready: async () => (await api(adminPort, 'GET', '/openapi.json').catch(() => ({ status: 0 }))).status === 200,
  });
  const startGateway = (id: string) => Gatehouse.start(t, '', { workers: 1, args: () => ['gateway'], env: { ...etcdEnv, GATEHOUSE_INSTANCE_ID: id } });
  const gwA = await startGateway('gw-a');
  let gwB = await startGateway('gw-b');

  const login = await api(adminPort, 'POST', '/login', { body: { username: 'admin', password } });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  const made = await api(adminPort, 'POST', '/tokens', { body: { name: 'cluster-metrics' }, headers: { cookie, 'x-csrf-token': login.body.csrfToken } });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const token = made.body.token as string;
  const su = (method: string, path: string, body?: unknown) => api(adminPort, method, path, { token, body });

  // Two tenants, one route each on the same upstream service. Publishing shop first and other last: a gateway
  // that serves other's route has shop's too, so waiting on other's route sends no request to shop's.
  for (const [tenant, path] of [
    ['shop', '/shop'],
    ['other', '/other'],
  ] as const) {
    assert.equal((await su('POST', '/tenants', { id: tenant, name: tenant })).status, 201);
    assert.equal((await su('POST', `/tenants/${tenant}/upstreams`, { id: 'u', nodes: [node(up.port)] })).status, 201);
    assert.equal((await su('POST', `/tenants/${tenant}/routes`, { id: 'r', paths: [path], upstreamId: 'u' })).status, 201);
    for (const e of ['upstreams/u', 'routes/r']) assert.equal((await su('POST', `/tenants/${tenant}/${e}/publish`, { skipReview: true })).status, 200);
  }
  for (const gw of [gwA, gwB]) await waitUntil(`other's route on ${gw.proxyPort}`, 15_000, async () => ((await get(gw.proxyPort, '/other')).status === 200 ? true : undefined));
  await waitUntil('both instances listed', 15_000, async () => ((await su('GET', '/instances')).body.items.length === 2 ? true : undefined));

  // N requests to gw-a and M to gw-b on shop's route.
  const N = 7;
  const M = 4;
  for (let i = 0; i < N; i++) assert.equal((await get(gwA.proxyPort, '/shop')).status, 200);
  for (let i = 0; i < M; i++) assert.equal((await get(gwB.proxyPort, '/shop')).status, 200);

  const reading = async (tenant: string) => {
    const r = await su('GET', `/tenants/${tenant}/metrics`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as Reading;
  };
  const summed = await waitUntil('N + M requests summed', 15_000, async () => {
    const m = await reading('shop');
    return requestsOf(m.routes, 'r') >= N + M ? m : undefined;
  }, 250);
  assert.deepEqual(summed.routes.map((r) => r.id), ['r'], "only the tenant's own route");
  const r = summed.routes[0]!;
  assert.deepEqual(r.requests, { '200': N + M });
  assert.equal(r.latency.count, N + M);
  assert.equal(r.latency.counts.at(-1), N + M);
  assert.equal(r.latency.counts.length, r.latency.bucketsMs.length + 1);
  assert.deepEqual(
    summed.instances.map((i) => [i.id, i.ok, requestsOf(i.routes, 'r')]),
    [
      ['gw-a', true, N],
      ['gw-b', true, M],
    ],
  );
  for (const i of summed.instances) assert.ok(Date.parse(i.startedAt!) > 0 && Date.parse(i.at) > 0, JSON.stringify(i));
  assert.equal(JSON.stringify(summed).includes('other'), false, "the other tenant's route is in no part of the answer");

  // The other tenant sees its own route, never shop's: the one request per gateway that found it served.
  const other = await reading('other');
  assert.deepEqual(other.routes.map((x) => [x.id, x.requests]), [['r', { '200': 2 }]]);
  assert.deepEqual(
    other.instances.map((i) => [i.id, i.routes.map((x) => [x.id, x.requests])]),
    [
      ['gw-a', [['r', { '200': 1 }]]],
      ['gw-b', [['r', { '200': 1 }]]],
    ],
  );

  // The instances as GET /api/v1/instances lists them advertise the status URL the control plane reads.
  const listed = (await su('GET', '/instances')).body.items as Array<{ id: string; statusUrl: string }>;
  assert.deepEqual(
    listed.map((i) => [i.id, i.statusUrl]),
    [
      ['gw-a', `http://127.0.0.1:${gwA.statusPort}`],
      ['gw-b', `http://127.0.0.1:${gwB.statusPort}`],
    ],
  );

  // gw-b dies: its record stays in etcd until its lease expires, and it is reported as not answering; the
  // call still succeeds, with gw-a's counts.
  const bStarted = summed.instances.find((i) => i.id === 'gw-b')!.startedAt;
  await gwB.stop();
  const partial = await waitUntil('gw-b reported as not answering', 15_000, async () => {
    const m = await reading('shop');
    return m.instances.some((i) => i.id === 'gw-b' && !i.ok) ? m : undefined;
  }, 250);
  const b = partial.instances.find((i) => i.id === 'gw-b')!;
  assert.match(b.error!, /refused the connection|ECONNRESET|no complete \/metrics answer/);
  assert.deepEqual(b.routes, []);
  assert.equal(b.startedAt, bStarted);
  assert.deepEqual(partial.instances.find((i) => i.id === 'gw-a')!.ok, true);
  assert.deepEqual(partial.routes, [{ ...summed.instances.find((i) => i.id === 'gw-a')!.routes[0]! }]);

  // gw-b comes back: a new start, its counters from zero, then its new requests.
  gwB = await startGateway('gw-b');
  await waitUntil("shop's route on the new gw-b", 15_000, async () => ((await get(gwB.proxyPort, '/other')).status === 200 ? true : undefined));
  for (let i = 0; i < 3; i++) assert.equal((await get(gwB.proxyPort, '/shop')).status, 200);
  const back = await waitUntil('the new gw-b answering with its 3 requests', 20_000, async () => {
    const m = await reading('shop');
    const nb = m.instances.find((i) => i.id === 'gw-b');
    return nb?.ok && nb.startedAt !== bStarted && requestsOf(nb.routes, 'r') >= 3 ? m : undefined;
  }, 250);
  assert.equal(requestsOf(back.instances.find((i) => i.id === 'gw-b')!.routes, 'r'), 3);
  assert.equal(requestsOf(back.routes, 'r'), N + 3, 'the sum fell with the restart: rates pair instances by id and start');
});
