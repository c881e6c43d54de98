/**
 * @module dataplane/upstream/balancers/ewma
 * Latency-aware balancing: peak EWMA of response time, picked by the power of two random choices.
 */
import { performance } from 'node:perf_hooks';
import type { Balancer, NodeState, PickContext } from '../types.js';
import { countFinish, countStart, isEligible } from './common.js';

/** Time constant of the decay: after 10 s an old measurement weighs about a third. */
export const DECAY_MS = 10_000;
/**
 * Latency charged for a failed request. Failures are often fast (connection refused), and a node that
 * fails fast must not look like the fastest one; doubling also makes repeated failures add up.
 */
export const FAILURE_PENALTY_MS = 1000;
const MAX_PENALTY_MS = 60_000;

/**
 * Finagle's peak EWMA, as in APISIX's ewma balancer: a slower answer raises the average at once, faster
 * ones bring it down as time passes. The average decays towards 0 while a node gets no traffic, so a
 * penalised node is tried again sooner or later. Score = ewma * (active + 1) / weight; lowest wins
 * between two random eligible nodes, which avoids the herd that "always the best" causes when every
 * worker sees the same numbers. Unmeasured nodes score 0, so new nodes get tried.
 */
export class EwmaBalancer implements Balancer {
  readonly #nodes: readonly NodeState[];

  constructor(nodes: readonly NodeState[]) {
    this.#nodes = nodes.slice();
  }

  /** HOT PATH */
  pick(_ctx: PickContext, tried: ReadonlySet<NodeState> | null): NodeState | null {
    const nodes = this.#nodes;
    const n = nodes.length;
    if (n === 0) return null;
    const first = nextEligible(nodes, (Math.random() * n) | 0, -1, tried);
    if (first === -1) return null;
    if (n === 1) return nodes[first]!;
    // A random start among the other n - 1 positions, so the second choice is a different node.
    let start = (Math.random() * (n - 1)) | 0;
    if (start >= first) start++;
    const second = nextEligible(nodes, start, first, tried);
    if (second === -1) return nodes[first]!;
    const now = performance.now();
    const a = nodes[first]!;
    const b = nodes[second]!;
    return score(b, now) < score(a, now) ? b : a;
  }

  onStart(node: NodeState): void {
    countStart(node);
  }

  onFinish(node: NodeState, latencyMs: number): void {
    countFinish(node);
    recordLatency(node, latencyMs, performance.now());
  }
}

/** Fold one measurement (-1 = failure) into the node's peak EWMA. Exported for tests that control time. */
export function recordLatency(node: NodeState, latencyMs: number, now: number): void {
  const measured = node.ewmaStamp !== 0;
  const sample = latencyMs < 0 ? Math.min(MAX_PENALTY_MS, Math.max(FAILURE_PENALTY_MS, node.ewma * 2)) : latencyMs;
  if (!measured || sample > node.ewma) {
    node.ewma = sample;
  } else {
    const weight = Math.exp(-Math.max(0, now - node.ewmaStamp) / DECAY_MS);
    node.ewma = node.ewma * weight + sample * (1 - weight);
  }
  // 0 marks "never measured"; performance.now() is 0 only at the very first instant of the process.
  node.ewmaStamp = now > 0 ? now : Number.MIN_VALUE;
}

/** HOT PATH: the decayed average, without writing it back (picks must not move the measurements). */
function score(node: NodeState, now: number): number {
  if (node.ewmaStamp === 0) return 0;
  const decayed = node.ewma * Math.exp(-Math.max(0, now - node.ewmaStamp) / DECAY_MS);
  return (decayed * (node.active + 1)) / node.weight;
}

/** HOT PATH: first eligible index at or after `start` (wrapping), other than `skip`; -1 if none. */
function nextEligible(nodes: readonly NodeState[], start: number, skip: number, tried: ReadonlySet<NodeState> | null): number {
  const n = nodes.length;
  for (let k = 0, i = start; k < n; k++, i = i + 1 === n ? 0 : i + 1) {
    if (i !== skip && isEligible(nodes[i]!, tried)) return i;
  }
  return -1;
}
