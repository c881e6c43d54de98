/**
 * @module discovery/dns.test
 * The dns backend against a real dnsmasq on a loopback port: A/AAAA answers with the spec's port and the
 * family setting, TTLs that make a changed record show within seconds, SRV priorities and weights, NXDOMAIN
 * as an empty answer, and an outage reported as errors until the server is back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadSettings, SettingsError } from '../config/settings.js';
import { createLogger } from '../core/logger.js';
import { DiscoveryBackends, resolveDiscoverySettings } from './index.js';
import type { DiscoverySpec, DiscoveryWatch } from './types.js';
import { dnsSkip, TestDns } from '../../test/helpers/dns.js';
import { waitUntil } from '../../test/helpers/cli.js';
import { addrs, Recorder } from '../../test/helpers/discovery.js';

const skip = dnsSkip();
const log = createLogger({ level: 'silent' });

function backendsFor(dns: TestDns, extra: Record<string, unknown> = {}): DiscoveryBackends {
  const { settings } = loadSettings({ env: {}, overrides: { 'discovery.dns.resolvers': [dns.address], 'discovery.dns.timeout': 300, 'discovery.dns.retryInterval': 200, ...extra } });
  return new DiscoveryBackends(resolveDiscoverySettings(settings), log);
}

describe('dns discovery backend', { skip }, () => {
  let dns: TestDns;
  let backends: DiscoveryBackends;
  const watches: DiscoveryWatch[] = [];
  const D = TestDns.DOMAIN;

  before(async () => {
    dns = await TestDns.start({
      hosts: { [`web.${D}`]: ['127.0.0.11', '127.0.0.12', '::1'], [`v6.${D}`]: ['::1'], [`a.${D}`]: ['127.0.0.21'], [`b.${D}`]: ['127.0.0.22'] },
      srv: [
        { name: `_http._tcp.svc.${D}`, target: `a.${D}`, port: 8081, priority: 0, weight: 30 },
        { name: `_http._tcp.svc.${D}`, target: `b.${D}`, port: 8082, priority: 0, weight: 10 },
        { name: `_http._tcp.svc.${D}`, target: `b.${D}`, port: 8083, priority: 5, weight: 10 },
      ],
    });
    backends = backendsFor(dns);
  });
  after(async () => {
    for (const w of watches) w.close();
    await backends?.close();
    await dns?.close();
  });

  const start = (spec: Omit<DiscoverySpec, 'type'>, b = backends): Recorder => {
    const r = new Recorder();
    r.watch = b.get('dns').watch({ type: 'dns', ...spec }, r.handlers);
    watches.push(r.watch);
    return r;
  };

  it('gives the A records of a name with the spec port, and sees a changed record within seconds (TTL 1 s)', async () => {
    const r = start({ service: `web.${D}`, port: 8080 });
    const first = await r.until('first answer', () => true);
    // ipv4-first: the name has A records, so its AAAA record is not used.
    assert.deepEqual(addrs(first), ['127.0.0.11:8080', '127.0.0.12:8080']);
    assert.equal(first[0]!.weight, 1);
    assert.deepEqual(first[0]!.metadata, { hostname: `web.${D}` });
    await dns.setHosts({ [`web.${D}`]: ['127.0.0.12', '127.0.0.13', '::1'], [`v6.${D}`]: ['::1'], [`a.${D}`]: ['127.0.0.21'], [`b.${D}`]: ['127.0.0.22'] });
    const changedAt = Date.now();
    const next = await r.until('the changed records', (n) => addrs(n).includes('127.0.0.13:8080'), 5000);
    assert.deepEqual(addrs(next), ['127.0.0.12:8080', '127.0.0.13:8080']);
    assert.ok(Date.now() - changedAt < 4000, 'a 1 s TTL must bring the change within a few seconds');
    assert.equal(r.errors.length, 0);
  });

  it('uses AAAA records as the family setting says', async () => {
    const v6 = start({ service: `v6.${D}`, port: 9000 });
    assert.deepEqual(addrs(await v6.until('answer', () => true)), ['::1:9000'], 'ipv4-first falls back to AAAA for a name without A records');
    const both = backendsFor(dns, { 'discovery.dns.family': 'both' });
    try {
      const r = start({ service: `web.${D}`, port: 80 }, both);
      const nodes = await r.until('answer', (n) => n.length > 0);
      assert.ok(addrs(nodes).includes('::1:80'), JSON.stringify(nodes));
      assert.ok(addrs(nodes).includes('127.0.0.12:80'));
      r.watch.close();
    } finally {
      await both.close();
    }
  });

  it('follows an SRV name: the lowest priority, each target with its port and weight', async () => {
    const r = start({ service: `_http._tcp.svc.${D}` });
    const nodes = await r.until('answer', () => true);
    assert.deepEqual(
      nodes.map((n) => [n.host, n.port, n.weight]),
      [
        ['127.0.0.21', 8081, 30],
        ['127.0.0.22', 8082, 10],
      ],
    );
    assert.deepEqual(nodes[0]!.metadata, { hostname: `a.${D}`, srv: `_http._tcp.svc.${D}`, priority: 0, srvWeight: 30 });
    // SRV records change only with a restart of dnsmasq (on the same port): the watch rides it out.
    await dns.setSrv([{ name: `_http._tcp.svc.${D}`, target: `b.${D}`, port: 8083, priority: 1, weight: 0 }]);
    const next = await r.until('the new SRV set', (n) => n.length === 1 && n[0]!.port === 8083, 8000);
    assert.equal(next[0]!.weight, 1, 'weight 0 on every record of the group: equal shares');
  });

  it('reports a name that does not exist as an empty answer, not as an error', async () => {
    const r = start({ service: `nothing-here.${D}`, port: 80 });
    assert.deepEqual(await r.until('answer', () => true), []);
    assert.equal(r.errors.length, 0);
  });

  it('reports an unreachable server as errors, retried with backoff, and answers again once it is back', async () => {
    const r = start({ service: `a.${D}`, port: 7000 });
    assert.deepEqual(addrs(await r.until('answer', () => true)), ['127.0.0.21:7000']);
    await dns.stop();
    try {
      await waitUntil('a failed lookup', 5000, () => (r.errors.length > 0 ? true : undefined));
      assert.match(r.errors[0]!.message, new RegExp(`DNS lookup of a\\.${D.replace('.', '\\.')} failed: E[A-Z]+`));
      const reports = r.nodes.length;
      await waitUntil('retries', 5000, () => (r.errors.length >= 3 ? true : undefined));
      assert.equal(r.nodes.length, reports, 'an outage reports no node list');
    } finally {
      await dns.setHosts({ [`a.${D}`]: ['127.0.0.23'] });
      await dns.start();
    }
    assert.deepEqual(addrs(await r.until('the answer after the outage', (n) => n[0]?.host === '127.0.0.23', 8000)), ['127.0.0.23:7000']);
  });

  it('refuses resolvers that are not addresses, naming the setting', () => {
    assert.throws(
      () => loadSettings({ env: {}, overrides: { 'discovery.dns.resolvers': ['dns.example.com', '127.0.0.1:99999', '[::1]:53', '10.0.0.1'] } }),
      (e: unknown) => {
        assert.ok(e instanceof SettingsError);
        assert.deepEqual(
          e.problems.map((p) => p.path),
          ['discovery.dns.resolvers[0]', 'discovery.dns.resolvers[1]'],
        );
        return true;
      },
    );
  });
});
