/**
 * @module plugins/key-auth
 * Authenticates a consumer by an API key sent in a header or a query argument.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { Consumer } from '../../model/consumer.js';
import { definePlugin } from '../../dataplane/plugins/types.js';
import { PRIORITIES } from '../priorities.js';
import { queryValue, withoutQueryArg } from '../util.js';

const Config = Type.Object(
  {
    header: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$', default: 'apikey', description: 'Request header the key is read from.' }),
    query: Type.String({ minLength: 1, maxLength: 128, default: 'apikey', description: 'Query argument the key is read from when the header is absent.' }),
    hideCredentials: Type.Boolean({ default: true, description: 'Remove the key (header and query argument) before the request goes upstream.' }),
  },
  { additionalProperties: false, description: 'key-auth on a route, service or globally.' },
);
type Config = Static<typeof Config>;

const Credential = Type.Object(
  {
    key: Type.String({ minLength: 8, maxLength: 512, writeOnly: true, description: 'The API key (at least 8 characters; write-only in the admin API).' }),
  },
  { additionalProperties: false, description: 'A consumer\'s API key.' },
);
type Credential = Static<typeof Credential>;

export default definePlugin<Config, Credential, Map<string, Consumer>>({
  name: 'key-auth',
  version: '1.0.0',
  priority: PRIORITIES['key-auth'],
  description: 'Authenticates a consumer by an API key in a header or query argument.',
  schema: Config,
  scopes: ['global', 'service', 'route'],
  credentialSchema: Credential,
  credentialKey: (c) => c.key,
  indexCredentials(entries) {
    const byKey = new Map<string, Consumer>();
    for (const e of entries) byKey.set(e.credential.key, e.consumer);
    return byKey;
  },
  create(config, env) {
    const byKey = (env.credentials as Map<string, Consumer> | undefined) ?? new Map<string, Consumer>();
    const header = config.header.toLowerCase();
    const arg = config.query;
    return {
      authenticate(ctx) {
        let key = ctx.headers[header] as string | string[] | undefined;
        if (Array.isArray(key)) key = key[0];
        let fromQuery = false;
        if (key === undefined) {
          key = queryValue(ctx.query, arg);
          fromQuery = key !== undefined;
        }
        if (config.hideCredentials) {
          ctx.removeUpstreamHeader(header);
          if (fromQuery) ctx.query = withoutQueryArg(ctx.query, arg);
        }
        if (key === undefined || key === '') return { missing: true };
        const consumer = byKey.get(key);
        return consumer ? { consumer } : { invalid: true };
      },
    };
  },
});
