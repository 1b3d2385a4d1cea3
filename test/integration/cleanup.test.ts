/**
 * Nothing is left behind when a run is interrupted: Ctrl-C (SIGINT) or SIGTERM during the demo
 * stops its throwaway PostgreSQL and removes its directory; a worker process started through the
 * test helper is stopped by the helper's cleanup even when the test body threw, and exits by
 * itself when the process that started it dies without cleaning up (SIGKILL).
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { packageRoot } from '../../src/embedded/cluster';
import { freshDatabase, url } from '../support/db';
import { eventually, startWorker, stopWorkers, type WorkerHandle } from '../support/worker';

const ROOT = packageRoot();

/** Alive and not a zombie waiting to be reaped. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Processes whose command line mentions `text` (pgrep -f), other than pgrep itself. */
function pgrep(text: string): string[] {
  const r = spawnSync('pgrep', ['-f', text], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

describe('an interrupted demo leaks no server', () => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal} during the demo stops its PostgreSQL and removes its directory (exit ${code})`, async () => {
      const demo = spawn(process.execPath, ['dist/cli.js', 'demo'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      demo.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      demo.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = once(demo, 'exit');
      try {
        // Printed once the server runs and pg_durable is installed; the tour is still ahead.
        await eventually(async () => /^Cluster: \S+/m.test(out), 90_000, `the demo's cluster line (output so far: ${out})`);
        const socketDir = decodeURIComponent(/host=([^&\s]+)/.exec(out)![1]);
        const dir = dirname(socketDir);
        const data = join(dir, 'data');
        const postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
        expect(processAlive(postmaster)).toBe(true);
        expect(pgrep(data).length).toBeGreaterThan(0);

        demo.kill(signal);
        const [exitCode] = await exited;
        expect(exitCode).toBe(code);
        expect(processAlive(postmaster)).toBe(false);
        expect(pgrep(data)).toEqual([]);
        expect(existsSync(dir)).toBe(false);
      } finally {
        if (demo.exitCode === null && demo.signalCode === null) demo.kill('SIGKILL');
      }
    }, 120_000);
  }
});

describe('test worker processes die with the test', () => {
  it("a worker started through the helper is gone after the helper's cleanup, even when the test body threw", async () => {
    const db = await freshDatabase('cleanup');
    let handle: WorkerHandle | undefined;
    const body = async () => {
      handle = startWorker(url(db));
      await eventually(async () => handle!.logs.some((l) => l.msg === 'worker started'), 30_000, 'the worker');
      throw new Error('test body failed');
    };
    await expect(body()).rejects.toThrow('test body failed');
    const pid = handle!.proc.pid!;
    expect(processAlive(pid)).toBe(true);
    expect(readdirSync(inject('workerPidDir'))).toContain(String(pid)); // registered for the global teardown

    await stopWorkers(); // what runs after every test file that uses the helper
    expect(processAlive(pid)).toBe(false);
    expect(handle!.proc.exitCode).toBe(0); // a graceful stop, not a kill
    expect(readdirSync(inject('workerPidDir'))).not.toContain(String(pid));
  });

  it('a worker started through the helper exits by itself when its parent is SIGKILLed', async () => {
    const db = await freshDatabase('cleanup_orphan');
    const dir = mkdtempSync(join(tmpdir(), 'pg-durable-orphan-'));
    try {
      // A parent that starts a worker with the helper, then dies without running any handler.
      const script = join(dir, 'parent.mts');
      writeFileSync(
        script,
        `import { startWorker, eventually } from ${JSON.stringify(pathToFileURL(join(ROOT, 'test/support/worker.ts')).href)};
const w = startWorker(process.argv[2]);
await eventually(async () => w.logs.some((l) => l.msg === 'worker started'), 30_000, 'the worker');
console.log(String(w.proc.pid));
process.kill(process.pid, 'SIGKILL');
`,
      );
      const parent = spawn(process.execPath, ['--import', 'tsx', script, url(db)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      parent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      parent.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const [, signal] = await once(parent, 'exit');
      expect(signal, out).toBe('SIGKILL');
      const pid = Number(/^(\d+)$/m.exec(out)?.[1]);
      expect(pid, out).toBeGreaterThan(0);
      await eventually(async () => !processAlive(pid), 20_000, 'the orphaned worker to exit');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
