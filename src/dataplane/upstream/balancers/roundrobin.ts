/**
 * @module dataplane/upstream/balancers/roundrobin
 * Smooth weighted round robin (nginx): spreads a heavy node's turns between the others instead of in a burst.
 */
import type { Balancer, NodeState, PickContext } from '../types.js';
import { anyEligible, countFinish, countStart, gcd, isEligible } from './common.js';

/** Longest precomputed cycle; beyond it (or when building would cost too much) picks run nginx's O(n) loop. */
const MAX_SCHEDULE = 1 << 16;
/** Building a cycle simulates nginx for every slot over every node: cap that config-time work. */
const MAX_BUILD_STEPS = 1 << 24;

/**
 * The nginx algorithm is O(n) per pick. When weights are small enough, its whole cycle is computed once
 * here and picks walk it in O(1); the cycle comes out of the same algorithm, so the order is nginx's.
 * Nodes that are unhealthy, tried or set to weight 0 are stepped over, which keeps the weight ratio of
 * the remaining nodes exact over each cycle.
 *
 * Weights are taken when the balancer is built: build a new one when weights change.
 */
export class RoundRobinBalancer implements Balancer {
  readonly #nodes: readonly NodeState[];
  /** Build-time weights divided by their gcd. */
  readonly #weights: Float64Array;
  /** Node indexes in pick order, or null for the live nginx loop. */
  readonly #schedule: Uint32Array | null;
  /** nginx's current_weight per node, for the live loop. */
  readonly #current: Float64Array;
  #cursor = 0;

  constructor(nodes: readonly NodeState[]) {
    this.#nodes = nodes.slice();
    const n = this.#nodes.length;
    this.#weights = new Float64Array(n);
    this.#current = new Float64Array(n);
    let divisor = 0;
    for (const node of this.#nodes) if (node.weight > 0) divisor = gcd(node.weight, divisor);
    let cycle = 0;
    let allEqual = true;
    let firstWeight = 0;
    for (let i = 0; i < n; i++) {
      const w = this.#nodes[i]!.weight > 0 ? this.#nodes[i]!.weight / divisor : 0;
      this.#weights[i] = w;
      cycle += w;
      if (w > 0) {
        if (firstWeight === 0) firstWeight = w;
        else if (w !== firstWeight) allEqual = false;
      }
    }
    this.#schedule = buildSchedule(this.#weights, cycle, allEqual);
  }

  /** HOT PATH */
  pick(_ctx: PickContext, tried: ReadonlySet<NodeState> | null): NodeState | null {
    const schedule = this.#schedule;
    return schedule === null ? this.#pickLive(tried) : this.#pickScheduled(schedule, tried);
  }

  onStart(node: NodeState): void {
    countStart(node);
  }

  onFinish(node: NodeState, _latencyMs: number): void {
    countFinish(node);
  }

  #pickScheduled(schedule: Uint32Array, tried: ReadonlySet<NodeState> | null): NodeState | null {
    const nodes = this.#nodes;
    const len = schedule.length;
    let pos = this.#cursor;
    for (let step = 0; step < len; step++) {
      if (step === nodes.length && !anyEligible(nodes, tried)) return null;
      const node = nodes[schedule[pos]!]!;
      pos = pos + 1 === len ? 0 : pos + 1;
      if (isEligible(node, tried)) {
        this.#cursor = pos;
        return node;
      }
    }
    return null;
  }

  /** nginx's ngx_http_upstream_get_peer: the total only counts nodes that may be picked now. */
  #pickLive(tried: ReadonlySet<NodeState> | null): NodeState | null {
    const nodes = this.#nodes;
    const weights = this.#weights;
    const current = this.#current;
    let total = 0;
    let best = -1;
    for (let i = 0; i < nodes.length; i++) {
      if (weights[i] === 0 || !isEligible(nodes[i]!, tried)) continue;
      current[i] += weights[i]!;
      total += weights[i]!;
      if (best === -1 || current[i]! > current[best]!) best = i;
    }
    if (best === -1) return null;
    current[best] -= total;
    return nodes[best]!;
  }
}

function buildSchedule(weights: Float64Array, cycle: number, allEqual: boolean): Uint32Array | null {
  const n = weights.length;
  if (cycle === 0) return new Uint32Array(0);
  if (allEqual) {
    // Equal weights make nginx plain round robin in list order: no need to simulate it.
    const order = new Uint32Array(cycle);
    let k = 0;
    for (let i = 0; i < n; i++) if (weights[i]! > 0) order[k++] = i;
    return order;
  }
  if (cycle > MAX_SCHEDULE || cycle * n > MAX_BUILD_STEPS) return null;
  const order = new Uint32Array(cycle);
  const current = new Float64Array(n);
  for (let slot = 0; slot < cycle; slot++) {
    let best = -1;
    for (let i = 0; i < n; i++) {
      if (weights[i] === 0) continue;
      current[i] += weights[i]!;
      if (best === -1 || current[i]! > current[best]!) best = i;
    }
    current[best] -= cycle;
    order[slot] = best;
  }
  return order;
}
