/**
 * @module plugins/basic-auth/scrypt
 * Password hashes in the PHC string format for scrypt (`$scrypt$ln=15,r=8,p=1$<salt>$<hash>`): parsing with
 * cost limits, and verification off the event loop through a small limiter so wrong guesses cannot queue
 * unbounded work.
 */
import { scrypt, timingSafeEqual, randomBytes } from 'node:crypto';

/** A parsed scrypt hash: everything needed to check a password against it. */
export interface ScryptHash {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/**
 * Memory one check may take (128 * N * r bytes). 64 MiB allows ln=16,r=8; more would let a handful of wrong
 * guesses take hundreds of MiB at once.
 */
export const MAX_SCRYPT_MEMORY = 64 * 1024 * 1024;
/** Work bound across the parallel lanes (128 * N * r * p), so p cannot multiply the time per check unseen. */
const MAX_SCRYPT_WORK = 4 * MAX_SCRYPT_MEMORY;

// Standard base64, padding optional (PHC strings leave it out; some tools keep it).
const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** Parse a PHC scrypt string; returns the hash or why it is refused (the message never echoes the string). */
export function parseScrypt(text: string): ScryptHash | string {
  const m = PHC.exec(text);
  if (m === null) return 'is not a PHC scrypt string ($scrypt$ln=<n>,r=<r>,p=<p>$<base64 salt>$<base64 hash>)';
  const ln = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  if (ln < 10 || ln > 20) return 'ln (log2 of the cost N) must be 10 to 20';
  if (r < 1 || r > 32) return 'r must be 1 to 32';
  if (p < 1 || p > 16) return 'p must be 1 to 16';
  if (128 * 2 ** ln * r > MAX_SCRYPT_MEMORY) return 'needs more than 64 MiB per check (128 x 2^ln x r): lower ln or r';
  if (128 * 2 ** ln * r * p > MAX_SCRYPT_WORK) return 'costs more than 4 checks of 64 MiB (128 x 2^ln x r x p): lower p';
  if (salt.length < 8) return 'salt must be at least 8 bytes (16 recommended)';
  if (hash.length < 16 || hash.length > 64) return 'hash must be 16 to 64 bytes';
  return { ln, r, p, salt, hash };
}

/** A hash no password matches, with the given cost: checked in place of a missing one so timing stays alike. */
export function dummyScrypt(like: Pick<ScryptHash, 'ln' | 'r' | 'p'>): ScryptHash {
  return { ln: like.ln, r: like.r, p: like.p, salt: randomBytes(16), hash: randomBytes(32) };
}

/** Relative cost of checking against a hash, to pick the dearest one for the dummy. */
export function scryptCost(h: Pick<ScryptHash, 'ln' | 'r' | 'p'>): number {
  return 2 ** h.ln * h.r * h.p;
}

/**
 * Bounds scrypt checks in flight: each takes a libuv thread (shared with fs and dns) and tens of MiB, so only a
 * few run at once and a short queue waits; beyond that a check is refused at once.
 */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  /** Checks started, and the most that ever ran at once: for tests and diagnostics. */
  started = 0;
  peak = 0;

  constructor(
    readonly maxRunning: number,
    readonly maxWaiting: number,
  ) {}

  /** Run `task` when a slot is free; null when the queue is full (the caller refuses the credential). */
  run<T>(task: () => Promise<T>): Promise<T> | null {
    if (this.running >= this.maxRunning && this.waiting.length >= this.maxWaiting) return null;
    const start = async (): Promise<T> => {
      this.started++;
      try {
        return await task();
      } finally {
        const next = this.waiting.shift();
        if (next !== undefined) next();
        else this.running--;
      }
    };
    if (this.running < this.maxRunning) {
      this.running++;
      this.peak = Math.max(this.peak, this.running);
      return start();
    }
    // The slot of the task that finishes passes straight to the next in line, so `running` stays the same.
    return new Promise<void>((resolve) => this.waiting.push(resolve)).then(start);
  }
}

/** The process-wide limiter: two checks at once (libuv has four threads by default), 32 waiting. */
export const scryptLimiter = new Limiter(2, 32);

/**
 * Check a password against a hash off the event loop. Resolves true or false, or null when too many checks
 * are already under way.
 */
export function verifyScrypt(h: ScryptHash, password: Buffer, limiter: Limiter = scryptLimiter): Promise<boolean> | null {
  return limiter.run(
    () =>
      new Promise<boolean>((resolve, reject) => {
        const N = 2 ** h.ln;
        // OpenSSL counts a little more than 128 * N * r; give it the headroom it needs.
        const maxmem = 128 * (N + h.p + 2) * h.r + 1024 * 1024;
        scrypt(password, h.salt, h.hash.length, { N, r: h.r, p: h.p, maxmem }, (err, derived) => {
          if (err) reject(err);
          else resolve(timingSafeEqual(derived, h.hash));
        });
      }),
  );
}
