/**
 * @module dataplane/upstream/balancers
 * Builds a balancer by name, and the node state objects balancers and health checks share.
 */
import type { BalancerType, HashOn } from '../../../model/upstream.js';
import type { Balancer, NodeState } from '../types.js';
import { ConsistentHashBalancer } from './chash.js';
import { EwmaBalancer } from './ewma.js';
import { LeastConnBalancer } from './least-conn.js';
import { RoundRobinBalancer } from './roundrobin.js';

export { ConsistentHashBalancer, EwmaBalancer, LeastConnBalancer, RoundRobinBalancer };

/**
 * A balancer over `nodes`. Build one when the config or the node list (or a weight) changes, never per
 * request: building precomputes the schedule or ring. The node objects are shared, not copied, so health
 * flips and in-flight counts made elsewhere are seen at once.
 */
export function createBalancer(type: BalancerType, nodes: NodeState[], hashOn?: HashOn): Balancer {
  switch (type) {
    case 'roundrobin':
      return new RoundRobinBalancer(nodes);
    case 'least_conn':
      return new LeastConnBalancer(nodes);
    case 'chash':
      return new ConsistentHashBalancer(nodes, hashOn);
    case 'ewma':
      return new EwmaBalancer(nodes);
    default:
      throw new TypeError(`unknown balancer type ${JSON.stringify(type)}`);
  }
}

/** "host:port", with an IPv6 host in brackets so the port stays unambiguous. */
export function nodeKey(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A fresh node: healthy, idle, unmeasured. A bracketed IPv6 host is stored without its brackets. */
export function createNodeState(host: string, port: number, weight: number, metadata?: Record<string, unknown>): NodeState {
  const bare = host.length > 1 && host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const node: NodeState = { key: nodeKey(bare, port), host: bare, port, weight, healthy: true, active: 0, ewma: 0, ewmaStamp: 0 };
  if (metadata !== undefined) node.metadata = metadata;
  return node;
}

/**
 * The node objects for a new node list, reusing the previous objects by key so health, in-flight
 * counts and latency survive reloads and discovery updates; weight and metadata are taken from the new
 * list. A key listed twice yields one node (the weights add up).
 */
export function reconcileNodes(
  previous: Iterable<NodeState>,
  next: ReadonlyArray<{ host: string; port: number; weight?: number; metadata?: Record<string, unknown> }>,
): NodeState[] {
  const byKey = new Map<string, NodeState>();
  for (const node of previous) byKey.set(node.key, node);
  const out = new Map<string, NodeState>();
  for (const item of next) {
    const fresh = createNodeState(item.host, item.port, item.weight ?? 1, item.metadata);
    const seen = out.get(fresh.key);
    if (seen) {
      seen.weight += fresh.weight;
      continue;
    }
    const node = byKey.get(fresh.key) ?? fresh;
    node.weight = fresh.weight;
    if (fresh.metadata !== undefined) node.metadata = fresh.metadata;
    else delete node.metadata;
    out.set(node.key, node);
  }
  return [...out.values()];
}
