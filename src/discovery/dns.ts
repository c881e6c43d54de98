/**
 * @module discovery/dns
 * The dns discovery source: follows a DNS name through the configured resolvers. A name starting with "_"
 * (`_http._tcp.api.example.com`) is an SRV name: its records give the targets and ports, and each target's
 * A/AAAA records give the addresses. Any other name is looked up as A/AAAA and its addresses get the spec's
 * port. An answer is kept for its TTL (between minTtl and maxTtl), then the name is looked up again; a failed
 * lookup is retried with backoff while the manager keeps the last nodes.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { DiscoverySettings, DnsDiscoverySettings } from '../config/settings.js';
import type { DiscoveredNode, DiscoveryBackend, DiscoveryHandlers, DiscoveryLogger, DiscoverySpec, DiscoveryWatch } from './types.js';
import { canonicalNodes, sameNodes } from './spec.js';
import { WatchSet } from './watch-set.js';

/** Answers that mean "this name has no such records" (the source is healthy, the answer is empty). */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

/** One lookup's result: the nodes, and the shortest TTL (seconds) among the records they came from. */
interface Answer {
  nodes: DiscoveredNode[];
  /** Shortest TTL of the records used; null when the answer was empty (or carried no TTL). */
  ttl: number | null;
}

interface TtlAddress {
  address: string;
  ttl: number;
}

/** Check resolver addresses the way node:dns takes them ("ip", "ip:port", "[ipv6]:port"); a message per bad one. */
export function checkResolverAddresses(resolvers: readonly string[]): string[] {
  const bad: string[] = [];
  for (const r of resolvers) {
    let host = r;
    let port: string | undefined;
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(r);
    if (v6) {
      host = v6[1]!;
      port = v6[2];
    } else if (isIP(r) === 0) {
      const i = r.lastIndexOf(':');
      if (i > 0) {
        host = r.slice(0, i);
        port = r.slice(i + 1);
      }
    }
    if (isIP(host) === 0) bad.push(`"${r}" is not an IP address (with an optional port): resolvers are given by address`);
    else if (port !== undefined && !(/^\d+$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) bad.push(`"${r}" has an invalid port`);
  }
  return bad;
}

class DnsWatch implements DiscoveryWatch {
  readonly #resolver: Resolver;
  readonly #settings: DnsDiscoverySettings;
  readonly #spec: DiscoverySpec;
  readonly #handlers: DiscoveryHandlers;
  readonly #name: string;
  readonly #srv: boolean;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #failures = 0;
  #last: DiscoveredNode[] | null = null;

  constructor(settings: DnsDiscoverySettings, spec: DiscoverySpec, handlers: DiscoveryHandlers) {
    this.#settings = settings;
    this.#spec = spec;
    this.#handlers = handlers;
    // A trailing dot (fully qualified) is what the resolver means anyway.
    this.#name = spec.service.endsWith('.') ? spec.service.slice(0, -1) : spec.service;
    this.#srv = this.#name.startsWith('_');
    // One resolver per watch, so closing the watch can cancel its queries without touching the others.
    this.#resolver = new Resolver({ timeout: settings.timeout, tries: settings.tries });
    if (settings.resolvers) this.#resolver.setServers(settings.resolvers);
  }

  start(): void {
    this.#schedule(0);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#resolver.cancel();
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#cycle();
    }, ms);
    this.#timer.unref();
  }

  async #cycle(): Promise<void> {
    let answer: Answer;
    try {
      answer = this.#srv ? await this.#lookupSrv() : await this.#lookupAddresses(this.#name, this.#spec.port ?? 80, { hostname: this.#name });
    } catch (e) {
      if (this.#closed) return;
      this.#failures++;
      // The next good answer is reported even if unchanged: that tells the manager the source is back.
      this.#last = null;
      const err = e as NodeJS.ErrnoException;
      this.#handlers.onError(new Error(`DNS lookup of ${this.#name} failed: ${err.code ?? err.message}`, { cause: e }));
      const backoff = this.#settings.retryInterval * 2 ** Math.min(this.#failures - 1, 16);
      this.#schedule(Math.min(backoff, this.#settings.maxTtl * 1000));
      return;
    }
    if (this.#closed) return;
    this.#failures = 0;
    const nodes = canonicalNodes(answer.nodes);
    if (this.#last === null || !sameNodes(this.#last, nodes)) {
      this.#last = nodes;
      this.#handlers.onNodes(nodes);
    }
    const ttl = Math.min(Math.max(answer.ttl ?? this.#settings.minTtl, this.#settings.minTtl), this.#settings.maxTtl);
    this.#schedule(ttl * 1000);
  }

  /** The address records of `name` the family setting asks for; [] when the name has none. */
  async #addresses(name: string): Promise<TtlAddress[]> {
    const family = this.#settings.family;
    const v4 = () => this.#records(() => this.#resolver.resolve4(name, { ttl: true }));
    const v6 = () => this.#records(() => this.#resolver.resolve6(name, { ttl: true }));
    switch (family) {
      case 'ipv4':
        return v4();
      case 'ipv6':
        return v6();
      case 'both': {
        const [a, b] = await Promise.all([v4(), v6()]);
        return [...a, ...b];
      }
      default: {
        const a = await v4();
        return a.length > 0 ? a : v6();
      }
    }
  }

  /** Run one query; "no such records" is an empty answer, any other failure throws. */
  async #records<T>(query: () => Promise<T[]>): Promise<T[]> {
    try {
      return await query();
    } catch (e) {
      if (NO_RECORDS.has((e as NodeJS.ErrnoException).code ?? '')) return [];
      throw e;
    }
  }

  async #lookupAddresses(name: string, port: number, metadata: Record<string, unknown>): Promise<Answer> {
    const records = await this.#addresses(name);
    let ttl: number | null = null;
    const nodes = records.map((r) => {
      ttl = ttl === null ? r.ttl : Math.min(ttl, r.ttl);
      return { host: r.address, port, weight: 1, metadata: { ...metadata } };
    });
    return { nodes, ttl };
  }

  /**
   * SRV: the records of the lowest priority (the others are backups, which a balancer has no notion of), each
   * target's addresses with the record's port and weight. Weight 0 means "rarely" in SRV; when every record has
   * it, they share traffic equally. Node's resolver does not expose the SRV records' own TTL, so the targets'
   * address TTLs decide when to look again.
   */
  async #lookupSrv(): Promise<Answer> {
    const records = await this.#records(() => this.#resolver.resolveSrv(this.#name));
    if (records.length === 0) return { nodes: [], ttl: null };
    const best = Math.min(...records.map((r) => r.priority));
    const group = records.filter((r) => r.priority === best);
    const allZero = group.every((r) => r.weight === 0);
    const answers = await Promise.all(
      group.map(async (r) => {
        const target = r.name.endsWith('.') ? r.name.slice(0, -1) : r.name;
        const weight = allZero ? 1 : r.weight;
        const meta = { hostname: target, srv: this.#name, priority: r.priority, srvWeight: r.weight };
        if (isIP(target) !== 0) return { nodes: [{ host: target, port: r.port, weight, metadata: meta }], ttl: null };
        const a = await this.#lookupAddresses(target, r.port, meta);
        for (const n of a.nodes) n.weight = weight;
        return a;
      }),
    );
    let ttl: number | null = null;
    const nodes: DiscoveredNode[] = [];
    for (const a of answers) {
      nodes.push(...a.nodes);
      if (a.ttl !== null) ttl = ttl === null ? a.ttl : Math.min(ttl, a.ttl);
    }
    return { nodes, ttl };
  }
}

class DnsBackend implements DiscoveryBackend {
  readonly type = 'dns' as const;
  readonly #settings: DnsDiscoverySettings;
  readonly #watches = new WatchSet();

  constructor(settings: DnsDiscoverySettings) {
    const bad = checkResolverAddresses(settings.resolvers ?? []);
    if (bad.length) throw new Error(`discovery.dns.resolvers: ${bad.join('; ')}`);
    this.#settings = settings;
  }

  watch(spec: DiscoverySpec, handlers: DiscoveryHandlers): DiscoveryWatch {
    if (spec.type !== 'dns') throw new Error(`the dns backend cannot follow a ${spec.type} source`);
    const w = new DnsWatch(this.#settings, spec, handlers);
    return this.#watches.run(w);
  }

  async close(): Promise<void> {
    this.#watches.closeAll();
  }
}

/** The dns backend for the settings' discovery section. */
export function createDnsBackend(settings: DiscoverySettings, _log: DiscoveryLogger): DiscoveryBackend {
  return new DnsBackend(settings.dns);
}
