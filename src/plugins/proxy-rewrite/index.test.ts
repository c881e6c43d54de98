/**
 * @module plugins/proxy-rewrite/index.test
 * proxy-rewrite: config refused or accepted with field paths, then real traffic through an in-process gateway to
 * a real upstream: path templates, regex captures, prefix strip, query kept or replaced, Host, method, header
 * edits, unsafe rewrites refused, and authentication decided on the client's path.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { node } from '../../../test/helpers/upstream.js';
import { harness } from '../../../test/helpers/harness.js';
import { send, json, type Reply } from '../../../test/helpers/http.js';

const { gateway, upstream } = harness();

function problems(plugins: Record<string, unknown>): string[] {
  const cfg = { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins }] };
  const r = validateDeclarative(cfg, builtinRegistry());
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('proxy-rewrite config', () => {
  it('accepts templates, regexes, prefixes and header edits, and fills in the defaults', () => {
    const good: Array<Record<string, unknown>> = [
      { uri: '/v2/accounts/$id/${id}-orders' },
      { uri: '/search?q=$term&fixed=1' },
      { uri: '/price$$' },
      { regexUri: ['^/re/([a-z]+)/(\\d+)$', '/items/$2/${1}'] },
      { regexUri: ['^/n/(?<slug>[a-z]+)$', '/named/${slug}'] },
      { stripPrefix: '/api' },
      { stripPrefix: '/api/' },
      { host: 'internal.example:8080', method: 'PUT' },
      { headers: { set: { 'X-A': '1' }, add: { 'X-B': '2' }, remove: ['X-C'] } },
    ];
    for (const conf of good) assert.deepEqual(problems({ 'proxy-rewrite': conf }), [], JSON.stringify(conf));
    const r = validateDeclarative({ upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'proxy-rewrite': { uri: '/x' } } }] }, builtinRegistry());
    assert.ok(r.ok);
    assert.deepEqual(r.value.routes[0]!.plugins!['proxy-rewrite'], { uri: '/x', headers: { set: {}, add: {}, remove: [] } });
  });

  it('refuses bad configs with the path of the field', () => {
    const at = 'routes[0].plugins.proxy-rewrite';
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ uri: 'v2/x' }, `${at}.uri: must start with "/"`],
      [{ uri: '/a/../b' }, `${at}.uri: must not have "." or ".." segments`],
      [{ uri: '/a/%2E/b' }, `${at}.uri: must not have "." or ".." segments`],
      [{ uri: '/a#b' }, `${at}.uri: is not a valid path`],
      [{ uri: '/a b' }, `${at}.uri: is not a valid path`],
      [{ uri: '/x/$1' }, `${at}.uri: uses capture $1: captures need regexUri`],
      [{ uri: '/x/$' }, `${at}.uri: has a "$" that starts no`],
      [{ uri: '/x/${id' }, `${at}.uri: has a "\${" without its "}"`],
      [{ uri: '/x?a=#' }, `${at}.uri: has a query with characters`],
      [{ regexUri: ['^/(a', '/x'] }, `${at}.regexUri[0]: is not a valid regular expression`],
      [{ regexUri: ['^/(a)$', '/x/$2'] }, `${at}.regexUri[1]: uses capture $2 but the pattern has 1 group(s)`],
      [{ regexUri: ['^/(a)$'] }, `${at}.regexUri: must NOT have fewer than 2 items`],
      [{ uri: '/x', stripPrefix: '/api' }, `${at}.stripPrefix: cannot be used with uri`],
      [{ regexUri: ['^/a$', '/b'], uri: '/x' }, `${at}.regexUri: cannot be used with uri`],
      [{ stripPrefix: '/a//b' }, `${at}.stripPrefix: must be a canonical path`],
      [{ stripPrefix: 'api' }, `${at}.stripPrefix: must be a canonical path`],
      [{ host: 'bad host' }, `${at}.host: must match pattern`],
      [{ method: 'FETCH' }, `${at}.method:`],
      [{ headers: { set: { Host: 'x' } } }, `${at}.headers.set.Host: use the host option`],
      [{ headers: { remove: ['Content-Length'] } }, `${at}.headers.remove[0]: is a header the gateway owns`],
      [{ headers: { add: { 'X-Consumer-Username': 'admin' } } }, `${at}.headers.add.X-Consumer-Username: is a header the gateway owns`],
      [{ headers: { set: { 'X-A': 'a\r\nX-B: b' } } }, `${at}.headers.set.X-A: must match pattern`],
      [{ headers: { set: { 'bad name': 'a' } } }, `${at}.headers.set.bad name: is not a known field`],
      [{ url: '/x' }, `${at}.url: is not a known field`],
    ];
    for (const [conf, expected] of cases) {
      const found = problems({ 'proxy-rewrite': conf });
      assert.ok(found.some((p) => p.startsWith(expected)), `${JSON.stringify(conf)}\nexpected ${expected}\ngot ${found.join('\n')}`);
    }
  });
});

describe('proxy-rewrite traffic', async () => {
  const up = await upstream();
  const route = (id: string, paths: string[], conf: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    id,
    paths,
    upstream: { nodes: [node(up.port)] },
    plugins: { 'proxy-rewrite': conf, ...extra },
  });
  const gw = await gateway({
    consumers: [{ username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } } }],
    routes: [
      route('params', ['/users/:id/orders'], { uri: '/v2/accounts/$id/${id}-orders' }),
      route('regex', ['/re/*'], { regexUri: ['^/re/([a-z]+)/(\\d+)$', '/items/$2/$1'] }),
      route('named', ['/n/*'], { regexUri: ['^/n/(?<slug>[a-z]+)$', '/named/${slug}?from=n'] }),
      route('strip', ['/api', '/api/*', '/apiary'], { stripPrefix: '/api' }),
      route('query', ['/q/:id'], { uri: '/lookup?mode=fixed&id=$id' }),
      route('empty-query', ['/eq'], { uri: '/plain?' }),
      route('host-method', ['/hm'], { uri: '/moved', host: 'internal.example:8080', method: 'PUT' }),
      route('headers', ['/h'], { headers: { remove: ['X-Drop'], set: { 'X-Set': 'gw' }, add: { 'X-Multi': 'gw' } } }),
      route('dots', ['/dots/*'], { regexUri: ['^/dots/v(.*)$', '/internal/public/$1/x'] }),
      route('merge', ['/m/*'], { regexUri: ['^/m/(.*)$', '/a/$1/b'] }),
      route('missing-param', ['/np'], { uri: '/x/$nope' }),
      route('private', ['/private/*'], { uri: '/public' }, { 'key-auth': {} }),
    ],
  });
  const seen = (r: Reply) => json<{ method: string; url: string; headers: Record<string, string> }>(r);

  it('fills route params into the new path and keeps the query', async () => {
    const r = await send(gw.http, '/users/42/orders?x=1&y=2');
    assert.equal(r.status, 200);
    assert.equal(seen(r).url, '/v2/accounts/42/42-orders?x=1&y=2');
  });

  it('rewrites with regex captures, and keeps the path when the pattern does not match', async () => {
    assert.equal(seen(await send(gw.http, '/re/abc/7')).url, '/items/7/abc');
    assert.equal(seen(await send(gw.http, '/re/ABC/7?k=v')).url, '/re/ABC/7?k=v');
    assert.equal(seen(await send(gw.http, '/n/slug?dropped=1')).url, '/named/slug?from=n');
  });

  it('strips a prefix at a segment boundary only', async () => {
    assert.equal(seen(await send(gw.http, '/api/users/1?q=1')).url, '/users/1?q=1');
    assert.equal(seen(await send(gw.http, '/api')).url, '/');
    assert.equal(seen(await send(gw.http, '/apiary')).url, '/apiary');
  });

  it('replaces the query when the new uri has one, encoding values so they cannot add arguments', async () => {
    assert.equal(seen(await send(gw.http, '/q/7?a=1')).url, '/lookup?mode=fixed&id=7');
    assert.equal(seen(await send(gw.http, '/q/a&admin=1')).url, '/lookup?mode=fixed&id=a%26admin%3D1');
    assert.equal(seen(await send(gw.http, '/eq?secret=1')).url, '/plain');
  });

  it('sets the upstream Host and method', async () => {
    const r = seen(await send(gw.http, '/hm', { headers: { host: 'client.example' } }));
    assert.equal(r.method, 'PUT');
    assert.equal(r.url, '/moved');
    assert.equal(r.headers.host, 'internal.example:8080');
  });

  it('removes, sets and adds upstream headers', async () => {
    const before = up.seen.length;
    const r = await send(gw.http, '/h', { headers: { 'x-drop': 'secret', 'x-set': 'client', 'x-multi': 'client' } });
    assert.equal(r.status, 200);
    const raw = up.seen[before]!.rawHeaders;
    const values = (name: string) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === name);
    assert.deepEqual(values('x-drop'), []);
    assert.deepEqual(values('x-set'), ['gw']);
    assert.deepEqual(values('x-multi'), ['client', 'gw']);
  });

  it('keeps the rewritten path canonical and refuses a rewrite that would climb out of it', async () => {
    assert.equal(seen(await send(gw.http, '/m/c')).url, '/a/c/b');
    // An empty capture leaves "//": merged, as the gateway does for client paths.
    assert.equal(seen(await send(gw.http, '/m/')).url, '/a/b');
    const before = up.seen.length;
    const r = await send(gw.http, '/dots/v..');
    assert.equal(r.status, 400);
    assert.equal(json<{ error: { code: string } }>(r).error.code, 'GH_ERR_PATH_INVALID');
    assert.equal(up.seen.length, before, 'nothing reached the upstream');
  });

  it('fails closed when the template names a parameter the route does not have', async () => {
    const before = up.seen.length;
    const r = await send(gw.http, '/np');
    assert.equal(r.status, 500);
    assert.equal(json<{ error: { code: string } }>(r).error.code, 'GH_ERR_PLUGIN_FAILED');
    assert.equal(up.seen.length, before);
  });

  it('leaves authentication to the client\'s path: no key, 401 and nothing upstream', async () => {
    const before = up.seen.length;
    const denied = await send(gw.http, '/private/report');
    assert.equal(denied.status, 401);
    assert.equal(up.seen.length, before, 'nothing reached the upstream');
    const ok = await send(gw.http, '/private/report', { headers: { apikey: 'alice-secret-key' } });
    assert.equal(ok.status, 200);
    assert.equal(seen(ok).url, '/public');
    assert.equal(seen(ok).headers['x-consumer-username'], 'alice');
  });
});

it('host wins over passHost: node', async () => {
  const up = await upstream();
  const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)], passHost: 'node' }, plugins: { 'proxy-rewrite': { host: 'rewritten.example' } } }] });
  assert.equal((json(await send(gw.http, '/x')).headers as Record<string, string>).host, 'rewritten.example');
});
