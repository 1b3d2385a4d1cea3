/**
 * `pg-durable demo` (npm run demo): the main job on the embedded default. Starts a throwaway
 * PostgreSQL, installs pg_durable (real plv8 when the server has it, the plv8 host otherwise, and
 * says which), runs a worker, and replays the seeds' walkthrough as a user would in psql, with a
 * line per step as it completes. Sleeps are scaled down so the whole tour takes about half a minute.
 */
import pg from 'pg';
import { startCluster } from '../embedded/cluster';
import { parseConfig } from '../worker/config';
import { createLogger } from '../worker/log';
import { Worker } from '../worker/worker';
import { formatTable } from './monitor-util';
import { packageVersion } from './worker';

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const DIM = process.stdout.isTTY ? (s: string) => `\x1b[2m${s}\x1b[0m` : (s: string) => s;
const BOLD = process.stdout.isTTY ? (s: string) => `\x1b[1m${s}\x1b[0m` : (s: string) => s;

interface Example {
  title: string;
  sql: string;
  label?: string;
  show: (id: string) => string[];
}

const EXAMPLES: Example[] = [
  {
    title: 'Hello world: one durable step',
    sql: `SELECT df.start($sql$ SELECT 'Hello, durable world!' AS message $sql$) AS id`,
    show: (id) => [`SELECT df.status('${id}')`, `SELECT df.result('${id}')`, 'SELECT * FROM df.list_instances()', `SELECT df.explain('${id}')`, `SELECT * FROM df.instance_executions('${id}')`],
  },
  {
    title: 'Sequential steps (~>) with named results (|=>); pg_sleep(1) stands in for the seed\'s pg_sleep(5)',
    label: 'sequential-timing',
    sql: `SELECT df.start(
       'SELECT now() as step1' |=> 't1'
    ~> 'SELECT pg_sleep(1)'
    ~> 'SELECT now() as step2' |=> 't2'
    ~> 'SELECT now() as step3' |=> 't3',
    'sequential-timing') AS id`,
    show: (id) => [`SELECT df.result('${id}')`, `SELECT node_type, result_name, result, node_id, left_node, right_node FROM df.instance_nodes('${id}')`],
  },
  {
    title: 'Parallel branches (&): both branches sleep at the same time, the join waits for both',
    label: 'parallel-sleep',
    sql: `SELECT df.start(
    ('SELECT now() as branch1' |=> 'b1' ~> 'SELECT pg_sleep(2)')
    &
    ('SELECT now() as branch2' |=> 'b2' ~> 'SELECT pg_sleep(1)')
    ~> 'SELECT now() as after_join' |=> 'final',
    'parallel-sleep') AS id`,
    show: (id) => [`SELECT * FROM df.instance_executions('${id}')`, `SELECT df.explain('${id}')`],
  },
  {
    title: 'Race (|): the first branch to finish wins, the other is cancelled',
    label: 'race-test',
    sql: `SELECT df.start('SELECT pg_sleep(1)' | 'SELECT pg_sleep(90)' ~> 'SELECT ''fast'' as winner', 'race-test') AS id`,
    show: (id) => [`SELECT df.result('${id}')`, `SELECT df.explain('${id}')`],
  },
  {
    title: 'Conditional (?> !>)',
    label: 'conditional-test',
    sql: `SELECT df.start(
    'SELECT 42 = 6*7 as condition' |=> 'cond'
    ?> 'SELECT ''Branch A'' as result'
    !> 'SELECT ''Branch B'' as result',
    'conditional-test') AS id`,
    show: (id) => [`SELECT df.result('${id}')`, `SELECT node_type, result_name, result, inferred_status FROM df.instance_nodes('${id}') ORDER BY node_type`],
  },
  {
    title: 'Variables: capture a result and reuse it as $x',
    label: 'variable-test',
    sql: `SELECT df.start(
    'SELECT 42 as answer' |=> 'x'
    ~> 'SELECT $x * 2 as doubled'
    ~> 'SELECT $x + 10 as plus_ten',
    'variable-test') AS id`,
    show: (id) => [`SELECT df.result('${id}')`],
  },
  {
    title: 'Each step is its own transaction (different txid per step), run as the user',
    label: 'txid-demo',
    sql: `SELECT df.start(
    'SELECT user, txid_current() as txid, ''step1'' as step' |=> 's1'
    ~> 'SELECT user, txid_current() as txid, ''step2'' as step'
    ~> ('SELECT user, txid_current() as txid, ''race_branch1'' as branch' | 'SELECT user, txid_current() as txid, ''race_branch2'' as branch')
    ~> 'SELECT user, txid_current() as txid, ''final'' as step',
    'txid-demo') AS id`,
    show: (id) => [`SELECT node_type, result_name, result FROM df.instance_nodes('${id}') WHERE node_type = 'SQL' AND result IS NOT NULL`],
  },
];

function printResult(sql: string, r: pg.QueryResult): void {
  console.log(DIM(`postgres=> ${sql};`));
  if (r.fields.length === 1 && typeof r.rows[0]?.[r.fields[0].name] === 'string' && String(r.rows[0][r.fields[0].name]).includes('\n')) {
    console.log(`${r.fields[0].name}\n${'-'.repeat(Math.min(72, r.fields[0].name.length + 2))}\n${r.rows[0][r.fields[0].name]}\n`);
    return;
  }
  const cols = r.fields.map((f) => f.name);
  const numeric = r.fields.filter((f) => [20, 21, 23, 700, 701, 1700].includes(f.dataTypeID)).map((f) => f.name);
  const rows = r.rows.map((row) => Object.fromEntries(cols.map((c) => [c, row[c] !== null && typeof row[c] === 'object' && !(row[c] instanceof Date) ? JSON.stringify(row[c]) : row[c]])));
  console.log(`${formatTable(cols, rows, numeric)}\n`);
}

/** Prints a line per finished step until the instance ends. */
async function follow(client: pg.Client, id: string): Promise<string> {
  const seen = new Set<string>();
  const started = Date.now();
  for (;;) {
    const r = await client.query<{ id: string; node_type: string; query: string | null; status: string; updated_at: Date }>(
      "SELECT id, node_type, query, status, updated_at FROM df.nodes WHERE instance_id = $1 AND node_type NOT IN ('THEN','IF','JOIN','RACE','LOOP') AND status IN ('completed','failed') ORDER BY updated_at",
      [id],
    );
    for (const n of r.rows) {
      if (seen.has(n.id)) continue;
      seen.add(n.id);
      const what = n.node_type === 'SQL' ? (n.query ?? '').replace(/\s+/g, ' ').trim().slice(0, 60) : n.node_type;
      console.log(DIM(`   ${n.status === 'completed' ? '✓' : '✗'} +${((Date.now() - started) / 1000).toFixed(1)}s  step ${n.id}  ${what}`));
    }
    const status = (await client.query<{ s: string }>('SELECT df.status($1) AS s', [id])).rows[0].s;
    if (TERMINAL.has(status)) return status;
    await new Promise((res) => setTimeout(res, 100));
  }
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    console.log('usage: pg-durable demo\n\nStarts a throwaway PostgreSQL with pg_durable and a worker, and runs the walkthrough.');
    return 0;
  }
  console.log(BOLD(`pg_durable ${packageVersion()} demo`));
  console.log('Starting a throwaway PostgreSQL cluster ...');
  // Ctrl-C (or a SIGTERM) mid-tour must not leave the throwaway server running: stop it, remove
  // its directory and exit 130/143. The same happens if the process exits any other way.
  const cluster = await startCluster({ cleanup: 'signals' });
  console.log(
    cluster.flavor === 'plv8'
      ? 'This server has plv8: installing the real pg_durable extension.'
      : 'This server has no plv8: installing pg_durable through the plv8 host (the same bundle, run by Node via PL/Python).',
  );
  const worker = new Worker(parseConfig(['--database-url', cluster.url('postgres'), '--poll-interval', '100']), createLogger('warn'), undefined, packageVersion());
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  let user: pg.Client | null = null;
  try {
    await admin.connect();
    await admin.query('CREATE EXTENSION pg_durable CASCADE');
    await admin.query('CREATE USER franck');
    await admin.query('GRANT CREATE ON DATABASE postgres TO franck');
    await admin.query("SET client_min_messages = warning; SELECT df.grant_usage('franck')");
    console.log(`Cluster: ${cluster.url('postgres')}\nCREATE EXTENSION pg_durable; CREATE USER franck; SELECT df.grant_usage('franck');`);
    await worker.start();
    console.log('Worker started (epoch row in df._worker_epoch).\n');
    user = new pg.Client({ connectionString: cluster.url('postgres', 'franck') });
    await user.connect();
    for (const ex of EXAMPLES) {
      console.log(BOLD(`-- ${ex.title}`));
      const r = await user.query(ex.sql);
      printResult(ex.sql, r);
      const id = r.rows[0].id as string;
      const status = await follow(user, id);
      console.log(DIM(`   instance ${id} ${status}\n`));
      for (const q of ex.show(id)) printResult(q, await user.query(q));
    }
    console.log(BOLD('-- A scheduled loop: sample pg_stat_activity every minute (first sample shown, then cancelled)'));
    const sampler = `SELECT df.start(@> ('SELECT datname, usename, state FROM pg_stat_activity' ~> df.wait_for_schedule('*/1 * * * *')), 'pg-stat-activity-sampler') AS id`;
    const s = await user.query(sampler);
    printResult(sampler, s);
    const sid = s.rows[0].id as string;
    for (let i = 0; i < 50; i++) {
      const st = (await user.query("SELECT count(*)::int AS n FROM df.nodes WHERE instance_id = $1 AND node_type = 'SQL' AND status = 'completed'", [sid])).rows[0].n;
      if (st > 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    for (const q of [`SELECT df.explain('${sid}')`, `SELECT df.cancel('${sid}', 'demo over')`, 'SELECT * FROM df.list_instances()']) printResult(q, await user.query(q));
    printResult('SELECT * FROM df.metrics()', await admin.query('SELECT * FROM df.metrics()'));
    console.log(BOLD('Done.') + ' Run the worker against your own database with: npx pg-durable worker --database-url postgresql://...');
    return 0;
  } finally {
    await user?.end().catch(() => undefined);
    await worker.stop(5).catch(() => undefined);
    await admin.end().catch(() => undefined);
    cluster.stop();
  }
}
