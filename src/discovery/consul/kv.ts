/**
 * @module discovery/consul/kv
 * From a recursive Consul KV read of `<prefix>/<service>/` to nodes, in the layout nginx-upsync-module
 * writes and reads (and APISIX's consul_kv discovery too): one key per node, named `<host>:<port>`
 * (`[v6 address]:<port>` for IPv6), whose value is a JSON object
 *
 *   {"weight": 1, "max_fails": 2, "fail_timeout": 10, "down": 0, "backup": 0}
 *
 * with every field optional, and an empty value meaning all the defaults (upsync's: weight 1, max_fails 2,
 * fail_timeout 10). As nginx does with a `down` server, a node with "down": 1 stays listed but out of
 * rotation: weight 0, metadata.down true. Gatehouse has no backup tier, so a "backup": 1 node is listed out
 * of rotation too (metadata.backup true) rather than taking a regular share. Numbers may be JSON numbers or
 * numeric strings, as upsync reads them. Any other field of the value joins the node's metadata.
 *
 * A key or value that cannot be read (not host:port, not JSON, a field of the wrong kind) leaves that one
 * entry out with a problem line; the rest of the list stands. Keys deeper than one level below the service,
 * and the folder key itself, are not nodes.
 */
import { isIP } from 'node:net';
import type { DiscoveredNode } from '../types.js';
import { MAX_WEIGHT, type ParsedNodes } from './health.js';

/** upsync's defaults for a node's value. */
export const KV_DEFAULTS = { weight: 1, max_fails: 2, fail_timeout: 10 } as const;

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** "host:port" or "[v6]:port" to its parts; a string saying what is wrong otherwise. */
export function parseHostPort(name: string): { host: string; port: number } | string {
  let host: string;
  let portText: string;
  if (name.startsWith('[')) {
    const end = name.indexOf(']');
    if (end < 0 || name[end + 1] !== ':') return 'is not "[IPv6 address]:port"';
    host = name.slice(1, end);
    portText = name.slice(end + 2);
    if (isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
  } else {
    const colon = name.lastIndexOf(':');
    if (colon <= 0) return 'is not "host:port"';
    host = name.slice(0, colon);
    portText = name.slice(colon + 1);
    if (host.includes(':')) return 'has an IPv6 address without brackets (write "[address]:port")';
    if (isIP(host) === 0 && !HOSTNAME.test(host)) return `"${host}" is not a host name or IP address`;
  }
  if (!/^\d{1,5}$/.test(portText)) return `port "${portText}" is not a number`;
  const port = Number(portText);
  if (port < 1 || port > 65535) return `port ${port} is not from 1 to 65535`;
  return { host, port };
}

/** A non-negative integer from a JSON number or a numeric string (upsync reads both); null when neither. */
function integer(v: unknown): number | null {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /^\d+$/.test(v.trim())) return Number(v.trim());
  return null;
}

/** A 0/1 flag from 0, 1, "0", "1", false or true; null otherwise. */
function flag(v: unknown): boolean | null {
  if (v === true || v === 1 || v === '1') return true;
  if (v === false || v === 0 || v === '0') return false;
  return null;
}

/** One node from its KV value (base64 as Consul sends it, or null); a string saying what is wrong otherwise. */
export function parseKvValue(host: string, port: number, key: string, value: unknown): DiscoveredNode | string {
  let fields: Record<string, unknown> = {};
  if (value !== null && value !== undefined && value !== '') {
    if (typeof value !== 'string' || !BASE64.test(value)) return 'has a Value that is not base64';
    const text = Buffer.from(value, 'base64').toString('utf8');
    if (text.trim() !== '') {
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch {
        return 'has a value that is not JSON';
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'has a value that is not a JSON object';
      fields = v as Record<string, unknown>;
    }
  }
  const { weight: rawWeight, max_fails: rawMaxFails, fail_timeout: rawFailTimeout, down: rawDown, backup: rawBackup, ...rest } = fields;
  const weight = rawWeight === undefined ? KV_DEFAULTS.weight : integer(rawWeight);
  if (weight === null || weight > MAX_WEIGHT) return `has "weight" ${JSON.stringify(rawWeight)}: it must be an integer from 0 to ${MAX_WEIGHT}`;
  const maxFails = rawMaxFails === undefined ? KV_DEFAULTS.max_fails : integer(rawMaxFails);
  if (maxFails === null) return `has "max_fails" ${JSON.stringify(rawMaxFails)}: it must be a non-negative integer`;
  const failTimeout = rawFailTimeout === undefined ? KV_DEFAULTS.fail_timeout : integer(rawFailTimeout);
  if (failTimeout === null) return `has "fail_timeout" ${JSON.stringify(rawFailTimeout)}: it must be a non-negative integer (seconds)`;
  const down = rawDown === undefined ? false : flag(rawDown);
  if (down === null) return `has "down" ${JSON.stringify(rawDown)}: it must be 0 or 1`;
  const backup = rawBackup === undefined ? false : flag(rawBackup);
  if (backup === null) return `has "backup" ${JSON.stringify(rawBackup)}: it must be 0 or 1`;
  return {
    host,
    port,
    weight: down || backup ? 0 : weight,
    metadata: { ...rest, key, max_fails: maxFails, fail_timeout: failTimeout, down, backup },
  };
}

/**
 * The nodes of a recursive read of `dir` (the service's folder, ending in "/"). Throws a TypeError when the
 * answer is not a list at all.
 */
export function parseKvService(answer: unknown, dir: string): ParsedNodes {
  if (!Array.isArray(answer)) throw new TypeError('the answer is not a JSON list of KV entries');
  const nodes: DiscoveredNode[] = [];
  const problems: string[] = [];
  answer.forEach((entry, i) => {
    const key = typeof entry === 'object' && entry !== null ? (entry as { Key?: unknown }).Key : undefined;
    if (typeof key !== 'string') {
      problems.push(`entry ${i} has no Key`);
      return;
    }
    if (!key.startsWith(dir)) {
      problems.push(`key ${JSON.stringify(key)} is not under ${JSON.stringify(dir)}`);
      return;
    }
    const name = key.slice(dir.length);
    if (name === '') return; // the folder itself (the Consul UI creates one)
    if (name.includes('/')) {
      problems.push(`key ${JSON.stringify(key)} is in a folder below the service's, not a node`);
      return;
    }
    const hp = parseHostPort(name);
    if (typeof hp === 'string') {
      problems.push(`key ${JSON.stringify(key)}: "${name}" ${hp}`);
      return;
    }
    const node = parseKvValue(hp.host, hp.port, key, (entry as { Value?: unknown }).Value);
    if (typeof node === 'string') {
      problems.push(`key ${JSON.stringify(key)} ${node}`);
      return;
    }
    nodes.push(node);
  });
  return { nodes, problems, entries: answer.length };
}
