/**
 * @module dataplane/router/router
 * Finds the route for a request: host groups by specificity, a segment tree per group, full backtracking.
 */
import type { Route } from '../../model/route.js';
import { compileConditions, type RequestPredicate } from './conditions.js';
import { normalizePath } from './normalize.js';
import type { RouteEntry, RouteMatch, Router, RouterRequest } from './types.js';

/** A route could not be compiled; names the route so the operator can find it. */
export class RouteCompileError extends Error {
  readonly routeId: string;
  constructor(routeId: string, message: string) {
    super(`route "${routeId}": ${message}`);
    this.name = 'RouteCompileError';
    this.routeId = routeId;
  }
}

/** One (route, path pattern) pair hung on a tree node. */
interface Candidate<T> {
  readonly route: Route;
  readonly value: T;
  readonly pattern: string;
  readonly methods: ReadonlySet<string> | null;
  readonly predicate: RequestPredicate | null;
  /** Names of the pattern's parameters in path order, or null when it has none. */
  readonly paramNames: readonly string[] | null;
  /** The answer for a pattern without parameters, built once so such a match allocates nothing. */
  readonly sharedMatch: RouteMatch<T> | null;
  readonly priority: number;
  readonly entryIndex: number;
  readonly pathIndex: number;
}

interface StaticEdge<T> {
  readonly key: string;
  readonly node: PathNode<T>;
}

interface PathNode<T> {
  /**
   * Static children keyed by a hash of the segment, so lookup needs no substring of the request path;
   * the edge key is compared in place to rule out collisions.
   */
  statics: Map<number, StaticEdge<T>[]> | null;
  /** The one child for a ':name' segment, whatever the name. */
  param: PathNode<T> | null;
  /** Routes whose pattern ends at this node. */
  exact: Candidate<T>[] | null;
  /** Routes whose pattern is this node followed by '/*'. */
  prefix: Candidate<T>[] | null;
}

interface WildcardGroup<T> {
  /** The part after '*.' ("example.com"). */
  readonly suffix: string;
  readonly root: PathNode<T>;
}

function newNode<T>(): PathNode<T> {
  return { statics: null, param: null, exact: null, prefix: null };
}

// FNV-1a, kept to 30 bits so keys stay small integers (no boxing) in V8.
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
const HASH_MASK = 0x3fffffff;

function hashRange(s: string, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h & HASH_MASK;
}

/** Hash of a host suffix taken from its last character backwards, the order the matcher scans a host in. */
function hashReverse(s: string): number {
  let h = FNV_OFFSET;
  for (let i = s.length - 1; i >= 0; i--) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h & HASH_MASK;
}

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOST_NAME = /^[a-z0-9_.-]+$/;
const NON_ASCII = /[^\x00-\x7f]+/g;

type PatternSegment = { param: false; key: string } | { param: true; name: string };

interface CompiledPattern {
  segments: PatternSegment[];
  isPrefix: boolean;
  paramNames: string[];
}

/** Parses a route path into tree segments, in the same canonical form request paths are normalised to. */
function compilePattern(routeId: string, pattern: string): CompiledPattern {
  if (typeof pattern !== 'string' || pattern.charCodeAt(0) !== 0x2f) {
    throw new RouteCompileError(routeId, `path "${pattern}" must start with "/"`);
  }
  let body = pattern;
  let isPrefix = false;
  if (body.endsWith('/*')) {
    isPrefix = true;
    body = body.slice(0, -2);
  }
  if (body.includes('*')) throw new RouteCompileError(routeId, `path "${pattern}" may only end in "/*"; "*" is not allowed elsewhere`);
  const segments: PatternSegment[] = [];
  const paramNames: string[] = [];
  if (body === '') return { segments, isPrefix, paramNames };

  for (const seg of body.split('/')) {
    if (seg === '.' || seg === '..') throw new RouteCompileError(routeId, `path "${pattern}" must not contain "." or ".." segments`);
  }
  // A route written '/café' or '/%7euser' must meet the request in its canonical spelling.
  try {
    body = body.replace(NON_ASCII, (s) => encodeURIComponent(s));
  } catch {
    throw new RouteCompileError(routeId, `path "${pattern}" is not valid Unicode`);
  }
  // Route paths are config, not attacks: canonical form without the strict request rules.
  const canonical = normalizePath(body, 'keep', false);
  if (canonical === null) throw new RouteCompileError(routeId, `path "${pattern}" cannot be normalised (bad escape, control character or "\\")`);

  for (const seg of canonical.slice(1).split('/')) {
    if (seg.charCodeAt(0) === 0x3a) {
      const name = seg.slice(1);
      if (!PARAM_NAME.test(name)) throw new RouteCompileError(routeId, `path "${pattern}" has an invalid parameter segment "${seg}"`);
      // Parameters are copied onto a plain object, where this key would set the prototype instead.
      if (name === '__proto__') throw new RouteCompileError(routeId, `path "${pattern}" may not name a parameter "__proto__"`);
      if (paramNames.includes(name)) throw new RouteCompileError(routeId, `path "${pattern}" names parameter "${name}" twice`);
      paramNames.push(name);
      segments.push({ param: true, name });
    } else {
      segments.push({ param: false, key: seg });
    }
  }
  return { segments, isPrefix, paramNames };
}

function insert<T>(root: PathNode<T>, compiled: CompiledPattern, cand: Candidate<T>): void {
  let node = root;
  for (const seg of compiled.segments) {
    if (seg.param) {
      node.param ??= newNode();
      node = node.param;
      continue;
    }
    node.statics ??= new Map();
    const h = hashRange(seg.key, 0, seg.key.length);
    let bucket = node.statics.get(h);
    if (!bucket) {
      bucket = [];
      node.statics.set(h, bucket);
    }
    let edge = bucket.find((e) => e.key === seg.key);
    if (!edge) {
      edge = { key: seg.key, node: newNode() };
      bucket.push(edge);
    }
    node = edge.node;
  }
  if (compiled.isPrefix) (node.prefix ??= []).push(cand);
  else (node.exact ??= []).push(cand);
}

function byPrecedence<T>(a: Candidate<T>, b: Candidate<T>): number {
  return b.priority - a.priority || a.entryIndex - b.entryIndex || a.pathIndex - b.pathIndex;
}

function sortTree<T>(node: PathNode<T>): void {
  node.exact?.sort(byPrecedence);
  node.prefix?.sort(byPrecedence);
  if (node.statics) for (const bucket of node.statics.values()) for (const e of bucket) sortTree(e.node);
  if (node.param) sortTree(node.param);
}

/**
 * The first candidate in the list whose methods and conditions accept the request.
 * HOT PATH.
 */
function pick<T>(cands: Candidate<T>[], req: RouterRequest, path: string, scratch: Int32Array): RouteMatch<T> | null {
  for (let i = 0; i < cands.length; i++) {
    const c = cands[i]!;
    if (c.methods !== null && !c.methods.has(req.method)) continue;
    if (c.predicate !== null && !c.predicate(req)) continue;
    if (c.sharedMatch !== null) return c.sharedMatch;
    const names = c.paramNames!;
    const params: Record<string, string> = {};
    for (let j = 0; j < names.length; j++) params[names[j]!] = path.slice(scratch[2 * j]!, scratch[2 * j + 1]!);
    return { value: c.value, route: c.route, params, pattern: c.pattern };
  }
  return null;
}

/**
 * Depth-first walk: static child, then parameter child, then this node's prefix routes, so the most specific
 * path is tried first and every less specific one is still tried when a candidate's method or conditions fail.
 * `pos` is where the next segment starts; past the end means the path is used up.
 * Parameter bounds go into `scratch` at their depth, so a failed branch costs no allocation.
 * HOT PATH.
 */
function walk<T>(node: PathNode<T>, req: RouterRequest, path: string, pos: number, depth: number, scratch: Int32Array): RouteMatch<T> | null {
  const n = path.length;
  if (pos > n) {
    if (node.exact !== null) {
      const m = pick(node.exact, req, path, scratch);
      if (m !== null) return m;
    }
    return node.prefix !== null ? pick(node.prefix, req, path, scratch) : null;
  }
  let end = path.indexOf('/', pos);
  if (end === -1) end = n;
  if (node.statics !== null) {
    const bucket = node.statics.get(hashRange(path, pos, end));
    if (bucket !== undefined) {
      const len = end - pos;
      for (let i = 0; i < bucket.length; i++) {
        const edge = bucket[i]!;
        if (edge.key.length === len && path.startsWith(edge.key, pos)) {
          const m = walk(edge.node, req, path, end + 1, depth, scratch);
          if (m !== null) return m;
          break;
        }
      }
    }
  }
  if (node.param !== null && end > pos) {
    scratch[2 * depth] = pos;
    scratch[2 * depth + 1] = end;
    const m = walk(node.param, req, path, end + 1, depth + 1, scratch);
    if (m !== null) return m;
  }
  return node.prefix !== null ? pick(node.prefix, req, path, scratch) : null;
}

class SegmentRouter<T> implements Router<T> {
  readonly size: number;
  private readonly exactHosts: Map<string, PathNode<T>>;
  /** Wildcard groups keyed by hashReverse(suffix). */
  private readonly wildcardHosts: Map<number, WildcardGroup<T>[]>;
  private readonly anyHost: PathNode<T> | null;
  /** Start/end of each captured parameter; matching is synchronous, so one buffer per router suffices. */
  private readonly scratch: Int32Array;

  constructor(size: number, exactHosts: Map<string, PathNode<T>>, wildcardHosts: Map<number, WildcardGroup<T>[]>, anyHost: PathNode<T> | null, maxParams: number) {
    this.size = size;
    this.exactHosts = exactHosts;
    this.wildcardHosts = wildcardHosts;
    this.anyHost = anyHost;
    this.scratch = new Int32Array(2 * Math.max(1, maxParams));
  }

  /** HOT PATH: exact host group, then wildcard groups from the longest suffix, then routes without hosts. */
  match(req: RouterRequest): RouteMatch<T> | null {
    const path = req.path;
    if (path.charCodeAt(0) !== 0x2f) return null;
    const host = req.host;
    if (host !== '') {
      if (this.exactHosts.size !== 0) {
        const root = this.exactHosts.get(host);
        if (root !== undefined) {
          const m = walk(root, req, path, 1, 0, this.scratch);
          if (m !== null) return m;
        }
      }
      if (this.wildcardHosts.size !== 0) {
        const m = this.matchWildcard(req, host, host.length - 1, FNV_OFFSET);
        if (m !== null) return m;
      }
    }
    return this.anyHost !== null ? walk(this.anyHost, req, path, 1, 0, this.scratch) : null;
  }

  /**
   * Scans the host leftwards from `i`, hashing as it goes (`h` covers host[i+1..]). At each '.', the suffix
   * to its right is a candidate; longer suffixes are tried first by recursing before looking this one up,
   * so lookup costs one map probe per label and no substrings.
   * HOT PATH.
   */
  private matchWildcard(req: RouterRequest, host: string, i: number, h: number): RouteMatch<T> | null {
    while (i >= 0) {
      const c = host.charCodeAt(i);
      if (c === 0x2e) break;
      h = Math.imul(h ^ c, FNV_PRIME);
      i--;
    }
    // No dot left, or a dot with no label before it: '*.example.com' needs at least one label in front.
    if (i <= 0) return null;
    const longer = this.matchWildcard(req, host, i - 1, Math.imul(h ^ 0x2e, FNV_PRIME));
    if (longer !== null) return longer;
    const bucket = this.wildcardHosts.get(h & HASH_MASK);
    if (bucket === undefined) return null;
    const suffixLen = host.length - i - 1;
    for (let k = 0; k < bucket.length; k++) {
      const g = bucket[k]!;
      if (g.suffix.length === suffixLen && host.endsWith(g.suffix)) return walk(g.root, req, req.path, 1, 0, this.scratch);
    }
    return null;
  }
}

/**
 * Compiles routes into a router. Disabled routes are left out. Throws RouteCompileError (or
 * ConditionCompileError) naming the route when one cannot be compiled.
 */
export function compileRouter<T>(entries: RouteEntry<T>[]): Router<T> {
  const exactHosts = new Map<string, PathNode<T>>();
  const wildcardBySuffix = new Map<string, WildcardGroup<T>>();
  let anyHost: PathNode<T> | null = null;
  const seenIds = new Set<string>();
  let size = 0;
  let maxParams = 0;

  for (let entryIndex = 0; entryIndex < entries.length; entryIndex++) {
    const { route, value } = entries[entryIndex]!;
    if (route.enabled === false) continue;
    const id = route.id;
    if (seenIds.has(id)) throw new RouteCompileError(id, 'id is used by more than one route');
    seenIds.add(id);
    if (!Array.isArray(route.paths) || route.paths.length === 0) throw new RouteCompileError(id, 'has no paths');
    if (route.methods !== undefined && route.methods.length === 0) throw new RouteCompileError(id, 'methods, when given, must list at least one method');
    if (route.hosts !== undefined && route.hosts.length === 0) throw new RouteCompileError(id, 'hosts, when given, must list at least one host');

    const methods = route.methods ? new Set<string>(route.methods) : null;
    const predicate = compileConditions(id, route.match);
    const priority = route.priority ?? 0;

    const roots: PathNode<T>[] = [];
    if (route.hosts === undefined) {
      anyHost ??= newNode();
      roots.push(anyHost);
    } else {
      for (const raw of new Set(route.hosts.map((h) => h.toLowerCase()))) {
        const wildcard = raw.startsWith('*.');
        const name = wildcard ? raw.slice(2) : raw;
        if (!HOST_NAME.test(name)) throw new RouteCompileError(id, `host "${raw}" is not a host name or "*." followed by one`);
        if (wildcard) {
          let group = wildcardBySuffix.get(name);
          if (!group) {
            group = { suffix: name, root: newNode() };
            wildcardBySuffix.set(name, group);
          }
          roots.push(group.root);
        } else {
          let root = exactHosts.get(name);
          if (!root) {
            root = newNode();
            exactHosts.set(name, root);
          }
          roots.push(root);
        }
      }
    }

    route.paths.forEach((pattern, pathIndex) => {
      const compiled = compilePattern(id, pattern);
      maxParams = Math.max(maxParams, compiled.paramNames.length);
      const hasParams = compiled.paramNames.length > 0;
      const cand: Candidate<T> = {
        route,
        value,
        pattern,
        methods,
        predicate,
        paramNames: hasParams ? compiled.paramNames : null,
        // Frozen because every request for this route gets the same object.
        sharedMatch: hasParams ? null : Object.freeze({ value, route, params: null, pattern }),
        priority,
        entryIndex,
        pathIndex,
      };
      for (const root of roots) insert(root, compiled, cand);
    });
    size++;
  }

  for (const root of exactHosts.values()) sortTree(root);
  const wildcardHosts = new Map<number, WildcardGroup<T>[]>();
  for (const group of wildcardBySuffix.values()) {
    sortTree(group.root);
    const h = hashReverse(group.suffix);
    const bucket = wildcardHosts.get(h);
    if (bucket) bucket.push(group);
    else wildcardHosts.set(h, [group]);
  }
  if (anyHost) sortTree(anyHost);
  return new SegmentRouter(size, exactHosts, wildcardHosts, anyHost, maxParams);
}
