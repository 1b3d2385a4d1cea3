/**
 * Starts one embedded PostgreSQL for the whole test run and prints which pg_durable flavor the
 * integration tests exercise: the real plv8 extension when the server has plv8, else the plv8 host.
 *
 * Nothing outlives the run: worker processes started by test files register their pid in
 * `workerPidDir` (test/support/worker.ts), and teardown (or this process exiting any other way,
 * e.g. vitest's own exit on Ctrl-C) kills the ones still alive, then stops the cluster.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { cleanupOnExit, startCluster } from '../../src/embedded/cluster';

/** Kills the registered worker processes still running (checking the pid still is one of ours). */
export function killRegisteredWorkers(pidDir: string): number {
  let killed = 0;
  let names: string[] = [];
  try {
    names = readdirSync(pidDir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // gone (or no /proc: nothing we can verify, so leave it)
    }
    if (!cmdline.includes('cli.js') || !cmdline.includes('worker')) continue; // pid reused by someone else
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      // exited meanwhile
    }
  }
  return killed;
}

export default async function setup(project: TestProject): Promise<() => void> {
  const cluster = await startCluster();
  const pidDir = mkdtempSync(join(tmpdir(), 'pg-durable-test-workers-'));
  const cleanup = () => {
    killRegisteredWorkers(pidDir);
    rmSync(pidDir, { recursive: true, force: true });
    cluster.stop();
  };
  const unregister = cleanupOnExit(cleanup);
  const banner =
    cluster.flavor === 'plv8'
      ? 'pg_durable tests: server has plv8 -> integration tests run against the real plv8 extension'
      : 'pg_durable tests: server has no plv8 -> integration tests run against the plv8 host (PL/Python bridge + Node vm, same bundle)';
  console.log(`\n${banner}\n  cluster: ${cluster.dir} (PostgreSQL ${cluster.bindir})\n`);
  project.provide('cluster', { dir: cluster.dir, socketDir: cluster.socketDir, port: cluster.port, flavor: cluster.flavor });
  project.provide('workerPidDir', pidDir);
  return () => {
    unregister();
    cleanup();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: { dir: string; socketDir: string; port: number; flavor: string };
    /** Where test worker processes register their pid (one empty file per pid). */
    workerPidDir: string;
  }
}
