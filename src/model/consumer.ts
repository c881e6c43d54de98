/**
 * @module model/consumer
 * Consumer: an identity that auth plugins recognise by its credentials.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Description, Labels, PluginMap } from './common.js';

export const Consumer = Type.Object(
  {
    username: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$', description: 'Unique consumer name, sent upstream as X-Consumer-Username.' }),
    desc: Type.Optional(Description),
    labels: Type.Optional(Labels),
    group: Type.Optional(Type.String({ maxLength: 128, description: 'Consumer group.' })),
    credentials: Type.Optional(PluginMap),
    plugins: Type.Optional(PluginMap),
  },
  { additionalProperties: false, description: 'An API client identified by its credentials.' },
);
export type Consumer = Static<typeof Consumer>;
