/**
 * @module discovery/types
 * Service discovery: an upstream names a source (`discovery: {type, service, ...}`) and a backend follows that
 * service, reporting its whole node list each time it changes. One DiscoveryManager per gateway (in the primary
 * process) owns the backends and the watches, keeps the last known nodes when a source fails, and hands node
 * lists to every worker.
 */

/** One node as a backend found it. metadata carries what the source knows (zone, version, tags, env...). */
export interface DiscoveredNode {
  host: string;
  port: number;
  /** Relative share of traffic (0 takes the node out of rotation). */
  weight: number;
  metadata?: Record<string, unknown>;
}

export type DiscoveryType = 'dns' | 'etcd' | 'consul' | 'consul-kv';

/** What an upstream's `discovery` field says (the model's UpstreamDiscovery schema has the same shape). */
export interface DiscoverySpec {
  type: DiscoveryType;
  /**
   * The service: a DNS name (dns), the service name under the registry prefix (etcd), the Consul service name
   * (consul), or the directory under the KV prefix (consul-kv).
   */
  service: string;
  /** The named cluster from the gateway settings (consul, consul-kv); the backend's default when absent. */
  cluster?: string;
  /** consul: only instances carrying every one of these tags. */
  tags?: string[];
  /** dns: the port for A/AAAA answers (SRV answers carry their own); default from the upstream scheme. */
  port?: number;
  /**
   * The manager's, not the backend's: milliseconds an empty answer must last before the last known nodes are
   * dropped (default: the settings' discovery.emptyGracePeriod). Backends ignore it.
   */
  emptyGracePeriod?: number;
}

/** What a watch reports to whoever started it. */
export interface DiscoveryHandlers {
  /**
   * The complete current node list (also the first time). May be empty: the manager applies the grace period.
   * After an onError, the next successful read calls it again even when the list did not change: that is how
   * the manager learns the source is back.
   */
  onNodes(nodes: DiscoveredNode[]): void;
  /** The source could not be read (unreachable, refused, malformed answer); the watch keeps retrying by itself. */
  onError(err: Error): void;
}

export interface DiscoveryWatch {
  /** Stop following: no handler is called after this returns. */
  close(): void;
}

export interface DiscoveryBackend {
  readonly type: DiscoveryType;
  /**
   * Follow one service until the watch is closed. The backend retries on its own with backoff after errors;
   * it reports every change of the node list with onNodes and every failed attempt with onError. A problem
   * with the spec itself (unknown cluster, say) throws here.
   */
  watch(spec: DiscoverySpec, handlers: DiscoveryHandlers): DiscoveryWatch;
  /** Close every watch and connection. */
  close(): Promise<void>;
}

/** Logger subset the backends use (pino-compatible). */
export interface DiscoveryLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}
