/**
 * @module control/gateway-metrics
 * The per-route traffic counters the dashboard's overview charts (GET /api/v1/tenants/{tenant}/metrics), read
 * from the gateways' status ports: every live instance's /metrics is scraped in parallel (a short timeout, a
 * cap on the answer's size, a bound on how many at once), one scrape round serves every caller for a couple of
 * seconds, and a tenant sees the sum over the instances that answered, each instance's own counters (so rates
 * survive a gateway restart), and which instances did not answer and why.
 *
 * Only the per-route series every gateway exports are read (gatehouse_http_requests_total and
 * gatehouse_http_request_duration_seconds); their `route` label is "<tenant>.<id>", and a tenant is only ever
 * given the series under its own prefix.
 */
import { request, type IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import type { InstanceInfo } from '../cluster/instances.js';

/** Cumulative counters of one route, as GET /api/v1/tenants/{tenant}/metrics returns them. */
export interface RouteCounters {
  /** The route's id within its tenant. */
  id: string;
  /** Requests answered since the gateway started, by status code. */
  requests: Record<string, number>;
  /** Latency histogram: cumulative counts at each bound (ms), then the +Inf count; sum (ms) and count. */
  latency: { bucketsMs: number[]; counts: number[]; sumMs: number; count: number };
}

/** One gateway instance's part of a reading. */
export interface InstanceMetrics {
  id: string;
  /** When the instance started (from its registration): counters of another start are not comparable. */
  startedAt: string | null;
  /** When its counters were read (or its read failed). */
  at: string;
  /** Whether it answered; `error` says why not. */
  ok: boolean;
  error?: string;
  /** The tenant's routes on this instance (empty when it did not answer). */
  routes: RouteCounters[];
}

/** The answer of GET /api/v1/tenants/{tenant}/metrics. */
export interface TenantMetrics {
  at: string;
  /**
   * The tenant's routes summed over the instances that answered. The sum drops when an instance restarts, leaves
   * or does not answer: take rates from `instances`, pairing readings by id and startedAt.
   */
  routes: RouteCounters[];
  instances: InstanceMetrics[];
}

// ---------------------------------------------------------------------------------------------------------
// Reading the Prometheus text

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function labels(s: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [, k, v] of s.matchAll(LABEL)) out[k!] = v!.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
  return out;
}

interface RouteSeries {
  requests: Record<string, number>;
  /** [bound in ms (Infinity for +Inf), cumulative count] */
  buckets: Array<[number, number]>;
  sum: number;
  count: number;
}

/**
 * Collects the per-route series from Prometheus text fed one line at a time (a scrape is read as it arrives,
 * never held whole), keyed by the full route label ("<tenant>.<id>").
 */
class RouteSeriesReader {
  private readonly routes = new Map<string, RouteSeries>();

  line(line: string): void {
    if (!line.startsWith('gatehouse_http_request')) return;
    const m = SAMPLE.exec(line);
    if (!m) return;
    const name = m[1]!;
    if (name !== 'gatehouse_http_requests_total' && !name.startsWith('gatehouse_http_request_duration_seconds_')) return;
    const l = labels(m[2]!);
    const route = l.route;
    if (!route) return;
    const value = Number(m[3]);
    if (!Number.isFinite(value) || value < 0) return;
    let r = this.routes.get(route);
    const of = () => {
      if (!r) this.routes.set(route, (r = { requests: {}, buckets: [], sum: 0, count: 0 }));
      return r;
    };
    switch (name) {
      case 'gatehouse_http_requests_total':
        if (l.status && /^\d{3}$/.test(l.status)) of().requests[l.status] = value;
        break;
      case 'gatehouse_http_request_duration_seconds_bucket': {
        const le = l.le === '+Inf' ? Infinity : Number(l.le) * 1000;
        if (!Number.isNaN(le)) of().buckets.push([le, value]);
        break;
      }
      case 'gatehouse_http_request_duration_seconds_sum':
        of().sum = value * 1000;
        break;
      case 'gatehouse_http_request_duration_seconds_count':
        of().count = value;
        break;
    }
  }

  /** The routes by tenant: a label "<tenant>.<id>" is tenant's route id; labels without a tenant go nowhere. */
  byTenant(): Map<string, RouteCounters[]> {
    const out = new Map<string, RouteCounters[]>();
    for (const [label, r] of this.routes) {
      const dot = label.indexOf('.');
      if (dot <= 0 || dot === label.length - 1) continue;
      const tenant = label.slice(0, dot);
      let list = out.get(tenant);
      if (!list) out.set(tenant, (list = []));
      list.push(counters(label.slice(dot + 1), r));
    }
    for (const list of out.values()) list.sort((a, b) => a.id.localeCompare(b.id));
    return out;
  }
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;

function counters(id: string, r: RouteSeries): RouteCounters {
  // One count per bound (the last one read wins), and the +Inf bucket, which is every request, always last.
  const byBound = new Map(r.buckets);
  if (byBound.size > 0 && !byBound.has(Infinity)) byBound.set(Infinity, r.count);
  const buckets = [...byBound].sort((a, b) => a[0] - b[0]);
  const finite = buckets.filter(([le]) => le !== Infinity);
  return {
    id,
    requests: r.requests,
    latency: {
      bucketsMs: finite.map(([le]) => round3(le)),
      counts: buckets.map(([, c]) => c),
      sumMs: round3(r.sum),
      count: r.count,
    },
  };
}

/**
 * The routes of one tenant from a gateway's /metrics text. In the config the gateways run a route's id is
 * "<tenant>.<id>"; the summary gives the tenant's own ids, and nothing of any other tenant.
 */
export function summarizeRouteMetrics(text: string, tenant: string): RouteCounters[] {
  const reader = new RouteSeriesReader();
  for (const line of text.split('\n')) reader.line(line);
  return reader.byTenant().get(tenant) ?? [];
}

// ---------------------------------------------------------------------------------------------------------
// Summing instances

/**
 * The cumulative count of a histogram at `boundMs`: its count at the highest bound of its own not above it (so
 * histograms with different bounds still add up, each counted no higher than it knows; equal bounds add exactly).
 */
function cumulativeAt(h: RouteCounters['latency'], boundMs: number): number {
  if (boundMs === Infinity) return h.counts.at(-1) ?? 0;
  let at = 0;
  for (let i = 0; i < h.bucketsMs.length && h.bucketsMs[i]! <= boundMs; i++) at = h.counts[i] ?? at;
  return at;
}

/** Routes of several instances added up by id: requests by status, and the latency histograms bucket by bucket. */
export function sumRouteCounters(perInstance: RouteCounters[][]): RouteCounters[] {
  const byId = new Map<string, RouteCounters[]>();
  for (const routes of perInstance) {
    for (const r of routes) {
      const list = byId.get(r.id);
      if (list) list.push(r);
      else byId.set(r.id, [r]);
    }
  }
  return [...byId]
    .map(([id, list]) => {
      const requests: Record<string, number> = {};
      for (const r of list) for (const [status, n] of Object.entries(r.requests)) requests[status] = (requests[status] ?? 0) + n;
      const bounds = [...new Set(list.flatMap((r) => r.latency.bucketsMs))].sort((a, b) => a - b);
      const withData = list.filter((r) => r.latency.counts.length > 0);
      return {
        id,
        requests,
        latency: {
          bucketsMs: bounds,
          counts: withData.length === 0 ? [] : [...bounds, Infinity].map((b) => withData.reduce((n, r) => n + cumulativeAt(r.latency, b), 0)),
          sumMs: round3(list.reduce((n, r) => n + r.latency.sumMs, 0)),
          count: list.reduce((n, r) => n + r.latency.count, 0),
        },
      };
    })
    .sort((a, b) => a.id.localeCompare(b.id));
}

// ---------------------------------------------------------------------------------------------------------
// Scraping

export interface ScrapeLimits {
  /** Milliseconds the whole answer may take, connecting included. */
  timeoutMs: number;
  /** Largest answer in bytes. */
  maxBytes: number;
}

/** A line of Prometheus text longer than this is not one a gateway writes. */
const MAX_LINE = 64 * 1024;

/**
 * Read one gateway's /metrics from its status server's base URL (http://host:port), keeping only the per-route
 * series, as the answer arrives. Rejects with a short reason an operator can act on: the status it answered, a
 * timeout, an answer too large, a refused connection. Redirects are not followed. One connection per scrape: a
 * scrape is seconds apart at the most, and a kept-alive one would race the status server's idle timeout.
 */
export function scrapeRouteMetrics(statusUrl: string, limits: ScrapeLimits): Promise<Map<string, RouteCounters[]>> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (e: Error | null, value?: Map<string, RouteCounters[]>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (e) {
        req.destroy();
        reject(e);
      } else resolve(value!);
    };
    const tooLarge = () => new Error(`its /metrics answer is larger than ${limits.maxBytes} bytes`);
    const req = request(new URL('/metrics', statusUrl), { method: 'GET', agent: false, headers: { accept: 'text/plain' } }, (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        res.resume();
        return finish(new Error(`its status port answered HTTP ${res.statusCode}`));
      }
      const length = Number(res.headers['content-length']);
      if (Number.isFinite(length) && length > limits.maxBytes) return finish(tooLarge());
      const reader = new RouteSeriesReader();
      const decoder = new StringDecoder('utf8');
      let bytes = 0;
      let partial = '';
      const feed = (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop()!;
        if (partial.length > MAX_LINE || lines.some((l) => l.length > MAX_LINE)) return finish(new Error(`its /metrics answer has a line longer than ${MAX_LINE} characters`));
        for (const line of lines) reader.line(line);
      };
      res.on('data', (chunk: Buffer) => {
        if (settled) return;
        bytes += chunk.length;
        if (bytes > limits.maxBytes) return finish(tooLarge());
        feed(decoder.write(chunk));
      });
      res.on('end', () => {
        if (settled) return;
        feed(decoder.end());
        if (settled) return;
        reader.line(partial);
        finish(null, reader.byTenant());
      });
      res.on('close', () => {
        if (!res.complete) finish(new Error('its /metrics answer was cut off'));
      });
    });
    const timer = setTimeout(() => finish(new Error(`no complete /metrics answer within ${limits.timeoutMs} ms`)), limits.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) =>
      finish(new Error(e.code === 'ECONNREFUSED' ? 'its status port refused the connection' : e.code ? `${e.code} reaching its status port` : e.message)),
    );
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------------------
// Which instances to read

/** A gateway instance to read, with its status server's base URL or why it has none that can be used. */
export interface MetricsTarget {
  id: string;
  startedAt: string | null;
  statusUrl: string | null;
  /** Why the instance cannot be read (then `statusUrl` is not used). */
  problem?: string;
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1' || h === '0:0:0:0:0:0:0:1' || h.startsWith('::ffff:127.');
}

/** A status URL from an instance record: http://host:port and nothing more, or null. */
function checkStatusUrl(raw: unknown): URL | null {
  if (typeof raw !== 'string') return null;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' || !u.hostname || u.username || u.password || u.search || u.hash || (u.pathname !== '/' && u.pathname !== '')) return null;
  return u;
}

/**
 * The instances registered in etcd as scrape targets. An instance that advertises no status URL (a gateway
 * older than this control plane, or one whose status port is 0), a loopback URL from another machine (it
 * would read this machine's own status port instead), or the URL another instance already advertises, is
 * listed as not answering with the reason, rather than read.
 */
export function instanceTargets(instances: ReadonlyArray<Pick<InstanceInfo, 'id' | 'hostname' | 'startedAt'> & { statusUrl?: string | null }>, localHostname: string): MetricsTarget[] {
  const seen = new Map<string, string>();
  return instances.map((i) => {
    const base = { id: i.id, startedAt: typeof i.startedAt === 'string' ? i.startedAt : null };
    if (i.statusUrl === undefined || i.statusUrl === null) {
      return { ...base, statusUrl: null, problem: 'it advertises no status address (a gateway older than the control plane, or status.port 0)' };
    }
    const u = checkStatusUrl(i.statusUrl);
    if (!u) return { ...base, statusUrl: null, problem: `it advertises an unusable status address ${JSON.stringify(String(i.statusUrl).slice(0, 100))}` };
    const url = u.origin;
    if (isLoopback(u.hostname) && i.hostname !== localHostname) {
      return { ...base, statusUrl: null, problem: `it advertises the loopback status address ${url} from another machine (${i.hostname}): set status.host or status.advertiseAddress on it` };
    }
    const twin = seen.get(url);
    if (twin !== undefined) return { ...base, statusUrl: null, problem: `it advertises the same status address as ${twin} (${url})` };
    seen.set(url, i.id);
    return { ...base, statusUrl: url };
  });
}

// ---------------------------------------------------------------------------------------------------------
// The collector

export interface GatewayMetricsOptions {
  /** The instances to read now (etcd registrations, or the one local gateway). Rejecting fails the reading. */
  targets: () => Promise<MetricsTarget[]>;
  /** Milliseconds one instance's answer may take (default 2000). */
  timeoutMs?: number;
  /** Largest /metrics answer read from one instance, bytes (default 64 MiB). */
  maxBytes?: number;
  /** Instances read at once (default 16). */
  concurrency?: number;
  /** Milliseconds one round of scrapes serves every caller (default 2000): open dashboards do not multiply scrapes. */
  cacheMs?: number;
}

interface ScrapeResult {
  id: string;
  startedAt: string | null;
  at: string;
  ok: boolean;
  error?: string;
  byTenant: Map<string, RouteCounters[]>;
}

interface Round {
  at: string;
  doneAt: number;
  results: ScrapeResult[];
}

export const SCRAPE_DEFAULTS = { timeoutMs: 2000, maxBytes: 64 * 1024 * 1024, concurrency: 16, cacheMs: 2000 } as const;

/** Reads the gateways' per-route counters for the metrics endpoint; see the module comment. */
export class GatewayMetrics {
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly concurrency: number;
  private readonly cacheMs: number;
  private last: Round | null = null;
  private pending: Promise<Round> | null = null;

  constructor(private readonly opts: GatewayMetricsOptions) {
    this.timeoutMs = opts.timeoutMs ?? SCRAPE_DEFAULTS.timeoutMs;
    this.maxBytes = opts.maxBytes ?? SCRAPE_DEFAULTS.maxBytes;
    this.concurrency = Math.max(1, opts.concurrency ?? SCRAPE_DEFAULTS.concurrency);
    this.cacheMs = opts.cacheMs ?? SCRAPE_DEFAULTS.cacheMs;
  }

  /** The tenant's counters: the sum over the instances that answered, and each instance's own. */
  async read(tenant: string): Promise<TenantMetrics> {
    const round = await this.round();
    const instances: InstanceMetrics[] = round.results.map((r) => ({
      id: r.id,
      startedAt: r.startedAt,
      at: r.at,
      ok: r.ok,
      ...(r.error !== undefined ? { error: r.error } : {}),
      routes: r.byTenant.get(tenant) ?? [],
    }));
    return { at: round.at, routes: sumRouteCounters(instances.filter((i) => i.ok).map((i) => i.routes)), instances };
  }

  private round(): Promise<Round> {
    if (this.last && Date.now() - this.last.doneAt < this.cacheMs) return Promise.resolve(this.last);
    if (!this.pending) {
      this.pending = this.scrapeAll().then(
        (r) => {
          this.last = r;
          this.pending = null;
          return r;
        },
        (e: unknown) => {
          this.pending = null;
          throw e;
        },
      );
    }
    return this.pending;
  }

  private async scrapeAll(): Promise<Round> {
    const targets = [...(await this.opts.targets())].sort((a, b) => a.id.localeCompare(b.id));
    const results = new Array<ScrapeResult>(targets.length);
    let next = 0;
    const work = async () => {
      while (next < targets.length) {
        const i = next++;
        results[i] = await this.scrapeOne(targets[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, targets.length) }, work));
    return { at: new Date().toISOString(), doneAt: Date.now(), results };
  }

  private async scrapeOne(t: MetricsTarget): Promise<ScrapeResult> {
    const base = { id: t.id, startedAt: t.startedAt };
    if (t.problem !== undefined || t.statusUrl === null) {
      return { ...base, at: new Date().toISOString(), ok: false, error: t.problem ?? 'it advertises no status address', byTenant: new Map() };
    }
    try {
      const byTenant = await scrapeRouteMetrics(t.statusUrl, { timeoutMs: this.timeoutMs, maxBytes: this.maxBytes });
      return { ...base, at: new Date().toISOString(), ok: true, byTenant };
    } catch (e) {
      return { ...base, at: new Date().toISOString(), ok: false, error: `${(e as Error).message} (${t.statusUrl})`, byTenant: new Map() };
    }
  }
}
