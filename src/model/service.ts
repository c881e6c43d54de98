/**
 * @module model/service
 * Service: an upstream and plugins shared by several routes.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Description, Id, Labels, PluginMap } from './common.js';
import { UpstreamBody } from './upstream.js';

export const Service = Type.Object(
  {
    id: Id,
    name: Type.Optional(Type.String({ maxLength: 256, description: 'Display name.' })),
    desc: Type.Optional(Description),
    labels: Type.Optional(Labels),
    upstreamId: Type.Optional(Id),
    upstream: Type.Optional(UpstreamBody),
    plugins: Type.Optional(PluginMap),
  },
  { additionalProperties: false, description: 'An upstream and plugins shared by the routes that name it.' },
);
export type Service = Static<typeof Service>;
