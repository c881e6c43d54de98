/**
 * @module plugins/limits/shared
 * What limit-count, limit-req and limit-conn share: the key a request is counted under (compiled once per
 * config), the refusal they answer with, and the schema fields for both.
 */
import { Type } from '@sinclair/typebox';
import { errorBody } from '../../core/errors.js';
import type { PluginContext, PluginResponse } from '../../dataplane/plugins/types.js';
import { cookieValue, queryValue } from '../util.js';

const KeyPart = Type.String({
  pattern: '^(remote_addr|consumer|route|service|(header|query|cookie):[A-Za-z0-9!#$%&\'*+.^_`|~-]+)$',
  description: 'remote_addr (the client address), consumer, route, service, header:<name>, query:<name> or cookie:<name>.',
});

export const KeyParts = Type.Union(
  [
    KeyPart,
    Type.Array(KeyPart, { minItems: 1, maxItems: 8, uniqueItems: true, description: 'Several parts, combined.' }),
  ],
  {
    default: 'remote_addr',
    description:
      'What requests are counted together: one part or a list of parts whose values are combined. A part a request does not have (no consumer, no such header) is replaced by the client address, so such requests are limited per client rather than all together.',
  },
);

/** The key parts of a config, as a list. */
export function keyParts(key: string | string[]): string[] {
  return typeof key === 'string' ? [key] : key;
}

export const RejectedStatus = Type.Integer({ minimum: 400, maximum: 599, default: 429, description: 'Status of the refusal.' });
export const RejectedMessage = Type.Optional(
  Type.String({ minLength: 1, maxLength: 1024, description: 'Message of the refusal\'s JSON error body (default: "too many requests").' }),
);

type Part = (ctx: PluginContext) => string | undefined;

function part(spec: string): Part {
  switch (spec) {
    case 'remote_addr':
      return (ctx) => ctx.clientIp;
    case 'consumer':
      return (ctx) => ctx.consumer?.username;
    case 'route':
      return (ctx) => ctx.routeId;
    case 'service':
      return (ctx) => ctx.serviceId ?? undefined;
  }
  const colon = spec.indexOf(':');
  const kind = spec.slice(0, colon);
  const name = spec.slice(colon + 1);
  const lower = name.toLowerCase();
  if (kind === 'header') {
    return (ctx) => {
      const v = ctx.headers[lower];
      return Array.isArray(v) ? v.join(',') : v;
    };
  }
  if (kind === 'query') return (ctx) => queryValue(ctx.query, name);
  return (ctx) => cookieValue(ctx.headers.cookie, name);
}

/**
 * The function giving a request's key within `prefix` (the config's scope or group). Parts are joined with a
 * separator no header value can hold, so two different combinations never make the same key.
 */
export function compileKey(prefix: string, key: string | string[]): (ctx: PluginContext) => string {
  const parts = keyParts(key);
  if (parts.length === 1 && parts[0] === 'remote_addr') return (ctx) => prefix + ctx.clientIp;
  const fns = parts.map(part);
  if (fns.length === 1) {
    const f = fns[0]!;
    return (ctx) => prefix + (f(ctx) || ctx.clientIp);
  }
  return (ctx) => {
    let key = prefix;
    for (let i = 0; i < fns.length; i++) key += `${i === 0 ? '' : '\u0000'}${fns[i]!(ctx) || ctx.clientIp}`;
    return key;
  };
}

/** The refusal of a limit plugin: the configured status, the error body, and the headers given. */
export function refusal(status: number, message: string | undefined, headers: Record<string, string>, code: 'GH_ERR_RATE_LIMITED' | 'GH_ERR_RATE_LIMIT_UNAVAILABLE' = 'GH_ERR_RATE_LIMITED'): PluginResponse {
  const body = message === undefined ? errorBody(code) : Buffer.from(JSON.stringify({ error: { code, message } }));
  return { status, body, headers: { 'content-type': 'application/json', ...headers } };
}

/** Whole seconds, rounded up, for Retry-After and RateLimit-Reset (never 0 for a wait that is not over). */
export function seconds(ms: number): string {
  return String(Math.max(0, Math.ceil(ms / 1000)));
}
