/**
 * @module process/in-process
 * A gateway in the current process, with its own health checker: for embedding and for tests that need
 * the real request path without node:cluster.
 */
import type { Logger } from 'pino';
import { loadSettings, type Settings } from '../config/settings.js';
import { createLogger } from '../core/logger.js';
import { Gateway } from '../dataplane/gateway.js';
import { healthTargets } from '../dataplane/snapshot.js';
import { HealthChecker } from '../dataplane/upstream/health.js';
import type { DeclarativeConfig } from '../model/declarative.js';
import { validateDeclarative } from '../model/validate.js';
import { formatProblems } from '../config/declarative-file.js';
import { loadPlugins } from '../plugins/load.js';
import type { Server } from 'node:http';
import { startStatusServer } from '../status/server.js';
import { renderPrometheus } from '../status/metrics.js';
import { DiscoveryManager } from '../discovery/manager.js';
import { resolveDiscoverySettings } from '../discovery/index.js';

export interface InProcessGateway {
  gateway: Gateway;
  health: HealthChecker;
  /** Follows the discovery sources the config's upstreams name; their nodes reach the gateway as they change. */
  discovery: DiscoveryManager;
  settings: Settings;
  /** Bound ports (status: when the options asked for a status server). */
  http: number;
  https: number | null;
  status: number | null;
  /**
   * Validate and apply a config (throws with field-path problems when invalid). Discovered upstreams get the
   * nodes already known for their source at once; a source not watched before joins as it answers.
   */
  apply(config: unknown): void;
  close(): Promise<void>;
}

export interface InProcessOptions {
  /** Settings overrides by dotted path; ports default to 0 (any free port) and HTTPS to off. */
  settings?: Record<string, unknown>;
  config: unknown;
  logger?: Logger;
  /** Also serve the status port (metrics, health, plugin control actions) on a free loopback port. */
  statusServer?: boolean;
}

export async function startInProcessGateway(opts: InProcessOptions): Promise<InProcessGateway> {
  const { settings } = loadSettings({
    env: {},
    overrides: { 'proxy.http': 0, 'proxy.https': -1, 'proxy.host': '127.0.0.1', 'accessLog.enabled': false, ...opts.settings },
  });
  const log = opts.logger ?? createLogger({ level: 'silent' });
  const health = new HealthChecker({ logger: log });
  const plugins = await loadPlugins(settings);
  const gateway = new Gateway({
    settings,
    logger: log,
    plugins,
    health: { report: (upstream, node, ok) => health.reportPassive(upstream, node.key, ok) },
  });
  const discovery = new DiscoveryManager({ settings: resolveDiscoverySettings(settings), log: log.child({ component: 'discovery' }) });
  let revision = 0;
  let current: DeclarativeConfig | null = null;
  // The checker works on the gateway's own node objects, so its verdicts apply directly.
  const configureHealth = () => {
    if (current) health.configure(healthTargets(current, (key) => gateway.current?.upstreams.get(key)?.nodes ?? []));
  };
  discovery.on('nodes', (key, nodes) => {
    if (gateway.setDiscoveredNodes(key, nodes) > 0) configureHealth();
  });
  discovery.on('forget', (key) => gateway.setDiscoveredNodes(key, null));
  const apply = (raw: unknown) => {
    const result = validateDeclarative(raw, plugins);
    if (!result.ok) throw new Error(`invalid config:\n${formatProblems(result.problems)}`);
    const cfg: DeclarativeConfig = result.value;
    // Watches start now; their first answers arrive as 'nodes' events.
    void discovery.prepare(cfg);
    try {
      gateway.applyConfig(cfg, ++revision);
    } catch (e) {
      // The config in service stays, and so do its watches only.
      if (current) discovery.retain(current);
      throw e;
    }
    current = cfg;
    discovery.retain(cfg);
    configureHealth();
  };
  apply(opts.config);
  const ports = await gateway.listen();
  let status: Server | null = null;
  if (opts.statusServer) {
    status = await startStatusServer('127.0.0.1', 0, {
      healthy: () => gateway.ready,
      ready: () => ({ ready: gateway.ready, detail: { revision: gateway.revision } }),
      metrics: async () => renderPrometheus([gateway.metrics.dump()], { health: health.snapshot(), configRevision: gateway.revision, workers: 1, discovery: discovery.metrics() }),
      // The same shape as a multi-worker gateway's answer: one entry per worker.
      control: async (plugin, action, args) => {
        const r = gateway.control(plugin, action, args);
        return r.status === 200 ? { status: 200, body: { workers: [r.body] } } : r;
      },
    });
  }
  return {
    gateway,
    health,
    discovery,
    settings,
    http: ports.http,
    https: ports.https,
    status: status ? (status.address() as { port: number }).port : null,
    apply,
    close: async () => {
      health.close();
      await discovery.close();
      await new Promise<void>((resolve) => (status ? status.close(() => resolve()) : resolve()));
      await gateway.drain(1000);
    },
  };
}
