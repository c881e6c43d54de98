/**
 * @module test/helpers/cli
 * The real `gatehouse` command in tests: spawn `bin/gatehouse.js gateway --file ...` detached (its own process
 * group, so the primary and every worker can be killed at once), collect its JSON log lines and raw output,
 * wait for readiness, read /metrics (with a check of the Prometheus text grammar), run one-shot commands
 * (`validate`), and small polling and port helpers.
 *
 * Every gateway started here is killed in the test's after hook, and on process exit as a last resort.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { request, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

// dist/test/helpers/cli.js -> the package root is three levels up.
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../../../bin/gatehouse.js', import.meta.url));

// ---------------------------------------------------------------------------------------------------------
// Small helpers

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The lowest port the kernel hands out for outgoing connections (Linux; 32768 elsewhere). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 2048 ? low : 32768;
  } catch {
    return 32768;
  }
}

/**
 * A port for a child process to listen on. Chosen below the ephemeral range: a port the kernel picked with
 * listen(0) may meanwhile become the local port of some outgoing connection (another test's keep-alive pool),
 * and the child could then never bind it.
 */
export async function freePort(): Promise<number> {
  const top = ephemeralLow();
  for (let i = 0; i < 200; i++) {
    const port = 10000 + Math.floor(Math.random() * (top - 10000));
    const s = createNetServer();
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      await new Promise<void>((r) => s.close(() => r()));
      return port;
    }
  }
  throw new Error('no free port below the ephemeral range');
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One GET on a new connection (agent: false), bounded. */
export function get(port: number, path: string, timeoutMs = 5000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Poll until `check` returns a value (not undefined), at most `timeoutMs`; errors thrown by check count as "not yet". */
/** An admin API answer with its JSON body parsed (null when empty). */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * A JSON call to a control plane's admin API on 127.0.0.1. Paths that start with neither /api/ nor /admin/ are
 * under /api/v1.
 */
export function adminCall(port: number, method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: path.startsWith('/api/') || path.startsWith('/admin/') ? path : `/api/v1${path}`,
        agent: false,
        headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) : null }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export async function waitUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined> | T | undefined, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
    }
    await sleep(everyMs);
  }
}

export function runCli(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, timeout: 20_000, env: cleanEnv({}) }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The test's environment without GATEHOUSE_* variables that could leak in, plus the given ones. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GATEHOUSE_')) env[k] = v;
  return { ...env, ...extra };
}

export async function childPids(ppid: number): Promise<number[]> {
  return new Promise((resolve) => {
    // pgrep -P exists on Linux (procps) and macOS; exit code 1 just means "no children".
    execFile('pgrep', ['-P', String(ppid)], { timeout: 5000 }, (_err, stdout) => {
      resolve(
        stdout
          .split('\n')
          .map((s) => Number(s.trim()))
          .filter((n) => Number.isInteger(n) && n > 0),
      );
    });
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Prometheus text format (promtool is not available, so check the line grammar here)

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const VALUE = '(?:[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|[+-]?Inf|NaN)';
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? (${VALUE})(?: -?\\d+)?$`);
const HELP_RE = new RegExp(`^# HELP (${NAME})(?: .*)?$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const LABEL_PAIR_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse Prometheus text exposition format 0.0.4; throws (with the line) on anything malformed. */
export function parsePrometheus(text: string): Sample[] {
  assert.ok(text.endsWith('\n'), 'metrics text must end with a newline');
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const lines = text.slice(0, -1).split('\n');
  for (const [i, line] of lines.entries()) {
    const where = `metrics line ${i + 1}: ${JSON.stringify(line)}`;
    if (line.startsWith('#')) {
      const h = HELP_RE.exec(line);
      const t = TYPE_RE.exec(line);
      if (h) {
        assert.ok(!helped.has(h[1]!), `${where}: second HELP for ${h[1]}`);
        helped.add(h[1]!);
      } else if (t) {
        assert.ok(!types.has(t[1]!), `${where}: second TYPE for ${t[1]}`);
        assert.ok(!samples.some((s) => familyOf(s.name, types) === t[1]), `${where}: TYPE after samples of ${t[1]}`);
        types.set(t[1]!, t[2]!);
      } else {
        assert.match(line, /^# /, `${where}: a comment line must be "# ..."`);
      }
      continue;
    }
    assert.notEqual(line, '', `${where}: blank line in metrics`);
    const m = SAMPLE_RE.exec(line);
    assert.ok(m, `${where}: not a valid sample line`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(LABEL_PAIR_RE)) {
      assert.ok(!(k! in labels), `${where}: label ${k} given twice`);
      labels[k!] = v!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const name = m[1]!;
    assert.ok(familyOf(name, types), `${where}: sample of ${name} has no # TYPE line before it`);
    const key = seriesKey(name, labels);
    assert.ok(!seen.has(key), `${where}: series ${key} given twice`);
    seen.add(key);
    const raw = m[3]!;
    const value = raw === 'NaN' ? NaN : raw.endsWith('Inf') ? (raw.startsWith('-') ? -Infinity : Infinity) : Number(raw);
    samples.push({ name, labels, value });
  }
  // Histograms: cumulative buckets ending in +Inf, which equals _count.
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const byKey = new Map<string, Sample[]>();
    for (const s of samples.filter((s) => s.name === `${family}_bucket`)) {
      assert.ok('le' in s.labels, `${family}_bucket without le`);
      const { le: _le, ...rest } = s.labels;
      const k = seriesKey(family, rest);
      byKey.set(k, [...(byKey.get(k) ?? []), s]);
    }
    for (const [k, buckets] of byKey) {
      let prev = -Infinity;
      let prevCount = 0;
      for (const b of buckets) {
        const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
        assert.ok(le > prev, `${k}: bucket bounds must increase`);
        assert.ok(b.value >= prevCount, `${k}: buckets must be cumulative`);
        prev = le;
        prevCount = b.value;
      }
      assert.equal(prev, Infinity, `${k}: last bucket must be le="+Inf"`);
      const { le: _le, ...rest } = buckets[0]!.labels;
      const count = samples.find((s) => s.name === `${family}_count` && seriesKey(family, s.labels) === seriesKey(family, rest));
      assert.ok(count, `${k}: no _count`);
      assert.equal(count.value, prevCount, `${k}: +Inf bucket must equal _count`);
    }
  }
  return samples;
}

function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const t = types.get(base);
      if (t === 'histogram' || t === 'summary') return base;
    }
  }
  return undefined;
}

function seriesKey(name: string, labels: Record<string, string>): string {
  return `${name}{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',')}}`;
}

export function metricValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const key = seriesKey(name, labels);
  return samples.find((s) => seriesKey(s.name, s.labels) === key)?.value;
}

// ---------------------------------------------------------------------------------------------------------
// The gateway process

export type LogLine = Record<string, unknown> & { msg?: string };

const running = new Set<ChildProcess>();

export function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal); // the whole process group: primary and workers
  } catch {
    /* already gone */
  }
}

/** Kill every gateway process group still running (for a file's after hook). */
export function killAll(): void {
  for (const c of running) killGroup(c);
}

// Last resort if the test process itself is torn down: never leave gateways behind.
process.on('exit', killAll);

export interface StartOptions {
  /** Worker processes (GATEHOUSE_WORKERS); default 2. */
  workers?: number;
  /** More GATEHOUSE_* variables; they override the defaults set here (log level info, HTTPS off). */
  env?: Record<string, string>;
  /** How long to wait for /readyz 200; default 20 s. */
  readyTimeoutMs?: number;
  /** The command line after bin/gatehouse.js (default: gateway --file <the routes file>); runs in the temp dir. */
  args?: (file: string, dir: string) => string[];
  /** Readiness other than /readyz 200 (a control plane has no status port): resolves true when ready. */
  ready?: () => Promise<boolean>;
}

export class Gatehouse {
  readonly logs: LogLine[] = [];
  /** Everything the process tree wrote to stdout, as written (the workers share the primary's stdout). */
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private partial = '';

  private constructor(
    readonly child: ChildProcess,
    readonly dir: string,
    readonly file: string,
    readonly proxyPort: number,
    readonly statusPort: number,
  ) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      this.stdout += chunk;
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop()!;
      for (const line of parts) {
        if (!line.trim()) continue;
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ msg: line, notJson: true });
        }
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        running.delete(child);
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * Spawn `gatehouse gateway --file routes.yaml` in a fresh temp dir and wait until /readyz says 200.
   * Registers an after hook on `t` that kills the process group.
   */
  static async start(t: TestContext, yaml: string, opts: StartOptions = {}): Promise<Gatehouse> {
    const dir = await mkdtemp(join(tmpdir(), 'gatehouse-cli-'));
    const file = join(dir, 'routes.yaml');
    await writeFile(file, yaml);
    const proxyPort = await freePort();
    const statusPort = await freePort();
    const child = spawn(process.execPath, [BIN, ...(opts.args ? opts.args(file, dir) : ['gateway', '--file', file])], {
      cwd: dir,
      detached: true, // own process group, so kill(-pid) reaches the workers too
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv({
        GATEHOUSE_PROXY_HOST: '127.0.0.1',
        GATEHOUSE_PROXY_HTTP: String(proxyPort),
        GATEHOUSE_PROXY_HTTPS: '-1',
        GATEHOUSE_STATUS_PORT: String(statusPort),
        GATEHOUSE_WORKERS: String(opts.workers ?? 2),
        GATEHOUSE_LOG_LEVEL: 'info',
        ...opts.env,
      }),
    });
    running.add(child);
    const gw = new Gatehouse(child, dir, file, proxyPort, statusPort);
    t.after(async () => {
      await gw.stop();
      await rm(dir, { recursive: true, force: true });
    });
    if (opts.ready) {
      const check = opts.ready;
      try {
        await waitUntil('ready', opts.readyTimeoutMs ?? 20_000, async () => {
          if (gw.exitInfo) throw new Error(`exited (${JSON.stringify(gw.exitInfo)})`);
          return (await check()) ? true : undefined;
        });
      } catch (e) {
        throw new Error(`${(e as Error).message}${gw.tail()}`);
      }
    } else await gw.waitReady(opts.readyTimeoutMs ?? 20_000);
    return gw;
  }

  /** Kill the process group and wait (bounded) for the primary to be gone. */
  async stop(): Promise<void> {
    const workers = this.exitInfo ? [] : await childPids(this.pid);
    killGroup(this.child, 'SIGKILL');
    for (const w of workers) {
      try {
        process.kill(w, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await Promise.race([this.exited, sleep(5000)]);
    running.delete(this.child);
  }

  /** The tail of the process output, for assertion messages. */
  tail(n = 25): string {
    return `\n--- last ${n} log lines ---\n${this.logs
      .slice(-n)
      .map((l) => JSON.stringify(l))
      .join('\n')}\n--- stderr ---\n${this.stderr.slice(-2000)}`;
  }

  mark(): number {
    return this.logs.length;
  }

  /** Wait for a log line matching `pred` at index >= since. */
  async waitLog(what: string, pred: (l: LogLine) => boolean, opts: { since?: number; timeoutMs?: number } = {}): Promise<{ line: LogLine; index: number }> {
    const since = opts.since ?? 0;
    try {
      return await waitUntil(`log line: ${what}`, opts.timeoutMs ?? 10_000, () => {
        for (let i = since; i < this.logs.length; i++) if (pred(this.logs[i]!)) return { line: this.logs[i]!, index: i };
        if (this.exitInfo) throw new Error(`gateway exited (${JSON.stringify(this.exitInfo)})`);
        return undefined;
      });
    } catch (e) {
      throw new Error(`${(e as Error).message}${this.tail()}`);
    }
  }

  async readyz(): Promise<{ status: number; body: Record<string, unknown> }> {
    const r = await get(this.statusPort, '/readyz');
    return { status: r.status, body: JSON.parse(r.body) as Record<string, unknown> };
  }

  /** Poll /readyz until 200 (and `pred` holds on its body), bounded. */
  async waitReady(timeoutMs = 10_000, pred: (body: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
    try {
      return await waitUntil('/readyz 200', timeoutMs, async () => {
        if (this.exitInfo) throw new Error(`gateway exited (${JSON.stringify(this.exitInfo)})`);
        const r = await this.readyz();
        return r.status === 200 && pred(r.body) ? r.body : undefined;
      });
    } catch (e) {
      throw new Error(`${(e as Error).message}${this.tail()}`);
    }
  }

  async metrics(): Promise<{ text: string; samples: Sample[]; contentType: string }> {
    const r = await get(this.statusPort, '/metrics');
    assert.equal(r.status, 200, `/metrics answered ${r.status}: ${r.body}`);
    return { text: r.body, samples: parsePrometheus(r.body), contentType: String(r.headers['content-type']) };
  }

  /** Replace the routes file the way config tools do: write a sibling temp file, then rename it over. */
  async replaceFile(yaml: string): Promise<void> {
    const tmp = join(this.dir, `.routes.yaml.${process.pid}.${Date.now()}.tmp`);
    await writeFile(tmp, yaml);
    await rename(tmp, this.file);
  }

  /** Rewrite the routes file in place (truncate + write, as `echo > file` or many editors do). */
  async writeInPlace(yaml: string): Promise<void> {
    await writeFile(this.file, yaml);
  }
}
