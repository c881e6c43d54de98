/**
 * @module status/metrics
 * Request metrics kept per worker with plain counters (cheap on the hot path), merged across workers by the
 * primary and written in the Prometheus text format.
 */

/** Latency histogram bucket upper bounds, milliseconds. */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000];

export interface Histogram {
  /** Counts per bucket (not cumulative), one more slot for +Inf. */
  buckets: number[];
  sum: number;
  count: number;
}

function newHistogram(): Histogram {
  return { buckets: new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0), sum: 0, count: 0 };
}

function observe(h: Histogram, ms: number): void {
  let i = 0;
  while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
  h.buckets[i]!++;
  h.sum += ms;
  h.count++;
}

/** Counters of one route in one worker; the compiled route holds a reference, so recording is a field update. */
export class RouteStats {
  readonly byStatus = new Map<number, number>();
  readonly latency = newHistogram();
  readonly upstreamLatency = newHistogram();
  constructor(readonly route: string) {}

  /** HOT PATH */
  record(status: number, totalMs: number, upstreamMs: number): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    observe(this.latency, totalMs);
    if (upstreamMs >= 0) observe(this.upstreamLatency, upstreamMs);
  }
}

/** Plain-data form sent from a worker to the primary. */
export interface MetricsDump {
  routes: Array<{ route: string; byStatus: Array<[number, number]>; latency: Histogram; upstreamLatency: Histogram }>;
  connections: number;
  configReloads: number;
  configErrors: number;
  pluginErrors?: Array<[string, number]>;
}

export class Metrics {
  private readonly routes = new Map<string, RouteStats>();
  /** Requests answered without a route (404, 400...) are counted under this name. */
  static readonly NO_ROUTE = '';
  connections = 0;
  configReloads = 0;
  configErrors = 0;
  /** Plugin failures by "plugin\0phase". */
  readonly pluginErrors = new Map<string, number>();

  pluginError(plugin: string, phase: string): void {
    const k = `${plugin}\0${phase}`;
    this.pluginErrors.set(k, (this.pluginErrors.get(k) ?? 0) + 1);
  }

  route(id: string): RouteStats {
    let s = this.routes.get(id);
    if (!s) {
      s = new RouteStats(id);
      this.routes.set(id, s);
    }
    return s;
  }

  dump(): MetricsDump {
    return {
      routes: [...this.routes.values()].map((r) => ({ route: r.route, byStatus: [...r.byStatus], latency: r.latency, upstreamLatency: r.upstreamLatency })),
      connections: this.connections,
      configReloads: this.configReloads,
      configErrors: this.configErrors,
      pluginErrors: [...this.pluginErrors],
    };
  }
}

function mergeHist(into: Histogram, from: Histogram): void {
  for (let i = 0; i < into.buckets.length; i++) into.buckets[i]! += from.buckets[i] ?? 0;
  into.sum += from.sum;
  into.count += from.count;
}

/**
 * Fold several dumps into one: counters and histograms add up; config counters take the highest. The primary keeps the last dump of each
 * worker that died this way, so counters summed across workers never go down when a worker is replaced.
 */
export function mergeDumps(dumps: MetricsDump[]): MetricsDump {
  const routes = new Map<string, { byStatus: Map<number, number>; latency: Histogram; upstreamLatency: Histogram }>();
  const out: MetricsDump = { routes: [], connections: 0, configReloads: 0, configErrors: 0, pluginErrors: [] };
  const pluginErrors = new Map<string, number>();
  for (const d of dumps) {
    for (const [k, c] of d.pluginErrors ?? []) pluginErrors.set(k, (pluginErrors.get(k) ?? 0) + c);
    out.connections += d.connections;
    out.configReloads = Math.max(out.configReloads, d.configReloads);
    out.configErrors = Math.max(out.configErrors, d.configErrors);
    for (const r of d.routes) {
      let m = routes.get(r.route);
      if (!m) {
        m = { byStatus: new Map(), latency: newHistogram(), upstreamLatency: newHistogram() };
        routes.set(r.route, m);
      }
      for (const [s, c] of r.byStatus) m.byStatus.set(s, (m.byStatus.get(s) ?? 0) + c);
      mergeHist(m.latency, r.latency);
      mergeHist(m.upstreamLatency, r.upstreamLatency);
    }
  }
  for (const [route, m] of routes) out.routes.push({ route, byStatus: [...m.byStatus], latency: m.latency, upstreamLatency: m.upstreamLatency });
  out.pluginErrors = [...pluginErrors];
  return out;
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export interface HealthSample {
  upstream: string;
  node: string;
  healthy: boolean;
}

/** Merge worker dumps and render the Prometheus text exposition format. */
export function renderPrometheus(dumps: MetricsDump[], extra: { health?: HealthSample[]; configRevision?: number; workers?: number } = {}): string {
  const merged = mergeDumps(dumps);
  const routes = new Map(merged.routes.map((r) => [r.route, { byStatus: new Map(r.byStatus), latency: r.latency, upstreamLatency: r.upstreamLatency }]));
  const { connections, configReloads: reloads, configErrors } = merged;
  const out: string[] = [];
  out.push('# HELP gatehouse_http_requests_total Requests answered, by route and status.');
  out.push('# TYPE gatehouse_http_requests_total counter');
  for (const [route, m] of routes) {
    for (const [status, c] of [...m.byStatus].sort((a, b) => a[0] - b[0])) {
      out.push(`gatehouse_http_requests_total{route="${esc(route)}",status="${status}"} ${c}`);
    }
  }
  const hist = (name: string, help: string, pick: (m: { latency: Histogram; upstreamLatency: Histogram }) => Histogram) => {
    out.push(`# HELP ${name} ${help}`);
    out.push(`# TYPE ${name} histogram`);
    for (const [route, m] of routes) {
      const h = pick(m);
      if (h.count === 0) continue;
      let cum = 0;
      LATENCY_BUCKETS_MS.forEach((le, i) => {
        cum += h.buckets[i]!;
        out.push(`${name}_bucket{route="${esc(route)}",le="${le / 1000}"} ${cum}`);
      });
      cum += h.buckets[LATENCY_BUCKETS_MS.length]!;
      out.push(`${name}_bucket{route="${esc(route)}",le="+Inf"} ${cum}`);
      out.push(`${name}_sum{route="${esc(route)}"} ${h.sum / 1000}`);
      out.push(`${name}_count{route="${esc(route)}"} ${h.count}`);
    }
  };
  hist('gatehouse_http_request_duration_seconds', 'Time from request arrival to response end, by route.', (m) => m.latency);
  hist('gatehouse_upstream_response_seconds', 'Time from sending to the upstream to its response headers, by route.', (m) => m.upstreamLatency);
  out.push('# HELP gatehouse_upstream_node_healthy Whether an upstream node is in rotation (1) or held out by health checks (0).');
  out.push('# TYPE gatehouse_upstream_node_healthy gauge');
  for (const h of extra.health ?? []) out.push(`gatehouse_upstream_node_healthy{upstream="${esc(h.upstream)}",node="${esc(h.node)}"} ${h.healthy ? 1 : 0}`);
  out.push('# HELP gatehouse_plugin_errors_total Plugin failures, by plugin and phase.');
  out.push('# TYPE gatehouse_plugin_errors_total counter');
  for (const [k, c] of merged.pluginErrors ?? []) {
    const [plugin, phase] = k.split('\0') as [string, string];
    out.push(`gatehouse_plugin_errors_total{plugin="${esc(plugin)}",phase="${esc(phase)}"} ${c}`);
  }
  out.push('# HELP gatehouse_connections_total Client connections accepted.');
  out.push('# TYPE gatehouse_connections_total counter');
  out.push(`gatehouse_connections_total ${connections}`);
  out.push('# HELP gatehouse_config_reloads_total Config changes applied.');
  out.push('# TYPE gatehouse_config_reloads_total counter');
  out.push(`gatehouse_config_reloads_total ${reloads}`);
  out.push('# HELP gatehouse_config_errors_total Config changes refused as invalid.');
  out.push('# TYPE gatehouse_config_errors_total counter');
  out.push(`gatehouse_config_errors_total ${configErrors}`);
  if (extra.workers !== undefined) {
    out.push('# HELP gatehouse_workers Gateway worker processes running.');
    out.push('# TYPE gatehouse_workers gauge');
    out.push(`gatehouse_workers ${extra.workers}`);
  }
  return `${out.join('\n')}\n`;
}
