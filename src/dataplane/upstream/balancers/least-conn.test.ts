/**
 * @module dataplane/upstream/balancers/least-conn.test
 * Least connections: idle nodes first, weights, fair tie-breaks, skipped nodes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeState, PickContext } from '../types.js';
import { createNodeState } from './index.js';
import { LeastConnBalancer } from './least-conn.js';

const ctx: PickContext = { clientIp: '10.0.0.1', path: '/', query: '', headers: {} };

function nodes(...weights: number[]): NodeState[] {
  return weights.map((w, i) => createNodeState(String.fromCharCode(97 + i), 80, w));
}

test('prefers the idle node', () => {
  const list = nodes(1, 1, 1);
  const lc = new LeastConnBalancer(list);
  list[0]!.active = 3;
  list[1]!.active = 0;
  list[2]!.active = 2;
  for (let i = 0; i < 5; i++) assert.equal(lc.pick(ctx, null), list[1]);
});

test('compares in-flight requests relative to weight', () => {
  const list = nodes(4, 1);
  const lc = new LeastConnBalancer(list);
  list[0]!.active = 3; // 0.75 per unit of weight
  list[1]!.active = 1; // 1 per unit of weight
  assert.equal(lc.pick(ctx, null), list[0]);
  list[0]!.active = 5;
  assert.equal(lc.pick(ctx, null), list[1]);
});

test('ties rotate instead of always taking the first node', () => {
  const lc = new LeastConnBalancer(nodes(1, 1, 1));
  const order: string[] = [];
  for (let i = 0; i < 6; i++) order.push(lc.pick(ctx, null)!.host);
  assert.deepEqual(order, ['a', 'b', 'c', 'a', 'b', 'c']);
});

test('ties are broken by weight, so sequential traffic follows the weights', () => {
  const lc = new LeastConnBalancer(nodes(3, 1));
  const counts = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const node = lc.pick(ctx, null)!;
    lc.onStart(node);
    lc.onFinish(node, 5);
    counts.set(node.host, (counts.get(node.host) ?? 0) + 1);
  }
  assert.equal(counts.get('a'), 300);
  assert.equal(counts.get('b'), 100);
});

test('concurrent requests spread by weight', () => {
  const list = nodes(2, 1, 1);
  const lc = new LeastConnBalancer(list);
  for (let i = 0; i < 40; i++) lc.onStart(lc.pick(ctx, null)!);
  assert.deepEqual(list.map((n) => n.active), [20, 10, 10]);
});

test('skips unhealthy and tried nodes; null when none is left', () => {
  const list = nodes(1, 1, 1);
  const lc = new LeastConnBalancer(list);
  list[0]!.healthy = false;
  const tried = new Set<NodeState>([list[1]!]);
  for (let i = 0; i < 5; i++) assert.equal(lc.pick(ctx, tried), list[2]);
  tried.add(list[2]!);
  assert.equal(lc.pick(ctx, tried), null);
  for (const node of list) node.healthy = false;
  assert.equal(lc.pick(ctx, null), null);
});

test('weight 0 is never picked', () => {
  const list = nodes(0, 1);
  const lc = new LeastConnBalancer(list);
  list[1]!.active = 100;
  assert.equal(lc.pick(ctx, null), list[1]);
});

test('onFinish lowers the count the pick looks at', () => {
  const list = nodes(1, 1);
  const lc = new LeastConnBalancer(list);
  lc.onStart(list[0]!);
  lc.onStart(list[0]!);
  lc.onStart(list[1]!);
  assert.equal(lc.pick(ctx, null), list[1]);
  lc.onFinish(list[0]!, 3);
  lc.onFinish(list[0]!, 3);
  assert.equal(lc.pick(ctx, null), list[0]);
});
