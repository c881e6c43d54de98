/**
 * @module model/declarative
 * The declarative file: the whole gateway configuration in one document (standalone mode and bulk import).
 */
import { Type, type Static } from '@sinclair/typebox';
import { PluginMap } from './common.js';
import { Upstream } from './upstream.js';
import { Route } from './route.js';
import { Service } from './service.js';
import { Consumer } from './consumer.js';
import { Certificate } from './certificate.js';

export const DeclarativeConfig = Type.Object(
  {
    version: Type.Optional(Type.Integer({ minimum: 1, maximum: 1, description: 'Format version; 1.' })),
    upstreams: Type.Array(Upstream, { default: [], description: 'Named upstreams.' }),
    routes: Type.Array(Route, { default: [], description: 'Routes.' }),
    services: Type.Array(Service, { default: [], description: 'Services shared by routes.' }),
    consumers: Type.Array(Consumer, { default: [], description: 'Consumers.' }),
    certificates: Type.Array(Certificate, { default: [], description: 'TLS certificates for the HTTPS port.' }),
    globalPlugins: Type.Optional(PluginMap),
  },
  { additionalProperties: false, description: 'A complete gateway configuration.' },
);
export type DeclarativeConfig = Static<typeof DeclarativeConfig>;
