/**
 * @module model/upstream
 * Upstream: a set of nodes (static, discovered, or both), a balancer, timeouts, retries and health checks.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Description, Id, Labels, StringEnum, Timeouts } from './common.js';

export const UpstreamNode = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 253, description: 'Node host name or IP address.' }),
    port: Type.Integer({ minimum: 1, maximum: 65535, description: 'Node port.' }),
    weight: Type.Integer({ minimum: 0, maximum: 100000, default: 1, description: 'Relative share of traffic; 0 takes the node out of rotation.' }),
    metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Free-form node metadata (zone, version, tags...).' })),
  },
  { additionalProperties: false, description: 'One upstream node.' },
);
export type UpstreamNode = Static<typeof UpstreamNode>;

export const HashOn = Type.Object(
  {
    type: StringEnum(['header', 'cookie', 'query', 'ip', 'uri'], {
      default: 'ip',
      description: 'What the consistent hash is computed over: a header, cookie or query argument, the client IP, or the request path.',
    }),
    key: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Header, cookie or query argument name (for those types).' })),
  },
  { additionalProperties: false, description: 'Hash key for the chash balancer.' },
);
export type HashOn = Static<typeof HashOn>;

export const ActiveHealthCheck = Type.Object(
  {
    type: StringEnum(['http', 'https', 'tcp'], { default: 'http', description: 'Probe kind.' }),
    path: Type.String({ pattern: '^/', default: '/', description: 'Path the HTTP probe requests.' }),
    host: Type.Optional(Type.String({ description: 'Host header of the probe; defaults to the node address.' })),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Port to probe instead of the node port.' })),
    interval: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 5000, description: 'Milliseconds between probes of one node.' }),
    timeout: Type.Integer({ minimum: 10, maximum: 600_000, default: 2000, description: 'Milliseconds before a probe counts as failed.' }),
    healthyThreshold: Type.Integer({ minimum: 1, maximum: 254, default: 2, description: 'Consecutive successful probes that bring a node back.' }),
    unhealthyThreshold: Type.Integer({ minimum: 1, maximum: 254, default: 3, description: 'Consecutive failed probes that take a node out.' }),
    expectedStatuses: Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), {
      minItems: 1,
      default: [200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 307, 308],
      description: 'HTTP statuses that count as a healthy answer.',
    }),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Extra headers sent with each probe.' })),
  },
  { additionalProperties: false, description: 'Active health checking: the gateway probes each node.' },
);

export const PassiveHealthCheck = Type.Object(
  {
    unhealthyThreshold: Type.Integer({ minimum: 1, maximum: 254, default: 3, description: 'Consecutive failed requests that take a node out.' }),
    failureStatuses: Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), {
      default: [502, 503, 504],
      description: 'Upstream statuses that count as a failure (connection errors and timeouts always do).',
    }),
    cooldown: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 10000, description: 'Milliseconds a node stays out before it gets traffic again (without active checks).' }),
  },
  { additionalProperties: false, description: 'Passive health checking: real traffic results take failing nodes out.' },
);

export const HealthCheck = Type.Object(
  {
    active: Type.Optional(ActiveHealthCheck),
    passive: Type.Optional(PassiveHealthCheck),
  },
  { additionalProperties: false, description: 'Health checks for the nodes of this upstream.' },
);
export type HealthCheck = Static<typeof HealthCheck>;

export const BalancerType = StringEnum(['roundrobin', 'least_conn', 'chash', 'ewma'], {
  default: 'roundrobin',
  description: 'roundrobin (smooth weighted), least_conn, chash (consistent hashing), ewma (latency-aware).',
});
export type BalancerType = Static<typeof BalancerType>;

export const Keepalive = Type.Object(
  {
    connections: Type.Integer({ minimum: 1, maximum: 65536, default: 256, description: 'Most open connections per node.' }),
    idleTimeout: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 60000, description: 'Milliseconds an idle connection is kept.' }),
  },
  { additionalProperties: false, description: 'Connection pool per node.' },
);

export const UpstreamTls = Type.Object(
  {
    verify: Type.Boolean({ default: true, description: 'Verify the node certificate.' }),
    serverName: Type.Optional(Type.String({ description: 'SNI and name to verify; defaults to the node host.' })),
    ca: Type.Optional(Type.String({ description: 'PEM CA bundle to trust instead of the system store.' })),
  },
  { additionalProperties: false, description: 'TLS settings when scheme is https.' },
);

export const DISCOVERY_TYPES = ['dns', 'etcd', 'consul', 'consul-kv'] as const;

export const UpstreamDiscovery = Type.Object(
  {
    type: StringEnum(DISCOVERY_TYPES, {
      description: 'The discovery source: dns (A/AAAA or SRV records), etcd (a registry prefix), consul (the service catalog) or consul-kv (a KV folder).',
    }),
    service: Type.String({
      minLength: 1,
      maxLength: 512,
      description:
        'What to follow: a DNS name (dns; names starting with "_" are SRV names), the service name under the registry prefix (etcd), the Consul service name (consul), or the folder under the KV prefix (consul-kv).',
    }),
    cluster: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$', description: 'consul, consul-kv: the cluster named in the settings (discovery.consul); default: the first one there.' }),
    ),
    tags: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 256 }), {
        maxItems: 64,
        description: 'Only instances carrying every one of these tags (consul: service tags; etcd: the metadata.tags list of each instance).',
      }),
    ),
    port: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 65535, description: 'dns: the port of the nodes an A/AAAA name gives; default 80, or 443 with scheme https. SRV records carry their own.' }),
    ),
    emptyGracePeriod: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 86_400_000,
        description: 'Milliseconds the source must keep answering "no nodes" before this upstream loses the nodes it had; default: discovery.emptyGracePeriod of the settings.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Where the nodes come from at run time, besides (or instead of) the static nodes.' },
);
export type UpstreamDiscovery = Static<typeof UpstreamDiscovery>;

/** Upstream fields without the id: used inline in routes and services. */
export const UpstreamBody = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 256, description: 'Display name.' })),
    desc: Type.Optional(Description),
    labels: Type.Optional(Labels),
    type: BalancerType,
    hashOn: Type.Optional(HashOn),
    nodes: Type.Array(UpstreamNode, {
      maxItems: 10000,
      default: [],
      description: 'The static nodes traffic is balanced over; required unless discovery is set, whose nodes are added to these.',
    }),
    discovery: Type.Optional(UpstreamDiscovery),
    scheme: StringEnum(['http', 'https'], { default: 'http', description: 'Protocol to the nodes.' }),
    passHost: StringEnum(['pass', 'node', 'rewrite'], {
      default: 'pass',
      description: 'Host header sent upstream: pass the client\'s, the node\'s address, or upstreamHost.',
    }),
    upstreamHost: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Host header sent when passHost is rewrite.' })),
    timeout: Type.Optional(Timeouts),
    retries: Type.Integer({ minimum: 0, maximum: 10, default: 1, description: 'How many other nodes to try after a connection failure (and after 502/503/504 for idempotent methods).' }),
    keepalive: Type.Optional(Keepalive),
    healthCheck: Type.Optional(HealthCheck),
    tls: Type.Optional(UpstreamTls),
  },
  { additionalProperties: false },
);
export type UpstreamBody = Static<typeof UpstreamBody>;

export const Upstream = Type.Composite([Type.Object({ id: Id }), UpstreamBody], {
  additionalProperties: false,
  description: 'A named set of nodes that routes and services send traffic to.',
});
export type Upstream = Static<typeof Upstream>;
