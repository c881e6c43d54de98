/**
 * @module dataplane/limits/redis-clients
 * Redis connections of one gateway process, shared by every plugin instance that names the same server and
 * kept across config reloads. Commands never wait for a connection: while Redis is unreachable they fail at
 * once (no offline queue) or after the configured timeout, so a plugin can fail open or closed without
 * stalling the request. Uses node-redis (@redis/client), the client Redis maintains.
 */
import { createHash } from 'node:crypto';
import { createClient, type RedisClientType } from '@redis/client';
import type { Logger } from 'pino';

export interface RedisConnectionOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  database?: number;
  tls?: boolean;
  /** Milliseconds a command (and a connection attempt) may take before it counts as failed. */
  timeout: number;
}

/** A Lua script run with EVALSHA, loaded with EVAL the first time a server does not know it. */
export class LuaScript {
  readonly sha1: string;
  constructor(readonly source: string) {
    this.sha1 = createHash('sha1').update(source).digest('hex');
  }
}

export interface RedisHandle {
  /** Run a script; rejects when Redis is not connected, answers with an error, or takes longer than the timeout. */
  eval(script: LuaScript, keys: string[], args: string[]): Promise<unknown>;
  /** Connected and ready for commands. */
  readonly ready: boolean;
}

class TimeoutError extends Error {
  constructor(ms: number) {
    super(`redis command took longer than ${ms} ms`);
    this.name = 'RedisTimeoutError';
  }
}

class SharedRedis implements RedisHandle {
  private readonly client: RedisClientType;
  private connecting: Promise<unknown> | null = null;
  private down = false;

  constructor(
    private readonly opts: RedisConnectionOptions,
    private readonly log: Logger,
  ) {
    this.client = createClient({
      socket: {
        host: opts.host,
        port: opts.port,
        tls: opts.tls === true ? true : undefined,
        connectTimeout: opts.timeout,
        // Keep trying while Redis is away, at most every 2 s; commands fail fast meanwhile.
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 6), 2000),
      },
      username: opts.username,
      password: opts.password,
      database: opts.database,
      disableOfflineQueue: true,
    } as Parameters<typeof createClient>[0]) as unknown as RedisClientType;
    const where = { redis: `${opts.host}:${opts.port}` };
    // Only state changes are logged, and never the options (they hold the password).
    this.client.on('error', (err: Error) => {
      if (this.down) return;
      this.down = true;
      this.log.warn({ ...where, err: err.message }, 'redis unreachable; limits that use it apply their failure policy');
    });
    this.client.on('ready', () => {
      if (this.down) this.log.info(where, 'redis reachable again');
      this.down = false;
    });
    // Connect when config names the server, so the first requests find it ready.
    this.connect();
  }

  get ready(): boolean {
    return this.client.isReady;
  }

  private connect(): void {
    if (this.connecting !== null) return;
    this.connecting = this.client.connect().catch(() => {
      // The first attempt failed before the reconnect strategy took over: try again on a later command.
      this.connecting = null;
    });
  }

  eval(script: LuaScript, keys: string[], args: string[]): Promise<unknown> {
    if (!this.client.isOpen) this.connect();
    if (!this.client.isReady) return Promise.reject(new Error('redis is not connected'));
    const run = this.client.evalSha(script.sha1, { keys, arguments: args }).catch((err: Error) => {
      if (!String(err?.message).startsWith('NOSCRIPT')) throw err;
      return this.client.eval(script.source, { keys, arguments: args });
    });
    return withTimeout(run, this.opts.timeout);
  }

  async close(): Promise<void> {
    try {
      if (this.client.isOpen) await this.client.close();
      else this.client.destroy();
    } catch {
      /* closing a broken client */
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new TimeoutError(ms)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** The Redis clients of one process, by connection options. */
export class RedisClients {
  private readonly clients = new Map<string, SharedRedis>();

  constructor(private readonly log: Logger) {}

  get(opts: RedisConnectionOptions): RedisHandle {
    const id = JSON.stringify([opts.host, opts.port, opts.username ?? '', opts.password ?? '', opts.database ?? 0, opts.tls === true, opts.timeout]);
    let c = this.clients.get(id);
    if (c === undefined) {
      c = new SharedRedis(opts, this.log);
      this.clients.set(id, c);
    }
    return c;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close()));
    this.clients.clear();
  }
}
