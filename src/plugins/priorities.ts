/**
 * @module plugins/priorities
 * Every built-in plugin's priority, in one place. Request phases run from the highest to the lowest, response
 * phases the other way round. Custom plugins pick any free number; the registry refuses a taken one.
 */
export const PRIORITIES = {
  'request-id': 12015,
  'ip-restriction': 3000,
  cors: 4000,
  'key-auth': 2500,
  'basic-auth': 2520,
  'jwt-auth': 2510,
  'consumer-restriction': 2400,
  'request-validation': 2800,
  'fault-injection': 11000,
  'proxy-rewrite': 1008,
  'response-rewrite': 899,
  'traffic-split': 966,
  'proxy-mirror': 1010,
  'limit-count': 1002,
  'limit-req': 1001,
  'limit-conn': 1003,
  'api-breaker': 960,
  'proxy-cache': 1085,
  'prometheus': 500,
  'http-logger': 410,
  'file-logger': 399,
  'statsd': 495,
  'opentelemetry': 12009,
} as const;
