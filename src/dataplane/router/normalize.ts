/**
 * @module dataplane/router/normalize
 * Turns a request target into the one canonical path that routing, auth decisions and forwarding all use.
 */

/** How empty path segments ("//") are treated; the proxy.slashes setting. */
export type SlashPolicy = 'merge' | 'keep' | 'reject';

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const QUESTION = 0x3f;

// Character classes for raw (not percent-encoded) ASCII in a path.
const REJECT = 0; // the request gets a 400
const KEEP = 1; // pchar: kept as is
const ENCODE = 2; // not allowed raw by RFC 3986 but harmless: percent-encoded so one resource has one spelling
const SPECIAL = 3; // '/' and '%': handled by the scanner itself

const CHAR_CLASS = new Uint8Array(128);
for (let c = 0x21; c < 0x7f; c++) CHAR_CLASS[c] = ENCODE;
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~' + "!$&'()*+,;=" + ':@') {
  CHAR_CLASS[ch.charCodeAt(0)] = KEEP;
}
CHAR_CLASS[SLASH] = SPECIAL;
CHAR_CLASS[PERCENT] = SPECIAL;
// Some backends (IIS, some Java and Windows stacks) treat '\' as a separator, so it would let a request reach
// a path other than the one we authorised.
CHAR_CLASS[0x5c] = REJECT;
// A fragment never belongs in a request target; backends disagree on whether to cut at it.
CHAR_CLASS[0x23] = REJECT;

/**
 * Strict mode (proxy.ambiguousPaths: reject): ';' starts a path parameter that Tomcat, Jetty and Spring strip
 * ("/admin;x" is "/admin" to them), so it is refused raw, as are encoded '/', '\\' and ';', which some backends
 * decode into separators. Otherwise a path routed to a public route could reach a protected one behind it.
 */
const CHAR_CLASS_STRICT = CHAR_CLASS.slice();
CHAR_CLASS_STRICT[0x3b] = REJECT;
const AMBIGUOUS_BYTES = new Set([0x2f, 0x5c, 0x3b]);

/** Unreserved characters (RFC 3986 2.3): the only ones whose percent-encoding is decoded. */
const UNRESERVED = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') UNRESERVED[ch.charCodeAt(0)] = 1;

const HEX_UPPER = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function isDotSegment(raw: string, start: number, len: number): boolean {
  if (len === 1) return raw.charCodeAt(start) === DOT;
  if (len === 2) return raw.charCodeAt(start) === DOT && raw.charCodeAt(start + 1) === DOT;
  return false;
}

/**
 * The canonical form of a request path, or null when it cannot be normalised safely (the caller answers 400).
 *
 * HOT PATH: a path that is already canonical (no '%', no dot segment, no '//', only pchars) is returned as the
 * very same string after one scan of its char codes, without allocating.
 */
export function normalizePath(raw: string, slashes: SlashPolicy, strict = true): string | null {
  const n = raw.length;
  if (n === 0 || raw.charCodeAt(0) !== SLASH) return null;
  const classes = strict ? CHAR_CLASS_STRICT : CHAR_CLASS;
  let segStart = 1;
  for (let i = 1; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (c > 0x7f) return null;
    const cls = classes[c];
    if (cls === KEEP) continue;
    if (cls === REJECT) return null;
    if (c === SLASH) {
      const len = i - segStart;
      if (len === 0 || isDotSegment(raw, segStart, len)) return normalizeSlow(raw, slashes, classes, strict);
      segStart = i + 1;
      continue;
    }
    return normalizeSlow(raw, slashes, classes, strict);
  }
  if (isDotSegment(raw, segStart, n - segStart)) return normalizeSlow(raw, slashes, classes, strict);
  return raw;
}

/** Decodes and re-encodes each segment, then applies the slash policy and removes dot segments. */
function normalizeSlow(raw: string, slashes: SlashPolicy, classes: Uint8Array, strict: boolean): string | null {
  const n = raw.length;
  const segments: string[] = [];
  let current = '';
  let runStart = 1; // start of the pending run of characters copied as they are
  for (let i = 1; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (c > 0x7f) return null;
    const cls = classes[c];
    if (cls === KEEP) continue;
    if (cls === REJECT) return null;
    current += raw.slice(runStart, i);
    if (c === SLASH) {
      segments.push(current);
      current = '';
    } else if (c === PERCENT) {
      if (i + 2 >= n) return null;
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return null;
      const byte = hi * 16 + lo;
      // An encoded NUL truncates paths in C-based backends and file systems.
      if (byte === 0) return null;
      if (strict && AMBIGUOUS_BYTES.has(byte)) return null;
      current += byte < 0x80 && UNRESERVED[byte] === 1 ? String.fromCharCode(byte) : '%' + HEX_UPPER[hi] + HEX_UPPER[lo];
      i += 2;
    } else {
      current += '%' + HEX_UPPER[c >> 4] + HEX_UPPER[c & 15];
    }
    runStart = i + 1;
  }
  segments.push(current + raw.slice(runStart));

  // RFC 3986 5.2.4 on whole segments: a segment that decoded to '.' or '..' is a dot segment too, so
  // '/a/%2e%2e/b' cannot reach a backend as something that means '/b' while we routed it as '/a/..'.
  const out: string[] = [];
  const last = segments.length - 1;
  for (let j = 0; j <= last; j++) {
    const seg = segments[j]!;
    if (seg === '' && j !== last) {
      if (slashes === 'reject') return null;
      if (slashes === 'keep') out.push('');
      continue;
    }
    if (seg === '.') {
      if (j === last) out.push('');
      continue;
    }
    if (seg === '..') {
      if (out.length === 0) return null;
      out.pop();
      if (j === last) out.push('');
      continue;
    }
    out.push(seg);
  }
  return out.length === 0 ? '/' : '/' + out.join('/');
}

/**
 * Splits a request target into its path and its query (without '?', '' when none) at the first '?'.
 * Absolute-form targets ("http://h/p?q") give their path ('/' when it is empty); '*', authority-form
 * ("host:443") and anything else that is not a path give path ''.
 */
export function splitTarget(url: string): { path: string; query: string } {
  let start = 0;
  if (url.charCodeAt(0) !== SLASH) {
    start = absolutePathStart(url);
    if (start < 0) return { path: '', query: '' };
    if (start === url.length || url.charCodeAt(start) !== SLASH) {
      // Empty path in absolute form means '/' (RFC 9110 4.2.3); a fragment is not part of the target.
      const query = url.charCodeAt(start) === QUESTION ? url.slice(start + 1) : '';
      return { path: '/', query };
    }
  }
  const q = url.indexOf('?', start);
  if (q === -1) return { path: start === 0 ? url : url.slice(start), query: '' };
  return { path: url.slice(start, q), query: url.slice(q + 1) };
}

/** Index just after the authority of an absolute-form target ("scheme://authority"), or -1 when it is not one. */
function absolutePathStart(url: string): number {
  const n = url.length;
  let i = 0;
  for (; i < n; i++) {
    const c = url.charCodeAt(i);
    const alpha = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (alpha) continue;
    if (i > 0 && ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === DOT)) continue;
    break;
  }
  if (i === 0 || !url.startsWith('://', i)) return -1;
  for (i += 3; i < n; i++) {
    const c = url.charCodeAt(i);
    if (c === SLASH || c === QUESTION || c === 0x23) break;
  }
  return i;
}
