/**
 * @module discovery/consul/parse.test
 * The answer parsers and loop rules of the Consul sources without a server: health entries to nodes
 * (address fallback, weights, metadata, tags, bad entries left out), upsync-style KV entries to nodes
 * (defaults, down and backup, numeric strings, malformed keys and values), and the blocking-loop rules
 * (index reset and floor, the token bucket, backoff and wait jitter bounds).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseHealthService } from './health.js';
import { parseHostPort, parseKvService, parseKvValue } from './kv.js';
import { jitteredWait, nextIndex, retryDelay, TokenBucket } from './blocking.js';
import { kvDir } from './index.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

function entry(service: Record<string, unknown>, node: Record<string, unknown> = { Node: 'n1', Address: '10.0.0.1', Datacenter: 'dc1' }) {
  return { Node: node, Service: service, Checks: [] };
}

describe('parseHealthService', () => {
  it('takes Service.Address, else Node.Address, the port, Weights.Passing and the metadata', () => {
    const r = parseHealthService([
      entry({ ID: 'web-1', Service: 'web', Address: '10.1.0.5', Port: 8080, Tags: ['v2', 'blue'], Meta: { zone: 'eu-1', version: '2.1' }, Weights: { Passing: 7, Warning: 1 } }),
      entry({ ID: 'web-2', Service: 'web', Address: '', Port: 8081, Tags: null, Meta: null }, { Node: 'n2', Address: '10.0.0.2', Datacenter: 'dc1' }),
    ]);
    assert.deepEqual(r.problems, []);
    assert.equal(r.entries, 2);
    assert.deepEqual(r.nodes, [
      { host: '10.1.0.5', port: 8080, weight: 7, metadata: { zone: 'eu-1', version: '2.1', tags: ['v2', 'blue'], node: 'n1', datacenter: 'dc1', serviceId: 'web-1' } },
      { host: '10.0.0.2', port: 8081, weight: 1, metadata: { tags: [], node: 'n2', datacenter: 'dc1', serviceId: 'web-2' } },
    ]);
  });

  it('leaves out instances without a usable port or address, and says why; keeps the others', () => {
    const r = parseHealthService([
      entry({ ID: 'a', Service: 'web', Port: 0 }),
      entry({ ID: 'b', Service: 'web', Port: 80, Address: '' }, { Node: 'n9', Address: '' }),
      'garbage',
      entry({ ID: 'c', Service: 'web', Port: 80 }),
    ]);
    assert.equal(r.nodes.length, 1);
    assert.equal(r.nodes[0]!.metadata!.serviceId, 'c');
    assert.equal(r.problems.length, 3);
    assert.match(r.problems[0]!, /"a".*no usable port/);
    assert.match(r.problems[1]!, /"b" on node "n9".*no usable address/);
    assert.match(r.problems[2]!, /entry 2 has no Service/);
  });

  it('keeps only instances with every tag asked for, and fills the datacenter asked about when nodes do not say', () => {
    const r = parseHealthService(
      [entry({ ID: 'a', Port: 1, Tags: ['x'] }, { Node: 'n', Address: 'h' }), entry({ ID: 'b', Port: 2, Tags: ['x', 'y'] }, { Node: 'n', Address: 'h' })],
      { tags: ['y', 'x'], datacenter: 'dc7' },
    );
    assert.deepEqual(r.nodes.map((n) => [n.port, n.metadata!.datacenter]), [[2, 'dc7']]);
    assert.deepEqual(r.problems, []);
  });

  it('treats weights below 1 or not integers as the default and caps large ones', () => {
    const r = parseHealthService([
      entry({ ID: 'a', Port: 1, Weights: { Passing: 0 } }),
      entry({ ID: 'b', Port: 2, Weights: { Passing: 2.5 } }),
      entry({ ID: 'c', Port: 3, Weights: { Passing: 10_000_000 } }),
    ]);
    assert.deepEqual(r.nodes.map((n) => n.weight), [1, 1, 100_000]);
  });

  it('refuses an answer that is not a list', () => {
    assert.throws(() => parseHealthService({ error: 'x' }), /not a JSON list/);
  });
});

describe('consul-kv entries', () => {
  it('parses host:port keys, IPv6 in brackets, and refuses what is not one', () => {
    assert.deepEqual(parseHostPort('10.0.0.1:8080'), { host: '10.0.0.1', port: 8080 });
    assert.deepEqual(parseHostPort('api.internal:80'), { host: 'api.internal', port: 80 });
    assert.deepEqual(parseHostPort('[2001:db8::1]:443'), { host: '2001:db8::1', port: 443 });
    assert.match(parseHostPort('10.0.0.1') as string, /not "host:port"/);
    assert.match(parseHostPort('10.0.0.1:0') as string, /not from 1 to 65535/);
    assert.match(parseHostPort('10.0.0.1:70000') as string, /not from 1 to 65535/);
    assert.match(parseHostPort('10.0.0.1:http') as string, /not a number/);
    assert.match(parseHostPort('2001:db8::1:443') as string, /without brackets/);
    assert.match(parseHostPort('[not-v6]:443') as string, /not an IPv6 address/);
    assert.match(parseHostPort('bad host:80') as string, /not a host name/);
  });

  it('gives upsync defaults to an empty or absent value', () => {
    for (const v of [null, '', b64(''), b64('   ')]) {
      assert.deepEqual(parseKvValue('10.0.0.1', 80, 'upstreams/web/10.0.0.1:80', v), {
        host: '10.0.0.1',
        port: 80,
        weight: 1,
        metadata: { key: 'upstreams/web/10.0.0.1:80', max_fails: 2, fail_timeout: 10, down: false, backup: false },
      });
    }
  });

  it('reads weight, max_fails, fail_timeout as numbers or numeric strings; extra fields join the metadata', () => {
    const n = parseKvValue('h', 1, 'k', b64('{"weight":"5","max_fails":3,"fail_timeout":"30","zone":"eu-1"}'));
    assert.deepEqual(n, { host: 'h', port: 1, weight: 5, metadata: { zone: 'eu-1', key: 'k', max_fails: 3, fail_timeout: 30, down: false, backup: false } });
  });

  it('keeps down and backup nodes listed but out of rotation (weight 0)', () => {
    const down = parseKvValue('h', 1, 'k', b64('{"weight":4,"down":1}'));
    assert.equal(typeof down === 'object' && down.weight, 0);
    assert.equal(typeof down === 'object' && down.metadata!.down, true);
    const backup = parseKvValue('h', 1, 'k', b64('{"backup":"1"}'));
    assert.equal(typeof backup === 'object' && backup.weight, 0);
    assert.equal(typeof backup === 'object' && backup.metadata!.backup, true);
    const up = parseKvValue('h', 1, 'k', b64('{"weight":4,"down":0}'));
    assert.equal(typeof up === 'object' && up.weight, 4);
  });

  it('says what is wrong with a malformed value', () => {
    assert.match(parseKvValue('h', 1, 'k', '%%%') as string, /not base64/);
    assert.match(parseKvValue('h', 1, 'k', b64('{weight: 1')) as string, /not JSON/);
    assert.match(parseKvValue('h', 1, 'k', b64('[1]')) as string, /not a JSON object/);
    assert.match(parseKvValue('h', 1, 'k', b64('{"weight":"heavy"}')) as string, /"weight"/);
    assert.match(parseKvValue('h', 1, 'k', b64('{"weight":-1}')) as string, /"weight"/);
    assert.match(parseKvValue('h', 1, 'k', b64('{"weight":100001}')) as string, /"weight"/);
    assert.match(parseKvValue('h', 1, 'k', b64('{"down":2}')) as string, /"down"/);
    assert.match(parseKvValue('h', 1, 'k', b64('{"max_fails":"x"}')) as string, /"max_fails"/);
    assert.match(parseKvValue('h', 1, 'k', b64('{"fail_timeout":1.5}')) as string, /"fail_timeout"/);
  });

  it('skips malformed entries of a folder and keeps the rest; the folder key and deeper keys are not nodes', () => {
    const dir = 'upstreams/web/';
    const r = parseKvService(
      [
        { Key: 'upstreams/web/', Value: null },
        { Key: 'upstreams/web/10.0.0.1:80', Value: b64('{"weight":2}') },
        { Key: 'upstreams/web/nonsense', Value: null },
        { Key: 'upstreams/web/10.0.0.2:80', Value: b64('not json') },
        { Key: 'upstreams/web/old/10.0.0.3:80', Value: null },
        { Key: 'upstreams/web/10.0.0.4:81', Value: null },
        { Value: null },
      ],
      dir,
    );
    assert.deepEqual(r.nodes.map((n) => `${n.host}:${n.port}/${n.weight}`), ['10.0.0.1:80/2', '10.0.0.4:81/1']);
    assert.equal(r.problems.length, 4);
    assert.equal(r.entries, 7);
  });

  it('builds the folder from prefix and service without doubled slashes', () => {
    assert.equal(kvDir('upstreams', 'web'), 'upstreams/web/');
    assert.equal(kvDir('/a/b/', 'web'), 'a/b/web/');
    assert.equal(kvDir('', 'team/web'), 'team/web/');
  });
});

describe('blocking loop rules', () => {
  it('resets to 0 when the index goes backwards and never sends an index below 1', () => {
    assert.deepEqual(nextIndex(0, 12), { index: 12, backwards: false });
    assert.deepEqual(nextIndex(12, 12), { index: 12, backwards: false });
    assert.deepEqual(nextIndex(12, 15), { index: 15, backwards: false });
    assert.deepEqual(nextIndex(15, 9), { index: 0, backwards: true });
    assert.deepEqual(nextIndex(0, 0), { index: 1, backwards: false });
    assert.deepEqual(nextIndex(1, 0), { index: 1, backwards: false });
    assert.deepEqual(nextIndex(5, 0), { index: 0, backwards: true });
  });

  it('lets a burst of 2 through, then one read per interval', () => {
    let now = 1_000_000;
    const bucket = new TokenBucket(2, 1000, () => now);
    assert.equal(bucket.take(), 0);
    assert.equal(bucket.take(), 0);
    assert.equal(bucket.take(), 1000);
    now += 400;
    assert.equal(bucket.take(), 600);
    now += 600;
    assert.equal(bucket.take(), 0);
    assert.equal(bucket.take(), 1000);
    now += 60_000; // a long blocking read refills to the burst, never beyond
    assert.equal(bucket.take(), 0);
    assert.equal(bucket.take(), 0);
    assert.ok(bucket.take() > 0);
  });

  it('backs off from min to max, with the jitter in the upper half', () => {
    assert.equal(retryDelay(1, 500, 10_000, () => 0), 250);
    assert.equal(retryDelay(1, 500, 10_000, () => 0.999999), 500);
    assert.equal(retryDelay(3, 500, 10_000, () => 0), 1000);
    assert.equal(retryDelay(50, 500, 10_000, () => 0.999999), 10_000);
    assert.equal(retryDelay(50, 500, 10_000, () => 0), 5000);
  });

  it('asks for the configured wait less at most a sixteenth', () => {
    assert.equal(jitteredWait(32_000, () => 0), 32_000);
    assert.equal(jitteredWait(32_000, () => 0.999999), 30_000);
    for (let i = 0; i < 100; i++) {
      const w = jitteredWait(30_000);
      assert.ok(w <= 30_000 && w >= 30_000 - 30_000 / 16, String(w));
    }
  });
});
