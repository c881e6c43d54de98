/**
 * @module dataplane/http-syntax
 * HTTP/1.1 syntax shared by the gateway's own readers and writers of messages: the upstream client
 * (upstream/h1-client.ts) and the plain-request server (h1/).
 */

/** Token characters of RFC 9110 5.6.2 (a header field name, a method), for use inside a character class. */
export const TOKEN_CHARS = "!#$%&'*+\\-.^_`|~0-9A-Za-z";
/** Field value characters of RFC 9110 5.5 (VCHAR, obs-text, SP, HTAB): no CR, LF, NUL or other controls. */
export const FIELD_CHARS = '\\t\\x20-\\x7e\\x80-\\xff';
export const TOKEN = new RegExp(`^[${TOKEN_CHARS}]+$`);
export const BAD_VALUE = new RegExp(`[^${FIELD_CHARS}]`);
export const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/** text[start, end) without the optional whitespace (SP, HTAB) around it (RFC 9110 5.6.3). */
export function trimmedSlice(text: string, start: number, end: number): string {
  while (start < end && (text.charCodeAt(start) === 32 || text.charCodeAt(start) === 9)) start++;
  while (end > start && (text.charCodeAt(end - 1) === 32 || text.charCodeAt(end - 1) === 9)) end--;
  return text.slice(start, end);
}
