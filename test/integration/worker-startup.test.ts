/**
 * A worker started before its database or pg_durable exists (compose, systemd, `make installcheck`
 * on a fresh database) waits, says once what it waits for, and starts working when the extension
 * appears; DROP EXTENSION / CREATE EXTENSION underneath a running worker is ridden out; a SIGTERM
 * while waiting ends it at once with exit code 0. Real worker processes against the embedded cluster.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { asRole, createTenant, freshDatabase, scalar, url, withPg } from '../support/db';
import { eventually, startWorker, waitFor, type WorkerHandle } from '../support/worker';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const uniqueName = (prefix: string) => `${prefix}_${randomBytes(3).toString('hex')}`;
const messages = (w: WorkerHandle, msg: string) => w.logs.filter((l) => l.msg === msg);
const alive = (w: WorkerHandle) => w.proc.exitCode === null && w.proc.signalCode === null;
const waitingForExtension = (db: string) => `waiting for CREATE EXTENSION pg_durable in database "${db}"`;
const waitingForDatabase = (db: string) => `waiting for database "${db}" to exist`;

async function createDatabase(name: string): Promise<void> {
  await withPg('postgres', (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
}

/** Starts a one-step workflow as a new tenant and waits for it; returns the final status. */
async function runOne(db: string, tag: string): Promise<string> {
  const tenant = await createTenant(db, 'startup');
  const id = await asRole(db, tenant, (c) => scalar<string>(c, `SELECT df.start('SELECT ''${tag}'' AS tag')`));
  return withPg(db, (c) => waitFor(c, id, 30_000));
}

/** The worker's own connections to `db`, by application_name. */
async function workerConnections(db: string): Promise<Record<string, number>> {
  const r = await withPg('postgres', (c) =>
    c.query<{ app: string; n: number }>(
      "SELECT application_name AS app, count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'pg_durable:worker:%' GROUP BY 1",
      [db],
    ),
  );
  return Object.fromEntries(r.rows.map((row) => [row.app, row.n]));
}

describe('worker startup before the extension or the database exists', () => {
  it('waits for CREATE EXTENSION pg_durable (logged once), then runs work', async () => {
    const db = uniqueName('startup_noext');
    await createDatabase(db);
    const w = startWorker(url(db));
    try {
      await eventually(async () => messages(w, waitingForExtension(db)).length > 0, 15_000, 'the waiting line');
      await sleep(4000); // several probes later: still alive, still one line
      expect(alive(w)).toBe(true);
      expect(messages(w, waitingForExtension(db))).toHaveLength(1);
      expect(messages(w, 'worker started')).toHaveLength(0);

      await withPg(db, (c) => c.query('CREATE EXTENSION pg_durable CASCADE'));
      expect(await runOne(db, 'after create extension')).toBe('completed');
      expect(messages(w, 'worker started')).toHaveLength(1);
      expect(messages(w, waitingForExtension(db))).toHaveLength(1);
      expect(alive(w)).toBe(true);
    } finally {
      expect(await w.stop()).toBe(0);
    }
  });

  it('waits for a database that does not exist yet, then for the extension, then runs work', async () => {
    const db = uniqueName('startup_nodb');
    const w = startWorker(url(db));
    try {
      await eventually(async () => messages(w, waitingForDatabase(db)).length > 0, 15_000, 'the waiting line');
      await sleep(4000);
      expect(alive(w)).toBe(true);
      expect(messages(w, waitingForDatabase(db))).toHaveLength(1);

      await createDatabase(db);
      await withPg(db, (c) => c.query('CREATE EXTENSION pg_durable CASCADE'));
      expect(await runOne(db, 'after create database')).toBe('completed');
      expect(messages(w, waitingForDatabase(db))).toHaveLength(1);
      expect(messages(w, waitingForExtension(db)).length).toBeLessThanOrEqual(1); // only if it probed between the two
      expect(messages(w, 'worker started')).toHaveLength(1);
      expect(alive(w)).toBe(true);
    } finally {
      expect(await w.stop()).toBe(0);
    }
  });

  for (const [what, missingDb] of [['the extension', false], ['the database', true]] as const) {
    it(`SIGTERM while waiting for ${what} exits 0 at once`, async () => {
      const db = uniqueName('startup_sigterm');
      if (!missingDb) await createDatabase(db);
      const w = startWorker(url(db));
      const line = missingDb ? waitingForDatabase(db) : waitingForExtension(db);
      await eventually(async () => messages(w, line).length > 0, 15_000, 'the waiting line');
      const t0 = Date.now();
      expect(await w.stop()).toBe(0);
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(messages(w, 'worker stopped')).toHaveLength(1);
    });
  }
});

describe('DROP EXTENSION / CREATE EXTENSION under a running worker', () => {
  it('goes back to waiting, drops in-memory instances, resumes with a new epoch and LISTEN', async () => {
    const db = await freshDatabase('startup_recreate');
    const w = startWorker(url(db));
    try {
      expect(await runOne(db, 'before drop')).toBe('completed');
      const firstEpoch = messages(w, 'worker started')[0]?.epoch;
      expect(firstEpoch).toBeTruthy();

      // One instance in memory, waiting on a durable timer, and one with a step in flight.
      const tenant = await createTenant(db, 'startup');
      await asRole(db, tenant, async (c) => {
        await c.query("SELECT df.start(df.sleep(600) ~> 'SELECT 1')");
        await c.query("SELECT df.start('SELECT pg_sleep(600)')");
      });
      await eventually(
        async () => (await withPg(db, (c) => scalar<number>(c, "SELECT count(*)::int FROM df.instances WHERE status = 'running'"))) === 2,
        15_000,
        'both instances running',
      );
      await eventually(
        async () => (await withPg('postgres', (c) => scalar<number>(c, "SELECT count(*)::int FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'SELECT pg_sleep(600)%' AND state = 'active'", [db]))) === 1,
        15_000,
        'the step in flight',
      );

      await withPg(db, (c) => c.query('DROP EXTENSION pg_durable CASCADE'));
      await eventually(async () => messages(w, waitingForExtension(db)).length > 0, 15_000, 'the waiting line after DROP EXTENSION');
      const waiting = messages(w, waitingForExtension(db));
      expect(waiting).toHaveLength(1);
      expect(waiting[0].dropped).toBe(2);
      // The in-flight step was cancelled, not left running on the server.
      await eventually(
        async () => (await withPg('postgres', (c) => scalar<number>(c, "SELECT count(*)::int FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'SELECT pg_sleep(600)%' AND state = 'active'", [db]))) === 0,
        15_000,
        'the in-flight step to be cancelled',
      );
      await sleep(3000);
      expect(alive(w)).toBe(true);
      expect(messages(w, waitingForExtension(db))).toHaveLength(1);
      expect((await workerConnections(db))['pg_durable:worker:poll'] ?? 0).toBe(0); // LISTEN closed while waiting

      await withPg(db, (c) => c.query('CREATE EXTENSION pg_durable CASCADE'));
      expect(await runOne(db, 'after re-create')).toBe('completed');
      const started = messages(w, 'worker started');
      expect(started).toHaveLength(2);
      expect(started[1].epoch).not.toBe(firstEpoch);
      expect(await withPg(db, (c) => scalar<number>(c, 'SELECT count(*)::int FROM df._worker_epoch WHERE epoch_id = $1', [started[1].epoch]))).toBe(1);
      expect((await workerConnections(db))['pg_durable:worker:poll']).toBe(1); // one LISTEN connection, none leaked

      // Dropped and created again in one go: nothing fails long enough to notice a gap, but the
      // extension is a new one (new oid), so the worker starts over.
      await withPg(db, (c) => c.query('DROP EXTENSION pg_durable CASCADE; CREATE EXTENSION pg_durable CASCADE'));
      await eventually(async () => messages(w, 'worker started').length === 3, 15_000, 'a third session');
      expect(await runOne(db, 'after quick re-create')).toBe('completed');
      expect(alive(w)).toBe(true);
      expect(w.logs.filter((l) => l.level === 50 || l.level === 60)).toEqual([]); // no error/fatal lines
      await sleep(1500);
      const conns = await workerConnections(db);
      expect(conns['pg_durable:worker:poll']).toBe(1);
      expect(conns['pg_durable:worker:probe'] ?? 0).toBe(0);
    } finally {
      expect(await w.stop()).toBe(0);
    }
  });
});
