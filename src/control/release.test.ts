/**
 * @module control/release.test
 * Release controls through the admin API on a real SQLite store: review before publish (who may submit,
 * approve, reject, withdraw), the skip-review lane and its audit records, 409 and rebase for a second change
 * from the same base, bundles applied all or nothing, rollback by the review policy, gray release records
 * (start, list, stop, promote; by review too) and tenant isolation of all of it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startControl } from '../../test/helpers/control.js';

const ctl = await startControl();
await ctl.tenant('shop', { reviewRequired: true });
await ctl.tenant('other', { reviewRequired: true });
const editor = await ctl.member('shop', 'editor', 'ed');
const editor2 = await ctl.member('shop', 'editor', 'ed2');
const reviewer = await ctl.member('shop', 'reviewer', 'rita');
const admin = await ctl.member('shop', 'admin', 'ada');
const viewer = await ctl.member('shop', 'viewer', 'vic');
const outsider = await ctl.member('other', 'admin', 'oscar');
const T = '/api/v1/tenants/shop';

async function ok(token: string, method: string, url: string, body?: unknown, status: number[] = [200, 201]) {
  const r = await ctl.call(method, url, { token, body });
  assert.ok(status.includes(r.status), `${method} ${url}: ${r.status} ${r.text}`);
  return r;
}

async function live(kind: string, id: string) {
  return (await ctl.store.getEntity('shop', kind as 'routes', id))?.live ?? null;
}

// An upstream live by the admin's skip-review lane, the base of everything below.
await ok(editor, 'POST', `${T}/upstreams`, { id: 'u1', nodes: [{ host: '127.0.0.1', port: 1 }] });
await ok(admin, 'POST', `${T}/upstreams/u1/publish`, { skipReview: true });

describe('review before publish', () => {
  it("an editor's publish becomes a change; it is live only once another reviewer approves it", async () => {
    await ok(editor, 'POST', `${T}/routes`, { id: 'r1', paths: ['/r1'], upstreamId: 'u1' });
    const sub = await ok(editor, 'POST', `${T}/routes/r1/publish`, { note: 'first route' }, [202]);
    const change = sub.body.change;
    assert.equal(change.status, 'open');
    assert.equal(change.author, 'ed');
    assert.deepEqual(change.items.map((i: { op: string; kind: string; id: string; baseVersion: number }) => [i.op, i.kind, i.id, i.baseVersion]), [['publish', 'routes', 'r1', 0]]);
    assert.deepEqual(change.items[0].changes, [{ path: '(entity)', op: 'add', to: { paths: ['/r1'], upstreamId: 'u1' } }]);
    assert.equal(await live('routes', 'r1'), null, 'not live before approval');

    // Who may not approve: the author, a viewer, another editor, another tenant's admin.
    const own = await ctl.call('POST', `${T}/changes/${change.id}/approve`, { token: editor, body: {} });
    assert.equal(own.status, 403, 'an editor has no review permission');
    const selfAdmin = await ok(admin, 'POST', `${T}/routes`, { id: 'self', paths: ['/self'], upstreamId: 'u1' });
    void selfAdmin;
    const adminChange = (await ok(admin, 'POST', `${T}/routes/self/publish`, {}, [202])).body.change;
    const selfApprove = await ctl.call('POST', `${T}/changes/${adminChange.id}/approve`, { token: admin, body: {} });
    assert.equal(selfApprove.status, 403, selfApprove.text);
    assert.match(selfApprove.body.error.message, /another reviewer/);
    assert.equal((await ctl.call('POST', `${T}/changes/${change.id}/approve`, { token: viewer, body: {} })).status, 403);
    assert.equal((await ctl.call('POST', `${T}/changes/${change.id}/approve`, { token: editor2, body: {} })).status, 403);
    assert.equal((await ctl.call('POST', `${T}/changes/${change.id}/approve`, { token: outsider, body: {} })).status, 404, 'another tenant cannot see it');
    assert.equal((await ctl.call('GET', `${T}/changes`, { token: outsider })).status, 404);

    const approved = await ok(reviewer, 'POST', `${T}/changes/${change.id}/approve`, { comment: 'looks right' });
    assert.equal(approved.body.change.status, 'approved');
    assert.equal(approved.body.change.decidedBy, 'rita');
    assert.deepEqual(approved.body.versions, [{ kind: 'routes', id: 'r1', version: 1 }]);
    assert.deepEqual(await live('routes', 'r1'), { paths: ['/r1'], upstreamId: 'u1' });
    const [v] = await ctl.store.listVersions('shop', 'routes', 'r1');
    assert.equal(v!.author, 'ed');
    assert.equal(v!.reviewedBy, 'rita');
    assert.equal(v!.changeId, change.id);
    assert.equal((await ctl.call('POST', `${T}/changes/${change.id}/approve`, { token: reviewer, body: {} })).status, 409, 'approved once only');

    // The audit trail: submitted by the editor, approved and published by the reviewer.
    const trail = await ctl.store.queryAudit({ tenant: 'shop', limit: 50 });
    assert.ok(trail.some((a) => a.action === 'change.submit' && a.actor === 'ed'));
    assert.ok(trail.some((a) => a.action === 'change.approve' && a.actor === 'rita' && a.entityId === String(change.id)));
    assert.ok(trail.some((a) => a.action === 'routes.publish' && a.actor === 'rita' && a.entityId === 'r1'));
  });

  it('a viewer can do none of it; a reviewer cannot write or publish', async () => {
    await ok(editor, 'POST', `${T}/routes`, { id: 'r2', paths: ['/r2'], upstreamId: 'u1' });
    assert.equal((await ctl.call('POST', `${T}/routes/r2/publish`, { token: viewer, body: {} })).status, 403);
    assert.equal((await ctl.call('POST', `${T}/changes`, { token: viewer, body: { title: 't', items: [{ kind: 'routes', id: 'r2' }] } })).status, 403);
    assert.equal((await ctl.call('POST', `${T}/routes/r2/publish`, { token: reviewer, body: {} })).status, 403);
    assert.equal((await ctl.call('PATCH', `${T}/routes/r2`, { token: reviewer, body: { methods: ['GET'] } })).status, 403);
    const c = (await ok(editor, 'POST', `${T}/routes/r2/publish`, {}, [202])).body.change;
    assert.equal((await ctl.call('POST', `${T}/changes/${c.id}/reject`, { token: viewer, body: { comment: 'no' } })).status, 403);
    assert.equal((await ctl.call('POST', `${T}/changes/${c.id}/withdraw`, { token: viewer, body: {} })).status, 403);
    assert.equal((await ok(viewer, 'GET', `${T}/changes/${c.id}`)).body.id, c.id, 'a viewer reads changes');
  });

  it('reject needs a comment; withdraw is for the author (or a tenant admin)', async () => {
    await ok(editor, 'POST', `${T}/routes`, { id: 'r3', paths: ['/r3'], upstreamId: 'u1' });
    const c = (await ok(editor, 'POST', `${T}/routes/r3/publish`, {}, [202])).body.change;
    assert.equal((await ctl.call('POST', `${T}/changes/${c.id}/reject`, { token: reviewer, body: {} })).status, 400);
    const rej = await ok(reviewer, 'POST', `${T}/changes/${c.id}/reject`, { comment: 'paths clash with the plan' });
    assert.equal(rej.body.status, 'rejected');
    assert.equal(rej.body.comment, 'paths clash with the plan');
    assert.equal(await live('routes', 'r3'), null);

    const c2 = (await ok(editor, 'POST', `${T}/routes/r3/publish`, {}, [202])).body.change;
    assert.equal((await ctl.call('POST', `${T}/changes/${c2.id}/withdraw`, { token: editor2, body: {} })).status, 403, 'not the author');
    assert.equal((await ok(editor, 'POST', `${T}/changes/${c2.id}/withdraw`, {})).body.status, 'withdrawn');
    assert.equal((await ctl.call('POST', `${T}/changes/${c2.id}/approve`, { token: reviewer, body: {} })).status, 409, 'a withdrawn change cannot be approved');
    const list = await ok(viewer, 'GET', `${T}/changes?status=withdrawn`);
    assert.ok(list.body.items.some((x: { id: number }) => x.id === c2.id));
    assert.equal((await ctl.call('GET', `${T}/changes?status=bogus`, { token: viewer })).status, 400);
  });

  it('an action with a JSON content type and no body is taken; a malformed body is refused', async () => {
    await ok(editor, 'POST', `${T}/routes`, { id: 'r4', paths: ['/r4'], upstreamId: 'u1' });
    const c = (await ok(editor, 'POST', `${T}/routes/r4/publish`, {}, [202])).body.change;
    const headers = { authorization: `Bearer ${editor}`, 'content-type': 'application/json' };
    const bad = await ctl.cp.app.inject({ method: 'POST', url: `${T}/changes/${c.id}/withdraw`, headers, payload: '{"oops' });
    assert.equal(bad.statusCode, 400);
    const proto = await ctl.cp.app.inject({ method: 'POST', url: `${T}/changes/${c.id}/reject`, headers: { ...headers, authorization: `Bearer ${reviewer}` }, payload: '{"__proto__": {"x": 1}, "comment": "c"}' });
    assert.equal(proto.statusCode, 400, 'prototype poisoning is refused');
    const empty = await ctl.cp.app.inject({ method: 'POST', url: `${T}/changes/${c.id}/withdraw`, headers });
    assert.equal(empty.statusCode, 200, empty.body);
    assert.equal(JSON.parse(empty.body).status, 'withdrawn');
  });

  it('the skip-review lane: only the roles the tenant allows, and audited as such', async () => {
    await ok(editor, 'POST', `${T}/routes`, { id: 'hot', paths: ['/hot'], upstreamId: 'u1' });
    const denied = await ctl.call('POST', `${T}/routes/hot/publish`, { token: editor, body: { skipReview: true } });
    assert.equal(denied.status, 403, denied.text);
    assert.match(denied.body.error.message, /skip-review lane .* is for admin/);
    const direct = await ok(admin, 'POST', `${T}/routes/hot/publish`, { skipReview: true });
    assert.equal(direct.body.version, 1);
    assert.deepEqual(await live('routes', 'hot'), { paths: ['/hot'], upstreamId: 'u1' });
    const [rec] = await ctl.store.queryAudit({ tenant: 'shop', entityId: 'hot', limit: 1 });
    assert.equal(rec!.action, 'routes.publish.skip-review');
    assert.equal(rec!.actor, 'ada');

    // The tenant admin lets editors take the lane; a reviewer cannot change the policy.
    assert.equal((await ctl.call('PATCH', T, { token: reviewer, body: { skipReviewRoles: ['admin', 'editor'] } })).status, 403);
    assert.deepEqual((await ok(admin, 'PATCH', T, { skipReviewRoles: ['admin', 'editor'] })).body.skipReviewRoles, ['admin', 'editor']);
    await ok(editor, 'PATCH', `${T}/routes/hot`, { methods: ['GET'] });
    assert.equal((await ok(editor, 'POST', `${T}/routes/hot/publish`, { skipReview: true })).body.version, 2);
    await ok(admin, 'PATCH', T, { skipReviewRoles: ['admin'] });
    assert.equal((await ok(viewer, 'GET', T)).body.reviewRequired, true);
  });

  it('two changes from the same base: the second to be approved gets 409 and must be rebased', async () => {
    await ok(editor, 'PATCH', `${T}/routes/r1`, { methods: ['GET'] });
    const a = (await ok(editor, 'POST', `${T}/routes/r1/publish`, {}, [202])).body.change;
    await ok(editor2, 'PATCH', `${T}/routes/r1`, { methods: ['POST'] });
    const b = (await ok(editor2, 'POST', `${T}/routes/r1/publish`, {}, [202])).body.change;
    assert.equal(a.items[0].baseVersion, 1);
    assert.equal(b.items[0].baseVersion, 1);
    await ok(reviewer, 'POST', `${T}/changes/${a.id}/approve`, {});
    assert.deepEqual((await live('routes', 'r1'))!.methods, ['GET']);
    const second = await ctl.call('POST', `${T}/changes/${b.id}/approve`, { token: reviewer, body: {} });
    assert.equal(second.status, 409, second.text);
    assert.deepEqual(second.body.error.details, [{ kind: 'routes', id: 'r1', baseVersion: 1, currentVersion: 2 }]);
    assert.deepEqual((await live('routes', 'r1'))!.methods, ['GET'], 'the first change was not overwritten');
    assert.equal((await ok(viewer, 'GET', `${T}/changes/${b.id}`)).body.status, 'open');

    const rebased = await ok(editor2, 'POST', `${T}/changes/${b.id}/rebase`, {});
    assert.equal(rebased.body.items[0].baseVersion, 2);
    assert.deepEqual(rebased.body.items[0].changes, [{ path: 'methods[0]', op: 'replace', from: 'GET', to: 'POST' }], 'the reviewer sees what it changes now');
    await ok(reviewer, 'POST', `${T}/changes/${b.id}/approve`, {});
    assert.deepEqual((await live('routes', 'r1'))!.methods, ['POST']);
  });

  it('a bundle publishes every entity or none', async () => {
    await ok(editor, 'POST', `${T}/upstreams`, { id: 'u-new', nodes: [{ host: '127.0.0.1', port: 2 }] });
    await ok(editor, 'POST', `${T}/routes`, { id: 'bundled', paths: ['/bundled'], upstreamId: 'u-new' });
    // The route alone cannot go live: its upstream is not live.
    const alone = await ctl.call('POST', `${T}/changes`, { token: editor, body: { title: 'route only', items: [{ kind: 'routes', id: 'bundled' }] } });
    assert.equal(alone.status, 409, alone.text);
    const c = (await ok(editor, 'POST', `${T}/changes`, { title: 'new upstream and its route', items: [{ kind: 'upstreams', id: 'u-new' }, { kind: 'routes', id: 'bundled' }] })).body;
    assert.equal(c.items.length, 2);

    // Meanwhile the upstream goes live by another path: the bundle's base for it moved on, so nothing applies.
    const other = (await ok(editor2, 'POST', `${T}/upstreams/u-new/publish`, {}, [202])).body.change;
    await ok(reviewer, 'POST', `${T}/changes/${other.id}/approve`, {});
    await ok(editor, 'PATCH', `${T}/upstreams/u-new`, { nodes: [{ host: '127.0.0.1', port: 3 }] });
    await ok(admin, 'POST', `${T}/upstreams/u-new/publish`, { skipReview: true });
    const refused = await ctl.call('POST', `${T}/changes/${c.id}/approve`, { token: reviewer, body: {} });
    assert.equal(refused.status, 409, refused.text);
    assert.equal(await live('routes', 'bundled'), null, 'the route did not go live alone');
    assert.deepEqual((await live('upstreams', 'u-new'))!.nodes, [{ host: '127.0.0.1', port: 3 }], 'nor was the upstream overwritten');

    await ok(editor, 'POST', `${T}/changes/${c.id}/rebase`, {});
    const done = await ok(reviewer, 'POST', `${T}/changes/${c.id}/approve`, {});
    assert.deepEqual(done.body.versions.map((v: { kind: string }) => v.kind).sort(), ['routes', 'upstreams']);
    assert.deepEqual(await live('routes', 'bundled'), { paths: ['/bundled'], upstreamId: 'u-new' });
    assert.deepEqual((await live('upstreams', 'u-new'))!.nodes, [{ host: '127.0.0.1', port: 2 }], 'the bundle\'s content, as reviewed');
  });

  it('rollback goes through the review policy unless the skip-review lane is taken', async () => {
    const before = (await ctl.store.live()).entities.filter((e) => !(e.kind === 'routes' && e.id === 'r1'));
    const c = (await ok(editor, 'POST', `${T}/routes/r1/rollback`, { version: 1, note: 'bad methods' }, [202])).body.change;
    assert.equal(c.title, 'Roll back routes r1 to version 1');
    assert.equal((await live('routes', 'r1'))!.methods?.toString(), 'POST', 'not rolled back before approval');
    const done = await ok(reviewer, 'POST', `${T}/changes/${c.id}/approve`, {});
    const [v] = done.body.versions;
    assert.deepEqual(await live('routes', 'r1'), { paths: ['/r1'], upstreamId: 'u1' });
    assert.equal((await ctl.store.getVersion('shop', 'routes', 'r1', v.version))!.note, 'rollback to version 1: bad methods');
    const after = (await ctl.store.live()).entities.filter((e) => !(e.kind === 'routes' && e.id === 'r1'));
    assert.deepEqual(after, before, 'no other entity changed');
    const [rec] = await ctl.store.queryAudit({ tenant: 'shop', entityId: 'r1', limit: 1 });
    assert.equal(rec!.action, 'routes.rollback');
    // The emergency lane.
    const fast = await ok(admin, 'POST', `${T}/routes/r1/rollback`, { version: 3, skipReview: true });
    assert.equal(fast.body.rolledBackTo, 3);
    assert.equal((await ctl.store.queryAudit({ tenant: 'shop', entityId: 'r1', limit: 1 }))[0]!.action, 'routes.rollback.skip-review');
  });
});

describe('gray release records', () => {
  const G = '/admin/services/gray/shop/routes';

  it('start (by review), list, stop, start again and promote', async () => {
    await ok(editor, 'PATCH', `${T}/routes/r2`, { methods: ['GET'] });
    await ok(admin, 'POST', `${T}/routes/r2/publish`, { skipReview: true });
    await ok(editor, 'PATCH', `${T}/routes/r2`, { methods: ['GET', 'HEAD'] });
    assert.equal((await ctl.call('POST', G, { token: viewer, body: { routeId: 'r2', instances: ['gw-a'], version: 'draft' } })).status, 403);
    const bad = await ctl.call('POST', G, { token: editor, body: { routeId: 'r2', instances: [], version: 'draft' } });
    assert.equal(bad.status, 400);
    const sub = await ok(editor, 'POST', G, { routeId: 'r2', instances: ['gw-a'], version: 'draft' }, [202]);
    assert.equal((await ok(viewer, 'GET', G)).body.items.length, 0, 'nothing gray before approval');
    await ok(reviewer, 'POST', `${T}/changes/${sub.body.change.id}/approve`, {});
    const list = (await ok(viewer, 'GET', G)).body.items;
    assert.equal(list.length, 1);
    const liveVersion = (await ctl.store.getEntity('shop', 'routes', 'r2'))!.liveVersion;
    assert.equal(list[0].routeId, 'r2');
    assert.equal(list[0].baseVersion, liveVersion);
    assert.equal(list[0].version, liveVersion + 1, 'the gray content is a new version');
    assert.deepEqual(list[0].instances, [{ id: 'gw-a', state: 'gone' }], 'no such instance registered here');
    const versions = (await ok(viewer, 'GET', `${T}/routes/r2/versions`)).body.items;
    assert.equal(versions[0].channel, 'gray');
    assert.deepEqual((await live('routes', 'r2'))!.methods, ['GET'], 'live is unchanged');
    assert.deepEqual((await ctl.store.live()).gray.map((g) => [g.tenant, g.routeId, g.instances]), [['shop', 'r2', ['gw-a']]]);

    assert.equal((await ctl.call('POST', G, { token: admin, body: { routeId: 'r2', instances: ['gw-b'], version: 1, skipReview: true } })).status, 409, 'one gray release per route');
    assert.equal((await ctl.call('DELETE', `${G}/r2`, { token: viewer })).status, 403);
    assert.equal((await ok(editor, 'DELETE', `${G}/r2`)).body.stopped, true);
    assert.equal((await ctl.call('DELETE', `${G}/r2`, { token: editor })).status, 404);
    assert.equal((await ctl.store.live()).gray.length, 0);

    const again = await ok(admin, 'POST', G, { routeId: 'r2', instances: ['gw-a', 'gw-b'], version: 'draft', skipReview: true }, [201]);
    assert.deepEqual(again.body.instances.map((i: { id: string }) => i.id), ['gw-a', 'gw-b']);
    assert.equal((await ctl.store.queryAudit({ tenant: 'shop', entityId: 'r2', limit: 1 }))[0]!.action, 'routes.gray.start.skip-review');
    const promo = await ok(editor, 'POST', `${G}/r2/promote`, {}, [202]);
    await ok(reviewer, 'POST', `${T}/changes/${promo.body.change.id}/approve`, {});
    assert.deepEqual((await live('routes', 'r2'))!.methods, ['GET', 'HEAD'], 'the gray version is live everywhere');
    assert.equal((await ctl.store.live()).gray.length, 0);
    assert.equal((await ok(viewer, 'GET', `${T}/routes/r2`)).body.pending, false);
  });

  it('promote is refused once the live version moved on; gray releases are per tenant', async () => {
    await ok(editor, 'PATCH', `${T}/routes/r2`, { methods: ['PUT'] });
    await ok(admin, 'POST', G, { routeId: 'r2', instances: ['gw-a'], version: 'draft', skipReview: true }, [201]);
    // The route goes live again while its gray release runs.
    await ok(admin, 'POST', `${T}/routes/r2/publish`, { skipReview: true });
    const refused = await ctl.call('POST', `${G}/r2/promote`, { token: admin, body: { skipReview: true } });
    assert.equal(refused.status, 409, refused.text);
    assert.equal((await ctl.call('GET', '/admin/services/gray/shop/routes', { token: outsider })).status, 404);
    assert.equal((await ok(outsider, 'GET', '/admin/services/gray/other/routes')).body.items.length, 0);
    await ok(admin, 'DELETE', `${G}/r2`);
  });

  it('deleting a route under a gray release is refused until it is stopped', async () => {
    await ok(admin, 'POST', G, { routeId: 'r1', instances: ['gw-a'], version: 1, skipReview: true }, [201]);
    await ok(editor, 'DELETE', `${T}/routes/r1`);
    const del = await ctl.call('POST', `${T}/routes/r1/publish`, { token: admin, body: { skipReview: true } });
    assert.equal(del.status, 409, del.text);
    assert.match(del.body.error.message, /gray release/);
    await ok(admin, 'DELETE', `${G}/r1`);
    await ok(admin, 'POST', `${T}/routes/r1/publish`, { skipReview: true });
    assert.equal(await live('routes', 'r1'), null);
  });
});
