/**
 * @module plugins/proxy-rewrite
 * Rewrites the request sent upstream (path, query, Host, method, headers) after authentication and access were
 * decided on the path the client asked for, keeping the forwarded path canonical.
 */
import { Type, type Static } from '@sinclair/typebox';
import { errorBody } from '../../core/errors.js';
import { StringEnum } from '../../model/common.js';
import { normalizePath } from '../../dataplane/router/normalize.js';
import { definePlugin, type PluginContext, type PluginResponse } from '../../dataplane/plugins/types.js';
import { PRIORITIES } from '../priorities.js';
import { HeaderName, HeaderValues, protectedHeaderEdits } from '../util.js';


const Config = Type.Object(
  {
    uri: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 4096,
        description: 'New upstream path, starting with "/"; may use the route\'s path parameters as $name or ${name}, and "?query" to replace the query. "$$" is a literal "$".',
      }),
    ),
    regexUri: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 4096, description: 'The pattern, then the replacement.' }), {
        minItems: 2,
        maxItems: 2,
        description: '[pattern, replacement]: when the pattern matches the path, the path becomes the replacement, which may use captures ($1, ${2}, named groups ${name}) and path parameters; "?query" in it replaces the query. No match: the path is kept.',
      }),
    ),
    stripPrefix: Type.Optional(
      Type.String({ minLength: 2, maxLength: 1024, description: 'A path prefix removed at a segment boundary ("/api" turns /api/users into /users and /api into /); other paths are kept.' }),
    ),
    host: Type.Optional(
      Type.String({
        maxLength: 261,
        pattern: '^(?:[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]{1,5})?$',
        description: 'Host header sent upstream (host or host:port), replacing what passHost chose (not with passHost: node, see the docs).',
      }),
    ),
    method: Type.Optional(
      StringEnum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], { description: 'Method sent upstream.' }),
    ),
    headers: Type.Object(
      {
        set: HeaderValues('Upstream headers to set, replacing the client\'s values: name -> value (taken literally).'),
        add: HeaderValues('Upstream headers to append, keeping the client\'s values: name -> value (taken literally).'),
        remove: Type.Array(HeaderName, { default: [], maxItems: 64, description: 'Upstream headers to remove.' }),
      },
      { default: {}, additionalProperties: false, description: 'Upstream header changes, applied in the order remove, set, add.' },
    ),
  },
  { additionalProperties: false, description: 'proxy-rewrite on a route, service, consumer or globally.' },
);
type Config = Static<typeof Config>;

/**
 * Headers the gateway owns: framing and hop-by-hop headers (changing them invites request smuggling), Host
 * (the `host` option sets it) and the consumer identity an auth plugin vouches for.
 */
const PROTECTED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'proxy-connection', 'x-consumer-username']);

/** One piece of a template: literal text, a route path parameter, a regex capture by number or by name. */
type Part = string | { param: string } | { group: number } | { named: string };

interface Template {
  path: Part[];
  /** The query part after '?', or null when the template has none (the client's query is kept). */
  query: Part[] | null;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Parses "$name", "${name}", "$1", "${1}" and "$$"; throws a message on a malformed one. */
function parseTemplate(text: string, groups: number, named: Set<string>, regex: boolean): Template {
  const parts: Part[] = [];
  let query: Part[] | null = null;
  let target = parts;
  let literal = '';
  const flush = () => {
    if (literal !== '') target.push(literal);
    literal = '';
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '?' && query === null) {
      flush();
      query = [];
      target = query;
      continue;
    }
    if (c !== '$') {
      literal += c;
      continue;
    }
    if (text[i + 1] === '$') {
      literal += '$';
      i++;
      continue;
    }
    let ref: string;
    if (text[i + 1] === '{') {
      const end = text.indexOf('}', i + 2);
      if (end === -1) throw new Error('has a "${" without its "}"');
      ref = text.slice(i + 2, end);
      i = end;
    } else {
      const m = /^(?:[0-9]+|[A-Za-z_][A-Za-z0-9_]*)/.exec(text.slice(i + 1));
      if (m === null) throw new Error('has a "$" that starts no $name, ${name} or $1 (write "$$" for a literal "$")');
      ref = m[0];
      i += ref.length;
    }
    flush();
    if (/^[0-9]+$/.test(ref)) {
      const n = Number(ref);
      if (!regex) throw new Error(`uses capture $${ref}: captures need regexUri`);
      if (n < 1 || n > groups) throw new Error(`uses capture $${ref} but the pattern has ${groups} group(s)`);
      target.push({ group: n });
    } else if (NAME.test(ref)) {
      target.push(named.has(ref) ? { named: ref } : { param: ref });
    } else {
      throw new Error(`has "\${${ref}}", which is neither a name nor a capture number`);
    }
  }
  flush();
  return { path: parts, query };
}

/** Whether a path has a '.' or '..' segment, raw or percent-encoded ("%2e"). */
function hasDotSegment(path: string): boolean {
  let start = 1;
  for (let i = 1; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 0x2f) continue;
    const len = i - start;
    if (len >= 1 && len <= 6) {
      const seg = path.slice(start, i).replace(/%2e/gi, '.');
      if (seg === '.' || seg === '..') return true;
    }
    start = i + 1;
  }
  return false;
}

/** Visible ASCII except '#': what a query may hold. */
const QUERY_TEXT = /^[\x21-\x22\x24-\x7e]*$/;

/** Checks a template's literal text with placeholders stood in by a plain segment character. */
function templateProblem(t: Template): string | null {
  const sample = t.path.map((p) => (typeof p === 'string' ? p : 'x')).join('');
  if (!sample.startsWith('/')) return 'must start with "/"';
  if (hasDotSegment(sample)) return 'must not have "." or ".." segments';
  if (normalizePath(sample, 'keep') === null) return 'is not a valid path (no "#", "\\", ";", spaces or non-ASCII characters)';
  if (t.query !== null && !QUERY_TEXT.test(t.query.map((p) => (typeof p === 'string' ? p : 'x')).join(''))) return 'has a query with characters a query cannot hold raw ("#", spaces, non-ASCII)';
  return null;
}

/** How many capture groups a pattern has, and the names of its named groups. */
function groupsOf(re: RegExp): { count: number; named: Set<string> } {
  const m = new RegExp(`${re.source}|`).exec('')!;
  return { count: m.length - 1, named: new Set(Object.keys(m.groups ?? {})) };
}

function compileRegex(source: string): RegExp {
  return new RegExp(source);
}

function check(config: Config): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  const pathOptions = (['uri', 'regexUri', 'stripPrefix'] as const).filter((k) => config[k] !== undefined);
  if (pathOptions.length > 1) problems.push([pathOptions[1]!, `cannot be used with ${pathOptions[0]}: use one of uri, regexUri, stripPrefix`]);
  if (config.uri !== undefined) {
    try {
      const problem = templateProblem(parseTemplate(config.uri, 0, new Set(), false));
      if (problem !== null) problems.push(['uri', problem]);
    } catch (e) {
      problems.push(['uri', (e as Error).message]);
    }
  }
  if (config.regexUri !== undefined) {
    const [source, replacement] = config.regexUri as [string, string];
    let re: RegExp | null = null;
    try {
      re = compileRegex(source);
    } catch (e) {
      problems.push(['regexUri[0]', `is not a valid regular expression: ${(e as Error).message}`]);
    }
    if (re !== null) {
      const g = groupsOf(re);
      try {
        const problem = templateProblem(parseTemplate(replacement, g.count, g.named, true));
        if (problem !== null) problems.push(['regexUri[1]', problem]);
      } catch (e) {
        problems.push(['regexUri[1]', (e as Error).message]);
      }
    }
  }
  if (config.stripPrefix !== undefined) {
    const p = config.stripPrefix;
    if (!p.startsWith('/') || normalizePath(p, 'reject') !== p || p === '/') problems.push(['stripPrefix', 'must be a canonical path of at least one segment ("/api", no "//", "." or "%"-encoded unreserved characters)']);
  }
  problems.push(
    ...protectedHeaderEdits(
      config.headers,
      (name) => PROTECTED.has(name),
      (name) => (name === 'host' ? 'use the host option to set Host' : 'is a header the gateway owns (framing, hop-by-hop or the consumer identity) and cannot be changed'),
    ),
  );
  return problems;
}

/** Characters that would start another argument or change a value if a substituted value carried them. */
const QUERY_SPECIAL = /[&=+;]/g;
const encodeQueryChar = (c: string): string => `%${c.charCodeAt(0).toString(16).toUpperCase()}`;

function render(parts: Part[], ctx: PluginContext, m: RegExpExecArray | null, inQuery: boolean): string {
  let out = '';
  for (const p of parts) {
    let value: string;
    if (typeof p === 'string') {
      out += p;
      continue;
    }
    if ('param' in p) {
      const v = ctx.params?.[p.param];
      // A config error the loader cannot see (the template may sit on a service): fail rather than guess a path.
      if (v === undefined) throw new Error(`the route has no path parameter "${p.param}"`);
      value = v;
    } else if ('group' in p) value = m![p.group] ?? '';
    else value = m!.groups?.[p.named] ?? '';
    out += inQuery ? value.replace(QUERY_SPECIAL, encodeQueryChar) : value;
  }
  return out;
}

/** The gateway's own 400 for a rewrite that produced a path it cannot forward safely. */
const PATH_INVALID: PluginResponse = { status: 400, headers: { 'content-type': 'application/json' }, body: errorBody('GH_ERR_PATH_INVALID') };

export default definePlugin<Config>({
  name: 'proxy-rewrite',
  version: '1.0.0',
  priority: PRIORITIES['proxy-rewrite'],
  description: 'Rewrites the upstream request: path (template, regex or prefix strip), query, Host, method and headers.',
  schema: Config,
  check,
  create(config) {
    let template: Template | null = null;
    let regex: RegExp | null = null;
    if (config.uri !== undefined) template = parseTemplate(config.uri, 0, new Set(), false);
    if (config.regexUri !== undefined) {
      regex = compileRegex(config.regexUri[0]!);
      const g = groupsOf(regex);
      template = parseTemplate(config.regexUri[1]!, g.count, g.named, true);
    }
    const prefix = config.stripPrefix?.replace(/\/+$/, '') ?? null;
    const headers = config.headers ?? { set: {}, add: {}, remove: [] };
    const remove = headers.remove ?? [];
    const set = Object.entries(headers.set ?? {});
    const add = Object.entries(headers.add ?? {});
    const host = config.host ?? null;
    const method = config.method ?? null;

    return {
      // beforeUpstream, not rewrite: routing, authentication and access were all decided on the client's path.
      beforeUpstream(ctx) {
        if (template !== null) {
          let m: RegExpExecArray | null = null;
          if (regex !== null) m = regex.exec(ctx.path);
          if (regex === null || m !== null) {
            const raw = render(template.path, ctx, m, false);
            // Substituted values come from the client: a '..' they form would climb out of the operator's path.
            const path = hasDotSegment(raw) ? null : normalizePath(raw, 'merge');
            if (path === null) {
              ctx.errorCode = 'GH_ERR_PATH_INVALID';
              return PATH_INVALID;
            }
            ctx.path = path;
            if (template.query !== null) ctx.query = render(template.query, ctx, m, true);
          }
        } else if (prefix !== null) {
          const p = ctx.path;
          if (p === prefix) ctx.path = '/';
          else if (p.length > prefix.length && p.startsWith(prefix) && p.charCodeAt(prefix.length) === 0x2f) ctx.path = p.slice(prefix.length);
        }
        if (method !== null) ctx.method = method;
        if (host !== null) ctx.setUpstreamHeader('host', host);
        for (const name of remove) ctx.removeUpstreamHeader(name);
        for (const [name, value] of set) ctx.setUpstreamHeader(name, value);
        for (const [name, value] of add) ctx.addUpstreamHeader(name, value);
      },
    };
  },
});
