// Child processes: spawning (optionally pinned with taskset), stopping whole process groups, killing every
// child on exit, and reading CPU time and memory of a process tree from /proc.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';

const tracked = new Set();

let clkTck = 100;
let pageSize = 4096;
try { clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch {}
try { pageSize = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()) || 4096; } catch {}
export const CLK_TCK = clkTck;

let pinning = true;
export function setPinning(on) { pinning = on; }

/**
 * Starts a command in its own process group (so the whole tree can be signalled), output to logPath.
 * cpu: a taskset CPU list ("0", "1") or null. taskset execs the command, so the pid is the command's own,
 * and the affinity is inherited by every process it starts.
 */
export function startProcess(name, cmd, args, { env, cwd, logPath, cpu = null, stdout = 'file' } = {}) {
  let file = cmd;
  let argv = args;
  if (cpu !== null && pinning) {
    file = 'taskset';
    argv = ['-c', String(cpu), cmd, ...args];
  }
  const fd = logPath ? fs.openSync(logPath, 'a') : 'ignore';
  const child = spawn(file, argv, {
    env: env ?? process.env,
    cwd,
    detached: true,
    stdio: ['ignore', stdout === 'pipe' ? 'pipe' : fd, fd],
  });
  if (typeof fd === 'number') fs.closeSync(fd);
  const p = { name, pid: child.pid, child, logPath, exited: false, exitCode: null, signal: null };
  p.exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      p.exited = true;
      p.exitCode = code;
      p.signal = signal;
      resolve();
    });
    child.on('error', (err) => {
      p.exited = true;
      p.error = err;
      resolve();
    });
  });
  if (child.pid) tracked.add(p);
  return p;
}

function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** SIGTERM to the process group, then SIGKILL after graceMs; waits (bounded) until the group is gone. */
export async function stopProcess(p, graceMs = 3000) {
  if (!p || !p.pid) return;
  try { process.kill(-p.pid, 'SIGTERM'); } catch {}
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && (groupAlive(p.pid) || !p.exited)) await sleep(50);
  if (groupAlive(p.pid) || !p.exited) {
    try { process.kill(-p.pid, 'SIGKILL'); } catch {}
    const hard = Date.now() + 2000;
    while (Date.now() < hard && (groupAlive(p.pid) || !p.exited)) await sleep(50);
  }
  tracked.delete(p);
}

/** Synchronous last resort for exit handlers. */
export function killAllSync() {
  for (const p of tracked) {
    try { process.kill(-p.pid, 'SIGKILL'); } catch {}
  }
  tracked.clear();
}

/** Last lines of a process's log, for error messages. */
export function tailLog(p, lines = 8) {
  if (!p?.logPath) return '';
  try {
    const text = fs.readFileSync(p.logPath, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function readStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state): field n is rest[n - 3].
    return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]), rssPages: Number(rest[21]) };
  } catch {
    return null;
  }
}

function childrenViaTasks(pid) {
  // /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN; null when the kernel lacks it.
  let tids;
  try { tids = fs.readdirSync(`/proc/${pid}/task`); } catch { return []; }
  const out = [];
  for (const tid of tids) {
    let text;
    try { text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8'); } catch (e) {
      if (e.code === 'ENOENT') return null;
      continue;
    }
    for (const c of text.trim().split(/\s+/)) if (c) out.push(Number(c));
  }
  return out;
}

let haveChildrenFiles = null;

/** pids of rootPid and all its descendants. */
export function processTree(rootPid) {
  if (haveChildrenFiles !== false) {
    const first = childrenViaTasks(rootPid);
    if (first === null) haveChildrenFiles = false;
    else {
      haveChildrenFiles = true;
      const seen = new Set([rootPid]);
      const queue = [...first];
      for (let i = 0; i < queue.length && seen.size < 10000; i++) {
        const pid = queue[i];
        if (seen.has(pid)) continue;
        seen.add(pid);
        for (const c of childrenViaTasks(pid) ?? []) queue.push(c);
      }
      return [...seen];
    }
  }
  // Fallback: one scan of /proc building the parent map.
  const kids = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(name);
    if (!st) continue;
    const pid = Number(name);
    if (!kids.has(st.ppid)) kids.set(st.ppid, []);
    kids.get(st.ppid).push(pid);
  }
  const seen = new Set();
  const queue = [rootPid];
  for (let i = 0; i < queue.length && seen.size < 10000; i++) {
    const pid = queue[i];
    if (seen.has(pid)) continue;
    seen.add(pid);
    for (const c of kids.get(pid) ?? []) queue.push(c);
  }
  return [...seen];
}

/** CPU ticks (utime + stime) and RSS of every process in the tree, by pid. */
export function treeSnapshot(rootPid) {
  const per = new Map();
  let rss = 0;
  for (const pid of processTree(rootPid)) {
    const st = readStat(pid);
    if (!st) continue;
    per.set(pid, st.ticks);
    rss += st.rssPages * pageSize;
  }
  return { per, rss, at: process.hrtime.bigint() };
}

/** CPU microseconds the tree used between two snapshots (a process new in `after` counts from zero). */
export function cpuMicros(before, after) {
  let ticks = 0;
  for (const [pid, t] of after.per) ticks += t - (before.per.get(pid) ?? 0);
  return (ticks * 1e6) / CLK_TCK;
}

/** Per-CPU busy jiffies from /proc/stat, to tell which core saturated. */
export function cpuBusySnapshot() {
  const out = {};
  try {
    for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const v = m[2].trim().split(/\s+/).map(Number);
      const idle = v[3] + (v[4] || 0);
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
      out[m[1]] = { idle, total };
    }
  } catch {}
  return out;
}

/** Busy fraction per CPU between two cpuBusySnapshot()s. */
export function cpuBusy(before, after) {
  const out = {};
  for (const k of Object.keys(after)) {
    if (!before[k]) continue;
    const dt = after[k].total - before[k].total;
    const di = after[k].idle - before[k].idle;
    out[`cpu${k}`] = dt > 0 ? Math.round((1 - di / dt) * 1000) / 10 : null;
  }
  return out;
}
