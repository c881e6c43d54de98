/**
 * @module plugins/ip-restriction/index.test
 * ip-restriction: schema and CIDR checks with field paths, the address matcher (IPv4, IPv6, IPv4-mapped),
 * then real traffic with client addresses set through a trusted proxy's X-Forwarded-For.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { startInProcessGateway, type InProcessGateway } from '../../process/in-process.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { node, startUpstream, type TestUpstream } from '../../../test/helpers/upstream.js';
import { json, send, type Reply } from '../../../test/helpers/http.js';
import { AddressMatcher, parseRule } from '../../core/cidr.js';
import { harness } from '../../../test/helpers/harness.js';

const { upstream, defer } = harness();

/** The test client connects from 127.0.0.1; trusting it lets X-Forwarded-For stand for any client address. */
async function gateway(config: unknown, trustLoopback = true): Promise<InProcessGateway> {
  const g = await startInProcessGateway({ config, settings: trustLoopback ? { 'proxy.trustedProxies': ['127.0.0.1'] } : {} });
  defer(() => g.close());
  return g;
}

const code = (r: Reply) => (json(r).error as { code: string }).code;
const from = (ip: string) => ({ headers: { 'x-forwarded-for': ip } });

function problemsOf(plugin: unknown): string[] {
  const r = validateDeclarative(
    { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { 'ip-restriction': plugin } }] },
    builtinRegistry(),
  );
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('ip-restriction schema', () => {
  it('accepts addresses and ranges of both families', () => {
    assert.deepEqual(problemsOf({ allow: ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1', '::ffff:198.51.100.0/120', '0.0.0.0/0'] }), []);
    assert.deepEqual(problemsOf({ deny: ['203.0.113.0/24'] }), []);
  });

  it('refuses anything but exactly one list, and bad entries with their path', () => {
    const P = 'routes[0].plugins.ip-restriction';
    assert.deepEqual(problemsOf({}), [`${P}: needs allow or deny`]);
    assert.deepEqual(problemsOf({ allow: ['10.0.0.0/8'], deny: ['10.1.0.0/16'] }), [`${P}: give either allow or deny, not both`]);
    assert.ok(problemsOf({ allow: [] }).some((p) => p.startsWith(`${P}.allow:`)));
    assert.ok(problemsOf({ allow: ['10.0.0.0/8'], extra: 1 }).some((p) => p === `${P}.extra: is not a known field`));
    const bad = problemsOf({ deny: ['10.0.0.0/8', '10.0.0.0/33', 'not-an-ip', '2001:db8::/129', 'fe80::1%eth0', '10.0.0.0/', '10.0.0.0/+8', '300.1.1.1', '10.0.0.0/8/8'] });
    assert.deepEqual(
      bad.map((p) => p.split(':')[0]),
      [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `${P}.deny[${i}]`),
      bad.join('\n'),
    );
    assert.match(bad[0]!, /prefix length that is not 0 to 32/);
    assert.match(bad[2]!, /prefix length that is not 0 to 128/);
  });

  it('cannot be put on a consumer (consumer plugins run after authentication)', () => {
    const r = validateDeclarative({ consumers: [{ username: 'c', plugins: { 'ip-restriction': { allow: ['10.0.0.0/8'] } } }] }, builtinRegistry());
    assert.ok(!r.ok && r.problems.some((p) => p.path === 'consumers[0].plugins.ip-restriction' && /cannot be configured on a consumer/.test(p.message)));
  });
});

describe('AddressMatcher', () => {
  const matcher = (rules: string[]) => new AddressMatcher(rules.map((r) => parseRule(r) as Exclude<ReturnType<typeof parseRule>, string>));

  it('matches IPv4 clients in every form a socket or proxy gives them', () => {
    const m = matcher(['10.0.0.0/8', '192.0.2.7']);
    assert.equal(m.has('10.200.3.4'), true);
    assert.equal(m.has('11.0.0.1'), false);
    assert.equal(m.has('192.0.2.7'), true);
    assert.equal(m.has('192.0.2.8'), false);
    assert.equal(m.has('::ffff:10.1.2.3'), true, 'dual-stack socket form');
    assert.equal(m.has('::FFFF:10.1.2.3'), true, 'upper case');
    assert.equal(m.has('::ffff:a01:203'), true, 'hex form of ::ffff:10.1.2.3');
    assert.equal(m.has('::ffff:b00:1'), false);
    assert.equal(m.has('::a01:203'), false, 'IPv4-compatible is not IPv4-mapped');
  });

  it('matches IPv6 clients, and mapped rules match plain IPv4 clients', () => {
    const m = matcher(['2001:db8::/32', '::1', '::ffff:198.51.100.0/120']);
    assert.equal(m.has('2001:db8:ffff::1'), true);
    assert.equal(m.has('2001:DB8::1'), true);
    assert.equal(m.has('2001:db9::1'), false);
    assert.equal(m.has('::1'), true);
    assert.equal(m.has('::2'), false);
    assert.equal(m.has('198.51.100.9'), true, 'a mapped rule covers the IPv4 address');
    assert.equal(m.has('::ffff:198.51.100.9'), true);
    assert.equal(m.has('198.51.101.9'), false);
    assert.equal(m.has('10.0.0.1'), false);
  });

  it('keeps IPv6 ranges to IPv6 clients: ::/0 is not every IPv4 client', () => {
    const m = matcher(['::/0']);
    assert.equal(m.has('2001:db8::1'), true);
    assert.equal(m.has('10.0.0.1'), false);
    assert.equal(m.has('::ffff:10.0.0.1'), false);
    assert.equal(m.has('::ffff:a00:1'), false, 'nor in hex form');
    assert.equal(matcher(['0.0.0.0/0']).has('::ffff:10.0.0.1'), true);
    assert.equal(matcher(['0.0.0.0/0']).has('2001:db8::1'), false);
  });

  it('says null for what is not an address', () => {
    const m = matcher(['0.0.0.0/0']);
    for (const junk of ['', 'unknown', '10.0.0.1:443', '[::1]', '10.0.0.256', '10.0.0.1, 10.0.0.2']) assert.equal(m.has(junk), null, junk);
  });
});

describe('ip-restriction traffic', () => {
  it('allow: only listed IPv4 and IPv6 clients get through', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'ip-restriction': { allow: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] } } }] });
    for (const ip of ['10.1.2.3', '192.0.2.7', '2001:db8::5', '::ffff:10.9.9.9']) {
      const r = await send(gw.http, '/', from(ip));
      assert.equal(r.status, 200, ip);
      assert.equal((json(r).headers as Record<string, string>)['x-real-ip'], ip, 'the upstream sees the same client');
    }
    const seen = up.seen.length;
    for (const ip of ['11.1.2.3', '192.0.2.8', '2001:db9::1', '::ffff:11.9.9.9', 'not-an-address']) {
      const r = await send(gw.http, '/', from(ip));
      assert.equal(r.status, 403, ip);
      assert.equal(code(r), 'GH_ERR_ACCESS_DENIED');
      assert.equal(r.headers['content-type'], 'application/json');
    }
    assert.equal((await send(gw.http, '/')).status, 403, 'no X-Forwarded-For: the client is the proxy itself, 127.0.0.1');
    assert.equal(up.seen.length, seen, 'nothing refused reached the upstream');
  });

  it('deny: listed IPv4 and IPv6 clients are refused, others get through', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'ip-restriction': { deny: ['203.0.113.0/24', '2001:db8::1'] } } }] });
    for (const ip of ['203.0.113.9', '::ffff:203.0.113.10', '2001:db8::1', '2001:0db8:0:0:0:0:0:1', 'garbage']) {
      const r = await send(gw.http, '/', from(ip));
      assert.equal(r.status, 403, ip);
      assert.equal(code(r), 'GH_ERR_ACCESS_DENIED');
    }
    assert.equal(up.seen.length, 0);
    for (const ip of ['203.0.114.1', '2001:db8::2', '10.0.0.1']) assert.equal((await send(gw.http, '/', from(ip))).status, 200, ip);
    assert.equal((await send(gw.http, '/')).status, 200, '127.0.0.1 itself is not denied');
  });

  it('takes the client address after trusted-proxy handling: an untrusted peer cannot claim one', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'ip-restriction': { allow: ['10.0.0.0/8'] } } }] }, false);
    assert.equal((await send(gw.http, '/', from('10.1.2.3'))).status, 403, 'X-Forwarded-For from an untrusted peer is ignored');
    const loopback = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'ip-restriction': { allow: ['127.0.0.0/8'] } } }] }, false);
    assert.equal((await send(loopback.http, '/', from('10.1.2.3'))).status, 200, 'the real peer is what counts');
    const chained = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'ip-restriction': { deny: ['203.0.113.0/24'] } } }] });
    assert.equal((await send(chained.http, '/', from('10.1.1.1, 203.0.113.5'))).status, 403, 'the right-most untrusted address is the client');
    assert.equal((await send(chained.http, '/', from('203.0.113.5, 10.1.1.1'))).status, 200, 'a client-written left entry is not believed');
  });

  it('runs before authentication: a refused address learns nothing about credentials', async () => {
    const up = await upstream();
    const gw = await gateway({
      consumers: [{ username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } } }],
      routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'key-auth': {}, 'ip-restriction': { deny: ['203.0.113.0/24'] } } }],
    });
    const noKey = await send(gw.http, '/', from('203.0.113.1'));
    assert.equal(noKey.status, 403, 'refused before the auth plugins say 401');
    assert.equal(noKey.headers['www-authenticate'], undefined);
    assert.equal((await send(gw.http, '/', { headers: { 'x-forwarded-for': '203.0.113.1', apikey: 'alice-secret-key' } })).status, 403, 'a valid key does not help');
    assert.equal((await send(gw.http, '/', { headers: { 'x-forwarded-for': '203.0.113.1', apikey: 'wrong-key-123' } })).status, 403, 'a wrong key is not even looked at');
    assert.equal((await send(gw.http, '/', from('198.51.100.1'))).status, 401, 'others go on to authentication');
    assert.equal((await send(gw.http, '/', { headers: { 'x-forwarded-for': '198.51.100.1', apikey: 'alice-secret-key' } })).status, 200);
    assert.equal(up.seen.length, 1);
  });
});

describe('ip-restriction doc', () => {
  it('the examples in docs/plugins/ip-restriction.md are valid and answer as the page shows', async () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/ip-restriction.md', import.meta.url), 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1]!) as Record<string, unknown>);
    const settings = blocks.find((b) => 'proxy' in b) as { proxy: { trustedProxies: string[] } } | undefined;
    const routes = blocks.find((b) => 'routes' in b);
    assert.ok(settings && routes, 'the doc has the settings and the routes');
    assert.deepEqual(settings.proxy.trustedProxies, ['10.0.0.2']);
    const up = await upstream();
    // The test client is 127.0.0.1, so it stands in for the doc's proxy.
    const gw = await gateway({ ...routes, upstreams: [{ id: 'admin', nodes: [node(up.port)] }, { id: 'web', nodes: [node(up.port)] }] });
    assert.equal((await send(gw.http, '/admin/status', from('192.0.2.15'))).status, 200);
    assert.equal(code(await send(gw.http, '/admin/status', from('203.0.113.9'))), 'GH_ERR_ACCESS_DENIED');
    assert.equal((await send(gw.http, '/admin/status', from('2001:db8:10::1'))).status, 200);
    assert.equal(code(await send(gw.http, '/page', from('203.0.113.9'))), 'GH_ERR_ACCESS_DENIED');
    assert.equal((await send(gw.http, '/page', from('192.0.2.15'))).status, 200);
  });
});
