/**
 * Real worker processes for tests: `node dist/cli.js worker` against a test database, with its
 * JSON log lines captured so tests can see what it did.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import pg from 'pg';
import { scalar } from './db';

export interface WorkerHandle {
  proc: ChildProcess;
  logs: Record<string, unknown>[];
  /** Graceful stop (SIGTERM) and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash, no cleanup. */
  kill(): Promise<void>;
}

export interface WorkerOptions {
  leaseSeconds?: number;
  clockSpeed?: number;
  concurrency?: number;
  extraArgs?: string[];
  env?: Record<string, string>;
}

export function startWorker(databaseUrl: string, opts: WorkerOptions = {}): WorkerHandle {
  const lease = opts.leaseSeconds ?? 4;
  const args = [
    'dist/cli.js', 'worker', '--database-url', databaseUrl, '--log-level', 'debug',
    '--lease-seconds', String(lease), '--heartbeat-seconds', String(Math.max(1, Math.floor(lease / 3))),
    '--poll-interval', '200', '--concurrency', String(opts.concurrency ?? 10), '--shutdown-grace', '10',
    ...(opts.extraArgs ?? []),
  ];
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PG_DURABLE_TEST_CLOCK_SPEED: String(opts.clockSpeed ?? 1), ...opts.env },
  });
  const logs: Record<string, unknown>[] = [];
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line));
      } catch {
        logs.push({ raw: line });
      }
    }
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  proc.on('exit', (code) => {
    if (code && code !== 0 && code !== 143) console.error(`worker exited with ${code}: ${stderr}`);
  });
  return {
    proc,
    logs,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const [code] = await once(proc, 'exit');
      return code as number | null;
    },
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await once(proc, 'exit');
    },
  };
}

/** Polls until the instance is terminal (or the timeout passes) and returns its status. */
export async function waitFor(client: pg.Client, id: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await scalar<string>(client, 'SELECT status FROM df.instances WHERE id = $1', [id]);
    if (['completed', 'failed', 'cancelled'].includes(status) || Date.now() > deadline) return status;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls a condition until true or timeout. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
