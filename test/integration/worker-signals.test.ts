/**
 * Signals (API §9.12, deviation 5: signals are buffered, never lost) and cancellation (§6.3, §9.15)
 * end to end with a real worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scalar } from '../support/db';
import { eventually } from '../support/worker';
import { type Flow, lit, setupFlow, sleep } from '../support/flows';

let f: Flow;

beforeAll(async () => {
  f = await setupFlow('signals');
  await f.user.query('CREATE TABLE orders (id int, order_id int, total numeric, status text)');
  await f.user.query("INSERT INTO orders VALUES (1, 1001, 99.50, 'new'), (2, 1002, 10, 'new'), (3, 1003, 5, 'new')");
  await f.user.query('CREATE TABLE beats (inst text, at timestamptz DEFAULT clock_timestamp())');
});

afterAll(async () => {
  await f?.stop();
});

const signal = (id: string, name: string, data?: string) =>
  scalar<string>(f.user, data === undefined ? 'SELECT df.signal($1, $2)' : 'SELECT df.signal($1, $2, $3)', data === undefined ? [id, name] : [id, name, data]);

/** Resolves once the instance's SIGNAL node is waiting. */
const waiting = (id: string) =>
  eventually(async () => (await f.nodes(id)).some((n) => n.node_type === 'SIGNAL' && n.status === 'running'), 10_000, 'the signal wait');

describe('wait_for_signal', () => {
  it('a signal sent while the instance waits completes the wait with its payload', async () => {
    const id = await f.start("df.wait_for_signal('go')");
    await waiting(id);
    expect(await signal(id, 'go', '{"value": 42}')).toBe('OK');
    expect(await f.wait(id)).toBe('completed');
    expect(await f.output(id)).toBe('{"signal_name":"go","timed_out":false,"data":{"value":42}}');
    expect(JSON.parse((await f.result(id))!)).toEqual({ signal_name: 'go', timed_out: false, data: { value: 42 } });
  });

  it('signalling an instance that has ended is an error', async () => {
    const { id, status } = await f.run(lit('SELECT 1 AS done'));
    expect(status).toBe('completed');
    await expect(signal(id, 'go')).rejects.toThrow(`Instance ${id} is already completed`);
  });

  it('a signal sent before the instance even starts waiting is buffered and consumed by the wait', async () => {
    await f.user.query('BEGIN');
    const id = await f.start(`${lit('SELECT pg_sleep(0.3)')} ~> df.wait_for_signal('early', 30)`);
    expect(await signal(id, 'early', '{"n": 1}')).toBe('OK'); // same transaction: the instance is not even dispatched yet
    await f.user.query('COMMIT');
    expect(await f.wait(id, 10_000)).toBe('completed');
    expect(await f.output(id)).toBe('{"signal_name":"early","timed_out":false,"data":{"n":1}}');
  });

  it('a plain-text payload arrives as a JSON string', async () => {
    const id = await f.start("df.wait_for_signal('word')");
    await signal(id, 'word', 'approve');
    expect(await f.wait(id)).toBe('completed');
    expect(await f.output(id)).toBe('{"signal_name":"word","timed_out":false,"data":"approve"}');
    expect(await f.result(id)).toBe('{"data": "approve", "timed_out": false, "signal_name": "word"}');
  });

  it('without a signal the wait times out: timed_out true, data null', async () => {
    const started = Date.now();
    const { id, status } = await f.run("df.wait_for_signal('never', 1)");
    expect(status).toBe('completed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(await f.output(id)).toBe('{"signal_name":"never","timed_out":true,"data":null}');
  });

  it('two waits for the same name consume two signals, in the order they were sent', async () => {
    const id = await f.start(
      `df.wait_for_signal('step') |=> 's1' ~> df.wait_for_signal('step') |=> 's2' ~> ` +
        lit("SELECT $s1::jsonb -> 'data' ->> 'n' AS first, $s2::jsonb -> 'data' ->> 'n' AS second"),
    );
    await signal(id, 'step', '{"n": "one"}');
    await signal(id, 'step', '{"n": "two"}');
    expect(await f.wait(id)).toBe('completed');
    expect(await f.result(id)).toBe('{"rows": [{"first": "one", "second": "two"}], "row_count": 1}');
  });

  describe("the seeds' approval workflow ($sig::jsonb->>'timed_out' in an IF condition)", () => {
    // As in the seeds, except `$order_id` (no result has that name) is written `$order.order_id`.
    const approval = (row: number, timeout: number) =>
      `${lit(`SELECT order_id, total FROM orders WHERE id = ${row}`)} |=> 'order'
       ~> df.wait_for_signal('approval', ${timeout}) |=> 'sig'
       ~> df.if(
         ${lit("SELECT NOT ($sig::jsonb->>'timed_out')::boolean AND ($sig::jsonb->'data'->>'approved')::boolean")},
         ${lit("UPDATE orders SET status = 'approved' WHERE order_id = $order.order_id")},
         ${lit("UPDATE orders SET status = 'rejected' WHERE order_id = $order.order_id")}
       )`;
    const statusOf = (row: number) => scalar<string>(f.user, 'SELECT status FROM orders WHERE id = $1', [row]);

    it('approve', async () => {
      const id = await f.start(approval(1, 86400), 'order-approval');
      await signal(id, 'approval', '{"approved": true, "approver": "jane@contoso.com"}');
      expect(await f.wait(id)).toBe('completed');
      expect(await statusOf(1)).toBe('approved');
    });

    it('reject', async () => {
      const id = await f.start(approval(2, 86400), 'order-approval');
      await waiting(id);
      await signal(id, 'approval', '{"approved": false}');
      expect(await f.wait(id)).toBe('completed');
      expect(await statusOf(2)).toBe('rejected');
    });

    it('no answer before the timeout rejects', async () => {
      const { status } = await f.run(approval(3, 1), 'order-approval');
      expect(status).toBe('completed');
      expect(await statusOf(3)).toBe('rejected');
    });
  });
});

describe('df.cancel', () => {
  it('stops a running infinite loop at once: cancelled immediately, no more iterations', async () => {
    const id = await f.start(`@> ${lit("INSERT INTO beats (inst) VALUES ('{sys_instance_id}') RETURNING inst")}`);
    const beats = () => scalar<number>(f.user, 'SELECT count(*)::int FROM beats WHERE inst = $1', [id]);
    await eventually(async () => (await beats()) >= 2, 10_000, 'two iterations');
    expect(await scalar(f.user, 'SELECT df.cancel($1)', [id])).toBe(`Instance ${id} cancelled: Cancelled by user`);
    expect(await scalar(f.user, 'SELECT df.status($1)', [id])).toBe('cancelled');
    const atCancel = await beats();
    await sleep(500);
    const settled = await beats();
    expect(settled).toBeLessThanOrEqual(atCancel + 1); // at most an iteration that was committing
    await sleep(2000);
    expect(await beats()).toBe(settled);
    expect(await scalar(f.user, 'SELECT df.status($1)', [id])).toBe('cancelled');
  });

  it('cancels a long in-flight SQL step (pg_sleep(60) leaves pg_stat_activity within seconds)', async () => {
    const sql = 'SELECT pg_sleep(60) AS cancel_me';
    const sleeping = () =>
      scalar<number>(f.admin, "SELECT count(*)::int FROM pg_stat_activity WHERE usename = $1 AND query = $2 AND state = 'active'", [f.tenant, sql]);
    const id = await f.start(lit(sql));
    await eventually(async () => (await sleeping()) === 1, 10_000, 'the step to be running');
    await scalar(f.user, "SELECT df.cancel($1, 'too slow')", [id]);
    expect(await scalar(f.user, 'SELECT df.status($1)', [id])).toBe('cancelled');
    const cancelledAt = Date.now();
    await eventually(async () => (await sleeping()) === 0, 5_000, 'the step to be cancelled');
    expect(Date.now() - cancelledAt).toBeLessThan(5_000);
    expect(await scalar(f.user, 'SELECT df.status($1)', [id])).toBe('cancelled');
  });
});
