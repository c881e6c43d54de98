/**
 * @module dataplane/upstream/balancers/common
 * Eligibility, in-flight counting and hashing shared by the balancers.
 */
import type { NodeState } from '../types.js';

/** HOT PATH: whether a node may take this request. Weight is read live so a node set to 0 stops at once. */
export function isEligible(node: NodeState, tried: ReadonlySet<NodeState> | null): boolean {
  return node.healthy && node.weight > 0 && (tried === null || !tried.has(node));
}

/**
 * Whether any node may take this request. Balancers that walk a precomputed order call it once the walk
 * has gone on for a while, so a fully unhealthy upstream costs O(n) per pick instead of a whole cycle.
 */
export function anyEligible(nodes: readonly NodeState[], tried: ReadonlySet<NodeState> | null): boolean {
  for (let i = 0; i < nodes.length; i++) if (isEligible(nodes[i]!, tried)) return true;
  return false;
}

export function countStart(node: NodeState): void {
  node.active++;
}

/** Never below zero: a balancer rebuilt mid-request may see the finish of a start it did not count. */
export function countFinish(node: NodeState): void {
  if (node.active > 0) node.active--;
}

/**
 * HOT PATH: 32-bit FNV-1a over `s[start, end)` followed by murmur3's finaliser. FNV-1a alone spreads
 * keys that differ only in their last characters ("node-1", "node-2") poorly over the ring; the
 * finaliser fixes that. Works on a range so cookie and query values are hashed without a substring.
 */
export function hashRange(s: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function hashString(s: string): number {
  return hashRange(s, 0, s.length);
}

export function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}
