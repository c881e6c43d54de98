/**
 * @module dataplane/snapshot
 * Compiles a validated declarative config into what the request path uses: the router, upstream runtimes
 * with their balancers and pools, and the certificate table. A snapshot is immutable once built; a config
 * change builds a new one and swaps it in at once, so a request sees the old or the new config, never half.
 */
import type { DeclarativeConfig } from '../model/declarative.js';
import type { Route } from '../model/route.js';
import type { UpstreamBody } from '../model/upstream.js';
import type { Settings } from '../config/settings.js';
import type { Metrics, RouteStats } from '../status/metrics.js';
import { compileRouter } from './router/router.js';
import type { Router, RouteEntry } from './router/types.js';
import { CertificateTable } from './tls.js';
import { NodeRegistry, UpstreamRuntime, DEFAULT_TIMEOUTS } from './upstream/upstream.js';
import type { PoolRegistry } from './upstream/pools.js';
import type { ProxyTarget } from './proxy.js';

export interface RouteRuntime extends ProxyTarget {
  id: string;
  route: Route;
  websocket: boolean;
  stats: RouteStats;
}

export interface Snapshot {
  revision: number;
  config: DeclarativeConfig;
  router: Router<RouteRuntime>;
  upstreams: Map<string, UpstreamRuntime>;
  certificates: CertificateTable;
}

export interface SnapshotDeps {
  settings: Settings;
  nodes: NodeRegistry;
  pools: PoolRegistry;
  metrics: Metrics;
}

/** Build a snapshot. Upstreams whose config did not change keep their runtime (balancer position, pools). */
export function compileSnapshot(cfg: DeclarativeConfig, revision: number, deps: SnapshotDeps, prev: Snapshot | null): Snapshot {
  deps.pools.beginGeneration();
  const upstreams = new Map<string, UpstreamRuntime>();
  const runtimeFor = (key: string, body: UpstreamBody): UpstreamRuntime => {
    const old = prev?.upstreams.get(key);
    if (old && JSON.stringify(old.config) === JSON.stringify(body)) {
      // Same config: keep the runtime; re-resolving its nodes marks their pools as used by this generation.
      old.setNodes(body.nodes);
      upstreams.set(key, old);
      return old;
    }
    const rt = new UpstreamRuntime(key, body, deps.nodes, deps.pools);
    upstreams.set(key, rt);
    return rt;
  };

  for (const u of cfg.upstreams) {
    const { id: _id, ...body } = u;
    runtimeFor(`upstream:${u.id}`, body);
  }
  const serviceUpstream = new Map<string, UpstreamRuntime>();
  for (const s of cfg.services) {
    if (s.upstreamId) serviceUpstream.set(s.id, upstreams.get(`upstream:${s.upstreamId}`)!);
    else if (s.upstream) serviceUpstream.set(s.id, runtimeFor(`service:${s.id}`, s.upstream));
  }

  const entries: RouteEntry<RouteRuntime>[] = [];
  for (const r of cfg.routes) {
    if (r.enabled === false) continue;
    let upstream: UpstreamRuntime | undefined;
    if (r.upstreamId) upstream = upstreams.get(`upstream:${r.upstreamId}`);
    else if (r.upstream) upstream = runtimeFor(`route:${r.id}`, r.upstream);
    else if (r.serviceId) upstream = serviceUpstream.get(r.serviceId);
    if (!upstream) throw new Error(`route ${r.id}: no upstream (config was not validated)`);
    const maxBodySize = r.maxBodySize ?? deps.settings.proxy.maxBodySize;
    const value: RouteRuntime = {
      id: r.id,
      route: r,
      upstream,
      timeouts: r.timeout ? { ...DEFAULT_TIMEOUTS, ...upstream.timeouts, ...r.timeout } : upstream.timeouts,
      maxBodySize,
      websocket: r.websocket === true,
      stats: deps.metrics.route(r.id),
    };
    entries.push({ route: r, value });
  }
  deps.nodes.retain(new Set(upstreams.keys()));
  const alpn = deps.settings.proxy.http2 ? ['h2', 'http/1.1'] : ['http/1.1'];
  return {
    revision,
    config: cfg,
    router: compileRouter(entries),
    upstreams,
    certificates: new CertificateTable(cfg.certificates, alpn),
  };
}

/** Every upstream of a config with the key its runtime and health state are filed under. */
export function listUpstreams(cfg: DeclarativeConfig): Array<{ key: string; body: UpstreamBody }> {
  const out: Array<{ key: string; body: UpstreamBody }> = [];
  for (const u of cfg.upstreams) {
    const { id: _id, ...body } = u;
    out.push({ key: `upstream:${u.id}`, body });
  }
  for (const s of cfg.services) if (!s.upstreamId && s.upstream) out.push({ key: `service:${s.id}`, body: s.upstream });
  for (const r of cfg.routes) if (r.enabled !== false && !r.upstreamId && r.upstream) out.push({ key: `route:${r.id}`, body: r.upstream });
  return out;
}
