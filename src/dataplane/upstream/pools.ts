/**
 * @module dataplane/upstream/pools
 * Keep-alive connection pools (undici Pool), one per node and connection settings, shared by every upstream
 * that points at the same node and kept across config reloads so connections are reused.
 */
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
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

export class PoolRegistry {
  private pools = new Map<string, Pool>();
  private used = new Set<string>();

  /** Get (or create) the pool for a node; marks it in use for the config being compiled. */
  get(node: NodeState, o: PoolOptions): Pool {
    const key = poolKey(node, o);
    this.used.add(key);
    let pool = this.pools.get(key);
    if (!pool) {
      const host = node.host.includes(':') ? `[${node.host}]` : node.host;
      pool = new Pool(`${o.scheme}://${host}:${node.port}`, {
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
        pool.close().catch(() => {});
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
