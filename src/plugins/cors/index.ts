/**
 * @module plugins/cors
 * Cross-origin resource sharing: answers preflights at the gateway and adds the Access-Control-* headers to
 * every response of the route (proxied or made by the gateway) for the origins the config allows.
 */
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginContext, type PluginResponse } from '../../dataplane/plugins/types.js';
import { PRIORITIES } from '../priorities.js';

/** RFC 9110 token: what a method or header name may be ("*" is a token too). */
const TOKEN = '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$';

const Config = Type.Object(
  {
    allowOrigins: Type.Array(
      Type.String({ minLength: 1, maxLength: 512, description: 'An origin (https://app.example.com), a wildcard origin (https://*.example.com) or "*".' }),
      { default: [], maxItems: 1000, description: 'Origins allowed: exact origins, wildcard subdomains (https://*.example.com matches one or more labels before .example.com), or "*" alone for any origin.' },
    ),
    allowOriginsByRegex: Type.Array(Type.String({ minLength: 1, maxLength: 1024, description: 'A regular expression matched against the whole Origin header.' }), {
      default: [],
      maxItems: 100,
      description: 'Origins allowed by regular expression; each is anchored (it must match the whole origin).',
    }),
    allowMethods: Type.Array(Type.String({ pattern: TOKEN, maxLength: 64, description: 'An HTTP method, or "*".' }), {
      default: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      maxItems: 64,
      description: 'Methods a preflight allows (Access-Control-Allow-Methods).',
    }),
    allowHeaders: Type.Array(Type.String({ pattern: TOKEN, maxLength: 128, description: 'A request header name, or "*".' }), {
      default: [],
      maxItems: 256,
      description: 'Request headers a preflight allows beyond the CORS-safelisted ones (Access-Control-Allow-Headers).',
    }),
    exposeHeaders: Type.Array(Type.String({ pattern: TOKEN, maxLength: 128, description: 'A response header name, or "*".' }), {
      default: [],
      maxItems: 256,
      description: 'Response headers scripts may read beyond the safelisted ones (Access-Control-Expose-Headers).',
    }),
    allowCredentials: Type.Boolean({ default: false, description: 'Allow credentialed requests (cookies, HTTP auth): sends Access-Control-Allow-Credentials: true.' }),
    maxAge: Type.Integer({ minimum: 0, maximum: 86400, default: 600, description: 'Seconds a browser may cache a preflight answer (Access-Control-Max-Age).' }),
  },
  { additionalProperties: false, description: 'cors on a route, service or globally.' },
);
type Config = Static<typeof Config>;

/** scheme://host[:port] with an optional leading "*." label wildcard; IPv6 literals in brackets. */
const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/;
const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443', ws: '80', wss: '443' };

/** Origins a browser could send are short; a longer header is never matched (and never reaches a regex). */
const MAX_ORIGIN_LENGTH = 1024;

/** The origin as a browser serialises it (lower case, no default port), or null when it is not one. */
function parseOrigin(entry: string): { origin: string; host: string; wildcard: boolean } | null {
  const m = ORIGIN.exec(entry.toLowerCase());
  if (m === null) return null;
  const [, scheme, star, host, port] = m as unknown as [string, string, string | undefined, string, string | undefined];
  if (star !== undefined && host.startsWith('[')) return null;
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return null;
  const keepPort = port !== undefined && DEFAULT_PORTS[scheme] !== String(Number(port));
  return { origin: `${scheme}://${host}${keepPort ? `:${Number(port)}` : ''}`, host, wildcard: star !== undefined };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function anchored(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

function check(config: Config): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  if (config.allowOrigins.length === 0 && config.allowOriginsByRegex.length === 0) {
    problems.push(['allowOrigins', 'needs at least one origin (or allowOriginsByRegex)']);
  }
  config.allowOrigins.forEach((entry, i) => {
    const at = `allowOrigins[${i}]`;
    if (entry === '*') {
      // Fetch standard, CORS check: a credentialed request fails whenever the allowed origin is "*".
      if (config.allowCredentials) problems.push([at, '"*" cannot be used with allowCredentials: true (browsers refuse it for credentialed requests); list the origins']);
      if (config.allowOrigins.length > 1 || config.allowOriginsByRegex.length > 0) problems.push([at, '"*" allows every origin: list no other origins with it']);
      return;
    }
    if (entry.toLowerCase() === 'null') {
      problems.push([at, 'must not be "null": sandboxed documents, file: pages and redirects all send it, so it cannot be trusted']);
      return;
    }
    const parsed = parseOrigin(entry);
    if (parsed === null) problems.push([at, 'must be "*" or an origin: scheme://host[:port] (https://app.example.com, https://*.example.com), no path or trailing slash']);
    // "https://*.com" would allow every site under a top-level domain: surely not meant.
    else if (parsed.wildcard && !parsed.host.includes('.') && parsed.host !== 'localhost') {
      problems.push([at, 'a wildcard needs at least two labels after it (https://*.example.com)']);
    }
  });
  config.allowOriginsByRegex.forEach((source, i) => {
    try {
      anchored(source);
    } catch (e) {
      problems.push([`allowOriginsByRegex[${i}]`, `is not a valid regular expression: ${(e as Error).message}`]);
    }
  });
  if (config.allowCredentials) {
    // With credentials, "*" in these lists is a literal name, not a wildcard: it would silently allow nothing.
    for (const field of ['allowMethods', 'allowHeaders', 'exposeHeaders'] as const) {
      const i = config[field].indexOf('*');
      if (i !== -1) problems.push([`${field}[${i}]`, '"*" is not a wildcard for credentialed requests (allowCredentials: true); list the names']);
    }
  }
  return problems;
}

/** Whether a Vary value already covers Origin ("*" covers everything). */
function varyCovers(value: string): boolean {
  for (const part of value.split(',')) {
    const t = part.trim().toLowerCase();
    if (t === 'origin' || t === '*') return true;
  }
  return false;
}

/** Adds Origin to the response's Vary, appending to an upstream's value rather than sending a second one. */
function addVaryOrigin(headers: string[]): void {
  let first = -1;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.length !== 4 || headers[i]!.toLowerCase() !== 'vary') continue;
    if (varyCovers(headers[i + 1]!)) return;
    if (first === -1) first = i;
  }
  if (first === -1) headers.push('vary', 'Origin');
  else headers[first + 1] = headers[first + 1]!.trim() === '' ? 'Origin' : `${headers[first + 1]}, Origin`;
}

/** The CORS headers of an actual response: the gateway's config decides them, not the upstream's copies. */
const OWNED = new Set(['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers']);

function dropOwned(headers: string[]): void {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length >= 27 && name.length <= 32 && OWNED.has(name.toLowerCase())) {
      headers.splice(i, 2);
      i -= 2;
    }
  }
}

function isPreflight(ctx: PluginContext): boolean {
  return ctx.method === 'OPTIONS' && typeof ctx.headers.origin === 'string' && ctx.headers['access-control-request-method'] !== undefined;
}

/** Where the origin decision is kept for the response phase: the allowed origin, or '' when not allowed. */
const VAR = 'cors';

export default definePlugin<Config>({
  name: 'cors',
  version: '1.0.0',
  priority: PRIORITIES.cors,
  description: 'Answers CORS preflights at the gateway and adds Access-Control-* headers for the allowed origins.',
  schema: Config,
  // CORS is decided before authentication (preflights carry no credentials), so never per consumer.
  scopes: ['global', 'service', 'route'],
  check,
  create(config) {
    const anyOrigin = config.allowOrigins.includes('*');
    const exact = new Set<string>();
    const patterns: RegExp[] = [];
    for (const entry of config.allowOrigins) {
      if (entry === '*') continue;
      const o = parseOrigin(entry)!;
      if (!o.wildcard) {
        exact.add(o.origin);
        continue;
      }
      // "https://*.example.com" -> one or more DNS labels, then ".example.com"; no ":" "/" or "@" can slip in.
      const [scheme, rest] = o.origin.split('://') as [string, string];
      patterns.push(new RegExp(`^${escapeRegex(scheme)}://[a-z0-9-]+(?:\\.[a-z0-9-]+)*\\.${escapeRegex(rest)}$`));
    }
    const regexes = config.allowOriginsByRegex.map(anchored);

    const allowOrigin = (origin: string): boolean => {
      if (origin.length > MAX_ORIGIN_LENGTH) return false;
      const lower = origin.toLowerCase();
      if (exact.has(lower)) return true;
      for (const re of patterns) if (re.test(lower)) return true;
      for (const re of regexes) if (re.test(origin)) return true;
      return false;
    };

    /** The allowed origin of this request ('' when none), worked out once and kept for the response phase. */
    const decide = (ctx: PluginContext): string => {
      const kept = ctx.vars[VAR];
      if (typeof kept === 'string') return kept;
      const origin = ctx.headers.origin;
      const allowed = typeof origin === 'string' && allowOrigin(origin) ? origin : '';
      ctx.vars[VAR] = allowed;
      return allowed;
    };

    const preflightHeaders: Record<string, string> = {};
    if (config.allowMethods.length > 0) preflightHeaders['access-control-allow-methods'] = config.allowMethods.join(', ');
    if (config.allowHeaders.length > 0) preflightHeaders['access-control-allow-headers'] = config.allowHeaders.join(', ');
    preflightHeaders['access-control-max-age'] = String(config.maxAge);
    // Built once; the framework only reads them.
    const allowedPreflight: PluginResponse = { status: 204, headers: preflightHeaders };
    // A refused preflight gets no allow headers, so the browser blocks the request; the allow-list is not shown.
    const refusedPreflight: PluginResponse = { status: 204 };
    const expose = config.exposeHeaders.length > 0 ? config.exposeHeaders.join(', ') : null;

    return {
      rewrite(ctx) {
        if (!isPreflight(ctx)) return;
        // Answered here, before authentication: a preflight never carries credentials and is never proxied.
        if (anyOrigin) return allowedPreflight;
        return decide(ctx) !== '' ? allowedPreflight : refusedPreflight;
      },
      responseHeaders(ctx, head) {
        const h = head.headers;
        dropOwned(h);
        if (anyOrigin) {
          // The same answer for every request, so no Vary: caches may share it.
          h.push('access-control-allow-origin', '*');
          if (expose !== null && !isPreflight(ctx)) h.push('access-control-expose-headers', expose);
          return;
        }
        // The answer depends on Origin, also for requests without one: a cache must not hand one to the other.
        addVaryOrigin(h);
        const origin = decide(ctx);
        if (origin === '') return;
        h.push('access-control-allow-origin', origin);
        if (config.allowCredentials) h.push('access-control-allow-credentials', 'true');
        if (expose !== null && !isPreflight(ctx)) h.push('access-control-expose-headers', expose);
      },
    };
  },
});
