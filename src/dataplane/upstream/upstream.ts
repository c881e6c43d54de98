/**
 * @module dataplane/upstream/upstream
 * An upstream at run time: its nodes (static and discovered: data that can change while serving), the
 * balancer over them, the connection pool of each node, and the timeouts and retry budget requests to it use.
 */
import type { HealthCheck, UpstreamBody, UpstreamNode } from '../../model/upstream.js';
import type { Timeouts } from '../../model/common.js';
import { createBalancer, createNodeState } from './balancers/index.js';
import type { NodePool, PoolOptions, PoolRegistry } from './pools.js';
import { passiveFailureStatuses } from './health.js';
import type { Balancer, NodeState, PickContext } from './types.js';
import { discoveryKeyOf } from '../../discovery/spec.js';

const NO_STATUSES: ReadonlySet<number> = new Set();

export const DEFAULT_TIMEOUTS: Timeouts = { connect: 6000, send: 60000, read: 60000 };

/** NodeState objects by upstream key and node key, kept across reloads so health and load survive them. */
export class NodeRegistry {
  private readonly byUpstream = new Map<string, Map<string, NodeState>>();

  resolve(upstreamKey: string, nodes: UpstreamNode[]): NodeState[] {
    const prev = this.byUpstream.get(upstreamKey);
    const next = new Map<string, NodeState>();
    const out: NodeState[] = [];
    for (const n of nodes) {
      const fresh = createNodeState(n.host, n.port, n.weight ?? 1, n.metadata);
      const kept = prev?.get(fresh.key);
      const state = kept ?? fresh;
      state.weight = n.weight ?? 1;
      state.metadata = n.metadata;
      next.set(state.key, state);
      out.push(state);
    }
    this.byUpstream.set(upstreamKey, next);
    return out;
  }

  /** Forget upstreams the new config no longer has. */
  retain(keys: Set<string>): void {
    for (const k of this.byUpstream.keys()) if (!keys.has(k)) this.byUpstream.delete(k);
  }

  get(upstreamKey: string): Map<string, NodeState> | undefined {
    return this.byUpstream.get(upstreamKey);
  }

  entries(): IterableIterator<[string, Map<string, NodeState>]> {
    return this.byUpstream.entries();
  }
}

export class UpstreamRuntime {
  readonly key: string;
  readonly config: UpstreamBody;
  readonly scheme: 'http' | 'https';
  readonly timeouts: Timeouts;
  readonly retries: number;
  readonly passHost: 'pass' | 'node' | 'rewrite';
  readonly upstreamHost: string | undefined;
  readonly healthCheck: HealthCheck | undefined;
  /** Statuses that count as a node failure for passive health (empty set when passive checks are off). */
  readonly failureStatuses: ReadonlySet<number>;
  /** The key of the discovery watch whose nodes join the static ones, or null without discovery. */
  readonly discoveryKey: string | null;
  nodes: NodeState[] = [];
  balancer!: Balancer;
  private pools = new Map<NodeState, NodePool>();
  private readonly poolOptions: PoolOptions;

  constructor(
    key: string,
    config: UpstreamBody,
    private readonly registry: NodeRegistry,
    private readonly poolRegistry: PoolRegistry,
    /** The nodes to start with (static plus discovered); default: the static nodes of `config`. */
    nodes: UpstreamNode[] = config.nodes,
  ) {
    this.key = key;
    this.config = config;
    this.scheme = config.scheme ?? 'http';
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...config.timeout };
    this.retries = config.retries ?? 1;
    this.passHost = config.passHost ?? 'pass';
    this.upstreamHost = config.upstreamHost;
    this.healthCheck = config.healthCheck;
    this.failureStatuses = passiveFailureStatuses(config.healthCheck) ?? NO_STATUSES;
    this.poolOptions = {
      scheme: this.scheme,
      connectTimeout: this.timeouts.connect,
      connections: config.keepalive?.connections ?? 256,
      idleTimeout: config.keepalive?.idleTimeout ?? 60000,
      tls: config.tls,
    };
    this.discoveryKey = discoveryKeyOf(config);
    this.setNodes(nodes);
  }

  /**
   * Replace the node list while serving (config change or service discovery). Requests in flight keep their
   * node and pool; new requests see the new list at once.
   */
  setNodes(nodes: UpstreamNode[]): void {
    const states = this.registry.resolve(this.key, nodes);
    const pools = new Map<NodeState, NodePool>();
    for (const s of states) pools.set(s, this.poolRegistry.get(s, this.poolOptions));
    this.pools = pools;
    this.nodes = states;
    this.balancer = createBalancer(this.config.type ?? 'roundrobin', states, this.config.hashOn);
  }

  /** Mark this upstream's pools as in use by the current pool generation (see PoolRegistry.sweep). */
  retainPools(): void {
    for (const s of this.nodes) this.poolRegistry.get(s, this.poolOptions);
  }

  /** HOT PATH */
  pick(ctx: PickContext, tried: ReadonlySet<NodeState> | null): NodeState | null {
    return this.balancer.pick(ctx, tried);
  }

  /** HOT PATH: the connections to a node. */
  pool(node: NodeState): NodePool {
    return this.pools.get(node)!;
  }

  /** The Host header sent to `node` for passHost node. */
  nodeHost(node: NodeState): string {
    const h = node.host.includes(':') ? `[${node.host}]` : node.host;
    const defaultPort = this.scheme === 'https' ? 443 : 80;
    return node.port === defaultPort ? h : `${h}:${node.port}`;
  }
}
