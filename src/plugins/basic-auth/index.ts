/**
 * @module plugins/basic-auth
 * Authenticates a consumer by HTTP Basic credentials (RFC 7617). Passwords are never held in plain form once
 * config is loaded: plain ones become keyed digests, pre-hashed ones stay scrypt hashes.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { Consumer } from '../../model/consumer.js';
import { definePlugin, type AuthResult } from '../../dataplane/plugins/types.js';
import { PRIORITIES } from '../priorities.js';
import { dummyScrypt, parseScrypt, scryptCost, verifyScrypt, type ScryptHash } from './scrypt.js';

const Config = Type.Object(
  {
    realm: Type.String({
      minLength: 1,
      maxLength: 128,
      // Printable ASCII without '"' and '\': the realm goes into a quoted-string as is.
      pattern: '^[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]+$',
      default: 'gatehouse',
      description: 'Realm named in the WWW-Authenticate challenge sent when no credential was presented.',
    }),
    hideCredentials: Type.Boolean({ default: true, description: 'Remove a Basic Authorization header before the request goes upstream.' }),
  },
  { additionalProperties: false, description: 'basic-auth on a route, service or globally.' },
);
type Config = Static<typeof Config>;

const Credential = Type.Object(
  {
    // RFC 7617: the user-id cannot contain a colon; control characters have no place in a name.
    username: Type.String({ minLength: 1, maxLength: 128, pattern: '^[^:\\x00-\\x1f\\x7f]+$', description: 'User name sent in the Basic credential; unique across consumers.' }),
    password: Type.Optional(Type.String({ minLength: 8, maxLength: 512, writeOnly: true, description: 'The password (8 to 512 characters; write-only in the admin API). Give this or passwordHash.' })),
    passwordHash: Type.Optional(
      Type.String({ maxLength: 512, writeOnly: true, description: 'The password as a PHC scrypt string ($scrypt$ln=15,r=8,p=1$<salt>$<hash>), for files that must not carry plain passwords. Give this or password.' }),
    ),
  },
  { additionalProperties: false, description: 'A consumer\'s Basic user name and password.' },
);
type Credential = Static<typeof Credential>;

/** One user name as the index keeps it. */
interface Entry {
  /** The answer for this user, made once. */
  result: { consumer: Consumer };
  /** Keyed digest of user name and password: known from the start for a plain password, once verified for a hash. */
  digest: Buffer | null;
  /** The scrypt hash, for a credential given as passwordHash. */
  hash: ScryptHash | null;
}

/** The lookup structure built once per config. */
export interface BasicAuthIndex {
  byUser: Map<string, Entry>;
  /** Checked in place of a hash when the user is unknown or has a plain password: null when no credential is hashed. */
  dummy: ScryptHash | null;
  /** scrypt checks under way, by digest, so a burst of the same credential costs one check. */
  inflight: Map<string, Promise<boolean>>;
  /** Digests that recently failed a scrypt check, oldest first (bounded). */
  failed: Set<string>;
}

/** Recently failed credentials remembered per config: a client retrying a wrong password costs one scrypt check. */
const FAILED_REMEMBERED = 1024;

/**
 * Key for the digests, made at start and never leaving the process: a digest in memory (or a heap dump) cannot
 * be checked offline against guesses without it.
 */
const PROCESS_KEY = randomBytes(32);
const DUMMY_DIGEST = randomBytes(32);

/** Keyed digest of a user name and password; the length prefix keeps ("ab","c") and ("a","bc") apart. */
function digestOf(user: Buffer, password: Buffer): Buffer {
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(user.length);
  return createHmac('sha256', PROCESS_KEY).update(len).update(user).update(password).digest();
}

const MISSING: AuthResult = Object.freeze({ missing: true as const });
const INVALID: AuthResult = Object.freeze({ invalid: true as const });

/** Base64 as RFC 7617 sends it (padded); anything else is malformed rather than decoded leniently. */
const TOKEN68_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Longer than any user name (128) and password (512) in UTF-8 can encode to: refused without decoding. */
const MAX_TOKEN = 4096;

function emptyIndex(): BasicAuthIndex {
  return { byUser: new Map(), dummy: null, inflight: new Map(), failed: new Set() };
}

/**
 * The slow path: a hashed credential not verified yet, or any refusal while some credential is hashed (so a
 * refusal costs the same whether the user name exists or not).
 */
async function checkHashed(index: BasicAuthIndex, entry: Entry | undefined, digest: Buffer, password: Buffer): Promise<AuthResult> {
  const id = digest.toString('hex');
  if (index.failed.has(id)) return INVALID;
  let pending = index.inflight.get(id);
  if (pending === undefined) {
    // Unknown users and plain-password users whose digest did not match are checked against the dummy.
    const started = verifyScrypt(entry?.hash ?? index.dummy!, password);
    if (started === null) return INVALID; // too many checks under way: refused, not queued without bound
    pending = started;
    index.inflight.set(id, pending);
    void pending.finally(() => index.inflight.delete(id)).catch(() => {});
  }
  const ok = await pending;
  if (ok === true && entry !== undefined && entry.hash !== null) {
    // From now on this password is checked like a plain one: one HMAC, no scrypt.
    entry.digest = digest;
    return entry.result;
  }
  if (ok === false) {
    if (index.failed.size >= FAILED_REMEMBERED) index.failed.delete(index.failed.values().next().value!);
    index.failed.add(id);
  }
  return INVALID;
}

export default definePlugin<Config, Credential, BasicAuthIndex>({
  name: 'basic-auth',
  version: '1.0.0',
  priority: PRIORITIES['basic-auth'],
  description: 'Authenticates a consumer by HTTP Basic credentials (user name and password).',
  schema: Config,
  scopes: ['global', 'service', 'route'],
  credentialSchema: Credential,
  credentialKey: (c) => c.username,
  checkCredential(c) {
    const hasPlain = c.password !== undefined;
    const hasHash = c.passwordHash !== undefined;
    if (hasPlain && hasHash) return [['passwordHash', 'give either password or passwordHash, not both']];
    if (!hasPlain && !hasHash) return [['password', 'is required (or passwordHash)']];
    if (hasHash) {
      const parsed = parseScrypt(c.passwordHash!);
      if (typeof parsed === 'string') return [['passwordHash', parsed]];
    }
    return [];
  },
  indexCredentials(entries) {
    const index = emptyIndex();
    let dearest: ScryptHash | null = null;
    for (const { consumer, credential } of entries) {
      const entry: Entry = { result: Object.freeze({ consumer }), digest: null, hash: null };
      if (credential.passwordHash !== undefined) {
        const parsed = parseScrypt(credential.passwordHash);
        // Validation refuses bad hashes before config is applied; this only guards a config that skipped it.
        if (typeof parsed === 'string') continue;
        entry.hash = parsed;
        if (dearest === null || scryptCost(parsed) > scryptCost(dearest)) dearest = parsed;
      } else if (credential.password !== undefined) {
        entry.digest = digestOf(Buffer.from(credential.username, 'utf8'), Buffer.from(credential.password, 'utf8'));
      } else continue;
      index.byUser.set(credential.username, entry);
    }
    // The dummy costs as much as the dearest real hash, so an unknown name is never the quick refusal.
    if (dearest !== null) index.dummy = dummyScrypt(dearest);
    return index;
  },
  create(config, env) {
    const index = (env.credentials as BasicAuthIndex | undefined) ?? emptyIndex();
    const hide = config.hideCredentials;
    return {
      challenge: `Basic realm="${config.realm}"`,
      // HOT PATH: one HMAC and one constant-time compare per request once passwords are verified.
      authenticate(ctx) {
        const header = ctx.headers.authorization;
        // Another scheme (Bearer) belongs to another auth plugin: not ours, and left in place for it.
        if (header === undefined || header.length < 5 || (header.length > 5 && header.charCodeAt(5) !== 32) || header.slice(0, 5).toLowerCase() !== 'basic') return MISSING;
        if (hide) ctx.removeUpstreamHeader('authorization');
        const token = header.slice(6).trim();
        if (token.length === 0 || token.length > MAX_TOKEN || token.length % 4 !== 0 || !TOKEN68_BASE64.test(token)) return INVALID;
        const raw = Buffer.from(token, 'base64');
        const colon = raw.indexOf(0x3a);
        if (colon <= 0) return INVALID;
        const userBytes = raw.subarray(0, colon);
        const password = raw.subarray(colon + 1);
        // Compared as bytes: a name that is not valid UTF-8 decodes to U+FFFD and then fails the digest below.
        const entry = index.byUser.get(userBytes.toString('utf8'));
        const digest = digestOf(userBytes, password);
        // Always one compare, against a dummy when the name is unknown or the hash not verified yet.
        const same = timingSafeEqual(digest, entry?.digest ?? DUMMY_DIGEST);
        if (same && entry !== undefined && entry.digest !== null) return entry.result;
        if (index.dummy === null) return INVALID;
        return checkHashed(index, entry, digest, password);
      },
    };
  },
});
