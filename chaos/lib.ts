/**
 * Shared pieces of the fault-tolerance harness (chaos, load, soak and their CI version): a private
 * cluster with a tenant role, real worker processes that can be SIGKILLed and restarted, an
 * asynchronous PostgreSQL restart (so clients keep talking while the server is down), and a driver
 * connection that rides out restarts.
 *
 * Nothing here patches the engine: workers are `node dist/cli.js worker` exactly as users run them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { packageRoot, startCluster, type Cluster } from '../src/embedded/cluster';
import { isTransient } from '../src/worker/transient';

export const ROOT = packageRoot();
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const T0 = Date.now();
export const elapsedS = () => ((Date.now() - T0) / 1000).toFixed(1);
export function say(msg: string): void {
  if (process.env.CHAOS_QUIET !== '1') console.log(`[chaos ${elapsedS()}s] ${msg}`);
}

/** Seeded PRNG (mulberry32) so a run's choices can be replayed with --seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The worker bundle to run. Long runs copy dist/cli.js aside first so that a rebuild in the work
 * tree during the run does not change the code of workers restarted later. The copy lives under
 * node_modules/.cache so the bundle's bare imports (pg, pino, ...) still resolve; `.mjs` keeps it ESM.
 */
export function workerCli(snapshot: boolean): string {
  const cli = join(ROOT, 'dist/cli.js');
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build` first');
  if (!snapshot) return cli;
  const dir = join(ROOT, 'node_modules/.cache/pg-durable-chaos');
  mkdirSync(dir, { recursive: true });
  const copy = join(dir, `cli-${process.pid}.mjs`);
  copyFileSync(cli, copy);
  process.once('exit', () => rmSync(copy, { force: true }));
  return copy;
}

export interface Env {
  cluster: Cluster;
  db: string;
  tenant: string;
  adminUrl: string;
  tenantUrl: string;
}

/**
 * A private cluster (synchronous_commit = on: an immediate shutdown must not lose acknowledged
 * commits; fsync stays off because we crash processes, not the machine), one database with
 * pg_durable, and a LOGIN tenant with df.grant_usage and CREATE on public.
 */
export async function setupEnv(opts: { settings?: Record<string, string | number>; db?: string; tenant?: string } = {}): Promise<Env> {
  // cleanup: 'exit' — a runner that throws or exits early does not leave the server behind.
  const cluster = await startCluster({ settings: { synchronous_commit: 'on', ...opts.settings }, cleanup: 'exit' });
  const db = opts.db ?? 'chaos';
  const tenant = opts.tenant ?? 'chaos_tenant';
  try {
    await cluster.createDatabase(db);
    const admin = new pg.Client({ connectionString: cluster.url(db) });
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE ${pg.escapeIdentifier(tenant)} LOGIN`);
      await admin.query('SELECT df.grant_usage($1)', [tenant]);
      await admin.query(`GRANT CREATE ON SCHEMA public TO ${pg.escapeIdentifier(tenant)}`);
    } finally {
      await admin.end();
    }
  } catch (err) {
    cluster.stop();
    throw err;
  }
  return { cluster, db, tenant, adminUrl: cluster.url(db), tenantUrl: cluster.url(db, tenant) };
}

/**
 * Stops and starts PostgreSQL without blocking the event loop (Cluster.restart uses spawnSync), so
 * the driver can keep sending signals and starting workflows while the server is away.
 */
export async function restartPostgres(cluster: Cluster, mode: 'fast' | 'immediate', whileDown?: () => Promise<void>): Promise<{ downMs: number }> {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const data = join(cluster.dir, 'data');
  const pgCtl = (args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const bin = join(cluster.bindir, 'pg_ctl');
      const cmd = asRoot ? 'runuser' : bin;
      const argv = asRoot ? ['-u', 'postgres', '--', bin, '-D', data, ...args] : ['-D', data, ...args];
      const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl ${args.join(' ')} exited ${code}: ${out.trim()}`))));
    });
  const t0 = Date.now();
  await pgCtl(['-w', '-m', mode, 'stop']);
  if (whileDown) await whileDown();
  await pgCtl(['-w', '-t', '120', '-l', join(cluster.dir, 'server.log'), 'start']);
  return { downMs: Date.now() - t0 };
}

/**
 * A driver connection pool that survives restarts and terminated backends: transient failures are
 * retried until the deadline. `ambiguous` is called after a failure whose commit outcome is unknown
 * (connection lost mid-call); returning a value there ends the retry (the call did happen).
 */
export class Db {
  readonly pool: pg.Pool;
  constructor(url: string, max = 3, appName = 'chaos-driver') {
    this.pool = new pg.Pool({ connectionString: url, max, application_name: appName, idleTimeoutMillis: 10_000 });
    this.pool.on('error', () => undefined);
    this.pool.on('connect', (c) => c.on('error', () => undefined));
  }

  async q<T extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
    opts: { timeoutMs?: number; ambiguous?: () => Promise<pg.QueryResult<T> | null> } = {},
  ): Promise<pg.QueryResult<T>> {
    const deadline = Date.now() + (opts.timeoutMs ?? 180_000);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.pool.query<T>(sql, params);
      } catch (err) {
        if (!isTransient(err) || Date.now() > deadline) throw err;
        await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)));
        if (opts.ambiguous) {
          const prior = await this.q<T>('SELECT 1', [], { timeoutMs: Math.max(1000, deadline - Date.now()) })
            .then(() => opts.ambiguous!())
            .catch(() => null);
          if (prior) return prior;
        }
      }
    }
  }

  async end(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}

export interface WorkerStats {
  /** msg -> count over every worker process of the run. */
  messages: Map<string, number>;
  unexpectedExits: { slot: number; code: number | null; signal: string | null; stderr: string }[];
  instanceFailures: { instance: string; error: string }[];
}

export interface WorkerProc {
  slot: number;
  gen: number;
  child: ChildProcess;
  startedAt: number;
  killedByUs: boolean;
  exited: Promise<void>;
}

/** A fixed number of worker slots; each can be SIGKILLed and restarted (a new process, new epoch). */
export class WorkerPool {
  readonly procs: (WorkerProc | null)[];
  readonly stats: WorkerStats = { messages: new Map(), unexpectedExits: [], instanceFailures: [] };
  private gen = 0;
  private logStream: WriteStream | null;

  constructor(
    private readonly opts: { cli: string; url: string; count: number; args: string[]; logFile?: string; env?: Record<string, string> },
  ) {
    this.procs = new Array(opts.count).fill(null);
    this.logStream = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : null;
  }

  start(slot: number): WorkerProc {
    const gen = ++this.gen;
    const child = spawn(process.execPath, [this.opts.cli, 'worker', '--database-url', this.opts.url, ...this.opts.args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.opts.env },
    });
    const p: WorkerProc = { slot, gen, child, startedAt: Date.now(), killedByUs: false, exited: Promise.resolve() };
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.logStream?.write(`w${slot}.${gen} ${line}\n`);
        try {
          const j = JSON.parse(line) as { msg?: string; instance?: string; error?: string; status?: string };
          const m = j.msg ?? '?';
          this.stats.messages.set(m, (this.stats.messages.get(m) ?? 0) + 1);
          if (m === 'instance failed' && j.instance) this.stats.instanceFailures.push({ instance: j.instance, error: String(j.error ?? '') });
        } catch {
          /* not JSON */
        }
      }
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
      this.logStream?.write(`w${slot}.${gen} STDERR ${d.toString()}`);
    });
    p.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        if (!p.killedByUs) this.stats.unexpectedExits.push({ slot, code, signal, stderr });
        if (this.procs[slot] === p) this.procs[slot] = null;
        resolve();
      });
    });
    this.procs[slot] = p;
    return p;
  }

  alive(): number[] {
    return this.procs.map((p, i) => (p && p.child.exitCode === null && p.child.signalCode === null ? i : -1)).filter((i) => i >= 0);
  }

  /** SIGKILL: no cleanup, leases left to expire. */
  async kill(slot: number): Promise<void> {
    const p = this.procs[slot];
    if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
    p.killedByUs = true;
    p.child.kill('SIGKILL');
    await p.exited;
  }

  /** Restarts every empty slot. */
  fill(): void {
    for (let i = 0; i < this.procs.length; i++) if (!this.procs[i]) this.start(i);
  }

  pids(): number[] {
    return this.procs.filter((p): p is WorkerProc => p !== null).map((p) => p.child.pid!).filter(Boolean);
  }

  /** Graceful stop (SIGTERM), then SIGKILL after `graceMs`. */
  async stopAll(graceMs = 15_000): Promise<void> {
    const live = this.procs.filter((p): p is WorkerProc => p !== null);
    for (const p of live) {
      p.killedByUs = true;
      p.child.kill('SIGTERM');
    }
    const timer = setTimeout(() => live.forEach((p) => p.child.kill('SIGKILL')), graceMs);
    await Promise.all(live.map((p) => p.exited));
    clearTimeout(timer);
    await new Promise<void>((r) => (this.logStream ? this.logStream.end(r) : r()));
    this.logStream = null;
  }
}

/** Resident set size of a process in MiB (Linux /proc), or null when it is gone. */
export function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Standard worker flags for the harness: short leases so takeovers are quick. */
export function workerArgs(o: { lease?: number; concurrency?: number; poll?: number; acquire?: number; logLevel?: string } = {}): string[] {
  const lease = o.lease ?? 4;
  return [
    '--lease-seconds', String(lease), '--heartbeat-seconds', String(Math.max(1, Math.floor(lease / 3))),
    '--poll-interval', String(o.poll ?? 500), '--concurrency', String(o.concurrency ?? 8),
    '--acquire-timeout', String(o.acquire ?? 120), '--shutdown-grace', '5', '--log-level', o.logLevel ?? 'info',
  ];
}

export const lit = (s: string): string => pg.escapeLiteral(s);

/** Percentile of a sorted-in-place copy. */
export function pct(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
