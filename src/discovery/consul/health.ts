/**
 * @module discovery/consul/health
 * From Consul's /v1/health/service/<service> answer to nodes: the address is Service.Address, or
 * Node.Address when the service has none; the port is Service.Port; the weight is Service.Weights.Passing
 * (1 when absent); the metadata is the service's Meta with its tags, node name, datacenter and service id.
 * An instance that cannot be used (no port, no address) is left out with a problem line; the others stay.
 */
import type { DiscoveredNode } from '../types.js';

export const MAX_WEIGHT = 100_000;

export interface ParsedNodes {
  nodes: DiscoveredNode[];
  /** One line per entry left out, saying why. */
  problems: string[];
  /** How many entries the answer had, before anything was left out. */
  entries: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown): Record<string, string> {
  if (!isObject(v)) return {};
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

/**
 * The nodes of a health answer (already filtered to passing instances by Consul). `tags`: only instances
 * carrying all of them (Consul filters by them too; checking again keeps the result right on Consul versions
 * before 1.3, which honoured only the first tag). `datacenter`: the one asked about, for answers whose nodes
 * do not say. Throws a TypeError when the answer is not a list at all.
 */
export function parseHealthService(answer: unknown, opts: { tags?: readonly string[]; datacenter?: string } = {}): ParsedNodes {
  if (!Array.isArray(answer)) throw new TypeError('the answer is not a JSON list of service instances');
  const nodes: DiscoveredNode[] = [];
  const problems: string[] = [];
  answer.forEach((entry, i) => {
    if (!isObject(entry) || !isObject(entry.Service)) {
      problems.push(`entry ${i} has no Service object`);
      return;
    }
    const svc = entry.Service;
    const node = isObject(entry.Node) ? entry.Node : {};
    const nodeName = typeof node.Node === 'string' ? node.Node : undefined;
    const id = typeof svc.ID === 'string' ? svc.ID : undefined;
    const label = `instance ${JSON.stringify(id ?? `#${i}`)}${nodeName !== undefined ? ` on node ${JSON.stringify(nodeName)}` : ''}`;
    const tags = Array.isArray(svc.Tags) ? svc.Tags.filter((t): t is string => typeof t === 'string') : [];
    if (opts.tags?.length && !opts.tags.every((t) => tags.includes(t))) return;
    const port = svc.Port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      problems.push(`${label} has no usable port (Service.Port ${JSON.stringify(port ?? null)})`);
      return;
    }
    const address = typeof svc.Address === 'string' && svc.Address !== '' ? svc.Address : node.Address;
    if (typeof address !== 'string' || address === '' || address.length > 253) {
      problems.push(`${label} has no usable address (neither Service.Address nor Node.Address)`);
      return;
    }
    const weights = isObject(svc.Weights) ? svc.Weights : {};
    const passing = weights.Passing;
    const weight = typeof passing === 'number' && Number.isInteger(passing) && passing >= 1 ? Math.min(passing, MAX_WEIGHT) : 1;
    const metadata: Record<string, unknown> = { ...stringMap(svc.Meta), tags };
    if (nodeName !== undefined) metadata.node = nodeName;
    const dc = typeof node.Datacenter === 'string' && node.Datacenter !== '' ? node.Datacenter : opts.datacenter;
    if (dc !== undefined) metadata.datacenter = dc;
    if (id !== undefined) metadata.serviceId = id;
    nodes.push({ host: address, port, weight, metadata });
  });
  return { nodes, problems, entries: answer.length };
}
