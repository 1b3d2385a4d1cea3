/**
 * Sagas end to end (df.with_undo / `forward <~ undo`): when an instance fails, the undos of the
 * forwards that completed run, most recent first, each once, as the submitting role; every
 * decided case of docs/ARCHITECTURE.md "Sagas" is pinned here. A ledger table records every
 * effect in commit order, so order and exactly-once are read off it.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, freshDatabase, scalar, url, withPg } from '../support/db';
import { type Flow, lit, setupFlow } from '../support/flows';
import { eventually, startWorker, waitFor } from '../support/worker';

let f: Flow;

beforeAll(async () => {
  f = await setupFlow('saga');
  await f.user.query(`
    CREATE TABLE ledger (seq bigserial PRIMARY KEY, inst text, what text);
    CREATE TABLE orders (id serial PRIMARY KEY, item text, cancelled boolean DEFAULT false);
    CREATE TABLE stock (item text PRIMARY KEY, n int);
    CREATE TABLE payments (id serial PRIMARY KEY, order_id int, refunded boolean DEFAULT false);
    INSERT INTO stock VALUES ('book', 10);
    CREATE FUNCTION book_courier(order_id int) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'no courier available for order %', order_id; END $$;
  `);
});

afterAll(async () => {
  await f?.stop();
});

/** A step that records `what` in the ledger (and returns it). */
const mark = (what: string) => lit(`INSERT INTO ledger (inst, what) VALUES ('{sys_instance_id}', '${what}') RETURNING what`);
const ledger = async (id: string) => (await f.user.query<{ what: string }>('SELECT what FROM ledger WHERE inst = $1 ORDER BY seq', [id])).rows.map((r) => r.what);

const README_EXAMPLE = [
  `df.with_undo(${lit("INSERT INTO orders (item) VALUES ('book') RETURNING id")} |=> 'order', ${lit('UPDATE orders SET cancelled = true WHERE id = $order.id')})`,
  `df.with_undo(${lit("UPDATE stock SET n = n - 1 WHERE item = 'book' RETURNING n")}, ${lit("UPDATE stock SET n = n + 1 WHERE item = 'book'")})`,
  `df.with_undo(${lit('INSERT INTO payments (order_id) VALUES ($order.id) RETURNING id')} |=> 'payment', ${lit('UPDATE payments SET refunded = true WHERE id = $payment.id')})`,
  lit('SELECT book_courier($order.id)'),
].join(' ~> ');

describe('the README example: order, stock, payment, courier', () => {
  it('the courier fails: payment, stock and order are undone in reverse, and the result says so', async () => {
    const { id, status } = await f.run(README_EXAMPLE);
    expect(status).toBe('failed');
    const order = await scalar<number>(f.user, 'SELECT max(id) FROM orders');
    expect(await scalar(f.user, 'SELECT cancelled FROM orders WHERE id = $1', [order])).toBe(true);
    expect(await scalar(f.user, "SELECT n FROM stock WHERE item = 'book'")).toBe(10);
    expect(await scalar(f.user, 'SELECT refunded FROM payments WHERE order_id = $1', [order])).toBe(true);
    const report = JSON.parse((await f.result(id)) as string);
    expect(report.error).toContain(`no courier available for order ${order}`);
    expect(report).toMatchObject({ compensated: 3, compensation_failed: 0 });
    // One query at a time on the test's client (pg 9 refuses a query while one is running).
    const undone = [];
    for (const q of ['UPDATE payments SET refunded = true WHERE id = $payment.id', "UPDATE stock SET n = n + 1 WHERE item = 'book'", 'UPDATE orders SET cancelled = true WHERE id = $order.id']) {
      undone.push(await f.nodeByQuery(id, q));
    }
    expect(report.compensation.map((e: { undo: string }) => e.undo)).toEqual(undone.map((n) => n.id));
    for (const n of undone) expect(n.status).toBe('completed');
    const info = await scalar<string>(f.user, 'SELECT output FROM df.instance_info($1)', [id]);
    expect(JSON.parse(info)).toMatchObject({ compensated: 3 });
  });

  it('a workflow that completes runs no undo', async () => {
    const { id, status } = await f.run(`df.with_undo(${mark('do a')}, ${mark('undo a')}) ~> ${mark('then b')}`);
    expect(status).toBe('completed');
    expect(await ledger(id)).toEqual(['do a', 'then b']);
    expect(await f.nodeByQuery(id, "INSERT INTO ledger (inst, what) VALUES ('{sys_instance_id}', 'undo a') RETURNING what")).toMatchObject({ status: 'pending' });
  });

  it('the operator form reads the same: forward <~ undo', async () => {
    const { id, status } = await f.run(`(${mark('do a')} <~ ${mark('undo a')}) ~> (${mark('do b')} <~ ${mark('undo b')}) ~> ${lit('SELECT 1/0')}`);
    expect(status).toBe('failed');
    expect(await ledger(id)).toEqual(['do a', 'do b', 'undo b', 'undo a']);
  });
});

describe('decided cases', () => {
  it('an undo that fails does not stop the others; the report names it', async () => {
    const { id, status } = await f.run(`(${mark('do a')} <~ ${mark('undo a')}) ~> (${mark('do b')} <~ ${lit('SELECT 1/0')}) ~> (${mark('do c')} <~ ${mark('undo c')}) ~> ${lit('SELECT 1/0')}`);
    expect(status).toBe('failed');
    expect(await ledger(id)).toEqual(['do a', 'do b', 'do c', 'undo c', 'undo a']);
    const report = JSON.parse((await f.result(id)) as string);
    expect(report).toMatchObject({ compensated: 2, compensation_failed: 1 });
    expect(report.compensation[1]).toMatchObject({ status: 'failed', error: 'SQL execution failed: division by zero' });
  });

  it('df.retry around an undo retries the undo', async () => {
    // A sequence counts the attempts: a failing statement's other effects roll back with it.
    await f.user.query('CREATE SEQUENCE flaky');
    const flakyUndo = lit("SELECT 1 / CASE WHEN nextval('flaky') < 3 THEN 0 ELSE 1 END AS n");
    const { id, status } = await f.run(`df.with_undo(${mark('do a')}, df.retry(${flakyUndo} ~> ${mark('undo a')}, 5, 0.1)) ~> ${lit('SELECT 1/0')}`);
    expect(status).toBe('failed');
    expect(await ledger(id)).toEqual(['do a', 'undo a']);
    expect(await scalar(f.user, "SELECT last_value FROM flaky")).toBe('3');
  });

  it('a failed RETRY attempt is undone before the next attempt; the succeeding attempt is kept', async () => {
    await f.user.query('CREATE SEQUENCE attempts');
    const thirdTimeLucky = lit("SELECT 1 / CASE WHEN nextval('attempts') < 3 THEN 0 ELSE 1 END AS n");
    const { id, status } = await f.run(`df.retry((${mark('reserve')} <~ ${mark('release')}) ~> ${thirdTimeLucky}, 5, 0.1)`);
    expect(status).toBe('completed');
    expect(await ledger(id)).toEqual(['reserve', 'release', 'reserve', 'release', 'reserve']);
  });

  it('completed branches of a failed JOIN are undone', async () => {
    const { id, status } = await f.run(`(${lit('SELECT pg_sleep(0.3)')} ~> (${mark('left done')} <~ ${mark('left undone')})) & (${mark('right done')} <~ ${mark('right undone')}) & ${lit('SELECT 1/0')}`);
    expect(status).toBe('failed');
    const l = await ledger(id);
    expect(l.slice(0, 2).sort()).toEqual(['left done', 'right done']);
    expect(l.slice(2).sort()).toEqual(['left undone', 'right undone']);
    // most recent first: the later registration (the slow left branch) is undone first
    expect(l.slice(2)).toEqual(['left undone', 'right undone']);
  });

  it('the loser of a RACE that completed a forward before the race was decided is undone at once', async () => {
    const loser = `(${mark('loser did')} <~ ${mark('loser undone')}) ~> ${lit('SELECT pg_sleep(5)')}`;
    const winner = `${lit('SELECT pg_sleep(0.5)')} ~> ${mark('winner')}`;
    const { id, status } = await f.run(`df.race(${loser}, ${winner}) ~> ${mark('after race')}`);
    expect(status).toBe('completed');
    expect(await ledger(id)).toEqual(['loser did', 'winner', 'loser undone', 'after race']);
  });

  it('undos registered in LOOP iterations all run, the latest iteration first', async () => {
    const body = `(${lit("INSERT INTO ledger (inst, what) VALUES ('{sys_instance_id}', 'iteration') RETURNING (SELECT count(*) FROM ledger WHERE inst = '{sys_instance_id}') AS k")} |=> 'it') <~ ${lit("INSERT INTO ledger (inst, what) VALUES ('{sys_instance_id}', 'undo ' || $it.k) RETURNING 1")}`;
    const { id, status } = await f.run(`df.loop(${body}, ${lit("SELECT count(*) < 3 FROM ledger WHERE inst = '{sys_instance_id}'")}) ~> ${lit('SELECT 1/0')}`);
    expect(status).toBe('failed');
    // k counts the iterations before this one: 0, 1, 2.
    expect(await ledger(id)).toEqual(['iteration', 'iteration', 'iteration', 'undo 2', 'undo 1', 'undo 0']);
  }, 20_000);

  it('nested with_undo: the outer undo (registered last) runs first, then the inner', async () => {
    const inner = `(${mark('inner')} <~ ${mark('undo inner')}) ~> ${mark('more')}`;
    const { id, status } = await f.run(`df.with_undo(${inner}, ${mark('undo outer')}) ~> ${lit('SELECT 1/0')}`);
    expect(status).toBe('failed');
    expect(await ledger(id)).toEqual(['inner', 'more', 'undo outer', 'undo inner']);
  });

  it('a forward that fails registers nothing; its own effects were rolled back with it', async () => {
    const { id, status } = await f.run(`(${mark('ok')} <~ ${mark('undo ok')}) ~> (${lit('SELECT 1/0')} <~ ${mark('never')})`);
    expect(status).toBe('failed');
    expect(await ledger(id)).toEqual(['ok', 'undo ok']);
  });
});

describe('df.cancel(..., compensate => true)', () => {
  it('a waiting instance is cancelled after its completed forwards are undone, most recent first', async () => {
    const id = await f.start(`(${mark('do a')} <~ ${mark('undo a')}) ~> (${mark('do b')} <~ ${mark('undo b')}) ~> df.sleep(60) ~> ${mark('never')}`);
    await eventually(async () => (await ledger(id)).length === 2, 10_000, 'both forwards');
    await eventually(async () => (await scalar(f.user, "SELECT count(*)::int FROM df.nodes WHERE instance_id = $1 AND node_type = 'SLEEP' AND status = 'running'", [id])) === 1, 10_000, 'the sleep');
    expect(await scalar(f.user, "SELECT df.cancel($1, 'customer changed their mind', compensate => true)", [id])).toBe(
      `Instance ${id} cancelling: undoing its completed steps first (compensate => true): customer changed their mind`,
    );
    expect(await f.wait(id)).toBe('cancelled');
    expect(await ledger(id)).toEqual(['do a', 'do b', 'undo b', 'undo a']);
    const report = JSON.parse((await f.result(id)) as string);
    expect(report).toMatchObject({ error: 'Cancelled: customer changed their mind', compensated: 2, compensation_failed: 0 });
  });

  it("another instance's compensating cancel does not stop a compensation in progress (the wake-up names no instance)", async () => {
    const db = await freshDatabase('saga_wake');
    const role = await createTenant(db, 'saga_wake');
    const u = new pg.Client({ connectionString: url(db, role) });
    await u.connect();
    const rows = async (id: string) => (await u.query<{ what: string }>('SELECT what FROM ledger WHERE inst = $1 ORDER BY seq', [id])).rows.map((r) => r.what);
    const sleeping = async (id: string) =>
      (await scalar<number>(u, "SELECT count(*)::int FROM df.nodes WHERE instance_id = $1 AND node_type = 'SLEEP' AND status = 'running'", [id])) === 1;
    try {
      await u.query('CREATE TABLE ledger (seq bigserial PRIMARY KEY, inst text, what text)');
      const slowUndo = lit("WITH ins AS (INSERT INTO ledger (inst, what) VALUES ('{sys_instance_id}', 'undo a') RETURNING what) SELECT what, pg_sleep(2) FROM ins");
      const a = await scalar<string>(u, `SELECT df.start((${mark('do a')} <~ ${slowUndo}) ~> df.sleep(60))`);
      const b = await scalar<string>(u, `SELECT df.start((${mark('do b')} <~ ${mark('undo b')}) ~> df.sleep(60))`);
      const first = startWorker(url(db));
      await eventually(async () => (await sleeping(a)) && (await sleeping(b)), 15_000, 'both to sleep');
      await first.stop();
      // No worker runs: the next one claims `a` with its request and compensates from the start.
      await u.query("SELECT df.cancel($1, 'a goes', compensate => true)", [a]);
      const second = startWorker(url(db), { leaseSeconds: 30 });
      try {
        await eventually(
          async () => (await withPg(db, (c) => scalar<number>(c, "SELECT count(*)::int FROM pg_stat_activity WHERE query LIKE 'WITH ins AS%' AND state = 'active'"))) === 1,
          15_000,
          "a's slow undo to be running",
        );
        await eventually(() => sleeping(b), 10_000, 'b to sleep again');
        await u.query("SELECT df.cancel($1, 'b goes', compensate => true)", [b]);
        // Stopped by b's wake-up, a's run would keep its lease until it expires (30 s).
        expect(await waitFor(u, a, 10_000)).toBe('cancelled');
        expect(await waitFor(u, b, 10_000)).toBe('cancelled');
        expect(await rows(a)).toEqual(['do a', 'undo a']);
        expect(await rows(b)).toEqual(['do b', 'undo b']);
      } finally {
        await second.stop();
      }
    } finally {
      await u.end();
    }
  }, 60_000);

  it('a plain df.cancel undoes nothing', async () => {
    const id = await f.start(`(${mark('do a')} <~ ${mark('undo a')}) ~> df.sleep(60)`);
    await eventually(async () => (await ledger(id)).length === 1, 10_000, 'the forward');
    await f.user.query('SELECT df.cancel($1)', [id]);
    expect(await f.wait(id)).toBe('cancelled');
    await new Promise((r) => setTimeout(r, 500));
    expect(await ledger(id)).toEqual(['do a']);
  });

  it('an ended instance cannot be cancelled', async () => {
    const { id } = await f.run(mark('done'));
    const err = await f.user.query("SELECT df.cancel($1, 'late', true)", [id]).then(() => null, (e) => e as Error);
    expect(err?.message).toBe(`Instance ${id} is already completed`);
  });
});

describe('the operator <~ with other extensions installed', () => {
  it("resolves to df.with_undo even with pg_trgm, cube, hstore, ltree and intarray, and leaves pg_trgm's <-> alone", async () => {
    const db = await freshDatabase('saga_ops');
    await withPg(db, async (c) => {
      for (const ext of ['pg_trgm', 'cube', 'hstore', 'ltree', 'intarray']) await c.query(`CREATE EXTENSION ${ext}`);
      const node = JSON.parse(await scalar<string>(c, "SELECT ('SELECT 1' <~ 'SELECT 2')::text"));
      expect(node).toMatchObject({ node_type: 'UNDO', left_node: { node_type: 'SQL', query: 'SELECT 1' }, right_node: { node_type: 'SQL', query: 'SELECT 2' } });
      expect(typeof (await scalar(c, "SELECT 'abc' <-> 'abd'"))).toBe('number'); // pg_trgm's distance
      expect(await scalar(c, "SELECT pg_typeof('a' <~ 'b')::text")).toBe('df.node');
    });
  });
});

describe('crashes during compensation', () => {
  it('a worker SIGKILLed in the middle of an undo: the next one finishes compensation, every undo exactly once', async () => {
    const db = await freshDatabase('saga_crash');
    const role = await createTenant(db, 'saga_crash');
    const u = new pg.Client({ connectionString: url(db, role) });
    await u.connect();
    try {
      await u.query('CREATE TABLE ledger (seq bigserial PRIMARY KEY, inst text, what text)');
      const slowUndo = lit("WITH ins AS (INSERT INTO ledger (inst, what) VALUES ('{sys_instance_id}', 'undo a') RETURNING what) SELECT what, pg_sleep(2) FROM ins");
      const id = await scalar<string>(u, `SELECT df.start((${mark('do a')} <~ ${slowUndo}) ~> (${mark('do b')} <~ ${mark('undo b')}) ~> ${lit('SELECT 1/0')})`);
      const a = startWorker(url(db), { leaseSeconds: 3 });
      const rows = async () => (await u.query<{ what: string }>('SELECT what FROM ledger WHERE inst = $1 ORDER BY seq', [id])).rows.map((r) => r.what);
      await eventually(async () => (await rows()).includes('undo b'), 15_000, 'the first undo');
      await eventually(
        async () => (await withPg(db, (c) => scalar<number>(c, "SELECT count(*)::int FROM pg_stat_activity WHERE query LIKE 'WITH ins AS%' AND state = 'active'"))) === 1,
        10_000,
        'the slow undo to be running',
      );
      await a.kill();
      const b = startWorker(url(db), { leaseSeconds: 3 });
      try {
        expect(await waitFor(u, id, 30_000)).toBe('failed');
        expect(await rows()).toEqual(['do a', 'do b', 'undo b', 'undo a']);
        expect(JSON.parse((await scalar<string>(u, 'SELECT df.result($1)', [id])) as string)).toMatchObject({ compensated: 2, compensation_failed: 0 });
      } finally {
        await b.stop();
      }
    } finally {
      await u.end();
    }
  }, 60_000);
});
