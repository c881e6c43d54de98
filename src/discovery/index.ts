/**
 * @module discovery
 * The discovery backends by source type, and the discovery settings a gateway runs with. A backend is made on
 * first use (a source no upstream names needs no settings), once per process, and shared by every watch of
 * its type.
 */
import type { DiscoverySettings, Settings } from '../config/settings.js';
import { createConsulBackend, createConsulKvBackend } from './consul/index.js';
import { createDnsBackend } from './dns.js';
import { createEtcdBackend } from './etcd.js';
import type { DiscoveryBackend, DiscoveryLogger, DiscoveryType } from './types.js';

/** Makes a backend from the discovery settings; throws an Error saying what is missing when they do not suffice. */
export type DiscoveryBackendFactory = (settings: DiscoverySettings, log: DiscoveryLogger) => DiscoveryBackend;

export const BACKEND_FACTORIES: Readonly<Record<DiscoveryType, DiscoveryBackendFactory>> = {
  dns: createDnsBackend,
  etcd: createEtcdBackend,
  consul: createConsulBackend,
  'consul-kv': createConsulKvBackend,
};

/**
 * The discovery section as the backends use it: etcd without endpoints of its own reads the etcd that the
 * gateway's config comes from (configProvider type etcd), with its user, password and TLS.
 */
export function resolveDiscoverySettings(settings: Pick<Settings, 'discovery' | 'configProvider'>): DiscoverySettings {
  const d = settings.discovery;
  const cp = settings.configProvider;
  if (d.etcd.endpoints?.length || cp.type !== 'etcd' || !cp.endpoints?.length) return d;
  const etcd = { ...d.etcd, endpoints: cp.endpoints, timeout: cp.timeout };
  if (d.etcd.username === undefined && cp.username !== undefined) etcd.username = cp.username;
  if (d.etcd.password === undefined && cp.password !== undefined) etcd.password = cp.password;
  if (d.etcd.tls === undefined && cp.tls !== undefined) etcd.tls = cp.tls;
  return { ...d, etcd };
}

/** The backends of one process, each made when a watch first needs it. */
export class DiscoveryBackends {
  readonly #settings: DiscoverySettings;
  readonly #log: DiscoveryLogger;
  readonly #factories: Readonly<Record<DiscoveryType, DiscoveryBackendFactory>>;
  readonly #made = new Map<DiscoveryType, DiscoveryBackend>();

  constructor(settings: DiscoverySettings, log: DiscoveryLogger, factories: Readonly<Record<DiscoveryType, DiscoveryBackendFactory>> = BACKEND_FACTORIES) {
    this.#settings = settings;
    this.#log = log;
    this.#factories = factories;
  }

  get settings(): DiscoverySettings {
    return this.#settings;
  }

  /** The backend for a type; throws (each time, with the factory's message) when it cannot be made. */
  get(type: DiscoveryType): DiscoveryBackend {
    let b = this.#made.get(type);
    if (!b) {
      const factory = this.#factories[type];
      if (!factory) throw new Error(`unknown discovery type "${type}"`);
      b = factory(this.#settings, this.#log);
      this.#made.set(type, b);
    }
    return b;
  }

  async close(): Promise<void> {
    const all = [...this.#made.values()];
    this.#made.clear();
    await Promise.allSettled(all.map((b) => b.close()));
  }
}

export type { DiscoveredNode, DiscoveryBackend, DiscoveryHandlers, DiscoveryLogger, DiscoverySpec, DiscoveryType, DiscoveryWatch } from './types.js';
