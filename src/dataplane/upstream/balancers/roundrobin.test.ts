/**
 * @module dataplane/upstream/balancers/roundrobin.test
 * Smooth weighted round robin: nginx's order, weight ratios, and the nodes it must step over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeState, PickContext } from '../types.js';
import { createBalancer, createNodeState } from './index.js';
import { RoundRobinBalancer } from './roundrobin.js';

const ctx: PickContext = { clientIp: '10.0.0.1', path: '/', query: '', headers: {} };

function nodes(...weights: number[]): NodeState[] {
  return weights.map((w, i) => createNodeState(String.fromCharCode(97 + i), 80, w));
}

function picks(balancer: RoundRobinBalancer, count: number, tried: ReadonlySet<NodeState> | null = null): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(balancer.pick(ctx, tried)?.host ?? 'null');
  return out;
}

function tally(balancer: RoundRobinBalancer, count: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const host of picks(balancer, count)) counts.set(host, (counts.get(host) ?? 0) + 1);
  return counts;
}

test('weights 5:1:1 give the nginx sequence, cycle after cycle', () => {
  const rr = new RoundRobinBalancer(nodes(5, 1, 1));
  const expected = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
  assert.deepEqual(picks(rr, 7), expected);
  assert.deepEqual(picks(rr, 7), expected);
});

test('equal weights go round in list order', () => {
  assert.deepEqual(picks(new RoundRobinBalancer(nodes(3, 3, 3)), 6), ['a', 'b', 'c', 'a', 'b', 'c']);
});

test('weights are respected exactly over whole cycles', () => {
  const counts = tally(new RoundRobinBalancer(nodes(30, 20, 10)), 6000);
  assert.deepEqual([counts.get('a'), counts.get('b'), counts.get('c')], [3000, 2000, 1000]);
});

test('weights too large to precompute use the live nginx loop with the same ratios', () => {
  // gcd 1 and a cycle of 80002 slots: more than the precomputed limit.
  const rr = new RoundRobinBalancer(nodes(50000, 30001, 1));
  const counts = tally(rr, 80002);
  assert.deepEqual([counts.get('a'), counts.get('b'), counts.get('c')], [50000, 30001, 1]);
});

test('the live loop skips unhealthy nodes and returns null when none is left', () => {
  const list = nodes(50000, 30001, 1);
  const rr = new RoundRobinBalancer(list);
  list[0]!.healthy = false;
  const seen = new Set(picks(rr, 1000));
  assert.ok(!seen.has('a'));
  assert.ok(seen.has('b'));
  for (const node of list) node.healthy = false;
  assert.equal(rr.pick(ctx, null), null);
});

test('unhealthy nodes are skipped and the others keep their ratio', () => {
  const list = nodes(5, 1, 1);
  const rr = new RoundRobinBalancer(list);
  list[1]!.healthy = false;
  const counts = tally(rr, 600);
  assert.equal(counts.get('b'), undefined);
  assert.equal(counts.get('a'), 500);
  assert.equal(counts.get('c'), 100);
  list[1]!.healthy = true;
  assert.ok(picks(rr, 7).includes('b'));
});

test('weight 0 is never picked, even when set after the balancer was built', () => {
  const list = nodes(1, 0, 1);
  const rr = new RoundRobinBalancer(list);
  assert.ok(!picks(rr, 100).includes('b'));
  list[2]!.weight = 0;
  assert.deepEqual(new Set(picks(rr, 10)), new Set(['a']));
});

test('tried nodes are skipped; when every healthy node was tried the answer is null', () => {
  const list = nodes(5, 1, 1);
  const rr = new RoundRobinBalancer(list);
  const tried = new Set<NodeState>([list[0]!]);
  assert.ok(!picks(rr, 50, tried).includes('a'));
  list[2]!.healthy = false;
  tried.add(list[1]!);
  assert.equal(rr.pick(ctx, tried), null);
});

test('every node unhealthy gives null', () => {
  const list = nodes(5, 1, 1);
  const rr = createBalancer('roundrobin', list);
  for (const node of list) node.healthy = false;
  assert.equal(rr.pick(ctx, null), null);
});

test('an empty or all-zero node list gives null', () => {
  assert.equal(new RoundRobinBalancer([]).pick(ctx, null), null);
  assert.equal(new RoundRobinBalancer(nodes(0, 0)).pick(ctx, null), null);
});

test('onStart and onFinish keep the in-flight count', () => {
  const [a] = nodes(1);
  const rr = new RoundRobinBalancer([a!]);
  rr.onStart(a!);
  rr.onStart(a!);
  rr.onFinish(a!, 12);
  assert.equal(a!.active, 1);
  rr.onFinish(a!, -1);
  rr.onFinish(a!, -1);
  assert.equal(a!.active, 0);
});
