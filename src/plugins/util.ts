/**
 * @module plugins/util
 * Small helpers plugins share: query arguments and cookies read without building objects per request, and the
 * header-edit schemas and checks of the rewrite plugins.
 */
import { Type } from '@sinclair/typebox';

/** The first value of a query argument (percent-decoded), or undefined. `query` is the raw string without '?'. */
export function queryValue(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    const eq = query.indexOf('=', start);
    const keyEnd = eq !== -1 && eq < end ? eq : end;
    if (keyEnd - start === name.length && query.startsWith(name, start)) {
      const raw = keyEnd === end ? '' : query.slice(keyEnd + 1, end);
      try {
        return decodeURIComponent(raw.replace(/\+/g, ' '));
      } catch {
        return raw;
      }
    }
    start = end + 1;
  }
  return undefined;
}

/** The query string with every occurrence of one argument removed. */
export function withoutQueryArg(query: string, name: string): string {
  return query
    .split('&')
    .filter((part) => {
      const eq = part.indexOf('=');
      return (eq === -1 ? part : part.slice(0, eq)) !== name;
    })
    .join('&');
}

/** The value of a cookie by name from a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The set/add/remove header edits proxy-rewrite and response-rewrite take. */
export interface HeaderEdits {
  set?: Record<string, string>;
  add?: Record<string, string>;
  remove?: string[];
}

/**
 * Problems for edits of headers a plugin may not touch, as [relative path, message]; `why(name)` says why for a
 * given (lower-case) name.
 */
export function protectedHeaderEdits(headers: HeaderEdits | undefined, isProtected: (lower: string) => boolean, why: (lower: string) => string): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  const lists = [
    ['set', Object.keys(headers?.set ?? {})],
    ['add', Object.keys(headers?.add ?? {})],
    ['remove', headers?.remove ?? []],
  ] as const;
  for (const [kind, names] of lists) {
    names.forEach((name, i) => {
      const lower = name.toLowerCase();
      if (isProtected(lower)) problems.push([kind === 'remove' ? `headers.remove[${i}]` : `headers.${kind}.${name}`, why(lower)]);
    });
  }
  return problems;
}

/** RFC 9110 token: what a header name may be. */
const TOKEN = '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$';
/** A header value: no CR, LF or NUL, so no header can be smuggled in. */
const VALUE = '^[^\\r\\n\\x00]*$';

/** A header name in a plugin config. */
export const HeaderName = Type.String({ minLength: 1, maxLength: 128, pattern: TOKEN, description: 'A header name.' });

/** Header values by name in a plugin config (set/add lists), with names and values checked. */
export const HeaderValues = (what: string) =>
  Type.Record(Type.String({ pattern: TOKEN, maxLength: 128 }), Type.String({ maxLength: 8192, pattern: VALUE }), {
    default: {},
    maxProperties: 64,
    // Without it a name that fails the pattern would simply be allowed.
    additionalProperties: false,
    description: what,
  });
