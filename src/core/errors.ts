/**
 * @module core/errors
 * The one table of errors Gatehouse produces, with stable codes, HTTP status and client-safe message.
 * docs/errors.md is kept in sync with this table by a test (errors.test.ts).
 */

export interface ErrorDefinition {
  /** HTTP status the client receives. */
  readonly status: number;
  /** Message sent to the client. Never contains request data, secrets or stack traces. */
  readonly message: string;
}

export const ERRORS = {
  GH_ERR_ROUTE_NOT_FOUND: { status: 404, message: 'no route matches the request' },
  GH_ERR_BAD_REQUEST: { status: 400, message: 'malformed request' },
  GH_ERR_PATH_INVALID: { status: 400, message: 'request path cannot be normalised safely' },
  GH_ERR_URI_TOO_LONG: { status: 414, message: 'request URI is too long' },
  GH_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'request header fields are too large' },
  GH_ERR_BODY_TOO_LARGE: { status: 413, message: 'request body is larger than this route allows' },
  GH_ERR_REQUEST_TIMEOUT: { status: 408, message: 'the client did not send the request in time' },
  GH_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed' },
  GH_ERR_TRANSFER_CODING_UNSUPPORTED: { status: 501, message: 'transfer coding not supported' },
  GH_ERR_AUTH_REQUIRED: { status: 401, message: 'authentication required' },
  GH_ERR_AUTH_INVALID: { status: 401, message: 'invalid credentials' },
  GH_ERR_ACCESS_DENIED: { status: 403, message: 'access denied' },
  GH_ERR_REQUEST_INVALID: { status: 400, message: 'request does not match the schema' },
  GH_ERR_RATE_LIMITED: { status: 429, message: 'too many requests' },
  GH_ERR_RATE_LIMIT_UNAVAILABLE: { status: 503, message: 'the rate limit cannot be checked' },
  GH_ERR_CIRCUIT_OPEN: { status: 503, message: 'the upstream is failing and its circuit is open' },
  GH_ERR_PLUGIN_FAILED: { status: 500, message: 'a plugin failed to handle the request' },
  GH_ERR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'upstream failed to answer' },
  GH_ERR_UPSTREAM_NO_HEALTHY_NODE: { status: 503, message: 'no healthy upstream node' },
  GH_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'upstream timed out' },
  GH_ERR_WEBSOCKET_DISABLED: { status: 400, message: 'websocket is not enabled on this route' },
  GH_ERR_SHUTTING_DOWN: { status: 503, message: 'gateway is shutting down' },
  GH_ERR_INTERNAL: { status: 500, message: 'internal gateway error' },
  GH_ERR_ADMIN_INVALID: { status: 400, message: 'the request is invalid' },
  GH_ERR_ADMIN_CSRF: { status: 403, message: 'missing or wrong CSRF token' },
  GH_ERR_ADMIN_NOT_FOUND: { status: 404, message: 'no such object' },
  GH_ERR_ADMIN_CONFLICT: { status: 409, message: 'the request conflicts with the current state' },
  GH_ERR_ADMIN_STALE: { status: 412, message: 'the object changed since it was read' },
  GH_ERR_ADMIN_LOGIN_LIMITED: { status: 429, message: 'too many failed logins; try again later' },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ERRORS;

/** An error with a stable code, carried from where it happens to where a response is written. */
export class GatehouseError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ?? ERRORS[code].message, options);
    this.name = 'GatehouseError';
    this.code = code;
    this.status = ERRORS[code].status;
  }
}

const bodies = new Map<ErrorCode, Buffer>();
for (const code of Object.keys(ERRORS) as ErrorCode[]) {
  bodies.set(code, Buffer.from(JSON.stringify({ error: { code, message: ERRORS[code].message } })));
}

/** The JSON body for an error code; built once at start-up so error responses allocate nothing. */
export function errorBody(code: ErrorCode): Buffer {
  return bodies.get(code)!;
}
