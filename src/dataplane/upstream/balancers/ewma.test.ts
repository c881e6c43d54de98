/**
 * @module dataplane/upstream/balancers/ewma.test
 * Peak EWMA: unmeasured nodes first, faster nodes preferred, failures penalised, decay over time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeState, PickContext } from '../types.js';
import { DECAY_MS, EwmaBalancer, FAILURE_PENALTY_MS, recordLatency } from './ewma.js';
import { createNodeState } from './index.js';

const ctx: PickContext = { clientIp: '10.0.0.1', path: '/', query: '', headers: {} };

function nodes(count: number): NodeState[] {
  return Array.from({ length: count }, (_, i) => createNodeState(String.fromCharCode(97 + i), 80, 1));
}

function tally(balancer: EwmaBalancer, count: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const host = balancer.pick(ctx, null)?.host ?? 'null';
    counts.set(host, (counts.get(host) ?? 0) + 1);
  }
  return counts;
}

test('an unmeasured node is tried before measured ones', () => {
  const [a, b] = nodes(2);
  const ewma = new EwmaBalancer([a!, b!]);
  ewma.onStart(a!);
  ewma.onFinish(a!, 20);
  assert.deepEqual([...tally(ewma, 50)], [['b', 50]]);
});

test('prefers the faster node after feedback', () => {
  const [a, b] = nodes(2);
  const ewma = new EwmaBalancer([a!, b!]);
  for (let i = 0; i < 5; i++) {
    ewma.onStart(a!);
    ewma.onFinish(a!, 200);
    ewma.onStart(b!);
    ewma.onFinish(b!, 10);
  }
  assert.deepEqual([...tally(ewma, 100)], [['b', 100]]);
});

test('with more nodes the slow one gets the least traffic', () => {
  const list = nodes(4);
  const ewma = new EwmaBalancer(list);
  for (const [i, latency] of [400, 10, 10, 10].entries()) {
    ewma.onStart(list[i]!);
    ewma.onFinish(list[i]!, latency);
  }
  const counts = tally(ewma, 3000);
  // Power of two choices: the slowest node wins no comparison, so it is never picked, while each of the
  // others wins at least when it is drawn together with the slow one.
  assert.equal(counts.get('a'), undefined);
  for (const host of ['b', 'c', 'd']) assert.ok((counts.get(host) ?? 0) > 100, `${host}: ${counts.get(host)}`);
});

test('a failure counts as a heavy penalty latency', () => {
  const [a, b] = nodes(2);
  const ewma = new EwmaBalancer([a!, b!]);
  ewma.onStart(a!);
  ewma.onFinish(a!, 5);
  ewma.onStart(b!);
  ewma.onFinish(b!, 100);
  assert.equal(ewma.pick(ctx, null), a);
  ewma.onStart(a!);
  ewma.onFinish(a!, -1);
  assert.ok(a!.ewma >= FAILURE_PENALTY_MS);
  assert.equal(ewma.pick(ctx, null), b);
});

test('requests in flight raise the score', () => {
  const [a, b] = nodes(2);
  const ewma = new EwmaBalancer([a!, b!]);
  ewma.onStart(a!);
  ewma.onFinish(a!, 10);
  ewma.onStart(b!);
  ewma.onFinish(b!, 40);
  for (let i = 0; i < 10; i++) ewma.onStart(a!);
  assert.equal(a!.active, 10);
  assert.equal(ewma.pick(ctx, null), b);
});

test('the average jumps up to a slower sample and decays down with time', () => {
  const [node] = nodes(1);
  recordLatency(node!, 100, 1000);
  assert.equal(node!.ewma, 100);
  recordLatency(node!, 300, 1001);
  assert.equal(node!.ewma, 300, 'peak: a slower answer counts at once');
  recordLatency(node!, 10, 1001 + DECAY_MS);
  const expected = 300 * Math.exp(-1) + 10 * (1 - Math.exp(-1));
  assert.ok(Math.abs(node!.ewma - expected) < 1e-9, `ewma ${node!.ewma}`);
  recordLatency(node!, 10, 1001 + DECAY_MS);
  assert.ok(Math.abs(node!.ewma - expected) < 1e-9, 'no time passed, no change');
});

test('skips unhealthy and tried nodes; null when none is left', () => {
  const list = nodes(3);
  const ewma = new EwmaBalancer(list);
  list[0]!.healthy = false;
  const tried = new Set<NodeState>([list[1]!]);
  for (let i = 0; i < 20; i++) assert.equal(ewma.pick(ctx, tried), list[2]);
  tried.add(list[2]!);
  assert.equal(ewma.pick(ctx, tried), null);
  for (const node of list) node.healthy = false;
  assert.equal(ewma.pick(ctx, null), null);
  assert.equal(new EwmaBalancer([]).pick(ctx, null), null);
});

test('weight 0 is never picked', () => {
  const list = nodes(2);
  list[0]!.weight = 0;
  const ewma = new EwmaBalancer(list);
  assert.deepEqual([...tally(ewma, 30)], [['b', 30]]);
});
