/**
 * @module dataplane/upstream/balancers/index.test
 * Node keys, the balancer factory and node reuse across reloads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsistentHashBalancer, EwmaBalancer, LeastConnBalancer, RoundRobinBalancer, createBalancer, createNodeState, reconcileNodes } from './index.js';
import type { BalancerType } from '../../../model/upstream.js';

test('node keys put IPv6 hosts in brackets', () => {
  assert.equal(createNodeState('10.0.0.1', 80, 1).key, '10.0.0.1:80');
  assert.equal(createNodeState('api.internal', 8443, 1).key, 'api.internal:8443');
  const v6 = createNodeState('::1', 8080, 1);
  assert.equal(v6.key, '[::1]:8080');
  assert.equal(v6.host, '::1');
  const bracketed = createNodeState('[2001:db8::1]', 443, 2, { zone: 'a' });
  assert.equal(bracketed.key, '[2001:db8::1]:443');
  assert.equal(bracketed.host, '2001:db8::1');
  assert.deepEqual(bracketed.metadata, { zone: 'a' });
  assert.equal(bracketed.healthy, true);
  assert.equal(bracketed.active, 0);
});

test('createBalancer builds each type and refuses unknown ones', () => {
  const nodes = [createNodeState('a', 1, 1)];
  const expected: Array<[BalancerType, Function]> = [
    ['roundrobin', RoundRobinBalancer],
    ['least_conn', LeastConnBalancer],
    ['chash', ConsistentHashBalancer],
    ['ewma', EwmaBalancer],
  ];
  for (const [type, cls] of expected) {
    const balancer = createBalancer(type, nodes);
    assert.ok(balancer instanceof cls, type);
    assert.equal(balancer.pick({ clientIp: '1.1.1.1', path: '/', query: '', headers: {} }, null), nodes[0]);
  }
  assert.throws(() => createBalancer('random' as BalancerType, nodes), /unknown balancer type/);
});

test('a balancer keeps its own copy of the node list', () => {
  const nodes = [createNodeState('a', 1, 1)];
  const balancer = createBalancer('roundrobin', nodes);
  nodes.push(createNodeState('b', 1, 1));
  for (let i = 0; i < 4; i++) assert.equal(balancer.pick({ clientIp: '', path: '/', query: '', headers: {} }, null)?.host, 'a');
});

test('reconcileNodes reuses node objects by key and takes the new weight', () => {
  const [a, b] = reconcileNodes([], [{ host: 'a', port: 80, weight: 1 }, { host: 'b', port: 80 }]);
  a!.healthy = false;
  a!.active = 4;
  const next = reconcileNodes([a!, b!], [{ host: 'a', port: 80, weight: 5, metadata: { v: 2 } }, { host: 'c', port: 80, weight: 1 }]);
  assert.equal(next.length, 2);
  assert.equal(next[0], a);
  assert.equal(a!.weight, 5);
  assert.equal(a!.healthy, false);
  assert.equal(a!.active, 4);
  assert.deepEqual(a!.metadata, { v: 2 });
  assert.equal(next[1]!.key, 'c:80');
  const merged = reconcileNodes(next, [{ host: 'a', port: 80, weight: 2 }, { host: 'a', port: 80, weight: 3 }]);
  assert.equal(merged.length, 1);
  assert.equal(merged[0]!.weight, 5);
  assert.equal(merged[0]!.metadata, undefined);
});
