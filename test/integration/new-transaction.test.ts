/**
 * df.start(..., transaction_mode => 'new') (API §6.1): the start commits in a loopback session
 * opened with dblink as the calling role (current_user, as the original), so the instance survives
 * the caller's ROLLBACK. Admission control, the loopback's authentication and who it connects as
 * are pinned here; docs/SECURITY.md has the threat model.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asRole, createTenant, errorOf, freshDatabase, scalar, url, withPg, withTransaction } from '../support/db';
import { eventually, startWorker, waitFor, type WorkerHandle } from '../support/worker';

let db: string;
let alice: string;
let bob: string;
let carol: string;
let admin: pg.Client;
let worker: WorkerHandle;
const NEW = (expr = "'SELECT 1'", label = 'NULL') => `SELECT df.start(${expr}, ${label}, NULL, 'new')`;

beforeAll(async () => {
  db = await freshDatabase('newtx');
  await withPg(db, (c) => c.query('CREATE EXTENSION dblink'));
  alice = await createTenant(db, 'alice');
  bob = await createTenant(db, 'bob');
  carol = await createTenant(db, 'carol');
  admin = new pg.Client({ connectionString: url(db) });
  await admin.connect();
  await admin.query(`GRANT ${pg.escapeIdentifier(bob)} TO ${pg.escapeIdentifier(alice)}`);
  worker = startWorker(url(db));
});

afterAll(async () => {
  await worker?.stop();
  await admin?.end();
});

const ownerOf = (id: string) => scalar<string>(admin, 'SELECT submitted_by::text FROM df.instances WHERE id = $1', [id]);

describe("transaction_mode => 'new'", () => {
  it("survives the caller's ROLLBACK, runs as the caller and completes", async () => {
    const id = await asRole(db, alice, (c) => withTransaction(c, () => scalar<string>(c, NEW("'SELECT 42 AS answer'", "'independent'")), { rollback: true }));
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    expect(await ownerOf(id)).toBe(alice);
    expect(await waitFor(admin, id)).toBe('completed');
    expect(await asRole(db, alice, (c) => scalar(c, 'SELECT df.result($1)', [id]))).toBe('{"rows": [{"answer": 42}], "row_count": 1}');
  });

  it('a caller-mode start in the same rolled-back transaction leaves nothing', async () => {
    const [indep, caller] = await asRole(db, alice, (c) =>
      withTransaction(c, async () => [await scalar<string>(c, NEW()), await scalar<string>(c, "SELECT df.start('SELECT 1')")], { rollback: true }),
    );
    expect(await scalar(admin, 'SELECT count(*)::int FROM df.instances WHERE id = ANY($1)', [[indep, caller]])).toBe(1);
    expect(await ownerOf(indep)).toBe(alice);
  });

  it('identity is current_user: the role after SET ROLE', async () => {
    const id = await asRole(db, alice, async (c) => {
      await c.query(`SET ROLE ${pg.escapeIdentifier(bob)}`);
      return scalar<string>(c, NEW());
    });
    expect(await ownerOf(id)).toBe(bob);
  });

  it("identity is current_user: a SECURITY DEFINER function's owner, not the session's user", async () => {
    await asRole(db, carol, async (c) => {
      await c.query(`CREATE FUNCTION public.carol_starts() RETURNS text LANGUAGE sql SECURITY DEFINER AS $$ ${NEW()} $$`);
      await c.query(`GRANT EXECUTE ON FUNCTION public.carol_starts() TO ${pg.escapeIdentifier(alice)}`);
    });
    const id = await asRole(db, alice, (c) => scalar<string>(c, 'SELECT public.carol_starts()'));
    expect(await ownerOf(id)).toBe(carol);
  });

  it('only committed variables are captured (the loopback session cannot see the caller\'s uncommitted ones)', async () => {
    await asRole(db, alice, (c) => c.query("SELECT df.setvar('committed_v', 'yes')"));
    // Unknown {names} stay as written, so the step echoes which variables the start captured.
    const echo = await asRole(db, alice, (c) =>
      withTransaction(c, async () => {
        await c.query("SELECT df.setvar('uncommitted_v', 'no')");
        return scalar<string>(c, NEW(`'SELECT ''{committed_v}'' AS c, ''{uncommitted_v}'' AS u'`));
      }, { rollback: true }),
    );
    expect(await waitFor(admin, echo)).toBe('completed');
    expect(await asRole(db, alice, (c) => scalar(c, 'SELECT df.result($1)', [echo]))).toBe('{"rows": [{"c": "yes", "u": "{uncommitted_v}"}], "row_count": 1}');
  });

  it('is refused inside a workflow step, with the original message', async () => {
    const err = await asRole(db, alice, async (c) => {
      await c.query("SET df.in_workflow = 'true'");
      return errorOf(c, NEW());
    });
    expect(err.message).toBe(
      "df.start() with transaction_mode => 'new' cannot be called inside a workflow - a df.sql() node already runs as a single autocommitted statement, so a plain df.start() there is already independent of any caller transaction",
    );
  });
});

describe('admission control', () => {
  afterAll(async () => {
    await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} RESET pg_durable.max_new_transaction_starts`);
    await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} RESET pg_durable.new_transaction_start_timeout`);
  });

  it('the (n+1)th concurrent launch waits for a slot, then fails with the original text; nothing is created', async () => {
    await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} SET pg_durable.max_new_transaction_starts = 1`);
    await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} SET pg_durable.new_transaction_start_timeout = 1`);
    // A first launch holds the only slot while its loopback df.start waits on a lock we hold.
    const locker = new pg.Client({ connectionString: url(db) });
    await locker.connect();
    let first: Promise<string>;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE df.instances IN ACCESS EXCLUSIVE MODE');
      first = asRole(db, alice, (c) => scalar<string>(c, NEW("'SELECT 1'", "'first'")));
      first.catch(() => undefined); // awaited below; if this test fails first, not an unhandled rejection
      // Its loopback session is open (and waits on our lock): the slot is taken.
      await eventually(async () => (await scalar<number>(admin,
        "SELECT count(*)::int FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", ['pg_durable:backend:new-transaction'])) === 1,
      15_000, 'the first launch to wait in its loopback session');
      const t0 = performance.now();
      const err = await asRole(db, bob, (c) => errorOf(c, NEW("'SELECT 1'", "'second'")));
      const waited = performance.now() - t0;
      expect(err.message).toBe(
        "pg_durable: transaction_mode => 'new' launch limit reached (max_new_transaction_starts=1). Timed out after 1s waiting for a launch slot before opening the loopback session.",
      );
      expect(waited).toBeGreaterThanOrEqual(900);
    } finally {
      // Released whatever happened above: a lock left on df.instances would stall every later test.
      await locker.query('COMMIT').catch(() => undefined);
      await locker.end();
    }
    const id = await first;
    expect(await ownerOf(id)).toBe(alice);
    expect(await scalar(admin, "SELECT count(*)::int FROM df.instances WHERE label = 'second'")).toBe(0);
    // The slot is free again.
    expect(await ownerOf(await asRole(db, bob, (c) => scalar<string>(c, NEW())))).toBe(bob);
  });
});

describe('nobody opens a session as anyone else', () => {
  it('a launch ticket is stamped with the inserting role, whatever the row says', async () => {
    const err = await asRole(db, alice, (c) => errorOf(c, `INSERT INTO df._launch_tickets (nonce, role) VALUES (gen_random_uuid(), '${bob}')`));
    expect(err.message).toContain('permission denied');
    // Calling the internal function directly, with a ticket of one's own: still oneself.
    const id = await asRole(db, alice, (c) =>
      withTransaction(c, async () => {
        const nonce = await scalar<string>(c, 'SELECT gen_random_uuid()');
        await c.query('INSERT INTO df._launch_tickets (nonce) VALUES ($1)', [nonce]);
        return scalar<string>(c, "SELECT df._start_new($1, 'SELECT 1', NULL, NULL)", [nonce]);
      }),
    );
    expect(await ownerOf(id)).toBe(alice);
  });

  it('tickets cannot be read, forged or reused from another transaction', async () => {
    await asRole(db, alice, async (c) => {
      expect((await errorOf(c, 'SELECT * FROM df._launch_tickets')).message).toContain('permission denied');
      const forged = await errorOf(c, "SELECT df._start_new(gen_random_uuid(), 'SELECT 1', NULL, NULL)");
      expect(forged.code).toBe('42501');
      expect(forged.message).toContain('no launch ticket');
      const nonce = await scalar<string>(c, 'SELECT gen_random_uuid()');
      await c.query('INSERT INTO df._launch_tickets (nonce) VALUES ($1)', [nonce]); // autocommitted
      expect((await errorOf(c, "SELECT df._start_new($1, 'SELECT 1', NULL, NULL)", [nonce])).message).toContain('no launch ticket');
    });
    await admin.query('DELETE FROM df._launch_tickets');
  });

  it('a role without df usage cannot call the launcher', async () => {
    await admin.query('CREATE ROLE newtx_outsider LOGIN').catch(() => undefined);
    await admin.query('GRANT USAGE ON SCHEMA df TO newtx_outsider');
    const err = await asRole(db, 'newtx_outsider', (c) => errorOf(c, "SELECT df._start_new(gen_random_uuid(), 'SELECT 1', NULL, NULL)"));
    expect(err.message).toContain('permission denied for function _start_new');
    await admin.query('REVOKE USAGE ON SCHEMA df FROM newtx_outsider');
  });

  it("a tenant's own connection string does not count; an administrator's is used, and a failing one says what to configure", async () => {
    await asRole(db, alice, async (c) => {
      await c.query("SET pg_durable.new_transaction_connstr = 'host=/nonexistent'");
      expect(await ownerOf(await scalar<string>(c, NEW()))).toBe(alice);
    });
    await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} SET pg_durable.new_transaction_connstr = 'host=/nonexistent port=1'`);
    try {
      const err = await asRole(db, alice, (c) =>
        c.query(NEW()).then(
          () => null,
          (e) => e as { message: string; code: string; hint?: string },
        ),
      );
      expect(err?.code).toBe('08001');
      expect(err?.message).toMatch(/^df\.start\(\.\.\., transaction_mode => 'new'\): could not open the loopback session as role "alice_[0-9a-f]{4}": /);
      expect(err?.hint).toContain('pg_hba.conf');
      expect(err?.hint).toContain('pg_durable.new_transaction_connstr');
    } finally {
      await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} RESET pg_durable.new_transaction_connstr`);
    }
  });

  it('odd role names connect as themselves', async () => {
    const odd = `new"tx 'odd\\ role_${Math.floor(Math.random() * 1e4)}`;
    await admin.query(`CREATE ROLE ${pg.escapeIdentifier(odd)} LOGIN`);
    await admin.query('SELECT df.grant_usage($1)', [odd]);
    const id = await asRole(db, odd, (c) => scalar<string>(c, NEW()));
    expect(await scalar(admin, 'SELECT submitted_by = quote_ident($2)::regrole FROM df.instances WHERE id = $1', [id, odd])).toBe(true);
  });
});

describe('without dblink', () => {
  it('fails with what to install, and CREATE EXTENSION pg_durable did not need it', async () => {
    const other = await freshDatabase('newtx_nodblink');
    const t = await createTenant(other, 'dave');
    const err = await asRole(other, t, (c) =>
      c.query(NEW()).then(
        () => null,
        (e) => e as { message: string; code: string; hint?: string },
      ),
    );
    expect(err?.message).toBe(`df.start(..., transaction_mode => 'new') needs the dblink extension in database "${other}"`);
    expect(err?.hint).toContain('CREATE EXTENSION dblink');
  });
});
