/**
 * @module dataplane/context
 * The per-request context: what the proxy needs, plus what plugins read and change. One object per request;
 * the plugin-only parts stay null on routes without plugins.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Consumer } from '../model/consumer.js';
import type { ErrorCode } from '../core/errors.js';
import type { ForwardInfo } from './headers.js';
import type { ClientRequest, ClientResponse, ProxyTarget } from './proxy.js';
import type { NodeState } from './upstream/types.js';
import type { UpstreamRuntime } from './upstream/upstream.js';
import type { Timeouts } from '../model/common.js';
import { runResponseHeaders, type Chain, type PluginFailure } from './plugins/chain.js';
import type { PluginContext, ResponseHead } from './plugins/types.js';
import type { RouteRuntime } from './snapshot.js';

export class Context implements PluginContext {
  status = 0;
  node: NodeState | null = null;
  upstreamLatency = -1;
  errorCode: ErrorCode | null = null;
  consumer: Consumer | null = null;
  /** The chain that runs the response phases (the consumer's once known), or null without plugins. */
  chain: Chain | null = null;
  /** Upstream header edits by plugins: lower-case name -> value (null: remove). */
  upstreamEdits: Map<string, string | null> | null = null;
  /** Upstream headers plugins append (flat, lower-case names), sent after the client's and the set ones. */
  upstreamAdds: string[] | null = null;
  /** Response headers plugins asked for, flat. */
  responseExtra: string[] | null = null;
  /** The request body, when a plugin needed it read before the upstream request. */
  bufferedBody: Buffer | null = null;
  /** The upstream the request goes to: the route's, unless a plugin picked another (useUpstream). */
  upstream: UpstreamRuntime;
  /** Timeouts for the upstream call: the route's own, or the picked upstream's when the route has none. */
  timeouts: Timeouts;
  /** The config's named upstreams, for plugins that pick one (set on the plugin path only). */
  upstreams: ReadonlyMap<string, UpstreamRuntime> | null = null;
  /** Where plugin failures in response phases are reported (metrics and log). */
  onPluginError: ((f: PluginFailure) => void) | null = null;
  /** Nodes plugins asked to keep this request off (avoidNode), or null. */
  excluded: Set<NodeState> | null = null;
  endedAt = 0;
  upstreamSentAt = 0;
  bytesSent = 0;
  bytesReceived = 0;
  private scratch: Record<string, unknown> | null = null;

  constructor(
    readonly req: ClientRequest,
    readonly res: ClientResponse,
    public method: string,
    readonly h2: boolean,
    readonly fwd: ForwardInfo,
    readonly trustedPeer: boolean,
    readonly target: ProxyTarget,
    readonly start: number,
    readonly routeId: string,
    readonly params: Record<string, string> | null,
    /** Canonical path; what is forwarded. */
    public path: string,
    /** Raw query without '?'; plugins may change it (key-auth removes its key). */
    public query: string,
    readonly headers: IncomingHttpHeaders,
    /** Whether the route sets its own timeouts (they then apply whatever upstream is picked). */
    private readonly routeTimeouts: boolean,
  ) {
    this.upstream = target.upstream;
    this.timeouts = target.timeouts;
  }

  /** Send this request to the named upstream of the config instead of the route's. False when there is none. */
  useUpstream(id: string): boolean {
    const up = this.upstreams?.get(`upstream:${id}`);
    if (up === undefined) return false;
    this.upstream = up;
    if (!this.routeTimeouts) this.timeouts = up.timeouts;
    return true;
  }

  get clientIp(): string {
    return this.fwd.clientIp;
  }

  get serviceId(): string | null {
    return (this.target as Partial<RouteRuntime>).route?.serviceId ?? null;
  }

  get startedAt(): number {
    return performance.timeOrigin + this.start;
  }

  avoidNode(node: NodeState): void {
    (this.excluded ??= new Set()).add(node);
  }

  get vars(): Record<string, unknown> {
    return (this.scratch ??= {});
  }

  setUpstreamHeader(name: string, value: string): void {
    const lower = name.toLowerCase();
    if (this.upstreamAdds !== null) this.dropAdds(lower);
    (this.upstreamEdits ??= new Map()).set(lower, value);
  }

  removeUpstreamHeader(name: string): void {
    const lower = name.toLowerCase();
    if (this.upstreamAdds !== null) this.dropAdds(lower);
    (this.upstreamEdits ??= new Map()).set(lower, null);
  }

  addUpstreamHeader(name: string, value: string): void {
    // The edits map must exist: the proxy only applies edits when it does.
    this.upstreamEdits ??= new Map();
    (this.upstreamAdds ??= []).push(name.toLowerCase(), value);
  }

  /** A later set or remove wins over values added before it, as it does over the client's. */
  private dropAdds(lower: string): void {
    const adds = this.upstreamAdds!;
    for (let i = 0; i < adds.length; i += 2) {
      if (adds[i] === lower) {
        adds.splice(i, 2);
        i -= 2;
      }
    }
  }

  setResponseHeader(name: string, value: string): void {
    (this.responseExtra ??= []).push(name, value);
  }

  /**
   * Apply plugin edits to the upstream header list (built from the client's): removed and replaced names
   * go, set values are appended, then added values (the client's copies stay). The Host header (first pair)
   * is kept in place.
   */
  editUpstreamHeaders(list: string[]): string[] {
    const edits = this.upstreamEdits;
    if (edits === null) return list;
    const out: string[] = [list[0]!, list[1]!];
    for (let i = 2; i < list.length; i += 2) {
      if (!edits.has(list[i]!.toLowerCase())) out.push(list[i]!, list[i + 1]!);
    }
    for (const [name, value] of edits) {
      if (value === null) continue;
      if (name === 'host') out[1] = value;
      else out.push(name, value);
    }
    if (this.upstreamAdds !== null) out.push(...this.upstreamAdds);
    return out;
  }

  /** Response head as plugins leave it: extra headers added, then the chain's response phases. */
  finishHead(head: ResponseHead): ResponseHead {
    if (this.responseExtra !== null) {
      const extra = this.responseExtra;
      for (let i = 0; i < extra.length; i += 2) {
        const lower = extra[i]!.toLowerCase();
        for (let j = 0; j < head.headers.length; j += 2) {
          if (head.headers[j]!.toLowerCase() === lower) {
            head.headers.splice(j, 2);
            j -= 2;
          }
        }
        head.headers.push(extra[i]!, extra[i + 1]!);
      }
    }
    if (this.chain !== null && this.chain.responseHeaders.length > 0) runResponseHeaders(this, this.chain, head, this.onPluginError ?? (() => {}));
    return head;
  }
}
