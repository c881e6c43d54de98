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
import type { NodeState } from './upstream/types.js';
import type { UpstreamHealthTarget } from './upstream/health.js';
import type { ProxyTarget } from './proxy.js';
import type { Logger } from 'pino';
import type { PluginRegistry } from './plugins/registry.js';
import { compileChain, type Chain, type ChainBuildEnv, type PluginConfigAt } from './plugins/chain.js';
import type { PluginStateStore } from './plugins/state.js';
import type { PluginServices } from './plugins/types.js';
import type { DiscoveredNode } from '../discovery/types.js';
import { discoveryKeyOf, mergeNodes } from '../discovery/spec.js';

export interface RouteRuntime extends ProxyTarget {
  id: string;
  route: Route;
  websocket: boolean;
  stats: RouteStats;
  /** The route's plugin chain, or null when no plugin applies to it. */
  chain: Chain | null;
}

export interface Snapshot {
  revision: number;
  config: DeclarativeConfig;
  router: Router<RouteRuntime>;
  upstreams: Map<string, UpstreamRuntime>;
  certificates: CertificateTable;
}

export interface SnapshotDeps {
  plugins: PluginRegistry;
  logger: Logger;
  settings: Settings;
  nodes: NodeRegistry;
  pools: PoolRegistry;
  metrics: Metrics;
  state: PluginStateStore;
  services: PluginServices;
  /** Discovered nodes by discovery key, as last received; upstreams with discovery add them to their static nodes. */
  discovered?: ReadonlyMap<string, DiscoveredNode[]>;
}

/** Build a snapshot. Upstreams whose config did not change keep their runtime (balancer position, pools). */
export function compileSnapshot(cfg: DeclarativeConfig, revision: number, deps: SnapshotDeps, prev: Snapshot | null): Snapshot {
  deps.pools.beginGeneration();
  const upstreams = new Map<string, UpstreamRuntime>();
  const runtimeFor = (key: string, body: UpstreamBody): UpstreamRuntime => {
    // The latest discovered nodes apply at once: a reload never leaves a discovered upstream without nodes.
    const nodes = effectiveNodes(body, (k) => deps.discovered?.get(k));
    const old = prev?.upstreams.get(key);
    if (old && JSON.stringify(old.config) === JSON.stringify(body)) {
      // Same config: keep the runtime; re-resolving its nodes marks their pools as used by this generation.
      old.setNodes(nodes);
      upstreams.set(key, old);
      return old;
    }
    const rt = new UpstreamRuntime(key, body, deps.nodes, deps.pools, nodes);
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

  // Auth plugins look consumers up through an index built once per config.
  const credentials = new Map<string, unknown>();
  for (const def of deps.plugins.list()) {
    if (!def.indexCredentials) continue;
    const found: Array<{ consumer: (typeof cfg.consumers)[number]; credential: Record<string, unknown>; path: string }> = [];
    cfg.consumers.forEach((c, i) => {
      const cred = c.credentials?.[def.name];
      if (cred) found.push({ consumer: c, credential: cred, path: `consumers[${i}].credentials.${def.name}` });
    });
    credentials.set(def.name, def.indexCredentials(found));
  }
  const consumerPaths = new Map(cfg.consumers.map((c, i) => [c.username, `consumers[${i}]`]));
  const chainEnv: ChainBuildEnv = { registry: deps.plugins, logger: deps.logger, credentials, consumerPaths, state: deps.state, services: deps.services };
  const globalConfigs: PluginConfigAt[] = Object.entries(cfg.globalPlugins ?? {}).map(([name, config]) => ({ name, config, path: `globalPlugins.${name}`, scope: 'global' }));
  const serviceIndex = new Map(cfg.services.map((s, i) => [s.id, i]));

  const entries: RouteEntry<RouteRuntime>[] = [];
  cfg.routes.forEach((r, routeIndex) => {
    if (r.enabled === false) return;
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
      chain: null,
    };
    // Precedence: a plugin configured on the route replaces the service's, which replaces the global one.
    const merged = new Map<string, PluginConfigAt>();
    for (const g of globalConfigs) merged.set(g.name, g);
    const si = r.serviceId !== undefined ? serviceIndex.get(r.serviceId) : undefined;
    if (si !== undefined) {
      for (const [name, config] of Object.entries(cfg.services[si]!.plugins ?? {})) merged.set(name, { name, config, path: `services[${si}].plugins.${name}`, scope: `service:${r.serviceId}` });
    }
    for (const [name, config] of Object.entries(r.plugins ?? {})) merged.set(name, { name, config, path: `routes[${routeIndex}].plugins.${name}`, scope: `route:${r.id}` });
    value.chain = compileChain([...merged.values()], chainEnv);
    entries.push({ route: r, value });
  });
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

/** The nodes an upstream body runs with, given the discovered nodes by key: its static nodes plus its source's. */
export function effectiveNodes(body: UpstreamBody, discovered: (key: string) => readonly DiscoveredNode[] | undefined): UpstreamBody['nodes'] {
  const dkey = discoveryKeyOf(body);
  return dkey === null ? body.nodes : mergeNodes(body.nodes, discovered(dkey));
}

/** The health checker's view of a config's upstreams; `nodesFor` supplies the node objects to keep in step. */
export function healthTargets(cfg: DeclarativeConfig, nodesFor: (key: string, body: UpstreamBody) => NodeState[]): UpstreamHealthTarget[] {
  return listUpstreams(cfg).map(({ key, body }) => ({ key, nodes: nodesFor(key, body), healthCheck: body.healthCheck, scheme: body.scheme ?? 'http', tls: body.tls }));
}
