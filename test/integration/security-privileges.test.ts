/**
 * Privileges and row-level security (API §11, docs/SECURITY.md), without a worker: what CREATE
 * EXTENSION grants (nothing to PUBLIC), the exact grant set and notices of df.grant_usage and
 * df.revoke_usage, and what one tenant can and cannot do to the tables directly — to its own rows
 * (cancel only) and to another tenant's (nothing).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, errorOf, freshDatabase, scalar, url, withPg } from '../support/db';
import { connectAs, noticesDuring, privilegesOf, tableCounts } from '../support/security';

let db: string;
let alice: string;
let bob: string;
let admin: pg.Client;
let a: pg.Client;
let b: pg.Client;
/** alice's pending instance, with a buffered signal and a variable. */
let mine: string;

beforeAll(async () => {
  db = await freshDatabase('secpriv');
  alice = await createTenant(db, 'alice');
  bob = await createTenant(db, 'bob');
  admin = await connectAs(url(db));
  a = await connectAs(url(db, alice));
  b = await connectAs(url(db, bob));
  mine = await scalar<string>(a, "SELECT df.start(df.wait_for_signal('go') ~> 'SELECT 1', 'alices')");
  await a.query("SELECT df.signal($1, 'go', '{\"secret\": 1}')", [mine]);
  await a.query("SELECT df.setvar('token', 'alice-secret')");
});

afterAll(async () => {
  await Promise.all([admin, a, b].map((c) => c?.end()));
});

const q = (role: string) => pg.escapeIdentifier(role);

/** API §11.2, step 4 (and 1): the original's grant set. */
const CONTRACT_SET = [
  'schema df USAGE',
  'table df.instances SELECT',
  'column df.instances.status UPDATE',
  'column df.instances.updated_at UPDATE',
  'table df.nodes SELECT',
  ...['id', 'label', 'root_node', 'submitted_by', 'database'].map((c) => `column df.instances.${c} INSERT`),
  ...['id', 'instance_id', 'node_type', 'query', 'result_name', 'left_node', 'right_node', 'submitted_by', 'database'].map((c) => `column df.nodes.${c} INSERT`),
  ...['SELECT', 'INSERT', 'UPDATE', 'DELETE'].map((p) => `table df.vars ${p}`),
];
/**
 * Ours on top: monitoring reads the engine tables as the caller, df.signal writes the inbox, steps
 * checkpoint, independent starts take a launch ticket stamped with the caller's role.
 */
const OUR_EXTRAS = [
  'table df._executions SELECT',
  'table df._execution_log SELECT',
  'table df._node_runs SELECT',
  'table df._runs SELECT',
  'table df._signals SELECT',
  ...['instance_id', 'signal_name', 'payload'].map((c) => `column df._signals.${c} INSERT`),
  'function df._commit(text,uuid,jsonb,text,text) EXECUTE',
  'column df._launch_tickets.nonce INSERT',
  'function df._start_new(uuid,text,text,text) EXECUTE',
];
const HTTP = ['function df.http(text,text,text,jsonb,integer) EXECUTE', 'function df.http_multipart(text,text,jsonb,jsonb,integer) EXECUTE'];
const ADMIN = ['function df.grant_usage(text,boolean,boolean) EXECUTE', 'function df.revoke_usage(text) EXECUTE', 'function df.metrics() EXECUTE'];
const sorted = (xs: string[]) => [...xs].sort();
const grantable = (xs: string[]) => xs.map((x) => `${x} WITH GRANT OPTION`);

describe('CREATE EXTENSION grants nothing to PUBLIC', () => {
  it('an ungranted role has no privilege on the schema, any table or column, and no EXECUTE on the guarded functions', async () => {
    await admin.query('CREATE ROLE sec_nobody LOGIN');
    const rels = await admin.query(
      `SELECT c.oid::regclass::text AS rel,
              has_table_privilege('sec_nobody', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER') AS t,
              has_any_column_privilege('sec_nobody', c.oid, 'SELECT,INSERT,UPDATE,REFERENCES') AS col
         FROM pg_class c WHERE c.relnamespace = 'df'::regnamespace AND c.relkind IN ('r', 'S', 'v')`,
    );
    expect(rels.rows.length).toBeGreaterThanOrEqual(9);
    for (const r of rels.rows) expect({ rel: r.rel, t: r.t, col: r.col }).toEqual({ rel: r.rel, t: false, col: false });
    expect(await scalar(admin, "SELECT has_schema_privilege('sec_nobody', 'df', 'USAGE')")).toBe(false);
    const guarded = await admin.query(
      `SELECT p.oid::regprocedure::text AS f FROM pg_proc p
        WHERE p.pronamespace = 'df'::regnamespace AND NOT has_function_privilege('sec_nobody', p.oid, 'EXECUTE') ORDER BY 1`,
    );
    expect(guarded.rows.map((r) => r.f)).toEqual(
      sorted([
        'df._close_execution(text,integer,text,text,regrole)',
        'df._commit(text,uuid,jsonb,text,text)',
        'df._take_signal(text,uuid,text,text,text)',
        'df.grant_usage(text,boolean,boolean)',
        'df.http(text,text,text,jsonb,integer)',
        'df.http_multipart(text,text,jsonb,jsonb,integer)',
        'df.metrics()',
        'df.revoke_usage(text)',
        'df._start_new(uuid,text,text,text)',
      ]),
    );
    const publicEntries = await scalar<number>(
      admin,
      `SELECT count(*)::int FROM (
         SELECT nspacl AS acl FROM pg_namespace WHERE nspname = 'df'
         UNION ALL SELECT relacl FROM pg_class WHERE relnamespace = 'df'::regnamespace
         UNION ALL SELECT attacl FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid WHERE c.relnamespace = 'df'::regnamespace) o,
       aclexplode(o.acl) x WHERE x.grantee = 0`,
    );
    expect(publicEntries).toBe(0);
    const err = await withPg(db, (c) => errorOf(c, "SELECT df.sql('SELECT 1')"), 'sec_nobody');
    expect(err).toEqual({ message: 'permission denied for schema df', code: '42501' });
  });
});

describe('df.grant_usage / df.revoke_usage (API §11.2, §11.3)', () => {
  const variants: [string, string, string[]][] = [
    ['plain', 'SELECT df.grant_usage($1)', [...CONTRACT_SET, ...OUR_EXTRAS]],
    ['include_http', 'SELECT df.grant_usage($1, include_http => true)', [...CONTRACT_SET, ...OUR_EXTRAS, ...HTTP]],
    ['with_grant', 'SELECT df.grant_usage($1, false, true)', grantable([...CONTRACT_SET, ...OUR_EXTRAS, ...ADMIN])],
    ['include_http + with_grant', 'SELECT df.grant_usage($1, true, true)', grantable([...CONTRACT_SET, ...OUR_EXTRAS, ...HTTP, ...ADMIN])],
  ];
  for (const [name, call, expected] of variants) {
    it(`${name}: grants exactly the documented set with its NOTICE; revoke_usage takes all of it back`, async () => {
      const role = `sec_grant_${name.replace(/\W+/g, '_')}`;
      await admin.query(`CREATE ROLE ${role} LOGIN`);
      expect(await noticesDuring(admin, () => admin.query(call, [role]))).toEqual([`NOTICE: pg_durable: granted df usage privileges to "${role}"`]);
      expect(await privilegesOf(admin, role)).toEqual(sorted(expected));
      expect(await noticesDuring(admin, () => admin.query('SELECT df.revoke_usage($1)', [role]))).toEqual([
        `NOTICE: pg_durable: revoked df usage privileges granted by "postgres" from "${role}"`,
      ]);
      expect(await privilegesOf(admin, role)).toEqual([]);
    });
  }

  it('is additive and idempotent; odd role names are quoted', async () => {
    const role = 'sec "Odd" role';
    await admin.query(`CREATE ROLE ${q(role)} LOGIN`);
    await admin.query('SELECT df.grant_usage($1)', [role]);
    await admin.query('SELECT df.grant_usage($1)', [role]);
    expect(await privilegesOf(admin, role)).toEqual(sorted([...CONTRACT_SET, ...OUR_EXTRAS]));
    await admin.query('SELECT df.grant_usage($1, include_http => true)', [role]);
    expect(await privilegesOf(admin, role)).toEqual(sorted([...CONTRACT_SET, ...OUR_EXTRAS, ...HTTP]));
    await admin.query('SELECT df.revoke_usage($1)', [role]);
    expect(await privilegesOf(admin, role)).toEqual([]);
  });

  it("uses PostgreSQL's own errors for unknown roles and 'PUBLIC'; tenants cannot call either function", async () => {
    expect((await errorOf(admin, "SELECT df.grant_usage('sec_no_such_role')")).message).toBe('role "sec_no_such_role" does not exist');
    expect((await errorOf(admin, "SELECT df.grant_usage('PUBLIC')")).message).toBe('role "PUBLIC" does not exist');
    expect(await errorOf(a, 'SELECT df.grant_usage($1)', [bob])).toEqual({ message: 'permission denied for function grant_usage', code: '42501' });
    expect(await errorOf(a, 'SELECT df.revoke_usage($1)', [bob])).toEqual({ message: 'permission denied for function revoke_usage', code: '42501' });
    expect(await errorOf(a, 'SELECT * FROM df.metrics()')).toEqual({ message: 'permission denied for function metrics', code: '42501' });
  });

  it("a delegated admin (with_grant) grants the full set, df._commit included, and revokes only its own grants", async () => {
    await admin.query("CREATE ROLE sec_delegate LOGIN; CREATE ROLE sec_managed LOGIN; SELECT df.grant_usage('sec_delegate', true, true)");
    const d = await connectAs(url(db, 'sec_delegate'));
    try {
      expect(await noticesDuring(d, () => d.query("SELECT df.grant_usage('sec_managed', include_http => true)"))).toEqual([
        'NOTICE: pg_durable: granted df usage privileges to "sec_managed"',
      ]);
      expect(await privilegesOf(admin, 'sec_managed')).toEqual(sorted([...CONTRACT_SET, ...OUR_EXTRAS, ...HTTP]));
      // self-revoke of what the superuser granted is a harmless no-op (standard grantor rules, test 18)
      await d.query("SELECT df.revoke_usage('sec_delegate')");
      expect(await privilegesOf(admin, 'sec_delegate')).toHaveLength(CONTRACT_SET.length + OUR_EXTRAS.length + HTTP.length + ADMIN.length);
      expect(await noticesDuring(d, () => d.query("SELECT df.revoke_usage('sec_managed')"))).toEqual([
        'NOTICE: pg_durable: revoked df usage privileges granted by "sec_delegate" from "sec_managed"',
      ]);
      expect(await privilegesOf(admin, 'sec_managed')).toEqual([]);
    } finally {
      await d.end();
    }
  });
});

describe("another tenant's rows: invisible and untouchable", () => {
  it('bob reads none of alice\'s rows from any table', async () => {
    for (const [table, col] of [
      ['df.instances', 'id'], ['df.nodes', 'instance_id'], ['df._executions', 'instance_id'], ['df._execution_log', 'instance_id'],
      ['df._node_runs', 'instance_id'], ['df._runs', 'instance_id'], ['df._signals', 'instance_id'],
    ]) {
      // Her instance waits for a signal: no node run yet, and its running execution has no row.
      const hers = { 'df.nodes': 3, 'df._node_runs': 0, 'df._runs': 0, 'df._executions': 0 }[table] ?? 1;
      expect({ table, n: await scalar<number>(b, `SELECT count(*)::int FROM ${table} WHERE ${col} = $1`, [mine]) }).toEqual({ table, n: 0 });
      expect({ table, n: await scalar<number>(a, `SELECT count(*)::int FROM ${table} WHERE ${col} = $1`, [mine]) }).toEqual({ table, n: hers });
    }
    expect(await scalar<number>(b, 'SELECT count(*)::int FROM df.vars')).toBe(0);
    expect(await scalar<number>(a, 'SELECT count(*)::int FROM df.vars')).toBe(1);
  });

  it("bob LISTENing on the worker's channel hears what happened, never to which instance; one transaction's starts are one notification", async () => {
    const listener = await connectAs(url(db, bob));
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.payload ?? ''));
    await listener.query('LISTEN pg_durable');
    let ids: string[] = [];
    try {
      await a.query('BEGIN');
      ids = (await a.query("SELECT df.start('SELECT pg_sleep(60)') AS id FROM generate_series(1, 3)")).rows.map((r) => r.id as string);
      await a.query('COMMIT');
      await a.query("SELECT df.signal($1, 'go')", [ids[0]]);
      await a.query("SELECT df.cancel($1, 'changed my mind', compensate => true)", [ids[1]]);
      await a.query('SELECT df.cancel($1)', [ids[2]]);
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await listener.end();
    }
    expect(heard).toEqual(['start', 'signal', 'compensate', 'cancel']);
    expect(ids).toHaveLength(3);
    await admin.query("UPDATE df.instances SET status = 'cancelled' WHERE id = ANY($1) AND status <> 'cancelled'", [ids]);
  });

  it('no tenant can read or write the queue (df._work) or the heartbeats (df._worker_epoch)', async () => {
    for (const c of [a, b]) {
      expect((await errorOf(c, 'SELECT * FROM df._work')).message).toBe('permission denied for table _work');
      expect((await errorOf(c, "UPDATE df._work SET due_at = now() WHERE instance_id = 'x'")).message).toBe('permission denied for table _work');
      expect((await errorOf(c, 'DELETE FROM df._work')).message).toBe('permission denied for table _work');
      expect((await errorOf(c, 'SELECT * FROM df._worker_epoch')).message).toBe('permission denied for table _worker_epoch');
      expect((await errorOf(c, 'INSERT INTO df._worker_epoch (epoch_id) VALUES (gen_random_uuid())')).message).toBe('permission denied for table _worker_epoch');
    }
  });

  const L = pg.escapeLiteral;
  const denied: [string, () => [string, unknown[]], string][] = [
    ['insert a node into her instance (as himself)', () => [`INSERT INTO df.nodes (id, instance_id, node_type, query, submitted_by) VALUES ('0000beef', $1, 'SQL', 'SELECT 1', ${L(bob)})`, [mine]], 'violates foreign key constraint "nodes_instance_identity_fkey"'],
    ['insert a node into her instance (in her name)', () => [`INSERT INTO df.nodes (id, instance_id, node_type, query, submitted_by) VALUES ('0000beef', $1, 'SQL', 'SELECT 1', ${L(alice)})`, [mine]], 'new row violates row-level security policy for table "nodes"'],
    ['start an instance in her name', () => [`INSERT INTO df.instances (id, root_node, submitted_by) VALUES ('0000bee1', '0000bee2', ${L(alice)})`, []], 'pg_durable: a row of df.instances must belong to the current user'],
    ['send her instance a signal through the inbox', () => ["INSERT INTO df._signals (instance_id, signal_name, payload) VALUES ($1, 'go', '{}')", [mine]], 'new row violates row-level security policy for table "_signals"'],
    ['plant a variable for her', () => [`INSERT INTO df.vars (name, value, owner) VALUES ('token', 'x', ${L(alice)})`, []], 'pg_durable: a row of df.vars must belong to the current user'],
    ['checkpoint her instance without its lease token', () => ["SELECT df._commit($1, gen_random_uuid(), '[]'::jsonb, 'completed')", [mine]], 'pg_durable: lease lost for instance'],
    ['consume her signal', () => ["SELECT df._take_signal($1, gen_random_uuid(), 'go', 'x', 'y')", [mine]], 'permission denied for function _take_signal'],
    ['prune her instance through the definer function', () => ["SELECT * FROM df._prune_executions(ARRAY[$1], now() + interval '1 day')", [mine]], 'df.prune_executions: permission denied for instance'],
  ];
  for (const [what, make, message] of denied) {
    it(`bob cannot ${what}`, async () => {
      const before = await tableCounts(admin);
      const [sql, params] = make();
      const err = await errorOf(b, sql, params);
      expect(err.message).toContain(message);
      expect(await tableCounts(admin)).toEqual(before);
    });
  }

  it('bob\'s UPDATE and DELETE of her rows touch nothing (RLS hides them) or are refused', async () => {
    expect((await b.query("UPDATE df.instances SET status = 'cancelled' WHERE id = $1", [mine])).rowCount).toBe(0);
    expect((await b.query("UPDATE df.vars SET value = 'x' WHERE name = 'token'")).rowCount).toBe(0);
    expect((await b.query("DELETE FROM df.vars WHERE name = 'token'")).rowCount).toBe(0);
    expect((await errorOf(b, 'DELETE FROM df.instances WHERE id = $1', [mine])).message).toBe('permission denied for table instances');
    expect(await scalar(a, 'SELECT status FROM df.instances WHERE id = $1', [mine])).toBe('pending');
    expect(await scalar(a, "SELECT df.getvar('token')")).toBe('alice-secret');
  });

  it('a BYPASSRLS role still cannot write rows in another role\'s name (identity guard)', async () => {
    await admin.query('CREATE ROLE sec_bypass LOGIN BYPASSRLS');
    await admin.query("SELECT df.grant_usage('sec_bypass')");
    const x = await connectAs(url(db, 'sec_bypass'));
    try {
      expect((await errorOf(x, "INSERT INTO df.instances (id, root_node, submitted_by) VALUES ('0000bee3', '0000bee4', $1)", [alice])).message).toBe(
        `pg_durable: a row of df.instances must belong to the current user sec_bypass, not to ${alice}`,
      );
      expect((await errorOf(x, "INSERT INTO df.vars (name, value, owner) VALUES ('token', 'evil', $1)", [alice])).message).toBe(
        `pg_durable: a row of df.vars must belong to the current user sec_bypass, not to ${alice}`,
      );
      expect((await errorOf(x, 'UPDATE df.vars SET owner = $1', [alice])).message).toBe(
        `pg_durable: a row of df.vars must belong to the current user sec_bypass, not to ${alice}`,
      );
    } finally {
      await x.end();
    }
  });
});

describe('own rows: only what the column grants allow, and only a cancel', () => {
  const refused: [string, string][] = [
    ['DELETE FROM df.instances WHERE id = $1', 'permission denied for table instances'],
    ['TRUNCATE df.instances', 'permission denied for table instances'],
    ["UPDATE df.instances SET submitted_by = 'postgres' WHERE id = $1", 'permission denied for table instances'],
    ["UPDATE df.instances SET root_node = '00000000' WHERE id = $1", 'permission denied for table instances'],
    ["UPDATE df.nodes SET status = 'completed' WHERE instance_id = $1", 'permission denied for table nodes'],
    ["UPDATE df.nodes SET query = 'SELECT 2' WHERE instance_id = $1", 'permission denied for table nodes'],
    ['DELETE FROM df.nodes WHERE instance_id = $1', 'permission denied for table nodes'],
    ["INSERT INTO df.instances (id, root_node, submitted_by, status) VALUES ('0000bee5', '0000bee6', CURRENT_USER::regrole, 'completed') /* $1 */", 'permission denied for table instances'],
    ["INSERT INTO df.nodes (id, instance_id, node_type, query, submitted_by, status, result) VALUES ('0000bee7', $1, 'SQL', 'x', CURRENT_USER::regrole, 'completed', '1')", 'permission denied for table nodes'],
    ["UPDATE df._signals SET consumed_by = 'me' WHERE instance_id = $1", 'permission denied for table _signals'],
    ['DELETE FROM df._signals WHERE instance_id = $1', 'permission denied for table _signals'],
    ["INSERT INTO df._signals (instance_id, signal_name, payload, submitted_by) VALUES ($1, 'go', '{}', 'postgres')", 'permission denied for table _signals'],
    ["INSERT INTO df._executions (instance_id, execution_id, submitted_by) VALUES ($1, 9, CURRENT_USER::regrole)", 'permission denied for table _executions'],
    ['DELETE FROM df._node_runs WHERE instance_id = $1', 'permission denied for table _node_runs'],
    ['DELETE FROM df._runs WHERE instance_id = $1', 'cannot delete from view "_runs"'],
    ["UPDATE df._execution_log SET status = 'Completed' WHERE instance_id = $1", 'cannot update view "_execution_log"'],
    ['ALTER TABLE df.instances DISABLE ROW LEVEL SECURITY /* $1 */', 'must be owner of table instances'],
    ['CREATE TABLE df.mine (x int) /* $1 */', 'permission denied for schema df'],
    ['CREATE FUNCTION df._commit(text) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$ /* $1 */', 'permission denied for schema df'],
    ['SELECT df._on_instance_cancel() /* $1 */', 'trigger functions can only be called as triggers'],
    ["UPDATE df.instances SET status = 'completed' WHERE id = $1", 'cannot be changed from pending to completed by hand'],
    ["UPDATE df.instances SET status = 'failed' WHERE id = $1", 'cannot be changed from pending to failed by hand'],
    ["UPDATE df.instances SET status = 'running' WHERE id = $1", 'cannot be changed from pending to running by hand'],
    ["UPDATE df.instances SET status = 'bogus' WHERE id = $1", 'cannot be changed from pending to bogus by hand'],
  ];
  for (const [sql, message] of refused) {
    it(`alice: ${sql.replace(' /* $1 */', '')}`, async () => {
      const before = await tableCounts(admin);
      const text = sql.replace(' /* $1 */', '');
      const err = await errorOf(a, text, text.includes('$1') ? [mine] : []);
      expect(err.message).toContain(message);
      expect(await tableCounts(admin)).toEqual(before);
      expect(await scalar(a, 'SELECT status FROM df.instances WHERE id = $1', [mine])).toBe('pending');
    });
  }

  it("UPDATE ... SET status = 'cancelled' on an own running instance cancels it exactly like df.cancel", async () => {
    const byUpdate = await scalar<string>(a, "SELECT df.start('SELECT pg_sleep(60)')");
    const byCancel = await scalar<string>(a, "SELECT df.start('SELECT pg_sleep(60)')");
    const listener = await connectAs(url(db));
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.payload ?? ''));
    await listener.query('LISTEN pg_durable');
    try {
      expect((await a.query("UPDATE df.instances SET status = 'cancelled' WHERE id = $1", [byUpdate])).rowCount).toBe(1);
      await a.query('SELECT df.cancel($1)', [byCancel]);
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await listener.end();
    }
    expect(heard).toEqual(['cancel', 'cancel']);
    const state = async (id: string) =>
      (
        await admin.query(
          `SELECT i.status, (SELECT count(*)::int FROM df._work w WHERE w.instance_id = i.id) AS queued,
                  (SELECT e.status || '/' || e.output FROM df._executions e WHERE e.instance_id = i.id) AS execution
             FROM df.instances i WHERE i.id = $1`,
          [id],
        )
      ).rows[0];
    expect(await state(byUpdate)).toEqual({ status: 'cancelled', queued: 0, execution: 'Failed/Cancelled' });
    expect(await state(byCancel)).toEqual(await state(byUpdate));
    // ... and a cancelled (or ended) instance cannot be brought back.
    for (const to of ['pending', 'running', 'completed']) {
      expect((await errorOf(a, 'UPDATE df.instances SET status = $2 WHERE id = $1', [byUpdate, to])).message).toBe(
        `pg_durable: the status of instance ${byUpdate} cannot be changed from cancelled to ${to} by hand; the only change allowed is cancelling an instance that has not ended (use df.cancel)`,
      );
    }
    // updated_at stays writable (column grant), and a no-op status write is fine
    expect((await a.query("UPDATE df.instances SET status = 'cancelled', updated_at = now() WHERE id = $1", [byUpdate])).rowCount).toBe(1);
  });

  it('the engine owner (superuser) is not restricted by the status guard', async () => {
    const id = await scalar<string>(a, "SELECT df.start('SELECT 1')");
    await admin.query("UPDATE df.instances SET status = 'running' WHERE id = $1", [id]);
    expect(await scalar(a, 'SELECT df.status($1)', [id])).toBe('running');
  });
});
