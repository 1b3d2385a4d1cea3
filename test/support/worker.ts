/**
 * Real worker processes for tests: `node dist/cli.js worker` against a test database, with its
 * JSON log lines captured so tests can see what it did.
 *
 * No worker outlives its test file: every worker started here is stopped by stopWorkers(), which
 * runs after each test file (registered below, so also when a test or a hook threw), and killed
 * when this process exits. Workers get a stdin pipe and PG_DURABLE_EXIT_ON_STDIN_CLOSE=1, so they
 * also stop when this process dies without running any handler (SIGKILL); and their pids are
 * registered for the global teardown (test/support/global-setup.ts) as a last resort.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, inject } from 'vitest';
import { scalar } from './db';

const live = new Set<WorkerHandle>();

/** The global setup's pid registry, or null outside vitest. */
function pidDir(): string | null {
  try {
    return inject('workerPidDir') ?? null;
  } catch {
    return null;
  }
}

/**
 * Stops every worker started through startWorker that is still running: SIGTERM, then SIGKILL
 * after `graceMs`. Runs after each test file; call it directly to clean up earlier.
 */
export async function stopWorkers(graceMs = 5000): Promise<void> {
  await Promise.all(
    [...live].map(async (w) => {
      const timer = setTimeout(() => w.proc.kill('SIGKILL'), graceMs);
      try {
        await w.stop();
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}

// Registered on the suite of the test file that imports this module (vitest isolates modules per
// file), so it runs when the file ends, whatever its tests did. Outside a vitest run (a script
// importing this helper) there is no suite to register on.
try {
  afterAll(() => stopWorkers());
} catch {
  // not collecting a test file
}

// Last resort in this process: kill what is left, synchronously.
process.on('exit', () => {
  for (const w of live) {
    try {
      w.proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

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
    // stdin: a pipe that closes when this process dies, however it dies; the worker stops then.
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PG_DURABLE_TEST_CLOCK_SPEED: String(opts.clockSpeed ?? 1), PG_DURABLE_EXIT_ON_STDIN_CLOSE: '1', ...opts.env },
  });
  proc.stdin!.on('error', () => undefined);
  const registry = pidDir();
  const pidFile = registry && proc.pid ? join(registry, String(proc.pid)) : null;
  if (pidFile) {
    try {
      writeFileSync(pidFile, '');
    } catch {
      // the registry is a safety net only
    }
  }
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
  const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  exited.catch(() => undefined); // a spawn 'error' rejects it; the test sees that through its own checks
  const handle: WorkerHandle = {
    proc,
    logs,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
  live.add(handle);
  proc.on('exit', (code) => {
    live.delete(handle);
    if (pidFile) rmSync(pidFile, { force: true });
    if (code && code !== 0 && code !== 143) console.error(`worker exited with ${code}: ${stderr}`);
  });
  return handle;
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

/** A worker's --metrics-port server address, from its 'metrics on' log line (the OS chooses the port). */
export async function metricsAddress(w: WorkerHandle): Promise<string> {
  let port = 0;
  await eventually(async () => {
    const line = w.logs.find((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('metrics on'));
    port = line ? Number(line.port) : 0;
    return port > 0;
  }, 15_000, 'the metrics server');
  return `http://127.0.0.1:${port}`;
}
