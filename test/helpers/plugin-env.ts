/**
 * @module test/helpers/plugin-env
 * A complete PluginEnv for tests that call a plugin's `create` directly: real state store and in-memory limits,
 * silent logger unless one is given.
 */
import { pino } from 'pino';
import { PluginStateStore } from '../../src/dataplane/plugins/state.js';
import type { PluginEnv } from '../../src/dataplane/plugins/types.js';
import { LocalLimits } from '../../src/dataplane/limits/local.js';
import { RedisClients } from '../../src/dataplane/limits/redis-clients.js';
import { Metrics } from '../../src/status/metrics.js';

export function pluginEnv(over: Partial<PluginEnv> & { plugin?: string; store?: PluginStateStore } = {}): PluginEnv {
  const logger = over.logger ?? pino({ level: 'silent' });
  const store = over.store ?? new PluginStateStore();
  const plugin = over.plugin ?? 'test';
  const redis = new RedisClients(logger);
  return {
    logger,
    credentials: over.credentials,
    path: over.path ?? 'test',
    scope: over.scope ?? 'route:test',
    state: over.state ?? ((key, create) => store.get(plugin, key, create)),
    services: over.services ?? { limits: new LocalLimits(), redis: (o) => redis.get(o), metrics: new Metrics() },
  };
}
