/**
 * Starts and signals take effect at COMMIT (API deviation 14). Waiting on an instance inside the
 * transaction that started or signalled it can only run out the timeout, so df.await_instance
 * refuses at once and says to commit first. No worker runs here.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { asRole, createTenant, errorOf, freshDatabase, scalar, withTransaction } from '../support/db';

let db: string;
let alice: string;
beforeAll(async () => {
  db = await freshDatabase('await_tx');
  alice = await createTenant(db, 'alice');
});

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t };
}

describe('df.await_instance on this transaction\'s own uncommitted work', () => {
  it('awaiting a start in the same statement fails at once, naming COMMIT', async () => {
    const { value: err, ms } = await timed(() => asRole(db, alice, (c) => errorOf(c, "SELECT df.await_instance(df.start('SELECT 1'), 30)")));
    expect(ms).toBeLessThan(1000);
    expect(err.code).toBe('25001');
    expect(err.message).toMatch(/^df\.await_instance: instance [0-9a-f]{8} was started in this transaction, which has not committed yet: .*COMMIT first, then call df\.await_instance\('[0-9a-f]{8}'\)\.$/);
  });

  it('a DO block that starts and then awaits fails at once', async () => {
    const { value: err, ms } = await timed(() =>
      asRole(db, alice, (c) => errorOf(c, "DO $$ DECLARE id text; BEGIN id := df.start('SELECT 1'); PERFORM df.await_instance(id, 30); END $$")),
    );
    expect(ms).toBeLessThan(1000);
    expect(err.message).toContain('was started in this transaction');
  });

  it('also across statements and savepoints of one transaction', async () => {
    await asRole(db, alice, async (c) => {
      await withTransaction(c, async () => {
        await c.query('SAVEPOINT a');
        const id = await scalar<string>(c, "SELECT df.start('SELECT 1')");
        await c.query('RELEASE SAVEPOINT a');
        const err = await errorOf(c, 'SELECT df.await_instance($1, 30)', [id]);
        expect(err.message).toContain('was started in this transaction');
      }, { rollback: true });
    });
  });

  it('a signal sent in this transaction makes the wait fail at once too', async () => {
    const id = await asRole(db, alice, (c) => scalar<string>(c, "SELECT df.start(df.wait_for_signal('go'))"));
    await asRole(db, alice, async (c) => {
      await withTransaction(c, async () => {
        await c.query("SELECT df.signal($1, 'go', '{}')", [id]);
        const { value: err, ms } = await timed(() => errorOf(c, 'SELECT df.await_instance($1, 30)', [id]));
        expect(ms).toBeLessThan(1000);
        expect(err.message).toBe(
          `df.await_instance: instance ${id} was signalled in this transaction, which has not committed yet: the worker sees starts, signals and cancels only after COMMIT, so waiting here can only time out. COMMIT first, then call df.await_instance('${id}').`,
        );
      }, { rollback: true });
    });
  });

  it('committed work is waited for as before (here: no worker, so the timeout)', async () => {
    const id = await asRole(db, alice, (c) => scalar<string>(c, "SELECT df.start('SELECT 1')"));
    const err = await asRole(db, alice, (c) => errorOf(c, 'SELECT df.await_instance($1, 1)', [id]));
    expect(err.message).toBe(`Timeout after 1s waiting for instance ${id} (status: pending). Check if background worker is running.`);
  });

  it('an instance cancelled in this transaction reads as cancelled at once', async () => {
    const id = await asRole(db, alice, (c) => scalar<string>(c, "SELECT df.start('SELECT 1')"));
    await asRole(db, alice, async (c) => {
      await withTransaction(c, async () => {
        await c.query('SELECT df.cancel($1)', [id]);
        expect(await scalar(c, 'SELECT df.await_instance($1, 30)', [id])).toBe('cancelled');
      }, { rollback: true });
    });
  });
});
