/**
 * @module control/compile.test
 * From stored entities to the config gateways run: ids and every reference to them prefixed by tenant
 * (plugin references included), consumers kept by name, a tenant's global plugins applied to its routes only
 * and below route and service plugins, and problems mapped back to the entity that has them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { builtinRegistry } from '../plugins/index.js';
import { compileLive, compileTenant, validateCompiled, type StoredEntity } from './compile.js';

const plugins = builtinRegistry();
const e = (tenant: string, kind: StoredEntity['kind'], id: string, content: Record<string, unknown>): StoredEntity => ({ tenant, kind, id, content });
const nodes = [{ host: '127.0.0.1', port: 9001 }];

describe('compileLive', () => {
  it('prefixes ids and references, including upstream ids inside plugin configs', () => {
    const c = compileLive(
      [
        e('shop', 'upstreams', 'main', { nodes }),
        e('shop', 'upstreams', 'canary', { nodes }),
        e('shop', 'services', 'svc', { upstreamId: 'main' }),
        e('shop', 'routes', 'r', {
          paths: ['/r'],
          serviceId: 'svc',
          plugins: { 'traffic-split': { rules: [{ match: [{ in: 'header', name: 'x-canary', value: '1' }], upstreams: [{ upstreamId: 'canary', weight: 1 }] }] } },
        }),
        e('shop', 'consumers', 'alice', { credentials: { 'key-auth': { key: 'alice-key-0001' } } }),
      ],
      plugins,
    );
    const v = validateCompiled(c, plugins);
    assert.ok(v.ok, JSON.stringify(!v.ok && v.problems));
    const cfg = v.value;
    assert.deepEqual(cfg.upstreams.map((u) => u.id), ['shop.main', 'shop.canary']);
    assert.equal(cfg.services[0]!.upstreamId, 'shop.main');
    assert.equal(cfg.routes[0]!.id, 'shop.r');
    assert.equal(cfg.routes[0]!.serviceId, 'shop.svc');
    const split = cfg.routes[0]!.plugins!['traffic-split'] as { rules: Array<{ upstreams: Array<{ upstreamId: string }> }> };
    assert.equal(split.rules[0]!.upstreams[0]!.upstreamId, 'shop.canary');
    assert.equal(cfg.consumers[0]!.username, 'alice', 'consumer names are not prefixed');
  });

  it('two tenants with the same ids do not collide', () => {
    const both = ['shop', 'blog'].flatMap((t) => [e(t, 'upstreams', 'u', { nodes }), e(t, 'routes', 'r', { paths: [`/${t}`], upstreamId: 'u' })]);
    const v = validateCompiled(compileLive(both, plugins), plugins);
    assert.ok(v.ok);
    assert.deepEqual(v.value.routes.map((r) => [r.id, r.upstreamId]), [
      ['shop.r', 'shop.u'],
      ['blog.r', 'blog.u'],
    ]);
  });

  it('a tenant\'s global plugins apply to its routes only, below the route\'s and the service\'s own', () => {
    const c = compileLive(
      [
        e('shop', 'global-plugins', 'request-id', { header: 'X-Shop-Id' }),
        e('shop', 'global-plugins', 'cors', { allowOrigins: ['https://shop.example'] }),
        e('shop', 'upstreams', 'u', { nodes }),
        e('shop', 'services', 's', { upstreamId: 'u', plugins: { cors: { allowOrigins: ['https://svc.example'] } } }),
        e('shop', 'routes', 'plain', { paths: ['/a'], upstreamId: 'u' }),
        e('shop', 'routes', 'own', { paths: ['/b'], upstreamId: 'u', plugins: { 'request-id': { header: 'X-Own' } } }),
        e('shop', 'routes', 'svc', { paths: ['/c'], serviceId: 's' }),
        e('blog', 'upstreams', 'u', { nodes }),
        e('blog', 'routes', 'r', { paths: ['/blog'], upstreamId: 'u' }),
      ],
      plugins,
    );
    const v = validateCompiled(c, plugins);
    assert.ok(v.ok, JSON.stringify(!v.ok && v.problems));
    const byId = new Map(v.value.routes.map((r) => [r.id, r.plugins ?? {}]));
    // (Validation fills each plugin's defaults in: compare the fields that were written.)
    const field = (route: string, plugin: string, name: string) => (byId.get(route)![plugin] as Record<string, unknown> | undefined)?.[name];
    assert.deepEqual(Object.keys(byId.get('shop.plain')!).sort(), ['cors', 'request-id']);
    assert.equal(field('shop.plain', 'request-id', 'header'), 'X-Shop-Id');
    assert.deepEqual(field('shop.plain', 'cors', 'allowOrigins'), ['https://shop.example']);
    assert.equal(field('shop.own', 'request-id', 'header'), 'X-Own', 'the route\'s own config wins');
    assert.equal(byId.get('shop.svc')!.cors, undefined, 'the service has cors: its config applies, not the tenant\'s');
    assert.equal(field('shop.svc', 'request-id', 'header'), 'X-Shop-Id');
    assert.deepEqual(byId.get('blog.r'), {}, 'another tenant\'s routes are untouched');
    assert.deepEqual(v.value.globalPlugins, {}, 'nothing becomes global to every tenant');
  });

  it('problems are reported against the entity that has them, with paths inside it', () => {
    const c = compileTenant([e('shop', 'upstreams', 'u', { nodes }), e('shop', 'routes', 'r1', { paths: ['/a'], upstreamId: 'u' }), e('shop', 'routes', 'r12', { paths: ['nope'], upstreamId: 'missing' })]);
    const v = validateCompiled(c, plugins);
    assert.ok(!v.ok);
    assert.ok(v.problems.every((p) => p.kind === 'routes' && p.id === 'r12'), JSON.stringify(v.problems));
    assert.ok(v.problems.some((p) => p.path === 'paths[0]'));
  });
});
