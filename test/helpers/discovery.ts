/**
 * @module test/helpers/discovery
 * A discovery watch's reports, recorded, with a way to wait for one that matches: for the backend tests.
 */
import type { DiscoveredNode, DiscoveryHandlers, DiscoveryWatch } from '../../src/discovery/types.js';
import { waitUntil } from './cli.js';

export class Recorder {
  readonly nodes: DiscoveredNode[][] = [];
  readonly errors: Error[] = [];
  readonly handlers: DiscoveryHandlers = {
    onNodes: (n) => this.nodes.push(n),
    onError: (e) => this.errors.push(e),
  };
  watch!: DiscoveryWatch;

  get last(): DiscoveredNode[] | undefined {
    return this.nodes[this.nodes.length - 1];
  }

  async until(what: string, pred: (nodes: DiscoveredNode[]) => boolean, timeoutMs = 5000): Promise<DiscoveredNode[]> {
    return waitUntil(what, timeoutMs, () => (this.last && pred(this.last) ? this.last : undefined), 20);
  }
}

/** host:port of each node, sorted. */
export const addrs = (nodes: DiscoveredNode[]): string[] => nodes.map((n) => `${n.host}:${n.port}`).sort();
