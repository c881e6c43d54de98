/**
 * @module plugins/opentelemetry/exporter
 * OTLP/HTTP export with the JSON encoding (https://opentelemetry.io/docs/specs/otlp/#otlphttp): spans are queued
 * as serialised JSON by the log phase and POSTed in batches to `<endpoint>/v1/traces` as an
 * ExportTraceServiceRequest, in the background. The queue is bounded (spans past it are dropped and counted),
 * one batch is in flight at a time, and a batch that fails on 429, 502, 503, 504, a connection error or a
 * timeout is retried with exponential backoff (honouring Retry-After). Nothing here ever makes a request wait.
 * One exporter lives in plugin state per collector and options, so config reloads keep its queue and connection.
 */
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import { Client } from 'undici';
import type { Logger } from 'pino';

const gzipAsync = promisify(gzip);

export interface ExporterOptions {
  /** Full URL spans are POSTed to (`<endpoint>/v1/traces`). */
  url: string;
  /** Extra headers for the collector (API keys...): sent, never logged. */
  headers: Record<string, string>;
  compression: 'none' | 'gzip';
  /** Milliseconds one attempt may take in all. */
  timeout: number;
  batchMaxSize: number;
  /** Milliseconds a span waits for its batch to fill before the batch is sent anyway. */
  flushInterval: number;
  /** Spans held at most (the batch being sent not included); past it new spans are dropped. */
  maxQueue: number;
  /** Further attempts for a batch that failed in a retryable way. */
  retries: number;
  /** Milliseconds before the first retry, doubled for each next one. */
  retryDelay: number;
}

/** Counters of one exporter in this process (the `stats` control action reports them). */
export interface ExporterStats {
  /** Spans the collector accepted. */
  exported: number;
  /** Spans not queued: the queue was full or the exporter closed. */
  dropped: number;
  /** Spans given up after their batch failed (not retryable, or out of retries). */
  failed: number;
  /** Spans the collector answered as rejected (OTLP partial success). */
  rejected: number;
  /** Retries of batches. */
  retries: number;
}

/** The instrumentation scope of every span the plugin makes. */
export const SCOPE_JSON = '{"name":"gatehouse.opentelemetry","version":"1.0.0"}';

/** OTLP/HTTP: these answers mean "try again later"; any other failure status is final. */
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
/** Longest wait between attempts, whatever the backoff or Retry-After says. */
const MAX_BACKOFF = 30000;
/** At most one warning per exporter per this many milliseconds: a dead collector must not flood the log. */
const WARN_EVERY = 60000;
/** Largest collector answer read (for partial success); a longer one is discarded unread. */
const MAX_ANSWER = 65536;

type Outcome = { ok: true; rejected: number } | { ok: false; retry: boolean; delay: number; reason: string };

function noop(): void {}

/** Milliseconds a Retry-After value asks for (delta-seconds or an HTTP date), or -1. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v === '') return -1;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? -1 : Math.max(0, at - now);
}

/**
 * The ExportTraceServiceRequest body for a batch: spans grouped by their resource (usually one), each group in one
 * scopeSpans of the plugin's scope. Spans and resources are already JSON, so this only joins strings.
 */
export function encodeRequest(resources: string[], spans: string[]): string {
  let same = true;
  for (let i = 1; i < resources.length; i++) {
    if (resources[i] !== resources[0]) {
      same = false;
      break;
    }
  }
  const group = (resource: string, list: string[]) => `{"resource":${resource},"scopeSpans":[{"scope":${SCOPE_JSON},"spans":[${list.join(',')}]}]}`;
  if (same) return `{"resourceSpans":[${group(resources[0] ?? '{}', spans)}]}`;
  const byResource = new Map<string, string[]>();
  for (let i = 0; i < spans.length; i++) {
    const r = resources[i]!;
    let list = byResource.get(r);
    if (list === undefined) byResource.set(r, (list = []));
    list.push(spans[i]!);
  }
  return `{"resourceSpans":[${[...byResource].map(([r, list]) => group(r, list)).join(',')}]}`;
}

export class OtlpExporter {
  /** Counters for /metrics (gatehouse_plugin_events_total). */
  metrics(): Array<{ event: string; value: number; labels: Record<string, string> }> {
    const labels = { collector: this.origin };
    return [{ event: 'spans_exported', value: this.stats.exported, labels }, { event: 'spans_dropped', value: this.stats.dropped, labels }, { event: 'spans_failed', value: this.stats.failed, labels }];
  }

  readonly stats: ExporterStats = { exported: 0, dropped: 0, failed: 0, rejected: 0, retries: 0 };
  /** scheme://host:port of the collector: all that is ever logged or reported of it (its path may hold a token). */
  readonly origin: string;
  private readonly client: Client;
  private readonly path: string;
  private readonly headers: Record<string, string>;
  private resources: string[] = [];
  private spans: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sending = false;
  private closed = false;
  private lastWarn = 0;
  private wakeBackoff: (() => void) | null = null;

  constructor(
    private readonly opts: ExporterOptions,
    private readonly logger: Logger,
  ) {
    const url = new URL(opts.url);
    this.origin = url.origin;
    this.path = `${url.pathname}${url.search}`;
    this.headers = {
      'user-agent': 'gatehouse-otlp-exporter/1.0.0',
      ...opts.headers,
      'content-type': 'application/json',
      ...(opts.compression === 'gzip' ? { 'content-encoding': 'gzip' } : {}),
    };
    this.client = new Client(url.origin, {
      connect: { timeout: opts.timeout },
      headersTimeout: opts.timeout,
      bodyTimeout: opts.timeout,
      keepAliveTimeout: 30000,
    });
    // A connection-level error with no request waiting must never become an unhandled 'error' event.
    this.client.on('connectionError', noop);
  }

  /** Spans waiting in the queue (not counting the batch being sent). */
  get queued(): number {
    return this.spans.length;
  }

  /** Queue one span (serialised JSON) with its resource (serialised JSON). False when it was dropped. */
  enqueue(resource: string, span: string): boolean {
    if (this.closed || this.spans.length >= this.opts.maxQueue) {
      this.stats.dropped++;
      this.warn(this.closed ? 'exporter closed' : 'queue full');
      return false;
    }
    this.resources.push(resource);
    this.spans.push(span);
    if (this.spans.length >= this.opts.batchMaxSize) this.kick();
    else if (this.timer === null && !this.sending) this.arm();
    return true;
  }

  /** Stop: send what is queued once more (no retries), then close the connection. Called by the state store. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    // A batch waiting to retry gives up now and the rest is sent once.
    this.wakeBackoff?.();
    if (!this.sending) this.kick();
  }

  private arm(): void {
    this.timer = setTimeout(this.onTimer, this.opts.flushInterval);
    this.timer.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.kick();
  };

  private kick(): void {
    if (this.sending) return;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.sending = true;
    this.drain().then(this.afterDrain, this.afterDrain);
  }

  /** Send batches while full ones are waiting (all of them once closed). */
  private async drain(): Promise<void> {
    while (this.spans.length > 0) {
      const n = Math.min(this.spans.length, this.opts.batchMaxSize);
      const resources = this.resources.splice(0, n);
      const spans = this.spans.splice(0, n);
      await this.exportBatch(resources, spans);
      if (!this.closed && this.spans.length < this.opts.batchMaxSize) break;
    }
  }

  private readonly afterDrain = (): void => {
    this.sending = false;
    if (this.closed) {
      this.client.close().catch(noop);
      return;
    }
    if (this.spans.length >= this.opts.batchMaxSize) this.kick();
    else if (this.spans.length > 0 && this.timer === null) this.arm();
  };

  private async exportBatch(resources: string[], spans: string[]): Promise<void> {
    let body: string | Buffer = encodeRequest(resources, spans);
    try {
      if (this.opts.compression === 'gzip') body = await gzipAsync(body);
    } catch {
      this.stats.failed += spans.length;
      this.warn('could not compress the batch');
      return;
    }
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.post(body);
      if (outcome.ok) {
        this.stats.rejected += outcome.rejected;
        this.stats.exported += spans.length - outcome.rejected;
        if (outcome.rejected > 0) this.warn('the collector rejected some spans (partial success)');
        return;
      }
      if (!outcome.retry || attempt >= this.opts.retries || this.closed) {
        this.stats.failed += spans.length;
        this.warn(outcome.reason);
        return;
      }
      this.stats.retries++;
      const backoff = Math.min(MAX_BACKOFF, this.opts.retryDelay * 2 ** attempt) * (0.8 + Math.random() * 0.4);
      await this.sleep(Math.min(MAX_BACKOFF, Math.max(outcome.delay, backoff)));
    }
  }

  /** A backoff wait that close() can cut short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wakeBackoff = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      this.wakeBackoff = done;
    });
  }

  /** One attempt. Never throws. */
  private async post(body: string | Buffer): Promise<Outcome> {
    try {
      const res = await this.client.request({
        path: this.path,
        method: 'POST',
        headers: this.headers,
        body,
        // Covers connecting and waiting in the client's queue too.
        signal: AbortSignal.timeout(this.opts.timeout),
      });
      const status = res.statusCode;
      if (status >= 200 && status < 300) {
        return { ok: true, rejected: await this.rejectedSpans(res.headers, res.body) };
      }
      res.body.dump().catch(noop);
      return {
        ok: false,
        retry: RETRYABLE_STATUS.has(status),
        delay: RETRYABLE_STATUS.has(status) ? retryAfterMs(res.headers['retry-after']) : -1,
        reason: `the collector answered ${status}`,
      };
    } catch (err) {
      // Only the error's code or class: a message may repeat the URL.
      const e = err as NodeJS.ErrnoException;
      const what = e?.name === 'TimeoutError' || e?.name === 'AbortError' ? 'timed out' : (e?.code ?? e?.name ?? 'error');
      return { ok: false, retry: true, delay: -1, reason: `the collector could not be reached (${what})` };
    }
  }

  /** The rejected span count of an OTLP partial success answer; 0 when there is none or it cannot be read. */
  private async rejectedSpans(headers: Record<string, string | string[] | undefined>, body: { text(): Promise<string>; dump(): Promise<unknown> }): Promise<number> {
    const type = headers['content-type'];
    const length = Number(headers['content-length'] ?? 0);
    if (typeof type !== 'string' || !type.includes('json') || length > MAX_ANSWER) {
      await body.dump().catch(noop);
      return 0;
    }
    try {
      const text = await body.text();
      if (text.length === 0 || text.length > MAX_ANSWER) return 0;
      const parsed = JSON.parse(text) as { partialSuccess?: { rejectedSpans?: string | number } };
      const n = Number(parsed?.partialSuccess?.rejectedSpans ?? 0);
      return Number.isInteger(n) && n > 0 ? n : 0;
    } catch {
      return 0;
    }
  }

  /** Log a failure at most once a minute, with the collector's origin and counts, never its headers or path. */
  private warn(reason: string): void {
    const now = Date.now();
    if (now - this.lastWarn < WARN_EVERY) return;
    this.lastWarn = now;
    this.logger.warn({ collector: this.origin, reason, ...this.stats, queued: this.spans.length }, 'opentelemetry: spans could not all be exported');
  }
}
