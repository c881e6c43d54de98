/**
 * @module store/conformance
 * The behaviour every store backend must have, as node:test suites: a backend's test file calls
 * `storeConformance(name, open)` and must pass all of it. `open` gives a fresh, initialised store; `reopen`
 * (when the backend persists) closes and opens the same data again.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StoreConflict, type AuditInput, type Store } from './types.js';

export interface ConformanceTarget {
  store: Store;
  /** Close and open the same data again (persistent backends). */
  reopen?: () => Promise<Store>;
  cleanup?: () => Promise<void>;
}

const audit = (action: string, extra: Partial<AuditInput> = {}): AuditInput => ({
  actor: 'tester',
  source: '127.0.0.1',
  tenant: 'acme',
  kind: 'routes',
  entityId: null,
  action,
  before: null,
  after: null,
  ...extra,
});

async function conflict(p: Promise<unknown>, reason: StoreConflict['reason']): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof StoreConflict && e.reason === reason);
}

export function storeConformance(name: string, open: () => Promise<ConformanceTarget>): void {
  const withStore = (fn: (t: ConformanceTarget) => Promise<void>) => async () => {
    const t = await open();
    try {
      await fn(t);
    } finally {
      await t.store.close();
      await t.cleanup?.();
    }
  };

  describe(`store conformance: ${name}`, () => {
    it(
      'tenants, users and memberships',
      withStore(async ({ store }) => {
        await store.createTenant({ id: 'acme', name: 'Acme', reviewRequired: false, skipReviewRoles: ['admin'] }, audit('tenant.create'));
        await conflict(store.createTenant({ id: 'acme', name: 'again', reviewRequired: true, skipReviewRoles: ['admin'] }, audit('tenant.create')), 'exists');
        assert.deepEqual((await store.listTenants()).map((t) => [t.id, t.name, t.reviewRequired]), [['acme', 'Acme', false]]);
        const u = await store.createUser({ id: 'u1', username: 'alice', passwordHash: 'h1', superadmin: false, disabled: false }, audit('user.create'));
        assert.equal((await store.getUserByName('alice'))?.id, u.id);
        assert.equal((await store.getUserById('u1'))?.username, 'alice');
        await conflict(store.createUser({ id: 'u2', username: 'alice', passwordHash: 'x', superadmin: false, disabled: false }, audit('user.create')), 'exists');
        await store.setMembership('acme', 'u1', 'editor', audit('member.set'));
        assert.equal((await store.getMembership('acme', 'u1'))?.role, 'editor');
        await store.setMembership('acme', 'u1', 'viewer', audit('member.set'));
        assert.deepEqual(await store.listMembers('acme'), [{ tenant: 'acme', userId: 'u1', role: 'viewer' }]);
        assert.deepEqual(await store.listMemberships('u1'), [{ tenant: 'acme', userId: 'u1', role: 'viewer' }]);
        await store.setMembership('acme', 'u1', null, audit('member.remove'));
        assert.equal(await store.getMembership('acme', 'u1'), null);
      }),
    );

    it(
      'tokens and sessions; a new password ends the user\'s sessions',
      withStore(async ({ store }) => {
        await store.createUser({ id: 'u1', username: 'alice', passwordHash: 'h1', superadmin: false, disabled: false }, audit('user.create'));
        await store.createToken({ id: 't1', userId: 'u1', name: 'ci', hash: 'hash-1', tenant: null, role: null, expiresAt: null }, audit('token.create'));
        assert.equal((await store.getTokenByHash('hash-1'))?.id, 't1');
        assert.equal(await store.getTokenByHash('nope'), null);
        await store.touchToken('t1', '2026-01-01T00:00:00.000Z');
        assert.equal((await store.listTokens('u1'))[0]?.lastUsedAt, '2026-01-01T00:00:00.000Z');
        assert.equal(await store.deleteToken('t1', audit('token.delete')), true);
        assert.equal(await store.deleteToken('t1', audit('token.delete')), false);
        await store.createSession({ hash: 's1', userId: 'u1', csrfToken: 'c1', expiresAt: '2099-01-01T00:00:00.000Z' });
        await store.createSession({ hash: 's2', userId: 'u1', csrfToken: 'c2', expiresAt: '2000-01-01T00:00:00.000Z' });
        assert.equal(await store.deleteExpiredSessions(new Date().toISOString()), 1);
        assert.equal((await store.getSession('s1'))?.csrfToken, 'c1');
        await store.setPassword('u1', 'h2', audit('user.password'));
        assert.equal(await store.getSession('s1'), null);
        assert.equal((await store.getUserById('u1'))?.passwordHash, 'h2');
      }),
    );

    it(
      'drafts: create, update with revisions (stale writes refused), nothing live until published',
      withStore(async ({ store }) => {
        const e1 = await store.writeDraft('acme', 'routes', 'r1', { draft: { paths: ['/a'] }, create: true, actor: 'alice', audit: audit('route.create') });
        assert.deepEqual([e1.revision, e1.pending, e1.live, e1.liveVersion], [1, true, null, 0]);
        await conflict(store.writeDraft('acme', 'routes', 'r1', { draft: { paths: ['/b'] }, create: true, actor: 'alice', audit: audit('route.create') }), 'exists');
        const e2 = await store.writeDraft('acme', 'routes', 'r1', { draft: { paths: ['/b'] }, expectedRevision: 1, actor: 'bob', audit: audit('route.update') });
        assert.deepEqual([e2.revision, e2.updatedBy, e2.draft], [2, 'bob', { paths: ['/b'] }]);
        await conflict(store.writeDraft('acme', 'routes', 'r1', { draft: { paths: ['/c'] }, expectedRevision: 1, actor: 'carol', audit: audit('route.update') }), 'revision');
        await conflict(store.writeDraft('acme', 'routes', 'nope', { draft: { paths: ['/c'] }, expectedRevision: 1, actor: 'carol', audit: audit('route.update') }), 'revision');
        assert.deepEqual((await store.live()).entities, [], 'drafts are not live');
        assert.equal((await store.getEntity('acme', 'routes', 'r1'))?.revision, 2);
        assert.equal(await store.getEntity('other', 'routes', 'r1'), null, 'tenants are apart');
      }),
    );

    it(
      'publish makes versions; deletion is drafted and published the same way; numbering continues',
      withStore(async ({ store }) => {
        await store.writeDraft('acme', 'upstreams', 'u1', { draft: { nodes: [1] }, create: true, actor: 'alice', audit: audit('c') });
        const r0 = await store.liveRevision();
        const p1 = await store.publish('acme', 'upstreams', 'u1', { actor: 'bob', note: 'first', audit: audit('publish') });
        assert.deepEqual([p1.version.version, p1.version.author, p1.version.publishedBy, p1.version.note], [1, 'alice', 'bob', 'first']);
        assert.deepEqual([p1.entity?.liveVersion, p1.entity?.pending, p1.entity?.live], [1, false, { nodes: [1] }]);
        assert.equal(await store.liveRevision(), r0 + 1);
        await conflict(store.publish('acme', 'upstreams', 'u1', { actor: 'bob', audit: audit('publish') }), 'nothing-to-publish');
        await store.writeDraft('acme', 'upstreams', 'u1', { draft: { nodes: [2] }, actor: 'alice', audit: audit('u') });
        const live1 = await store.live();
        assert.deepEqual(live1.entities.map((e) => [e.id, e.content, e.version]), [['u1', { nodes: [1] }, 1]], 'the live content stays until the next publish');
        await store.publish('acme', 'upstreams', 'u1', { actor: 'bob', audit: audit('publish') });
        const del = await store.writeDraft('acme', 'upstreams', 'u1', { draft: null, actor: 'alice', audit: audit('delete') });
        assert.deepEqual([del.draft, del.pending, del.live], [null, true, { nodes: [2] }], 'a drafted deletion: still live');
        const p3 = await store.publish('acme', 'upstreams', 'u1', { actor: 'bob', audit: audit('publish') });
        assert.deepEqual([p3.entity, p3.version.version, p3.version.content], [null, 3, null]);
        assert.equal(await store.getEntity('acme', 'upstreams', 'u1'), null);
        assert.deepEqual((await store.live()).entities, []);
        await store.writeDraft('acme', 'upstreams', 'u1', { draft: { nodes: [4] }, create: true, actor: 'alice', audit: audit('c') });
        const p4 = await store.publish('acme', 'upstreams', 'u1', { actor: 'bob', audit: audit('publish') });
        assert.equal(p4.version.version, 4, 'a re-created entity continues its history');
        assert.deepEqual(
          (await store.listVersions('acme', 'upstreams', 'u1')).map((v) => v.version),
          [4, 3, 2, 1],
        );
        assert.deepEqual((await store.getVersion('acme', 'upstreams', 'u1', 2))?.content, { nodes: [2] });
        assert.equal(await store.getVersion('acme', 'upstreams', 'u1', 9), null);
      }),
    );

    it(
      'deleting a never-published draft removes it outright',
      withStore(async ({ store }) => {
        await store.writeDraft('acme', 'routes', 'tmp', { draft: { paths: ['/t'] }, create: true, actor: 'a', audit: audit('c') });
        await store.writeDraft('acme', 'routes', 'tmp', { draft: null, actor: 'a', audit: audit('d') });
        assert.equal(await store.getEntity('acme', 'routes', 'tmp'), null);
        await conflict(store.writeDraft('acme', 'routes', 'tmp', { draft: null, actor: 'a', audit: audit('d') }), 'missing');
      }),
    );

    it(
      'lists page, search ids and names, and filter by label',
      withStore(async ({ store }) => {
        for (let i = 0; i < 12; i++) {
          const id = `r${String(i).padStart(2, '0')}`;
          await store.writeDraft('acme', 'routes', id, {
            draft: { name: i === 7 ? 'Orders_API' : `route ${i}`, labels: i % 3 === 0 ? { team: 'pay' } : { team: 'core' } },
            create: true,
            actor: 'a',
            audit: audit('c'),
          });
        }
        await store.writeDraft('other', 'routes', 'r00', { draft: {}, create: true, actor: 'a', audit: audit('c') });
        const page = await store.listEntities('acme', 'routes', { limit: 5, offset: 5 });
        assert.equal(page.total, 12);
        assert.deepEqual(page.items.map((e) => e.id), ['r05', 'r06', 'r07', 'r08', 'r09']);
        assert.deepEqual((await store.listEntities('acme', 'routes', { limit: 50, offset: 0, search: 'r1' })).items.map((e) => e.id), ['r10', 'r11']);
        assert.deepEqual((await store.listEntities('acme', 'routes', { limit: 50, offset: 0, search: 'orders_' })).items.map((e) => e.id), ['r07'], 'name search, case-insensitive, _ is literal');
        assert.equal((await store.listEntities('acme', 'routes', { limit: 50, offset: 0, search: '%' })).total, 0, '% is literal');
        assert.deepEqual((await store.listEntities('acme', 'routes', { limit: 50, offset: 0, label: { key: 'team', value: 'pay' } })).items.map((e) => e.id), ['r00', 'r03', 'r06', 'r09']);
        assert.equal((await store.listEntities('acme', 'routes', { limit: 50, offset: 0, label: { key: 'team' } })).total, 12);
        assert.equal((await store.listEntities('acme', 'routes', { limit: 50, offset: 0, label: { key: 'nope' } })).total, 0);
      }),
    );

    it(
      'audit: every mutation is recorded in order, queried by tenant, actor, entity and time, newest first',
      withStore(async ({ store }) => {
        await store.writeDraft('acme', 'routes', 'r1', { draft: { a: 1 }, create: true, actor: 'alice', audit: audit('route.create', { entityId: 'r1', actor: 'alice', after: { a: 1 } }) });
        await store.writeDraft('beta', 'routes', 'r1', { draft: { a: 2 }, create: true, actor: 'bob', audit: audit('route.create', { tenant: 'beta', entityId: 'r1', actor: 'bob' }) });
        await store.publish('acme', 'routes', 'r1', { actor: 'carol', audit: audit('route.publish', { entityId: 'r1', actor: 'carol' }) });
        // A refused write leaves no trace.
        await conflict(store.writeDraft('acme', 'routes', 'r1', { draft: {}, expectedRevision: 99, actor: 'x', audit: audit('route.update', { actor: 'x' }) }), 'revision');
        const all = await store.queryAudit({});
        assert.deepEqual(all.map((a) => a.action), ['route.publish', 'route.create', 'route.create']);
        assert.ok(all[0]!.seq > all[1]!.seq);
        assert.deepEqual(all[2]!.after, { a: 1 });
        assert.deepEqual((await store.queryAudit({ tenant: 'acme' })).map((a) => a.actor), ['carol', 'alice']);
        assert.deepEqual((await store.queryAudit({ actor: 'bob' })).map((a) => a.tenant), ['beta']);
        assert.equal((await store.queryAudit({ entityId: 'r1', tenant: 'acme', limit: 1 })).length, 1);
        assert.equal((await store.queryAudit({ since: '2999-01-01T00:00:00.000Z' })).length, 0);
        assert.equal((await store.queryAudit({ before: all[0]!.seq })).length, 2);
        const direct = await store.appendAudit(audit('login.failed', { tenant: null, kind: 'session' }));
        assert.equal(direct.action, 'login.failed');
      }),
    );

    it(
      'change requests and apply: all or nothing against base versions, approval in the same transaction',
      withStore(async ({ store }) => {
        await store.createTenant({ id: 'acme', name: 'Acme', reviewRequired: true, skipReviewRoles: ['admin'] }, audit('tenant.create'));
        const t = await store.updateTenant('acme', { skipReviewRoles: ['admin', 'editor'] }, audit('tenant.update'));
        assert.deepEqual(t.skipReviewRoles, ['admin', 'editor']);
        await store.writeDraft('acme', 'upstreams', 'u', { draft: { n: 1 }, create: true, actor: 'ed', audit: audit('c') });
        await store.writeDraft('acme', 'routes', 'r', { draft: { up: 'u' }, create: true, actor: 'ed', audit: audit('c') });
        const items = [
          { op: 'publish' as const, kind: 'upstreams' as const, id: 'u', content: { n: 1 }, baseVersion: 0 },
          { op: 'publish' as const, kind: 'routes' as const, id: 'r', content: { up: 'u' }, baseVersion: 0 },
        ];
        const c = await store.createChange({ tenant: 'acme', title: 'both', description: null, author: 'ed', items }, audit('change.submit'));
        assert.equal(c.status, 'open');
        assert.deepEqual((await store.listChanges('acme', { status: 'open', limit: 10, offset: 0 })).items.map((x) => x.id), [c.id]);
        assert.equal(await store.getChange('other', c.id), null, 'changes are per tenant');

        // Another publish moves the upstream on: applying the change now conflicts and changes nothing.
        await store.publish('acme', 'upstreams', 'u', { actor: 'ada', audit: audit('p') });
        const rev = await store.liveRevision();
        await assert.rejects(store.apply('acme', items, { actor: 'rita', author: 'ed', reviewer: 'rita', changeId: c.id, audits: [audit('a')] }), (e: unknown) => {
          assert.ok(e instanceof StoreConflict && e.reason === 'base');
          assert.deepEqual(e.details, [{ kind: 'upstreams', id: 'u', baseVersion: 0, currentVersion: 1 }]);
          return true;
        });
        assert.equal(await store.liveRevision(), rev);
        assert.equal((await store.getEntity('acme', 'routes', 'r'))!.liveVersion, 0, 'the route did not go live alone');
        assert.equal((await store.getChange('acme', c.id))!.status, 'open');

        const rebased = await store.updateChangeItems('acme', c.id, [{ ...items[0]!, baseVersion: 1 }, items[1]!], audit('change.rebase'));
        const out = await store.apply('acme', rebased.items, { actor: 'rita', author: 'ed', reviewer: 'rita', changeId: c.id, comment: 'ok', audits: [audit('a')] });
        assert.deepEqual(out.versions.map((v) => [v.kind, v.version, v.author, v.reviewedBy, v.changeId]), [
          ['upstreams', 2, 'ed', 'rita', c.id],
          ['routes', 1, 'ed', 'rita', c.id],
        ]);
        assert.equal(out.change!.status, 'approved');
        assert.equal(out.change!.decidedBy, 'rita');
        await conflict(store.closeChange('acme', c.id, { status: 'withdrawn', actor: 'ed', comment: null }, audit('w')), 'state');

        // Gray release: a new version served by chosen instances; live unchanged; promote makes it live.
        await store.apply('acme', [{ op: 'gray', kind: 'routes', id: 'r', content: { up: 'u', gray: true }, baseVersion: 1, instances: ['gw-a'], version: null }], { actor: 'ada', author: 'ada', audits: [audit('g')] });
        const live = await store.live();
        assert.deepEqual(live.gray.map((g) => [g.routeId, g.version, g.baseVersion, g.instances]), [['r', 2, 1, ['gw-a']]]);
        assert.deepEqual(live.entities.find((e) => e.id === 'r')!.content, { up: 'u' });
        assert.equal((await store.getVersion('acme', 'routes', 'r', 2))!.channel, 'gray');
        await conflict(store.apply('acme', [{ op: 'publish', kind: 'routes', id: 'r', content: null, baseVersion: 1 }], { actor: 'ada', author: 'ada', audits: [audit('d')] }), 'state');
        await store.apply('acme', [{ op: 'promote', kind: 'routes', id: 'r', grayVersion: 2, baseVersion: 1 }], { actor: 'ada', author: 'ada', audits: [audit('pr')] });
        assert.equal((await store.listGray('acme')).length, 0);
        const r = (await store.getEntity('acme', 'routes', 'r'))!;
        assert.deepEqual([r.live, r.liveVersion, r.pending], [{ up: 'u', gray: true }, 3, false]);
        assert.equal(await store.deleteGray('acme', 'r', audit('s')), false);
      }),
    );

    it(
      'persists across a reopen',
      withStore(async (t) => {
        if (!t.reopen) return;
        await t.store.createTenant({ id: 'acme', name: 'Acme', reviewRequired: true, skipReviewRoles: ['admin'] }, audit('tenant.create'));
        await t.store.writeDraft('acme', 'routes', 'r1', { draft: { x: 1 }, create: true, actor: 'a', audit: audit('c') });
        await t.store.publish('acme', 'routes', 'r1', { actor: 'a', audit: audit('p') });
        await t.store.close();
        t.store = await t.reopen();
        assert.equal((await t.store.getTenant('acme'))?.reviewRequired, true);
        assert.deepEqual((await t.store.live()).entities.map((e) => e.content), [{ x: 1 }]);
        assert.equal((await t.store.queryAudit({})).length, 3);
      }),
    );
  });
}
