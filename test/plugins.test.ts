/**
 * @module test/plugins
 * The plugin framework through real traffic: phases and their order, auth groups, consumer plugins,
 * failures that must not be bypassed, custom plugins from a directory, and the key-auth and request-id plugins.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startInProcessGateway, type InProcessGateway } from '../src/process/in-process.js';
import { PluginRegistry, PluginDefinitionError, loadPluginDirectory } from '../src/dataplane/plugins/registry.js';
import { builtinRegistry } from '../src/plugins/index.js';
import { validateDeclarative } from '../src/model/validate.js';
import { node, startUpstream, type TestUpstream } from './helpers/upstream.js';
import { json, send } from './helpers/http.js';
import { harness } from './helpers/harness.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/plugins/', import.meta.url));
const { upstream, gateway } = harness();

const consumers = [
  { username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } } },
  { username: 'bob', group: 'partners', credentials: { 'key-auth': { key: 'bob-secret-key-1' } } },
];

describe('registry', () => {
  it('refuses incomplete definitions and taken names or priorities', () => {
    const r = new PluginRegistry();
    const ok = { name: 'a-plugin', version: '1.0.0', priority: 1, description: 'x', schema: { type: 'object', properties: {} }, create: () => ({}) };
    r.register(ok as never);
    assert.throws(() => r.register({ ...ok } as never), PluginDefinitionError);
    assert.throws(() => r.register({ ...ok, name: 'b-plugin' } as never), /priority 1 is taken/);
    assert.throws(() => r.register({ ...ok, name: 'Bad_Name', priority: 2 } as never), /kebab-case/);
    assert.throws(() => r.register({ ...ok, name: 'c-plugin', priority: 3, create: undefined } as never), /create/);
    assert.throws(
      () => r.register({ ...ok, name: 'd-plugin', priority: 4, schema: { type: 'object', properties: { x: { type: 'string' } } } } as never),
      /description: schema\.x/,
    );
  });

  it('validates plugin config per scope, with the plugin in the path', () => {
    const reg = builtinRegistry();
    const r = validateDeclarative(
      {
        upstreams: [{ id: 'u', nodes: [node(1)] }],
        routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { 'key-auth': { header: 'bad header' }, 'request-id': { bogus: true } } }],
        consumers: [{ username: 'c', plugins: { 'key-auth': {} }, credentials: { 'key-auth': { key: 'short' }, 'request-id': {} } }],
      },
      reg,
    );
    assert.equal(r.ok, false);
    const paths = r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
    assert.ok(paths.some((p) => p.startsWith('routes[0].plugins.key-auth.header')), paths.join('\n'));
    assert.ok(paths.some((p) => p.startsWith('routes[0].plugins.request-id.bogus')), paths.join('\n'));
    assert.ok(paths.some((p) => p.startsWith('consumers[0].plugins.key-auth: "key-auth" cannot be configured on a consumer')), paths.join('\n'));
    assert.ok(paths.some((p) => p.startsWith('consumers[0].credentials.key-auth.key')), paths.join('\n'));
    assert.ok(paths.some((p) => p.startsWith('consumers[0].credentials.request-id: "request-id" is not an auth plugin')), paths.join('\n'));
  });

  it('refuses two consumers with the same key', () => {
    const r = validateDeclarative(
      {
        consumers: [
          { username: 'a', credentials: { 'key-auth': { key: 'same-key-123' } } },
          { username: 'b', credentials: { 'key-auth': { key: 'same-key-123' } } },
        ],
      },
      builtinRegistry(),
    );
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.problems.some((p) => p.path === 'consumers[1].credentials.key-auth' && /consumer "a"/.test(p.message)));
    assert.ok(!r.ok && !JSON.stringify(r.problems).includes('same-key-123'), 'the key is not echoed');
  });

  it('loads custom plugins from a directory', async () => {
    const reg = builtinRegistry();
    assert.deepEqual(await loadPluginDirectory(FIXTURES, reg), ['body-upper', 'body-wrap', 'header-stamp', 'pick-upstream']);
    assert.ok(reg.has('header-stamp'));
    await assert.rejects(loadPluginDirectory(`${FIXTURES}does-not-exist`, builtinRegistry()), /cannot read the plugin directory/);
  });
});

describe('key-auth', () => {
  it('authenticates by header or query, hides the key, sends the consumer upstream', async () => {
    const up = await upstream();
    const gw = await gateway({ consumers, routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'key-auth': {} } }] });
    const missing = await send(gw.http, '/x');
    assert.equal(missing.status, 401);
    assert.equal((json(missing).error as { code: string }).code, 'GH_ERR_AUTH_REQUIRED');
    const wrong = await send(gw.http, '/x', { headers: { apikey: 'nope-nope-nope' } });
    assert.equal(wrong.status, 401);
    assert.equal((json(wrong).error as { code: string }).code, 'GH_ERR_AUTH_INVALID');
    assert.equal(up.seen.length, 0, 'nothing reached the upstream');

    const byHeader = json(await send(gw.http, '/x', { headers: { apikey: 'alice-secret-key', 'x-consumer-username': 'mallory' } }));
    const h = byHeader.headers as Record<string, string>;
    assert.equal(h['x-consumer-username'], 'alice', 'the client-sent copy is replaced');
    assert.equal(h.apikey, undefined, 'the key is removed before forwarding');

    const byQuery = json(await send(gw.http, '/x?a=1&apikey=bob-secret-key-1&b=2'));
    assert.equal(byQuery.url, '/x?a=1&b=2');
    assert.equal((byQuery.headers as Record<string, string>)['x-consumer-username'], 'bob');
  });

  it('keeps the key when hideCredentials is false, and reads a custom header', async () => {
    const up = await upstream();
    const gw = await gateway({ consumers, routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'key-auth': { header: 'X-Api-Key', hideCredentials: false } } }] });
    const r = json(await send(gw.http, '/', { headers: { 'x-api-key': 'alice-secret-key' } }));
    assert.equal((r.headers as Record<string, string>)['x-api-key'], 'alice-secret-key');
  });

  it('gives the same outcome for every spelling of a protected path', async () => {
    const up = await upstream();
    const gw = await gateway({
      consumers,
      routes: [
        { id: 'admin', paths: ['/admin', '/admin/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'key-auth': {} } },
        { id: 'public', paths: ['/*'], upstream: { nodes: [node(up.port)] } },
      ],
    });
    for (const p of ['/admin', '//admin', '/a/../admin', '/%61dmin', '/admin/', '/x/..//admin/./y', '/%2e%2e/admin']) {
      const r = await send(gw.http, p);
      assert.ok(r.status === 401 || r.status === 400, `${p} -> ${r.status}`);
    }
    assert.equal(up.seen.filter((s) => s.url.startsWith('/admin')).length, 0, 'no spelling of /admin got through unauthenticated');
  });
});

describe('request-id', () => {
  it('makes an id, or keeps a safe incoming one, and echoes it', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'request-id': {} } }] });
    const fresh = await send(gw.http, '/');
    const id = fresh.headers['x-request-id'] as string;
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal((json(fresh).headers as Record<string, string>)['x-request-id'], id);
    const kept = await send(gw.http, '/', { headers: { 'x-request-id': 'abc-123' } });
    assert.equal(kept.headers['x-request-id'], 'abc-123');
    const unsafe = await send(gw.http, '/', { headers: { 'x-request-id': 'a b' } });
    assert.notEqual(unsafe.headers['x-request-id'], 'a b');
  });

  it('also stamps responses the gateway makes itself (a 401 from an auth plugin)', async () => {
    const up = await upstream();
    const gw = await gateway({ consumers, routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'request-id': {}, 'key-auth': {} } }] });
    const r = await send(gw.http, '/');
    assert.equal(r.status, 401);
    assert.match(r.headers['x-request-id'] as string, /^[0-9a-f-]{36}$/);
  });
});

describe('framework', () => {
  it('merges global < service < route, runs response phases, and loads custom plugins', async () => {
    const up = await upstream();
    const gw = await gateway(
      {
        globalPlugins: { 'header-stamp': { value: 'global' } },
        services: [{ id: 's', upstream: { nodes: [node(up.port)] }, plugins: { 'header-stamp': { value: 'service' } } }],
        routes: [
          { id: 'on-service', paths: ['/svc'], serviceId: 's' },
          { id: 'own', paths: ['/own'], serviceId: 's', plugins: { 'header-stamp': { value: 'route' } } },
          { id: 'plain', paths: ['/plain'], upstream: { nodes: [node(up.port)] } },
        ],
      },
      { 'plugins.directory': FIXTURES },
    );
    const svc = await send(gw.http, '/svc');
    assert.equal((json(svc).headers as Record<string, string>)['x-stamp'], 'service');
    assert.equal(svc.headers['x-stamp-seen'], 'service');
    assert.equal((json(await send(gw.http, '/own')).headers as Record<string, string>)['x-stamp'], 'route');
    assert.equal((json(await send(gw.http, '/plain')).headers as Record<string, string>)['x-stamp'], 'global');
  });

  it('a plugin that throws gives 500, the request is not proxied, and nothing of the error leaks', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'header-stamp': { fail: true } } }] }, { 'plugins.directory': FIXTURES });
    const r = await send(gw.http, '/');
    assert.equal(r.status, 500);
    assert.equal((json(r).error as { code: string }).code, 'GH_ERR_PLUGIN_FAILED');
    assert.ok(!r.body.includes('canary-plugin-secret'));
    assert.equal(up.seen.length, 0);
    const dump = gw.gateway.metrics.dump();
    assert.deepEqual(dump.pluginErrors, [['header-stamp\0access', 1]]);
  });

  it('consumer plugins replace the route\'s once the consumer is known', async () => {
    const up = await upstream();
    const gw = await gateway(
      {
        consumers: [
          { username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } }, plugins: { 'header-stamp': { value: 'for-alice' } } },
          { username: 'bob', credentials: { 'key-auth': { key: 'bob-secret-key-1' } } },
        ],
        routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'key-auth': {}, 'header-stamp': { value: 'route' } } }],
      },
      { 'plugins.directory': FIXTURES },
    );
    assert.equal((json(await send(gw.http, '/', { headers: { apikey: 'alice-secret-key' } })).headers as Record<string, string>)['x-stamp'], 'for-alice');
    assert.equal((json(await send(gw.http, '/', { headers: { apikey: 'bob-secret-key-1' } })).headers as Record<string, string>)['x-stamp'], 'route');
  });
});

describe('bodies read for plugins', () => {
  it('a body that stalls while a plugin waits for it gets 408, and nothing goes upstream', async () => {
    const { connect } = await import('node:net');
    const up = await upstream();
    const gw = await gateway({
      routes: [
        {
          id: 'r',
          paths: ['/*'],
          upstream: { nodes: [node(up.port)], timeout: { connect: 1000, send: 400, read: 1000 } },
          plugins: { 'request-validation': { body: { type: 'object' } } },
        },
      ],
    });
    const sock = connect(gw.http, '127.0.0.1');
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      sock.on('data', (c: Buffer) => (text += c.toString()));
      sock.on('close', () => resolve(text));
      sock.on('error', () => resolve(text));
      sock.write('POST /x HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"a":');
      setTimeout(() => sock.destroy(), 5000).unref();
    });
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /GH_ERR_REQUEST_TIMEOUT/);
    assert.equal(up.seen.length, 0);
  });
});

describe('response body phase', () => {
  it('filters stream in reverse priority order, and the length is recomputed', async () => {
    const up = await upstream((_q, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 11 });
      res.write('hello ');
      setTimeout(() => res.end('world'), 20);
    });
    const gw = await gateway(
      {
        routes: [
          { id: 'both', paths: ['/both'], upstream: { nodes: [node(up.port)] }, plugins: { 'body-upper': {}, 'body-wrap': {} } },
          { id: 'upper', paths: ['/upper'], upstream: { nodes: [node(up.port)] }, plugins: { 'body-upper': {} } },
          { id: 'plain', paths: ['/plain'], upstream: { nodes: [node(up.port)] } },
        ],
      },
      { 'plugins.directory': FIXTURES },
    );
    // Response phases run from the lowest priority up: body-upper (110) first, then body-wrap (120) wraps its output.
    const both = await send(gw.http, '/both');
    assert.equal(both.body, '[HELLO WORLD]');
    assert.equal(both.headers['content-length'], undefined);
    assert.equal((await send(gw.http, '/upper')).body, 'HELLO WORLD');
    const plain = await send(gw.http, '/plain');
    assert.equal(plain.body, 'hello world');
    assert.equal(plain.headers['content-length'], '11');
  });
});

describe('picking the upstream', () => {
  it('a before-upstream hook sends the request to another named upstream', async () => {
    const main = await upstream();
    const canary = await upstream();
    const gw = await gateway(
      {
        upstreams: [
          { id: 'main', nodes: [node(main.port)] },
          { id: 'canary', nodes: [node(canary.port)] },
        ],
        routes: [{ id: 'r', paths: ['/*'], upstreamId: 'main', plugins: { 'pick-upstream': {} } }],
      },
      { 'plugins.directory': FIXTURES },
    );
    assert.equal((await send(gw.http, '/a')).status, 200);
    assert.equal((await send(gw.http, '/b', { headers: { 'x-pick': 'canary' } })).status, 200);
    assert.equal((await send(gw.http, '/c', { headers: { 'x-pick': 'nope' } })).status, 421);
    assert.deepEqual(main.seen.map((s) => s.url), ['/a']);
    assert.deepEqual(canary.seen.map((s) => s.url), ['/b']);
  });
});
