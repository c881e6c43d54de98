/**
 * @module plugins/request-id
 * Gives every request an id (or keeps the client's), passes it upstream and echoes it in the response.
 */
import { randomUUID } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin } from '../../dataplane/plugins/types.js';
import { PRIORITIES } from '../priorities.js';

const Config = Type.Object(
  {
    header: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$', default: 'X-Request-Id', description: 'Header that carries the id, upstream and back.' }),
    keepIncoming: Type.Boolean({ default: true, description: 'Keep an id the client sent (when it is 1 to 128 visible ASCII characters) instead of making a new one.' }),
  },
  { additionalProperties: false, description: 'request-id on a route, service or globally.' },
);
type Config = Static<typeof Config>;

/** Visible ASCII without separators that could break a log line or a header. */
const SAFE_ID = /^[\x21-\x7e]{1,128}$/;

export default definePlugin<Config>({
  name: 'request-id',
  version: '1.0.0',
  priority: PRIORITIES['request-id'],
  description: 'Gives every request an id, passes it upstream and echoes it in the response.',
  schema: Config,
  scopes: ['global', 'service', 'route'],
  create(config) {
    const lower = config.header.toLowerCase();
    return {
      rewrite(ctx) {
        const incoming = ctx.headers[lower];
        const id = config.keepIncoming && typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
        ctx.vars['request-id'] = id;
        ctx.setUpstreamHeader(config.header, id);
        ctx.setResponseHeader(config.header, id);
      },
    };
  },
});
