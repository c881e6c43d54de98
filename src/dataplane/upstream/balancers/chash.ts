/**
 * @module dataplane/upstream/balancers/chash
 * Consistent hashing on a ring of virtual nodes: the same key keeps reaching the same node.
 */
import type { HashOn } from '../../../model/upstream.js';
import type { Balancer, NodeState, PickContext } from '../types.js';
import { anyEligible, countFinish, countStart, hashRange, hashString, isEligible } from './common.js';

/** Ring points per unit of weight; 160 is ketama's choice and keeps the spread within a few percent. */
export const POINTS_PER_WEIGHT = 160;
/** Cap on the ring size (two 4-byte arrays per point), for upstreams with many heavy nodes. */
const MAX_POINTS = 1 << 18;
/** Node indexes are packed below the hash in one float64 so the ring sorts natively. */
const INDEX_SPACE = 1 << 16;

/** HOT PATH: the request's key hashed, or -1 when the request has none. */
type KeyHasher = (ctx: PickContext) => number;

/**
 * Points are placed by hashing "<node key>#<i>", so they depend only on the node itself: adding or
 * removing a node moves only the keys that land on its points. Weights count as they are, not
 * reduced by a common divisor, because that divisor changes when one node is added and would reshuffle
 * the others; only a ring beyond MAX_POINTS is scaled down (and then loses that guarantee).
 */
export class ConsistentHashBalancer implements Balancer {
  readonly #nodes: readonly NodeState[];
  /** Point hashes, ascending. */
  readonly #ring: Uint32Array;
  /** Node index owning each point. */
  readonly #owners: Uint32Array;
  readonly #hashKey: KeyHasher;

  constructor(nodes: readonly NodeState[], hashOn?: HashOn) {
    this.#nodes = nodes.slice();
    if (this.#nodes.length > INDEX_SPACE) throw new RangeError(`chash supports at most ${INDEX_SPACE} nodes`);
    this.#hashKey = keyHasher(hashOn);

    let totalWeight = 0;
    for (const node of this.#nodes) if (node.weight > 0) totalWeight += node.weight;
    const scale = totalWeight * POINTS_PER_WEIGHT > MAX_POINTS ? MAX_POINTS / (totalWeight * POINTS_PER_WEIGHT) : 1;
    const counts = this.#nodes.map((node) =>
      node.weight > 0 ? Math.max(1, Math.round(node.weight * POINTS_PER_WEIGHT * scale)) : 0,
    );
    const packed = new Float64Array(counts.reduce((a, b) => a + b, 0));
    let k = 0;
    for (let i = 0; i < this.#nodes.length; i++) {
      const key = this.#nodes[i]!.key;
      for (let p = 0; p < counts[i]!; p++) packed[k++] = hashString(`${key}#${p}`) * INDEX_SPACE + i;
    }
    packed.sort();
    this.#ring = new Uint32Array(packed.length);
    this.#owners = new Uint32Array(packed.length);
    for (let p = 0; p < packed.length; p++) {
      const value = packed[p]!;
      const owner = value % INDEX_SPACE;
      this.#owners[p] = owner;
      this.#ring[p] = (value - owner) / INDEX_SPACE;
    }
  }

  /** HOT PATH: binary search for the first point at or after the key's hash, then walk clockwise. */
  pick(ctx: PickContext, tried: ReadonlySet<NodeState> | null): NodeState | null {
    const ring = this.#ring;
    const len = ring.length;
    if (len === 0) return null;
    let hash = this.#hashKey(ctx);
    if (hash < 0) hash = hashString(ctx.clientIp);

    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ring[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    let pos = lo === len ? 0 : lo;

    const nodes = this.#nodes;
    const owners = this.#owners;
    for (let step = 0; step < len; step++) {
      if (step === nodes.length && !anyEligible(nodes, tried)) return null;
      const node = nodes[owners[pos]!]!;
      if (isEligible(node, tried)) return node;
      pos = pos + 1 === len ? 0 : pos + 1;
    }
    return null;
  }

  onStart(node: NodeState): void {
    countStart(node);
  }

  onFinish(node: NodeState, _latencyMs: number): void {
    countFinish(node);
  }
}

/** Chosen once per balancer so a pick does not switch on the hash type. */
function keyHasher(hashOn: HashOn | undefined): KeyHasher {
  const type = hashOn?.type ?? 'ip';
  const key = hashOn?.key;
  switch (type) {
    case 'uri':
      return (ctx) => hashString(ctx.path);
    case 'header': {
      if (!key) break;
      const name = key.toLowerCase();
      return (ctx) => {
        const raw = ctx.headers[name];
        const value = typeof raw === 'string' ? raw : raw === undefined ? undefined : raw[0];
        return value ? hashString(value) : -1;
      };
    }
    case 'cookie': {
      if (!key) break;
      return (ctx) => {
        const cookie = ctx.headers.cookie;
        return cookie ? hashPair(cookie, key, ';', true) : -1;
      };
    }
    case 'query': {
      if (!key) break;
      return (ctx) => (ctx.query ? hashPair(ctx.query, key, '&', false) : -1);
    }
    case 'ip':
      break;
  }
  // ip, and keyed types configured without a key: the client address is the documented fallback.
  return () => -1;
}

/**
 * HOT PATH: hash the value of `name` in a "a=1<sep>b=2" list without splitting it. Values are hashed as
 * sent (query values are not percent-decoded): the same client sends the same bytes, which is all
 * stickiness needs. An empty value counts as missing.
 */
export function hashPair(list: string, name: string, separator: ';' | '&', trimSpaces: boolean): number {
  const n = list.length;
  let i = 0;
  while (i < n) {
    if (trimSpaces) while (i < n && (list.charCodeAt(i) === 32 || list.charCodeAt(i) === 9)) i++;
    let end = list.indexOf(separator, i);
    if (end === -1) end = n;
    if (list.charCodeAt(i + name.length) === 61 /* = */ && i + name.length < end && list.startsWith(name, i)) {
      let start = i + name.length + 1;
      let stop = end;
      if (trimSpaces) {
        while (stop > start && (list.charCodeAt(stop - 1) === 32 || list.charCodeAt(stop - 1) === 9)) stop--;
        if (stop - start >= 2 && list.charCodeAt(start) === 34 && list.charCodeAt(stop - 1) === 34) {
          start++;
          stop--;
        }
      }
      return stop > start ? hashRange(list, start, stop) : -1;
    }
    i = end + 1;
  }
  return -1;
}
