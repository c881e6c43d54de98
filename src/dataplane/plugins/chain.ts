/**
 * @module dataplane/plugins/chain
 * A route's plugin chain: compiled once when config loads (merged global < service < route, consumer plugins
 * on top once the consumer is known), then run per request. Request phases run in priority order, response
 * phases in reverse. A route with no plugins has no chain at all.
 */
import type { Logger } from 'pino';
import type { Consumer } from '../../model/consumer.js';
import type { PluginRegistry } from './registry.js';
import type { PluginStateStore } from './state.js';
import type { AuthResult, PluginContext, PluginInstance, PluginResponse, PluginServices, ResponseHead } from './types.js';

/** One configured plugin: where its config came from and the hooks it made. */
export interface ChainEntry {
  name: string;
  priority: number;
  /** Config path, for messages ("routes[2].plugins.key-auth"). */
  path: string;
  instance: PluginInstance;
}

/** A plugin config with the path it was written at. */
export interface PluginConfigAt {
  name: string;
  config: Record<string, unknown>;
  path: string;
  /** Stable id of the object it was written on ("route:r1", "service:s1", "consumer:alice", "global"). */
  scope: string;
}

/** A plugin threw or rejected: the request ends with 500 and is never proxied. */
export class PluginFailure extends Error {
  constructor(
    readonly plugin: string,
    readonly phase: string,
    readonly original: unknown,
  ) {
    super(`plugin ${plugin} failed in ${phase}`);
    this.name = 'PluginFailure';
  }
}

/** Why a request was refused by the auth group (the gateway maps these to its error table). */
export type AuthOutcome = 'missing' | 'invalid' | 'too-large';

export interface ChainBuildEnv {
  registry: PluginRegistry;
  logger: Logger;
  /** Credential indexes of the auth plugins, by plugin name, built once per config. */
  credentials: Map<string, unknown>;
  /** "consumers[3]" by username, for the config paths of consumer plugins. */
  consumerPaths: ReadonlyMap<string, string>;
  /** State kept across reloads, and what the process shares with plugins. */
  state: PluginStateStore;
  services: PluginServices;
}

function has<K extends keyof PluginInstance>(e: ChainEntry, k: K): boolean {
  return typeof e.instance[k] === 'function';
}

export class Chain {
  readonly entries: ChainEntry[];
  readonly rewrite: ChainEntry[];
  readonly auth: ChainEntry[];
  readonly access: ChainEntry[];
  readonly beforeUpstream: ChainEntry[];
  /** Reverse priority order. */
  readonly responseHeaders: ChainEntry[];
  /** Reverse priority order. */
  readonly responseBody: ChainEntry[];
  /** Reverse priority order. */
  readonly responseTap: ChainEntry[];
  /** Reverse priority order. */
  readonly log: ChainEntry[];
  /** Challenges (WWW-Authenticate values) of the auth plugins that have one. */
  readonly challenges: string[];
  /** Some plugin reads the request body: it is read before the access phase. */
  readonly needsBody: boolean;
  private readonly byConsumer = new Map<string, Chain>();

  constructor(
    entries: ChainEntry[],
    private readonly env: ChainBuildEnv,
  ) {
    this.entries = [...entries].sort((a, b) => b.priority - a.priority);
    this.rewrite = this.entries.filter((e) => has(e, 'rewrite'));
    this.auth = this.entries.filter((e) => has(e, 'authenticate'));
    this.access = this.entries.filter((e) => has(e, 'access'));
    this.beforeUpstream = this.entries.filter((e) => has(e, 'beforeUpstream'));
    this.responseHeaders = this.entries.filter((e) => has(e, 'responseHeaders')).reverse();
    this.responseBody = this.entries.filter((e) => has(e, 'responseBody')).reverse();
    this.responseTap = this.entries.filter((e) => has(e, 'responseTap')).reverse();
    this.log = this.entries.filter((e) => has(e, 'log')).reverse();
    this.challenges = this.auth.map((e) => e.instance.challenge).filter((c): c is string => typeof c === 'string');
    this.needsBody = this.entries.some((e) => e.instance.needsBody === true);
  }

  /**
   * The chain once `consumer` is known: its own plugin configs replace the route's of the same name and add
   * the others. Built on first use and kept, so it is compiled once per route and consumer.
   */
  forConsumer(consumer: Consumer): Chain {
    if (!consumer.plugins || Object.keys(consumer.plugins).length === 0) return this;
    let chain = this.byConsumer.get(consumer.username);
    if (!chain) {
      const overridden = new Set(Object.keys(consumer.plugins));
      const kept = this.entries.filter((e) => !overridden.has(e.name));
      const added = Object.entries(consumer.plugins).map(([name, config]) =>
        createEntry(
          { name, config: config as Record<string, unknown>, path: `${this.env.consumerPaths.get(consumer.username) ?? 'consumers'}.plugins.${name}`, scope: `consumer:${consumer.username}` },
          this.env,
        ),
      );
      chain = new Chain([...kept, ...added], this.env);
      this.byConsumer.set(consumer.username, chain);
    }
    return chain;
  }
}

function createEntry(at: PluginConfigAt, env: ChainBuildEnv): ChainEntry {
  const def = env.registry.get(at.name);
  if (!def) throw new Error(`${at.path}: unknown plugin "${at.name}"`);
  const instance = def.create(at.config, {
    logger: env.logger.child({ plugin: at.name }),
    credentials: env.credentials.get(at.name),
    path: at.path,
    scope: at.scope,
    state: (key, create) => env.state.get(at.name, key, create),
    services: env.services,
  });
  return { name: at.name, priority: def.priority, path: at.path, instance };
}

/** Compile a route's chain, or null when it has no plugins (the request path then skips plugins entirely). */
export function compileChain(configs: PluginConfigAt[], env: ChainBuildEnv): Chain | null {
  if (configs.length === 0) return null;
  return new Chain(configs.map((c) => createEntry(c, env)), env);
}

function isThenable<T>(v: unknown): v is PromiseLike<T> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

export type ChainVerdict = { respond: PluginResponse } | { refuse: AuthOutcome; challenges: string[] } | { proceed: Chain };

const REWRITE = 0;
const AUTH = 1;
const BODY = 2;
const ACCESS = 3;
const BEFORE_UPSTREAM = 4;

/** Where a run of the request phases stands; it resumes there after a hook's promise settles. */
interface RunState {
  phase: number;
  i: number;
  active: Chain;
  invalid: boolean;
  readBody: (() => Promise<boolean>) | null;
}

/**
 * Runs the request phases: rewrite, the auth group, access, before-upstream. Returns a response to send, an
 * auth refusal, or the chain to use for the response phases (the consumer's, once known). Throws or rejects
 * with PluginFailure when a plugin throws: the caller answers 500 and never proxies.
 *
 * HOT PATH: it stays synchronous while the hooks are (no promise, no microtask turn per hook) and only becomes
 * asynchronous from the first hook that returns a promise, resuming where it stood.
 */
export function runRequestPhases(
  ctx: PluginContext,
  chain: Chain,
  /** Reads the body into ctx.bufferedBody; false when it is over the route's limit. Null when there is none. */
  readBody: (() => Promise<boolean>) | null,
): ChainVerdict | Promise<ChainVerdict> {
  return resume(ctx, { phase: REWRITE, i: 0, active: chain, invalid: false, readBody });
}

function resume(ctx: PluginContext, s: RunState): ChainVerdict | Promise<ChainVerdict> {
  for (;;) {
    let entry: ChainEntry;
    let phase: string;
    let result: unknown;
    switch (s.phase) {
      case REWRITE:
        if (s.i >= s.active.rewrite.length) {
          s.phase = AUTH;
          s.i = 0;
          continue;
        }
        entry = s.active.rewrite[s.i++]!;
        phase = 'rewrite';
        break;
      case AUTH:
        // Any one auth plugin that identifies a consumer authenticates the request (docs/plugins/README.md).
        if (ctx.consumer === null && s.i < s.active.auth.length) {
          entry = s.active.auth[s.i++]!;
          phase = 'authenticate';
          break;
        }
        if (s.active.auth.length > 0) {
          if (ctx.consumer === null) return { refuse: s.invalid ? 'invalid' : 'missing', challenges: s.active.challenges };
          ctx.setUpstreamHeader('x-consumer-username', ctx.consumer.username);
          s.active = s.active.forConsumer(ctx.consumer);
        }
        s.phase = BODY;
        s.i = 0;
        continue;
      case BODY: {
        s.phase = ACCESS;
        // Bodies are read only for authenticated requests, and only when a plugin needs them.
        if (s.readBody !== null && s.active.needsBody) {
          return s.readBody().then((ok) => (ok ? resume(ctx, s) : { refuse: 'too-large' as const, challenges: [] }));
        }
        continue;
      }
      case ACCESS:
        if (s.i >= s.active.access.length) {
          s.phase = BEFORE_UPSTREAM;
          s.i = 0;
          continue;
        }
        entry = s.active.access[s.i++]!;
        phase = 'access';
        break;
      case BEFORE_UPSTREAM:
        if (s.i >= s.active.beforeUpstream.length) return { proceed: s.active };
        entry = s.active.beforeUpstream[s.i++]!;
        phase = 'beforeUpstream';
        break;
      default:
        return { proceed: s.active };
    }
    try {
      result = invoke(entry, s.phase, ctx);
    } catch (err) {
      throw new PluginFailure(entry.name, phase, err);
    }
    if (isThenable(result)) {
      const e = entry;
      const ph = phase;
      return Promise.resolve(result).then(
        (value) => {
          const verdict = settle(ctx, s, value);
          return verdict ?? resume(ctx, s);
        },
        (err: unknown) => {
          throw new PluginFailure(e.name, ph, err);
        },
      );
    }
    const verdict = settle(ctx, s, result);
    if (verdict !== null) return verdict;
  }
}

function invoke(e: ChainEntry, phase: number, ctx: PluginContext): unknown {
  const inst = e.instance;
  switch (phase) {
    case REWRITE:
      return inst.rewrite!(ctx);
    case AUTH:
      return inst.authenticate!(ctx);
    case ACCESS:
      return inst.access!(ctx);
    default:
      return inst.beforeUpstream!(ctx);
  }
}

/** Apply one hook's outcome; a verdict ends the run. */
function settle(ctx: PluginContext, s: RunState, value: unknown): ChainVerdict | null {
  if (s.phase === AUTH) {
    const r = value as AuthResult;
    if ('consumer' in r) ctx.consumer = r.consumer;
    else if ('invalid' in r) s.invalid = true;
    return null;
  }
  return value ? { respond: value as PluginResponse } : null;
}

/** Runs one hook of each entry; a throw is reported and the next entry still runs (response-side phases). */
function runContained(entries: ChainEntry[], phase: string, run: (i: PluginInstance) => void, onError: (f: PluginFailure) => void): void {
  for (const e of entries) {
    try {
      run(e.instance);
    } catch (err) {
      onError(new PluginFailure(e.name, phase, err));
    }
  }
}

/** Response phase: plugins may change status and headers (reverse priority order). Errors are contained. */
export function runResponseHeaders(ctx: PluginContext, chain: Chain, head: ResponseHead, onError: (f: PluginFailure) => void): void {
  runContained(chain.responseHeaders, 'responseHeaders', (i) => i.responseHeaders!(ctx, head), onError);
}

const EMPTY = Buffer.alloc(0);

/** Response body phase: one chunk through every filter (reverse priority order). Throws PluginFailure. */
export function runResponseBody(ctx: PluginContext, chain: Chain, chunk: Buffer, last: boolean): Buffer {
  let data = chunk;
  for (let i = 0; i < chain.responseBody.length; i++) {
    const e = chain.responseBody[i]!;
    // After a filter has emitted its last bytes, the next ones still get them as a chunk, then their own `last`.
    try {
      const out = e.instance.responseBody!(ctx, data, false);
      data = out ?? EMPTY;
      if (last) {
        const tail = e.instance.responseBody!(ctx, EMPTY, true);
        if (tail !== null && tail.length > 0) data = data.length > 0 ? Buffer.concat([data, tail]) : tail;
      }
    } catch (err) {
      throw new PluginFailure(e.name, 'responseBody', err);
    }
  }
  return data;
}

/** Response tap: the body bytes as they are sent, read-only (reverse priority order). Errors are contained. */
export function runResponseTap(ctx: PluginContext, chain: Chain, chunk: Buffer, last: boolean): void {
  runContained(chain.responseTap, 'responseTap', (i) => i.responseTap!(ctx, chunk, last), ctx.onPluginError ?? (() => {}));
}

/** Log phase, after the response: never delays it, never throws. */
export function runLog(ctx: PluginContext, chain: Chain, onError: (f: PluginFailure) => void): void {
  runContained(chain.log, 'log', (i) => i.log!(ctx), onError);
}
