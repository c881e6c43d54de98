/**
 * @module dataplane/router/conditions
 * Compiles a route's `match` conditions (headers, query arguments, cookies) into one predicate at config load.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { MatchCondition } from '../../model/common.js';
import type { RouterRequest } from './types.js';

/** True when the request satisfies every condition of a route. */
export type RequestPredicate = (req: RouterRequest) => boolean;

type ValueTest = (value: string | undefined) => boolean;

const FROM_HEADER = 0;
const FROM_QUERY = 1;
const FROM_COOKIE = 2;

interface CompiledCondition {
  readonly source: number;
  /** Lower-case for headers; as written for query arguments and cookies. */
  readonly name: string;
  readonly test: ValueTest;
}

/** A route's conditions could not be compiled; names the route so the operator can find it. */
export class ConditionCompileError extends Error {
  readonly routeId: string;
  constructor(routeId: string, message: string) {
    super(`route "${routeId}": ${message}`);
    this.name = 'ConditionCompileError';
    this.routeId = routeId;
  }
}

/**
 * One predicate for all of a route's conditions (all must hold), or null when it has none so the router
 * has nothing to call. Regexes and value sets are built here, once.
 */
export function compileConditions(routeId: string, conditions: readonly MatchCondition[] | undefined): RequestPredicate | null {
  if (!conditions || conditions.length === 0) return null;
  const compiled: CompiledCondition[] = conditions.map((c, i) => compileOne(routeId, c, i));
  const usesQuery = compiled.some((c) => c.source === FROM_QUERY);

  if (!usesQuery) {
    return (req) => {
      for (let i = 0; i < compiled.length; i++) {
        const c = compiled[i]!;
        const value = c.source === FROM_HEADER ? headerValue(req.headers, c.name) : cookieValue(req.headers.cookie, c.name);
        if (!c.test(value)) return false;
      }
      return true;
    };
  }
  return (req) => {
    // Parsed at most once per call, and only for routes that look at the query.
    let query: URLSearchParams | null = null;
    for (let i = 0; i < compiled.length; i++) {
      const c = compiled[i]!;
      let value: string | undefined;
      if (c.source === FROM_HEADER) value = headerValue(req.headers, c.name);
      else if (c.source === FROM_COOKIE) value = cookieValue(req.headers.cookie, c.name);
      else if (req.query !== '') {
        query ??= new URLSearchParams(req.query);
        value = query.get(c.name) ?? undefined;
      }
      if (!c.test(value)) return false;
    }
    return true;
  };
}

function compileOne(routeId: string, cond: MatchCondition, index: number): CompiledCondition {
  const where = `match[${index}]`;
  let source: number;
  switch (cond.in) {
    case 'header': source = FROM_HEADER; break;
    case 'query': source = FROM_QUERY; break;
    case 'cookie': source = FROM_COOKIE; break;
    default: throw new ConditionCompileError(routeId, `${where}.in "${String(cond.in)}" is not header, query or cookie`);
  }
  if (typeof cond.name !== 'string' || cond.name === '') throw new ConditionCompileError(routeId, `${where}.name is required`);
  const name = source === FROM_HEADER ? cond.name.toLowerCase() : cond.name;
  return { source, name, test: compileTest(routeId, cond, where) };
}

function compileTest(routeId: string, cond: MatchCondition, where: string): ValueTest {
  const op = cond.op ?? 'equals';
  const needValue = (): string => {
    if (typeof cond.value !== 'string') throw new ConditionCompileError(routeId, `${where}.value is required for op ${op}`);
    return cond.value;
  };
  const needValues = (): ReadonlySet<string> => {
    if (!Array.isArray(cond.values) || cond.values.length === 0) {
      throw new ConditionCompileError(routeId, `${where}.values is required for op ${op}`);
    }
    return new Set(cond.values);
  };
  switch (op) {
    case 'equals': {
      const expected = needValue();
      return (v) => v === expected;
    }
    case 'notEquals': {
      const expected = needValue();
      return (v) => v !== expected;
    }
    case 'regex': {
      let re: RegExp;
      try {
        re = new RegExp(needValue());
      } catch (e) {
        if (e instanceof ConditionCompileError) throw e;
        throw new ConditionCompileError(routeId, `${where}.value is not a valid regular expression: ${(e as Error).message}`);
      }
      // No flags, so test() keeps no lastIndex state between requests.
      return (v) => v !== undefined && re.test(v);
    }
    case 'exists':
      return (v) => v !== undefined;
    case 'notExists':
      return (v) => v === undefined;
    case 'in': {
      const set = needValues();
      return (v) => v !== undefined && set.has(v);
    }
    case 'notIn': {
      const set = needValues();
      return (v) => v === undefined || !set.has(v);
    }
    default:
      throw new ConditionCompileError(routeId, `${where}.op "${String(op)}" is not a known operator`);
  }
}

/** A header's value; repeated headers that node kept as a list are joined by ', ' as RFC 9110 5.3 allows. */
export function headerValue(headers: IncomingHttpHeaders, lowerName: string): string | undefined {
  const v = headers[lowerName];
  if (v === undefined || typeof v === 'string') return v;
  return v.join(', ');
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/**
 * The value of the first cookie called `name` in a Cookie header, as sent (surrounding double quotes removed,
 * no percent-decoding), or undefined. Scans the header in place rather than building a map per request.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  const n = header.length;
  let pos = 0;
  while (pos < n) {
    let end = header.indexOf(';', pos);
    if (end === -1) end = n;
    let s = pos;
    while (s < end && isOws(header.charCodeAt(s))) s++;
    const eq = header.indexOf('=', s);
    if (eq !== -1 && eq < end) {
      let nameEnd = eq;
      while (nameEnd > s && isOws(header.charCodeAt(nameEnd - 1))) nameEnd--;
      if (nameEnd - s === name.length && header.startsWith(name, s)) {
        let vs = eq + 1;
        let ve = end;
        while (vs < ve && isOws(header.charCodeAt(vs))) vs++;
        while (ve > vs && isOws(header.charCodeAt(ve - 1))) ve--;
        if (ve - vs >= 2 && header.charCodeAt(vs) === 0x22 && header.charCodeAt(ve - 1) === 0x22) {
          vs++;
          ve--;
        }
        return header.slice(vs, ve);
      }
    }
    pos = end + 1;
  }
  return undefined;
}
