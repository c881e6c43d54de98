/**
 * @module plugins/jwt-auth/verify
 * JWS compact tokens checked with node:crypto alone: strict decoding, one verifier per key built when config
 * loads (or when a JWKS is fetched), and the registered time, issuer and audience claims.
 */
import { constants, createHmac, createPublicKey, createSecretKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';

/** Every JWS algorithm of RFC 7518 and RFC 8037 except `none`. */
export const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

type Family = 'hmac' | 'rsa' | 'rsa-pss' | 'ec' | 'eddsa';

interface AlgorithmSpec {
  family: Family;
  /** Digest for node:crypto; null for EdDSA, which hashes internally. */
  hash: 'sha256' | 'sha384' | 'sha512' | null;
  /** ES*: the curve as node:crypto names it, and the one JWS names it by (for messages). */
  curve?: { node: string; jose: string };
  /** ES*: the raw r||s length; HS*: the MAC length, which is also the least key length RFC 7518 3.2 allows. */
  bytes?: number;
}

const SPECS: Record<Algorithm, AlgorithmSpec> = {
  HS256: { family: 'hmac', hash: 'sha256', bytes: 32 },
  HS384: { family: 'hmac', hash: 'sha384', bytes: 48 },
  HS512: { family: 'hmac', hash: 'sha512', bytes: 64 },
  RS256: { family: 'rsa', hash: 'sha256' },
  RS384: { family: 'rsa', hash: 'sha384' },
  RS512: { family: 'rsa', hash: 'sha512' },
  PS256: { family: 'rsa-pss', hash: 'sha256' },
  PS384: { family: 'rsa-pss', hash: 'sha384' },
  PS512: { family: 'rsa-pss', hash: 'sha512' },
  ES256: { family: 'ec', hash: 'sha256', curve: { node: 'prime256v1', jose: 'P-256' }, bytes: 64 },
  ES384: { family: 'ec', hash: 'sha384', curve: { node: 'secp384r1', jose: 'P-384' }, bytes: 96 },
  ES512: { family: 'ec', hash: 'sha512', curve: { node: 'secp521r1', jose: 'P-521' }, bytes: 132 },
  EdDSA: { family: 'eddsa', hash: null },
};

/** RFC 7518 3.3: RSA keys of 2048 bits or more MUST be used. */
export const MIN_RSA_BITS = 2048;

export function isHmac(alg: Algorithm): boolean {
  return SPECS[alg].family === 'hmac';
}

/** The least HMAC key length for an algorithm, in bytes (RFC 7518 3.2: at least the MAC size). */
export function minSecretBytes(alg: Algorithm): number {
  return SPECS[alg].bytes ?? 0;
}

/** Checks a signature over the signing input (the token's first two segments as sent). Never throws. */
export type Verifier = (signingInput: Buffer, signature: Buffer) => boolean;

/** HS*: one secret KeyObject made once; the MAC is compared in constant time. */
export function hmacVerifier(alg: Algorithm, secret: Buffer): Verifier {
  const spec = SPECS[alg];
  if (spec.family !== 'hmac') throw new TypeError(`${alg} is not an HMAC algorithm`);
  const key = createSecretKey(secret);
  const hash = spec.hash!;
  const size = spec.bytes!;
  return (input, signature) => {
    if (signature.length !== size) return false;
    return timingSafeEqual(createHmac(hash, key).update(input).digest(), signature);
  };
}

const CURVE_NAMES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

function describeKey(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return 'an RSA key';
    case 'ec': {
      const curve = CURVE_NAMES[key.asymmetricKeyDetails?.namedCurve ?? ''];
      return curve ? `an EC ${curve} key` : 'an EC key on an unsupported curve';
    }
    case 'ed25519':
    case 'ed448':
      return `an ${key.asymmetricKeyType === 'ed25519' ? 'Ed25519' : 'Ed448'} key`;
    default:
      return `a ${key.asymmetricKeyType ?? 'secret'} key`;
  }
}

/**
 * Why a public key cannot verify `alg`, or null when it can. The message names key types, never key
 * material, so it is safe in config errors.
 */
export function publicKeyProblem(alg: Algorithm, key: KeyObject): string | null {
  const spec = SPECS[alg];
  if (key.type !== 'public') return 'must be a public key';
  const type = key.asymmetricKeyType;
  switch (spec.family) {
    case 'hmac':
      return `${alg} takes a shared secret, not a public key`;
    case 'rsa':
    case 'rsa-pss': {
      if (type !== 'rsa' && !(type === 'rsa-pss' && spec.family === 'rsa-pss')) return `is ${describeKey(key)}; ${alg} needs an RSA key`;
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) return `is a ${bits}-bit RSA key; ${alg} needs at least ${MIN_RSA_BITS} bits`;
      return null;
    }
    case 'ec':
      if (type !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== spec.curve!.node) return `is ${describeKey(key)}; ${alg} needs an EC ${spec.curve!.jose} key`;
      return null;
    case 'eddsa':
      if (type !== 'ed25519' && type !== 'ed448') return `is ${describeKey(key)}; EdDSA needs an Ed25519 or Ed448 key`;
      return null;
  }
}

/** A verifier for an asymmetric algorithm; the key must have passed `publicKeyProblem`. */
export function publicKeyVerifier(alg: Algorithm, key: KeyObject): Verifier {
  const problem = publicKeyProblem(alg, key);
  if (problem !== null) throw new TypeError(`key cannot verify ${alg}: ${problem}`);
  const spec = SPECS[alg];
  const hash = spec.hash;
  let size: number;
  let options: Parameters<typeof verify>[2];
  switch (spec.family) {
    case 'rsa':
      // An RSA signature is exactly as long as the modulus.
      size = Math.ceil(key.asymmetricKeyDetails!.modulusLength! / 8);
      options = key;
      break;
    case 'rsa-pss':
      size = Math.ceil(key.asymmetricKeyDetails!.modulusLength! / 8);
      // RFC 7518 3.5: the salt is as long as the digest.
      options = { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
      break;
    case 'ec':
      // JWS carries ECDSA signatures as raw r||s, not DER (RFC 7518 3.4).
      size = spec.bytes!;
      options = { key, dsaEncoding: 'ieee-p1363' };
      break;
    default:
      size = key.asymmetricKeyType === 'ed25519' ? 64 : 114;
      options = key;
  }
  return (input, signature) => {
    if (signature.length !== size) return false;
    try {
      return verify(hash, input, options, signature);
    } catch {
      // A malformed signature is a wrong signature; nothing of OpenSSL's message may reach the client.
      return false;
    }
  };
}

const PEM_PRIVATE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** A public key (or certificate) in PEM form, or a message saying why not (never echoing the key). */
export function parsePublicKeyPem(pem: string): KeyObject | string {
  // createPublicKey would happily derive the public half of a private key: refuse it, a private key has no
  // business in gateway config.
  if (PEM_PRIVATE.test(pem)) return 'is a private key: give the public key only';
  if (!pem.includes('-----BEGIN ')) return 'must be a PEM public key ("-----BEGIN PUBLIC KEY-----")';
  try {
    return createPublicKey({ key: pem, format: 'pem' });
  } catch {
    return 'cannot be parsed as a PEM public key';
  }
}

/** A token split and decoded; nothing in it is trusted until a verifier has checked `signature`. */
export interface DecodedJws {
  alg: string;
  kid: string | undefined;
  claims: Record<string, unknown>;
  /** The first two segments exactly as sent: what the signature covers. */
  signingInput: Buffer;
  signature: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

function segment(s: string): Buffer | null {
  // Buffer.from(..., 'base64url') skips characters it does not know; a strict check first keeps one token
  // from having many spellings.
  if (!B64URL.test(s) || s.length % 4 === 1) return null;
  return Buffer.from(s, 'base64url');
}

function jsonObject(buf: Buffer): Record<string, unknown> | null {
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch {
    return null;
  }
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** Split and decode a compact JWS carrying a JWT; null when it is not one (never throws). Hot path. */
export function decodeJws(token: string, maxLength: number): DecodedJws | null {
  if (token.length > maxLength) return null;
  const dot1 = token.indexOf('.');
  const dot2 = dot1 === -1 ? -1 : token.indexOf('.', dot1 + 1);
  if (dot2 === -1 || token.indexOf('.', dot2 + 1) !== -1) return null;
  const headerBytes = segment(token.slice(0, dot1));
  const payloadBytes = segment(token.slice(dot1 + 1, dot2));
  const sigText = token.slice(dot2 + 1);
  const signature = segment(sigText);
  if (headerBytes === null || payloadBytes === null || signature === null) return null;
  // Only the canonical spelling of a signature is accepted (no stray trailing bits).
  if (signature.toString('base64url') !== sigText) return null;
  const header = jsonObject(headerBytes);
  if (header === null || typeof header.alg !== 'string') return null;
  // RFC 7515 4.1.11: extensions marked critical must be understood; this verifier understands none.
  if (header.crit !== undefined) return null;
  if (header.kid !== undefined && typeof header.kid !== 'string') return null;
  const claims = jsonObject(payloadBytes);
  if (claims === null) return null;
  return {
    alg: header.alg,
    kid: header.kid as string | undefined,
    claims,
    signingInput: Buffer.from(token.slice(0, dot2), 'latin1'),
    signature,
  };
}

/** How the registered claims are judged, worked out once per route config. */
export interface ClaimRules {
  /** Seconds of clock skew allowed on exp and nbf. */
  leeway: number;
  /** A token without exp is refused. */
  requireExp: boolean;
  /** iss must be one of these (null: not checked). */
  issuers: ReadonlySet<string> | null;
  /** aud (a string or a list) must name one of these (null: not checked). */
  audiences: ReadonlySet<string> | null;
}

function numericDate(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** RFC 7519 4.1: exp, nbf, iss and aud; `now` in seconds since the epoch. Run only on verified claims. */
export function claimsAcceptable(claims: Record<string, unknown>, rules: ClaimRules, now: number): boolean {
  if (claims.exp !== undefined) {
    const exp = numericDate(claims.exp);
    if (exp === null || now >= exp + rules.leeway) return false;
  } else if (rules.requireExp) {
    return false;
  }
  if (claims.nbf !== undefined) {
    const nbf = numericDate(claims.nbf);
    if (nbf === null || now + rules.leeway < nbf) return false;
  }
  if (rules.issuers !== null && (typeof claims.iss !== 'string' || !rules.issuers.has(claims.iss))) return false;
  if (rules.audiences !== null) {
    const aud = claims.aud;
    if (typeof aud === 'string') return rules.audiences.has(aud);
    if (!Array.isArray(aud)) return false;
    return aud.some((a) => typeof a === 'string' && rules.audiences!.has(a));
  }
  return true;
}
