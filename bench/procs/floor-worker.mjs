// The floor: the same work written by hand with `pg`. For each step, one transaction that runs the
// step's SQL and writes its result row (BEGIN; SELECT $i + 1; INSERT result; COMMIT).
// argv[2] = JSON {url, concurrency}. Prints "ready" once connected; each stdin line
// `go {"batch","from","to","stride","steps"}` runs instances from, from+stride, ... < to on
// `concurrency` connections and prints "done <batch>".
import pg from 'pg';

const cfg = JSON.parse(process.argv[2]);
const clients = [];
for (let i = 0; i < cfg.concurrency; i++) {
  const c = new pg.Client({ connectionString: cfg.url, application_name: 'bench:floor' });
  await c.connect();
  clients.push(c);
}

async function step(c, instance, i) {
  await c.query('BEGIN');
  try {
    const r = await c.query('SELECT $1::int + 1 AS v', [i]);
    await c.query('INSERT INTO bench_results (instance, step, v) VALUES ($1, $2, $3)', [instance, i, r.rows[0].v]);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function run(job) {
  let next = job.from;
  const loop = async (c) => {
    for (;;) {
      const instance = next;
      if (instance >= job.to) return;
      next += job.stride;
      for (let i = 0; i < job.steps; i++) await step(c, instance, i);
    }
  };
  await Promise.all(clients.map(loop));
}

process.stdin.setEncoding('utf8');
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    if (!line.startsWith('go ')) continue;
    const job = JSON.parse(line.slice(3));
    run(job).then(
      () => process.stdout.write(`done ${job.batch}\n`),
      (err) => { process.stderr.write(`floor failed: ${err.stack}\n`); process.exit(1); },
    );
  }
});
process.on('SIGTERM', async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  process.exit(0);
});
process.stdout.write('ready\n');
