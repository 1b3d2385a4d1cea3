/**
 * Worker observability (`--metrics-port`): /metrics parses as Prometheus text and its counters
 * move when workflows run (steps by type and outcome, retries, latency histograms, claims, HTTP
 * egress blocked, transient faults by SQLSTATE); /healthz is 200 while the worker's heartbeats are
 * fresh, 503 when they stop (the heartbeat table locked) or while the worker waits for pg_durable,
 * and 200 again afterwards.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asRole, createTenant, freshDatabase, scalar, url, withPg } from '../support/db';
import { eventually, metricsAddress, startWorker, waitFor, type WorkerHandle } from '../support/worker';

interface Sample {
  labels?: Record<string, string>;
  value?: string;
  count?: string;
  sum?: string;
  buckets?: Record<string, string>;
}
interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Sample[];
}

let db: string;
let tenant: string;
let worker: WorkerHandle;
let base: string;

type Scrape = Map<string, Family> & { text: string };

async function scrape(address = base): Promise<Scrape> {
  const res = await fetch(`${address}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const families = parsePrometheusTextFormat(text) as Family[]; // throws on a malformed line
  return Object.assign(new Map(families.map((f) => [f.name, f])), { text });
}

/**
 * Sum of a counter's samples whose labels include `labels`; for a histogram, of its `_count`
 * samples, read from the text (parse-prometheus-text-format merges a labelled histogram's series).
 */
function total(scraped: Scrape, name: string, labels: Record<string, string> = {}): number {
  const f = scraped.get(name);
  if (!f) return 0;
  if (f.type === 'HISTOGRAM') {
    let n = 0;
    for (const line of scraped.text.split('\n')) {
      const m = new RegExp(`^${name}_count\\{(.*)\\} (\\S+)$`).exec(line);
      if (!m) continue;
      const have = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) n += Number(m[2]);
    }
    return n;
  }
  return f.metrics
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((n, m) => n + Number(m.value), 0);
}

const health = async (address = base) => {
  const res = await fetch(`${address}/healthz`);
  return { status: res.status, body: (await res.json()) as { status: string } };
};

beforeAll(async () => {
  db = await freshDatabase('metrics');
  tenant = await createTenant(db, 'metrics_user', { http: true });
  worker = startWorker(url(db), { extraArgs: ['--metrics-port', '0'] });
  base = await metricsAddress(worker);
  await eventually(async () => (await health()).status === 200, 15_000, 'a healthy worker');
});

afterAll(() => worker?.stop());

const run = (expr: string) =>
  asRole(db, tenant, async (c) => {
    const id = await scalar<string>(c, `SELECT df.start(${expr})`);
    return waitFor(c, id);
  });

describe('/metrics', () => {
  it('parses as Prometheus text and lists every worker metric with its help', async () => {
    const m = await scrape();
    for (const name of [
      'pg_durable_worker_steps_total', 'pg_durable_worker_step_retries_total', 'pg_durable_worker_step_duration_seconds',
      'pg_durable_worker_checkpoint_duration_seconds', 'pg_durable_worker_instances_claimed_total', 'pg_durable_worker_claims_total',
      'pg_durable_worker_instances_active',
      'pg_durable_worker_instances_running', 'pg_durable_worker_instances_waiting', 'pg_durable_worker_lease_takeovers_total',
      'pg_durable_worker_transient_faults_total', 'pg_durable_worker_http_egress_blocked_total', 'pg_durable_worker_heartbeat_age_seconds',
      'process_cpu_user_seconds_total',
    ]) {
      expect(m.has(name), name).toBe(true);
      expect(m.get(name)!.help.length, name).toBeGreaterThan(0);
    }
    expect(m.get('pg_durable_worker_step_duration_seconds')!.type).toBe('HISTOGRAM');
  });

  it('counters move when workflows run', async () => {
    const before = await scrape();
    expect(await run("'SELECT 1 AS one' ~> 'SELECT 2 AS two'")).toBe('completed');
    expect(await run("df.retry('SELECT 1/0', 2, 0)")).toBe('failed');
    expect(await run("df.http('http://169.254.169.254/latest/meta-data/', 'GET')")).toBe('failed');
    const after = await scrape();
    const moved = (name: string, labels: Record<string, string> = {}) => total(after, name, labels) - total(before, name, labels);
    expect(moved('pg_durable_worker_steps_total', { type: 'SQL', outcome: 'completed' })).toBe(2);
    expect(moved('pg_durable_worker_steps_total', { type: 'SQL', outcome: 'failed' })).toBe(2);
    expect(moved('pg_durable_worker_steps_total', { type: 'HTTP', outcome: 'failed' })).toBe(1);
    expect(moved('pg_durable_worker_step_retries_total', { type: 'SQL', reason: 'retry_node' })).toBe(1);
    expect(moved('pg_durable_worker_step_duration_seconds', { type: 'SQL' })).toBe(4);
    expect(moved('pg_durable_worker_checkpoint_duration_seconds', { kind: 'step' })).toBeGreaterThanOrEqual(2);
    expect(moved('pg_durable_worker_checkpoint_duration_seconds', { kind: 'write' })).toBeGreaterThanOrEqual(2);
    expect(moved('pg_durable_worker_instances_claimed_total')).toBe(3);
    expect(moved('pg_durable_worker_http_egress_blocked_total')).toBe(1);
  });

  it('counts claims: an idle worker claims once per start it is woken for, not again when the instance completes', async () => {
    const quiet = await freshDatabase('metrics_claims');
    const user = await createTenant(quiet, 'claims_user');
    // No timed poll during the test: every claim is one a NOTIFY or a completion asked for.
    const w = startWorker(url(quiet), { extraArgs: ['--metrics-port', '0', '--poll-interval', '600000'] });
    try {
      const address = await metricsAddress(w);
      await eventually(async () => total(await scrape(address), 'pg_durable_worker_claims_total') >= 1, 15_000, 'the first claim');
      const before = await scrape(address);
      for (let i = 0; i < 5; i++) {
        const status = await asRole(quiet, user, async (c) => waitFor(c, await scalar<string>(c, `SELECT df.start('SELECT ${i} AS i')`)));
        expect(status).toBe('completed');
      }
      await new Promise((r) => setTimeout(r, 300)); // room for a claim that would trail the last completion
      const after = await scrape(address);
      const moved = (name: string) => total(after, name) - total(before, name);
      expect(moved('pg_durable_worker_instances_claimed_total')).toBe(5);
      expect(moved('pg_durable_worker_claims_total')).toBe(5);
    } finally {
      await w.stop();
    }
  });

  it('counts a transient fault by SQLSTATE when a step loses its connection, and the step is retried', async () => {
    const before = await scrape();
    const id = await asRole(db, tenant, (c) => scalar<string>(c, "SELECT df.start('SELECT pg_sleep(1.5), 7 AS seven')"));
    await withPg(db, async (admin) => {
      await eventually(async () => {
        const r = await admin.query(
          "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE application_name = 'pg_durable:worker:workflow-sql' AND query LIKE '%pg_sleep(1.5)%' AND state = 'active'",
        );
        return r.rows.length > 0;
      }, 10_000, 'the step to be running');
    });
    expect(await asRole(db, tenant, (c) => waitFor(c, id))).toBe('completed');
    const after = await scrape();
    expect(total(after, 'pg_durable_worker_transient_faults_total', { sqlstate: '57P01' }) - total(before, 'pg_durable_worker_transient_faults_total', { sqlstate: '57P01' })).toBeGreaterThanOrEqual(1);
    expect(total(after, 'pg_durable_worker_step_retries_total', { type: 'SQL', reason: 'transient' }) - total(before, 'pg_durable_worker_step_retries_total', { type: 'SQL', reason: 'transient' })).toBeGreaterThanOrEqual(1);
  });
});

describe('lease takeovers', () => {
  it('a worker that resumes a crashed worker\'s instance counts a takeover', async () => {
    const other = await freshDatabase('metrics_takeover');
    const user = await createTenant(other, 'takeover_user');
    const crashing = startWorker(url(other));
    const id = await asRole(other, user, (c) => scalar<string>(c, "SELECT df.start('SELECT 1 AS one' ~> 'SELECT pg_sleep(2), 2 AS two')"));
    await withPg(other, (c) =>
      eventually(async () => (await c.query("SELECT 1 FROM df._runs WHERE instance_id = $1 AND status = 'completed'", [id])).rows.length > 0, 15_000, 'the first step'),
    );
    await crashing.kill(); // SIGKILL: its lease (4 s) must expire before anyone takes over
    const taker = startWorker(url(other), { extraArgs: ['--metrics-port', '0'] });
    try {
      const address = await metricsAddress(taker);
      expect(await asRole(other, user, (c) => waitFor(c, id))).toBe('completed');
      const text = await (await fetch(`${address}/metrics`)).text();
      expect(text).toMatch(/^pg_durable_worker_lease_takeovers_total 1$/m);
    } finally {
      await taker.stop();
    }
  });
});

describe('/healthz', () => {
  it('flips to 503 when heartbeats stop succeeding, and back to 200 when they resume', async () => {
    expect(await health()).toMatchObject({ status: 200, body: { status: 'ok' } });
    const admin = new pg.Client({ connectionString: url(db) });
    await admin.connect();
    try {
      // Heartbeats write df._worker_epoch; holding this lock blocks them (the worker's heartbeat
      // period is 1 s here, so it is stale after 3 s).
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE df._worker_epoch IN ACCESS EXCLUSIVE MODE');
      await eventually(async () => (await health()).status === 503, 15_000, '/healthz to report stale heartbeats');
      expect((await health()).body.status).toBe('stale');
      await admin.query('ROLLBACK');
    } finally {
      await admin.end();
    }
    await eventually(async () => (await health()).status === 200, 15_000, '/healthz to recover');
  });

  it('is 503 while the worker waits for CREATE EXTENSION pg_durable, 200 once it works', async () => {
    const bare = `metrics_bare_${Date.now().toString(36)}`;
    await withPg('postgres', (c) => c.query(`CREATE DATABASE ${bare}`));
    const waiting = startWorker(url(bare), { extraArgs: ['--metrics-port', '0'] });
    try {
      const address = await metricsAddress(waiting);
      await eventually(async () => waiting.logs.some((l) => String(l.msg).includes('waiting for CREATE EXTENSION')), 15_000, 'the waiting log');
      expect(await health(address)).toMatchObject({ status: 503, body: { status: 'waiting' } });
      await withPg(bare, (c) => c.query('CREATE EXTENSION pg_durable CASCADE'));
      await eventually(async () => (await health(address)).status === 200, 30_000, 'the worker to start working');
      await waiting.stop();
      await expect(fetch(`${address}/healthz`)).rejects.toThrow(); // a stopped worker answers nothing
    } finally {
      await waiting.stop();
    }
  });
});
