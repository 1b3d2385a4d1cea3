/**
 * `npx tsx chaos/repro-ambiguous-commit.ts`: a deterministic repro of the one exactly-once gap the
 * chaos analysis points at: a step whose COMMIT reached the server but whose client lost the
 * connection before the reply ("commit outcome unknown") is retried by the worker, so its SQL runs
 * a second time.
 *
 * The window is normally microseconds wide (a backend terminated or a server crash right after the
 * commit record is written). Synchronous replication to a standby that does not exist widens it at
 * will: the tenant's COMMIT is written and flushed locally, then waits for the standby; terminating
 * the backend during that wait leaves the transaction committed ("The transaction has already
 * committed locally") while the worker sees 57P01, a transient error, and re-runs the step.
 *
 * Expected with exactly-once steps: the ledger holds 1 row. Exit 0 = not reproduced, 3 = reproduced.
 */
import pg from 'pg';
import { Db, say, setupEnv, sleep, WorkerPool, workerArgs, workerCli } from './lib';

const env = await setupEnv({ settings: { synchronous_commit: 'local', synchronous_standby_names: "'nobody'" }, db: 'repro', tenant: 'repro_tenant' });
const admin = new Db(env.adminUrl, 2, 'repro-admin');
const pool = new WorkerPool({ cli: workerCli(false), url: env.adminUrl, count: 1, args: workerArgs({ lease: 4 }) });
let code = 0;
try {
  await admin.q('CREATE TABLE ledger (id bigserial PRIMARY KEY, inst text NOT NULL, step text NOT NULL, at timestamptz DEFAULT clock_timestamp())');
  await admin.q('GRANT INSERT, SELECT ON ledger TO repro_tenant; GRANT USAGE ON SEQUENCE ledger_id_seq TO repro_tenant');
  // New sessions of the tenant (the worker's step connections) wait for the missing standby at COMMIT.
  await admin.q('ALTER ROLE repro_tenant SET synchronous_commit = on');
  const user = new pg.Client({ connectionString: env.tenantUrl });
  await user.connect();
  await user.query('SET synchronous_commit = local'); // our own df.start must not wait
  const step = pg.escapeLiteral("INSERT INTO ledger (inst, step) VALUES ('{sys_instance_id}', 's1') RETURNING id AS lid");
  const id = (await user.query(`SELECT df.start(df.seq(${step}, 'SELECT 1 AS done')) AS id`)).rows[0].id as string;
  await user.end();
  pool.fill();

  let pid = 0;
  for (let i = 0; i < 200 && !pid; i++) {
    const r = await admin.q<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE usename = 'repro_tenant' AND wait_event = 'SyncRep'");
    pid = r.rows[0]?.pid ?? 0;
    if (!pid) await sleep(100);
  }
  if (!pid) throw new Error('the step never reached its COMMIT');
  say(`step ${id} has committed locally and waits for the standby (backend ${pid}); letting new sessions commit normally, then terminating it`);
  await admin.q('ALTER ROLE repro_tenant RESET synchronous_commit');
  await admin.q('SELECT pg_terminate_backend($1)', [pid]);

  let status = '';
  for (let i = 0; i < 300 && !['completed', 'failed'].includes(status); i++) {
    status = (await admin.q<{ status: string }>('SELECT status FROM df.instances WHERE id = $1', [id])).rows[0].status;
    await sleep(100);
  }
  const rows = (await admin.q<{ id: string }>('SELECT id::text FROM ledger WHERE inst = $1 ORDER BY id', [id])).rows.map((r) => r.id);
  const cp = (await admin.q<{ result: string }>("SELECT r.result FROM df._runs r JOIN df.nodes n ON n.instance_id = r.instance_id AND n.id = r.node_id WHERE r.instance_id = $1 AND n.query LIKE 'INSERT%'", [id])).rows;
  console.log(`instance ${id}: ${status}; ledger rows for step s1: ${rows.length} (ids ${rows.join(', ')}); checkpoint: ${cp.map((c) => c.result).join(' | ')}`);
  console.log(`worker log: ${JSON.stringify([...pool.stats.messages.entries()])}`);
  if (rows.length > 1) {
    console.log('REPRODUCED: the step ran twice (its first commit succeeded, the worker saw a transient error and re-ran it)');
    code = 3;
  } else {
    console.log('not reproduced: the step ran once');
  }
} finally {
  await pool.stopAll(5000);
  await admin.end();
  env.cluster.stop();
}
process.exit(code);
