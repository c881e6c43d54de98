/**
 * @module plugins/opentelemetry/trace-context
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): strict parsing of `traceparent`, the header the
 * gateway sends on, new trace and span ids, and the trace-id ratio sampler every gateway agrees on.
 *
 * HOT PATH: everything here runs once per request in the rewrite phase, so parsing walks character codes
 * instead of compiling or running a regular expression, and ids come from a pooled buffer of random bytes.
 */
import { randomFillSync } from 'node:crypto';

/** What a valid incoming `traceparent` says. */
export interface ParentContext {
  /** 32 lower-case hex characters, not all zero. */
  traceId: string;
  /** The caller's span: 16 lower-case hex characters, not all zero. */
  parentId: string;
  /** Bit 0 of trace-flags: the caller recorded its span (and asks us to record ours). */
  sampled: boolean;
}

/** Length of a version-00 traceparent: "00-" + 32 + "-" + 16 + "-" + 2. */
const V00_LENGTH = 55;
const DASH = 45;

/** Value of a lower-case hex digit, -1 for anything else (upper case included: the spec allows only lower). */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  return -1;
}

/** Whether s[start, end) is lower-case hex and not all zeros (an all-zero trace or parent id is invalid). */
function validId(s: string, start: number, end: number): boolean {
  let nonZero = false;
  for (let i = start; i < end; i++) {
    const v = hexValue(s.charCodeAt(i));
    if (v < 0) return false;
    if (v !== 0) nonZero = true;
  }
  return nonZero;
}

/**
 * Parse a `traceparent` value, or null when it is not valid (the caller then starts a new trace). Version 00
 * must be exactly 55 characters. A higher version (any two hex digits but "ff", which is forbidden) is parsed
 * as the spec asks of a version-00 implementation: at least 55 characters, the version-00 fields in place, and
 * either the end of the value or a dash after the flags; whatever follows is ignored.
 */
export function parseTraceparent(value: string): ParentContext | null {
  const len = value.length;
  if (len < V00_LENGTH) return null;
  const v0 = hexValue(value.charCodeAt(0));
  const v1 = hexValue(value.charCodeAt(1));
  if (v0 < 0 || v1 < 0 || (v0 === 15 && v1 === 15)) return null;
  if (v0 === 0 && v1 === 0) {
    if (len !== V00_LENGTH) return null;
  } else if (len > V00_LENGTH && value.charCodeAt(V00_LENGTH) !== DASH) {
    return null;
  }
  if (value.charCodeAt(2) !== DASH || value.charCodeAt(35) !== DASH || value.charCodeAt(52) !== DASH) return null;
  if (!validId(value, 3, 35) || !validId(value, 36, 52)) return null;
  const f0 = hexValue(value.charCodeAt(53));
  const f1 = hexValue(value.charCodeAt(54));
  if (f0 < 0 || f1 < 0) return null;
  return { traceId: value.slice(3, 35), parentId: value.slice(36, 52), sampled: (f1 & 1) === 1 };
}

/**
 * The `traceparent` the gateway sends: always version 00 (the version it implements, also when it received a
 * higher one), with only the sampled flag set or not.
 */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

// Ids need randomness, not secrecy; one randomFillSync call serves a few hundred requests.
const POOL_SIZE = 8192;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const s = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return s;
}

const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** A new random trace id: 32 lower-case hex characters, never all zero. */
export function newTraceId(): string {
  let id = randomHex(16);
  while (id === ZERO_TRACE) id = randomHex(16);
  return id;
}

/** A new random span id: 16 lower-case hex characters, never all zero. */
export function newSpanId(): string {
  let id = randomHex(8);
  while (id === ZERO_SPAN) id = randomHex(8);
  return id;
}

/**
 * The ratio sampler's rejection threshold T = (1 - ratio) * 2^56, split into two 28-bit halves so the per-request
 * comparison needs no BigInt. A trace is sampled when its randomness R (the rightmost 56 bits of the trace id, as
 * in the OpenTelemetry specification's TraceIdRatioBased sampler) is >= T: ratio 1 gives T = 0 (every trace),
 * ratio 0 gives T = 2^56 (none), and a trace sampled at one ratio is sampled at every higher one.
 */
export interface RatioThreshold {
  hi: number;
  lo: number;
}

const HALF = 2 ** 28;

export function ratioThreshold(ratio: number): RatioThreshold {
  const r = Math.min(1, Math.max(0, ratio));
  // (1 - r) * 2^56 as an exact integer: 2^56 is a power of two, so only (1 - r) is rounded.
  const t = BigInt(Math.round((1 - r) * 2 ** 56));
  return { hi: Number(t >> 28n), lo: Number(t & BigInt(HALF - 1)) };
}

/** Seven hex digits (28 bits) of a trace id that is already known to be valid. */
function hex28(s: string, start: number): number {
  let v = 0;
  for (let i = start; i < start + 7; i++) v = v * 16 + hexValue(s.charCodeAt(i));
  return v;
}

/** HOT PATH: the ratio sampler's decision for a (valid) trace id; the same on every gateway with that ratio. */
export function sampledByRatio(traceId: string, t: RatioThreshold): boolean {
  const hi = hex28(traceId, 18);
  if (hi !== t.hi) return hi > t.hi;
  return hex28(traceId, 25) >= t.lo;
}
