/**
 * @module dataplane/router/types
 * The contract between the request path and the router.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Route } from '../../model/route.js';

/** What the router sees of a request. `path` is already canonical (see normalize.ts). */
export interface RouterRequest {
  /** Upper-case method. */
  method: string;
  /** Lower-case host name without port, or '' when the request has none. */
  host: string;
  /** Canonical path, no query. */
  path: string;
  /** Raw query string without the leading '?', or ''. */
  query: string;
  /** Request headers, lower-case names (node's parsed headers). */
  headers: IncomingHttpHeaders;
}

export interface RouteEntry<T> {
  route: Route;
  /** What the caller gets back on a match (the compiled route runtime). */
  value: T;
}

export interface RouteMatch<T> {
  value: T;
  route: Route;
  /** Named path parameters, or null when the matched path has none. */
  params: Record<string, string> | null;
  /** The route path pattern that matched ("/users/:id"). */
  pattern: string;
}

export interface Router<T> {
  /** HOT PATH: find the route for a request, or null. */
  match(req: RouterRequest): RouteMatch<T> | null;
  /** Number of enabled routes compiled in. */
  readonly size: number;
}
