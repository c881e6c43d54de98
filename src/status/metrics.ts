/**
 * @module status/metrics
 * Request metrics kept per worker with plain counters (cheap on the hot path), merged across workers by the
 * primary and written in the Prometheus text format. Two layers: the per-route series every gateway exports
 * (RouteStats), and the richer per route, service, consumer and status series the prometheus plugin records
 * (TrafficStats, and upstream latency per node).
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

/** HOT PATH: count one observation, in milliseconds. */
export function observe(h: Histogram, ms: number): void {
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
  /** Plugins' own counters: [plugin, event, label pairs (sorted, as JSON), value]. */
  pluginCounters?: Array<[string, string, string, number]>;
  /** The prometheus plugin's series (absent in dumps from before it existed). */
  traffic?: TrafficDump[];
  /** Upstream latency per node, recorded by the prometheus plugin. */
  upstreamNodes?: UpstreamNodeDump[];
}

/** Which of a TrafficStats' families are exported (bits, OR-ed together): the plugin's `metrics` option. */
export const TRAFFIC_REQUESTS = 1;
export const TRAFFIC_LATENCY = 2;
export const TRAFFIC_UPSTREAM_LATENCY = 4;
export const TRAFFIC_BANDWIDTH = 8;

/** Requests and body bytes of one (route, service, consumer, status). */
export interface StatusCounters {
  count: number;
  /** Request body bytes received from clients. */
  bytesIn: number;
  /** Response body bytes sent to clients. */
  bytesOut: number;
}

/**
 * The prometheus plugin's series of one (route, service, consumer) in one worker; "" for no service or no
 * consumer. Counters and bandwidth are kept per status; the latency histograms are not (a histogram is 18
 * lines of output, so per status it would multiply the largest part of /metrics for little gain).
 */
export class TrafficStats {
  readonly byStatus = new Map<number, StatusCounters>();
  readonly latency = newHistogram();
  readonly upstreamLatency = newHistogram();
  /** TRAFFIC_* bits of the families to export, set by the plugin instances that record here. */
  families = 0;
  constructor(
    readonly route: string,
    readonly service: string,
    readonly consumer: string,
  ) {}

  /** HOT PATH: the counters of one status, made on its first request. */
  status(code: number): StatusCounters {
    let c = this.byStatus.get(code);
    if (c === undefined) {
      c = { count: 0, bytesIn: 0, bytesOut: 0 };
      this.byStatus.set(code, c);
    }
    return c;
  }
}

export interface TrafficDump {
  route: string;
  service: string;
  consumer: string;
  families: number;
  /** [status, requests, bytes in, bytes out]. */
  byStatus: Array<[number, number, number, number]>;
  latency: Histogram;
  upstreamLatency: Histogram;
}

export interface UpstreamNodeDump {
  /** The upstream's key, as in gatehouse_upstream_node_healthy ("upstream:<id>", "route:<id>", "service:<id>"). */
  upstream: string;
  /** "host:port". */
  node: string;
  latency: Histogram;
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
  /** Reads the plugins' counters when a dump is made (set by the gateway: its plugin state). */
  pluginCounters: (() => Array<{ plugin: string; counter: { event: string; value: number; labels?: Record<string, string> } }>) | null = null;
  /** The prometheus plugin's series by "route\0service\0consumer". */
  private readonly traffic = new Map<string, TrafficStats>();
  /** Upstream latency per node by "upstream\0node". */
  private readonly upstreamNodes = new Map<string, UpstreamNodeDump>();

  /**
   * The series of one (route, service, consumer), made on first use. Not for the hot path (it builds a key):
   * callers keep the object, which stays valid for the life of the process.
   */
  trafficStats(route: string, service: string, consumer: string): TrafficStats {
    const k = `${route}\0${service}\0${consumer}`;
    let s = this.traffic.get(k);
    if (!s) {
      s = new TrafficStats(route, service, consumer);
      this.traffic.set(k, s);
    }
    return s;
  }

  /** The upstream latency histogram of one node, made on first use. Not for the hot path: keep the object. */
  upstreamNode(upstream: string, node: string): Histogram {
    const k = `${upstream}\0${node}`;
    let s = this.upstreamNodes.get(k);
    if (!s) {
      s = { upstream, node, latency: newHistogram() };
      this.upstreamNodes.set(k, s);
    }
    return s.latency;
  }

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
      pluginCounters: (this.pluginCounters?.() ?? []).map(({ plugin, counter }) => [
        plugin,
        counter.event,
        JSON.stringify(Object.entries(counter.labels ?? {}).sort(([a], [b]) => a.localeCompare(b))),
        counter.value,
      ]),
      traffic: [...this.traffic.values()].map((t) => ({
        route: t.route,
        service: t.service,
        consumer: t.consumer,
        families: t.families,
        byStatus: [...t.byStatus].map(([s, c]) => [s, c.count, c.bytesIn, c.bytesOut] as [number, number, number, number]),
        latency: t.latency,
        upstreamLatency: t.upstreamLatency,
      })),
      upstreamNodes: [...this.upstreamNodes.values()],
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
  const out: MetricsDump = { routes: [], connections: 0, configReloads: 0, configErrors: 0, pluginErrors: [], traffic: [], upstreamNodes: [] };
  const pluginErrors = new Map<string, number>();
  const pluginCounters = new Map<string, [string, string, string, number]>();
  const traffic = new Map<string, { dump: TrafficDump; byStatus: Map<number, [number, number, number, number]> }>();
  const nodes = new Map<string, UpstreamNodeDump>();
  for (const d of dumps) {
    for (const t of d.traffic ?? []) {
      const k = `${t.route}\0${t.service}\0${t.consumer}`;
      let m = traffic.get(k);
      if (!m) {
        m = { dump: { route: t.route, service: t.service, consumer: t.consumer, families: 0, byStatus: [], latency: newHistogram(), upstreamLatency: newHistogram() }, byStatus: new Map() };
        traffic.set(k, m);
      }
      m.dump.families |= t.families;
      for (const [s, count, bytesIn, bytesOut] of t.byStatus) {
        const c = m.byStatus.get(s);
        if (c) {
          c[1] += count;
          c[2] += bytesIn;
          c[3] += bytesOut;
        } else m.byStatus.set(s, [s, count, bytesIn, bytesOut]);
      }
      mergeHist(m.dump.latency, t.latency);
      mergeHist(m.dump.upstreamLatency, t.upstreamLatency);
    }
    for (const n of d.upstreamNodes ?? []) {
      const k = `${n.upstream}\0${n.node}`;
      let m = nodes.get(k);
      if (!m) {
        m = { upstream: n.upstream, node: n.node, latency: newHistogram() };
        nodes.set(k, m);
      }
      mergeHist(m.latency, n.latency);
    }
    for (const [k, c] of d.pluginErrors ?? []) pluginErrors.set(k, (pluginErrors.get(k) ?? 0) + c);
    for (const [plugin, event, labels, value] of d.pluginCounters ?? []) {
      const k = `${plugin}\0${event}\0${labels}`;
      const cur = pluginCounters.get(k);
      if (cur) cur[3] += value;
      else pluginCounters.set(k, [plugin, event, labels, value]);
    }
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
  out.pluginCounters = [...pluginCounters.values()];
  for (const m of traffic.values()) {
    m.dump.byStatus = [...m.byStatus.values()].sort((a, b) => a[0] - b[0]);
    out.traffic!.push(m.dump);
  }
  out.upstreamNodes = [...nodes.values()];
  return out;
}

/** A label value in the text format: backslash, double quote and line feed escaped. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
const esc = escapeLabelValue;

export interface HealthSample {
  upstream: string;
  node: string;
  healthy: boolean;
}

/** The sample lines of one histogram series (cumulative buckets in seconds, +Inf, sum, count); `labels` is `a="x",b="y"`. */
function histogramLines(out: string[], name: string, labels: string, h: Histogram): void {
  let cum = 0;
  for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) {
    cum += h.buckets[i]!;
    out.push(`${name}_bucket{${labels},le="${LATENCY_BUCKETS_MS[i]! / 1000}"} ${cum}`);
  }
  cum += h.buckets[LATENCY_BUCKETS_MS.length]!;
  out.push(`${name}_bucket{${labels},le="+Inf"} ${cum}`);
  out.push(`${name}_sum{${labels}} ${h.sum / 1000}`);
  out.push(`${name}_count{${labels}} ${h.count}`);
}

/** The prometheus plugin's families, written only once a route with the plugin has served a request. */
function renderTraffic(out: string[], merged: MetricsDump): void {
  const traffic = merged.traffic ?? [];
  const labelsOf = (t: TrafficDump) => `route="${esc(t.route)}",service="${esc(t.service)}",consumer="${esc(t.consumer)}"`;
  if (traffic.some((t) => t.families & TRAFFIC_REQUESTS)) {
    out.push('# HELP gatehouse_route_requests_total Requests through routes with the prometheus plugin, by route, service, consumer and status.');
    out.push('# TYPE gatehouse_route_requests_total counter');
    for (const t of traffic) {
      if (!(t.families & TRAFFIC_REQUESTS)) continue;
      const labels = labelsOf(t);
      for (const [status, count] of t.byStatus) out.push(`gatehouse_route_requests_total{${labels},status="${status}"} ${count}`);
    }
  }
  const hist = (bit: number, name: string, help: string, pick: (t: TrafficDump) => Histogram) => {
    const some = traffic.filter((t) => t.families & bit && pick(t).count > 0);
    if (some.length === 0) return;
    out.push(`# HELP ${name} ${help}`);
    out.push(`# TYPE ${name} histogram`);
    for (const t of some) histogramLines(out, name, labelsOf(t), pick(t));
  };
  hist(TRAFFIC_LATENCY, 'gatehouse_route_request_duration_seconds', 'Time from request arrival to response end, by route, service and consumer (prometheus plugin).', (t) => t.latency);
  hist(
    TRAFFIC_UPSTREAM_LATENCY,
    'gatehouse_route_upstream_response_seconds',
    'Time from sending to the upstream to its response headers, by route, service and consumer (prometheus plugin).',
    (t) => t.upstreamLatency,
  );
  if (traffic.some((t) => t.families & TRAFFIC_BANDWIDTH)) {
    out.push('# HELP gatehouse_route_bandwidth_bytes_total Body bytes received from clients (type="ingress") and sent to them (type="egress"), by route, service, consumer and status (prometheus plugin).');
    out.push('# TYPE gatehouse_route_bandwidth_bytes_total counter');
    for (const t of traffic) {
      if (!(t.families & TRAFFIC_BANDWIDTH)) continue;
      const labels = labelsOf(t);
      for (const [status, , bytesIn, bytesOut] of t.byStatus) {
        out.push(`gatehouse_route_bandwidth_bytes_total{${labels},status="${status}",type="ingress"} ${bytesIn}`);
        out.push(`gatehouse_route_bandwidth_bytes_total{${labels},status="${status}",type="egress"} ${bytesOut}`);
      }
    }
  }
  const nodes = (merged.upstreamNodes ?? []).filter((n) => n.latency.count > 0);
  if (nodes.length > 0) {
    out.push('# HELP gatehouse_upstream_node_response_seconds Time from sending to an upstream node to its response headers, by upstream and node (prometheus plugin).');
    out.push('# TYPE gatehouse_upstream_node_response_seconds histogram');
    for (const n of nodes) histogramLines(out, 'gatehouse_upstream_node_response_seconds', `upstream="${esc(n.upstream)}",node="${esc(n.node)}"`, n.latency);
  }
}

/** One discovery watch, as the process that runs the watches reports it. */
export interface DiscoverySample {
  /** The watch's spec key. */
  key: string;
  /** The discovery type (dns, etcd, consul, consul-kv). */
  source: string;
  service: string;
  cluster: string;
  nodes: number;
  up: boolean;
  errors: number;
}

/** The discovery families: nodes per watch, whether its source answers, and its failed reads. */
function renderDiscovery(out: string[], samples: readonly DiscoverySample[]): void {
  const labels = (d: DiscoverySample) => `source="${esc(d.source)}",cluster="${esc(d.cluster)}",service="${esc(d.service)}",watch="${esc(d.key)}"`;
  out.push('# HELP gatehouse_discovery_nodes Nodes a discovery watch currently gives its upstreams (the last known ones while its source is down).');
  out.push('# TYPE gatehouse_discovery_nodes gauge');
  for (const d of samples) out.push(`gatehouse_discovery_nodes{${labels(d)}} ${d.nodes}`);
  out.push('# HELP gatehouse_discovery_source_up Whether the last read of a discovery source worked (1) or failed (0, its last known nodes are kept).');
  out.push('# TYPE gatehouse_discovery_source_up gauge');
  for (const d of samples) out.push(`gatehouse_discovery_source_up{${labels(d)}} ${d.up ? 1 : 0}`);
  out.push('# HELP gatehouse_discovery_errors_total Failed reads of a discovery source since its watch started.');
  out.push('# TYPE gatehouse_discovery_errors_total counter');
  for (const d of samples) out.push(`gatehouse_discovery_errors_total{${labels(d)}} ${d.errors}`);
}

/** Merge worker dumps and render the Prometheus text exposition format. */
export function renderPrometheus(
  dumps: MetricsDump[],
  extra: { health?: HealthSample[]; configRevision?: number; workers?: number; configSourceUp?: boolean; discovery?: readonly DiscoverySample[] } = {},
): string {
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
      if (h.count > 0) histogramLines(out, name, `route="${esc(route)}"`, h);
    }
  };
  hist('gatehouse_http_request_duration_seconds', 'Time from request arrival to response end, by route.', (m) => m.latency);
  hist('gatehouse_upstream_response_seconds', 'Time from sending to the upstream to its response headers, by route.', (m) => m.upstreamLatency);
  renderTraffic(out, merged);
  out.push('# HELP gatehouse_upstream_node_healthy Whether an upstream node is in rotation (1) or held out by health checks (0).');
  out.push('# TYPE gatehouse_upstream_node_healthy gauge');
  for (const h of extra.health ?? []) out.push(`gatehouse_upstream_node_healthy{upstream="${esc(h.upstream)}",node="${esc(h.node)}"} ${h.healthy ? 1 : 0}`);
  out.push('# HELP gatehouse_plugin_errors_total Plugin failures, by plugin and phase.');
  out.push('# TYPE gatehouse_plugin_errors_total counter');
  for (const [k, c] of merged.pluginErrors ?? []) {
    const [plugin, phase] = k.split('\0') as [string, string];
    out.push(`gatehouse_plugin_errors_total{plugin="${esc(plugin)}",phase="${esc(phase)}"} ${c}`);
  }
  out.push('# HELP gatehouse_plugin_events_total Events plugins count (cache hits, log records dropped...), by plugin and event.');
  out.push('# TYPE gatehouse_plugin_events_total counter');
  for (const [plugin, event, labels, value] of merged.pluginCounters ?? []) {
    const extra = (JSON.parse(labels) as Array<[string, string]>)
      .filter(([k]) => /^[a-z_][a-z0-9_]*$/.test(k) && k !== 'plugin' && k !== 'event')
      .map(([k, v]) => `,${k}="${esc(v)}"`)
      .join('');
    out.push(`gatehouse_plugin_events_total{plugin="${esc(plugin)}",event="${esc(event)}"${extra}} ${value}`);
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
  if (extra.configSourceUp !== undefined) {
    out.push('# HELP gatehouse_config_source_up Whether the config source (etcd) is reachable (1) or the gateway serves its last config without it (0).');
    out.push('# TYPE gatehouse_config_source_up gauge');
    out.push(`gatehouse_config_source_up ${extra.configSourceUp ? 1 : 0}`);
  }
  if (extra.discovery !== undefined) renderDiscovery(out, extra.discovery);
  if (extra.workers !== undefined) {
    out.push('# HELP gatehouse_workers Gateway worker processes running.');
    out.push('# TYPE gatehouse_workers gauge');
    out.push(`gatehouse_workers ${extra.workers}`);
  }
  return `${out.join('\n')}\n`;
}
