// graphile-worker peer: one job per step, chained. A step job runs, in one transaction on its own
// client, the step's SQL, writes the result row and adds the next step's job; graphile-worker
// then completes (deletes) the job. argv[2] = JSON {url, concurrency, pollMs}.
import { run, Logger } from 'graphile-worker';

const cfg = JSON.parse(process.argv[2]);
const silent = new Logger(() => () => undefined);

async function step(payload, helpers) {
  const { inst, i, n } = payload;
  await helpers.withPgClient(async (c) => {
    await c.query('BEGIN');
    try {
      const r = await c.query('SELECT $1::int + 1 AS v', [i]);
      await c.query('INSERT INTO bench_results (instance, step, v) VALUES ($1, $2, $3)', [inst, i, r.rows[0].v]);
      if (i + 1 < n) await c.query("SELECT graphile_worker.add_job('step', $1::json)", [JSON.stringify({ inst, i: i + 1, n })]);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}

const runner = await run({
  connectionString: cfg.url,
  concurrency: cfg.concurrency,
  maxPoolSize: cfg.concurrency + 2,
  pollInterval: cfg.pollMs,
  noHandleSignals: true,
  logger: silent,
  taskList: { step },
});
process.on('SIGTERM', async () => {
  await runner.stop().catch(() => undefined);
  process.exit(0);
});
process.stdout.write('ready\n');
