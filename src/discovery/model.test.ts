/**
 * @module discovery/model.test
 * The discovery field of upstreams (schema and per-type rules, each problem named by its field path), spec
 * keys and node merging, and the discovery section of the settings with its environment overrides.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { validateDeclarative, type ConfigProblem } from '../model/validate.js';
import { consulCluster, loadSettings, SettingsError } from '../config/settings.js';
import { discoveryKeyOf, discoverySpecOf, discoverySpecs, mergeNodes, specKey } from './spec.js';

function problems(cfg: unknown): ConfigProblem[] {
  const r = validateDeclarative(cfg);
  return r.ok ? [] : r.problems;
}

const route = { id: 'r', paths: ['/x'], upstreamId: 'u' };

it('accepts an upstream with discovery and no static nodes, and fills in an empty node list', () => {
  const r = validateDeclarative({ upstreams: [{ id: 'u', discovery: { type: 'dns', service: 'api.example.com' } }], routes: [route] });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  assert.deepEqual(r.value.upstreams[0]!.nodes, []);
  const inline = validateDeclarative({ routes: [{ id: 'r', paths: ['/x'], upstream: { discovery: { type: 'etcd', service: 'users', tags: ['v2'] } } }] });
  assert.ok(inline.ok);
  // Static nodes and discovery together: the static ones may even all be weight 0 (kept as standby).
  assert.ok(validateDeclarative({ upstreams: [{ id: 'u', nodes: [{ host: 'h', port: 1, weight: 0 }], discovery: { type: 'consul', service: 's', cluster: 'dc1', tags: ['a'] } }] }).ok);
});

it('requires static nodes or a discovery source, naming the field', () => {
  assert.deepEqual(problems({ upstreams: [{ id: 'u' }], routes: [route] }), [{ path: 'upstreams[0].nodes', message: 'is required: give at least one node, or a discovery source' }]);
  assert.deepEqual(problems({ routes: [{ id: 'r', paths: ['/x'], upstream: { nodes: [] } }] }), [{ path: 'routes[0].upstream.nodes', message: 'is required: give at least one node, or a discovery source' }]);
  assert.deepEqual(problems({ upstreams: [{ id: 'u', nodes: [{ host: 'h', port: 1, weight: 0 }] }] }), [{ path: 'upstreams[0].nodes', message: 'needs at least one node with a weight above 0' }]);
});

it('checks the discovery field by type, with field paths', () => {
  const at = (discovery: unknown) => problems({ upstreams: [{ id: 'u', discovery }] });
  assert.deepEqual(at({ type: 'zookeeper', service: 'x' }).map((p) => p.path), ['upstreams[0].discovery.type']);
  assert.deepEqual(at({ type: 'dns' }), [{ path: 'upstreams[0].discovery.service', message: 'is required' }]);
  assert.deepEqual(at({ type: 'dns', service: 'x', bogus: 1 }), [{ path: 'upstreams[0].discovery.bogus', message: 'is not a known field' }]);
  assert.deepEqual(at({ type: 'dns', service: 'not a name' }), [
    { path: 'upstreams[0].discovery.service', message: 'must be a DNS name (letters, digits, "-" and "_" in dot-separated labels)' },
  ]);
  assert.deepEqual(at({ type: 'dns', service: '_http._tcp.api.example.com.' }), []);
  assert.deepEqual(at({ type: 'dns', service: 'a.example.com', tags: ['x'], cluster: 'dc1' }), [
    { path: 'upstreams[0].discovery.cluster', message: 'is only used with type consul or consul-kv' },
    { path: 'upstreams[0].discovery.tags', message: 'is only used with type consul or etcd' },
  ]);
  assert.deepEqual(at({ type: 'etcd', service: 'a/b', port: 80 }), [
    { path: 'upstreams[0].discovery.service', message: 'must be one key segment: no "/", no whitespace, not "." or ".."' },
    { path: 'upstreams[0].discovery.port', message: 'is only used with type dns' },
  ]);
  assert.deepEqual(at({ type: 'etcd', service: 'users', emptyGracePeriod: -1 }).map((p) => p.path), ['upstreams[0].discovery.emptyGracePeriod']);
  assert.deepEqual(at({ type: 'consul', service: 'users', cluster: 'bad name' }).map((p) => p.path), ['upstreams[0].discovery.cluster']);
});

it('gives upstreams that mean the same source the same key, whatever they leave to defaults', () => {
  const dns = (extra: object) => ({ discovery: { type: 'dns' as const, service: 'api.example.com', ...extra } });
  assert.equal(discoveryKeyOf(dns({})), 'dns//api.example.com?port=80');
  assert.equal(discoveryKeyOf(dns({ port: 80 })), discoveryKeyOf(dns({})));
  assert.equal(discoveryKeyOf({ ...dns({}), scheme: 'https' }), 'dns//api.example.com?port=443');
  assert.equal(discoveryKeyOf({ discovery: { type: 'dns', service: '_http._tcp.api.example.com' } }), 'dns//_http._tcp.api.example.com', 'SRV names carry their own ports');
  assert.equal(
    discoveryKeyOf({ discovery: { type: 'consul', service: 'user api', cluster: 'dc1', tags: ['b', 'a', 'b'] } }),
    'consul/dc1/user%20api?tags=a,b',
  );
  assert.deepEqual(discoverySpecOf({ discovery: { type: 'consul', service: 's', tags: ['b', 'a'] } }), { type: 'consul', service: 's', tags: ['a', 'b'] });
  assert.equal(specKey({ type: 'etcd', service: 'users', emptyGracePeriod: 0 }), 'etcd//users?emptyGracePeriod=0');
  assert.equal(discoveryKeyOf({ nodes: [{ host: 'h', port: 1 }] }), null);
  const specs = discoverySpecs({
    upstreams: [{ discovery: { type: 'etcd', service: 'a' } }, { nodes: [{ host: 'h', port: 1 }] }],
    services: [{ upstream: { discovery: { type: 'etcd', service: 'b' } } }, { upstreamId: 'x', upstream: { discovery: { type: 'etcd', service: 'ignored' } } }],
    routes: [{ upstream: { discovery: { type: 'etcd', service: 'a' } } }, { enabled: false, upstream: { discovery: { type: 'etcd', service: 'off' } } }],
  });
  assert.deepEqual([...specs.keys()], ['etcd//a', 'etcd//b']);
});

it('merges static and discovered nodes: static first, a discovered node at a static address is left out', () => {
  const merged = mergeNodes(
    [{ host: '10.0.0.1', port: 80, weight: 5 }],
    [
      { host: '10.0.0.1', port: 80, weight: 1 },
      { host: '10.0.0.2', port: 80, weight: 2, metadata: { zone: 'a' } },
      { host: '::1', port: 80, weight: 1 },
    ],
  );
  assert.deepEqual(merged, [
    { host: '10.0.0.1', port: 80, weight: 5 },
    { host: '10.0.0.2', port: 80, weight: 2, metadata: { zone: 'a' } },
    { host: '::1', port: 80, weight: 1 },
  ]);
  assert.deepEqual(mergeNodes([], undefined), []);
});

it('has discovery settings with defaults', () => {
  const { settings } = loadSettings({ env: {} });
  const d = settings.discovery;
  assert.equal(d.emptyGracePeriod, 30000);
  assert.equal(d.startWait, 3000);
  assert.deepEqual(d.consul, []);
  assert.equal(d.dns.resolvers, undefined, 'the system resolvers');
  assert.equal(d.dns.minTtl, 1);
  assert.equal(d.dns.maxTtl, 300);
  assert.equal(d.dns.family, 'ipv4-first');
  assert.equal(d.etcd.prefix, '/gatehouse/registry');
  assert.equal(d.etcd.endpoints, undefined);
});

it('takes secrets and sources from GATEHOUSE_DISCOVERY_* variables', () => {
  const { settings, unknownEnv } = loadSettings({
    env: {
      GATEHOUSE_DISCOVERY_ETCD_PASSWORD: 'etcd-secret',
      GATEHOUSE_DISCOVERY_ETCD_ENDPOINTS: 'http://10.0.0.1:2379,http://10.0.0.2:2379',
      GATEHOUSE_DISCOVERY_DNS_RESOLVERS: '127.0.0.1:5353',
      GATEHOUSE_DISCOVERY_EMPTY_GRACE_PERIOD: '5000',
      GATEHOUSE_DISCOVERY_CONSUL: '[{"name":"us-east","address":"http://127.0.0.1:8500"},{"name":"dc2","address":"https://consul.example.com:8501"}]',
      GATEHOUSE_DISCOVERY_CONSUL_US_EAST_TOKEN: 'token-1',
      GATEHOUSE_DISCOVERY_CONSUL_NOWHERE_TOKEN: 'lost',
    },
  });
  const d = settings.discovery;
  assert.equal(d.etcd.password, 'etcd-secret');
  assert.deepEqual(d.etcd.endpoints, ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
  assert.deepEqual(d.dns.resolvers, ['127.0.0.1:5353']);
  assert.equal(d.emptyGracePeriod, 5000);
  assert.equal(d.consul[0]!.token, 'token-1');
  assert.equal(d.consul[0]!.wait, 30000);
  assert.equal(d.consul[0]!.kvPrefix, 'upstreams');
  assert.equal(d.consul[1]!.token, undefined);
  assert.deepEqual(unknownEnv, ['GATEHOUSE_DISCOVERY_CONSUL_NOWHERE_TOKEN']);
  assert.equal(consulCluster(d).name, 'us-east', 'the first cluster when an upstream names none');
  assert.equal(consulCluster(d, 'dc2').address, 'https://consul.example.com:8501');
  assert.throws(() => consulCluster(d, 'dc9'), /no Consul cluster named "dc9" in discovery.consul \(known: us-east, dc2\)/);
  assert.throws(() => consulCluster(loadSettings({ env: {} }).settings.discovery), /no Consul cluster is configured/);
});

it('refuses discovery settings that cannot work, naming the field', () => {
  const refused = (overrides: Record<string, unknown>) => {
    try {
      loadSettings({ env: {}, overrides });
    } catch (e) {
      assert.ok(e instanceof SettingsError);
      return e.problems;
    }
    return [];
  };
  assert.deepEqual(
    refused({ 'discovery.consul': [{ name: 'dc-1', address: 'http://a:8500' }, { name: 'DC_1', address: 'http://b:8500' }] }),
    [{ path: 'discovery.consul[1].name', message: 'duplicates the cluster name "DC_1"' }],
  );
  assert.deepEqual(refused({ 'discovery.consul': [{ name: 'dc1', address: 'consul:8500' }] }).map((p) => p.path), ['discovery.consul[0].address']);
  assert.deepEqual(refused({ 'discovery.dns.minTtl': 60, 'discovery.dns.maxTtl': 30 }), [{ path: 'discovery.dns.minTtl', message: 'must not be above maxTtl (30)' }]);
  assert.deepEqual(refused({ 'discovery.dns.family': 'ipv5' }).map((p) => p.path), ['discovery.dns.family']);
});
