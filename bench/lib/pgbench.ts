/**
 * The second floor: PostgreSQL's own C client, pgbench (it ships with the server), running the
 * floor's transaction with prepared statements (`-M prepared`), so the floor is the fastest
 * honest client and not node-postgres' overhead. Latencies come from pgbench's per-transaction
 * log (`-l`, microseconds), so process start and connection set-up are not counted; throughput is
 * pgbench's "tps (without initial connection time)".
 *
 * Keys: each client numbers its own transactions (`\set n :n + 1`; pgbench keeps a client's
 * variables from one transaction to the next) and writes (instance = base + client id, step = n):
 * unique without ON CONFLICT, so every transaction does exactly the floor's work.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Floor, type Shape, type WorkerOpts } from './systems';
import type { Proc } from './util';

const SCRIPT = `\\set n :n + 1
\\set inst :base + :client_id
BEGIN;
SELECT :n + 1 AS v \\gset
INSERT INTO bench_results (instance, step, v) VALUES (:inst, :n, :v);
COMMIT;
`;

/** Transactions each latency client runs first and leaves out (a new session's cold caches). */
const WARM = 3;

interface Run {
  /** Per transaction: its number within its client, end time (epoch ms) and latency (ms), in log order. */
  tx: { no: number; end: number; ms: number }[];
  tps: number | null;
  transactions: number;
}

export class Pgbench extends Floor {
  override key = 'pgbench' as const;
  override label = 'floor (pgbench)';
  private readonly dir = mkdtempSync(join(tmpdir(), 'pgd-pgbench-'));
  private base = 0;
  private workers = 1;
  private running: { done: Promise<Run>; settled: boolean; run: Run | null } | null = null;

  private bin(): string {
    return join(this.env.cluster.bindir, 'pgbench');
  }

  /** Runs pgbench to the end: `clients` connections on `threads` threads, `perClient` transactions each. */
  private pgbench(db: string, clients: number, threads: number, perClient: number): Promise<Run> {
    const script = join(this.dir, 'step.sql');
    writeFileSync(script, SCRIPT);
    const prefix = join(this.dir, `log${++this.seq}`);
    this.base += 10_000_000;
    const c = this.env.cluster;
    const args = [
      '-n', '-M', 'prepared', '-f', script, '-c', String(clients), '-j', String(threads), '-t', String(perClient),
      '-D', 'n=0', '-D', `base=${this.base}`, '-l', `--log-prefix=${prefix}`,
      '-h', c.socketDir, '-p', String(c.port), '-U', this.env.tenant, db,
    ];
    return new Promise((resolve, reject) => {
      const child = spawn(this.bin(), args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) => {
        if (code !== 0) return reject(new Error(`pgbench exited ${code}: ${out.slice(-2000).replace(/\s+/g, ' ')}`));
        const tx: Run['tx'] = [];
        for (const f of readdirSync(this.dir).filter((n) => join(this.dir, n).startsWith(prefix))) {
          // client_id transaction_no latency_us script_no end_epoch_s end_us
          for (const line of readFileSync(join(this.dir, f), 'utf8').split('\n')) {
            const p = line.trim().split(/\s+/);
            if (p.length >= 6) tx.push({ no: Number(p[1]), ms: Number(p[2]) / 1000, end: Number(p[4]) * 1000 + Number(p[5]) / 1000 });
          }
          rmSync(join(this.dir, f));
        }
        const m = /tps = ([0-9.]+) \(without initial connection time\)/.exec(out);
        resolve({ tx, tps: m ? Number(m[1]) : null, transactions: clients * perClient });
      });
    });
  }

  override async once(db: string, shape: Shape): Promise<number> {
    if (shape.kind === 'chain') {
      // One client, the chain's steps one after the other (after WARM transactions left out, as
      // the other systems' latencies are taken on warm connections): the sum of their latencies.
      const r = await this.pgbench(db, 1, 1, WARM + shape.steps);
      return r.tx.filter((t) => t.no >= WARM).reduce((a, t) => a + t.ms, 0);
    }
    // Fan-out: the branches on `concurrency` warm connections; from the first start to the last end.
    const clients = this.env.concurrency;
    const r = await this.pgbench(db, clients, Math.min(2, clients), WARM + Math.ceil(shape.branches / clients));
    const tx = r.tx.filter((t) => t.no >= WARM);
    const first = Math.min(...tx.map((t) => t.end - t.ms));
    return Math.max(...tx.map((t) => t.end)) - first;
  }

  /** No processes of its own until the batch: pgbench is started by startBatch. */
  override async startWorkers(_db: string, n: number, _opts: WorkerOpts = {}): Promise<Proc[]> {
    this.workers = n;
    return [];
  }

  override async startBatch(db: string, count: number, steps: number): Promise<void> {
    // W "workers" = W threads with `concurrency` connections each, as the floor's processes.
    const clients = this.workers * this.env.concurrency;
    const state: { done: Promise<Run>; settled: boolean; run: Run | null } = { done: null as unknown as Promise<Run>, settled: false, run: null };
    state.done = this.pgbench(db, clients, this.workers, Math.ceil((count * steps) / clients)).then((r) => {
      state.settled = true;
      state.run = r;
      return r;
    }, (err: unknown) => {
      state.settled = true;
      throw err;
    });
    state.done.catch(() => undefined);
    this.running = state;
  }

  override async batchDone(): Promise<boolean> {
    if (this.running?.settled) await this.running.done; // rethrows a failed run
    return this.running?.settled ?? false;
  }

  /** Elapsed time of the batch by pgbench's own count: transactions ÷ tps without connection set-up. */
  measuredElapsedMs(count: number, steps: number): number | null {
    const r = this.running?.run;
    if (!r || !r.tps) return null;
    return (count * steps * 1000) / r.tps;
  }

  /** Transactions that ended after `fromMs` (epoch ms) and the time from it to the last end, from pgbench's log. */
  window(fromMs: number): { steps: number; elapsedMs: number } | null {
    const tx = this.running?.run?.tx.filter((t) => t.end > fromMs) ?? [];
    if (tx.length === 0) return null;
    return { steps: tx.length, elapsedMs: Math.max(...tx.map((t) => t.end)) - fromMs };
  }

  override async batchCounts(db: string, count: number, steps: number): Promise<{ completed: number; failed: number }> {
    const r = await (await this.admin(db)).query('SELECT count(*)::int AS n FROM bench_results');
    return { completed: Math.min(count, Math.floor(r.rows[0].n / steps)), failed: 0 };
  }

  override async close(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
    await super.close();
  }
}
