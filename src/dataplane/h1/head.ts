/**
 * @module dataplane/h1/head
 * The request heads the gateway's own HTTP/1.1 server reads itself: the plain, unambiguous case only.
 *
 * A head is taken here when every byte of it fits a narrow grammar: `METHOD SP target SP HTTP/1.1`, then
 * `token ":" value` lines, each ended by CRLF, values of visible ASCII, space and tab. No request body
 * (Content-Length absent or exactly 0, no Transfer-Encoding), no Expect, no Upgrade, no CONNECT. Anything else,
 * valid or not, returns null and the connection is handed to node's HTTP server, which answers it as it always
 * has: so this reader never has to decide a doubtful case (obs-fold, bare CR or LF, obs-text, duplicate or
 * odd Content-Length, chunked bodies), and it cannot be more lenient than node's parser.
 *
 * The header object follows node's rules exactly (node's IncomingMessage is what the rest of the gateway was
 * written against; a test compares both on the same heads): lower-case names; for the fields below the first
 * value wins; `set-cookie` is an array; `cookie` values are joined with "; ", every other field's with ", ".
 */
import { TOKEN_CHARS, trimmedSlice } from '../http-syntax.js';

/** Fields where node keeps the first value and drops later ones (the same in node 20, 22 and 24). */
const FIRST_WINS = new Set([
  'age',
  'authorization',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

const REQUEST_LINE = new RegExp(`^([${TOKEN_CHARS}]+) ([\\x21-\\x7e]+) HTTP/1\\.1$`);
/** The header section plus a final CRLF: lines of `token:value`, values of SP, HTAB and visible ASCII (no obs-text). */
const FIELD_LINES = new RegExp(`^(?:[${TOKEN_CHARS}]+:[\\t\\x20-\\x7e]*\\r\\n)*$`);
/** More header lines than this go to node (its own limit drops fields past 2000). */
const MAX_FIELDS = 200;

export interface RequestHead {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: Record<string, string | string[]>;
  /** The client asked to close the connection after this request. */
  close: boolean;
}

/**
 * Parse a request head (the bytes before the empty line, as latin1). Null: not the plain case, the
 * connection goes to node's server.
 */
export function parseHead(head: string): RequestHead | null {
  const lineEnd = head.indexOf('\r\n');
  const line = REQUEST_LINE.exec(lineEnd === -1 ? head : head.slice(0, lineEnd));
  if (line === null) return null;
  const method = line[1]!;
  if (method === 'CONNECT') return null;
  const rawHeaders: string[] = [];
  const headers: Record<string, string | string[]> = {};
  let close = false;
  let contentLength = false;
  if (lineEnd !== -1) {
    const block = head.slice(lineEnd + 2) + '\r\n';
    if (!FIELD_LINES.test(block)) return null;
    let pos = 0;
    while (pos < block.length) {
      if (rawHeaders.length >= MAX_FIELDS * 2) return null;
      const nl = block.indexOf('\r\n', pos);
      const colon = block.indexOf(':', pos);
      const name = block.slice(pos, colon);
      const value = trimmedSlice(block, colon + 1, nl);
      pos = nl + 2;
      const lower = name.toLowerCase();
      rawHeaders.push(name, value);
      switch (lower) {
        case 'content-length':
          // Only an announced empty body is the plain case; a second Content-Length is node's to refuse.
          if (value !== '0' || contentLength) return null;
          contentLength = true;
          break;
        case 'transfer-encoding':
        case 'expect':
        case 'upgrade':
        case 'http2-settings':
          return null;
        case 'connection':
          for (const token of value.split(',')) {
            const t = trimmedSlice(token, 0, token.length).toLowerCase();
            if (t === 'close') close = true;
            else if (t === 'upgrade') return null;
          }
          break;
        case '__proto__':
          // Node drops it (an assignment to an object's prototype slot); so does this reader.
          continue;
      }
      const prev = lower === 'constructor' ? (Object.hasOwn(headers, lower) ? headers[lower] : undefined) : headers[lower];
      if (prev === undefined) headers[lower] = lower === 'set-cookie' ? [value] : value;
      else if (lower === 'set-cookie') (prev as string[]).push(value);
      else if (FIRST_WINS.has(lower)) continue;
      else headers[lower] = `${prev as string}${lower === 'cookie' ? '; ' : ', '}${value}`;
    }
  }
  return { method, url: line[2]!, rawHeaders, headers, close };
}
