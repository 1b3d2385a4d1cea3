/**
 * df.start and the control functions as a tenant sees them (API §6, §7): what df.start writes,
 * that a rolled-back start leaves nothing and wakes nobody, and what every control function
 * returns or raises. No worker runs here: instances stay pending.
 */
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { asRole, createTenant, errorOf, freshDatabase, scalar, url, withPg, withTransaction } from '../support/db';

let db: string;
let alice: string;
let bob: string;
beforeAll(async () => {
  db = await freshDatabase('control');
  alice = await createTenant(db, 'alice');
  bob = await createTenant(db, 'bob');
});

const HEX8 = /^[0-9a-f]{8}$/;

async function counts(): Promise<Record<string, number>> {
  return withPg(db, async (c) => {
    const r = await c.query(`SELECT (SELECT count(*) FROM df.instances)::int AS instances, (SELECT count(*) FROM df.nodes)::int AS nodes,
      (SELECT count(*) FROM df._work)::int AS work, (SELECT count(*) FROM df._executions)::int AS executions,
      (SELECT count(*) FROM df._signals)::int AS signals`);
    return r.rows[0];
  });
}

describe('df.start', () => {
  it('writes the instance and its flattened graph with the caller as identity', async () => {
    const id = await asRole(db, alice, (c) => scalar<string>(c, "SELECT df.start('SELECT 1 AS a' |=> 'x' ~> 'SELECT $x + 1 AS b', 'demo')"));
    expect(id).toMatch(HEX8);
    await withPg(db, async (c) => {
      const inst = (await c.query('SELECT label, status, submitted_by::text AS who, root_node, database FROM df.instances WHERE id = $1', [id])).rows[0];
      expect(inst).toMatchObject({ label: 'demo', status: 'pending', who: alice, database: null });
      const nodes = (await c.query('SELECT id, node_type, query, result_name, left_node, right_node, submitted_by::text AS who, status FROM df.nodes WHERE instance_id = $1', [id])).rows;
      expect(nodes).toHaveLength(3);
      const root = nodes.find((n) => n.id === inst.root_node)!;
      expect(root).toMatchObject({ node_type: 'THEN', query: null, status: 'pending' });
      const left = nodes.find((n) => n.id === root.left_node)!;
      const right = nodes.find((n) => n.id === root.right_node)!;
      expect(left).toMatchObject({ node_type: 'SQL', query: 'SELECT 1 AS a', result_name: 'x' });
      expect(right).toMatchObject({ node_type: 'SQL', query: 'SELECT $x + 1 AS b', result_name: null });
      for (const n of nodes) {
        expect(n.id).toMatch(HEX8);
        expect(n.who).toBe(alice);
      }
      const work = (await c.query('SELECT due_at IS NOT NULL AS due, lease_owner FROM df._work WHERE instance_id = $1', [id])).rows[0];
      expect(work).toEqual({ due: true, lease_owner: null });
    });
  });

  it('persists IF, LOOP and JOIN child references in query (API §5.2)', async () => {
    const id = await asRole(db, alice, (c) =>
      scalar<string>(c, "SELECT df.start(df.join3('SELECT 1', df.if('SELECT true','SELECT 2','SELECT 3'), df.loop('SELECT 4','SELECT false')))"),
    );
    const rows = await withPg(db, (c) => c.query('SELECT id, node_type, query FROM df.nodes WHERE instance_id = $1', [id]));
    const byType = (t: string) => rows.rows.find((r) => r.node_type === t)!;
    expect(byType('JOIN').query).toMatch(/^\{"extra_nodes":\["[0-9a-f]{8}"\]\}$/);
    expect(byType('IF').query).toMatch(/^\{"condition_node":"[0-9a-f]{8}"\}$/);
    expect(byType('LOOP').query).toMatch(/^\{"condition_node":"[0-9a-f]{8}"\}$/);
  });

  it('captures the variable snapshot, including setvar calls earlier in the same transaction', async () => {
    const id = await asRole(db, alice, async (c) =>
      withTransaction(c, async () => {
        await c.query("SELECT df.setvar('table_name', 'orders')");
        return scalar<string>(c, "SELECT df.start('SELECT count(*) FROM {table_name}')");
      }),
    );
    const vars = await withPg(db, (c) => scalar(c, 'SELECT vars FROM df._work WHERE instance_id = $1', [id]));
    expect(vars).toEqual({ table_name: 'orders' });
  });

  it('a ROLLBACK leaves no rows and sends no wake-up; a COMMIT notifies', async () => {
    const listener = new pg.Client({ connectionString: url(db) });
    await listener.connect();
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.payload ?? ''));
    await listener.query('LISTEN pg_durable');
    const before = await counts();
    await asRole(db, alice, (c) => withTransaction(c, () => c.query("SELECT df.start('SELECT 1')"), { rollback: true }));
    expect(await counts()).toEqual(before);
    const id = await asRole(db, alice, (c) => withTransaction(c, () => scalar<string>(c, "SELECT df.start('SELECT 1')")));
    await new Promise((r) => setTimeout(r, 200));
    await listener.end();
    // The wake-up names no instance (docs/SECURITY.md, "What the worker's channel tells a listener").
    expect(heard).toEqual(['start']);
    expect(id).toMatch(/^[0-9a-f]{8}$/);
  });

  describe('rejects bad input with the documented error and writes nothing', () => {
    const deep = (n: number): string => {
      let node = '{"node_type":"SQL","query":"SELECT 1"}';
      for (let i = 0; i < n; i++) node = `{"node_type":"THEN","left_node":${node},"right_node":{"node_type":"SQL","query":"SELECT 2"}}`;
      return node;
    };
    const cases: [string, unknown[], string][] = [
      ['SELECT df.start(NULL)', [], 'df.start: fut cannot be NULL'],
      ["SELECT df.start('SELECT 1', NULL, NULL, 'sideways')", [], `invalid transaction_mode "sideways" for df.start(): expected 'caller' or 'new'`],
      ["SELECT df.start('SELECT 1', database => 'no_such_db')", [], 'database "no_such_db" does not exist'],
      ['SELECT df.start($1)', ['{"node_type":"NOT_A_NODE"}'], "Invalid durable function: Unknown node_type 'NOT_A_NODE'. Valid types: SQL, THEN, IF, JOIN, LOOP, BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, HTTP_MULTIPART, SIGNAL, RETRY, TIMEOUT, UNDO"],
      ['SELECT df.start($1)', ['{"node_type":"THEN","left_node":{"node_type":"NOPE"},"right_node":{"node_type":"SQL","query":"x"}}'], "Invalid durable function graph: root.left: Unknown node_type 'NOPE'"],
      ['SELECT df.start($1)', ['{"node_type":"SQL","query":"SELECT 1","result_name":"bad name"}'], "Invalid durable function graph: root: result_name 'bad name' is not a valid identifier"],
      ['SELECT df.start($1)', ['{"node_type":"SQL","query":"SELECT 1","condition_node":{"node_type":"SQL","query":"x"}}'], 'Invalid durable function graph: root: condition_node is not valid for SQL nodes'],
      ['SELECT df.start($1)', [deep(257)], 'maximum nesting depth of 256'],
    ];
    for (const [sql, params, message] of cases) {
      it(`${sql} ${String(params[0] ?? '').slice(0, 60)} -> ${message.slice(0, 60)}`, async () => {
        const before = await counts();
        const err = await asRole(db, alice, (c) => errorOf(c, sql, params));
        expect(err.message).toContain(message);
        expect(await counts()).toEqual(before);
      });
    }

    it('accepts 256 levels of nesting', async () => {
      const id = await asRole(db, alice, (c) => scalar<string>(c, 'SELECT df.start($1)', [deep(256)]));
      expect(id).toMatch(HEX8);
    });

    it('refuses a role without LOGIN, and a superuser unless enabled', async () => {
      await withPg(db, async (c) => {
        await c.query('CREATE ROLE nologin_role NOLOGIN');
        await c.query("SELECT df.grant_usage('nologin_role')");
        await c.query(`GRANT nologin_role TO ${pg.escapeIdentifier(alice)}`);
      });
      const err = await asRole(db, alice, async (c) => {
        await c.query('SET ROLE nologin_role');
        return errorOf(c, "SELECT df.start('SELECT 1')");
      });
      expect(err.message).toBe('current_user "nologin_role" does not have LOGIN privilege. The background worker must connect as this role to execute SQL. Grant LOGIN to this role or call df.start() as a role with LOGIN.');
      const su = await withPg(db, (c) => errorOf(c, "SELECT df.start('SELECT 1')"));
      expect(su.message).toContain('pg_durable.enable_superuser_instances is off');
    });

    it("takes transaction_mode case-insensitively ('NEW' is 'new': here without dblink, so it says what to install)", async () => {
      const err = await asRole(db, alice, (c) => errorOf(c, "SELECT df.start('SELECT 1', transaction_mode => 'NEW')"));
      expect(err.message).toBe(`df.start(..., transaction_mode => 'new') needs the dblink extension in database "${db}"`);
      expect(err.code).toBe('55000');
    });
  });
});

describe('status, result, cancel, signal', () => {
  it('df.status and df.result see only the caller\'s own instances', async () => {
    const id = await asRole(db, alice, (c) => scalar<string>(c, "SELECT df.start('SELECT 1')"));
    expect(await asRole(db, alice, (c) => scalar(c, 'SELECT df.status($1)', [id]))).toBe('pending');
    expect(await asRole(db, alice, (c) => scalar(c, 'SELECT df.result($1)', [id]))).toBeNull();
    expect(await asRole(db, bob, (c) => scalar(c, 'SELECT df.status($1)', [id]))).toBeNull();
    expect(await asRole(db, alice, (c) => scalar(c, "SELECT df.status('00000000')"))).toBeNull();
  });

  it('df.cancel marks the instance cancelled, is idempotent, and refuses other tenants', async () => {
    const id = await asRole(db, alice, (c) => scalar<string>(c, "SELECT df.start('SELECT pg_sleep(60)')"));
    const other = await asRole(db, bob, (c) => errorOf(c, 'SELECT df.cancel($1)', [id]));
    expect(other.message).toBe(`Instance not found or access denied: ${id}`);
    expect(await asRole(db, alice, (c) => scalar(c, "SELECT df.cancel($1, 'stop test')", [id]))).toBe(`Instance ${id} cancelled: stop test`);
    expect(await asRole(db, alice, (c) => scalar(c, 'SELECT df.status($1)', [id]))).toBe('cancelled');
    expect(await asRole(db, alice, (c) => scalar(c, 'SELECT df.cancel($1)', [id]))).toBe(`Instance ${id} cancelled: Cancelled by user`);
    const left = await withPg(db, (c) => scalar<number>(c, 'SELECT count(*)::int FROM df._work WHERE instance_id = $1', [id]));
    expect(left).toBe(0);
  });

  it('df.signal buffers normalised payloads and checks its arguments', async () => {
    const id = await asRole(db, alice, (c) => scalar<string>(c, "SELECT df.start(df.wait_for_signal('go'))"));
    await asRole(db, alice, async (c) => {
      expect(await scalar(c, `SELECT df.signal($1, 'go', '{"value": 42}')`, [id])).toBe('OK');
      expect(await scalar(c, "SELECT df.signal($1, 'go', 'approve')", [id])).toBe('OK');
      expect(await scalar(c, "SELECT df.signal($1, 'go')", [id])).toBe('OK');
      expect((await errorOf(c, "SELECT df.signal('', 'go')")).message).toBe('Instance ID cannot be empty');
      expect((await errorOf(c, "SELECT df.signal($1, '')", [id])).message).toBe('Signal name cannot be empty');
    });
    const payloads = await withPg(db, (c) => c.query('SELECT payload, submitted_by::text AS who FROM df._signals WHERE instance_id = $1 ORDER BY id', [id]));
    expect(payloads.rows).toEqual([
      { payload: '{"value":42}', who: alice },
      { payload: '"approve"', who: alice },
      { payload: '{}', who: alice },
    ]);
    expect((await asRole(db, bob, (c) => errorOf(c, "SELECT df.signal($1, 'go')", [id]))).message).toBe(`Instance not found or access denied: ${id}`);
    await asRole(db, alice, (c) => c.query('SELECT df.cancel($1)', [id]));
    expect((await asRole(db, alice, (c) => errorOf(c, "SELECT df.signal($1, 'go')", [id]))).message).toBe(`Instance ${id} is already cancelled`);
  });

  it('a tenant cannot plant a signal in another tenant\'s instance by writing the inbox directly', async () => {
    const id = await asRole(db, alice, (c) => scalar<string>(c, "SELECT df.start(df.wait_for_signal('go'))"));
    const err = await asRole(db, bob, (c) => errorOf(c, "INSERT INTO df._signals (instance_id, signal_name, payload) VALUES ($1, 'go', '{}')", [id]));
    expect(err.message).toContain('row-level security');
  });

  it('df.await_instance times out with the documented message and rejects unknown ids', async () => {
    const id = await asRole(db, alice, (c) => scalar<string>(c, "SELECT df.start('SELECT 1')"));
    await asRole(db, alice, async (c) => {
      expect((await errorOf(c, 'SELECT df.await_instance($1, 1)', [id])).message).toBe(
        `Timeout after 1s waiting for instance ${id} (status: pending). Check if background worker is running.`,
      );
      expect((await errorOf(c, "SELECT df.await_instance('0badc0de', 1)")).message).toBe('Instance not found: 0badc0de');
      expect((await errorOf(c, 'SELECT df.await_instance($1, 0)', [id])).message).toBe('Timeout must be positive');
    });
  });
});

describe('variables', () => {
  it('are per role and managed with setvar/getvar/unsetvar/clearvars', async () => {
    await asRole(db, alice, async (c) => {
      expect(await scalar(c, "SELECT df.setvar('color', 'red')")).toBe('OK');
      expect(await scalar(c, "SELECT df.setvar('color', 'blue')")).toBe('OK');
      expect(await scalar(c, "SELECT df.getvar('color')")).toBe('blue');
    });
    expect(await asRole(db, bob, (c) => scalar(c, "SELECT df.getvar('color')"))).toBeNull();
    await asRole(db, alice, async (c) => {
      expect(await scalar(c, "SELECT df.unsetvar('color')")).toBe('OK');
      expect(await scalar(c, "SELECT df.getvar('color')")).toBeNull();
      await c.query("SELECT df.setvar('a', '1'), df.setvar('b', '2')");
      expect(await scalar(c, 'SELECT df.clearvars()')).toBe('OK');
      expect(await scalar(c, 'SELECT count(*)::int FROM df.vars')).toBe(0);
    });
  });

  it('cannot be changed inside a workflow step', async () => {
    await asRole(db, alice, async (c) => {
      await c.query("SET df.in_workflow = 'true'");
      expect((await errorOf(c, "SELECT df.setvar('a', '1')")).message).toBe('df.setvar() cannot be called inside a workflow - set variables before starting the workflow');
      expect((await errorOf(c, "SELECT df.unsetvar('a')")).message).toBe('df.unsetvar() cannot be called inside a workflow - manage variables before starting the workflow');
      expect((await errorOf(c, 'SELECT df.clearvars()')).message).toBe('df.clearvars() cannot be called inside a workflow - manage variables before starting the workflow');
      expect((await errorOf(c, "SELECT df.await_instance('00000000')")).message).toContain('df.await_instance() cannot be called inside a workflow');
    });
  });
});

describe('df.start in a long session', () => {
  it('keeps its plans for the session, and they follow a re-created pg_durable and a changed table', async () => {
    const db = await freshDatabase('kept_plans');
    await withPg(db, async (c) => {
      await c.query('SET pg_durable.enable_superuser_instances = on');
      const first = await scalar<string>(c, "SELECT df.start('SELECT 1')");
      await c.query('DROP EXTENSION pg_durable CASCADE');
      await c.query('CREATE EXTENSION pg_durable');
      const second = await scalar<string>(c, "SELECT df.start('SELECT 2')");
      await c.query('ALTER TABLE df.instances ADD COLUMN note text');
      const third = await scalar<string>(c, "SELECT df.start('SELECT 3')");
      const rows = await c.query<{ id: string; q: string }>('SELECT i.id, n.query AS q FROM df.instances i JOIN df.nodes n ON n.instance_id = i.id ORDER BY n.query');
      expect(rows.rows).toEqual([{ id: second, q: 'SELECT 2' }, { id: third, q: 'SELECT 3' }]);
      expect(first).not.toBe(second);
    });
  });
});
