/**
 * @module plugins/consumer-restriction/index.test
 * consumer-restriction: schema and checks with field paths, then real traffic: allow and deny by consumer
 * and by group behind key-auth, deny winning over allow, and a route with no auth plugin.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { startInProcessGateway, type InProcessGateway } from '../../process/in-process.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { node, startUpstream, type TestUpstream } from '../../../test/helpers/upstream.js';
import { json, send, type Reply } from '../../../test/helpers/http.js';
import { harness } from '../../../test/helpers/harness.js';

const { defer } = harness();

const code = (r: Reply) => (json(r).error as { code: string }).code;

function problemsOf(plugin: unknown): string[] {
  const r = validateDeclarative(
    { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { 'key-auth': {}, 'consumer-restriction': plugin } }] },
    builtinRegistry(),
  );
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('consumer-restriction schema', () => {
  const P = 'routes[0].plugins.consumer-restriction';

  it('accepts allow and deny lists by consumer and group', () => {
    assert.deepEqual(problemsOf({ allow: { consumers: ['alice', 'svc.batch@ops'] } }), []);
    assert.deepEqual(problemsOf({ deny: { groups: ['partners'] } }), []);
    assert.deepEqual(problemsOf({ allow: { groups: ['staff'] }, deny: { consumers: ['mallory'], groups: ['suspended'] } }), []);
  });

  it('refuses empty, unknown and contradictory config with the field path', () => {
    assert.deepEqual(problemsOf({}), [`${P}: needs allow or deny`]);
    assert.deepEqual(problemsOf({ allow: {} }), [`${P}.allow: needs consumers or groups`]);
    assert.ok(problemsOf({ deny: { consumers: [] } }).some((p) => p.startsWith(`${P}.deny.consumers:`)));
    assert.ok(problemsOf({ allow: { consumers: ['alice', 'alice'] } }).some((p) => p.startsWith(`${P}.allow.consumers:`)));
    assert.ok(problemsOf({ allow: { consumers: ['not a name'] } }).some((p) => p.startsWith(`${P}.allow.consumers[0]`)));
    assert.ok(problemsOf({ allow: { users: ['alice'] } }).some((p) => p === `${P}.allow.users: is not a known field`));
    assert.ok(problemsOf({ rejectedCode: 404, deny: { consumers: ['x'] } }).some((p) => p === `${P}.rejectedCode: is not a known field`));
    assert.deepEqual(problemsOf({ allow: { consumers: ['alice', 'bob'], groups: ['g'] }, deny: { consumers: ['carol', 'bob'], groups: ['g'] } }), [
      `${P}.deny.consumers[1]: is also in allow.consumers (deny wins): list it in one place`,
      `${P}.deny.groups[0]: is also in allow.groups (deny wins): list it in one place`,
    ]);
  });

  it('cannot be put on a consumer', () => {
    const r = validateDeclarative({ consumers: [{ username: 'c', plugins: { 'consumer-restriction': { deny: { consumers: ['c'] } } } }] }, builtinRegistry());
    assert.ok(!r.ok && r.problems.some((p) => p.path === 'consumers[0].plugins.consumer-restriction' && /cannot be configured on a consumer/.test(p.message)));
  });
});

describe('consumer-restriction traffic', () => {
  const consumers = [
    { username: 'alice', group: 'staff', credentials: { 'key-auth': { key: 'alice-secret-key' } } },
    { username: 'bob', group: 'partners', credentials: { 'key-auth': { key: 'bob-secret-key-1' } } },
    { username: 'dave', group: 'partners', credentials: { 'key-auth': { key: 'dave-secret-key' } } },
    { username: 'carol', credentials: { 'key-auth': { key: 'carol-secret-key' } } },
  ];
  const keys: Record<string, string> = { alice: 'alice-secret-key', bob: 'bob-secret-key-1', dave: 'dave-secret-key', carol: 'carol-secret-key' };
  let up: TestUpstream;
  let gw: InProcessGateway;

  before(async () => {
    up = await startUpstream();
    defer(() => up.close());
    const route = (id: string, restriction: unknown, auth = true) => ({
      id,
      paths: [`/${id}`],
      upstreamId: 'u',
      plugins: { ...(auth ? { 'key-auth': {} } : {}), 'consumer-restriction': restriction },
    });
    gw = await startInProcessGateway({
      config: {
        consumers,
        upstreams: [{ id: 'u', nodes: [node(up.port)] }],
        routes: [
          route('allow-consumer', { allow: { consumers: ['alice'] } }),
          route('allow-group', { allow: { groups: ['partners'] } }),
          route('deny-consumer', { deny: { consumers: ['bob'] } }),
          route('deny-group', { deny: { groups: ['partners'] } }),
          route('deny-wins', { allow: { groups: ['partners'], consumers: ['carol'] }, deny: { consumers: ['bob'] } }),
          route('no-auth', { allow: { consumers: ['alice'] } }, false),
        ],
      },
    });
    defer(() => gw.close());
  });

  /** Status for each consumer on a path, as "name:status". */
  async function outcomes(path: string): Promise<string[]> {
    const out: string[] = [];
    for (const [name, key] of Object.entries(keys)) {
      const before = up.seen.length;
      const r = await send(gw.http, path, { headers: { apikey: key } });
      out.push(`${name}:${r.status}`);
      if (r.status === 403) {
        assert.equal(code(r), 'GH_ERR_ACCESS_DENIED');
        assert.equal(up.seen.length, before, `${name} was refused and did not reach the upstream`);
      } else {
        assert.equal((json(r).headers as Record<string, string>)['x-consumer-username'], name);
      }
    }
    return out;
  }

  it('allow by consumer', async () => {
    assert.deepEqual(await outcomes('/allow-consumer'), ['alice:200', 'bob:403', 'dave:403', 'carol:403']);
  });

  it('allow by group (a consumer without a group is not in any)', async () => {
    assert.deepEqual(await outcomes('/allow-group'), ['alice:403', 'bob:200', 'dave:200', 'carol:403']);
  });

  it('deny by consumer', async () => {
    assert.deepEqual(await outcomes('/deny-consumer'), ['alice:200', 'bob:403', 'dave:200', 'carol:200']);
  });

  it('deny by group', async () => {
    assert.deepEqual(await outcomes('/deny-group'), ['alice:200', 'bob:403', 'dave:403', 'carol:200']);
  });

  it('deny wins over allow', async () => {
    assert.deepEqual(await outcomes('/deny-wins'), ['alice:403', 'bob:403', 'dave:200', 'carol:200']);
  });

  it('unauthenticated requests never reach it, and without an auth plugin there is no consumer: 401', async () => {
    const none = await send(gw.http, '/allow-consumer');
    assert.equal(none.status, 401);
    assert.equal(code(none), 'GH_ERR_AUTH_REQUIRED');
    const before = up.seen.length;
    const r = await send(gw.http, '/no-auth', { headers: { apikey: 'alice-secret-key', 'x-consumer-username': 'alice' } });
    assert.equal(r.status, 401);
    assert.equal(code(r), 'GH_ERR_AUTH_REQUIRED');
    assert.equal(up.seen.length, before);
  });
});

describe('consumer-restriction doc', () => {
  it('the example in docs/plugins/consumer-restriction.md is valid and answers as the page shows', async () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/consumer-restriction.md', import.meta.url), 'utf8');
    const yamlBlock = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(yamlBlock, 'the doc has the example config');
    const example = parse(yamlBlock) as Record<string, unknown>;
    const up = await startUpstream();
    defer(() => up.close());
    const gw = await startInProcessGateway({ config: { ...example, upstreams: [{ id: 'reports', nodes: [node(up.port)] }] } });
    defer(() => gw.close());
    const as = (key?: string) => send(gw.http, '/reports/q1', { headers: key ? { apikey: key } : {} });
    assert.equal((await as('dave-secret-key')).status, 200);
    assert.equal(code(await as('bob-secret-key-1')), 'GH_ERR_ACCESS_DENIED');
    assert.equal(code(await as('alice-secret-key')), 'GH_ERR_ACCESS_DENIED');
    assert.equal(code(await as()), 'GH_ERR_AUTH_REQUIRED');
  });
});
