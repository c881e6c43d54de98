/**
 * @module dataplane/plugins/types
 * The plugin contract: one definition object per plugin (name, version, priority, schema, phase hooks).
 * A plugin's options are worked out once in `create` when config loads; the hooks it returns run per request.
 */
import type { TSchema } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { Consumer } from '../../model/consumer.js';
import type { RequestContext } from '../proxy.js';
import type { NodeState } from '../upstream/types.js';
import type { UpstreamRuntime } from '../upstream/upstream.js';
import type { SharedLimits } from '../limits/types.js';
import type { Metrics } from '../../status/metrics.js';
import type { RedisConnectionOptions, RedisHandle } from '../limits/redis-clients.js';

/** Where a plugin may be configured. */
export type PluginScope = 'global' | 'service' | 'route' | 'consumer';

/** A response a phase returns to end the chain; the framework writes it (plugins never touch the socket). */
export interface PluginResponse {
  status: number;
  /** A string or Buffer is sent as is; an object is sent as JSON. */
  body?: string | Buffer | Record<string, unknown>;
  headers?: Record<string, string>;
}

/** What a request phase returns: nothing to go on, or a response to end the chain. May be async. */
export type PhaseResult = void | PluginResponse | Promise<void | PluginResponse>;

/** The outcome of one auth plugin: the consumer it identified, or why not. */
export type AuthResult =
  | { consumer: Consumer }
  /** No credential of this plugin's kind on the request: another auth plugin may still succeed. */
  | { missing: true }
  /** A credential was presented and is wrong. */
  | { invalid: true };

/** The response head as the response phases see it: they may change the status and headers. */
export interface ResponseHead {
  status: number;
  /** Flat [name, value, ...] list as it will be written. */
  headers: string[];
}

/** Per-request data for plugins, on top of the proxy's request context. */
export interface PluginContext extends RequestContext {
  /** The authenticated consumer, once an auth plugin has identified one. */
  consumer: Consumer | null;
  /** Route id, for plugins that key state by route. */
  routeId: string;
  /** Named path parameters of the matched route. */
  params: Record<string, string> | null;
  /** Headers to set on the upstream request (replacing any client value), by lower-case name. */
  setUpstreamHeader(name: string, value: string): void;
  /**
   * Before upstream (or earlier): send the request to another named upstream of the config (traffic splits,
   * canaries). Returns false when no upstream has that id. The route's own timeouts, if it has any, still apply.
   */
  useUpstream(id: string): boolean;
  /**
   * A header list ([name, value, ...]) with the plugins' upstream header edits applied: what the upstream will
   * get. For plugins that send requests of their own (proxy-mirror), so credentials an auth plugin hid stay hidden.
   */
  editUpstreamHeaders(list: string[]): string[];
  /** Headers to drop from the upstream request. */
  removeUpstreamHeader(name: string): void;
  /** A header value to append to the upstream request, keeping the client's (and set) values of that name. */
  addUpstreamHeader(name: string, value: string): void;
  /** Headers to add to the response the client gets (set after the response phases run). */
  setResponseHeader(name: string, value: string): void;
  /** Scratch space for plugins to pass data between their phases: key by plugin name. */
  vars: Record<string, unknown>;
  /** The request body, read before the access phase when a plugin of the route set needsBody; else null. */
  bufferedBody: Buffer | null;
  /** Path and query, which rewrite plugins may change (the path stays canonical: set it with care). */
  path: string;
  query: string;
  /** The service the route belongs to, or null. */
  readonly serviceId: string | null;
  /** The client address (X-Forwarded-For / X-Real-IP honoured only from trusted proxies). */
  readonly clientIp: string;
  /** Date.now() when the request arrived (the `start` field is performance.now()). */
  readonly startedAt: number;
  /** performance.now() when the response ended or the client left; 0 before (set for the log phase). */
  endedAt: number;
  /** Response body bytes written to the client. */
  bytesSent: number;
  /** Request body bytes received from the client (counted as they stream, or the buffered body's length). */
  bytesReceived: number;
  /** The upstream the request goes to (the route's, or one a plugin picked with useUpstream). */
  readonly upstream: UpstreamRuntime;
  /** Keep this request off a node (a circuit breaker's open node): the balancer skips it, retries too. */
  avoidNode(node: NodeState): void;
  /** performance.now() when the last upstream attempt was sent; 0 when none was. */
  upstreamSentAt: number;
  /** Where plugin failures in response phases are reported, or null. */
  onPluginError: ((f: import('./chain.js').PluginFailure) => void) | null;
}

/** The hooks one configured plugin contributes to a route's chain. */
export interface PluginInstance {
  /** Runs first, in priority order: rewrite the request. */
  rewrite?(ctx: PluginContext): PhaseResult;
  /** Auth plugins: identify the consumer. Auth plugins of a route run as a group; any success authenticates. */
  authenticate?(ctx: PluginContext): AuthResult | Promise<AuthResult>;
  /** Auth plugins: the WWW-Authenticate value sent when no credential was presented (basic-auth: 'Basic realm="..."'). */
  challenge?: string;
  /** After authentication, in priority order: allow, deny, limit. */
  access?(ctx: PluginContext): PhaseResult;
  /** Just before the request goes upstream. */
  beforeUpstream?(ctx: PluginContext): PhaseResult;
  /** Response phase (reverse priority order): change the status and headers before they are written. */
  responseHeaders?(ctx: PluginContext, head: ResponseHead): void;
  /**
   * Response phase (reverse priority order), for proxied responses on routes where a plugin has it: change the
   * body as it streams. Called per chunk with `last` false, then once with an empty chunk and `last` true.
   * Returns the bytes to send now (an empty Buffer or null to hold them back; a plugin that needs the whole
   * body keeps the chunks and returns them at `last`). The response then goes out without Content-Length.
   */
  responseBody?(ctx: PluginContext, chunk: Buffer, last: boolean): Buffer | null;
  /**
   * Response phase (reverse priority order), for proxied responses: see the body bytes as they go to the client,
   * read-only (a cache storing a copy). Unlike responseBody it keeps the response's framing (Content-Length).
   * Called per chunk with `last` false, then once with an empty chunk and `last` true when the body is complete;
   * never called with `last` true when the response fails or the client leaves. Chunks are not reused after the
   * call, so keeping a reference is safe. Errors are contained.
   */
  responseTap?(ctx: PluginContext, chunk: Buffer, last: boolean): void;
  /** After the response, never delaying it (reverse priority order). Must not throw; errors are logged. */
  log?(ctx: PluginContext): void;
  /** The plugin reads the request body (ctx.bufferedBody): the gateway reads it, within the route's limit, before access. */
  needsBody?: boolean;
}

/** What the process running the gateway shares with plugins. */
export interface PluginServices {
  /**
   * Counters, leaky buckets and concurrency slots shared by every worker of this gateway (`policy: local` of the
   * limit plugins). In a multi-worker gateway they live in the primary process; in one process, in memory.
   */
  limits: SharedLimits;
  /** A Redis client for these connection options, shared by every plugin instance that names the same server. */
  redis(options: RedisConnectionOptions): RedisHandle;
  /** This process's metrics (dumped to the primary and merged across workers for /metrics). */
  metrics: Metrics;
}

/** What `create` gets besides the plugin's own config. */
export interface PluginEnv {
  logger: Logger;
  /** For auth plugins: the credentials of every consumer for this plugin, compiled by `indexCredentials`. */
  credentials: unknown;
  /** Where the config sits ("routes[3].plugins.key-auth"), for messages. */
  path: string;
  /**
   * Stable id of the object the config was written on: "route:<id>", "service:<id>", "consumer:<username>" or
   * "global". Unlike `path` it does not change when other objects are added or reordered: key state by it.
   */
  scope: string;
  /**
   * State that outlives config reloads (a cache, a breaker's counts, a log queue): the value stored under `key`
   * for this plugin, made by `create` the first time. A value no config load asks for in two loads in a row is
   * dropped (its `close()` is called when it has one). A value with a `metrics()` method (see PluginCounter) has
   * its counters exported on /metrics as gatehouse_plugin_events_total, read only when metrics are collected.
   */
  state<T>(key: string, create: () => T): T;
  services: PluginServices;
}

/**
 * One counter a plugin's state reports (cache hits, log records dropped...): only ever increasing, summed
 * across workers. `labels` tell series of one plugin apart (a scope, a collector's origin); keep them few.
 */
export interface PluginCounter {
  event: string;
  value: number;
  labels?: Record<string, string>;
}

/** What a plugin's control action gets (see PluginDefinition.control). */
export interface PluginControlEnv {
  /** The plugin's state stored under `key`, if any config load made it. */
  state<T>(key: string): T | undefined;
  /** Every key of the plugin's state. */
  stateKeys(): string[];
}

export interface PluginDefinition<Config = Record<string, unknown>, Credential = Record<string, unknown>, Index = unknown> {
  /** kebab-case, unique. */
  name: string;
  /** semver of the plugin's behaviour and schema. */
  version: string;
  /** Unique; request phases run from the highest to the lowest. See src/plugins/priorities.ts. */
  priority: number;
  /** One sentence: what it does. */
  description: string;
  /** JSON Schema of the config, with a description on every field. */
  schema: TSchema;
  /** Where it may be configured (default: global, service, route, consumer). */
  scopes?: PluginScope[];
  /** Auth plugins: the schema of a consumer credential (`consumers[].credentials.<name>`). */
  credentialSchema?: TSchema;
  /** Auth plugins: the credential value that must be unique across consumers (a key, a user name). */
  credentialKey?(credential: Credential): string;
  /** Auth plugins: compile all consumers' credentials once per config into a lookup structure. */
  indexCredentials?(entries: Array<{ consumer: Consumer; credential: Credential; path: string }>): Index;
  /** Extra checks beyond the schema; returns problems as [relative path, message]. */
  check?(config: Config): Array<[string, string]>;
  /**
   * The upstream ids a (schema-valid) config names, as [relative path, id]. `check` sees only the plugin's own
   * config, so validation looks these up among the config's upstreams and refuses the ids that are not there.
   */
  upstreamReferences?(config: Config): Array<[string, string]>;
  /** Extra checks of one credential beyond its schema. */
  checkCredential?(credential: Credential): Array<[string, string]>;
  /** Work out the options once when config loads; returns the hooks. */
  create(config: Config, env: PluginEnv): PluginInstance;
  /**
   * Operator actions served on the status port (`POST /plugins/<name>/<action>` with a JSON body): run in every
   * worker, each answering with JSON-able data (proxy-cache's purge). Throw a ControlError for a bad request.
   */
  control?: Record<string, (args: Record<string, unknown>, env: PluginControlEnv) => unknown>;
}

/** A control action refused the request: answered with 400 and this message (which must not hold secrets). */
export class ControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

/** Identity function that types a plugin definition; the registry checks it is complete. */
export function definePlugin<Config = Record<string, unknown>, Credential = Record<string, unknown>, Index = unknown>(
  def: PluginDefinition<Config, Credential, Index>,
): PluginDefinition<Config, Credential, Index> {
  return def;
}
