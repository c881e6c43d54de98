/**
 * @module model/route
 * Route: what requests it matches and where they go.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Description, HttpMethod, Id, Labels, MatchCondition, PluginMap, Timeouts } from './common.js';
import { UpstreamBody } from './upstream.js';

export const RoutePath = Type.String({
  minLength: 1,
  maxLength: 4096,
  pattern: '^/',
  description: 'Exact path ("/users"), prefix ("/users/*"), or with named parameters ("/users/:id/orders").',
});

export const Route = Type.Object(
  {
    id: Id,
    name: Type.Optional(Type.String({ maxLength: 256, description: 'Display name.' })),
    desc: Type.Optional(Description),
    labels: Type.Optional(Labels),
    enabled: Type.Boolean({ default: true, description: 'A disabled route matches nothing.' }),
    paths: Type.Array(RoutePath, { minItems: 1, maxItems: 256, description: 'Paths this route matches.' }),
    methods: Type.Optional(Type.Array(HttpMethod, { minItems: 1, uniqueItems: true, description: 'Methods this route matches; all when absent.' })),
    hosts: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 253, pattern: '^(\\*\\.)?[A-Za-z0-9_.-]+$' }), {
        minItems: 1,
        maxItems: 256,
        description: 'Host names this route matches, exact ("api.example.com") or wildcard ("*.example.com"); any host when absent.',
      }),
    ),
    match: Type.Optional(Type.Array(MatchCondition, { maxItems: 64, description: 'Extra conditions on headers, query arguments and cookies; all must hold.' })),
    priority: Type.Integer({ minimum: -1000000, maximum: 1000000, default: 0, description: 'Among routes that match the same host and path, the higher priority is tried first.' }),
    upstreamId: Type.Optional(Id),
    upstream: Type.Optional(UpstreamBody),
    serviceId: Type.Optional(Id),
    plugins: Type.Optional(PluginMap),
    websocket: Type.Boolean({ default: false, description: 'Allow WebSocket upgrades on this route.' }),
    timeout: Type.Optional(Timeouts),
    maxBodySize: Type.Optional(Type.Integer({ minimum: 0, description: 'Largest request body in bytes (413 above it); 0 for no limit. Defaults to proxy.maxBodySize.' })),
  },
  { additionalProperties: false, description: 'Matches requests and sends them to an upstream.' },
);
export type Route = Static<typeof Route>;
