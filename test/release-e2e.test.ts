/**
 * @module test/release-e2e
 * Release controls end to end with the real commands: one `gatehouse control-plane` and two `gatehouse gateway`
 * processes (instances gw-a and gw-b) on a real etcd, driven through the admin API by users with different
 * roles in a tenant that requires review. An editor's change is served nowhere until a reviewer approves it;
 * an author cannot approve their own change; a viewer can do none of it; the skip-review lane works only for
 * the roles allowed and is audited; a second change from the same base gets 409; a bundle publishes all or
 * nothing; rolling back one route leaves every other route's version as it was; a gray release serves the new
 * version on gw-a and the old on gw-b, stop restores gw-a, promote moves both; and the gray release survives
 * restarts of the control plane and of the gateway serving it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminCall, freePort, Gatehouse, get, waitUntil, type Answer } from './helpers/cli.js';
import { startUpstream, node } from './helpers/upstream.js';
import { etcdSkip, TestEtcd } from './helpers/etcd.js';


const http = adminCall;

test('release controls end to end: review, skip-review, conflicts, bundles, rollback, gray release', { timeout: 180_000, skip: etcdSkip() }, async (t) => {
  const etcd = await TestEtcd.start();
  t.after(() => etcd.stop());
  const up = await startUpstream((req, res) => res.end(`ok ${req.url}`));
  t.after(() => up.close());

  const adminPort = await freePort();
  const cpData = await mkdtemp(join(tmpdir(), 'gh-release-cp-'));
  const gwAData = await mkdtemp(join(tmpdir(), 'gh-release-gwa-'));
  t.after(() => rm(cpData, { recursive: true, force: true }));
  t.after(() => rm(gwAData, { recursive: true, force: true }));
  const password = 'release-admin-password';
  const etcdEnv = { GATEHOUSE_CONFIG_PROVIDER_TYPE: 'etcd', GATEHOUSE_CONFIG_PROVIDER_ENDPOINTS: etcd.endpoint, GATEHOUSE_CONFIG_PROVIDER_PREFIX: '/gh-release' };
  const startControlPlane = () =>
    Gatehouse.start(t, '', {
      args: () => ['control-plane'],
      env: { ...etcdEnv, GATEHOUSE_ADMIN_PORT: String(adminPort), GATEHOUSE_ADMIN_PASSWORD: password, GATEHOUSE_DATA_DIR: cpData },
      ready: async () => (await http(adminPort, 'GET', '/api/v1/openapi.json').catch(() => ({ status: 0 }))).status === 200,
    });
  const startGateway = (id: string, dataDir?: string) =>
    Gatehouse.start(t, '', { workers: 1, args: () => ['gateway'], env: { ...etcdEnv, GATEHOUSE_INSTANCE_ID: id, ...(dataDir ? { GATEHOUSE_DATA_DIR: dataDir } : {}) } });
  let cp = await startControlPlane();
  let gwA = await startGateway('gw-a', gwAData);
  const gwB = await startGateway('gw-b');

  async function tokenOf(username: string, pw: string): Promise<string> {
    const login = await http(adminPort, 'POST', '/api/v1/login', { body: { username, password: pw } });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const tok = await http(adminPort, 'POST', '/api/v1/tokens', { body: { name: 'e2e' }, headers: { cookie, 'x-csrf-token': login.body.csrfToken } });
    assert.equal(tok.status, 201, JSON.stringify(tok.body));
    return tok.body.token as string;
  }
  const root = await tokenOf('admin', password);
  const as = (token: string) => (method: string, path: string, body?: unknown) => http(adminPort, method, path.startsWith('/admin/') ? path : `/api/v1${path}`, { token, body });
  const su = as(root);

  // A tenant that requires review (the default), and one user per role.
  assert.equal((await su('POST', '/tenants', { id: 'shop', name: 'Shop' })).status, 201);
  assert.equal((await su('GET', '/tenants/shop')).body.reviewRequired, true);
  const users: Record<string, string> = {};
  for (const [name, role] of [['eve', 'editor'], ['edgar', 'editor'], ['rita', 'reviewer'], ['vic', 'viewer'], ['ada', 'admin']] as const) {
    assert.equal((await su('POST', '/users', { username: name, password: `${name}-password-1234` })).status, 201);
    assert.equal((await su('PUT', `/tenants/shop/members/${name}`, { role })).status, 200);
    users[name] = await tokenOf(name, `${name}-password-1234`);
  }
  const eve = as(users.eve!);
  const edgar = as(users.edgar!);
  const rita = as(users.rita!);
  const vic = as(users.vic!);
  const ada = as(users.ada!);
  const serve = async (gw: Gatehouse, path: string) => {
    const r = await get(gw.proxyPort, path);
    return r.status === 200 ? (r.headers['x-release'] as string | undefined) ?? 'live' : r.status;
  };
  const onBoth = (path: string) => Promise.all([serve(gwA, path), serve(gwB, path)]);
  const until = (what: string, path: string, want: [unknown, unknown]) =>
    waitUntil(what, 10_000, async () => {
      const got = await onBoth(path);
      return JSON.stringify(got) === JSON.stringify(want) ? got : undefined;
    });
  await waitUntil('both instances listed', 10_000, async () => ((await su('GET', '/instances')).body.items.length === 2 ? true : undefined));

  // 1. An editor's change is live nowhere until a reviewer approves it.
  assert.equal((await eve('POST', '/tenants/shop/upstreams', { id: 'u', nodes: [node(up.port)] })).status, 201);
  assert.equal((await eve('POST', '/tenants/shop/routes', { id: 'r', paths: ['/r'], upstreamId: 'u' })).status, 201);
  assert.equal((await eve('POST', '/tenants/shop/routes', { id: 'other', paths: ['/other'], upstreamId: 'u' })).status, 201);
  const first = await eve('POST', '/tenants/shop/changes', {
    title: 'upstream u and routes r and other',
    items: [
      { kind: 'upstreams', id: 'u' },
      { kind: 'routes', id: 'r' },
      { kind: 'routes', id: 'other' },
    ],
  });
  assert.equal(first.status, 201, JSON.stringify(first.body));
  assert.deepEqual(await onBoth('/r'), [404, 404], 'submitted is not live');

  // A viewer can do none of it; an editor cannot approve; the author cannot approve their own change.
  assert.equal((await vic('POST', `/tenants/shop/changes/${first.body.id}/approve`, {})).status, 403);
  assert.equal((await vic('POST', '/tenants/shop/routes/r/publish', {})).status, 403);
  assert.equal((await vic('POST', '/tenants/shop/changes', { title: 'x', items: [{ kind: 'routes', id: 'r' }] })).status, 403);
  assert.equal((await vic('POST', '/admin/services/gray/shop/routes', { routeId: 'r', instances: ['gw-a'], version: 'draft' })).status, 403);
  assert.equal((await edgar('POST', `/tenants/shop/changes/${first.body.id}/approve`, {})).status, 403);

  assert.equal((await rita('POST', `/tenants/shop/changes/${first.body.id}/approve`, { comment: 'ok' })).status, 200);
  await until('the approved change on both gateways', '/r', ['live', 'live']);
  assert.deepEqual(await onBoth('/other'), ['live', 'live']);
  assert.equal((await ada('POST', '/tenants/shop/routes', { id: 'mine', paths: ['/mine'], upstreamId: 'u' })).status, 201);
  const own = await ada('POST', '/tenants/shop/routes/mine/publish', {});
  assert.equal(own.status, 202);
  assert.equal((await ada('POST', `/tenants/shop/changes/${own.body.change.id}/approve`, {})).status, 403, 'an admin cannot approve their own change either');
  assert.equal((await ada('POST', `/tenants/shop/changes/${own.body.change.id}/withdraw`, {})).status, 200);

  // 2. The skip-review lane: refused to an editor, taken by an admin and audited.
  const r2 = { paths: ['/r'], upstreamId: 'u', plugins: { 'response-rewrite': { headers: { set: { 'X-Release': 'v2' } } } } };
  assert.equal((await eve('PUT', '/tenants/shop/routes/r', r2)).status, 200);
  assert.equal((await eve('POST', '/tenants/shop/routes/r/publish', { skipReview: true })).status, 403);
  assert.equal((await eve('PATCH', '/tenants/shop/routes/other', { methods: ['GET'] })).status, 200);
  const lane = await ada('POST', '/tenants/shop/routes/other/publish', { skipReview: true });
  assert.equal(lane.status, 200, JSON.stringify(lane.body));
  const audit = await su('GET', '/audit?tenant=shop&entity=other&limit=1');
  assert.equal(audit.body.items[0].action, 'routes.publish.skip-review');
  assert.equal(audit.body.items[0].actor, 'ada');

  // 3. Two changes from the same base: the second approved gets 409 and overwrites nothing.
  const c1 = await eve('POST', '/tenants/shop/routes/r/publish', {});
  assert.equal(c1.status, 202);
  assert.equal((await edgar('PATCH', '/tenants/shop/routes/r', { methods: ['POST'] })).status, 200);
  const c2 = await edgar('POST', '/tenants/shop/routes/r/publish', {});
  assert.equal(c2.status, 202);
  assert.equal((await rita('POST', `/tenants/shop/changes/${c1.body.change.id}/approve`, {})).status, 200);
  const conflict = await rita('POST', `/tenants/shop/changes/${c2.body.change.id}/approve`, {});
  assert.equal(conflict.status, 409, JSON.stringify(conflict.body));
  assert.equal(conflict.body.error.details[0].currentVersion, 2);
  await until('version 2 of r (the first change) on both', '/r', ['v2', 'v2']);
  assert.equal((await edgar('POST', `/tenants/shop/changes/${c2.body.change.id}/withdraw`, {})).status, 200);
  // Back to the reviewed content of r as the draft, for what follows.
  assert.equal((await eve('PUT', '/tenants/shop/routes/r', r2)).status, 200);

  // 4. A bundle publishes all or nothing: a new upstream and the route using it.
  assert.equal((await eve('POST', '/tenants/shop/upstreams', { id: 'u2', nodes: [node(up.port)] })).status, 201);
  assert.equal((await eve('POST', '/tenants/shop/routes', { id: 'b', paths: ['/b'], upstreamId: 'u2' })).status, 201);
  const bundle = await eve('POST', '/tenants/shop/changes', { title: 'b and its upstream', items: [{ kind: 'upstreams', id: 'u2' }, { kind: 'routes', id: 'b' }] });
  assert.equal(bundle.status, 201);
  // The upstream goes live on its own first (the lane), so the bundle's base for it is stale: nothing applies.
  assert.equal((await ada('POST', '/tenants/shop/upstreams/u2/publish', { skipReview: true })).status, 200);
  assert.equal((await rita('POST', `/tenants/shop/changes/${bundle.body.id}/approve`, {})).status, 409);
  assert.equal((await su('GET', '/tenants/shop/routes/b')).body.liveVersion, 0, 'the route did not go live without the rest of its bundle');
  assert.deepEqual(await onBoth('/b'), [404, 404]);
  assert.equal((await eve('POST', `/tenants/shop/changes/${bundle.body.id}/rebase`, {})).status, 200);
  assert.equal((await rita('POST', `/tenants/shop/changes/${bundle.body.id}/approve`, {})).status, 200);
  await until('the bundle on both gateways', '/b', ['live', 'live']);

  // 5. Rollback of one route (by review) leaves every other entity's version unchanged.
  const versionsOf = async () => {
    const out: Record<string, number> = {};
    for (const kind of ['routes', 'upstreams']) for (const e of (await su('GET', `/tenants/shop/${kind}?limit=100`)).body.items) out[`${kind}/${e.id}`] = e.liveVersion;
    return out;
  };
  const before = await versionsOf();
  const rb = await eve('POST', '/tenants/shop/routes/r/rollback', { version: 1 });
  assert.equal(rb.status, 202, JSON.stringify(rb.body));
  assert.equal((await rita('POST', `/tenants/shop/changes/${rb.body.change.id}/approve`, {})).status, 200);
  await until('r rolled back on both', '/r', ['live', 'live']);
  const after = await versionsOf();
  assert.equal(after['routes/r'], before['routes/r']! + 1, 'the rollback is a new version of r');
  delete before['routes/r'];
  delete after['routes/r'];
  assert.deepEqual(after, before, 'no other route or upstream changed version');

  // 6. Gray release: version 2 of r (by review) on gw-a only.
  const gray = await eve('POST', '/admin/services/gray/shop/routes', { routeId: 'r', instances: ['gw-a'], version: 2 });
  assert.equal(gray.status, 202, JSON.stringify(gray.body));
  assert.deepEqual(await onBoth('/r'), ['live', 'live'], 'not before approval');
  assert.equal((await rita('POST', `/tenants/shop/changes/${gray.body.change.id}/approve`, {})).status, 200);
  await until('gray v2 on gw-a only', '/r', ['v2', 'live']);
  await waitUntil('gw-a reports the gray version it serves', 10_000, async () => {
    const g = (await eve('GET', '/admin/services/gray/shop/routes')).body.items[0];
    return g?.instances[0]?.state === 'serving' ? g : undefined;
  });
  const inst = (await su('GET', '/instances')).body.items as Array<{ id: string; gray: unknown[] }>;
  assert.deepEqual(inst.find((i) => i.id === 'gw-a')!.gray, [{ tenant: 'shop', routeId: 'r', version: 2 }]);
  assert.deepEqual(inst.find((i) => i.id === 'gw-b')!.gray, []);

  // Stop: gw-a returns to the live version.
  assert.equal((await eve('DELETE', '/admin/services/gray/shop/routes/r')).status, 200);
  await until('gw-a back on the live version', '/r', ['live', 'live']);

  // 7. Gray again (the admin's lane), then restarts of the control plane and of gw-a keep it.
  assert.equal((await ada('POST', '/admin/services/gray/shop/routes', { routeId: 'r', instances: ['gw-a'], version: 2, skipReview: true })).status, 201);
  await until('gray v2 on gw-a again', '/r', ['v2', 'live']);
  await cp.stop();
  await gwA.stop();
  cp = await startControlPlane();
  gwA = await startGateway('gw-a', gwAData);
  await until('gray v2 on gw-a after restarts', '/r', ['v2', 'live']);
  const listed = await waitUntil('the gray release listed as served after restarts', 15_000, async () => {
    const g = (await eve('GET', '/admin/services/gray/shop/routes')).body.items;
    return g.length === 1 && g[0].instances[0].state === 'serving' ? g : undefined;
  });
  assert.equal(listed[0].version, 2);

  // An instance that goes away is shown as gone.
  await gwA.stop();
  await waitUntil('gw-a gone', 25_000, async () => ((await eve('GET', '/admin/services/gray/shop/routes')).body.items[0].instances[0].state === 'gone' ? true : undefined), 250);
  gwA = await startGateway('gw-a', gwAData);
  await until('gw-a back with its gray version', '/r', ['v2', 'live']);

  // 8. Promote (by review): both serve version 2's content as the new live version.
  const promote = await eve('POST', '/admin/services/gray/shop/routes/r/promote', {});
  assert.equal(promote.status, 202);
  assert.equal((await rita('POST', `/tenants/shop/changes/${promote.body.change.id}/approve`, {})).status, 200);
  await until('promoted on both', '/r', ['v2', 'v2']);
  assert.deepEqual((await eve('GET', '/admin/services/gray/shop/routes')).body.items, []);
});
