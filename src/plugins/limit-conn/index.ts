/**
 * @module plugins/limit-conn
 * Caps concurrent requests per key (client, consumer, route...): a request over `max` in flight is refused
 * with 429. A slot is held until the response ends or the client leaves; for a WebSocket, until the connection
 * closes. Slots are counted across every worker of the gateway.
 */
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginContext, type PhaseResult } from '../../dataplane/plugins/types.js';
import { PRIORITIES } from '../priorities.js';
import { compileKey, KeyParts, refusal, RejectedMessage, RejectedStatus } from '../limits/shared.js';

const Config = Type.Object(
  {
    max: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Requests (and WebSocket connections) in flight at once per key.' }),
    key: KeyParts,
    retryAfter: Type.Integer({ minimum: 0, maximum: 3600, default: 1, description: 'Seconds sent in Retry-After on a refusal (0: no header).' }),
    rejectedStatus: RejectedStatus,
    rejectedMessage: RejectedMessage,
  },
  { additionalProperties: false, description: 'limit-conn on a route, service, consumer or globally.' },
);
type Config = Static<typeof Config>;

export default definePlugin<Config>({
  name: 'limit-conn',
  version: '1.0.0',
  priority: PRIORITIES['limit-conn'],
  description: 'Caps concurrent requests per key; a slot is held until the response ends (or the WebSocket closes).',
  schema: Config,
  create(config, env) {
    const keyOf = compileKey(`${env.scope}\u0001conn\u0001`, config.key);
    const max = config.max;
    const refused = refusal(config.rejectedStatus, config.rejectedMessage, config.retryAfter > 0 ? { 'retry-after': String(config.retryAfter) } : {});
    const limits = env.services.limits;

    /**
     * Give the slot back once: when the response closes, or, for an upgraded connection (whose response object
     * is detached and never closes), when the client's socket does.
     */
    const hold = (ctx: PluginContext, key: string): void => {
      const socket = ctx.h2 ? null : ctx.req.socket;
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        ctx.res.off('close', release);
        socket?.off('close', release);
        limits.release(key);
      };
      ctx.res.once('close', release);
      socket?.once('close', release);
    };

    const decide = (ctx: PluginContext, key: string, ok: boolean): PhaseResult => {
      if (!ok) return refused;
      // The client may have left while the slot was being taken.
      if (ctx.res.destroyed) {
        limits.release(key);
        return undefined;
      }
      hold(ctx, key);
      return undefined;
    };

    return {
      access(ctx): PhaseResult {
        const key = keyOf(ctx);
        const ok = limits.acquire(key, max);
        if (ok instanceof Promise) return ok.then((r) => decide(ctx, key, r));
        return decide(ctx, key, ok);
      },
    };
  },
});
