/**
 * @module cluster/instances
 * Gateway instances in etcd: each gateway keeps a key <prefix>/instances/<instanceId> alive under a lease, with
 * what an operator needs to see (addresses, version, labels, the config revision it runs, a heartbeat); the key
 * vanishes with the lease when the gateway dies. The control plane lists them (GET /api/v1/instances), reads
 * each one's /metrics at the status URL it advertises (the dashboard's traffic overview), and gray release
 * targets them by id.
 */
import { isIP } from 'node:net';
import { hostname, networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import type { Logger } from 'pino';
import type { EtcdClient } from '../etcd/client.js';
import { parseHostPort } from '../config/settings.js';

export interface InstanceInfo {
  id: string;
  hostname: string;
  addresses: { http: number; https: number | null; status: number };
  /**
   * Where the control plane reads this gateway's /metrics: http://host:port (see `advertisedStatusUrl`); null
   * when it cannot be said (status port 0). Absent in records of gateways older than the field.
   */
  statusUrl: string | null;
  version: string;
  labels: Record<string, string>;
  /** Config revision the gateway runs. */
  revision: number;
  pid: number;
  startedAt: string;
  /** When the gateway last wrote this record (every few seconds while it lives). */
  heartbeat: string;
  /** Whether the gateway reaches its config source. */
  configSourceOk: boolean;
  /** The gray route versions it serves. */
  gray: Array<{ tenant: string; routeId: string; version: number }>;
}

const WILDCARD = new Set(['', '0.0.0.0', '::', '[::]', '::0', '0:0:0:0:0:0:0:0']);

/** The machine's first address another machine can reach: non-internal IPv4, else global IPv6 (not link-local). */
function reachableAddress(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string | null {
  const all = Object.values(interfaces).flatMap((list) => list ?? []).filter((a) => !a.internal);
  const v4 = all.find((a) => a.family === 'IPv4');
  if (v4) return v4.address;
  const v6 = all.find((a) => a.family === 'IPv6' && !/^fe[89ab]/i.test(a.address));
  return v6 ? v6.address : null;
}

/**
 * The URL at which the control plane reads this gateway's status port: `status.advertiseAddress` when set (its
 * port defaults to status.port); else status.host, unless that is a wildcard (0.0.0.0, ::), which names no
 * machine: then the first non-loopback IPv4 address of this machine (else a global IPv6 one, else its host
 * name). An address is preferred to the host name because a host name often resolves only on the machine
 * itself (a container's, a pod's). null when the port is 0 (picked at start, not known here).
 */
export function advertisedStatusUrl(
  status: { host: string; port: number; advertiseAddress?: string },
  machine: { hostname: string; interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> } = { hostname: hostname(), interfaces: networkInterfaces() },
): string | null {
  let host: string;
  let port = status.port;
  if (status.advertiseAddress !== undefined) {
    const parsed = parseHostPort(status.advertiseAddress);
    if (typeof parsed === 'string') throw new Error(`status.advertiseAddress: ${parsed}`);
    host = parsed.host;
    port = parsed.port ?? status.port;
  } else if (WILDCARD.has(status.host)) {
    host = reachableAddress(machine.interfaces) ?? machine.hostname;
  } else {
    host = status.host.replace(/^\[(.*)\]$/, '$1');
  }
  if (port === 0) return null;
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

export function instancesPrefix(prefix: string): string {
  return `${prefix}/instances/`;
}

const TTL_S = 15;
const HEARTBEAT_MS = 5_000;

export class InstanceRegistrar {
  private lease: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private info: InstanceInfo;
  private closed = false;

  constructor(
    private readonly client: EtcdClient,
    private readonly prefix: string,
    base: Omit<InstanceInfo, 'hostname' | 'pid' | 'startedAt' | 'heartbeat' | 'revision' | 'configSourceOk' | 'gray'>,
    private readonly log: Logger,
    /** The revision running and the source's health, read at every heartbeat. */
    private readonly status: () => { revision: number; configSourceOk: boolean; gray: InstanceInfo['gray'] },
  ) {
    this.info = { ...base, hostname: hostname(), pid: process.pid, startedAt: new Date().toISOString(), heartbeat: '', revision: 0, configSourceOk: true, gray: [] };
  }

  start(): void {
    void this.beat();
  }

  /** The gateway applied another config revision: say so at once rather than at the next heartbeat. */
  changed(): void {
    if (this.lease !== null) void this.beat();
  }

  private async beat(): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    try {
      if (this.lease !== null) {
        const ttl = await this.client.keepAlive(this.lease);
        if (ttl <= 0) this.lease = null;
      }
      if (this.lease === null) this.lease = (await this.client.grantLease(TTL_S)).id;
      this.info = { ...this.info, ...this.status(), heartbeat: new Date().toISOString() };
      await this.client.put(`${instancesPrefix(this.prefix)}${this.info.id}`, JSON.stringify(this.info), { lease: this.lease });
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'instance heartbeat to etcd failed; retrying');
    }
    if (this.closed) return;
    this.timer = setTimeout(() => void this.beat(), HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Remove the record at once (a clean stop); a crash leaves it to the lease's expiry. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.lease !== null) await this.client.revokeLease(this.lease).catch(() => {});
  }
}

export async function listInstances(client: EtcdClient, prefix: string): Promise<InstanceInfo[]> {
  const r = await client.range(instancesPrefix(prefix), { prefix: true });
  const out: InstanceInfo[] = [];
  for (const kv of r.kvs) {
    try {
      const info = JSON.parse(kv.value) as InstanceInfo;
      out.push({ ...info, statusUrl: info.statusUrl ?? null, gray: info.gray ?? [] });
    } catch {
      /* a record that is not ours */
    }
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}
