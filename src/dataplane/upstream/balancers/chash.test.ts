/**
 * @module dataplane/upstream/balancers/chash.test
 * Consistent hashing: stable keys, minimal movement when nodes change, key sources, skipped nodes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HashOn } from '../../../model/upstream.js';
import type { NodeState, PickContext } from '../types.js';
import { ConsistentHashBalancer, hashPair } from './chash.js';
import { hashString } from './common.js';
import { createNodeState } from './index.js';

function ctx(overrides: Partial<PickContext> = {}): PickContext {
  return { clientIp: '192.0.2.1', path: '/', query: '', headers: {}, ...overrides };
}

function nodes(count: number, weight = 1): NodeState[] {
  return Array.from({ length: count }, (_, i) => createNodeState(`10.0.0.${i + 1}`, 8080, weight));
}

const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
const byUri: HashOn = { type: 'uri' };

function assign(balancer: ConsistentHashBalancer): string[] {
  return KEYS.map((key) => balancer.pick(ctx({ path: `/${key}` }), null)!.key);
}

test('the same key reaches the same node, also from a freshly built ring', () => {
  const list = nodes(5);
  const first = assign(new ConsistentHashBalancer(list, byUri));
  const again = assign(new ConsistentHashBalancer(nodes(5), byUri));
  assert.deepEqual(again, first);
});

test('keys spread over all nodes roughly evenly', () => {
  const counts = new Map<string, number>();
  for (const key of assign(new ConsistentHashBalancer(nodes(5), byUri))) counts.set(key, (counts.get(key) ?? 0) + 1);
  assert.equal(counts.size, 5);
  for (const count of counts.values()) assert.ok(count > 1400 && count < 2600, `share ${count} of 10000`);
});

test('removing one node moves only the keys it had', () => {
  const list = nodes(10);
  const before = assign(new ConsistentHashBalancer(list, byUri));
  const removed = list[3]!.key;
  const after = assign(new ConsistentHashBalancer(list.filter((n) => n.key !== removed), byUri));
  let moved = 0;
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    assert.equal(before[i], removed, `${KEYS[i]} moved off ${before[i]}, which was not removed`);
  }
  assert.ok(moved > 0);
  assert.ok(moved / KEYS.length < 1 / 10 + 0.05, `${moved} of ${KEYS.length} keys moved`);
});

test('adding a node moves keys only onto the new node', () => {
  const list = nodes(10);
  const before = assign(new ConsistentHashBalancer(list.slice(0, 9), byUri));
  const after = assign(new ConsistentHashBalancer(list, byUri));
  let moved = 0;
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    assert.equal(after[i], list[9]!.key);
  }
  assert.ok(moved / KEYS.length < 1 / 10 + 0.05, `${moved} keys moved`);
});

test('weights scale the share of keys', () => {
  const list = nodes(2);
  list[0]!.weight = 3;
  const counts = new Map<string, number>();
  for (const key of assign(new ConsistentHashBalancer(list, byUri))) counts.set(key, (counts.get(key) ?? 0) + 1);
  const heavy = counts.get(list[0]!.key)! / KEYS.length;
  assert.ok(heavy > 0.65 && heavy < 0.85, `heavy node got ${heavy}`);
});

test('the key comes from a header, cookie, query argument, client ip or path', () => {
  const list = nodes(20);
  const cases: Array<[HashOn, (value: string) => Partial<PickContext>]> = [
    [{ type: 'header', key: 'X-User' }, (v) => ({ headers: { 'x-user': v } })],
    [{ type: 'cookie', key: 'sid' }, (v) => ({ headers: { cookie: `theme=dark; sid=${v}; lang=en` } })],
    [{ type: 'query', key: 'u' }, (v) => ({ query: `a=1&u=${v}&z=2` })],
    [{ type: 'ip' }, (v) => ({ clientIp: v })],
    [{ type: 'uri' }, (v) => ({ path: v })],
  ];
  for (const [hashOn, make] of cases) {
    const balancer = new ConsistentHashBalancer(list, hashOn);
    const chosen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const value = `v${i}`;
      const node = balancer.pick(ctx(make(value)), null)!;
      // Another request with the same key but a different client address, path and other fields.
      const other = balancer.pick(ctx({ clientIp: '198.51.100.7', path: '/other', ...make(value) }), null)!;
      assert.equal(other, node, `${hashOn.type}: same key, same node`);
      chosen.add(node.key);
    }
    assert.ok(chosen.size > 5, `${hashOn.type}: 50 keys should not all land on ${chosen.size} node(s)`);
  }
});

test('a missing key falls back to the client ip', () => {
  const list = nodes(20);
  const byHeader = new ConsistentHashBalancer(list, { type: 'header', key: 'x-user' });
  const byIp = new ConsistentHashBalancer(list, { type: 'ip' });
  for (let i = 0; i < 50; i++) {
    const request = ctx({ clientIp: `203.0.113.${i}` });
    assert.equal(byHeader.pick(request, null), byIp.pick(request, null));
  }
});

test('an unhealthy or tried node sends its keys clockwise to the next node; other keys stay', () => {
  const list = nodes(10);
  const balancer = new ConsistentHashBalancer(list, byUri);
  const before = assign(balancer);
  const victim = list.find((n) => n.key === before[0])!;
  victim.healthy = false;
  const after = assign(balancer);
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === victim.key) assert.notEqual(after[i], victim.key);
    else assert.equal(after[i], before[i]);
  }
  victim.healthy = true;
  const tried = new Set<NodeState>([victim]);
  const retried = balancer.pick(ctx({ path: `/${KEYS[0]}` }), tried)!;
  assert.notEqual(retried, victim);
  assert.equal(retried.key, after[0], 'a retry goes where the key would go with the node out');
});

test('null when every node is unhealthy or tried', () => {
  const list = nodes(3);
  const balancer = new ConsistentHashBalancer(list, byUri);
  list[0]!.healthy = false;
  list[1]!.healthy = false;
  assert.equal(balancer.pick(ctx(), new Set([list[2]!])), null);
  list[2]!.healthy = false;
  assert.equal(balancer.pick(ctx(), null), null);
  assert.equal(new ConsistentHashBalancer([], byUri).pick(ctx(), null), null);
});

test('hashPair finds exact names only and trims cookie spaces and quotes', () => {
  const h = (s: string): number => hashString(s);
  assert.equal(hashPair('xsid=1; sid=abc', 'sid', ';', true), h('abc'));
  assert.equal(hashPair('sid="abc" ; other=1', 'sid', ';', true), h('abc'));
  assert.equal(hashPair('a=1;sid=abc', 'sid', ';', true), h('abc'));
  assert.equal(hashPair('sidx=1; other=2', 'sid', ';', true), -1);
  assert.equal(hashPair('sid=', 'sid', ';', true), -1);
  assert.equal(hashPair('u=7&uu=8', 'uu', '&', false), h('8'));
  assert.equal(hashPair('flag&u=7', 'u', '&', false), h('7'));
  assert.equal(hashPair('flag&u', 'u', '&', false), -1);
});
