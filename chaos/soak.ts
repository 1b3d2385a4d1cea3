/**
 * `npm run soak [-- --minutes 30]`: a long run of the engine running itself: a scheduled sampler
 * (df.wait_for_schedule every minute, as in the seeds), a 2-second ticker loop (df.loop + df.sleep),
 * a pruner workflow (df.prune_executions every 20 s, run by the engine) and steady traffic of
 * short workflows. Every 30 s: worker RSS and the engine tables' row counts and size.
 *
 * Verdicts: worker memory is flat (RSS growth from the end of the warm-up (first third) to the end
 * below --rss-slack MiB) and table growth is bounded (row counts in the second half no higher than
 * 1.5 x the highest count of the first half, after the first prune cycles).
 *
 *   --minutes M (30)   --rate R traffic instances per second (5)   --workers W (2)
 *   --sample S  sampling period in seconds (30)   --retain S  prune cut-off in seconds (60)
 *   --rss-slack MiB (25)   --out FILE   JSON with every sample
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Db, lit, pct, rssMiB, say, setupEnv, sleep, WorkerPool, workerArgs, workerCli } from './lib';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' }, rate: { type: 'string', default: '5' }, workers: { type: 'string', default: '2' },
    sample: { type: 'string', default: '30' }, retain: { type: 'string', default: '60' }, 'rss-slack': { type: 'string', default: '25' },
    out: { type: 'string' },
  },
});
const MINUTES = Number(values.minutes);
const RATE = Number(values.rate);
const W = Number(values.workers);
const SAMPLE_S = Number(values.sample);
const RETAIN_S = Number(values.retain);
const RSS_SLACK = Number(values['rss-slack']);

const hard = setTimeout(() => {
  console.error('soak: hard time limit reached');
  process.exit(2);
}, (MINUTES * 60 + 600) * 1000);
hard.unref();

const env = await setupEnv({ settings: { max_connections: 200 } });
const admin = new Db(env.adminUrl, 2, 'soak-admin');
const tenant = new Db(env.tenantUrl, 2, 'soak-tenant');
const pool = new WorkerPool({ cli: workerCli(true), url: env.adminUrl, count: W, args: workerArgs({ lease: 10, concurrency: 10, poll: 1000, logLevel: 'warn' }) });

interface Sample {
  atS: number;
  rssMiB: number[];
  rows: Record<string, number>;
  dfSizeMiB: number;
  trafficCompleted: number;
  backlog: number;
}
const samples: Sample[] = [];
let exit = 0;
try {
  await tenant.q(`CREATE TABLE soak_samples (at timestamptz NOT NULL DEFAULT clock_timestamp());
                  CREATE TABLE soak_ticks (at timestamptz NOT NULL DEFAULT clock_timestamp())`);
  const cutoff = (label: string, s: number) => `SELECT * FROM df.prune_executions(instance_id => '${label}', completed_before => now() - interval '${s} seconds')`;
  const pruneSql = `SELECT sum(executions_deleted)::int AS executions_deleted, sum(events_deleted)::int AS events_deleted FROM (
      ${['soak-sampler', 'soak-ticker', 'soak-pruner', 'soak-traffic'].map((l) => cutoff(l, RETAIN_S)).join(' UNION ALL ')}) p`;
  const starts = [
    [`df.loop(df.seq(${lit('INSERT INTO soak_samples DEFAULT VALUES RETURNING at')}, df.wait_for_schedule('* * * * *')))`, 'soak-sampler'],
    [`df.loop(df.seq(${lit('INSERT INTO soak_ticks DEFAULT VALUES RETURNING at')}, df.sleep(2)))`, 'soak-ticker'],
    [`df.loop(df.seq(df.sleep(20), ${lit(pruneSql)}))`, 'soak-pruner'],
  ];
  for (const [expr, label] of starts) await tenant.q(`SELECT df.start(${expr}, $1)`, [label]);
  pool.fill();
  say(`soak for ${MINUTES} min: ${W} workers, traffic ${RATE}/s, sampler every minute, ticker every 2 s, pruner every 20 s (retain ${RETAIN_S} s)`);

  const t0 = Date.now();
  const end = t0 + MINUTES * 60_000;
  const traffic = lit('SELECT 1 AS a') + ' ~> ' + lit('SELECT 2 AS b');
  const trafficGraph = (await tenant.q<{ g: string }>(`SELECT ${traffic} AS g`)).rows[0].g;
  let started = 0;
  const trafficLoop = (async () => {
    while (Date.now() < end) {
      const t = Date.now();
      await tenant.q("SELECT count(df.start($1::text, 'soak-traffic')) FROM generate_series(1, $2::int)", [trafficGraph, RATE]);
      started += RATE;
      await sleep(Math.max(0, 1000 - (Date.now() - t)));
    }
  })();
  let completedTotal = 0;
  const takeSample = async () => {
    const rows = (await admin.q<Record<string, number>>(
      `SELECT (SELECT count(*) FROM df.instances)::int AS instances, (SELECT count(*) FROM df.nodes)::int AS nodes,
              (SELECT count(*) FROM df._node_runs)::int AS node_runs, (SELECT count(*) FROM df._execution_log)::int AS executions,
              (SELECT count(*) FROM df._work)::int AS work`,
    )).rows[0];
    const size = (await admin.q<{ b: string }>("SELECT sum(pg_total_relation_size(c.oid))::bigint AS b FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'df' AND c.relkind = 'r'")).rows[0].b;
    const backlog = (await admin.q<{ n: number }>("SELECT count(*)::int AS n FROM df._work w JOIN df.instances i ON i.id = w.instance_id WHERE i.label = 'soak-traffic' AND w.due_at < now() - interval '5 seconds'")).rows[0].n;
    const s: Sample = {
      atS: Math.round((Date.now() - t0) / 1000),
      rssMiB: pool.procs.map((p) => Math.round((p?.child.pid ? rssMiB(p.child.pid) ?? 0 : 0) * 10) / 10),
      rows, dfSizeMiB: Math.round((Number(size) / 1048576) * 10) / 10, trafficCompleted: completedTotal, backlog,
    };
    samples.push(s);
    say(`t=${s.atS}s rss ${s.rssMiB.join('/')} MiB, rows ${JSON.stringify(rows)}, df ${s.dfSizeMiB} MiB, traffic started ${started}, backlog ${backlog}`);
  };
  await takeSample();
  while (Date.now() < end) {
    await sleep(Math.min(SAMPLE_S * 1000, Math.max(0, end - Date.now())));
    await takeSample();
    if (pool.alive().length < W) throw new Error(`a worker exited: ${JSON.stringify(pool.stats.unexpectedExits)}`);
  }
  await trafficLoop;

  // Timers of the soak: every sampler tick against its minute, every ticker interval.
  const sampleAt = (await admin.q<{ ms: number }>('SELECT extract(epoch FROM at) * 1000 AS ms FROM soak_samples ORDER BY at')).rows.map((r) => Number(r.ms));
  const tickAt = (await admin.q<{ ms: number }>('SELECT extract(epoch FROM at) * 1000 AS ms FROM soak_ticks ORDER BY at')).rows.map((r) => Number(r.ms));
  const cronLate = sampleAt.slice(1).map((ms) => ms % 60_000); // after the first, each sample runs right after a minute tick
  const tickGaps = tickAt.slice(1).map((ms, i) => ms - tickAt[i]);
  const failed = (await admin.q<{ n: number }>("SELECT count(*)::int AS n FROM df.instances WHERE status IN ('failed', 'cancelled')")).rows[0].n;
  const loops = (await admin.q<{ label: string; status: string; executions: number }>(
    "SELECT i.label, i.status, (SELECT max(execution_id) FROM df._execution_log e WHERE e.instance_id = i.id)::int AS executions FROM df.instances i WHERE i.label IN ('soak-sampler', 'soak-ticker', 'soak-pruner')",
  )).rows;
  const pruned = (await admin.q<{ result: string }>(
    "SELECT n.result::text FROM df.nodes n JOIN df.instances i ON i.id = n.instance_id WHERE i.label = 'soak-pruner' AND n.node_type = 'SQL'",
  )).rows[0]?.result;

  // Verdicts.
  const warm = samples.filter((s) => s.atS >= (MINUTES * 60) / 3);
  const rssFrom = warm[0]?.rssMiB ?? [];
  const rssTo = samples[samples.length - 1].rssMiB;
  const rssGrowth = rssTo.map((v, i) => Math.round((v - (rssFrom[i] ?? v)) * 10) / 10);
  const half = samples.filter((s) => s.atS >= (MINUTES * 60) / 2);
  const firstHalf = samples.filter((s) => s.atS < (MINUTES * 60) / 2 && s.atS >= 2 * RETAIN_S);
  const growth: Record<string, { firstHalfMax: number; secondHalfMax: number; bounded: boolean }> = {};
  for (const k of ['instances', 'nodes', 'node_runs', 'executions']) {
    const a = Math.max(0, ...firstHalf.map((s) => s.rows[k]));
    const b = Math.max(0, ...half.map((s) => s.rows[k]));
    growth[k] = { firstHalfMax: a, secondHalfMax: b, bounded: firstHalf.length === 0 || b <= Math.max(a * 1.5, a + 200) };
  }
  const memoryFlat = rssGrowth.every((g) => g <= RSS_SLACK);
  const tablesBounded = Object.values(growth).every((g) => g.bounded);
  const result = {
    when: new Date().toISOString(), minutes: MINUTES, workers: W, ratePerS: RATE, retainS: RETAIN_S,
    trafficStarted: started, failedOrCancelled: failed, loops, lastPrune: pruned,
    rss: { fromWarmup: rssFrom, end: rssTo, growthMiB: rssGrowth, maxMiB: Math.max(...samples.flatMap((s) => s.rssMiB)), flat: memoryFlat, slackMiB: RSS_SLACK },
    tables: growth, tablesBounded, dfSizeMiB: { min: Math.min(...half.map((s) => s.dfSizeMiB)), max: Math.max(...samples.map((s) => s.dfSizeMiB)) },
    schedule: { ticks: cronLate.length, lateMsP50: Math.round(pct(cronLate, 50)), lateMsMax: Math.round(Math.max(0, ...cronLate)) },
    ticker: { ticks: tickGaps.length, gapMsP50: Math.round(pct(tickGaps, 50)), gapMsMax: Math.round(Math.max(0, ...tickGaps)), gapMsMin: Math.round(Math.min(...tickGaps)) },
    samples,
  };
  console.log(`\nsoak ${MINUTES} min, ${W} workers, ${RATE} traffic/s (${started} started, ${failed} failed/cancelled):`);
  console.log(`  worker RSS after warm-up ${rssFrom.join('/')} MiB -> end ${rssTo.join('/')} MiB (growth ${rssGrowth.join('/')} MiB, slack ${RSS_SLACK}): ${memoryFlat ? 'flat' : 'GROWING'}`);
  console.log(`  rows 1st half max -> 2nd half max: ${Object.entries(growth).map(([k, g]) => `${k} ${g.firstHalfMax}->${g.secondHalfMax}`).join(', ')}: ${tablesBounded ? 'bounded' : 'GROWING'}; df tables ${result.dfSizeMiB.min}-${result.dfSizeMiB.max} MiB`);
  console.log(`  schedule: ${cronLate.length} minute ticks, sample after tick p50 ${result.schedule.lateMsP50} ms, max ${result.schedule.lateMsMax} ms; ticker: ${tickGaps.length} gaps, p50 ${result.ticker.gapMsP50} ms, min ${result.ticker.gapMsMin} ms, max ${result.ticker.gapMsMax} ms`);
  console.log(`  loops: ${JSON.stringify(loops)}; last prune ${pruned}`);
  if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 2));
  if (!memoryFlat || !tablesBounded || failed > 0 || loops.some((l) => l.status !== 'running')) exit = 1;
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
