/**
 * @module plugins/prometheus
 * Richer Prometheus series for the routes it is configured on: requests by route, service, consumer and status;
 * latency histograms (total and upstream) by route, service and consumer; body bytes in and out; upstream
 * latency per node. It records, in the log phase, into this process's Metrics object (env.services.metrics),
 * which the primary merges across workers and serves on the status port's /metrics with the gateway's own
 * series. Nothing is exported from here: no timer, no socket, no per-request allocation once a series exists.
 */
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginContext } from '../../dataplane/plugins/types.js';
import type { NodeState } from '../../dataplane/upstream/types.js';
import { StringEnum } from '../../model/common.js';
import {
  observe,
  TRAFFIC_BANDWIDTH,
  TRAFFIC_LATENCY,
  TRAFFIC_REQUESTS,
  TRAFFIC_UPSTREAM_LATENCY,
  type Histogram,
  type Metrics,
  type TrafficStats,
} from '../../status/metrics.js';
import { PRIORITIES } from '../priorities.js';

/** The families a config can ask for, as written in `metrics`. */
export const METRIC_NAMES = ['requests', 'latency', 'upstreamLatency', 'bandwidth', 'nodeLatency'] as const;
type MetricName = (typeof METRIC_NAMES)[number];

const Config = Type.Object(
  {
    consumerLabel: Type.Boolean({
      default: true,
      description: 'Label series with the authenticated consumer\'s name; false records every request with consumer="" (fewer series).',
    }),
    metrics: Type.Array(
      StringEnum(METRIC_NAMES, {
        description:
          'requests: gatehouse_route_requests_total; latency: gatehouse_route_request_duration_seconds; upstreamLatency: gatehouse_route_upstream_response_seconds; bandwidth: gatehouse_route_bandwidth_bytes_total; nodeLatency: gatehouse_upstream_node_response_seconds.',
      }),
      {
        minItems: 1,
        uniqueItems: true,
        default: [...METRIC_NAMES],
        description: 'The series to record (default all).',
      },
    ),
  },
  { additionalProperties: false, description: 'prometheus on a route, service or globally.' },
);
type Config = Static<typeof Config>;

const FAMILY_BITS: Record<MetricName, number> = {
  requests: TRAFFIC_REQUESTS,
  latency: TRAFFIC_LATENCY,
  upstreamLatency: TRAFFIC_UPSTREAM_LATENCY,
  bandwidth: TRAFFIC_BANDWIDTH,
  nodeLatency: 0,
};

/** The series of one (route, service) seen by one plugin instance: the no-consumer one and one per consumer. */
interface RouteSeries {
  routeId: string;
  serviceId: string | null;
  anonymous: TrafficStats | null;
  byConsumer: Map<string, TrafficStats>;
}

export default definePlugin<Config>({
  name: 'prometheus',
  version: '1.0.0',
  priority: PRIORITIES['prometheus'],
  description: 'Prometheus series by route, service, consumer and status: requests, latency histograms (total and upstream), bandwidth, upstream latency per node.',
  schema: Config,
  // A consumer's config would replace the route's for that consumer only, splitting one route's series between
  // two configs; the consumer is a label instead.
  scopes: ['global', 'service', 'route'],
  create(config, env) {
    const metrics: Metrics = env.services.metrics;
    const wanted = new Set<MetricName>(config.metrics);
    let families = 0;
    for (const m of wanted) families |= FAMILY_BITS[m];
    const useConsumer = config.consumerLabel;
    const latency = wanted.has('latency');
    const upstreamLatency = wanted.has('upstreamLatency');
    const nodeLatency = wanted.has('nodeLatency');
    const upstreamAny = upstreamLatency || nodeLatency;

    // Caches into the process's store, so a request finds its series with identity checks and one map lookup
    // by the consumer's name: no key is built per request. A global or service config gets its own instance
    // per route, so `last` almost always hits; `routes` covers the rest. The store's objects live as long as
    // the process, and these caches as long as this config.
    let last: RouteSeries | null = null;
    const routes = new Map<string, RouteSeries>();
    const nodes = new Map<NodeState, Histogram>();

    function routeSeries(routeId: string, serviceId: string | null): RouteSeries {
      // A reload may move a route to another service: the key is the pair.
      const k = serviceId === null ? routeId : `${routeId}\0${serviceId}`;
      let r = routes.get(k);
      if (r === undefined) {
        r = { routeId, serviceId, anonymous: null, byConsumer: new Map() };
        routes.set(k, r);
      }
      return r;
    }

    function series(r: RouteSeries, consumer: string): TrafficStats {
      const s = metrics.trafficStats(r.routeId, r.serviceId ?? '', consumer);
      s.families |= families;
      if (consumer === '') r.anonymous = s;
      else r.byConsumer.set(consumer, s);
      return s;
    }

    function nodeHistogram(ctx: PluginContext, node: NodeState): Histogram {
      const h = metrics.upstreamNode(ctx.upstream.key, node.key);
      // NodeState objects are per upstream, so the object alone is the key (and is kept across reloads).
      nodes.set(node, h);
      return h;
    }

    return {
      /** HOT PATH (after the response, off the request's critical path). */
      log(ctx) {
        const routeId = ctx.routeId;
        const serviceId = ctx.serviceId;
        let r = last;
        if (r === null || r.routeId !== routeId || r.serviceId !== serviceId) {
          r = routeSeries(routeId, serviceId);
          last = r;
        }
        const consumer = useConsumer ? ctx.consumer : null;
        let s: TrafficStats | null | undefined;
        if (consumer === null) s = r.anonymous ?? series(r, '');
        else s = r.byConsumer.get(consumer.username) ?? series(r, consumer.username);
        // No status: the client left before any response (499, as the gateway's own series count it).
        const c = s.status(ctx.status === 0 ? 499 : ctx.status);
        c.count++;
        c.bytesIn += ctx.bytesReceived;
        c.bytesOut += ctx.bytesSent;
        if (latency) observe(s.latency, ctx.endedAt - ctx.start);
        if (upstreamAny && ctx.upstreamLatency >= 0) {
          if (upstreamLatency) observe(s.upstreamLatency, ctx.upstreamLatency);
          const node = ctx.node;
          if (nodeLatency && node !== null) observe(nodes.get(node) ?? nodeHistogram(ctx, node), ctx.upstreamLatency);
        }
      },
    };
  },
});
