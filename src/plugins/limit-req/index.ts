/**
 * @module plugins/limit-req
 * Smooths request rates with a leaky bucket, as nginx's limit_req: `rate` requests per second per key, with up
 * to `burst` more either delayed to keep to the rate or, with nodelay, let through at once; beyond the burst,
 * refused with 429 and Retry-After. The bucket is shared by every worker of the gateway.
 */
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginContext, type PluginResponse, type PhaseResult } from '../../dataplane/plugins/types.js';
import type { BucketVerdict } from '../../dataplane/limits/types.js';
import { PRIORITIES } from '../priorities.js';
import { compileKey, KeyParts, refusal, RejectedMessage, RejectedStatus, seconds } from '../limits/shared.js';

const Config = Type.Object(
  {
    rate: Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000, description: 'Requests per second let through per key (fractions allowed: 0.5 is one every two seconds).' }),
    burst: Type.Number({ minimum: 0, maximum: 1_000_000, default: 0, description: 'Requests over the rate that are still accepted (delayed, or let through with nodelay) before refusals start.' }),
    nodelay: Type.Boolean({
      default: false,
      description: 'Let requests within the burst through at once instead of delaying them to keep to the rate.',
    }),
    maxDelay: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 10000,
      description: 'Milliseconds a request may be delayed at most; a request that would wait longer is refused.',
    }),
    key: KeyParts,
    rejectedStatus: RejectedStatus,
    rejectedMessage: RejectedMessage,
  },
  { additionalProperties: false, description: 'limit-req on a route, service, consumer or globally.' },
);
type Config = Static<typeof Config>;

/** Ends the chain for a client that left while delayed; never written (the response is closed). */
const CLIENT_GONE: PluginResponse = Object.freeze({ status: 499 });

export default definePlugin<Config>({
  name: 'limit-req',
  version: '1.0.0',
  priority: PRIORITIES['limit-req'],
  description: 'Leaky-bucket rate limiting: rate requests per second per key with a burst, delayed or refused beyond it.',
  schema: Config,
  create(config, env) {
    const keyOf = compileKey(`${env.scope}\u0001req\u0001`, config.key);
    const { rate, burst, nodelay, maxDelay } = config;
    const status = config.rejectedStatus;
    const message = config.rejectedMessage;
    const limits = env.services.limits;

    const wait = (ctx: PluginContext, ms: number): Promise<PluginResponse | undefined> =>
      new Promise((resolve) => {
        const res = ctx.res;
        const onClose = () => {
          clearTimeout(timer);
          resolve(CLIENT_GONE);
        };
        const timer = setTimeout(() => {
          res.off('close', onClose);
          resolve(undefined);
        }, ms);
        res.once('close', onClose);
      });

    const decide = (ctx: PluginContext, v: BucketVerdict): PhaseResult => {
      if (!v.allowed) return refusal(status, message, { 'retry-after': seconds(v.retryAfterMs) });
      if (nodelay || v.delayMs < 1) return undefined;
      if (v.delayMs > maxDelay) return refusal(status, message, { 'retry-after': seconds(v.delayMs) });
      return wait(ctx, v.delayMs);
    };

    return {
      access(ctx): PhaseResult {
        const v = limits.bucket(keyOf(ctx), rate, burst);
        if (v instanceof Promise) return v.then((r) => decide(ctx, r));
        return decide(ctx, v);
      },
    };
  },
});
