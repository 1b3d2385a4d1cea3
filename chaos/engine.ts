/**
 * The chaos run: start a mixed workload as a tenant while a fault injector SIGKILLs workers (two or
 * more at once, sometimes all of them), terminates the workers' backends and restarts PostgreSQL
 * (fast and immediate shutdown), sends signals at random moments (also while no worker is alive and
 * while the server is down), then lets the system drain and checks every invariant:
 *
 *   wrong_state / wrong_result   every instance completed with the result its graph must produce
 *   duplicate_effect             no ledger step applied twice (the ledger has no unique constraint)
 *   unexpected_effect            no effect of a step that must not run (race loser, extra loop tick)
 *   missing_effect               every step that must have run left its row
 *   missing_checkpoint           every ledger row is named by a completed SQL node run (lid)
 *   lost_effect                  every completed SQL checkpoint names a ledger row that exists
 *   signal_lost                  every signal the driver sent is stored and consumed exactly once
 *   timer_early / timer_late     SLEEP / WAIT_SCHEDULE ended at or after its deadline, within bound
 *   worker_unexpected_exit       no worker process died by itself
 *   stuck                        nothing left unfinished after the drain
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import { Db, pct, restartPostgres, rng, say, setupEnv, sleep, WorkerPool, workerArgs, workerCli, type Env } from './lib';
import { LEDGER_DDL, makeSpec, pickKind, XDB, XDB_LEDGER_START, type Spec } from './workflows';

export interface ChaosOptions {
  workflows: number;
  workers: number;
  minKills: number;
  minPgRestarts: number;
  minTerminations: number;
  /** Seconds over which the workflows are started. */
  startSpreadSeconds: number;
  /** Pause between fault events (uniform in this range, seconds). */
  faultGap: [number, number];
  /** Hard cap on the fault phase. */
  maxChaosSeconds: number;
  /** Hard cap on the drain after the last fault. */
  drainSeconds: number;
  leaseSeconds: number;
  concurrency: number;
  seed: number;
  allowSchedule: boolean;
  snapshotCli: boolean;
  outDir?: string;
  /** Test hook: runs after the drain, before the checks (the self-check plants violations here). */
  beforeVerify?: (admin: Db) => Promise<void>;
}

export const FULL: ChaosOptions = {
  workflows: 600, workers: 3, minKills: 50, minPgRestarts: 6, minTerminations: 10, startSpreadSeconds: 200,
  faultGap: [3, 6], maxChaosSeconds: 600, drainSeconds: 240, leaseSeconds: 4, concurrency: 8, seed: 1, allowSchedule: true, snapshotCli: true,
};

export const SHORT: ChaosOptions = {
  workflows: 70, workers: 3, minKills: 8, minPgRestarts: 2, minTerminations: 2, startSpreadSeconds: 35,
  faultGap: [3, 5], maxChaosSeconds: 100, drainSeconds: 120, leaseSeconds: 4, concurrency: 8, seed: 7, allowSchedule: true, snapshotCli: false,
};

export interface Report {
  runId: string;
  seed: number;
  outDir: string;
  durationS: number;
  chaosS: number;
  drainS: number;
  instances: number;
  byKind: Record<string, number>;
  completed: number;
  steps: { ledgerRows: number; sqlCheckpoints: number; nodeRuns: number };
  faults: {
    killEvents: number; kills: number; allWorkersDeadEvents: number;
    terminateEvents: number; backendsTerminated: number;
    pgRestarts: number; pgFast: number; pgImmediate: number; pgDownMsMax: number;
  };
  signals: { sent: number; whileNoWorker: number; duringPgRestart: number; beforeWaitReached: number };
  timers: { count: number; latenessMsP50: number; latenessMsP99: number; latenessMsMax: number; earliestMs: number; boundMs: string };
  workerLog: Record<string, number>;
  violations: Record<string, number>;
  examples: Record<string, unknown[]>;
}

interface Started {
  spec: Spec;
  id: string;
  startedAt: number;
}

interface Window {
  from: number;
  to: number;
}

const KINDS_OF_VIOLATION = [
  'wrong_state', 'wrong_result', 'duplicate_effect', 'unexpected_effect', 'missing_effect', 'missing_checkpoint', 'lost_effect',
  'signal_lost', 'signal_send_failed', 'timer_early', 'timer_late', 'worker_unexpected_exit', 'start_failed', 'unexpected_instance',
  'prepared_left', 'wrong_order',
];

export async function runChaos(opts: ChaosOptions, envIn?: Env): Promise<Report> {
  const t0 = Date.now();
  const runId = `${opts.seed}${Date.now().toString(36).slice(-4)}`;
  const outDir = opts.outDir ?? join(tmpdir(), `pg-durable-chaos-${runId}`);
  mkdirSync(outDir, { recursive: true });
  const r = rng(opts.seed); // timing and fault choices
  const rw = rng(opts.seed * 7919 + 1); // the workload alone: the same workflows for the same seed
  const uni = (lo: number, hi: number) => lo + r() * (hi - lo);
  say(`run ${runId}: ${opts.workflows} workflows, ${opts.workers} workers, lease ${opts.leaseSeconds}s; logs in ${outDir}`);

  const env = envIn ?? (await setupEnv({ settings: { max_connections: 200, max_prepared_transactions: 20 } }));
  const ownEnv = !envIn;
  const admin = new Db(env.adminUrl, 3, 'chaos-admin');
  const tenant = new Db(env.tenantUrl, 4, 'chaos-tenant');
  const xAdmin = new Db(env.cluster.url(XDB), 2, 'chaos-admin-x');
  const pool = new WorkerPool({
    cli: workerCli(opts.snapshotCli), url: env.adminUrl, count: opts.workers,
    args: workerArgs({ lease: opts.leaseSeconds, concurrency: opts.concurrency }), logFile: join(outDir, 'workers.log'),
    // Widen the two-phase windows of xdb steps (kills land between PREPARE and COMMIT PREPARED),
    // and sweep leftovers of completed instances quickly.
    env: { PG_DURABLE_TEST_2PC_PAUSE: 'prepared:150,checkpointed:150', PG_DURABLE_TEST_PREPARED_SWEEP_MS: '2000' },
  });

  const started: Started[] = [];
  const startFailures: unknown[] = [];
  const faults = { killEvents: 0, kills: 0, allWorkersDeadEvents: 0, terminateEvents: 0, backendsTerminated: 0, pgRestarts: 0, pgFast: 0, pgImmediate: 0, pgDownMsMax: 0 };
  const signalStats = { sent: 0, whileNoWorker: 0, duringPgRestart: 0, beforeWaitReached: 0 };
  const signalFailures: unknown[] = [];
  const outages: Window[] = [];
  let pgDown = false;
  let chaosEnd = 0;
  const pendingSignals: Promise<void>[] = [];
  let signalLoopDone = false;

  try {
    await tenant.q(LEDGER_DDL);
    if ((await admin.q('SELECT 1 FROM pg_database WHERE datname = $1', [XDB])).rowCount === 0) await admin.q(`CREATE DATABASE ${XDB}`);
    await xAdmin.q(LEDGER_DDL);
    await xAdmin.q(`SELECT setval('ledger_id_seq', ${XDB_LEDGER_START}, false) WHERE NOT EXISTS (SELECT 1 FROM ledger)`);
    await xAdmin.q(`GRANT INSERT, SELECT ON ledger TO ${pg.escapeIdentifier(env.tenant)}; GRANT USAGE ON SEQUENCE ledger_id_seq TO ${pg.escapeIdentifier(env.tenant)}`);
    pool.fill();

    // ---- signals -------------------------------------------------------------------------------
    const sendSignal = async (s: Started, idx: number) => {
      const plan = s.spec.signals[idx];
      const payload = JSON.stringify(plan.payload);
      const noWorker = pool.alive().length === 0;
      const duringRestart = pgDown;
      const waiting = await admin
        .q<{ n: number }>("SELECT count(*)::int AS n FROM df.nodes WHERE instance_id = $1 AND node_type = 'SIGNAL' AND status = 'running'", [s.id], { timeoutMs: 5_000 })
        .then((x) => x.rows[0].n > 0)
        .catch(() => false);
      try {
        await tenant.q('SELECT df.signal($1, $2, $3)', [s.id, plan.name, payload], {
          timeoutMs: 240_000,
          // A lost connection after the commit: the signal is stored, do not send it twice.
          ambiguous: async () => {
            const x = await admin.q("SELECT 1 FROM df._signals WHERE instance_id = $1 AND payload::jsonb ->> 'nonce' = $2", [s.id, plan.payload.nonce]);
            return x.rowCount ? x : null;
          },
        });
        signalStats.sent++;
        if (noWorker) signalStats.whileNoWorker++;
        if (duringRestart || pgDown) signalStats.duringPgRestart++;
        if (!waiting) signalStats.beforeWaitReached++;
      } catch (err) {
        signalFailures.push({ instance: s.id, kind: s.spec.kind, signal: idx, error: (err as Error).message });
      }
    };
    /** Signals due for sending (index of the next one per instance). */
    const signalQueue: { s: Started; idx: number; at: number }[] = [];
    const scheduleSignals = (s: Started) => {
      // A third are sent at once (usually before the wait is reached: buffered), the rest later.
      if (s.spec.signals.length > 0) signalQueue.push({ s, idx: 0, at: Date.now() + (r() < 0.33 ? 0 : uni(0, 10) * 1000) });
    };
    const sendNow = (item: { s: Started; idx: number }) => {
      const p = sendSignal(item.s, item.idx).then(() => {
        if (item.idx + 1 < item.s.spec.signals.length) signalQueue.push({ s: item.s, idx: item.idx + 1, at: Date.now() + (r() < 0.5 ? 0 : uni(0, 3) * 1000) });
      });
      pendingSignals.push(p);
      return p;
    };
    /** Sends up to n queued signals at once, regardless of their planned time (fault windows). */
    const flushSignals = (n: number) => {
      signalQueue.sort((a, b) => a.at - b.at);
      return Promise.all(signalQueue.splice(0, n).map(sendNow));
    };
    const signalLoop = (async () => {
      while (!signalLoopDone) {
        const now = Date.now();
        for (let i = signalQueue.length - 1; i >= 0; i--) {
          if (signalQueue[i].at <= now) void sendNow(signalQueue.splice(i, 1)[0]);
        }
        await sleep(100);
      }
    })();

    // ---- starter -------------------------------------------------------------------------------
    const starter = (async () => {
      const gap = (opts.startSpreadSeconds * 1000) / opts.workflows;
      for (let k = 1; k <= opts.workflows; k++) {
        const spec = makeSpec(k, pickKind(rw, opts.allowSchedule), rw, runId);
        try {
          const res = await tenant.q<{ id: string }>(`SELECT df.start(${spec.expr}, $1${spec.database ? ', $2' : ''}) AS id`, spec.database ? [spec.label, spec.database] : [spec.label], {
            timeoutMs: 240_000,
            ambiguous: async () => {
              const x = await admin.q<{ id: string }>('SELECT id FROM df.instances WHERE label = $1', [spec.label]);
              return x.rowCount ? x : null;
            },
          });
          const s: Started = { spec, id: res.rows[0].id, startedAt: Date.now() };
          started.push(s);
          scheduleSignals(s);
        } catch (err) {
          startFailures.push({ key: k, kind: spec.kind, error: (err as Error).message });
        }
        await sleep(gap * uni(0.5, 1.5));
      }
    })();

    // ---- faults --------------------------------------------------------------------------------
    const kill = async () => {
      const alive = pool.alive();
      if (alive.length < 2) {
        pool.fill();
        return;
      }
      const all = faults.killEvents === 0 || r() < 0.3; // the first kill event always takes every worker
      const n = all ? alive.length : 2 + Math.floor(r() * (alive.length - 1));
      const victims = [...alive].sort(() => r() - 0.5).slice(0, n);
      await Promise.all(victims.map((v) => pool.kill(v)));
      faults.killEvents++;
      faults.kills += victims.length;
      if (pool.alive().length === 0) {
        faults.allWorkersDeadEvents++;
        const from = Date.now();
        await flushSignals(2); // signals while no worker runs
        await sleep(uni(1.5, 3.5) * 1000);
        pool.fill();
        outages.push({ from, to: Date.now() + 1500 }); // + worker start-up
        say(`killed all ${victims.length} workers (signals sent meanwhile), restarted`);
      } else {
        await sleep(uni(0.3, 2) * 1000);
        pool.fill();
        say(`killed workers ${victims.join(',')}, restarted`);
      }
    };
    const terminate = async () => {
      const res = await admin.q<{ n: number }>(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name LIKE 'pg_durable:worker:%' AND random() < 0.7",
        [], { timeoutMs: 30_000 },
      );
      faults.terminateEvents++;
      faults.backendsTerminated += res.rows[0].n;
      say(`terminated ${res.rows[0].n} worker backends`);
    };
    const restartPg = async () => {
      const mode: 'fast' | 'immediate' = faults.pgFast <= faults.pgImmediate ? 'fast' : 'immediate';
      const from = Date.now();
      pgDown = true;
      let flushed: Promise<unknown> = Promise.resolve();
      const { downMs } = await restartPostgres(env.cluster, mode, async () => {
        flushed = flushSignals(3); // these retry until the server accepts them again
        await sleep(500);
      });
      pgDown = false;
      await flushed;
      outages.push({ from, to: Date.now() + 5000 }); // + the workers' reconnect backoff (≤ 5 s)
      faults.pgRestarts++;
      if (mode === 'fast') faults.pgFast++;
      else faults.pgImmediate++;
      faults.pgDownMsMax = Math.max(faults.pgDownMsMax, downMs);
      say(`PostgreSQL restarted (${mode}), down ${downMs} ms`);
    };

    const chaosStart = Date.now();
    const chaosDeadline = chaosStart + opts.maxChaosSeconds * 1000;
    let startsDone = false;
    void starter.then(() => (startsDone = true));
    const pattern = ['kill', 'terminate', 'kill', 'pg', 'kill', 'kill', 'terminate', 'kill'] as const;
    for (let i = 0; Date.now() < chaosDeadline; i++) {
      const enough = startsDone && faults.kills >= opts.minKills && faults.pgRestarts >= opts.minPgRestarts && faults.backendsTerminated >= opts.minTerminations && (opts.minPgRestarts === 0 || faults.pgImmediate >= 1);
      if (enough) break;
      await sleep(uni(opts.faultGap[0], opts.faultGap[1]) * 1000);
      let what: string = pattern[i % pattern.length];
      // Once the quota of one kind is met, spend the time on the others.
      if (what === 'pg' && faults.pgRestarts >= opts.minPgRestarts && (opts.minPgRestarts === 0 || faults.pgImmediate >= 1)) what = 'kill';
      if (what === 'kill' && faults.kills >= opts.minKills && faults.pgRestarts < opts.minPgRestarts) what = 'pg';
      try {
        if (what === 'kill') await kill();
        else if (what === 'terminate') await terminate();
        else await restartPg();
      } catch (err) {
        say(`fault ${what} failed: ${(err as Error).message}`);
        pgDown = false;
      }
    }
    chaosEnd = Date.now();
    say(`fault phase over after ${((chaosEnd - chaosStart) / 1000).toFixed(0)} s: ${JSON.stringify(faults)}`);
    await starter;
    pool.fill();

    // ---- drain ---------------------------------------------------------------------------------
    const drainDeadline = Date.now() + opts.drainSeconds * 1000;
    const ids = () => started.map((s) => s.id);
    for (;;) {
      // Signals planned later are sent now: nothing else can finish their workflows.
      if (signalQueue.length > 0) void flushSignals(signalQueue.length);
      const open = await admin.q<{ n: number }>("SELECT count(*)::int AS n FROM df.instances WHERE id = ANY($1) AND status NOT IN ('completed', 'failed', 'cancelled')", [ids()]);
      if (open.rows[0].n === 0 && signalQueue.length === 0) break;
      if (Date.now() > drainDeadline) {
        say(`drain deadline passed with ${open.rows[0].n} instances unfinished`);
        break;
      }
      if (pool.alive().length < opts.workers) pool.fill();
      await sleep(1000);
    }
    signalLoopDone = true;
    await signalLoop;
    await Promise.all(pendingSignals);
    const drainEnd = Date.now();
    say(`drained in ${((drainEnd - chaosEnd) / 1000).toFixed(0)} s; verifying`);

    // ---- verify --------------------------------------------------------------------------------
    if (opts.beforeVerify) await opts.beforeVerify(admin);
    const v = await verify(admin, tenant, started, outages, opts, outDir, xAdmin);
    for (const f of startFailures) v.add('start_failed', f);
    for (const f of signalFailures) v.add('signal_send_failed', f);
    for (const e of pool.stats.unexpectedExits) v.add('worker_unexpected_exit', e);

    const byKind: Record<string, number> = {};
    for (const s of started) byKind[s.spec.kind] = (byKind[s.spec.kind] ?? 0) + 1;
    const workerLog: Record<string, number> = {};
    for (const m of ['instance started', 'instance resumed', 'instance completed', 'instance failed', 'lease lost (cancelled, finished or taken over); stopping this run', 'transient failure in SQL step, retrying', 'claim failed; backing off', 'notification connection lost; reconnecting', 'instance run failed unexpectedly; retrying it in 5 s', 'prepared transaction settled', 'COMMIT PREPARED deferred to recovery', 'checkpoint lost; resuming the instance from its last checkpoint']) {
      workerLog[m] = pool.stats.messages.get(m) ?? 0;
    }
    const report: Report = {
      runId, seed: opts.seed, outDir,
      durationS: Math.round((Date.now() - t0) / 1000),
      chaosS: Math.round((chaosEnd - chaosStart) / 1000),
      drainS: Math.round((drainEnd - chaosEnd) / 1000),
      instances: started.length,
      byKind,
      completed: v.completed,
      steps: v.steps,
      faults,
      signals: signalStats,
      timers: v.timers,
      workerLog,
      violations: Object.fromEntries(KINDS_OF_VIOLATION.map((k) => [k, v.count(k)]).concat(Object.keys(v.examples).filter((k) => !KINDS_OF_VIOLATION.includes(k)).map((k) => [k, v.count(k)]))),
      examples: v.examples,
    };
    writeFileSync(join(outDir, 'report.json'), JSON.stringify(report, null, 2));
    return report;
  } finally {
    signalLoopDone = true;
    await pool.stopAll(10_000).catch(() => undefined);
    await admin.end();
    await tenant.end();
    await xAdmin.end();
    if (ownEnv) env.cluster.stop();
  }
}

class Violations {
  readonly examples: Record<string, unknown[]> = {};
  private readonly counts = new Map<string, number>();
  completed = 0;
  steps = { ledgerRows: 0, sqlCheckpoints: 0, nodeRuns: 0 };
  timers = { count: 0, latenessMsP50: 0, latenessMsP99: 0, latenessMsMax: 0, earliestMs: 0, boundMs: '' };
  add(kind: string, detail: unknown): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    const list = (this.examples[kind] ??= []);
    if (list.length < 10) list.push(detail);
  }
  count(kind: string): number {
    return this.counts.get(kind) ?? 0;
  }
}

async function verify(admin: Db, tenant: Db, started: Started[], outages: Window[], opts: ChaosOptions, outDir: string, xAdmin?: Db): Promise<Violations> {
  const v = new Violations();
  const byId = new Map(started.map((s) => [s.id, s]));
  const ids = [...byId.keys()];

  // Instances: state and result.
  const inst = await tenant.q<{ id: string; status: string; result: string | null; label: string | null }>(
    "SELECT id, status, CASE WHEN status IN ('completed', 'failed') THEN df.result(id) END AS result, label FROM df.instances",
  );
  for (const row of inst.rows) {
    const s = byId.get(row.id);
    if (!s) {
      v.add('unexpected_instance', { id: row.id, label: row.label, status: row.status });
      continue;
    }
    if (row.status !== (s.spec.expectedStatus ?? 'completed')) {
      v.add('wrong_state', { id: row.id, kind: s.spec.kind, status: row.status });
      continue;
    }
    v.completed++;
    let got: unknown = row.result;
    try {
      got = JSON.parse(row.result ?? 'null');
    } catch {
      /* keep text */
    }
    if (s.spec.expectedStatus === 'failed' && got && typeof got === 'object') {
      // A failed saga's report: compare the keys the spec names (the rest carries node ids).
      got = Object.fromEntries(Object.keys(s.spec.expected as object).map((k) => [k, (got as Record<string, unknown>)[k]]));
    }
    if (!isDeepStrictEqual(got, s.spec.expected)) v.add('wrong_result', { id: row.id, kind: s.spec.kind, expected: s.spec.expected, got });
  }
  const seen = new Set(inst.rows.map((x) => x.id));
  for (const id of ids) if (!seen.has(id)) v.add('wrong_state', { id, kind: byId.get(id)!.spec.kind, status: 'missing' });

  // Ledger: exactly-once per (instance, step), nothing forbidden, nothing missing.
  const LEDGER_SQL = 'SELECT id::text, inst, step, v, extract(epoch FROM at) * 1000 AS at_ms FROM ledger ORDER BY id';
  const ledger = await admin.q<{ id: string; inst: string; step: string; v: number; at_ms: number }>(LEDGER_SQL);
  // xdb workflows write the other database's ledger (ids from XDB_LEDGER_START): one list of rows.
  if (xAdmin) ledger.rows.push(...(await xAdmin.q<{ id: string; inst: string; step: string; v: number; at_ms: number }>(LEDGER_SQL)).rows);
  v.steps.ledgerRows = ledger.rows.length;
  // Two-phase commit: nothing stays prepared (the sweep settles leftovers within a few seconds).
  const prepDeadline = Date.now() + 45_000;
  let leftover: { gid: string; database: string }[] = [];
  for (;;) {
    leftover = (await admin.q<{ gid: string; database: string }>("SELECT gid, database::text FROM pg_prepared_xacts WHERE gid LIKE 'pgd:%'")).rows;
    if (leftover.length === 0 || Date.now() > prepDeadline) break;
    await sleep(1000);
  }
  for (const p of leftover) v.add('prepared_left', p);
  const perInst = new Map<string, Map<string, number>>();
  const stepAt = new Map<string, number>();
  for (const row of ledger.rows) {
    const m = perInst.get(row.inst) ?? new Map<string, number>();
    m.set(row.step, (m.get(row.step) ?? 0) + 1);
    perInst.set(row.inst, m);
    stepAt.set(`${row.inst}|${row.step}`, Number(row.at_ms));
  }
  for (const s of started) {
    const m = perInst.get(s.id) ?? new Map<string, number>();
    for (const [step, n] of m) {
      if (n > 1) v.add('duplicate_effect', { id: s.id, kind: s.spec.kind, step, times: n });
      if (s.spec.forbidden.includes(step) || !s.spec.steps.includes(step)) v.add('unexpected_effect', { id: s.id, kind: s.spec.kind, step });
    }
    for (const step of s.spec.steps) if (!m.has(step)) v.add('missing_effect', { id: s.id, kind: s.spec.kind, step });
    if (s.spec.order) {
      const at = s.spec.order.map((step) => ledger.rows.find((r) => r.inst === s.id && r.step === step)?.id);
      for (let i = 1; i < at.length; i++) {
        if (at[i - 1] !== undefined && at[i] !== undefined && Number(at[i - 1]) > Number(at[i])) v.add('wrong_order', { id: s.id, kind: s.spec.kind, expected: s.spec.order });
      }
    }
    if (s.spec.sleepSeconds !== undefined) {
      const before = stepAt.get(`${s.id}|before`);
      const after = stepAt.get(`${s.id}|after`);
      if (before !== undefined && after !== undefined && after - before < s.spec.sleepSeconds * 1000 - 5) {
        v.add('timer_early', { id: s.id, source: 'ledger', sleptMs: Math.round(after - before), seconds: s.spec.sleepSeconds });
      }
    }
  }
  for (const inst of perInst.keys()) if (!byId.has(inst)) v.add('unexpected_effect', { id: inst, note: 'ledger rows of an unknown instance' });

  // Checkpoints: every ledger row is named by a completed SQL node run, and vice versa.
  const cps = await admin.q<{ lid: string; instance_id: string; stamp: string; node_id: string }>(
    `SELECT (r.result::jsonb -> 'rows' -> 0 ->> 'lid') AS lid, r.instance_id, r.stamp, r.node_id
       FROM df._runs r JOIN df.nodes n ON n.instance_id = r.instance_id AND n.id = r.node_id
      WHERE n.node_type = 'SQL' AND r.status = 'completed' AND r.result LIKE '%"lid"%'`,
  );
  v.steps.sqlCheckpoints = (await admin.q<{ n: number }>(
    "SELECT count(*)::int AS n FROM df._runs r JOIN df.nodes n ON n.instance_id = r.instance_id AND n.id = r.node_id WHERE n.node_type = 'SQL' AND r.status = 'completed'",
  )).rows[0].n;
  v.steps.nodeRuns = (await admin.q<{ n: number }>('SELECT count(*)::int AS n FROM df._runs')).rows[0].n;
  const cpLids = new Set(cps.rows.map((c) => c.lid));
  const ledgerIds = new Set(ledger.rows.map((l) => l.id));
  for (const l of ledger.rows) if (!cpLids.has(l.id)) v.add('missing_checkpoint', { lid: l.id, id: l.inst, step: l.step });
  for (const c of cps.rows) if (c.lid && !ledgerIds.has(c.lid)) v.add('lost_effect', c);

  // Signals: each one the driver sent is stored once and consumed.
  const sigs = await admin.q<{ instance_id: string; nonce: string | null; consumed_by: string | null }>(
    "SELECT instance_id, payload::jsonb ->> 'nonce' AS nonce, consumed_by FROM df._signals",
  );
  const byNonce = new Map<string, { consumed: number; rows: number }>();
  for (const s of sigs.rows) {
    if (!s.nonce) continue;
    const e = byNonce.get(s.nonce) ?? { consumed: 0, rows: 0 };
    e.rows++;
    if (s.consumed_by) e.consumed++;
    byNonce.set(s.nonce, e);
  }
  for (const s of started) {
    for (const plan of s.spec.signals) {
      const e = byNonce.get(plan.payload.nonce);
      if (!e || e.rows !== 1 || e.consumed !== 1) v.add('signal_lost', { id: s.id, kind: s.spec.kind, nonce: plan.payload.nonce, stored: e?.rows ?? 0, consumed: e?.consumed ?? 0 });
    }
  }

  // Timers: SLEEP and WAIT_SCHEDULE completions against their recorded deadlines.
  const baseMs = (opts.leaseSeconds + 5 + 6) * 1000; // lease takeover + reconnect backoff cap + load slack
  const timers = await admin.q<{ instance_id: string; node_type: string; wake_ms: number; fin_ms: number; start_ms: number }>(
    `SELECT r.instance_id, n.node_type, (r.detail ->> 'wake_at')::float8 AS wake_ms,
            extract(epoch FROM r.finished_at) * 1000 AS fin_ms, extract(epoch FROM r.started_at) * 1000 AS start_ms
       FROM df._runs r JOIN df.nodes n ON n.instance_id = r.instance_id AND n.id = r.node_id
      WHERE n.node_type IN ('SLEEP', 'WAIT_SCHEDULE') AND r.status = 'completed' AND r.detail ? 'wake_at'`,
  );
  const lateness: number[] = [];
  let earliest = Infinity;
  for (const t of timers.rows) {
    const wake = Number(t.wake_ms);
    const fin = Number(t.fin_ms);
    const late = fin - wake;
    lateness.push(late);
    earliest = Math.min(earliest, late);
    if (late < -5) v.add('timer_early', { id: t.instance_id, type: t.node_type, earlyMs: Math.round(-late) });
    if (t.node_type === 'WAIT_SCHEDULE' && (wake % 60_000 !== 0 || wake <= Number(t.start_ms) - 1000)) {
      v.add('timer_early', { id: t.instance_id, type: t.node_type, note: 'deadline is not the next minute tick', wake });
    }
    // Outages overlapping the wait push the bound out by their length.
    const overlap = outages.reduce((sum, w) => sum + Math.max(0, Math.min(w.to, fin) - Math.max(w.from, wake - baseMs)), 0);
    if (late > baseMs + overlap) v.add('timer_late', { id: t.instance_id, type: t.node_type, lateMs: Math.round(late), boundMs: Math.round(baseMs + overlap) });
  }
  v.timers = {
    count: lateness.length,
    latenessMsP50: Math.round(pct(lateness, 50)),
    latenessMsP99: Math.round(pct(lateness, 99)),
    latenessMsMax: Math.round(lateness.length ? Math.max(...lateness) : 0),
    earliestMs: Math.round(lateness.length ? earliest : 0),
    boundMs: `${baseMs} + overlapping outages (PostgreSQL down + 5 s, all workers dead + 1.5 s)`,
  };

  // For every instance with a violation: its engine rows, for the post-mortem.
  const bad = new Set<string>();
  for (const list of Object.values(v.examples)) for (const e of list) if (e && typeof e === 'object' && 'id' in e) bad.add(String((e as { id: string }).id));
  if (bad.size > 0) {
    const dump: Record<string, unknown> = {};
    for (const id of bad) {
      dump[id] = {
        spec: byId.get(id)?.spec,
        instance: (await admin.q('SELECT * FROM df.instances WHERE id = $1', [id])).rows,
        nodes: (await admin.q('SELECT id, node_type, query, result_name, status, result, status_details, updated_at FROM df.nodes WHERE instance_id = $1', [id])).rows,
        node_runs: (await admin.q('SELECT * FROM df._runs WHERE instance_id = $1 ORDER BY started_at', [id])).rows,
        executions: (await admin.q('SELECT * FROM df._execution_log WHERE instance_id = $1', [id])).rows,
        work: (await admin.q('SELECT * FROM df._work WHERE instance_id = $1', [id])).rows,
        signals: (await admin.q('SELECT * FROM df._signals WHERE instance_id = $1', [id])).rows,
        ledger: (await admin.q('SELECT * FROM ledger WHERE inst = $1 ORDER BY id', [id])).rows,
      };
    }
    writeFileSync(join(outDir, 'violations.json'), JSON.stringify(dump, null, 2));
  }
  return v;
}

/** The report as the lines the CLI and the test print. */
export function formatReport(rep: Report): string {
  const total = Object.values(rep.violations).reduce((a, b) => a + b, 0);
  const lines = [
    `chaos run ${rep.runId} (seed ${rep.seed}): ${rep.durationS} s total, faults for ${rep.chaosS} s, drain ${rep.drainS} s`,
    `instances: ${rep.instances} (${Object.entries(rep.byKind).map(([k, n]) => `${k} ${n}`).join(', ')}), completed ${rep.completed}`,
    `steps: ${rep.steps.ledgerRows} ledger rows, ${rep.steps.sqlCheckpoints} SQL step checkpoints, ${rep.steps.nodeRuns} node runs`,
    `faults: ${rep.faults.kills} worker kills in ${rep.faults.killEvents} events (${rep.faults.allWorkersDeadEvents} with every worker dead), ` +
      `${rep.faults.backendsTerminated} backends terminated in ${rep.faults.terminateEvents} events, ` +
      `${rep.faults.pgRestarts} PostgreSQL restarts (${rep.faults.pgFast} fast, ${rep.faults.pgImmediate} immediate; longest down ${rep.faults.pgDownMsMax} ms)`,
    `signals: ${rep.signals.sent} sent, ${rep.signals.whileNoWorker} while no worker was alive, ${rep.signals.duringPgRestart} during a PostgreSQL restart, ${rep.signals.beforeWaitReached} before the wait was reached`,
    `timers: ${rep.timers.count}, lateness p50 ${rep.timers.latenessMsP50} ms, p99 ${rep.timers.latenessMsP99} ms, max ${rep.timers.latenessMsMax} ms, earliest ${rep.timers.earliestMs} ms (bound ${rep.timers.boundMs})`,
    `worker log: ${Object.entries(rep.workerLog).map(([k, n]) => `${k}: ${n}`).join('; ')}`,
    `violations: ${total} (${Object.entries(rep.violations).map(([k, n]) => `${k} ${n}`).join(', ')})`,
  ];
  if (total > 0) lines.push(`examples: ${JSON.stringify(rep.examples)}`, `post-mortem: ${rep.outDir}/violations.json, ${rep.outDir}/workers.log`);
  return lines.join('\n');
}

/** A small run for proving the checks can fail (chaos/self-check.ts and the CI test). */
export const SELF_CHECK: ChaosOptions = {
  ...SHORT, workflows: 24, minKills: 2, minPgRestarts: 0, minTerminations: 0, startSpreadSeconds: 8, allowSchedule: false, seed: 3,
};

/** The kinds plantViolations plants, each of which the checks must report. */
export const PLANTED = ['duplicate_effect', 'missing_checkpoint', 'wrong_result', 'signal_lost', 'timer_early'];

/**
 * Plants one violation of each data kind after the drain: a duplicated ledger row (also a row no
 * checkpoint names), a changed result, a deleted signal, a SLEEP completion moved before its deadline.
 */
export async function plantViolations(admin: Db): Promise<void> {
  await admin.q(`INSERT INTO ledger (inst, step, v) SELECT inst, step, v FROM ledger WHERE step = 's1' ORDER BY id LIMIT 1`);
  await admin.q(`UPDATE df.nodes n SET result = '{"rows":[{"total":-1}],"row_count":1}' FROM df.instances i
                  WHERE n.instance_id = i.id AND n.id = i.root_node AND i.id = (SELECT inst FROM ledger WHERE step = 's1' ORDER BY id DESC LIMIT 1)`);
  await admin.q(`DELETE FROM df._signals WHERE id = (SELECT min(id) FROM df._signals)`);
  await admin.q(`UPDATE df._node_runs r SET finished_at = to_timestamp((r.detail ->> 'wake_at')::float8 / 1000) - interval '1 second'
                  WHERE (r.instance_id, r.stamp, r.node_id) IN (SELECT instance_id, stamp, node_id FROM df._node_runs WHERE detail ? 'wake_at' AND status = 'completed' LIMIT 1)`);
}
