/**
 * @module plugins/http-logger
 * Sends a JSON access record of every request to an HTTP(S) collector, in batches (a JSON array or NDJSON per
 * POST). The log phase only serialises the record and queues it; a background sender posts batches over a kept-
 * alive connection, retries failed ones with exponential backoff, and drops (and counts) records once the bounded
 * queue is full. A slow or dead collector therefore never slows or fails a request. The queue and its connection
 * live in plugin state keyed by scope and URI, so a config reload neither loses queued records nor opens a new
 * connection; each worker process has its own.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Client } from 'undici';
import type { Logger } from 'pino';
import { definePlugin, type PluginControlEnv } from '../../dataplane/plugins/types.js';
import { StringEnum } from '../../model/common.js';
import { BatchFailed, BatchQueue, BatchRefused, type BatchOptions, type BatchStats } from '../logging/batch.js';
import { checkRecordOptions, compileRecord, RecordOptions } from '../logging/record.js';
import { HeaderValues } from '../util.js';
import { PRIORITIES } from '../priorities.js';

const Config = Type.Object(
  {
    uri: Type.String({
      minLength: 8,
      maxLength: 2048,
      pattern: '^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$',
      description: 'The collector\'s URL (http or https) that batches are POSTed to. It is never logged beyond its origin (scheme, host, port).',
    }),
    headers: HeaderValues('Headers sent with every batch (an Authorization for the collector, for example); their values are never logged.'),
    format: StringEnum(['json', 'ndjson'], {
      default: 'json',
      description: 'Body of a batch: json, a JSON array of records (application/json); ndjson, one record per line (application/x-ndjson).',
    }),
    batchMaxSize: Type.Integer({ minimum: 1, maximum: 10000, default: 100, description: 'Records per batch at most; a full batch is sent at once.' }),
    flushInterval: Type.Integer({
      minimum: 1,
      maximum: 600000,
      default: 1000,
      description: 'Milliseconds a record waits for its batch to fill before the batch is sent anyway.',
    }),
    maxQueue: Type.Integer({
      minimum: 1,
      maximum: 1000000,
      default: 10000,
      description: 'Records this worker process holds at most (the batch being sent included); past it new records are dropped and counted.',
    }),
    timeout: Type.Integer({ minimum: 1, maximum: 600000, default: 5000, description: 'Milliseconds one attempt to send a batch may take in all (connect, answer).' }),
    retries: Type.Integer({ minimum: 0, maximum: 20, default: 3, description: 'Further attempts for a batch that failed (connection error, timeout, 408, 429 or 5xx); then it is given up.' }),
    retryDelay: Type.Integer({
      minimum: 1,
      maximum: 600000,
      default: 1000,
      description: 'Milliseconds before the first retry; doubled for each next one (at most 30 s), with up to 25% jitter.',
    }),
    ...RecordOptions,
  },
  { additionalProperties: false, description: 'http-logger config.' },
);
type Config = Static<typeof Config>;

/** Headers the sender frames itself or that would change the connection: not settable in `headers`. */
const FRAMING = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect']);

/** How long close() may take to send what is left before the connection is cut. */
const CLOSE_GRACE = 2000;

const CONTENT_TYPE = { json: 'application/json', ndjson: 'application/x-ndjson' } as const;

/** What the `stats` control action reports for one queue. */
export interface HttpLoggerStats extends BatchStats {
  scope: string;
  /** The collector's origin (never its path or query, which may hold a token). */
  collector: string;
  queued: number;
}

function batchOptions(c: Config): BatchOptions {
  return { batchMaxSize: c.batchMaxSize, flushInterval: c.flushInterval, maxQueue: c.maxQueue, retries: c.retries, retryDelay: c.retryDelay };
}

function noop(): void {}

/**
 * One collector's queue and connection, for one scope: kept in plugin state across reloads (the `close()` the
 * state store calls when no config asks for it any more sends what is left, within CLOSE_GRACE).
 */
export class HttpSink {
  /** Counters for /metrics (gatehouse_plugin_events_total). */
  metrics(): Array<{ event: string; value: number; labels: Record<string, string> }> {
    const labels = { scope: this.scope, collector: this.origin };
    return [{ event: 'records_sent', value: this.queue.stats.sent, labels }, { event: 'records_dropped', value: this.queue.stats.dropped, labels }, { event: 'records_failed', value: this.queue.stats.failed, labels }, { event: 'batches_retried', value: this.queue.stats.retried, labels }];
  }

  readonly queue: BatchQueue;
  readonly origin: string;
  private readonly path: string;
  private readonly client: Client;
  private headers: Record<string, string> = {};
  private timeout = 0;
  private format: 'json' | 'ndjson' = 'json';
  private batchMaxSize = 1;
  private closing: Promise<void> | null = null;

  constructor(
    config: Config,
    logger: Logger,
    readonly scope: string,
  ) {
    const url = new URL(config.uri);
    this.origin = url.origin;
    this.path = `${url.pathname}${url.search}`;
    // One connection is enough: batches leave one at a time. It is kept alive between them.
    this.client = new Client(this.origin, { keepAliveTimeout: 30_000, keepAliveMaxTimeout: 120_000, connect: { timeout: config.timeout } });
    // The client must never raise an unhandled 'error' (a collector resetting idle connections).
    this.client.on('connectionError', noop);
    this.queue = new BatchQueue(batchOptions(config), (records) => this.deliver(records, null), logger, { collector: this.origin, scope });
    this.configure(config);
  }

  /** A reload with the same scope and URI: new headers, format, timeouts and batching apply from the next batch. */
  configure(config: Config): void {
    const headers: Record<string, string> = { 'user-agent': 'gatehouse-http-logger' };
    for (const [name, value] of Object.entries(config.headers)) headers[name.toLowerCase()] = value;
    if (headers['content-type'] === undefined) headers['content-type'] = CONTENT_TYPE[config.format];
    this.headers = headers;
    this.timeout = config.timeout;
    this.format = config.format;
    this.batchMaxSize = config.batchMaxSize;
    this.queue.configure(batchOptions(config));
  }

  /** POST one batch; resolves when the collector answered 2xx. */
  private async deliver(records: string[], deadline: AbortSignal | null): Promise<void> {
    const body = this.format === 'json' ? `[${records.join(',')}]` : `${records.join('\n')}\n`;
    const timeout = AbortSignal.timeout(this.timeout);
    const r = await this.client.request({
      path: this.path,
      method: 'POST',
      headers: this.headers,
      body,
      headersTimeout: this.timeout,
      bodyTimeout: this.timeout,
      // Covers connecting and a collector that accepts the connection and never answers.
      signal: deadline === null ? timeout : AbortSignal.any([timeout, deadline]),
    });
    // Read the answer to its end so the connection can carry the next batch.
    await r.body.dump().catch(noop);
    const s = r.statusCode;
    if (s >= 200 && s < 300) return;
    if (s === 408 || s === 429 || s >= 500) throw new BatchFailed(`status ${s}`);
    throw new BatchRefused(`status ${s}`);
  }

  stats(): HttpLoggerStats {
    return { scope: this.scope, collector: this.origin, queued: this.queue.queued, ...this.queue.stats };
  }

  /** Send what is queued (without retries) within CLOSE_GRACE, then close the connection. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    const rest = this.queue.stop();
    this.closing = (async () => {
      const deadline = AbortSignal.timeout(CLOSE_GRACE);
      for (let i = 0; i < rest.length; i += this.batchMaxSize) {
        const batch = rest.slice(i, i + this.batchMaxSize);
        try {
          await this.deliver(batch, deadline);
          this.queue.stats.sent += batch.length;
          this.queue.stats.batches++;
        } catch {
          this.queue.stats.failed += rest.length - i;
          break;
        }
      }
      // A graceful close waits for a batch still on the wire; past the grace it is cut.
      const cut = setTimeout(() => this.client.destroy().catch(noop), CLOSE_GRACE);
      cut.unref();
      await this.client.close().catch(noop);
      clearTimeout(cut);
    })();
    return this.closing;
  }
}

function sinks(env: PluginControlEnv): HttpSink[] {
  return env
    .stateKeys()
    .map((k) => env.state<HttpSink>(k))
    .filter((s): s is HttpSink => s instanceof HttpSink);
}

export default definePlugin<Config>({
  name: 'http-logger',
  version: '1.0.0',
  priority: PRIORITIES['http-logger'],
  description: 'Sends a JSON access record of every request to an HTTP(S) collector in batches, with a bounded queue and retries; never slows requests.',
  schema: Config,
  scopes: ['global', 'service', 'route', 'consumer'],
  check(config) {
    const problems = checkRecordOptions(config);
    let url: URL | null = null;
    try {
      url = new URL(config.uri);
    } catch {
      problems.push(['uri', 'is not a valid URL']);
    }
    if (url !== null) {
      // The messages never repeat the URI: it may hold a token.
      if (url.protocol !== 'http:' && url.protocol !== 'https:') problems.push(['uri', 'must be an http or https URL']);
      if (url.username !== '' || url.password !== '') problems.push(['uri', 'must not hold credentials: send them in headers (Authorization)']);
      if (url.hash !== '') problems.push(['uri', 'must not have a fragment']);
    }
    for (const name of Object.keys(config.headers)) {
      if (FRAMING.has(name.toLowerCase())) problems.push([`headers.${name}`, 'is set by the sender and cannot be configured']);
    }
    if (config.maxQueue < config.batchMaxSize) problems.push(['maxQueue', 'must be at least batchMaxSize']);
    return problems;
  },
  create(config, env) {
    // One queue per place the config is written and collector: reloads keep it, its records and its connection.
    const sink = env.state(`${env.scope} ${config.uri}`, () => new HttpSink(config, env.logger, env.scope));
    sink.configure(config);
    const queue = sink.queue;
    const record = compileRecord(config, 'http-logger');
    return {
      ...(record.captureHead ? { responseHeaders: record.captureHead } : {}),
      // After the response (gateway.ts runs the log phase in setImmediate): serialise and queue, never wait.
      log(ctx) {
        queue.push(JSON.stringify(record.build(ctx)));
      },
    };
  },
  control: {
    /** Queue counters of every collector in this worker: `POST /plugins/http-logger/stats`. */
    stats(_args, env) {
      return sinks(env).map((s) => s.stats());
    },
  },
});
