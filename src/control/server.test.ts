/**
 * @module control/server.test
 * The admin API through fastify's inject on a real SQLite store: a walk over every route of the route table
 * (no credentials, a viewer, another tenant's editor), CRUD with field-path errors, drafts and publish,
 * ETags, references, cross-tenant route conflicts, write-only secrets, CSRF, login limits and audit records.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startControl } from '../../test/helpers/control.js';

const ctl = await startControl();
await ctl.tenant('acme');
await ctl.tenant('beta');
const acmeEditor = await ctl.member('acme', 'editor');
const acmeViewer = await ctl.member('acme', 'viewer');
const acmeAdmin = await ctl.member('acme', 'admin');
const betaEditor = await ctl.member('beta', 'editor');

/** Self-service routes any signed-in user may call: their own session and tokens. */
const SELF_SERVICE = new Set(['POST /api/v1/logout', 'POST /api/v1/tokens', 'DELETE /api/v1/tokens/:id']);

function concrete(url: string): string {
  return url.replace(':tenant', 'acme').replace(':routeId', 'no-such-route').replace(':id', 'no-such-id').replace(':n', '1').replace(':user', 'nobody');
}

describe('every admin route is guarded', () => {
  it('the route table covers the API (and the OpenAPI document lists it)', async () => {
    assert.ok(ctl.cp.routes.length > 60, `${ctl.cp.routes.length} routes`);
    const doc = await ctl.call('GET', '/api/v1/openapi.json');
    assert.equal(doc.status, 200);
    assert.equal(doc.body.openapi, '3.1.0');
    for (const r of ctl.cp.routes) assert.ok(doc.body.paths[r.url.replace(/:(\w+)/g, '{$1}')]?.[r.method.toLowerCase()], `${r.method} ${r.url} in openapi.json`);
  });

  it('without credentials every non-public route answers 401', async () => {
    for (const r of ctl.cp.routes) {
      if (r.access.kind === 'public') continue;
      const res = await ctl.call(r.method, concrete(r.url), { body: r.method === 'GET' || r.method === 'DELETE' ? undefined : {} });
      assert.equal(res.status, 401, `${r.method} ${r.url}: ${res.text}`);
      assert.equal(res.body.error.code, 'GH_ERR_AUTH_REQUIRED');
    }
  });

  it('a wrong or expired token is refused with 401, never treated as anonymous', async () => {
    const res = await ctl.call('GET', '/api/v1/tenants', { token: 'ght_not-a-real-token' });
    assert.equal(res.status, 401);
    assert.equal(res.body.error.code, 'GH_ERR_AUTH_INVALID');
  });

  it('a viewer is refused every mutating route (but their own session and tokens)', async () => {
    for (const r of ctl.cp.routes) {
      if (r.method === 'GET' || r.access.kind === 'public' || SELF_SERVICE.has(`${r.method} ${r.url}`)) continue;
      const res = await ctl.call(r.method, concrete(r.url), { token: acmeViewer, body: r.method === 'DELETE' ? undefined : {} });
      assert.equal(res.status, 403, `${r.method} ${r.url}: ${res.status} ${res.text}`);
      assert.equal(res.body.error.code, 'GH_ERR_ACCESS_DENIED');
    }
  });

  it('tenant B never reads or writes tenant A: every tenant route answers 404 as if A did not exist', async () => {
    for (const r of ctl.cp.routes) {
      if (r.access.kind !== 'tenant') continue;
      const res = await ctl.call(r.method, concrete(r.url), { token: betaEditor, body: r.method === 'GET' || r.method === 'DELETE' ? undefined : {} });
      assert.equal(res.status, 404, `${r.method} ${r.url}: ${res.status} ${res.text}`);
    }
    const list = await ctl.call('GET', '/api/v1/tenants', { token: betaEditor });
    assert.deepEqual(list.body.items.map((t: { id: string }) => t.id), ['beta']);
  });
});

describe('entities: drafts, validation, publish', () => {
  it('create with field-path errors, then a valid upstream and route; drafts are not live until published', async () => {
    const bad = await ctl.call('POST', '/api/v1/tenants/acme/upstreams', { token: acmeEditor, body: { id: 'users', nodes: [{ host: 'x', port: 70000 }] } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'GH_ERR_ADMIN_INVALID');
    assert.ok(bad.body.error.details.some((d: { path: string }) => d.path === 'nodes[0].port'), bad.text);
    const up = await ctl.call('POST', '/api/v1/tenants/acme/upstreams', { token: acmeEditor, body: { id: 'users', nodes: [{ host: '127.0.0.1', port: 9001 }] } });
    assert.equal(up.status, 201, up.text);
    assert.equal(up.headers.etag, '"1"');
    assert.deepEqual([up.body.pending, up.body.live, up.body.liveVersion], [true, null, 0]);
    const dangling = await ctl.call('POST', '/api/v1/tenants/acme/routes', { token: acmeEditor, body: { id: 'r1', paths: ['/users/*'], upstreamId: 'nope' } });
    assert.equal(dangling.status, 400);
    assert.deepEqual(dangling.body.error.details, [{ path: 'upstreamId', message: 'names upstream "nope", which does not exist' }]);
    const plugin = await ctl.call('POST', '/api/v1/tenants/acme/routes', { token: acmeEditor, body: { id: 'r1', paths: ['/users/*'], upstreamId: 'users', plugins: { 'limit-count': { count: 0, timeWindow: 1 } } } });
    assert.equal(plugin.status, 400);
    assert.ok(plugin.body.error.details.some((d: { path: string }) => d.path === 'plugins.limit-count.count'), plugin.text);
    const route = await ctl.call('POST', '/api/v1/tenants/acme/routes', { token: acmeEditor, body: { id: 'r1', paths: ['/users/*'], upstreamId: 'users' } });
    assert.equal(route.status, 201, route.text);
    assert.equal((await ctl.call('POST', '/api/v1/tenants/acme/routes', { token: acmeEditor, body: { id: 'r1', paths: ['/x'], upstreamId: 'users' } })).status, 409, 'the id exists');
    assert.deepEqual((await ctl.store.live()).entities, [], 'nothing is live');
    // Publishing the route before its upstream would break the live config.
    const early = await ctl.call('POST', '/api/v1/tenants/acme/routes/r1/publish', { token: acmeEditor, body: {} });
    assert.equal(early.status, 409, early.text);
    assert.ok(early.body.error.details.some((d: { path: string; message: string }) => d.path === 'upstreamId'), early.text);
    assert.equal((await ctl.call('POST', '/api/v1/tenants/acme/upstreams/users/publish', { token: acmeEditor, body: {} })).status, 200);
    const pub = await ctl.call('POST', '/api/v1/tenants/acme/routes/r1/publish', { token: acmeEditor, body: { note: 'first' } });
    assert.equal(pub.status, 200, pub.text);
    assert.equal(pub.body.version, 1);
    assert.deepEqual(pub.body.entity.live, { paths: ['/users/*'], upstreamId: 'users' });
    const live = await ctl.store.live();
    assert.deepEqual(live.entities.map((e) => `${e.tenant}/${e.kind}/${e.id}`), ['acme/routes/r1', 'acme/upstreams/users']);
  });

  it('If-Match: a stale write is refused with 412; PATCH merges; versions are listed', async () => {
    const cur = await ctl.call('GET', '/api/v1/tenants/acme/routes/r1', { token: acmeViewer });
    const etag = String(cur.headers.etag);
    const ok = await ctl.call('PATCH', '/api/v1/tenants/acme/routes/r1', { token: acmeEditor, headers: { 'if-match': etag }, body: { methods: ['GET'] } });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.body.draft, { paths: ['/users/*'], upstreamId: 'users', methods: ['GET'] });
    assert.deepEqual(ok.body.live, { paths: ['/users/*'], upstreamId: 'users' }, 'live unchanged until published');
    const stale = await ctl.call('PUT', '/api/v1/tenants/acme/routes/r1', { token: acmeEditor, headers: { 'if-match': etag }, body: { paths: ['/u'], upstreamId: 'users' } });
    assert.equal(stale.status, 412);
    assert.equal(stale.body.error.code, 'GH_ERR_ADMIN_STALE');
    const mismatch = await ctl.call('PUT', '/api/v1/tenants/acme/routes/r1', { token: acmeEditor, body: { id: 'other', paths: ['/u'], upstreamId: 'users' } });
    assert.deepEqual(mismatch.body.error.details, [{ path: 'id', message: 'does not match the id in the path' }]);
    await ctl.call('POST', '/api/v1/tenants/acme/routes/r1/publish', { token: acmeEditor, body: {} });
    const versions = await ctl.call('GET', '/api/v1/tenants/acme/routes/r1/versions', { token: acmeViewer });
    assert.deepEqual(versions.body.items.map((v: { version: number }) => v.version), [2, 1]);
    assert.equal((await ctl.call('GET', '/api/v1/tenants/acme/routes/r1/versions/1', { token: acmeViewer })).body.note, 'first');
    assert.equal((await ctl.call('GET', '/api/v1/tenants/acme/routes/r1/versions/9', { token: acmeViewer })).status, 404);
  });

  it('an upstream in use cannot be deleted (409 naming the user); lists page and filter', async () => {
    const del = await ctl.call('DELETE', '/api/v1/tenants/acme/upstreams/users', { token: acmeEditor });
    assert.equal(del.status, 409, del.text);
    assert.ok(del.body.error.details.some((d: { kind: string; id: string }) => d.kind === 'routes' && d.id === 'r1'), del.text);
    for (const id of ['a1', 'a2', 'b1']) {
      const r = await ctl.call('POST', '/api/v1/tenants/acme/upstreams', { token: acmeEditor, body: { id, nodes: [{ host: '127.0.0.1', port: 1 }], labels: { team: id[0]! } } });
      assert.equal(r.status, 201, r.text);
    }
    const page = await ctl.call('GET', '/api/v1/tenants/acme/upstreams?limit=2&offset=1', { token: acmeViewer });
    assert.deepEqual([page.body.total, page.body.items.map((e: { id: string }) => e.id)], [4, ['a2', 'b1']]);
    const labelled = await ctl.call('GET', '/api/v1/tenants/acme/upstreams?label=team:a', { token: acmeViewer });
    assert.deepEqual(labelled.body.items.map((e: { id: string }) => e.id), ['a1', 'a2']);
    assert.equal((await ctl.call('GET', '/api/v1/tenants/acme/upstreams?limit=0', { token: acmeViewer })).status, 400);
    const gone = await ctl.call('DELETE', '/api/v1/tenants/acme/upstreams/b1', { token: acmeEditor });
    assert.deepEqual(gone.body, { id: 'b1', deleted: true }, 'a never-published draft just goes');
  });

  it('a route that claims another tenant\'s host and path is refused, naming the conflict', async () => {
    await ctl.call('POST', '/api/v1/tenants/beta/upstreams', { token: betaEditor, body: { id: 'b', nodes: [{ host: '127.0.0.1', port: 1 }] } });
    const clash = await ctl.call('POST', '/api/v1/tenants/beta/routes', { token: betaEditor, body: { id: 'mine', paths: ['/users/*'], upstreamId: 'b' } });
    assert.equal(clash.status, 409, clash.text);
    assert.match(clash.body.error.message, /tenant "acme" \(route "r1"\)/);
    const otherHost = await ctl.call('POST', '/api/v1/tenants/beta/routes', { token: betaEditor, body: { id: 'mine', paths: ['/users/*'], hosts: ['beta.example.com'], upstreamId: 'b' } });
    assert.equal(otherHost.status, 409, 'acme\'s route has no hosts: it serves every host');
    const distinct = await ctl.call('POST', '/api/v1/tenants/beta/routes', { token: betaEditor, body: { id: 'mine', paths: ['/beta/*'], upstreamId: 'b' } });
    assert.equal(distinct.status, 201, distinct.text);
  });
});

describe('secrets, CSRF, logins and audit', () => {
  it('consumer keys are write-only: never returned, audited or logged; a round trip keeps them', async () => {
    const secret = 'acme-very-secret-key-0001';
    const c = await ctl.call('POST', '/api/v1/tenants/acme/consumers', { token: acmeEditor, body: { username: 'alice', credentials: { 'key-auth': { key: secret } } } });
    assert.equal(c.status, 201, c.text);
    assert.deepEqual(c.body.draft.credentials, { 'key-auth': { key: '[redacted]' } });
    const read = await ctl.call('GET', '/api/v1/tenants/acme/consumers/alice', { token: acmeViewer });
    assert.ok(!read.text.includes(secret));
    // The client sends back what it read, with a label added: the key must survive.
    const round = await ctl.call('PUT', '/api/v1/tenants/acme/consumers/alice', { token: acmeEditor, body: { ...read.body.draft, labels: { plan: 'gold' } } });
    assert.equal(round.status, 200, round.text);
    await ctl.call('POST', '/api/v1/tenants/acme/consumers/alice/publish', { token: acmeEditor, body: {} });
    const live = await ctl.store.live();
    const alice = live.entities.find((e) => e.kind === 'consumers' && e.id === 'alice')!;
    assert.deepEqual(alice.content, { credentials: { 'key-auth': { key: secret } }, labels: { plan: 'gold' } });
    const audit = await ctl.call('GET', '/api/v1/audit?tenant=acme', { token: acmeAdmin });
    assert.ok(audit.body.items.length > 0);
    assert.ok(!audit.text.includes(secret), 'audit keeps no secret');
    const versions = await ctl.call('GET', '/api/v1/tenants/acme/consumers/alice/versions', { token: acmeViewer });
    assert.ok(!versions.text.includes(secret));
    assert.ok(!ctl.logs.join('').includes(secret), 'logs keep no secret');
  });

  it('another tenant cannot take a consumer name or key that is live elsewhere', async () => {
    const same = await ctl.call('POST', '/api/v1/tenants/beta/consumers', { token: betaEditor, body: { username: 'bob', credentials: { 'key-auth': { key: 'acme-very-secret-key-0001' } } } });
    assert.equal(same.status, 201, 'drafts are checked within the tenant');
    const pub = await ctl.call('POST', '/api/v1/tenants/beta/consumers/bob/publish', { token: betaEditor, body: {} });
    assert.equal(pub.status, 409, pub.text);
    assert.ok(!pub.text.includes('acme-very-secret-key-0001'), 'the refusal does not echo the key');
    assert.ok(!pub.text.includes('alice'), 'nor name the other tenant\'s consumer');
  });

  it('a change made with the session cookie needs the CSRF token; logins are limited', async () => {
    const login = await ctl.call('POST', '/api/v1/login', { body: { username: 'root', password: 'root-password-123' } });
    assert.equal(login.status, 200);
    const setCookie = String(login.headers['set-cookie']);
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    const cookie = setCookie.split(';')[0]!;
    const noCsrf = await ctl.call('POST', '/api/v1/tenants', { cookie, body: { id: 'gamma', name: 'G' } });
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.body.error.code, 'GH_ERR_ADMIN_CSRF');
    const withCsrf = await ctl.call('POST', '/api/v1/tenants', { cookie, headers: { 'x-csrf-token': login.body.csrfToken }, body: { id: 'gamma', name: 'G' } });
    assert.equal(withCsrf.status, 201, withCsrf.text);
    assert.equal((await ctl.call('GET', '/api/v1/me', { cookie })).status, 200, 'reads need no CSRF token');
    await ctl.call('POST', '/api/v1/logout', { cookie, headers: { 'x-csrf-token': login.body.csrfToken } });
    assert.equal((await ctl.call('GET', '/api/v1/me', { cookie })).status, 401, 'the session ended');
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) codes.push((await ctl.call('POST', '/api/v1/login', { body: { username: 'mallory', password: `guess-${i}` } })).status);
    assert.deepEqual(codes, [401, 401, 401, 401, 401, 429]);
  });

  it('every mutating call leaves exactly one audit record with who, where, what, before and after', async () => {
    const before = (await ctl.store.queryAudit({ limit: 1000 })).length;
    await ctl.call('POST', '/api/v1/tenants/acme/services', { token: acmeEditor, body: { id: 's1', upstreamId: 'users' } });
    await ctl.call('PATCH', '/api/v1/tenants/acme/services/s1', { token: acmeEditor, body: { labels: { a: 'b' } } });
    await ctl.call('POST', '/api/v1/tenants/acme/services/s1/publish', { token: acmeEditor, body: {} });
    await ctl.call('PUT', '/api/v1/tenants/acme/members/viewer-extra', { token: acmeAdmin, body: { role: 'viewer' } }); // 404: no such user, no record
    await ctl.call('POST', '/api/v1/tenants/acme/services', { token: acmeViewer, body: { id: 's2', upstreamId: 'users' } }); // 403, no record
    const records = (await ctl.store.queryAudit({ limit: 1000 })).slice(0, (await ctl.store.queryAudit({ limit: 1000 })).length - before);
    assert.deepEqual(records.map((r) => r.action).reverse(), ['services.create', 'services.update', 'services.publish']);
    const upd = records.find((r) => r.action === 'services.update')!;
    assert.deepEqual([upd.tenant, upd.kind, upd.entityId, upd.before, upd.after], ['acme', 'services', 's1', { upstreamId: 'users' }, { upstreamId: 'users', labels: { a: 'b' } }]);
    assert.match(upd.actor, /^editor-acme-/);
    assert.equal(upd.source, '127.0.0.1');
    const byUser = await ctl.call('GET', `/api/v1/audit?tenant=acme&user=${upd.actor}&entity=s1`, { token: acmeAdmin });
    assert.equal(byUser.body.items.length, 3);
    assert.equal((await ctl.call('GET', '/api/v1/audit?tenant=acme', { token: acmeEditor })).status, 403, 'only tenant admins read the audit trail');
    assert.equal((await ctl.call('GET', '/api/v1/audit', { token: acmeAdmin })).status, 400, 'a tenant admin names the tenant');
  });
});

describe('versions: diff and rollback of one entity', () => {
  it('rolls one route back as a new version, leaving every other entity as it was; refuses what no longer fits', async () => {
    const T = '/api/v1/tenants/beta';
    const ok = async (method: string, url: string, body?: unknown, status = [200, 201]) => {
      const r = await ctl.call(method, url, { token: betaEditor, body });
      assert.ok(status.includes(r.status), `${method} ${url}: ${r.status} ${r.text}`);
      return r;
    };
    for (const id of ['v1', 'v2']) {
      await ok('POST', `${T}/upstreams`, { id, nodes: [{ host: '127.0.0.1', port: 1 }] });
      await ok('POST', `${T}/upstreams/${id}/publish`, {});
    }
    await ok('POST', `${T}/routes`, { id: 'roll', paths: ['/roll'], upstreamId: 'v1' });
    await ok('POST', `${T}/routes/roll/publish`, {});
    await ok('POST', `${T}/routes`, { id: 'other', paths: ['/other'], upstreamId: 'v1' });
    await ok('POST', `${T}/routes/other/publish`, {});
    await ok('PATCH', `${T}/routes/roll`, { upstreamId: 'v2', methods: ['GET'] });
    await ok('POST', `${T}/routes/roll/publish`, {});

    const d = await ok('GET', `${T}/routes/roll/versions/1/diff/2`);
    assert.deepEqual(d.body.changes, [
      { path: 'upstreamId', op: 'replace', from: 'v1', to: 'v2' },
      { path: 'methods', op: 'add', to: ['GET'] },
    ]);

    const liveBefore = (await ctl.store.live()).entities.filter((e) => !(e.kind === 'routes' && e.id === 'roll'));
    const back = await ok('POST', `${T}/routes/roll/rollback`, { version: 1 });
    assert.equal(back.body.version, 3, 'a new version');
    assert.deepEqual(back.body.entity.live, { paths: ['/roll'], upstreamId: 'v1' });
    const liveAfter = (await ctl.store.live()).entities.filter((e) => !(e.kind === 'routes' && e.id === 'roll'));
    assert.deepEqual(liveAfter, liveBefore, 'no other entity changed');
    assert.equal((await ctl.store.listVersions('beta', 'routes', 'roll'))[0]!.note, 'rollback to version 1');
    const audit = await ctl.store.queryAudit({ tenant: 'beta', entityId: 'roll', limit: 1 });
    assert.deepEqual(audit.map((a) => a.action), ['routes.rollback']);
    const rolled = await ok('GET', `${T}/routes/roll`);
    assert.equal(rolled.body.pending, false, 'the draft follows the rolled-back live state');
    assert.deepEqual(rolled.body.draft, rolled.body.live);

    // Refused while the route has unpublished changes.
    await ok('PATCH', `${T}/routes/roll`, { methods: ['POST'] });
    const pending = await ctl.call('POST', `${T}/routes/roll/rollback`, { token: betaEditor, body: { version: 2 } });
    assert.equal(pending.status, 409);
    await ok('POST', `${T}/routes/roll/publish`, {});

    // Refused when what the version names is gone: move both routes off v1, delete v1, roll back to version 1.
    await ok('PATCH', `${T}/routes/roll`, { upstreamId: 'v2' });
    await ok('POST', `${T}/routes/roll/publish`, {});
    await ok('PATCH', `${T}/routes/other`, { upstreamId: 'v2' });
    await ok('POST', `${T}/routes/other/publish`, {});
    await ok('DELETE', `${T}/upstreams/v1`);
    await ok('POST', `${T}/upstreams/v1/publish`, {});
    const gone = await ctl.call('POST', `${T}/routes/roll/rollback`, { token: betaEditor, body: { version: 1 } });
    assert.equal(gone.status, 409, gone.text);
    assert.deepEqual(gone.body.error.details, [{ kind: 'routes', id: 'roll', path: 'upstreamId', message: 'names upstream "v1", which does not exist' }]);
    assert.equal((await ctl.call('POST', `${T}/routes/roll/rollback`, { token: acmeViewer, body: { version: 1 } })).status, 404, 'other tenants cannot');
  });
});

describe('upstream nodes', () => {
  it('lists the static nodes of an upstream (live, else draft) with their source; other tenants get 404', async () => {
    const T = '/api/v1/tenants/acme';
    const r = await ctl.call('POST', `${T}/upstreams`, { token: acmeEditor, body: { id: 'nodes-u', nodes: [{ host: '10.0.0.1', port: 80, weight: 3, metadata: { zone: 'a' } }] } });
    assert.equal(r.status, 201, r.text);
    const n = await ctl.call('GET', `${T}/upstreams/nodes-u/nodes`, { token: acmeViewer });
    assert.equal(n.status, 200, n.text);
    assert.deepEqual(n.body.items, [{ host: '10.0.0.1', port: 80, weight: 3, metadata: { zone: 'a' }, source: 'static', health: 'unknown' }]);
    assert.equal((await ctl.call('GET', `${T}/upstreams/nodes-u/nodes`, { token: betaEditor })).status, 404);
    assert.equal((await ctl.call('GET', `${T}/upstreams/none/nodes`, { token: acmeViewer })).status, 404);
  });
});
