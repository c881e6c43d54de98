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

export interface InProcessGateway {
  gateway: Gateway;
  health: HealthChecker;
  settings: Settings;
  /** Bound ports. */
  http: number;
  https: number | null;
  /** Validate and apply a config (throws with field-path problems when invalid). */
  apply(config: unknown): void;
  close(): Promise<void>;
}

export interface InProcessOptions {
  /** Settings overrides by dotted path; ports default to 0 (any free port) and HTTPS to off. */
  settings?: Record<string, unknown>;
  config: unknown;
  logger?: Logger;
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
  let revision = 0;
  const apply = (raw: unknown) => {
    const result = validateDeclarative(raw, plugins);
    if (!result.ok) throw new Error(`invalid config:\n${formatProblems(result.problems)}`);
    const cfg: DeclarativeConfig = result.value;
    gateway.applyConfig(cfg, ++revision);
    // The checker works on the gateway's own node objects, so its verdicts apply directly.
    health.configure(
      healthTargets(cfg, (key) => [...(gateway.nodes.get(key)?.values() ?? [])]),
    );
  };
  apply(opts.config);
  const ports = await gateway.listen();
  return {
    gateway,
    health,
    settings,
    http: ports.http,
    https: ports.https,
    apply,
    close: async () => {
      health.close();
      await gateway.drain(1000);
    },
  };
}
