/**
 * @module dataplane/upstream/balancers/least-conn
 * Least connections: the node with the fewest requests in flight for its weight.
 */
import type { Balancer, NodeState, PickContext } from '../types.js';
import { countFinish, countStart, isEligible } from './common.js';

/**
 * Like nginx's least_conn: find the lowest active/weight, then break ties between the nodes that share it
 * by smooth weighted round robin. Without the tie-break, sequential traffic (active is always 0 when a
 * pick happens) would either all go to the first node or ignore weights.
 *
 * Two O(n) passes, no allocation; ratios are compared by cross-multiplying so no division is needed.
 */
export class LeastConnBalancer implements Balancer {
  readonly #nodes: readonly NodeState[];
  /** Smooth round robin state for the tie-break, per node index. */
  readonly #current: Float64Array;

  constructor(nodes: readonly NodeState[]) {
    this.#nodes = nodes.slice();
    this.#current = new Float64Array(this.#nodes.length);
  }

  /** HOT PATH */
  pick(_ctx: PickContext, tried: ReadonlySet<NodeState> | null): NodeState | null {
    const nodes = this.#nodes;
    let best: NodeState | null = null;
    let ties = 0;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!;
      if (!isEligible(node, tried)) continue;
      if (best === null) {
        best = node;
        ties = 1;
        continue;
      }
      const lhs = node.active * best.weight;
      const rhs = best.active * node.weight;
      if (lhs < rhs) {
        best = node;
        ties = 1;
      } else if (lhs === rhs) {
        ties++;
      }
    }
    if (best === null || ties === 1) return best;

    const current = this.#current;
    const bestActive = best.active;
    const bestWeight = best.weight;
    let total = 0;
    let chosen = -1;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!;
      if (!isEligible(node, tried) || node.active * bestWeight !== bestActive * node.weight) continue;
      current[i] += node.weight;
      total += node.weight;
      if (chosen === -1 || current[i]! > current[chosen]!) chosen = i;
    }
    current[chosen] -= total;
    return nodes[chosen]!;
  }

  onStart(node: NodeState): void {
    countStart(node);
  }

  onFinish(node: NodeState, _latencyMs: number): void {
    countFinish(node);
  }
}
