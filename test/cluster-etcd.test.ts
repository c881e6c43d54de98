/**
 * @module test/cluster-etcd
 * Cluster mode end to end with the real commands: one `gatehouse control-plane` and two `gatehouse gateway`
 * processes configured through a real etcd, sharing a limit through a real Redis. A route published through
 * the admin API serves on both gateways within a second and its deletion leaves both; the instance list
 * follows gateways starting and stopping; with etcd killed under load no request fails, /readyz says
 * degraded, a change published meanwhile arrives once etcd is back, and a gateway restarted while etcd is
 * down serves the config it saved.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { adminCall, freePort, Gatehouse, get, sleep, waitUntil, type Answer } from './helpers/cli.js';
import { startUpstream, node } from './helpers/upstream.js';
import { etcdSkip, TestEtcd } from './helpers/etcd.js';
import { redisSkip, TestRedis } from './helpers/redis.js';


const api = (port: number, method: string, path: string, token?: string, body?: unknown): Promise<Answer> => adminCall(port, method, `/api/v1${path}`, { token, body });

const skip = etcdSkip() || redisSkip();

test('cluster mode: control plane and two gateways through etcd', { timeout: 120_000, skip }, async (t) => {
  const etcd = await TestEtcd.start();
  t.after(() => etcd.stop());
  const redis = await TestRedis.start();
  t.after(() => redis.stop());
  const up = await startUpstream((req, res) => res.end(`ok ${req.url}`));
  t.after(() => up.close());

  const adminPort = await freePort();
  const password = 'cluster-admin-password';
  const etcdEnv = { GATEHOUSE_CONFIG_PROVIDER_TYPE: 'etcd', GATEHOUSE_CONFIG_PROVIDER_ENDPOINTS: etcd.endpoint, GATEHOUSE_CONFIG_PROVIDER_PREFIX: '/gh-test' };
  await Gatehouse.start(t, '', {
    args: () => ['control-plane'],
    env: { ...etcdEnv, GATEHOUSE_ADMIN_PORT: String(adminPort), GATEHOUSE_ADMIN_PASSWORD: password },
    ready: async () => (await api(adminPort, 'GET', '/openapi.json').catch(() => ({ status: 0 }))).status === 200,
  });
  const gateway = (id: string, dataDir?: string) =>
    Gatehouse.start(t, '', { workers: 1, args: () => ['gateway'], env: { ...etcdEnv, GATEHOUSE_INSTANCE_ID: id, ...(dataDir ? { GATEHOUSE_DATA_DIR: dataDir } : {}) } });
  const g1 = await Gatehouse.start(t, '', { workers: 1, args: () => ['gateway'], env: { ...etcdEnv, GATEHOUSE_INSTANCE_ID: 'gw-1', GATEHOUSE_INSTANCE_LABELS: '{"zone":"a"}' } });
  let g2 = await gateway('gw-2');
  const g2Data = `${g2.dir}/data`;

  // An API token for the admin user made from the password given in the environment.
  const login = await new Promise<{ cookie: string; csrf: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: adminPort, method: 'POST', path: '/api/v1/login', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ cookie: String(res.headers['set-cookie']).split(';')[0]!, csrf: JSON.parse(text).csrfToken }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ username: 'admin', password }));
  });
  const token = await new Promise<string>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: adminPort, method: 'POST', path: '/api/v1/tokens', agent: false, headers: { cookie: login.cookie, 'x-csrf-token': login.csrf, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(JSON.parse(text).token));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ name: 'test' }));
  });
  const call = (method: string, path: string, body?: unknown) => api(adminPort, method, path, token, body);
  const both = async (path: string): Promise<number[]> => [(await get(g1.proxyPort, path)).status, (await get(g2.proxyPort, path)).status];

  // Instances register themselves.
  await waitUntil('both instances listed', 10_000, async () => {
    const r = await call('GET', '/instances');
    return r.body.items.map((i: { id: string }) => i.id).join(',') === 'gw-1,gw-2' ? true : undefined;
  });

  // Publish: both gateways serve within a second.
  assert.equal((await call('POST', '/tenants', { id: 'shop', name: 'Shop', reviewRequired: false })).status, 201);
  assert.equal((await call('POST', '/tenants/shop/upstreams', { id: 'u', nodes: [node(up.port)] })).status, 201);
  assert.equal((await call('POST', '/tenants/shop/upstreams/u/publish', {})).status, 200);
  assert.equal(
    (
      await call('POST', '/tenants/shop/routes', {
        id: 'a',
        paths: ['/a'],
        upstreamId: 'u',
        plugins: { 'limit-count': { count: 4, timeWindow: 'day', policy: 'redis', redis: { host: '127.0.0.1', port: redis.port } } },
      })
    ).status,
    201,
  );
  assert.deepEqual(await both('/a'), [404, 404], 'a draft is served nowhere');
  const published = Date.now();
  assert.equal((await call('POST', '/tenants/shop/routes/a/publish', {})).status, 200);
  await waitUntil('route a on both gateways', 1000, async () => ((await both('/a')).every((s) => s === 200) ? true : undefined), 20);
  assert.ok(Date.now() - published < 1000);

  // The Redis-backed limit is one budget for both gateways: requests alternating between them count down one
  // counter (however many the wait above used), and once it is spent both refuse.
  const seen: Array<[number, string | undefined]> = [];
  for (let i = 0; i < 3; i++) {
    for (const gw of [g1, g2]) {
      const r = await get(gw.proxyPort, '/a');
      seen.push([r.status, r.headers['ratelimit-remaining'] as string | undefined]);
    }
  }
  const remaining = seen.filter(([s]) => s === 200).map(([, rem]) => Number(rem));
  remaining.forEach((rem, i) => i > 0 && assert.equal(rem, remaining[i - 1]! - 1, `one counter: ${JSON.stringify(seen)}`));
  assert.ok(seen.slice(-2).every(([s]) => s === 429), `spent on both: ${JSON.stringify(seen)}`);

  // The instances report the revision they run.
  const inst = await call('GET', '/instances');
  assert.ok(inst.body.items.every((i: { revision: number; configSourceOk: boolean }) => i.revision > 0 && i.configSourceOk));
  assert.deepEqual(inst.body.items.map((i: { labels: Record<string, string> }) => i.labels), [{ zone: 'a' }, {}], 'labels from the settings');

  // Deleting (and publishing the deletion) removes the route from both.
  assert.equal((await call('POST', '/tenants/shop/routes', { id: 'b', paths: ['/b'], upstreamId: 'u' })).status, 201);
  assert.equal((await call('POST', '/tenants/shop/routes/b/publish', {})).status, 200);
  await waitUntil('route b on both', 1000, async () => ((await both('/b')).every((s) => s === 200) ? true : undefined), 20);
  assert.equal((await call('DELETE', '/tenants/shop/routes/b')).status, 200);
  assert.equal((await call('POST', '/tenants/shop/routes/b/publish', {})).status, 200);
  await waitUntil('route b gone from both', 1000, async () => ((await both('/b')).every((s) => s === 404) ? true : undefined), 20);

  // etcd dies under load: nothing fails, /readyz says degraded.
  assert.equal((await call('POST', '/tenants/shop/routes', { id: 'c', paths: ['/c'], upstreamId: 'u' })).status, 201);
  assert.equal((await call('POST', '/tenants/shop/routes/c/publish', {})).status, 200);
  await waitUntil('route c on both', 1000, async () => ((await both('/c')).every((s) => s === 200) ? true : undefined), 20);
  let running = true;
  const failures: string[] = [];
  let served = 0;
  const load = (async () => {
    while (running) {
      for (const gw of [g1, g2]) {
        const r = await get(gw.proxyPort, '/c').catch((e: Error) => ({ status: -1, body: e.message }));
        if (r.status === 200) served++;
        else failures.push(`${gw === g1 ? 'gw-1' : 'gw-2'}: ${r.status}`);
      }
    }
  })();
  await sleep(200);
  await etcd.stop();
  await waitUntil('degraded on both', 10_000, async () => {
    const r = await Promise.all([g1.readyz(), g2.readyz()]);
    return r.every((x) => x.status === 200 && x.body.status === 'degraded') ? true : undefined;
  }, 100);
  // A change published while etcd is down is kept by the control plane.
  assert.equal((await call('POST', '/tenants/shop/routes', { id: 'd', paths: ['/d'], upstreamId: 'u' })).status, 201);
  assert.equal((await call('POST', '/tenants/shop/routes/d/publish', {})).status, 200);
  await sleep(500);
  running = false;
  await load;
  assert.deepEqual(failures, [], 'no request failed while etcd was down');
  assert.ok(served > 10);

  // A gateway restarted while etcd is down serves the config it saved.
  await g2.stop();
  g2 = await gateway('gw-2', g2Data);
  assert.equal((await get(g2.proxyPort, '/c')).status, 200, 'served from the saved config');

  // etcd is back: the change made meanwhile arrives on both, and they are healthy again.
  await etcd.start();
  await waitUntil('route d on both after etcd returns', 20_000, async () => ((await both('/d')).every((s) => s === 200) ? true : undefined), 200);
  await waitUntil('ready again', 10_000, async () => {
    const r = await Promise.all([g1.readyz(), g2.readyz()]);
    return r.every((x) => x.body.status === 'ready') ? true : undefined;
  }, 100);

  // A stopped gateway leaves the instance list.
  await g1.stop();
  await waitUntil('gw-1 gone from the instances', 30_000, async () => {
    const r = await call('GET', '/instances');
    return r.body.items.map((i: { id: string }) => i.id).join(',') === 'gw-2' ? true : undefined;
  }, 500);
});
