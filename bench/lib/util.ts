/** Small helpers for the benchmark: statistics, bounded waits, child processes and /proc readings. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Dist {
  n: number;
  median: number;
  p95: number;
  min: number;
  max: number;
}

/** Median and p95 (nearest rank) of a sample. */
export function dist(values: number[]): Dist {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { n: 0, median: NaN, p95: NaN, min: NaN, max: NaN };
  const at = (q: number) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
  const median = v.length % 2 === 1 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  return { n: v.length, median, p95: at(0.95), min: v[0], max: v[v.length - 1] };
}

/** Polls `check` every `everyMs` until it returns true; throws after `timeoutMs`. */
export async function until(check: () => Promise<boolean>, timeoutMs: number, what: string, everyMs = 1): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timer = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  stderr: () => string;
  /** Resolves with the first stdout line matching the predicate. */
  line(pred: (l: string) => boolean, timeoutMs: number, what: string): Promise<string>;
  /** True if a stdout line seen so far (the last 200) matches. */
  has(pred: (l: string) => boolean): boolean;
  send(text: string): void;
  /** SIGTERM, then SIGKILL after graceMs; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Every process spawned by the bench, so a hard stop can end them. */
export const spawned = new Set<ChildProcess>();

/** Spawns a process whose stdout lines can be awaited (ready / done handshakes). */
export function spawnProc(name: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Proc {
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  spawned.add(child);
  child.once('exit', () => spawned.delete(child));
  const lines: string[] = [];
  const waiters: { pred: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  let buf = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lines.push(l);
      if (lines.length > 200) lines.shift();
      for (const w of [...waiters]) {
        if (w.pred(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.length > 20000) err = err.slice(-20000);
  });
  child.stdin!.on('error', () => undefined);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    name,
    child,
    pid: child.pid!,
    stderr: () => err,
    line(pred, timeoutMs, what) {
      const seen = lines.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      const p = new Promise<string>((resolve, reject) => {
        waiters.push({ pred, resolve });
        child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before ${what}: ${err.slice(-2000)}`)));
      });
      return withTimeout(p, timeoutMs, `${name}: ${what}`);
    },
    has(pred) {
      return lines.some(pred);
    },
    send(text) {
      child.stdin!.write(text);
    },
    async stop(graceMs = 15000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

const TICK_MS = 10; // CLK_TCK = 100 on Linux

/** CPU time (user + system) in ms of one process; its waited-for children too when `children`. */
export function cpuMs(pid: number, children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after the command: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17) -> index - 3
    const own = Number(f[11]) + Number(f[12]);
    const kids = children ? Number(f[13]) + Number(f[14]) : 0;
    return (own + kids) * TICK_MS;
  } catch {
    return 0;
  }
}

function ppidOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return -1;
  }
}

/**
 * CPU of the whole PostgreSQL server: the postmaster, its live children (backends, walwriter,
 * checkpointer, ...) and, through the postmaster's cutime/cstime, the children that already exited.
 */
export function serverCpuMs(postmasterPid: number): number {
  let total = cpuMs(postmasterPid, true);
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (ppidOf(pid) === postmasterPid) total += cpuMs(pid);
  }
  return total;
}

/** Peak resident set size (VmHWM) of a live process, in MiB. */
export function peakRssMiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Machine CPU counters (all cores): busy and total jiffies from /proc/stat, in ms. */
export function machineCpu(): { busy: number; total: number } {
  const first = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = first;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy * TICK_MS, total: (busy + idle + iowait) * TICK_MS };
}
