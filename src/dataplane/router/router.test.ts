/**
 * @module dataplane/router/router.test
 * Router semantics: path forms, hosts, precedence, backtracking, methods, match conditions, scale.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import type { Route } from '../../model/route.js';
import { compileRouter } from './router.js';
import { compileConditions, cookieValue } from './conditions.js';
import type { Router, RouterRequest } from './types.js';

function route(id: string, paths: string[], extra: Partial<Route> = {}): Route {
  return { id, enabled: true, paths, priority: 0, websocket: false, ...extra };
}

function build(routes: Route[]): Router<string> {
  return compileRouter(routes.map((r) => ({ route: r, value: `v:${r.id}` })));
}

interface ReqOptions {
  method?: string;
  host?: string;
  query?: string;
  headers?: IncomingHttpHeaders;
}

function req(path: string, o: ReqOptions = {}): RouterRequest {
  return { method: o.method ?? 'GET', host: o.host ?? '', path, query: o.query ?? '', headers: o.headers ?? {} };
}

/** The id of the matched route, or null. */
function hit(r: Router<string>, path: string, o: ReqOptions = {}): string | null {
  const m = r.match(req(path, o));
  if (m === null) return null;
  assert.equal(m.value, `v:${m.route.id}`, 'value belongs to the matched route');
  return m.route.id;
}

describe('path forms', () => {
  test('exact paths match only themselves; a trailing slash is a different path', () => {
    const r = build([route('users', ['/users']), route('users-slash', ['/users/']), route('root', ['/'])]);
    assert.equal(hit(r, '/users'), 'users');
    assert.equal(hit(r, '/users/'), 'users-slash');
    assert.equal(hit(r, '/'), 'root');
    assert.equal(hit(r, '/users/1'), null);
    assert.equal(hit(r, '/user'), null);
    assert.equal(hit(r, '/usersx'), null);
  });

  test('a prefix matches the bare prefix, with a trailing slash, and anything below it', () => {
    const r = build([route('users', ['/users/*'])]);
    for (const p of ['/users', '/users/', '/users/x', '/users/x/y/z', '/users//x']) assert.equal(hit(r, p), 'users', p);
    for (const p of ['/', '/user', '/usersx', '/usersx/y', '/other/users']) assert.equal(hit(r, p), null, p);
  });

  test('"/*" matches every path, the root included', () => {
    const r = build([route('all', ['/*'])]);
    for (const p of ['/', '/a', '/a/b/', '//']) assert.equal(hit(r, p), 'all', p);
  });

  test('a path that is not canonical-looking (no leading slash) matches nothing', () => {
    const r = build([route('all', ['/*'])]);
    assert.equal(hit(r, ''), null);
    assert.equal(hit(r, '*'), null);
  });

  test('params are one whole non-empty segment, returned as they appear in the canonical path', () => {
    const r = build([route('orders', ['/users/:id/orders']), route('two', ['/a/:x/b/:y'])]);
    const m = r.match(req('/users/42/orders'));
    assert.ok(m);
    assert.equal(m.route.id, 'orders');
    assert.deepEqual(m.params, { id: '42' });
    assert.equal(m.pattern, '/users/:id/orders');
    assert.deepEqual(r.match(req('/users/a%2Fb/orders'))?.params, { id: 'a%2Fb' });
    assert.deepEqual(r.match(req('/users/caf%C3%A9/orders'))?.params, { id: 'caf%C3%A9' });
    assert.deepEqual(r.match(req('/a/1/b/2'))?.params, { x: '1', y: '2' });
    assert.equal(hit(r, '/users//orders'), null);
    assert.equal(hit(r, '/users/42'), null);
    assert.equal(hit(r, '/users/42/orders/x'), null);
    assert.equal(hit(r, '/users/4/2/orders'), null);
  });

  test('params before a prefix', () => {
    const r = build([route('tenant', ['/t/:tenant/*'])]);
    assert.deepEqual(r.match(req('/t/acme'))?.params, { tenant: 'acme' });
    assert.deepEqual(r.match(req('/t/acme/x/y'))?.params, { tenant: 'acme' });
    assert.equal(r.match(req('/t/acme/x/y'))?.pattern, '/t/:tenant/*');
    assert.equal(hit(r, '/t/'), null);
    assert.equal(hit(r, '/t'), null);
  });

  test('a match without params has params null, and its shared answer cannot be changed', () => {
    const r = build([route('a', ['/a'])]);
    const m = r.match(req('/a'));
    assert.ok(m);
    assert.equal(m.params, null);
    assert.equal(m.pattern, '/a');
    assert.throws(() => {
      (m as { params: unknown }).params = {};
    }, TypeError);
  });

  test('each path of a route is matched and reports its own pattern', () => {
    const r = build([route('multi', ['/a', '/b/:id', '/c/*'])]);
    assert.equal(r.match(req('/a'))?.pattern, '/a');
    assert.equal(r.match(req('/b/1'))?.pattern, '/b/:id');
    assert.equal(r.match(req('/c/d'))?.pattern, '/c/*');
  });

  test('route paths are put in canonical form, so they meet normalised request paths', () => {
    const r = build([route('lower-hex', ['/caf%c3%a9']), route('unicode', ['/naïve']), route('tilde', ['/%7euser/*']), route('brace', ['/x{y}'])]);
    assert.equal(hit(r, '/caf%C3%A9'), 'lower-hex');
    assert.equal(hit(r, '/na%C3%AFve'), 'unicode');
    assert.equal(hit(r, '/~user/files'), 'tilde');
    assert.equal(hit(r, '/x%7By%7D'), 'brace');
  });

  test('disabled routes are left out and not counted', () => {
    const r = build([route('off', ['/a'], { enabled: false }), route('on', ['/b']), route('off2', ['/*'], { enabled: false })]);
    assert.equal(r.size, 1);
    assert.equal(hit(r, '/a'), null);
    assert.equal(hit(r, '/b'), 'on');
  });

  test('an empty router matches nothing', () => {
    const r = build([]);
    assert.equal(r.size, 0);
    assert.equal(hit(r, '/', { host: 'a.example.com' }), null);
  });
});

describe('path precedence', () => {
  const r = build([
    route('prefix', ['/a/*']),
    route('param', ['/a/:x']),
    route('static', ['/a/b']),
    route('deep-prefix', ['/a/b/*']),
    route('param-prefix', ['/a/:x/*']),
    route('exact-a', ['/a']),
  ]);

  test('at each segment static beats param beats prefix, whatever the order in the config', () => {
    assert.equal(hit(r, '/a/b'), 'static');
    assert.equal(hit(r, '/a/c'), 'param');
    assert.equal(hit(r, '/a/'), 'prefix');
  });

  test('longer prefixes beat shorter ones; a static prefix beats one after a param', () => {
    assert.equal(hit(r, '/a/b/c'), 'deep-prefix');
    assert.equal(hit(r, '/a/b/'), 'deep-prefix');
    assert.equal(hit(r, '/a/c/d'), 'param-prefix');
  });

  test('an exact route beats a prefix ending at the same place', () => {
    assert.equal(hit(r, '/a'), 'exact-a');
  });

  test('priority does not reach across path nodes', () => {
    const p = build([route('param', ['/a/:x'], { priority: 1000 }), route('static', ['/a/b'], { priority: -5 })]);
    assert.equal(hit(p, '/a/b'), 'static');
    assert.equal(hit(p, '/a/z'), 'param');
  });

  test('at the same node the higher priority wins, then the order in the config', () => {
    const p = build([
      route('first', ['/x']),
      route('second', ['/x']),
      route('high', ['/x'], { priority: 10 }),
      route('pfirst', ['/y/:a']),
      route('psecond', ['/y/:b'], { priority: 1 }),
    ]);
    assert.equal(hit(p, '/x'), 'high');
    assert.equal(hit(build([route('first', ['/x']), route('second', ['/x'])]), '/x'), 'first');
    assert.equal(hit(build([route('second', ['/x']), route('first', ['/x'])]), '/x'), 'second');
    // Differently named params share the node, so priority decides, and each reports its own names.
    assert.deepEqual(p.match(req('/y/1'))?.params, { b: '1' });
  });

  test('negative priority sorts below the default', () => {
    const p = build([route('low', ['/x'], { priority: -1 }), route('default', ['/x'])]);
    assert.equal(hit(p, '/x'), 'default');
  });
});

describe('the example in docs/routing.md', () => {
  const r = build([
    route('get-user', ['/users/:id'], { methods: ['GET'] }),
    route('me', ['/users/me'], { methods: ['GET'] }),
    route('users-any', ['/users/*']),
    route('admin', ['/*'], { hosts: ['admin.example.com'] }),
    route('tenants', ['/users/*'], { hosts: ['*.example.com'], match: [{ in: 'header', name: 'X-Tenant', op: 'exists' }] }),
  ]);
  const rows: [string, ReqOptions, string | null][] = [
    ['/users/me', {}, 'me'],
    ['/users/42', {}, 'get-user'],
    ['/users/42', { method: 'DELETE' }, 'users-any'],
    ['/users', {}, 'users-any'],
    ['/users/42', { host: 'admin.example.com' }, 'admin'],
    ['/users/42', { host: 'a.example.com', headers: { 'x-tenant': 't1' } }, 'tenants'],
    ['/users/42', { host: 'a.example.com' }, 'get-user'],
    ['/orders', {}, null],
  ];
  for (const [path, o, expected] of rows) {
    test(`${o.method ?? 'GET'} ${path} ${o.host ?? ''} -> ${expected}`, () => {
      assert.equal(hit(r, path, o), expected);
    });
  }
  test('params of the example', () => {
    assert.deepEqual(r.match(req('/users/42'))?.params, { id: '42' });
  });
});

describe('hosts', () => {
  test('a host-specific route beats a route without hosts, even with a less specific path', () => {
    const r = build([route('any-users', ['/users']), route('api-all', ['/*'], { hosts: ['api.example.com'] })]);
    assert.equal(hit(r, '/users', { host: 'api.example.com' }), 'api-all');
    assert.equal(hit(r, '/users', { host: 'www.example.com' }), 'any-users');
    assert.equal(hit(r, '/users'), 'any-users');
  });

  test('exact beats wildcard, longer wildcard suffix beats shorter, wildcard beats no host', () => {
    const r = build([
      route('none', ['/*']),
      route('wild-short', ['/*'], { hosts: ['*.com'] }),
      route('wild', ['/*'], { hosts: ['*.example.com'] }),
      route('wild-long', ['/*'], { hosts: ['*.b.example.com'] }),
      route('exact', ['/*'], { hosts: ['a.b.example.com'] }),
    ]);
    assert.equal(hit(r, '/', { host: 'a.b.example.com' }), 'exact');
    assert.equal(hit(r, '/', { host: 'x.b.example.com' }), 'wild-long');
    assert.equal(hit(r, '/', { host: 'x.y.b.example.com' }), 'wild-long');
    assert.equal(hit(r, '/', { host: 'b.example.com' }), 'wild');
    assert.equal(hit(r, '/', { host: 'x.example.com' }), 'wild');
    assert.equal(hit(r, '/', { host: 'example.com' }), 'wild-short');
    assert.equal(hit(r, '/', { host: 'example.org' }), 'none');
    assert.equal(hit(r, '/', { host: '' }), 'none');
  });

  test('wildcard corner cases', () => {
    const r = build([route('wild', ['/*'], { hosts: ['*.example.com'] })]);
    assert.equal(hit(r, '/', { host: 'a.example.com' }), 'wild');
    assert.equal(hit(r, '/', { host: 'a.b.example.com' }), 'wild');
    assert.equal(hit(r, '/', { host: 'a-b_c.example.com' }), 'wild');
    for (const host of ['example.com', '.example.com', 'badexample.com', 'a.badexample.com', 'a.example.com.evil', 'a.example.co', 'xexample.com', 'com', '']) {
      assert.equal(hit(r, '/', { host }), null, host);
    }
  });

  test('host names in the config are case-insensitive', () => {
    const r = build([route('exact', ['/e'], { hosts: ['API.Example.COM'] }), route('wild', ['/w'], { hosts: ['*.Example.Org'] })]);
    assert.equal(hit(r, '/e', { host: 'api.example.com' }), 'exact');
    assert.equal(hit(r, '/w', { host: 'x.example.org' }), 'wild');
  });

  test('a route with several hosts matches under each; a route without hosts matches any host', () => {
    const r = build([route('multi', ['/m'], { hosts: ['a.test', '*.b.test', 'a.test'] }), route('anyhost', ['/n'])]);
    assert.equal(r.size, 2);
    assert.equal(hit(r, '/m', { host: 'a.test' }), 'multi');
    assert.equal(hit(r, '/m', { host: 'x.b.test' }), 'multi');
    assert.equal(hit(r, '/m', { host: 'c.test' }), null);
    assert.equal(hit(r, '/n', { host: 'whatever.test' }), 'anyhost');
    assert.equal(hit(r, '/n'), 'anyhost');
  });

  test('many wildcard suffixes are told apart', () => {
    const routes: Route[] = [];
    for (let i = 0; i < 500; i++) routes.push(route(`t${i}`, ['/*'], { hosts: [`*.t${i}.example.com`] }));
    const r = build(routes);
    for (let i = 0; i < 500; i += 7) assert.equal(hit(r, '/', { host: `x.t${i}.example.com` }), `t${i}`);
    assert.equal(hit(r, '/', { host: 'x.t500.example.com' }), null);
    assert.equal(hit(r, '/', { host: 't1.example.com' }), null);
  });
});

describe('methods', () => {
  test('a route with methods matches only those; HEAD is not implied by GET', () => {
    const r = build([route('get', ['/a'], { methods: ['GET'] }), route('write', ['/a'], { methods: ['POST', 'PUT'] })]);
    assert.equal(hit(r, '/a', { method: 'GET' }), 'get');
    assert.equal(hit(r, '/a', { method: 'POST' }), 'write');
    assert.equal(hit(r, '/a', { method: 'PUT' }), 'write');
    assert.equal(hit(r, '/a', { method: 'HEAD' }), null);
    assert.equal(hit(r, '/a', { method: 'DELETE' }), null);
  });

  test('a route without methods matches any method', () => {
    const r = build([route('any', ['/a'])]);
    for (const method of ['GET', 'POST', 'OPTIONS', 'PATCH', 'CONNECT']) assert.equal(hit(r, '/a', { method }), 'any');
  });
});

describe('backtracking', () => {
  test('a failed static candidate falls back to the param, then the prefix', () => {
    const r = build([
      route('static', ['/a/b'], { methods: ['GET'] }),
      route('param', ['/a/:x'], { methods: ['POST'] }),
      route('prefix', ['/a/*'], { methods: ['POST', 'PUT'] }),
    ]);
    assert.equal(hit(r, '/a/b', { method: 'GET' }), 'static');
    assert.equal(hit(r, '/a/b', { method: 'POST' }), 'param');
    assert.equal(hit(r, '/a/b', { method: 'PUT' }), 'prefix');
    assert.equal(hit(r, '/a/b', { method: 'DELETE' }), null);
  });

  test('backtracking from deep in the tree up to a shorter prefix', () => {
    const r = build([
      route('deep', ['/a/b/c/d'], { methods: ['GET'] }),
      route('deep-prefix', ['/a/b/c/*'], { methods: ['GET'] }),
      route('mid-param', ['/a/:x/c/d'], { methods: ['GET'] }),
      route('root-prefix', ['/*']),
    ]);
    assert.equal(hit(r, '/a/b/c/d', { method: 'GET' }), 'deep');
    assert.equal(hit(r, '/a/b/c/e', { method: 'GET' }), 'deep-prefix');
    assert.equal(hit(r, '/a/z/c/d', { method: 'GET' }), 'mid-param');
    assert.equal(hit(r, '/a/b/c/d', { method: 'POST' }), 'root-prefix');
  });

  test('params of an abandoned branch do not leak into the match', () => {
    const r = build([
      route('abandoned', ['/:a/x/:b'], { methods: ['GET'] }),
      route('taken', ['/:c/:d/:e']),
      route('prefix', ['/:p/*']),
    ]);
    assert.deepEqual(r.match(req('/1/x/2', { method: 'GET' }))?.params, { a: '1', b: '2' });
    assert.deepEqual(r.match(req('/1/x/2', { method: 'POST' }))?.params, { c: '1', d: 'x', e: '2' });
    assert.deepEqual(r.match(req('/1/x/2/3', { method: 'POST' }))?.params, { p: '1' });
  });

  test('candidates at one node are tried in order until one accepts', () => {
    const r = build([
      route('v2', ['/api'], { priority: 10, match: [{ in: 'header', name: 'x-version', op: 'equals', value: '2' }] }),
      route('beta', ['/api'], { priority: 5, match: [{ in: 'query', name: 'beta', op: 'exists' }] }),
      route('v1', ['/api']),
    ]);
    assert.equal(hit(r, '/api', { headers: { 'x-version': '2' }, query: 'beta' }), 'v2');
    assert.equal(hit(r, '/api', { query: 'beta' }), 'beta');
    assert.equal(hit(r, '/api'), 'v1');
  });

  test('backtracking across host groups: exact, then wildcard, then no host', () => {
    const canary = { in: 'cookie' as const, name: 'canary', op: 'equals' as const, value: '1' };
    const r = build([
      route('exact', ['/a'], { hosts: ['api.example.com'], match: [canary] }),
      route('wild', ['/a'], { hosts: ['*.example.com'], methods: ['POST'] }),
      route('wild-prefix', ['/*'], { hosts: ['*.api.example.com'], methods: ['PUT'] }),
      route('none', ['/a'], { methods: ['GET', 'POST', 'DELETE'] }),
    ]);
    assert.equal(hit(r, '/a', { host: 'api.example.com', headers: { cookie: 'canary=1' } }), 'exact');
    assert.equal(hit(r, '/a', { host: 'api.example.com', method: 'POST' }), 'wild');
    assert.equal(hit(r, '/a', { host: 'api.example.com' }), 'none');
    assert.equal(hit(r, '/a', { host: 'api.example.com', method: 'PUT' }), null);
    assert.equal(hit(r, '/a', { host: 'x.api.example.com', method: 'PUT' }), 'wild-prefix');
    assert.equal(hit(r, '/a', { host: 'x.api.example.com', method: 'POST' }), 'wild');
    assert.equal(hit(r, '/a', { host: 'x.api.example.com', method: 'DELETE' }), 'none');
  });

  test('nothing matches: null', () => {
    const r = build([route('a', ['/a'], { methods: ['GET'], hosts: ['h.test'] })]);
    assert.equal(hit(r, '/a', { host: 'h.test', method: 'POST' }), null);
    assert.equal(hit(r, '/a', { host: 'other.test' }), null);
    assert.equal(hit(r, '/b', { host: 'h.test' }), null);
  });
});

describe('match conditions', () => {
  const one = (m: Route['match']) => build([route('c', ['/'], { match: m })]);
  const header = (op: string, extra: object = {}) => one([{ in: 'header', name: 'X-Env', op, ...extra } as NonNullable<Route['match']>[number]]);

  test('equals / notEquals; a missing value fails equals and passes notEquals', () => {
    const eq = header('equals', { value: 'prod' });
    assert.equal(hit(eq, '/', { headers: { 'x-env': 'prod' } }), 'c');
    assert.equal(hit(eq, '/', { headers: { 'x-env': 'Prod' } }), null);
    assert.equal(hit(eq, '/'), null);
    const ne = header('notEquals', { value: 'prod' });
    assert.equal(hit(ne, '/', { headers: { 'x-env': 'prod' } }), null);
    assert.equal(hit(ne, '/', { headers: { 'x-env': 'dev' } }), 'c');
    assert.equal(hit(ne, '/'), 'c');
  });

  test('regex is compiled once and fails on a missing value', () => {
    const re = header('regex', { value: '^(dev|stage)-[0-9]+$' });
    assert.equal(hit(re, '/', { headers: { 'x-env': 'dev-12' } }), 'c');
    assert.equal(hit(re, '/', { headers: { 'x-env': 'dev-12' } }), 'c');
    assert.equal(hit(re, '/', { headers: { 'x-env': 'prod-1' } }), null);
    assert.equal(hit(re, '/'), null);
  });

  test('exists / notExists; an empty value exists', () => {
    const ex = header('exists');
    assert.equal(hit(ex, '/', { headers: { 'x-env': '' } }), 'c');
    assert.equal(hit(ex, '/'), null);
    const nex = header('notExists');
    assert.equal(hit(nex, '/', { headers: { 'x-env': 'x' } }), null);
    assert.equal(hit(nex, '/'), 'c');
  });

  test('in / notIn; a missing value fails in and passes notIn', () => {
    const inn = header('in', { values: ['a', 'b'] });
    assert.equal(hit(inn, '/', { headers: { 'x-env': 'b' } }), 'c');
    assert.equal(hit(inn, '/', { headers: { 'x-env': 'c' } }), null);
    assert.equal(hit(inn, '/'), null);
    const notIn = header('notIn', { values: ['a', 'b'] });
    assert.equal(hit(notIn, '/', { headers: { 'x-env': 'b' } }), null);
    assert.equal(hit(notIn, '/', { headers: { 'x-env': 'c' } }), 'c');
    assert.equal(hit(notIn, '/'), 'c');
  });

  test('header names are case-insensitive; repeated headers are joined by ", "', () => {
    const r = header('equals', { value: 'a, b' });
    assert.equal(hit(r, '/', { headers: { 'x-env': ['a', 'b'] } }), 'c');
    assert.equal(hit(r, '/', { headers: { 'x-env': 'a, b' } }), 'c');
    assert.equal(hit(r, '/', { headers: { 'x-env': ['a'] } }), null);
  });

  test('query arguments: decoded, first occurrence, present-but-empty exists', () => {
    const q = (op: string, extra: object = {}) => one([{ in: 'query', name: 'q', op, ...extra } as NonNullable<Route['match']>[number]]);
    const eq = q('equals', { value: 'a b' });
    assert.equal(hit(eq, '/', { query: 'q=a+b' }), 'c');
    assert.equal(hit(eq, '/', { query: 'x=1&q=a%20b' }), 'c');
    assert.equal(hit(eq, '/', { query: 'q=z&q=a+b' }), null);
    assert.equal(hit(eq, '/', { query: '' }), null);
    const ex = q('exists');
    assert.equal(hit(ex, '/', { query: 'q' }), 'c');
    assert.equal(hit(ex, '/', { query: 'qq=1' }), null);
    assert.equal(hit(q('notExists'), '/', { query: '' }), 'c');
    assert.equal(hit(q('notIn', { values: ['1'] }), '/'), 'c');
  });

  test('cookies: by exact name, quotes removed, first occurrence', () => {
    const ck = (op: string, extra: object = {}) => one([{ in: 'cookie', name: 'sid', op, ...extra } as NonNullable<Route['match']>[number]]);
    const eq = ck('equals', { value: 'abc' });
    assert.equal(hit(eq, '/', { headers: { cookie: 'sid=abc' } }), 'c');
    assert.equal(hit(eq, '/', { headers: { cookie: 'a=1; sid=abc; b=2' } }), 'c');
    assert.equal(hit(eq, '/', { headers: { cookie: 'a=1;sid="abc"' } }), 'c');
    assert.equal(hit(eq, '/', { headers: { cookie: 'xsid=abc; SID=abc' } }), null);
    assert.equal(hit(eq, '/', { headers: { cookie: 'sid=zzz; sid=abc' } }), null);
    assert.equal(hit(eq, '/'), null);
    assert.equal(hit(ck('notExists'), '/', { headers: { cookie: 'other=1' } }), 'c');
    assert.equal(hit(ck('exists'), '/', { headers: { cookie: 'sid=' } }), 'c');
  });

  test('all conditions of a route must hold', () => {
    const r = one([
      { in: 'header', name: 'x-a', op: 'equals', value: '1' },
      { in: 'query', name: 'b', op: 'in', values: ['2', '3'] },
      { in: 'cookie', name: 'c', op: 'regex', value: '^4' },
    ]);
    const headers = { 'x-a': '1', cookie: 'c=42' };
    assert.equal(hit(r, '/', { headers, query: 'b=3' }), 'c');
    assert.equal(hit(r, '/', { headers, query: 'b=4' }), null);
    assert.equal(hit(r, '/', { headers: { ...headers, 'x-a': '0' }, query: 'b=3' }), null);
    assert.equal(hit(r, '/', { headers: { 'x-a': '1', cookie: 'c=5' }, query: 'b=3' }), null);
  });

  test('no conditions compile to no predicate', () => {
    assert.equal(compileConditions('r', undefined), null);
    assert.equal(compileConditions('r', []), null);
  });

  test('cookieValue scans in place', () => {
    assert.equal(cookieValue(' a = 1 ;b=2', 'a'), '1');
    assert.equal(cookieValue('a=1;b=2', 'b'), '2');
    assert.equal(cookieValue('a=1; b', 'b'), undefined);
    assert.equal(cookieValue('a="x"', 'a'), 'x');
    assert.equal(cookieValue('a="', 'a'), '"');
    assert.equal(cookieValue('', 'a'), undefined);
    assert.equal(cookieValue(undefined, 'a'), undefined);
  });
});

describe('registration errors name the route', () => {
  const cases: [string, Partial<Route> & { paths?: string[] }, RegExp][] = [
    ['star-in-middle', { paths: ['/a/*/b'] }, /route "star-in-middle".*"\*"/],
    ['star-glued', { paths: ['/a*'] }, /route "star-glued"/],
    ['no-slash', { paths: ['a'] }, /route "no-slash".*start with/],
    ['bad-param', { paths: ['/a/:1x'] }, /route "bad-param".*parameter/],
    ['empty-param', { paths: ['/a/:'] }, /route "empty-param".*parameter/],
    ['dup-param', { paths: ['/a/:x/:x'] }, /route "dup-param".*twice/],
    ['proto-param', { paths: ['/a/:__proto__'] }, /route "proto-param"/],
    ['dot', { paths: ['/a/../b'] }, /route "dot".*"\."/],
    ['backslash', { paths: ['/a\\b'] }, /route "backslash"/],
    ['bad-escape', { paths: ['/a%zz'] }, /route "bad-escape"/],
    ['no-paths', { paths: [] }, /route "no-paths"/],
    ['bad-host', { hosts: ['a.*.com'] }, /route "bad-host".*host/],
    ['bare-star-host', { hosts: ['*'] }, /route "bare-star-host"/],
    ['bad-regex', { match: [{ in: 'header', name: 'x', op: 'regex', value: '(' }] }, /route "bad-regex".*regular expression/],
    ['no-value', { match: [{ in: 'header', name: 'x', op: 'equals' }] }, /route "no-value".*value/],
    ['no-values', { match: [{ in: 'query', name: 'x', op: 'in' }] }, /route "no-values".*values/],
  ];
  for (const [id, extra, expected] of cases) {
    test(id, () => {
      assert.throws(() => build([route(id, extra.paths ?? ['/'], extra)]), expected);
    });
  }

  test('duplicate ids among enabled routes', () => {
    assert.throws(() => build([route('same', ['/a']), route('same', ['/b'])]), /route "same"/);
    assert.doesNotThrow(() => build([route('same', ['/a']), route('same', ['/b'], { enabled: false })]));
  });
});

describe('scale', () => {
  test('10,000 routes compile and each is matched correctly', () => {
    const routes: Route[] = [];
    const N = 10_000;
    for (let i = 0; i < N; i++) {
      switch (i % 4) {
        case 0: routes.push(route(`r${i}`, [`/svc${i}/items`])); break;
        case 1: routes.push(route(`r${i}`, [`/svc${i}/items/:id`], { methods: ['GET'] })); break;
        case 2: routes.push(route(`r${i}`, [`/svc${i}/*`], { hosts: [`h${i}.example.com`] })); break;
        default: routes.push(route(`r${i}`, [`/svc${i}/:a/:b`], { hosts: [`*.t${i}.example.com`] }));
      }
    }
    routes.push(route('fallback', ['/*']));
    const r = build(routes);
    assert.equal(r.size, N + 1);
    for (let i = 0; i < N; i++) {
      switch (i % 4) {
        case 0:
          assert.equal(hit(r, `/svc${i}/items`), `r${i}`);
          assert.equal(hit(r, `/svc${i}/items/x`), 'fallback');
          break;
        case 1: {
          const m = r.match(req(`/svc${i}/items/${i}`));
          assert.equal(m?.route.id, `r${i}`);
          assert.deepEqual(m?.params, { id: String(i) });
          assert.equal(hit(r, `/svc${i}/items/${i}`, { method: 'POST' }), 'fallback');
          break;
        }
        case 2:
          assert.equal(hit(r, `/svc${i}/deep/path`, { host: `h${i}.example.com` }), `r${i}`);
          assert.equal(hit(r, `/svc${i}/deep/path`, { host: `h${i + 1}.example.com` }), 'fallback');
          break;
        default: {
          const m = r.match(req(`/svc${i}/p/q`, { host: `x.t${i}.example.com` }));
          assert.equal(m?.route.id, `r${i}`);
          assert.deepEqual(m?.params, { a: 'p', b: 'q' });
          assert.equal(hit(r, `/svc${i}/p/q`, { host: `x.t${i - 1}.example.com` }), 'fallback');
        }
      }
    }
  });
});
