/**
 * `npx tsx chaos/repro-signal-retry.ts`: the signal-side twin of repro-ambiguous-commit.ts.
 *
 * df._take_signal consumes a signal and completes the SIGNAL node in one transaction on the
 * worker's management connection (Store.takeSignal, retried by withRetry on transient errors). If
 * that COMMIT reaches the server but the reply is lost, the retry finds no unconsumed signal and
 * returns NULL: the node is completed in the database, but the running interpreter keeps waiting
 * (its lease renewed by the heartbeat) until another signal of that name arrives, which it then
 * consumes too, overwriting the node's result: the first payload is lost.
 *
 * As in the other repro, synchronous replication to a missing standby holds the COMMIT open after
 * it is durable locally, and pg_terminate_backend makes the worker see 57P01.
 * Exit 0 = not reproduced, 3 = reproduced.
 */
import pg from 'pg';
import { Db, say, setupEnv, sleep, WorkerPool, workerArgs, workerCli } from './lib';

const env = await setupEnv({ settings: { synchronous_commit: 'local', synchronous_standby_names: "'nobody'" }, db: 'repro', tenant: 'repro_tenant' });
const admin = new Db(env.adminUrl, 2, 'repro-admin');
// A long lease, so that lease expiry and a replay cannot hide what the running interpreter does.
const pool = new WorkerPool({ cli: workerCli(false), url: env.adminUrl, count: 1, args: workerArgs({ lease: 60 }) });
let code = 0;
try {
  await admin.q('SET synchronous_commit = local');
  pool.fill();
  const user = new pg.Client({ connectionString: env.tenantUrl });
  await user.connect();
  const id = (await user.query("SELECT df.start(df.wait_for_signal('go') |=> 'sig' ~> 'SELECT $sig::jsonb -> ''data'' AS got') AS id")).rows[0].id as string;
  for (let i = 0; i < 100; i++) {
    const r = await admin.q<{ n: number }>("SELECT count(*)::int AS n FROM df.nodes WHERE instance_id = $1 AND node_type = 'SIGNAL' AND status = 'running'", [id]);
    if (r.rows[0].n > 0) break;
    await sleep(100);
  }
  // From now on the worker's new management sessions wait for the missing standby at COMMIT.
  await admin.q('ALTER ROLE postgres SET synchronous_commit = on');
  await admin.q("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_durable:worker:management'");
  await sleep(500);
  await user.query(`SELECT df.signal($1, 'go', '{"n": 1}')`, [id]);
  let pid = 0;
  for (let i = 0; i < 150 && !pid; i++) {
    const r = await admin.q<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query LIKE '%_take_signal%'");
    pid = r.rows[0]?.pid ?? 0;
    if (!pid) await sleep(100);
  }
  if (!pid) throw new Error('df._take_signal never reached its COMMIT');
  await admin.q('ALTER ROLE postgres RESET synchronous_commit');
  // Every management session opened meanwhile has synchronous_commit = on: end them all (the
  // waiting df._take_signal among them); the pool reconnects with the default again.
  await admin.q("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_durable:worker:management'");
  say(`df._take_signal for ${id} committed locally (backend ${pid}) and was terminated while waiting for the standby`);
  await sleep(12_000);
  const node = (await admin.q<{ status: string; result: unknown }>("SELECT status, result FROM df.nodes WHERE instance_id = $1 AND node_type = 'SIGNAL'", [id])).rows[0];
  const status = (await admin.q<{ status: string }>('SELECT status FROM df.instances WHERE id = $1', [id])).rows[0].status;
  console.log(`after 12 s: instance ${status}; SIGNAL node ${node.status} ${JSON.stringify(node.result)}`);
  if (status !== 'completed' && node.status === 'completed') {
    await user.query(`SELECT df.signal($1, 'go', '{"n": 2}')`, [id]);
    await sleep(3000);
    const after = (await admin.q<{ status: string; out: string | null }>(
      'SELECT i.status, (SELECT output FROM df._execution_log e WHERE e.instance_id = i.id ORDER BY execution_id DESC LIMIT 1) AS out FROM df.instances i WHERE i.id = $1',
      [id],
    )).rows[0];
    console.log(`after a second signal {"n": 2}: instance ${after.status}, output ${after.out}`);
    console.log(`REPRODUCED: the first signal was consumed and recorded, yet the live interpreter kept waiting${after.status === 'completed' ? ' and finished with the second payload' : ''}`);
    code = 3;
  } else {
    console.log('not reproduced');
  }
  await user.end();
} finally {
  await pool.stopAll(5000);
  await admin.end();
  env.cluster.stop();
}
process.exit(code);
