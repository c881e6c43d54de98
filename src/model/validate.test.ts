/**
 * @module model/validate.test
 * Declarative config validation: schema errors and cross-entity rules, each named by field path.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { validateDeclarative, type ConfigProblem } from './validate.js';

function problems(cfg: unknown): ConfigProblem[] {
  const r = validateDeclarative(cfg);
  return r.ok ? [] : r.problems;
}

function has(ps: ConfigProblem[], path: string, message?: RegExp): boolean {
  return ps.some((p) => p.path === path && (!message || message.test(p.message)));
}

const up = { id: 'u', nodes: [{ host: '127.0.0.1', port: 8080 }] };

it('accepts a minimal config and fills in defaults', () => {
  const r = validateDeclarative({ upstreams: [up], routes: [{ id: 'r', paths: ['/x'], upstreamId: 'u' }] });
  assert.ok(r.ok);
  assert.equal(r.value.upstreams[0]!.type, 'roundrobin');
  assert.equal(r.value.upstreams[0]!.nodes[0]!.weight, 1);
  assert.equal(r.value.routes[0]!.priority, 0);
  assert.deepEqual(r.value.consumers, []);
});

it('accepts an empty file', () => {
  assert.ok(validateDeclarative(null).ok);
});

it('names schema problems by path', () => {
  const ps = problems({ routes: [{ id: 'r', paths: ['x'], upstreamId: 'u', bogus: 1, methods: ['FETCH'] }], upstreams: [{ id: 'u', nodes: [{ host: 'h', port: 0 }] }] });
  assert.ok(has(ps, 'routes[0].paths[0]', /pattern/), JSON.stringify(ps));
  assert.ok(has(ps, 'routes[0].bogus', /not a known field/));
  assert.ok(has(ps, 'routes[0].methods[0]', /one of/));
  assert.ok(has(ps, 'upstreams[0].nodes[0].port'));
});

it('checks references, duplicates and upstream rules', () => {
  const ps = problems({
    upstreams: [up, { ...up }, { id: 'h', type: 'chash', hashOn: { type: 'header' }, nodes: [{ host: 'a', port: 1 }, { host: 'a', port: 1 }] }],
    services: [{ id: 's', upstreamId: 'missing' }],
    routes: [
      { id: 'r1', paths: ['/a'], upstreamId: 'nope' },
      { id: 'r1', paths: ['/b'], serviceId: 'ghost' },
      { id: 'r3', paths: ['/c'] },
      { id: 'r4', paths: ['/d'], upstream: { nodes: [{ host: 'x', port: 1 }], passHost: 'rewrite' } },
    ],
  });
  assert.ok(has(ps, 'upstreams[1].id', /duplicates/));
  assert.ok(has(ps, 'upstreams[2].hashOn.key', /required/));
  assert.ok(has(ps, 'upstreams[2].nodes[1]', /duplicates node/));
  assert.ok(has(ps, 'services[0].upstreamId', /does not exist/));
  assert.ok(has(ps, 'routes[0].upstreamId', /does not exist/));
  assert.ok(has(ps, 'routes[1].id', /duplicates/));
  assert.ok(has(ps, 'routes[1].serviceId', /does not exist/));
  assert.ok(has(ps, 'routes[2].upstreamId', /is required/));
  assert.ok(has(ps, 'routes[3].upstream.upstreamHost', /required when passHost is rewrite/));
});

it('checks route paths and match conditions', () => {
  const ps = problems({
    upstreams: [up],
    routes: [
      {
        id: 'r',
        paths: ['/a/*/b', '/a/:1bad', '/a/../b'],
        upstreamId: 'u',
        match: [{ in: 'header', name: 'x', op: 'regex', value: '(' }, { in: 'query', name: 'q', op: 'in' }, { in: 'cookie', name: 'c', op: 'equals' }],
      },
    ],
  });
  assert.ok(has(ps, 'routes[0].paths[0]', /\/\*/));
  assert.ok(has(ps, 'routes[0].paths[1]', /parameter/));
  assert.ok(has(ps, 'routes[0].paths[2]', /"\.\."/));
  assert.ok(has(ps, 'routes[0].match[0].value', /regular expression/));
  assert.ok(has(ps, 'routes[0].match[1].values', /required/));
  assert.ok(has(ps, 'routes[0].match[2].value', /required/));
});

it('refuses plugins it does not know (no silent no-op auth)', () => {
  const ps = problems({ upstreams: [up], routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { 'key-auth': {} } }] });
  assert.ok(has(ps, 'routes[0].plugins.key-auth', /unknown plugin/));
});

it('refuses a certificate whose key does not match, without echoing the key', () => {
  const ps = problems({ certificates: [{ id: 'c', snis: ['a.example'], cert: 'not a cert', key: 'SECRET-KEY-MATERIAL' }] });
  assert.ok(has(ps, 'certificates[0]', /usable pair/));
  assert.ok(!JSON.stringify(ps).includes('SECRET-KEY-MATERIAL'));
});
