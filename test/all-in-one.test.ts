/**
 * @module test/all-in-one
 * `gatehouse start` end to end, as a user meets it: the control plane and two gateway workers in one service,
 * on a fresh data directory. First start creates the admin (no default credentials); through the admin API a
 * tenant, an upstream, a consumer and a route with key-auth are created; nothing is served until published;
 * then the gateway answers 401 without the key and 200 with it. A later publish reaches every worker within a
 * second while requests keep flowing, none failing; and a restart keeps everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { adminCall, freePort, Gatehouse, get, sleep, waitUntil, type Answer } from './helpers/cli.js';
import { startUpstream, node } from './helpers/upstream.js';


const api = adminCall;

test('all-in-one: first admin, API changes published to the workers, nothing dropped, kept across a restart', { timeout: 90_000 }, async (t) => {
  const up = await startUpstream();
  t.after(() => up.close());
  const adminPort = await freePort();
  const start = (dataDir?: string) =>
    Gatehouse.start(t, 'routes: []\n', {
      workers: 2,
      args: () => ['start'],
      env: { GATEHOUSE_ADMIN_PORT: String(adminPort), ...(dataDir ? { GATEHOUSE_DATA_DIR: dataDir } : {}) },
    });
  let gw = await start();
  const dataDir = join(gw.dir, 'data');

  // No default credentials: a random password, in a file only the owner can read.
  const pwFile = join(dataDir, 'initial-admin-password');
  assert.equal(statSync(pwFile).mode & 0o777, 0o600);
  const password = readFileSync(pwFile, 'utf8').trim();
  assert.ok(password.length >= 20);
  assert.ok(gw.stderr.includes(password), 'printed once on the terminal');
  assert.ok(!gw.stdout.includes(password), 'never in the JSON log');
  assert.equal((await api(adminPort, 'POST', '/login', { body: { username: 'admin', password: 'admin' } })).status, 401);

  const login = await api(adminPort, 'POST', '/login', { body: { username: 'admin', password } });
  assert.equal(login.status, 200);
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  const token = await new Promise<string>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: adminPort, method: 'POST', path: '/api/v1/tokens', agent: false, headers: { cookie, 'x-csrf-token': login.body.csrfToken, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(JSON.parse(text).token));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ name: 'test' }));
  });
  const call = (method: string, path: string, body?: unknown) => api(adminPort, method, path, { token, body });

  assert.equal((await call('POST', '/tenants', { id: 'shop', name: 'Shop', reviewRequired: false })).status, 201);
  assert.equal((await call('POST', '/tenants/shop/upstreams', { id: 'users', nodes: [node(up.port)] })).status, 201);
  assert.equal((await call('POST', '/tenants/shop/consumers', { username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } } })).status, 201);
  assert.equal((await call('POST', '/tenants/shop/routes', { id: 'users', paths: ['/users/*'], upstreamId: 'users', plugins: { 'key-auth': {} } })).status, 201);
  assert.equal((await get(gw.proxyPort, '/users/1')).status, 404, 'drafts are not served');

  for (const k of ['upstreams/users', 'consumers/alice', 'routes/users']) {
    const r = await call('POST', `/tenants/shop/${k}/publish`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  await waitUntil('the route served', 1000, async () => ((await get(gw.proxyPort, '/users/1')).status === 401 ? true : undefined), 20);
  const withKey = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.proxyPort, path: '/users/1', agent: false, headers: { apikey: 'alice-secret-key' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(withKey, 200);
  assert.equal(up.seen.at(-1)!.url, '/users/1');
  assert.equal(up.seen.at(-1)!.headers['x-consumer-username'], 'alice');
  const nodes = await call('GET', '/tenants/shop/upstreams/users/nodes');
  assert.deepEqual(nodes.body.items.map((n: { port: number; source: string }) => [n.port, n.source]), [[up.port, 'static']]);

  // A change published under load: every request succeeds, and all workers serve the change within a second.
  let running = true;
  const failures: number[] = [];
  let served = 0;
  const load = (async () => {
    while (running) {
      const batch = await Promise.all(Array.from({ length: 4 }, () => get(gw.proxyPort, '/open/x').then((r) => r.status, () => -1)));
      for (const s of batch) (s === 200 || s === 404 ? served++ : failures.push(s));
    }
  })();
  assert.equal((await call('POST', '/tenants/shop/routes', { id: 'open', paths: ['/open/*'], upstreamId: 'users' })).status, 201);
  const published = Date.now();
  assert.equal((await call('POST', '/tenants/shop/routes/open/publish', {})).status, 200);
  await waitUntil('every worker on the new revision', 1000, async () => {
    const r = await gw.readyz();
    return r.status === 200 && r.body.current === 2 ? true : undefined;
  }, 20);
  const reached = Date.now() - published;
  // Fresh connections land on either worker: twenty in a row all see the route.
  for (let i = 0; i < 20; i++) assert.equal((await get(gw.proxyPort, '/open/x')).status, 200);
  running = false;
  await load;
  assert.deepEqual(failures, [], 'no request failed while the change was applied');
  assert.ok(served > 0 && reached < 1000, `applied in ${reached} ms`);

  // A restart on the same data keeps users, config and the served routes; no new admin is made.
  await gw.stop();
  await sleep(200);
  gw = await start(dataDir);
  await waitUntil('served after restart', 5000, async () => ((await get(gw.proxyPort, '/open/x')).status === 200 ? true : undefined), 50);
  assert.ok(!gw.stderr.includes('First start'), 'the admin exists already');
  assert.equal((await api(adminPort, 'POST', '/login', { body: { username: 'admin', password } })).status, 200);

  // Gray release in all-in-one mode: this process is the one instance, named in the instance list.
  const [self] = (await call('GET', '/instances')).body.items as Array<{ id: string }>;
  assert.equal((await call('PATCH', '/tenants/shop/routes/open', { methods: ['POST'] })).status, 200);
  const gray = await call('POST', '/admin/services/gray/shop/routes', { routeId: 'open', instances: [self!.id], version: 'draft' });
  assert.equal(gray.status, 201, JSON.stringify(gray.body));
  await waitUntil('the gray version served here', 2000, async () => ((await get(gw.proxyPort, '/open/x')).status === 404 ? true : undefined), 20);
  await waitUntil('reported as serving', 2000, async () => {
    const g = (await call('GET', '/admin/services/gray/shop/routes')).body.items[0];
    return g.instances[0].state === 'serving' ? true : undefined;
  });
  assert.equal((await call('DELETE', '/admin/services/gray/shop/routes/open')).status, 200);
  await waitUntil('back on the live version', 2000, async () => ((await get(gw.proxyPort, '/open/x')).status === 200 ? true : undefined), 20);
});
