/**
 * @module test/discovery-admin.test
 * Upstreams with a discovery source through the admin API: a draft needs static nodes or a discovery source
 * (refused with the field path otherwise), the discovery field is checked per type, and a discovery-only
 * upstream publishes.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { startControl } from './helpers/control.js';

it('takes upstreams with discovery and refuses one with neither nodes nor discovery, by field path', async () => {
  const c = await startControl();
  await c.tenant('shop');
  const token = c.root;
  const none = await c.call('POST', '/api/v1/tenants/shop/upstreams', { token, body: { id: 'empty' } });
  assert.equal(none.status, 400, none.text);
  assert.deepEqual(none.body.error.details, [{ path: 'nodes', message: 'is required: give at least one node, or a discovery source' }]);
  const badDns = await c.call('POST', '/api/v1/tenants/shop/upstreams', { token, body: { id: 'bad', discovery: { type: 'dns', service: 'users', tags: ['x'] } } });
  assert.equal(badDns.status, 400, badDns.text);
  assert.deepEqual(badDns.body.error.details, [{ path: 'discovery.tags', message: 'is only used with type consul or etcd' }]);
  const ok = await c.call('POST', '/api/v1/tenants/shop/upstreams', { token, body: { id: 'users', discovery: { type: 'etcd', service: 'users', tags: ['v2'] } } });
  assert.equal(ok.status, 201, ok.text);
  const route = await c.call('POST', '/api/v1/tenants/shop/routes', { token, body: { id: 'users', paths: ['/users/*'], upstreamId: 'users' } });
  assert.equal(route.status, 201, route.text);
  for (const e of ['upstreams/users', 'routes/users']) {
    const p = await c.call('POST', `/api/v1/tenants/shop/${e}/publish`, { token, body: {} });
    assert.equal(p.status, 200, `${e}: ${p.text}`);
  }
  const live = await c.call('GET', '/api/v1/tenants/shop/upstreams/users', { token });
  assert.equal(live.status, 200);
  assert.deepEqual(live.body.live, { discovery: { type: 'etcd', service: 'users', tags: ['v2'] } });
});
