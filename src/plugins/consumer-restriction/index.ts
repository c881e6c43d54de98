/**
 * @module plugins/consumer-restriction
 * Allows or denies authenticated consumers by name or group, after authentication; a denial wins over an
 * allowance.
 */
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginResponse } from '../../dataplane/plugins/types.js';
import { errorBody } from '../../core/errors.js';
import { PRIORITIES } from '../priorities.js';

const Selector = (what: string) =>
  Type.Optional(
    Type.Object(
      {
        consumers: Type.Optional(
          Type.Array(
            // The pattern of a consumer's username, so a misspelt name with a space or slash is caught at load.
            Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$', description: 'A consumer username.' }),
            { minItems: 1, uniqueItems: true, description: `Consumers ${what}, by username.` },
          ),
        ),
        groups: Type.Optional(
          Type.Array(Type.String({ minLength: 1, maxLength: 128, description: 'A consumer group.' }), {
            minItems: 1,
            uniqueItems: true,
            description: `Consumer groups whose members are ${what}.`,
          }),
        ),
      },
      { additionalProperties: false, description: `Consumers ${what}: by name, by group, or both.` },
    ),
  );

const Config = Type.Object(
  {
    allow: Selector('allowed (everyone else is refused)'),
    deny: Selector('refused (even when also allowed)'),
  },
  { additionalProperties: false, description: 'consumer-restriction on a route, service or globally.' },
);
type Config = Static<typeof Config>;

const json = Object.freeze({ 'content-type': 'application/json' });
/** Built once: a refused consumer always gets the same 403. */
const DENIED: PluginResponse = Object.freeze({ status: 403, body: errorBody('GH_ERR_ACCESS_DENIED'), headers: json });
/** No consumer at all: the route has no auth plugin in front of this one (as APISIX, 401). */
const UNAUTHENTICATED: PluginResponse = Object.freeze({ status: 401, body: errorBody('GH_ERR_AUTH_REQUIRED'), headers: json });

type Selector = NonNullable<Config['allow']>;

export default definePlugin<Config>({
  name: 'consumer-restriction',
  version: '1.0.0',
  priority: PRIORITIES['consumer-restriction'],
  description: 'Allows or denies authenticated consumers by name or group.',
  schema: Config,
  // Not on a consumer: it decides about consumers, so it belongs where they arrive.
  scopes: ['global', 'service', 'route'],
  check(config) {
    const problems: Array<[string, string]> = [];
    if (config.allow === undefined && config.deny === undefined) problems.push(['', 'needs allow or deny']);
    for (const field of ['allow', 'deny'] as const) {
      const s: Selector | undefined = config[field];
      if (s !== undefined && s.consumers === undefined && s.groups === undefined) problems.push([field, 'needs consumers or groups']);
    }
    // A name in both lists is always a mistake: deny would win, so the allow entry could never apply.
    const allowed = new Set(config.allow?.consumers ?? []);
    config.deny?.consumers?.forEach((name, i) => {
      if (allowed.has(name)) problems.push([`deny.consumers[${i}]`, 'is also in allow.consumers (deny wins): list it in one place']);
    });
    const allowedGroups = new Set(config.allow?.groups ?? []);
    config.deny?.groups?.forEach((name, i) => {
      if (allowedGroups.has(name)) problems.push([`deny.groups[${i}]`, 'is also in allow.groups (deny wins): list it in one place']);
    });
    return problems;
  },
  create(config) {
    const denyConsumers = new Set(config.deny?.consumers ?? []);
    const denyGroups = new Set(config.deny?.groups ?? []);
    const hasAllow = config.allow !== undefined;
    const allowConsumers = new Set(config.allow?.consumers ?? []);
    const allowGroups = new Set(config.allow?.groups ?? []);
    return {
      // HOT PATH: at most four set lookups.
      access(ctx) {
        const c = ctx.consumer;
        if (c === null) return UNAUTHENTICATED;
        const group = c.group;
        if (denyConsumers.has(c.username) || (group !== undefined && denyGroups.has(group))) return DENIED;
        if (hasAllow && !allowConsumers.has(c.username) && (group === undefined || !allowGroups.has(group))) return DENIED;
      },
    };
  },
});
