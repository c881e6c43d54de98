/**
 * @module plugins/ip-restriction
 * Allows or denies requests by the client's address (IPv4 or IPv6, single addresses or CIDR ranges), before
 * authentication so a refused address learns nothing about credentials.
 */
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginResponse } from '../../dataplane/plugins/types.js';
import { errorBody } from '../../core/errors.js';
import { PRIORITIES } from '../priorities.js';
import { AddressMatcher, parseRule, type Rule } from '../../core/cidr.js';

const AddressList = (what: string) =>
  Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 64, description: 'An IPv4 or IPv6 address ("192.0.2.7", "2001:db8::1") or CIDR range ("10.0.0.0/8", "2001:db8::/32").' }), {
      minItems: 1,
      description: what,
    }),
  );

const Config = Type.Object(
  {
    allow: AddressList('Only clients in these addresses or ranges get through. Give allow or deny, not both.'),
    deny: AddressList('Clients in these addresses or ranges are refused. Give allow or deny, not both.'),
  },
  { additionalProperties: false, description: 'ip-restriction on a route, service or globally.' },
);
type Config = Static<typeof Config>;

/** Built once: every refusal is the same 403. */
const DENIED: PluginResponse = Object.freeze({ status: 403, body: errorBody('GH_ERR_ACCESS_DENIED'), headers: Object.freeze({ 'content-type': 'application/json' }) });

export default definePlugin<Config>({
  name: 'ip-restriction',
  version: '1.0.0',
  priority: PRIORITIES['ip-restriction'],
  description: 'Allows or denies requests by the client address, before authentication.',
  schema: Config,
  // Not on a consumer: consumer plugins start after authentication, and this must decide before it.
  scopes: ['global', 'service', 'route'],
  check(config) {
    if (config.allow !== undefined && config.deny !== undefined) return [['', 'give either allow or deny, not both']];
    const list = config.allow ?? config.deny;
    const field = config.allow !== undefined ? 'allow' : 'deny';
    if (list === undefined) return [['', 'needs allow or deny']];
    const problems: Array<[string, string]> = [];
    list.forEach((text, i) => {
      const r = parseRule(text);
      if (typeof r === 'string') problems.push([`${field}[${i}]`, r]);
    });
    return problems;
  },
  create(config, env) {
    const allowMode = config.allow !== undefined;
    const rules = (config.allow ?? config.deny ?? []).map((text, i) => {
      const r = parseRule(text);
      // check() refuses these when config is validated: reaching here means validation was skipped.
      if (typeof r === 'string') throw new Error(`${env.path}.${allowMode ? 'allow' : 'deny'}[${i}]: ${r}`);
      return r;
    });
    const matcher = new AddressMatcher(rules);
    return {
      // HOT PATH: one or two BlockList lookups.
      rewrite(ctx) {
        const listed = matcher.has(ctx.clientIp);
        // Not an address (a trusted proxy sent something else): refused in both modes rather than guessed at.
        if (listed === null || listed !== allowMode) return DENIED;
      },
    };
  },
});
