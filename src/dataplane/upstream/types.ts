/**
 * @module dataplane/upstream/types
 * Node state shared by balancers, health checks and the proxy.
 */
import type { IncomingHttpHeaders } from 'node:http';

/**
 * One upstream node at run time. The same object lives across config reloads and node-list changes
 * (matched by `key`), so health and load state survive them.
 */
export interface NodeState {
  /** "host:port" (IPv6 hosts in brackets). */
  readonly key: string;
  readonly host: string;
  readonly port: number;
  /** Current weight (from config or discovery); 0 means never picked. */
  weight: number;
  metadata?: Record<string, unknown>;
  /** False while health checks hold the node out of rotation. */
  healthy: boolean;
  /** Requests in flight to this node from this process (least_conn, ewma). */
  active: number;
  /** Exponentially weighted moving average of response latency in ms (ewma); 0 until measured. */
  ewma: number;
  /** Time of the last ewma update (ms, performance.now()). */
  ewmaStamp: number;
}

/** What a balancer may look at to pick a node. */
export interface PickContext {
  clientIp: string;
  /** Canonical path. */
  path: string;
  /** Raw query string without '?'. */
  query: string;
  headers: IncomingHttpHeaders;
}

export interface Balancer {
  /**
   * HOT PATH: pick a healthy node with weight > 0, skipping those in `tried` (nodes that already failed this
   * request). Returns null when none is left.
   */
  pick(ctx: PickContext, tried: ReadonlySet<NodeState> | null): NodeState | null;
  /** A request to `node` has started (least_conn and ewma keep counts). */
  onStart(node: NodeState): void;
  /** A request to `node` has finished; `latencyMs` is time to response headers, or -1 on failure. */
  onFinish(node: NodeState, latencyMs: number): void;
}
