/**
 * `npm run chaos:load [-- options]`: N instances of a trivial one-step workflow through one database
 * and W workers: time to enqueue (df.start as the tenant), time to drain, throughput, failures, peak
 * worker RSS. Durable settings by default (fsync, synchronous_commit and full_page_writes on).
 *
 *   --instances N   (50000)    --workers W (4)    --concurrency C (10, per worker)
 *   --batch N       df.start calls per enqueue statement (2500)
 *   --no-fsync      fsync = off (synchronous_commit stays on)
 *   --out FILE      JSON result (default: printed only)
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Db, rssMiB, say, setupEnv, sleep, WorkerPool, workerArgs, workerCli } from './lib';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '50000' }, workers: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '10' }, batch: { type: 'string', default: '2500' },
    'no-fsync': { type: 'boolean', default: false }, out: { type: 'string' },
  },
});
const N = Number(values.instances);
const W = Number(values.workers);
const C = Number(values.concurrency);
const BATCH = Number(values.batch);
const durable = !values['no-fsync'];

const hard = setTimeout(() => {
  console.error('load: hard time limit (60 min) reached');
  process.exit(2);
}, 60 * 60_000);
hard.unref();

const env = await setupEnv({ settings: { max_connections: 200, ...(durable ? { fsync: 'on', full_page_writes: 'on' } : {}) } });
const admin = new Db(env.adminUrl, 2, 'load-admin');
const tenant = new Db(env.tenantUrl, 1, 'load-tenant');
const pool = new WorkerPool({ cli: workerCli(true), url: env.adminUrl, count: W, args: workerArgs({ lease: 30, concurrency: C, poll: 1000, logLevel: 'warn' }) });
let exit = 0;
try {
  const settings = (await admin.q<{ s: string }>("SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) AS s FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_connections')")).rows[0].s;
  say(`${N} instances, ${W} workers x concurrency ${C}; ${settings}`);
  const t0 = Date.now();
  for (let done = 0; done < N; done += BATCH) {
    const n = Math.min(BATCH, N - done);
    await tenant.q('SELECT count(df.start($1::text)) FROM generate_series(1, $2::int)', ["SELECT 1 AS one", n], { timeoutMs: 600_000 });
  }
  const enqueueMs = Date.now() - t0;
  say(`enqueued ${N} in ${(enqueueMs / 1000).toFixed(1)} s (${Math.round(N / (enqueueMs / 1000))}/s); starting ${W} workers`);

  const t1 = Date.now();
  pool.fill();
  const peak = new Map<number, number>();
  let last = 0;
  for (;;) {
    await sleep(2000);
    pool.procs.forEach((p, i) => {
      const r = p?.child.pid ? rssMiB(p.child.pid) : null;
      if (r !== null) peak.set(i, Math.max(peak.get(i) ?? 0, r));
    });
    const left = (await admin.q<{ n: number }>('SELECT count(*)::int AS n FROM df._work')).rows[0].n;
    if (Date.now() - last > 15_000) {
      say(`${N - left} done, ${left} left, ${Math.round((N - left) / ((Date.now() - t1) / 1000))}/s`);
      last = Date.now();
    }
    if (left === 0) break;
    if (pool.alive().length < W) throw new Error(`a worker exited: ${JSON.stringify(pool.stats.unexpectedExits)}`);
  }
  const drainMs = Date.now() - t1;
  const st = (await admin.q<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM df.instances GROUP BY status')).rows;
  const size = (await admin.q<{ s: string }>("SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) AS s FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'df' AND c.relkind = 'r'")).rows[0].s;
  const completed = st.find((s) => s.status === 'completed')?.n ?? 0;
  const result = {
    when: new Date().toISOString(), instances: N, workers: W, concurrency: C, settings,
    enqueueS: +(enqueueMs / 1000).toFixed(1), enqueuePerS: Math.round(N / (enqueueMs / 1000)),
    drainS: +(drainMs / 1000).toFixed(1), instancesPerS: Math.round(N / (drainMs / 1000)),
    completed, notCompleted: N - completed, statuses: st,
    peakRssMiB: [...peak.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => Math.round(v)),
    dfTablesSize: size, workerExits: pool.stats.unexpectedExits.length,
  };
  console.log(`\nload: ${N} one-step instances, ${W} workers x ${C}: enqueue ${result.enqueueS} s (${result.enqueuePerS}/s), ` +
    `drain ${result.drainS} s = ${result.instancesPerS} instances/s; completed ${completed}, not completed ${N - completed}; ` +
    `peak worker RSS ${result.peakRssMiB.join('/')} MiB; df tables ${size}\n`);
  console.log(JSON.stringify(result));
  if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 2));
  if (completed !== N) exit = 1;
} catch (err) {
  console.error(err);
  exit = 1;
} finally {
  await pool.stopAll(10_000);
  await admin.end();
  await tenant.end();
  env.cluster.stop();
}
process.exit(exit);
