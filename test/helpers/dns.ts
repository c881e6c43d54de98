/**
 * @module test/helpers/dns
 * A real DNS server for tests: dnsmasq on a free loopback port, answering for one test domain only (names
 * elsewhere are refused, unknown names in it are NXDOMAIN). Its A/AAAA records come from a hosts file that
 * setHosts() rewrites and dnsmasq re-reads on SIGHUP, so answers change while a test runs; SRV records are
 * part of its command line, so setSrv() restarts it on the same port. stop() and start() make an outage.
 *
 * Outside CI a machine without dnsmasq skips the tests that need it; under CI (CI=true) they fail instead,
 * since CI installs it (Debian package dnsmasq). Every dnsmasq started here is killed when the test process
 * exits, and its files are removed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { userInfo, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep } from './cli.js';
import { cleanupOnExit, skipUnlessPresent } from './required.js';

/** dnsmasq lives in sbin, which is not on every user's PATH. */
function dnsmasqPath(): string | null {
  for (const p of ['dnsmasq', '/usr/sbin/dnsmasq', '/sbin/dnsmasq', '/usr/local/sbin/dnsmasq']) {
    if (spawnSync(p, ['--version'], { stdio: 'ignore' }).status === 0) return p;
  }
  return null;
}

export function dnsmasqAvailable(): boolean {
  return dnsmasqPath() !== null;
}

/** Skip reason for node:test, or false when the tests can run (never skips under CI). */
export function dnsSkip(): string | false {
  return skipUnlessPresent(dnsmasqAvailable() ? null : 'dnsmasq is not installed (Debian package dnsmasq-base)');
}

const { children: running, dirs } = cleanupOnExit();

/** One SRV record: `name` (e.g. _http._tcp.svc.gh.test) points at `target`:`port`. */
export interface SrvRecord {
  name: string;
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

export interface TestDnsRecords {
  /** Addresses by name (IPv4 and IPv6 mixed): A and AAAA records. */
  hosts?: Record<string, string[]>;
  srv?: SrvRecord[];
  /** TTL of every answer, seconds (default 1). */
  ttl?: number;
}

export class TestDns {
  /** The domain this server answers for. */
  static readonly DOMAIN = 'gh.test';
  private child: ChildProcess | null = null;
  private output = '';
  private hostsReads = 0;
  private srv: SrvRecord[];
  private readonly ttl: number;

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly bin: string,
    records: TestDnsRecords,
  ) {
    this.srv = records.srv ?? [];
    this.ttl = records.ttl ?? 1;
    this.writeHosts(records.hosts ?? {});
  }

  /** The resolver address to configure: 127.0.0.1:<port>. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(records: TestDnsRecords = {}): Promise<TestDns> {
    const bin = dnsmasqPath();
    if (!bin) throw new Error('dnsmasq is not installed');
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-dns-'));
    dirs.add(dir);
    // dnsmasq started as root drops to another user, which must still read the hosts file.
    chmodSync(dir, 0o755);
    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const dns = new TestDns(await freePort(), dir, bin, records);
      try {
        await dns.start();
        return dns;
      } catch (e) {
        lastErr = e;
        await dns.stop();
      }
    }
    throw lastErr;
  }

  private get hostsFile(): string {
    return join(this.dir, 'hosts');
  }

  private writeHosts(hosts: Record<string, string[]>): void {
    const lines: string[] = [];
    for (const [name, addresses] of Object.entries(hosts)) for (const a of addresses) lines.push(`${a} ${name}`);
    writeFileSync(this.hostsFile, `${lines.join('\n')}\n`, { mode: 0o644 });
  }

  /** Start (again) on the same port; resolves once it answers queries. */
  async start(): Promise<void> {
    if (this.child) return;
    const args = [
      '--keep-in-foreground',
      `--port=${this.port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      `--addn-hosts=${this.hostsFile}`,
      `--local=/${TestDns.DOMAIN}/`,
      `--local-ttl=${this.ttl}`,
      '--pid-file',
      `--user=${userInfo().username}`,
      '--log-facility=-',
      ...this.srv.map((r) => `--srv-host=${r.name},${r.target},${r.port},${r.priority ?? 0},${r.weight ?? 0}`),
    ];
    const child = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    running.add(child);
    this.output = '';
    this.hostsReads = 0;
    const collect = (d: Buffer) => {
      const text = d.toString('utf8');
      this.output = (this.output + text).slice(-8000);
      this.hostsReads += text.split(`read ${this.hostsFile}`).length - 1;
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    let exited = false;
    child.once('exit', () => {
      exited = true;
      running.delete(child);
    });
    const deadline = Date.now() + 10_000;
    while (!(await this.answers())) {
      if (exited) {
        this.child = null;
        throw new Error(`dnsmasq exited while starting on port ${this.port}: ${this.output.trim()}`);
      }
      if (Date.now() > deadline) throw new Error(`dnsmasq did not answer on port ${this.port}: ${this.output.trim()}`);
      await sleep(25);
    }
  }

  /** Stop it (SIGKILL) and wait until it has exited: queries to its port are refused from then on. */
  async stop(): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.child = null;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGKILL');
      await exited;
    }
  }

  /** Replace every A/AAAA record; resolves once dnsmasq has re-read them (its cache is cleared with it). */
  async setHosts(hosts: Record<string, string[]>): Promise<void> {
    this.writeHosts(hosts);
    const c = this.child;
    if (!c) return;
    const before = this.hostsReads;
    c.kill('SIGHUP');
    const deadline = Date.now() + 5000;
    while (this.hostsReads === before) {
      if (Date.now() > deadline) throw new Error(`dnsmasq did not re-read its hosts file after SIGHUP: ${this.output.trim()}`);
      await sleep(10);
    }
  }

  /** Replace every SRV record: dnsmasq takes them only at start, so it restarts on the same port. */
  async setSrv(srv: SrvRecord[]): Promise<void> {
    this.srv = srv;
    if (!this.child) return;
    await this.stop();
    await this.start();
  }

  /** Whether a query gets any DNS answer (an address, NXDOMAIN or NODATA alike). */
  private async answers(): Promise<boolean> {
    const r = new Resolver({ timeout: 200, tries: 1 });
    r.setServers([this.address]);
    try {
      await r.resolve4(`probe.${TestDns.DOMAIN}`);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return code === 'ENOTFOUND' || code === 'ENODATA';
    }
  }

  /** Stop and remove its files. */
  async close(): Promise<void> {
    await this.stop();
    if (existsSync(this.dir)) rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }
}
