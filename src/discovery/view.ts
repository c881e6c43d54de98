/**
 * @module discovery/view
 * The nodes an upstream runs with, as an operator sees them: its static nodes and the discovered ones, each
 * marked with where it came from. A gateway answers from its own manager; a process that does not watch the
 * upstream's source (a control plane without gateway workers, or a draft not yet in service) asks the source
 * once with a short-lived manager.
 */
import type { DiscoverySettings } from '../config/settings.js';
import type { DiscoveryBackends } from './index.js';
import { DiscoveryManager, type DiscoveryState } from './manager.js';
import { discoverySpecOf, mergeNodes, specKey, type UpstreamDiscoveryView } from './spec.js';
import type { DiscoveryLogger, DiscoveryType } from './types.js';

export interface UpstreamNodeView {
  host: string;
  port: number;
  weight: number;
  metadata?: Record<string, unknown>;
  /** static: listed in the upstream's nodes; otherwise the discovery type that found it. */
  source: 'static' | DiscoveryType;
}

export interface UpstreamNodesView {
  nodes: UpstreamNodeView[];
  /** The discovery watch behind the discovered nodes; null when the upstream has no discovery field. */
  discovery: DiscoveryState | null;
}

export interface UpstreamNodesOptions {
  /** The process's manager, when it runs one: its nodes are what its gateway serves with. */
  manager?: DiscoveryManager | null;
  /** Settings for a one-off lookup when no manager watches the source (default: the manager's). */
  settings?: DiscoverySettings;
  log: DiscoveryLogger;
  /** Milliseconds a one-off lookup may take (default 3000). */
  timeoutMs?: number;
  /** Backends for the one-off lookup (default: made from the settings, closed afterwards). */
  backends?: DiscoveryBackends;
}

/**
 * The nodes of one upstream (its content: a validated body or stored content) with their source. The
 * `discovery` part says whether the source answered (up), with its last error while it does not.
 */
export async function upstreamNodes(content: UpstreamDiscoveryView, opts: UpstreamNodesOptions): Promise<UpstreamNodesView> {
  const staticNodes = (content.nodes ?? []).map((n) => {
    const v: UpstreamNodeView = { host: n.host, port: n.port, weight: n.weight ?? 1, source: 'static' };
    if (n.metadata !== undefined) v.metadata = n.metadata;
    return v;
  });
  const spec = discoverySpecOf(content);
  if (!spec) return { nodes: staticNodes, discovery: null };
  const key = specKey(spec);
  let state = opts.manager?.state(key);
  if (!state || state.nodes === null) {
    const settings = opts.settings ?? opts.manager?.settings;
    if (settings) {
      const once = new DiscoveryManager({ settings: { ...settings, startWait: opts.timeoutMs ?? 3000 }, log: opts.log, ...(opts.backends ? { backends: opts.backends } : {}) });
      try {
        await once.ensure(new Map([[key, spec]]));
        state = once.state(key);
      } finally {
        // Backends passed in belong to the caller.
        if (opts.backends) once.retainKeys(new Set());
        else await once.close();
      }
    }
  }
  const discovered = state?.nodes ?? [];
  const merged = mergeNodes(content.nodes ?? [], discovered);
  const nodes: UpstreamNodeView[] = [...staticNodes];
  for (const n of merged.slice(staticNodes.length)) {
    const v: UpstreamNodeView = { host: n.host, port: n.port, weight: n.weight ?? 1, source: spec.type };
    if (n.metadata !== undefined) v.metadata = n.metadata;
    nodes.push(v);
  }
  return { nodes, discovery: state ?? { key, spec, nodes: null, up: null, errors: 0 } };
}
