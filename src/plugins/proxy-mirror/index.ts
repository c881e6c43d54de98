/**
 * @module plugins/proxy-mirror
 * Sends a copy of a sampled share of a route's requests to another named upstream (shadow traffic), fire and
 * forget: the mirror's answer is read and thrown away, its errors are counted and never reach the client, and
 * the main request is neither delayed nor changed. Bodies are copied as they flow to the main upstream.
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginContext } from '../../dataplane/plugins/types.js';
import { upstreamRequestHeaders } from '../../dataplane/headers.js';
import type { UpstreamRuntime } from '../../dataplane/upstream/upstream.js';
import { Id } from '../../model/common.js';
import { PRIORITIES } from '../priorities.js';

const Config = Type.Object(
  {
    upstreamId: { ...Id, description: 'The named upstream of the config that receives the copies.' },
    sampleRatio: Type.Number({ minimum: 0, maximum: 1, default: 1, description: 'Share of requests mirrored, 0 to 1 (each request is sampled on its own).' }),
    path: Type.Optional(
      Type.String({
        pattern: '^/[^\\s?#]*$',
        maxLength: 2048,
        description: 'Send copies to this path instead of the request\'s canonical path (the query is kept).',
      }),
    ),
    timeout: Type.Integer({ minimum: 1, maximum: 600000, default: 3000, description: 'Milliseconds a mirrored request may take in all (connect, answer, body) before it is abandoned.' }),
    maxBodySize: Type.Integer({
      minimum: 0,
      maximum: 16 * 1024 * 1024,
      default: 64 * 1024,
      description: 'Largest request body, in bytes, that is mirrored; requests with larger bodies are not mirrored (0: only requests without a body).',
    }),
  },
  { additionalProperties: false, description: 'proxy-mirror config.' },
);
type Config = Static<typeof Config>;

/**
 * Outcomes of mirrored requests in this process, for tests and diagnostics (no log line per request).
 * `sent`: copies started; `answered`: the mirror answered (any status); `failed`: connect errors, timeouts,
 * no node; `tooLarge`: not mirrored because the body was over maxBodySize; `dropped`: not mirrored because
 * the body was not read to its end (client gone, main request failed before reading it).
 */
export const mirrorCounters = { sent: 0, answered: 0, failed: 0, tooLarge: 0, dropped: 0 };

/** Reset the counters (tests). */
export function resetMirrorCounters(): void {
  mirrorCounters.sent = 0;
  mirrorCounters.answered = 0;
  mirrorCounters.failed = 0;
  mirrorCounters.tooLarge = 0;
  mirrorCounters.dropped = 0;
}

/** The gateway's context also carries the config's named upstreams (dataplane/context.ts). */
type WithUpstreams = PluginContext & { upstreams?: ReadonlyMap<string, UpstreamRuntime> | null };

function noop(): void {}

function onAnswer(r: Dispatcher.ResponseData): void {
  mirrorCounters.answered++;
  // Read the answer to its end (bounded by undici's dump limit) so the connection can be reused.
  r.body.dump().catch(noop);
}

function onFailure(): void {
  mirrorCounters.failed++;
}

/** Whether the client sent a body (the gateway's own rule, gateway.ts). */
function hasBody(ctx: PluginContext): boolean {
  if (ctx.h2) return !(ctx.req as Http2ServerRequest).stream.endAfterHeaders;
  const cl = ctx.headers['content-length'];
  return ctx.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

export default definePlugin<Config>({
  name: 'proxy-mirror',
  version: '1.0.0',
  priority: PRIORITIES['proxy-mirror'],
  description: 'Sends a copy of a sampled share of requests to another named upstream, fire and forget, without delaying or changing the main request.',
  schema: Config,
  // Validation refuses a config that names an upstream it does not have (model/validate.ts).
  upstreamReferences(config) {
    return [['upstreamId', config.upstreamId]];
  },
  create(config) {
    const key = `upstream:${config.upstreamId}`;
    const ratio = config.sampleRatio;
    const max = config.maxBodySize;
    const timeout = config.timeout;
    const fixedPath = config.path;

    /** Fire the copy at a node of the mirror upstream. Never throws, never awaited. */
    function fire(ctx: PluginContext, up: UpstreamRuntime, path: string, headers: string[], body: Buffer | null): void {
      try {
        const node = up.pick(ctx, null);
        if (node === null) {
          mirrorCounters.failed++;
          return;
        }
        headers[1] = up.nodeHost(node);
        mirrorCounters.sent++;
        up.pool(node)
          .undici.request({
            path,
            method: ctx.method as Dispatcher.HttpMethod,
            headers,
            body,
            headersTimeout: timeout,
            bodyTimeout: timeout,
            // Covers connecting and queueing in the pool too.
            signal: AbortSignal.timeout(timeout),
          })
          .then(onAnswer, onFailure);
      } catch {
        mirrorCounters.failed++;
      }
    }

    return {
      // HOT PATH on routes with the plugin: one random draw; sampled requests build one header list.
      beforeUpstream(ctx) {
        if (ratio < 1 && !(Math.random() < ratio)) return;
        const up = (ctx as WithUpstreams).upstreams?.get(key);
        // Validation refuses unknown ids; an unchecked config must still never break the main request.
        if (up === undefined) {
          mirrorCounters.failed++;
          return;
        }
        const req = ctx.req;
        const path = ctx.query ? `${fixedPath ?? ctx.path}?${ctx.query}` : (fixedPath ?? ctx.path);
        // The headers the main request will carry: the client's without hop-by-hop ones, with the plugins' edits
        // so far (an auth plugin's hidden credentials stay hidden). Host is set per node in fire().
        const list = ctx.editUpstreamHeaders(upstreamRequestHeaders(req.rawHeaders, req.headers.connection as string | undefined, '', ctx.fwd, ctx.trustedPeer));
        const headers: string[] = [];
        for (let i = 0; i < list.length; i += 2) {
          // undici frames the copy itself (its body is a Buffer or nothing).
          if (list[i]!.length === 14 && list[i]!.toLowerCase() === 'content-length') continue;
          headers.push(list[i]!, list[i + 1]!);
        }
        headers.push('x-gatehouse-mirror', '1');

        // A plugin already read the body (needsBody): copy those bytes.
        if (ctx.bufferedBody !== null) {
          if (ctx.bufferedBody.length > max) mirrorCounters.tooLarge++;
          else fire(ctx, up, path, headers, ctx.bufferedBody.length > 0 ? ctx.bufferedBody : null);
          return;
        }
        if (!hasBody(ctx)) {
          fire(ctx, up, path, headers, null);
          return;
        }
        const cl = ctx.headers['content-length'];
        if (cl !== undefined && Number(cl) > max) {
          mirrorCounters.tooLarge++;
          return;
        }
        tap(req as IncomingMessage | Http2ServerRequest, (body) => fire(ctx, up, path, headers, body.length > 0 ? body : null));
      },
    };

    /**
     * Copy the body as the main request reads it, and call `send` once it has been read to its end within
     * `max` bytes. The stream is put in explicit paused mode first, so the 'data' listener does not start
     * the flow: the bytes wait for the proxy's reader (undici resumes the body; the body-limit pipe does too)
     * and the copy sees exactly what it reads, when it reads it.
     */
    function tap(req: IncomingMessage | Http2ServerRequest, send: (body: Buffer) => void): void {
      const stream = req as unknown as Readable;
      // Bytes were already consumed by someone: the copy would be incomplete.
      if (stream.readableDidRead || stream.readableEnded || stream.destroyed) {
        mirrorCounters.dropped++;
        return;
      }
      if (stream.readableFlowing === null) stream.pause();
      let chunks: Buffer[] = [];
      let size = 0;
      const cleanup = () => {
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.off('error', onAbort);
        stream.off('close', onAbort);
        chunks = [];
      };
      const onData = (c: Buffer) => {
        size += c.length;
        if (size > max) {
          cleanup();
          mirrorCounters.tooLarge++;
          return;
        }
        chunks.push(c);
      };
      const onEnd = () => {
        // Node's server drops the 'data' listeners of a request whose body it discards (the response ended
        // first): 'end' then comes without the whole body having been seen.
        const whole = stream.listeners('data').includes(onData);
        const body = Buffer.concat(chunks, size);
        cleanup();
        if (whole) send(body);
        else mirrorCounters.dropped++;
      };
      const onAbort = () => {
        cleanup();
        mirrorCounters.dropped++;
      };
      stream.on('data', onData);
      stream.once('end', onEnd);
      stream.once('error', onAbort);
      stream.once('close', onAbort);
    }
  },
});
