/**
 * `npx tsx chaos/repro-orphaned-lease.ts`: an instance whose run ends with an unexpected
 * (non-transient) error in the worker is never resumed while that worker lives.
 *
 * Worker.dispatch logs "instance run failed unexpectedly; it will be retried when its lease
 * expires", but the lease never expires: Store.heartbeat renews every df._work row whose
 * lease_owner is this worker's epoch, not just the instances it still runs. So nothing claims it
 * until the worker process dies. Any non-transient error in a durable write triggers it (here a
 * cancelled df._commit; in production also a transient error that outlasts the ~40 retries, e.g.
 * PostgreSQL away for more than about 2.5 minutes).
 *
 * Exit 0 = not reproduced, 3 = reproduced (the instance stayed stuck with a fresh lease).
 */
import pg from 'pg';
import { Db, say, setupEnv, sleep, WorkerPool, workerArgs, workerCli } from './lib';

const env = await setupEnv({ db: 'repro', tenant: 'repro_tenant' });
const admin = new Db(env.adminUrl, 2, 'repro-admin');
const pool = new WorkerPool({ cli: workerCli(false), url: env.adminUrl, count: 1, args: workerArgs({ lease: 4 }) });
const locker = new pg.Client({ connectionString: env.adminUrl });
let code = 0;
try {
  pool.fill();
  await sleep(1500);
  await locker.connect();
  await locker.query('BEGIN; LOCK TABLE df._node_runs IN SHARE ROW EXCLUSIVE MODE');
  const user = new pg.Client({ connectionString: env.tenantUrl });
  await user.connect();
  const id = (await user.query("SELECT df.start(df.sleep(1) ~> 'SELECT 2 AS b') AS id")).rows[0].id as string;
  await user.end();
  let pid = 0;
  for (let i = 0; i < 100 && !pid; i++) {
    const r = await admin.q<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_durable:worker:management' AND wait_event_type = 'Lock'");
    pid = r.rows[0]?.pid ?? 0;
    if (!pid) await sleep(100);
  }
  if (!pid) throw new Error('the worker never blocked on df._node_runs');
  await admin.q('SELECT pg_cancel_backend($1)', [pid]); // 57014: not transient
  await locker.query('ROLLBACK');
  say(`cancelled the worker's df._commit for ${id} (backend ${pid}); lock released; watching for 20 s (5 leases)`);
  await sleep(20_000);
  const st = (await admin.q<{ status: string; lease_owner: string | null; lease_left_s: number | null }>(
    'SELECT i.status, w.lease_owner::text, extract(epoch FROM w.lease_until - clock_timestamp())::float8 AS lease_left_s FROM df.instances i LEFT JOIN df._work w ON w.instance_id = i.id WHERE i.id = $1',
    [id],
  )).rows[0];
  const failedUnexpectedly = pool.stats.messages.get('instance run failed unexpectedly; retrying it in 5 s') ?? 0;
  console.log(`instance ${id} after 20 s: ${JSON.stringify(st)}; worker logged "failed unexpectedly" ${failedUnexpectedly} time(s)`);
  if (st.status !== 'completed' && st.lease_owner && (st.lease_left_s ?? 0) > 0) {
    console.log('REPRODUCED: stuck with a lease the live worker keeps renewing; killing the worker lets another one finish it:');
    await pool.kill(0);
    pool.fill();
    for (let i = 0; i < 150; i++) {
      const s = (await admin.q<{ status: string }>('SELECT status FROM df.instances WHERE id = $1', [id])).rows[0].status;
      if (s === 'completed') {
        console.log(`  completed ${((i * 100) / 1000).toFixed(1)} s after the restart`);
        break;
      }
      await sleep(100);
    }
    code = 3;
  } else {
    console.log('not reproduced');
  }
} finally {
  await locker.end().catch(() => undefined);
  await pool.stopAll(5000);
  await admin.end();
  env.cluster.stop();
}
process.exit(code);
