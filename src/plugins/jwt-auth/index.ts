/**
 * @module plugins/jwt-auth
 * Authenticates a consumer by a signed JWT (JWS compact form) from a header, a query argument or a cookie.
 * A claim names the consumer's credential; the credential pins the algorithm and holds the key (a secret,
 * a public key, or a JWKS URL). Keys are imported when config loads; requests only verify.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { Consumer } from '../../model/consumer.js';
import { StringEnum } from '../../model/common.js';
import { definePlugin, type AuthResult, type PluginContext } from '../../dataplane/plugins/types.js';
import { PRIORITIES } from '../priorities.js';
import { cookieValue, queryValue, withoutQueryArg } from '../util.js';
import { JWKS_DEFAULTS, sharedJwksSource, type JwksSource } from './jwks.js';
import {
  ALGORITHMS,
  claimsAcceptable,
  decodeJws,
  hmacVerifier,
  isHmac,
  minSecretBytes,
  parsePublicKeyPem,
  publicKeyProblem,
  publicKeyVerifier,
  type Algorithm,
  type ClaimRules,
  type DecodedJws,
  type Verifier,
} from './verify.js';

/** Longer tokens are refused before any decoding (request headers are bounded too, query and cookie less so). */
const MAX_TOKEN_LENGTH = 8192;
const HEADER_NAME = '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$';

const Config = Type.Object(
  {
    claim: Type.String({ minLength: 1, maxLength: 128, default: 'key', description: 'Claim whose value names the consumer credential (its `key`), for example `key`, `iss`, `sub` or `client_id`.' }),
    from: Type.Array(StringEnum(['header', 'query', 'cookie'], { description: 'A place the token may be sent.' }), {
      minItems: 1,
      uniqueItems: true,
      default: ['header'],
      description: 'Where the token is looked for, in this order. Query arguments end up in access logs and cookies are sent by browsers unasked (CSRF): add them only when clients need them.',
    }),
    header: Type.String({ minLength: 1, maxLength: 128, pattern: HEADER_NAME, default: 'Authorization', description: 'Header that carries the token. Authorization needs the Bearer scheme; another header may carry the bare token.' }),
    query: Type.String({ minLength: 1, maxLength: 128, default: 'jwt', description: 'Query argument that carries the token (when `from` includes query).' }),
    cookie: Type.String({ minLength: 1, maxLength: 128, pattern: HEADER_NAME, default: 'jwt', description: 'Cookie that carries the token (when `from` includes cookie).' }),
    hideCredentials: Type.Boolean({ default: false, description: 'Remove the token (header, query argument, cookie) before the request goes upstream.' }),
    leeway: Type.Integer({ minimum: 0, maximum: 600, default: 0, description: 'Seconds of clock skew tolerated on exp and nbf.' }),
    requireExp: Type.Boolean({ default: true, description: 'Refuse tokens without an exp claim (tokens that never expire).' }),
    issuer: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 2048, description: 'An accepted issuer.' }), { minItems: 1, maxItems: 64, description: 'When set, the iss claim must be one of these.' }),
    ),
    audience: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 2048, description: 'An accepted audience.' }), { minItems: 1, maxItems: 64, description: 'When set, the aud claim (a string or a list) must name one of these.' }),
    ),
  },
  { additionalProperties: false, description: 'jwt-auth on a route, service or globally.' },
);
type Config = Static<typeof Config>;

const Credential = Type.Object(
  {
    key: Type.String({ minLength: 1, maxLength: 512, description: 'The value of the route\'s `claim` that selects this credential; unique across consumers.' }),
    algorithm: StringEnum(ALGORITHMS, { default: 'HS256', description: 'The one algorithm this credential accepts; a token whose header names another is refused.' }),
    secret: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, writeOnly: true, description: 'HS*: the shared secret (write-only in the admin API); at least as many bytes as the MAC (32, 48 or 64).' })),
    base64Secret: Type.Boolean({ default: false, description: 'HS*: `secret` is base64 (or base64url) and is decoded before use.' }),
    publicKey: Type.Optional(Type.String({ minLength: 1, maxLength: 16384, description: 'RS*, PS*, ES*, EdDSA: the public key (or certificate) in PEM form.' })),
    jwksUri: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'RS*, PS*, ES*, EdDSA: an http(s) URL of a JWK set; the token\'s kid selects the key.' })),
    jwksMaxAge: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 86400, description: `Seconds a fetched JWK set is used before it is refreshed; also the cap on the server's Cache-Control max-age (default ${JWKS_DEFAULTS.maxAgeS}).` }),
    ),
    jwksCooldown: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 3600, description: `Least seconds between two fetches of the JWK set, however many unknown kids arrive or fetches fail (default ${JWKS_DEFAULTS.cooldownS}).` }),
    ),
  },
  { additionalProperties: false, description: 'A consumer\'s JWT credential: which tokens name it and how they are verified.' },
);
type Credential = Static<typeof Credential>;

/** A credential ready for requests: its consumer, its pinned algorithm and its key (one of the two). */
interface CompiledCredential {
  consumer: Consumer;
  algorithm: Algorithm;
  verifier: Verifier | null;
  jwks: JwksSource | null;
}
type CredentialIndex = Map<string, CompiledCredential>;

const B64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const PEM_HEADER = /-----BEGIN [A-Z0-9 ]+-----/;

function secretBytes(c: Credential): Buffer {
  return c.base64Secret ? Buffer.from(c.secret!.replace(/-/g, '+').replace(/_/g, '/'), 'base64') : Buffer.from(c.secret!, 'utf8');
}

/** Cross-field rules of a credential; messages name fields and key types, never key material. */
function credentialProblems(c: Credential): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  const alg = c.algorithm;
  if (isHmac(alg)) {
    if (c.publicKey !== undefined) problems.push(['publicKey', `is not used by ${alg}, which takes a shared secret`]);
    if (c.jwksUri !== undefined) problems.push(['jwksUri', `is not used by ${alg}: a JWK set publishes public keys, never shared secrets`]);
    if (c.secret === undefined) {
      problems.push(['secret', `is required for ${alg}`]);
    } else if (PEM_HEADER.test(c.secret)) {
      // The classic key-confusion mistake: a public key used as an HMAC secret lets anyone holding it sign.
      problems.push(['secret', `looks like a PEM key; ${alg} takes a shared secret (use an RS/PS/ES/EdDSA algorithm with publicKey)`]);
    } else if (c.base64Secret && !B64.test(c.secret)) {
      problems.push(['secret', 'is not base64 (base64Secret is true)']);
    } else if (secretBytes(c).length < minSecretBytes(alg)) {
      problems.push(['secret', `must be at least ${minSecretBytes(alg)} bytes for ${alg} (RFC 7518 3.2)`]);
    }
  } else {
    if (c.secret !== undefined) problems.push(['secret', `is not used by ${alg}, which verifies with a public key`]);
    if (c.base64Secret) problems.push(['base64Secret', `is not used by ${alg}`]);
    if ((c.publicKey === undefined) === (c.jwksUri === undefined)) problems.push(['', `${alg} needs exactly one of publicKey or jwksUri`]);
    if (c.publicKey !== undefined) {
      const key = parsePublicKeyPem(c.publicKey);
      const problem = typeof key === 'string' ? key : publicKeyProblem(alg, key);
      if (problem !== null) problems.push(['publicKey', problem]);
    }
    if (c.jwksUri !== undefined) {
      let url: URL | null = null;
      try {
        url = new URL(c.jwksUri);
      } catch {
        // reported below
      }
      if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:')) problems.push(['jwksUri', 'must be an http or https URL']);
      else if (url.username || url.password) problems.push(['jwksUri', 'must not carry a user name or password']);
    }
  }
  if (c.jwksUri === undefined) {
    if (c.jwksMaxAge !== undefined) problems.push(['jwksMaxAge', 'applies only with jwksUri']);
    if (c.jwksCooldown !== undefined) problems.push(['jwksCooldown', 'applies only with jwksUri']);
  } else if ((c.jwksCooldown ?? JWKS_DEFAULTS.cooldownS) > (c.jwksMaxAge ?? JWKS_DEFAULTS.maxAgeS)) {
    problems.push(['jwksCooldown', 'must not be longer than jwksMaxAge']);
  }
  return problems;
}

function compileCredential(c: Credential, consumer: Consumer, path: string): CompiledCredential {
  const problems = credentialProblems(c);
  // Validation runs the same rules first; reaching this means the config was not validated.
  if (problems.length > 0) throw new Error(`${path}: invalid jwt-auth credential (${problems.map(([p, m]) => `${p || '(credential)'} ${m}`).join('; ')})`);
  const alg = c.algorithm;
  if (isHmac(alg)) return { consumer, algorithm: alg, verifier: hmacVerifier(alg, secretBytes(c)), jwks: null };
  if (c.publicKey !== undefined) {
    const key = parsePublicKeyPem(c.publicKey);
    if (typeof key === 'string') throw new Error(`${path}.publicKey: ${key}`);
    return { consumer, algorithm: alg, verifier: publicKeyVerifier(alg, key), jwks: null };
  }
  const jwks = sharedJwksSource(c.jwksUri!, c.jwksMaxAge ?? JWKS_DEFAULTS.maxAgeS, c.jwksCooldown ?? JWKS_DEFAULTS.cooldownS);
  return { consumer, algorithm: alg, verifier: null, jwks };
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** RFC 6750 2.1: `Bearer <token>`, scheme case-insensitive. Without the scheme, only when `bare` is allowed. */
function bearerToken(value: string, bare: boolean): string | undefined {
  if (value.length > 7 && value.slice(0, 6).toLowerCase() === 'bearer' && (value[6] === ' ' || value[6] === '\t')) {
    const t = value.slice(7).trim();
    return t === '' ? undefined : t;
  }
  if (!bare) return undefined;
  const t = value.trim();
  return t === '' ? undefined : t;
}

/** The Cookie header without one cookie (every occurrence). */
function withoutCookie(header: string, name: string): string {
  return header
    .split(';')
    .filter((part) => {
      const eq = part.indexOf('=');
      return (eq === -1 ? part : part.slice(0, eq)).trim() !== name;
    })
    .map((part) => part.trim())
    .join('; ');
}

const MISSING: AuthResult = { missing: true };
const INVALID: AuthResult = { invalid: true };

export default definePlugin<Config, Credential, CredentialIndex>({
  name: 'jwt-auth',
  version: '1.0.0',
  priority: PRIORITIES['jwt-auth'],
  description: 'Authenticates a consumer by a signed JWT from a header, query argument or cookie.',
  schema: Config,
  scopes: ['global', 'service', 'route'],
  credentialSchema: Credential,
  credentialKey: (c) => c.key,
  checkCredential: credentialProblems,
  indexCredentials(entries) {
    const index: CredentialIndex = new Map();
    for (const e of entries) index.set(e.credential.key, compileCredential(e.credential, e.consumer, e.path));
    return index;
  },
  create(config, env) {
    const index = (env.credentials as CredentialIndex | undefined) ?? new Map<string, CompiledCredential>();
    const rules: ClaimRules = {
      leeway: config.leeway,
      requireExp: config.requireExp,
      issuers: config.issuer ? new Set(config.issuer) : null,
      audiences: config.audience ? new Set(config.audience) : null,
    };
    const sources = config.from;
    const header = config.header.toLowerCase();
    // On Authorization the scheme tells a bearer token from Basic and others, which belong to other plugins.
    const bare = header !== 'authorization';
    const { claim, query: arg, cookie, hideCredentials: hide } = config;

    /** The first token found; with hideCredentials every source that carried one is stripped. Hot path. */
    function extract(ctx: PluginContext): string | undefined {
      let token: string | undefined;
      for (const source of sources) {
        if (token !== undefined && !hide) break;
        let found: string | undefined;
        if (source === 'header') {
          const raw = first(ctx.headers[header]);
          found = raw === undefined ? undefined : bearerToken(raw, bare);
          if (found !== undefined && hide) ctx.removeUpstreamHeader(header);
        } else if (source === 'query') {
          found = queryValue(ctx.query, arg);
          if (found !== undefined && hide) ctx.query = withoutQueryArg(ctx.query, arg);
        } else {
          const raw = first(ctx.headers.cookie);
          found = cookieValue(raw, cookie);
          if (found !== undefined && hide) {
            const rest = withoutCookie(raw!, cookie);
            if (rest === '') ctx.removeUpstreamHeader('cookie');
            else ctx.setUpstreamHeader('cookie', rest);
          }
        }
        if (token === undefined && found !== undefined && found !== '') token = found;
      }
      return token;
    }

    function accept(ctx: PluginContext, jws: DecodedJws, cred: CompiledCredential, verifier: Verifier): AuthResult {
      if (!verifier(jws.signingInput, jws.signature)) return INVALID;
      // Claims are judged only once the signature holds: nothing unverified decides anything but the key.
      if (!claimsAcceptable(jws.claims, rules, Date.now() / 1000)) return INVALID;
      ctx.vars['jwt-auth'] = jws.claims;
      return { consumer: cred.consumer };
    }

    return {
      // Synchronous for secrets and public keys; a promise only when a JWK set may have to be fetched.
      authenticate(ctx: PluginContext): AuthResult | Promise<AuthResult> {
        const token = extract(ctx);
        if (token === undefined) return MISSING;
        const jws = decodeJws(token, MAX_TOKEN_LENGTH);
        if (jws === null) return INVALID;
        const name = Object.hasOwn(jws.claims, claim) ? jws.claims[claim] : undefined;
        if (typeof name !== 'string') return INVALID;
        const cred = index.get(name);
        // The credential, not the token, says which algorithm: alg none, HMAC keyed with a public key and
        // every other algorithm swap end here.
        if (cred === undefined || jws.alg !== cred.algorithm) return INVALID;
        if (cred.verifier !== null) return accept(ctx, jws, cred, cred.verifier);
        return cred.jwks!.verifier(jws.kid, cred.algorithm).then((v) => (v === null ? INVALID : accept(ctx, jws, cred, v)));
      },
    };
  },
});
