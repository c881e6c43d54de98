/**
 * @module plugins
 * The built-in plugins, registered into every registry. One line per plugin.
 */
import { PluginRegistry } from '../dataplane/plugins/registry.js';
import type { PluginDefinition } from '../dataplane/plugins/types.js';
import keyAuth from './key-auth/index.js';
import requestId from './request-id/index.js';
import basicAuth from './basic-auth/index.js';
import jwtAuth from './jwt-auth/index.js';
import consumerRestriction from './consumer-restriction/index.js';
import ipRestriction from './ip-restriction/index.js';
import cors from './cors/index.js';
import requestValidation from './request-validation/index.js';
import faultInjection from './fault-injection/index.js';
import proxyRewrite from './proxy-rewrite/index.js';
import responseRewrite from './response-rewrite/index.js';
import trafficSplit from './traffic-split/index.js';
import proxyMirror from './proxy-mirror/index.js';
import limitCount from './limit-count/index.js';
import limitReq from './limit-req/index.js';
import limitConn from './limit-conn/index.js';
import apiBreaker from './api-breaker/index.js';
import proxyCache from './proxy-cache/index.js';
import prometheus from './prometheus/index.js';
import httpLogger from './http-logger/index.js';
import fileLogger from './file-logger/index.js';
import statsd from './statsd/index.js';
import opentelemetry from './opentelemetry/index.js';

export const BUILTIN_PLUGINS: Array<PluginDefinition<any, any, any>> = [ // eslint-disable-line @typescript-eslint/no-explicit-any
  keyAuth,
  requestId,
  basicAuth,
  jwtAuth,
  consumerRestriction,
  ipRestriction,
  cors,
  requestValidation,
  faultInjection,
  proxyRewrite,
  responseRewrite,
  trafficSplit,
  proxyMirror,
  limitCount,
  limitReq,
  limitConn,
  apiBreaker,
  proxyCache,
  prometheus,
  httpLogger,
  fileLogger,
  statsd,
  opentelemetry,
];

/** A registry with the built-in plugins. */
export function builtinRegistry(): PluginRegistry {
  const registry = new PluginRegistry();
  for (const p of BUILTIN_PLUGINS) registry.register(p);
  return registry;
}
