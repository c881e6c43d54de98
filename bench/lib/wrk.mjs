// Runs wrk (pinned like the upstream) and parses its summary: the JSON line from wrk-report.lua, with the
// text output as a fallback.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, stopProcess } from './procs.mjs';
import { HOST } from './http.mjs';

const LUA = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'wrk-report.lua');

function toMicros(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return null;
  const f = { us: 1, ms: 1e3, s: 1e6, m: 60e6 }[m[2]];
  return Number(m[1]) * f;
}

export function parseWrk(out) {
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (line) {
    const j = JSON.parse(line.slice('WRK_JSON '.length));
    return {
      requests: j.requests,
      durationS: j.duration_us / 1e6,
      rps: j.requests / (j.duration_us / 1e6),
      bytes: j.bytes,
      p50us: j.latency_us.p50,
      p90us: j.latency_us.p90,
      p99us: j.latency_us.p99,
      maxus: j.latency_us.max,
      non2xx: j.errors.status,
      socketErrors: { connect: j.errors.connect, read: j.errors.read, write: j.errors.write, timeout: j.errors.timeout },
    };
  }
  // Text fallback.
  const num = (re) => { const m = re.exec(out); return m ? Number(m[1]) : null; };
  const pct = (p) => { const m = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(out); return m ? toMicros(m[1]) : null; };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const reqs = /(\d+) requests in ([\d.]+)(ms|s|m)/.exec(out);
  if (!reqs) throw new Error(`cannot parse wrk output:\n${out.slice(0, 2000)}`);
  const durationS = Number(reqs[2]) * { ms: 1e-3, s: 1, m: 60 }[reqs[3]];
  return {
    requests: Number(reqs[1]),
    durationS,
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    bytes: null,
    p50us: pct(50),
    p90us: pct(90),
    p99us: pct(99),
    maxus: null,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) ?? 0,
    socketErrors: se
      ? { connect: Number(se[1]), read: Number(se[2]), write: Number(se[3]), timeout: Number(se[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
  };
}

export function errorCount(r) {
  const s = r.socketErrors;
  return r.non2xx + s.connect + s.read + s.write + s.timeout;
}

/**
 * One wrk run. Resolves the parsed summary; rejects when wrk fails or overruns its bound.
 * `headers`: extra request headers ({ name: value }), sent on every request with wrk's -H.
 */
export async function runWrk({ port, urlPath, connections, threads = 1, durationS, cpu, logPath, hostHeader, headers = {} }) {
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${durationS}s`, '--latency', '--timeout', '5s', '-s', LUA];
  if (hostHeader) args.push('-H', `Host: ${hostHeader}`);
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  args.push(`http://${HOST}:${port}${urlPath}`);
  const p = startProcess('wrk', 'wrk', args, { cpu, logPath, stdout: 'pipe' });
  let out = '';
  p.child.stdout.setEncoding('utf8');
  p.child.stdout.on('data', (d) => { out += d; });
  const bound = setTimeout(() => stopProcess(p, 500), (durationS + 15) * 1000);
  const closed = new Promise((r) => p.child.stdout.on('close', r));
  await p.exitPromise;
  await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
  clearTimeout(bound);
  await stopProcess(p, 500);
  if (p.error) throw new Error(`wrk could not start: ${p.error.message}`);
  if (p.exitCode !== 0) throw new Error(`wrk exited with code ${p.exitCode} signal ${p.signal}: ${out.slice(-500)}`);
  const r = parseWrk(out);
  r.raw = out;
  return r;
}
