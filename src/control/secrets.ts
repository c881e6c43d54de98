/**
 * @module control/secrets
 * Password hashing (scrypt from node:crypto, memory-hard, no native dependency), API tokens and session ids
 * (random, shown once, stored as SHA-256), and constant-time comparison.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

function scrypt(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

/** OWASP's scrypt floor (N=2^17, r=8, p=1): about 128 MiB and 100+ ms per hash, which is the point. */
const N = 131072;
const R = 8;
const P = 1;
const KEYLEN = 32;
const MAXMEM = 256 * 1024 * 1024;

/** `scrypt$N$r$p$salt$hash` with base64url parts, so parameters can be raised later and old hashes still verify. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KEYLEN, { N, r: R, p: P, maxmem: MAXMEM });
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![n, r, p].every((x) => Number.isInteger(x) && x > 0)) return false;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const expected = Buffer.from(parts[5]!, 'base64url');
  const key = await scrypt(password, salt, expected.length, { N: n, r, p, maxmem: Math.max(MAXMEM, 128 * n * r * 2) });
  return timingSafeEqual(key, expected);
}

/** A hash computed once for unknown user names, so a login for a missing user takes as long as a wrong password. */
let dummy: Promise<string> | null = null;
export function dummyHash(): Promise<string> {
  return (dummy ??= hashPassword(randomBytes(16).toString('hex')));
}

export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** A new API token: a recognisable prefix (secret scanners find leaked ones) and 256 random bits. */
export function newApiToken(): string {
  return `ght_${randomBytes(32).toString('base64url')}`;
}

export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

export function newId(): string {
  return randomBytes(9).toString('base64url');
}

/** A password for the first admin: 24 characters from a set without look-alikes. */
export function newPassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789';
  const bytes = randomBytes(24);
  let out = '';
  // 256 % 56 != 0: reject the top values so every character is equally likely.
  for (let i = 0; out.length < 24; i++) {
    const b = i < bytes.length ? bytes[i]! : randomBytes(1)[0]!;
    if (b < 224) out += alphabet[b % 56];
  }
  return out;
}

export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
