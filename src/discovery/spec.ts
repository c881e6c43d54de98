/**
 * @module discovery/spec
 * From an upstream's `discovery` field to the spec a backend watches and the stable key it is filed under
 * (one watch per key, whichever upstreams share it), and the node list an upstream runs with: its static
 * nodes plus the discovered ones.
 */
import type { UpstreamBody, UpstreamNode } from '../model/upstream.js';
import type { DiscoveredNode, DiscoverySpec } from './types.js';

/** What spec-level code needs of an upstream (a validated body, or stored content with defaults not filled in). */
export interface UpstreamDiscoveryView {
  nodes?: ReadonlyArray<{ host: string; port: number; weight?: number | undefined; metadata?: Record<string, unknown> | undefined }> | undefined;
  discovery?: UpstreamBody['discovery'];
  scheme?: UpstreamBody['scheme'] | undefined;
}

/**
 * The spec an upstream's discovery field stands for, with what it leaves to defaults made explicit (the dns
 * port from the scheme), so upstreams that mean the same source share one key. Null without discovery.
 */
export function discoverySpecOf(body: UpstreamDiscoveryView): DiscoverySpec | null {
  const d = body.discovery;
  if (!d) return null;
  const spec: DiscoverySpec = { type: d.type, service: d.service };
  if (d.cluster !== undefined) spec.cluster = d.cluster;
  if (d.tags !== undefined && d.tags.length > 0) spec.tags = [...new Set(d.tags)].sort();
  if (d.type === 'dns' && !d.service.startsWith('_')) spec.port = d.port ?? (body.scheme === 'https' ? 443 : 80);
  else if (d.port !== undefined) spec.port = d.port;
  if (d.emptyGracePeriod !== undefined) spec.emptyGracePeriod = d.emptyGracePeriod;
  return spec;
}

/**
 * The stable key of a spec: "<type>/<cluster>/<service>" with "?port=..&tags=..&emptyGracePeriod=.." for the
 * parts that are set, each part URI-encoded. It names the watch in logs, metrics and worker messages.
 */
export function specKey(spec: DiscoverySpec): string {
  const q: string[] = [];
  if (spec.port !== undefined) q.push(`port=${spec.port}`);
  if (spec.tags?.length) q.push(`tags=${[...new Set(spec.tags)].sort().map(encodeURIComponent).join(',')}`);
  if (spec.emptyGracePeriod !== undefined) q.push(`emptyGracePeriod=${spec.emptyGracePeriod}`);
  const base = `${spec.type}/${encodeURIComponent(spec.cluster ?? '')}/${encodeURIComponent(spec.service)}`;
  return q.length ? `${base}?${q.join('&')}` : base;
}

/** The key of an upstream's discovery watch, or null when it has none. */
export function discoveryKeyOf(body: UpstreamDiscoveryView): string | null {
  const spec = discoverySpecOf(body);
  return spec ? specKey(spec) : null;
}

/** "host:port", IPv6 hosts in brackets: the node identity the data plane uses. */
function nodeId(host: string, port: number): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return `${bare.includes(':') ? `[${bare.toLowerCase()}]` : bare.toLowerCase()}:${port}`;
}

/**
 * The nodes an upstream runs with: its static nodes, then the discovered ones that are not already among them
 * (a static node wins over a discovered node at the same address). Undefined `discovered`: nothing known yet.
 */
export function mergeNodes(staticNodes: UpstreamDiscoveryView['nodes'], discovered: readonly DiscoveredNode[] | undefined): UpstreamNode[] {
  const base = (staticNodes ?? []) as UpstreamNode[];
  if (!discovered || discovered.length === 0) return base;
  const seen = new Set(base.map((n) => nodeId(n.host, n.port)));
  const out: UpstreamNode[] = [...base];
  for (const d of discovered) {
    const id = nodeId(d.host, d.port);
    if (seen.has(id)) continue;
    seen.add(id);
    const n: UpstreamNode = { host: d.host, port: d.port, weight: d.weight };
    if (d.metadata !== undefined) n.metadata = d.metadata;
    out.push(n);
  }
  return out;
}

/**
 * A node list in a canonical form: one entry per address (the first wins), sorted by address, so two
 * answers with the same nodes compare equal whatever order the source gave them in.
 */
export function canonicalNodes(nodes: readonly DiscoveredNode[]): DiscoveredNode[] {
  const byId = new Map<string, DiscoveredNode>();
  for (const n of nodes) {
    const id = nodeId(n.host, n.port);
    if (!byId.has(id)) byId.set(id, n);
  }
  return [...byId.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, n]) => n);
}

/** Whether two canonical node lists are the same (addresses, weights and metadata). */
export function sameNodes(a: readonly DiscoveredNode[], b: readonly DiscoveredNode[]): boolean {
  if (a.length !== b.length) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The parts of a config that carry upstreams (a DeclarativeConfig fits). */
export interface UpstreamsOfConfig {
  upstreams: ReadonlyArray<UpstreamDiscoveryView>;
  services: ReadonlyArray<{ upstreamId?: string | undefined; upstream?: UpstreamDiscoveryView | undefined }>;
  routes: ReadonlyArray<{ enabled?: boolean | undefined; upstreamId?: string | undefined; upstream?: UpstreamDiscoveryView | undefined }>;
}

/** Every discovery spec a config's upstreams use (named, and inline in services and enabled routes), by key. */
export function discoverySpecs(cfg: UpstreamsOfConfig): Map<string, DiscoverySpec> {
  const out = new Map<string, DiscoverySpec>();
  const add = (body: UpstreamDiscoveryView | undefined) => {
    const spec = body ? discoverySpecOf(body) : null;
    if (spec) out.set(specKey(spec), spec);
  };
  for (const u of cfg.upstreams) add(u);
  for (const s of cfg.services) if (!s.upstreamId) add(s.upstream);
  for (const r of cfg.routes) if (r.enabled !== false && !r.upstreamId) add(r.upstream);
  return out;
}
