/**
 * @module plugins/request-validation
 * Checks the request body (strict JSON), query arguments and headers against JSON Schemas compiled when config
 * loads, and refuses a request that does not match with the failing paths (never the values).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { Type, type Static } from '@sinclair/typebox';
import { ERRORS } from '../../core/errors.js';
import { definePlugin, type PluginContext, type PluginResponse } from '../../dataplane/plugins/types.js';
import { pointerToPath } from '../../model/validate.js';
import { PRIORITIES } from '../priorities.js';

const UserSchema = (description: string) => Type.Unsafe<Record<string, unknown>>(Type.Object({}, { additionalProperties: true, description }));

const Config = Type.Object(
  {
    body: Type.Optional(UserSchema('JSON Schema (draft-07) the JSON request body must match; the body is then read before the access phase.')),
    query: Type.Optional(UserSchema('JSON Schema (draft-07, type object) of the query arguments; values are strings, coerced to the types the schema names.')),
    headers: Type.Optional(UserSchema('JSON Schema (draft-07, type object) of the request headers, by lower-case name; values are coerced like query arguments.')),
    rejectedCode: Type.Integer({ minimum: 400, maximum: 499, default: 400, description: 'Status of the refusal (the error code stays GH_ERR_REQUEST_INVALID).' }),
    maxDepth: Type.Integer({ minimum: 1, maximum: 512, default: 64, description: 'Deepest nesting of arrays and objects a JSON body may have.' }),
  },
  { additionalProperties: false, description: 'request-validation on a route, service or globally.' },
);
type Config = Static<typeof Config>;

const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

/**
 * Unknown formats are ignored with a warning when strict mode is off; config validation collects those warnings
 * and refuses the schema, because an ignored format is a check the operator thinks is there and is not.
 */
let formatWarnings: string[] | null = null;
const logger = {
  log() {},
  warn(...args: unknown[]) {
    formatWarnings?.push(args.map(String).join(' '));
  },
  error() {},
};

function makeAjv(coerceTypes: boolean): Ajv {
  // Strict mode off: schemas written for OpenAPI carry keywords (example, nullable...) ajv does not know.
  const ajv = new Ajv({ allErrors: true, strict: false, coerceTypes, useDefaults: false, logger });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  return ajv;
}

/** A JSON body is checked as sent: no coercion. */
const bodyAjv = makeAjv(false);
/** Query arguments and headers arrive as strings: coerced to the types the schema names (on a copy). */
const paramAjv = makeAjv(true);

/**
 * Compile once and drop the schema from ajv's cache at once: the compiled function keeps what it needs, and
 * every config reload would otherwise pin the old schemas (and a second route with the same $id would clash).
 */
function compile(ajv: Ajv, schema: Record<string, unknown>): ValidateFunction {
  try {
    return ajv.compile(schema);
  } finally {
    ajv.removeSchema(schema);
  }
}

type Part = 'body' | 'query' | 'headers';

function checkSchema(part: Part, schema: Record<string, unknown>): Array<[string, string]> {
  const ajv = part === 'body' ? bodyAjv : paramAjv;
  const problems: Array<[string, string]> = [];
  let valid: boolean;
  try {
    valid = ajv.validateSchema(schema) as boolean;
  } catch (e) {
    // An unknown $schema (only draft-07 is built in).
    return [[part, `cannot be checked: ${(e as Error).message}`]];
  }
  if (!valid) {
    for (const e of ajv.errors ?? []) problems.push([pointerToPath(e.instancePath, part), e.message ?? 'is invalid']);
    return problems;
  }
  if (part !== 'body') {
    if (schema.type !== undefined && schema.type !== 'object') problems.push([`${part}.type`, `must be "object": ${part} are checked as an object of names`]);
    if (part === 'headers') {
      // Header names arrive lower-cased: an upper-case name in the schema would never match.
      for (const name of Object.keys((schema.properties as Record<string, unknown> | undefined) ?? {})) {
        if (name !== name.toLowerCase()) problems.push([`headers.properties.${name}`, 'header names must be written in lower case']);
      }
      const required = Array.isArray(schema.required) ? (schema.required as unknown[]) : [];
      required.forEach((name, i) => {
        if (typeof name === 'string' && name !== name.toLowerCase()) problems.push([`headers.required[${i}]`, 'header names must be written in lower case']);
      });
    }
  }
  if (schema.$async === true) problems.push([`${part}.$async`, 'asynchronous schemas are not supported']);
  formatWarnings = [];
  try {
    compile(ajv, schema);
    for (const w of formatWarnings) problems.push([part, w.replace(/ ignored in schema/, ' in schema')]);
  } catch (e) {
    problems.push([part, `cannot be compiled: ${(e as Error).message}`]);
  } finally {
    formatWarnings = null;
  }
  return problems;
}

function check(config: Config): Array<[string, string]> {
  if (config.body === undefined && config.query === undefined && config.headers === undefined) {
    return [['', 'needs at least one of body, query, headers']];
  }
  const problems: Array<[string, string]> = [];
  for (const part of ['body', 'query', 'headers'] as const) {
    const schema = config[part];
    if (schema !== undefined) problems.push(...checkSchema(part, schema));
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------------
// Strict JSON: duplicate keys and depth

/** A reason a JSON text is refused before (or besides) JSON.parse. */
export type JsonScanProblem = { kind: 'depth' } | { kind: 'duplicate'; path: string };

function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * One linear pass over a JSON text that finds the first duplicate object key (compared after unescaping, so
 * {"a":1,"\u0061":2} is a duplicate) and refuses nesting deeper than `maxDepth` before anything is built.
 * JSON.parse keeps the last of two equal keys while other parsers keep the first, so a body with duplicates
 * could be checked as one value and used upstream as another. The pass trusts JSON.parse for the grammar: on a
 * text that is not JSON its answer means nothing, and the caller reports the parse error instead.
 */
export function scanJson(text: string, maxDepth: number): JsonScanProblem | null {
  // One frame per open object or array: its keys seen so far (null for an array), current key or index.
  const keys: Array<Set<string> | null> = [];
  const names: string[] = [];
  const indexes: number[] = [];
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i += 2;
          continue;
        }
        if (d === 0x22) break;
        i++;
      }
      if (!expectKey) continue;
      expectKey = false;
      let key = text.slice(start + 1, i);
      if (escaped) {
        try {
          key = JSON.parse(text.slice(start, i + 1)) as string;
        } catch {
          return null; // not JSON: JSON.parse will say so
        }
      }
      const top = keys.length - 1;
      const seen = keys[top]!;
      names[top] = key;
      if (seen.has(key)) {
        let path = '';
        for (let f = 0; f <= top; f++) path += `/${keys[f] === null ? String(indexes[f]) : escapePointer(names[f]!)}`;
        return { kind: 'duplicate', path };
      }
      seen.add(key);
      continue;
    }
    switch (c) {
      case 0x7b /* { */:
        if (keys.length >= maxDepth) return { kind: 'depth' };
        keys.push(new Set());
        names.push('');
        indexes.push(0);
        expectKey = true;
        break;
      case 0x5b /* [ */:
        if (keys.length >= maxDepth) return { kind: 'depth' };
        keys.push(null);
        names.push('');
        indexes.push(0);
        expectKey = false;
        break;
      case 0x7d /* } */:
      case 0x5d /* ] */:
        keys.pop();
        names.pop();
        indexes.pop();
        expectKey = false;
        break;
      case 0x2c /* , */:
        if (keys.length === 0) break;
        if (keys[keys.length - 1] === null) indexes[indexes.length - 1]!++;
        else expectKey = true;
        break;
      default:
        break;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// Per request

interface Detail {
  in: Part;
  path: string;
  message: string;
}

/** Enough to fix a request; a body failing everywhere does not turn into a huge answer. */
const MAX_DETAILS = 20;
const MAX_PATH_LENGTH = 256;

function detail(part: Part, path: string, message: string): Detail {
  return { in: part, path: path.length > MAX_PATH_LENGTH ? `${path.slice(0, MAX_PATH_LENGTH)}...` : path, message };
}

/** ajv's errors as paths and schema messages; ajv's messages name schema facts (limits, types), not data. */
function details(part: Part, errors: ErrorObject[] | null | undefined, out: Detail[]): void {
  for (const e of errors ?? []) {
    if (out.length >= MAX_DETAILS) return;
    let path = e.instancePath;
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'required') {
      path += `/${escapePointer((e.params as { missingProperty: string }).missingProperty)}`;
      message = 'is required';
    } else if (e.keyword === 'additionalProperties') {
      path += `/${escapePointer((e.params as { additionalProperty: string }).additionalProperty)}`;
      message = 'is not allowed';
    }
    if (!out.some((d) => d.in === part && d.path === path && d.message === message)) out.push(detail(part, path, message));
  }
}

/** application/json or any application/*+json, parameters aside. */
function isJsonMediaType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const semi = contentType.indexOf(';');
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

/** Refuses bytes that are not UTF-8 (RFC 8259 8.1) instead of replacing them; a BOM is kept, and JSON.parse refuses it. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Which query arguments the schema wants as arrays: their repeated values are all kept; any other argument
 * keeps its first value, so `?a=1&a=2` against `a: { type: integer }` checks 1, as most frameworks read it.
 */
function arrayArgs(schema: Record<string, unknown>): (name: string) => boolean {
  const isArray = (s: unknown): boolean => {
    if (s === null || typeof s !== 'object') return false;
    const t = (s as { type?: unknown }).type;
    return t === 'array' || (Array.isArray(t) && t.includes('array'));
  };
  const props = (schema.properties as Record<string, unknown> | undefined) ?? {};
  const arrays = new Set(Object.keys(props).filter((name) => isArray(props[name])));
  const othersAreArrays = isArray(schema.additionalProperties);
  return (name) => (Object.hasOwn(props, name) ? arrays.has(name) : othersAreArrays);
}

export default definePlugin<Config>({
  name: 'request-validation',
  version: '1.0.0',
  priority: PRIORITIES['request-validation'],
  description: 'Refuses requests whose JSON body, query arguments or headers do not match JSON Schemas.',
  schema: Config,
  scopes: ['global', 'service', 'route'],
  check,
  create(config) {
    const validateBody = config.body !== undefined ? compile(bodyAjv, config.body) : null;
    const validateQuery = config.query !== undefined ? compile(paramAjv, config.query) : null;
    const validateHeaders = config.headers !== undefined ? compile(paramAjv, config.headers) : null;
    const isArrayArg = config.query !== undefined ? arrayArgs(config.query) : () => false;
    const maxDepth = config.maxDepth;
    const status = config.rejectedCode;

    const refuse = (found: Detail[]): PluginResponse => ({
      status,
      body: { error: { code: 'GH_ERR_REQUEST_INVALID', message: ERRORS.GH_ERR_REQUEST_INVALID.message, details: found } },
    });

    const checkBody = (ctx: PluginContext, out: Detail[]): void => {
      const raw = ctx.bufferedBody;
      if (raw === null || raw.length === 0) {
        out.push(detail('body', '', 'is required'));
        return;
      }
      if (!isJsonMediaType(ctx.headers['content-type'])) {
        out.push(detail('body', '', 'must be sent as application/json'));
        return;
      }
      let text: string;
      try {
        text = utf8.decode(raw);
      } catch {
        out.push(detail('body', '', 'is not valid UTF-8'));
        return;
      }
      const scan = scanJson(text, maxDepth);
      if (scan?.kind === 'depth') {
        out.push(detail('body', '', `nests deeper than ${maxDepth} levels`));
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        // The parser's message quotes the text: never send it back.
        out.push(detail('body', '', 'is not valid JSON'));
        return;
      }
      if (scan !== null) {
        out.push(detail('body', scan.path, 'duplicates a key of its object'));
        return;
      }
      if (!validateBody!(value)) details('body', validateBody!.errors, out);
    };

    const checkQuery = (ctx: PluginContext, out: Detail[]): void => {
      const args: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
      for (const [name, value] of new URLSearchParams(ctx.query)) {
        if (isArrayArg(name)) {
          const list = args[name];
          if (Array.isArray(list)) list.push(value);
          else args[name] = [value];
        } else if (!Object.hasOwn(args, name)) args[name] = value;
      }
      if (!validateQuery!(args)) details('query', validateQuery!.errors, out);
    };

    const checkHeaders = (ctx: PluginContext, out: Detail[]): void => {
      // A copy: coercion changes values in place, and other plugins read ctx.headers.
      const copy: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
      for (const name of Object.keys(ctx.headers)) {
        if (name.charCodeAt(0) === 58 /* : HTTP/2 pseudo-headers */) continue;
        const v = ctx.headers[name];
        if (v !== undefined) copy[name] = Array.isArray(v) ? [...v] : v;
      }
      if (!validateHeaders!(copy)) details('headers', validateHeaders!.errors, out);
    };

    return {
      // The framework reads the body (within the route's maxBodySize) only when a body schema needs it.
      needsBody: validateBody !== null,
      access(ctx) {
        const found: Detail[] = [];
        if (validateHeaders !== null) checkHeaders(ctx, found);
        if (validateQuery !== null) checkQuery(ctx, found);
        if (validateBody !== null) checkBody(ctx, found);
        return found.length > 0 ? refuse(found) : undefined;
      },
    };
  },
});
