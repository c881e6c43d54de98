/**
 * @module dataplane/upstream/pools
 * Keep-alive connection pools, one per node and connection settings, shared by every upstream that points at
 * the same node and kept across config reloads so connections are reused. Proxied requests go through the
 * gateway's own HTTP/1.1 client (h1-client.ts); WebSocket upgrades and mirrored copies through an undici Pool
 * to the same node, opened the first time one is needed.
 */
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import { H1Pool } from './h1-client.js';
import type { NodeState } from './types.js';

export interface PoolOptions {
  scheme: 'http' | 'https';
  connectTimeout: number;
  connections: number;
  idleTimeout: number;
  tls?: { verify: boolean; serverName?: string; ca?: string } | undefined;
}

function poolKey(node: NodeState, o: PoolOptions): string {
  const tls = o.tls ? createHash('sha256').update(JSON.stringify(o.tls)).digest('hex').slice(0, 16) : '';
  return `${o.scheme}://${node.key}|${o.connectTimeout}|${o.connections}|${o.idleTimeout}|${tls}`;
}

/** The connections to one node: the request path's client, and undici's for upgrades and mirrored copies. */
export class NodePool {
  readonly h1: H1Pool;
  private other: Pool | null = null;

  constructor(
    private readonly node: NodeState,
    private readonly o: PoolOptions,
  ) {
    this.h1 = new H1Pool({
      host: node.host,
      port: node.port,
      scheme: o.scheme,
      connectTimeout: o.connectTimeout,
      connections: o.connections,
      idleTimeout: o.idleTimeout,
      tls: o.tls,
    });
  }

  /** An undici Pool to the node (WebSocket upgrades, mirrored copies), opened on first use. */
  get undici(): Pool {
    if (this.other === null) {
      const o = this.o;
      const host = this.node.host.includes(':') ? `[${this.node.host}]` : this.node.host;
      this.other = new Pool(`${o.scheme}://${host}:${this.node.port}`, {
        connections: o.connections,
        pipelining: 1,
        keepAliveTimeout: Math.min(o.idleTimeout, 4000),
        keepAliveMaxTimeout: o.idleTimeout,
        connect: {
          timeout: o.connectTimeout,
          noDelay: true,
          ...(o.scheme === 'https'
            ? {
                rejectUnauthorized: o.tls?.verify ?? true,
                ...(o.tls?.serverName ? { servername: o.tls.serverName } : {}),
                ...(o.tls?.ca ? { ca: o.tls.ca } : {}),
              }
            : {}),
        },
        // Upstream responses are relayed as they come; undici must not cap them.
        maxResponseSize: -1,
        strictContentLength: true,
      });
    }
    return this.other;
  }

  /** Close both gracefully: requests in flight finish. */
  async close(): Promise<void> {
    await Promise.allSettled([this.h1.close(), this.other?.close()]);
  }
}

export class PoolRegistry {
  private pools = new Map<string, NodePool>();
  private used = new Set<string>();

  /** Get (or create) the pools of a node; marks them in use for the config being compiled. */
  get(node: NodeState, o: PoolOptions): NodePool {
    const key = poolKey(node, o);
    this.used.add(key);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new NodePool(node, o);
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Begin compiling a new config: pools requested from now on are the ones it uses. */
  beginGeneration(): void {
    this.used = new Set();
  }

  /** After the new config is live: close pools it does not use (gracefully; in-flight requests finish). */
  sweep(): void {
    for (const [key, pool] of this.pools) {
      if (!this.used.has(key)) {
        this.pools.delete(key);
        void pool.close();
      }
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(all.map((p) => p.close()));
  }

  get size(): number {
    return this.pools.size;
  }
}
