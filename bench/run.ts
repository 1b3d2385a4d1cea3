/**
 * `npm run bench [-- --quick] [-- --runs N]`: pg_durable against the hand-written floor and its
 * peers (DBOS Transact, graphile-worker) on one throwaway PostgreSQL with real durability
 * (synchronous_commit = on, fsync = on), all in the same run. Prints a markdown table and writes
 * bench/results/latest.json, bench/results/latest.svg and the table into docs/PERFORMANCE.md.
 *
 * Options:
 *   --quick              smaller loads and fewer repetitions (a smoke run, ~1-2 minutes)
 *   --runs N             repetitions of every throughput configuration (default 1)
 *   --concurrency N      step slots per worker process, every system (default 10)
 *   --extra-concurrency N  one more pg_durable throughput pass, 1 worker at this concurrency (default 20, 0 = off)
 *   --systems LIST       comma-separated subset of ours,floor,pgbench,dbos,graphile
 *   --budget SEC         soft time budget: a run that would not fit is skipped (default 540); runs
 *                        are cut (lower bound) so that none goes on past budget + 30 s. Order:
 *                        latency; 1 worker (all); profile; 2 and 4 workers (pg_durable, floor);
 *                        pg_durable 1 worker × 20 slots (10 000 × 1); 2 and 4 workers (peers);
 *                        pg_durable 1 worker × 20 slots (1 000 × 10). A run is cut after 80 s.
 *   --no-profile         skip the profiling pass
 *   --no-docs            do not rewrite docs/PERFORMANCE.md
 *   --render FILE        no measuring: re-render the table, chart and docs from a results JSON
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { packageRoot, startCluster, type Cluster } from '../src/embedded/cluster';
import { firstCall, firstCallMarkdown, type FirstCallResult } from './lib/first-call';
import { serverCounters, statements, summariseCpuProfile } from './lib/profile';
import { markdownTable, svgChart, type LatencyResult, type Results, type SysInfo, type ThroughputRun } from './lib/report';
import { Pgbench } from './lib/pgbench';
import { Dbos, Floor, Graphile, Ours, type Env, type Sys, type SysKey } from './lib/systems';
import { cpuMs, dist, machineCpu, peakRssMiB, serverCpuMs, sleep, spawned, until, type Proc } from './lib/util';

const T0 = performance.now();
const elapsedS = () => (performance.now() - T0) / 1000;

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '10' },
    'extra-concurrency': { type: 'string', default: '20' },
    systems: { type: 'string', default: 'ours,floor,pgbench,dbos,graphile' },
    budget: { type: 'string', default: '540' },
    'no-profile': { type: 'boolean', default: false },
    'no-docs': { type: 'boolean', default: false },
    render: { type: 'string' },
  },
});

const quick = opts.quick!;
const RUNS = Math.max(1, Number(opts.runs));
const CONC = Number(opts.concurrency);
const EXTRA_CONC = quick ? 0 : Number(opts['extra-concurrency']);
const BUDGET_S = Number(opts.budget);
/** No throughput run goes on past this (it is cut and reported as a lower bound). */
const FINAL_S = BUDGET_S + 30;
/** Last resort: kill everything (no results written). */
const HARD_LIMIT_S = FINAL_S + 20;
const POLL_MS = 100;
/** A throughput run that takes longer is cut and reported as a lower bound (completed ÷ time). */
const MAX_RUN_S = quick ? 60 : 80;
const LOADS = quick ? [{ count: 1000, steps: 1 }, { count: 100, steps: 10 }] : [{ count: 10_000, steps: 1 }, { count: 1_000, steps: 10 }];
const WORKERS = [1, 2, 4];
const REPS = quick ? { warm: 2, warmChains: 20, one: 8, chain: 3, fanout: 3 } : { warm: 3, warmChains: 100, one: 30, chain: 10, fanout: 8 };
const CHAIN = 20;
const FANOUT = 50;
/** Instances of warm-up before a profiled batch, per instance of that batch (see profile()). */
const PROFILE_WARM_UP = 2;
const PROFILE_LOADS = quick ? [{ count: 500, steps: 1 }, { count: 50, steps: 10 }] : [{ count: 2000, steps: 1 }, { count: 200, steps: 10 }];
const TENANT = 'bench_tenant';
const ROOT = packageRoot();
const OUT = join(ROOT, 'bench/results');

let cluster: Cluster | null = null;

function log(msg: string): void {
  process.stderr.write(`[bench ${elapsedS().toFixed(0).padStart(3)}s] ${msg}\n`);
}

function hardStop(reason: string): never {
  log(`HARD STOP: ${reason}`);
  for (const c of spawned) c.kill('SIGKILL');
  try {
    cluster?.stop();
  } catch {
    // already gone
  }
  process.exit(1);
}

const hardTimer = setTimeout(() => hardStop(`over ${HARD_LIMIT_S}s`), HARD_LIMIT_S * 1000);
hardTimer.unref();
process.once('SIGINT', () => hardStop('SIGINT'));
process.once('SIGTERM', () => hardStop('SIGTERM'));

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

function pkgVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '';
  }
}

/** Minimal `>=x.y.z` engines check (the only form our peers use). */
function enginesOk(name: string): string | null {
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { engines?: { node?: string } };
    const want = pkg.engines?.node;
    if (!want) return null;
    const m = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(want.trim());
    if (!m) return null;
    const have = process.versions.node.split('.').map(Number);
    const need = [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
    for (let i = 0; i < 3; i++) {
      if (have[i] > need[i]) return null;
      if (have[i] < need[i]) return `${name} needs Node ${want}, this machine has ${process.version}`;
    }
    return null;
  } catch {
    return `${name} is not installed (npm ci)`;
  }
}

async function checkPeer(sys: Sys, pkgs: string[]): Promise<void> {
  for (const p of pkgs) {
    const bad = enginesOk(p);
    if (bad) {
      sys.unavailable = bad;
      return;
    }
    try {
      await import(p);
    } catch (err) {
      sys.unavailable = `${p} does not load: ${(err as Error).message.slice(0, 120)}`;
      return;
    }
  }
}

function budgetLeft(): number {
  return BUDGET_S - elapsedS();
}

// ---- latency ----------------------------------------------------------------------------------

async function latency(sys: Sys): Promise<LatencyResult> {
  const db = `${sys.key}_latency`;
  await sys.prepare(db);
  try {
    const procs = await sys.startWorkers(db, 1);
    // Latency is measured on a warm worker, as one that has been running a while: 100 sequential
    // 20-step workflows first (2 000 steps; 20 × 20 in quick mode), the same for every system.
    // With only the few warm-ups below, a Node worker was still compiling its own JavaScript:
    // pg_durable's worker spent 0.85 ms of CPU per chained step after 60 steps, 0.33 ms after
    // 2 000, and its 20-step chain took 1.7 ms per step instead of 1.15 (docs/PERFORMANCE.md).
    for (let i = 0; i < REPS.warmChains; i++) await sys.once(db, { kind: 'chain', steps: CHAIN });
    for (let i = 0; i < REPS.warm; i++) {
      await sys.once(db, { kind: 'chain', steps: 1 });
      await sys.once(db, { kind: 'chain', steps: 2 });
    }
    const one: number[] = [];
    for (let i = 0; i < REPS.one; i++) one.push(await sys.once(db, { kind: 'chain', steps: 1 }));
    const chain: number[] = [];
    const pm = postmasterPid();
    const w0 = procs.reduce((a, p) => a + cpuMs(p.pid), 0);
    const s0 = serverCpuMs(pm);
    for (let i = 0; i < REPS.chain; i++) chain.push(await sys.once(db, { kind: 'chain', steps: CHAIN }));
    const chainSteps = REPS.chain * CHAIN;
    const chainCpu = {
      workerMsPerStep: (procs.reduce((a, p) => a + cpuMs(p.pid), 0) - w0) / chainSteps,
      serverMsPerStep: (serverCpuMs(pm) - s0) / chainSteps,
    };
    const fan: number[] = [];
    await sys.once(db, { kind: 'fanout', branches: FANOUT }); // warm-up: opens every step connection
    for (let i = 0; i < REPS.fanout; i++) fan.push(await sys.once(db, { kind: 'fanout', branches: FANOUT }));
    const oneD = dist(one);
    const chainD = dist(chain);
    return {
      one: oneD,
      chain: chainD,
      perStep: dist(chain.map((t) => t / CHAIN)),
      marginal: (chainD.median - oneD.median) / (CHAIN - 1),
      fanout: dist(fan),
      chainCpu,
      chainSteps: CHAIN,
      fanoutBranches: FANOUT,
    };
  } finally {
    await sys.stopWorkers();
    await dropDb(sys, db);
  }
}

async function dropDb(sys: Sys, db: string): Promise<void> {
  await sys.dropDatabase(db).catch((err: Error) => log(`drop ${db}: ${err.message}`));
}

// ---- throughput -------------------------------------------------------------------------------

function postmasterPid(): number {
  return Number(readFileSync(join(cluster!.dir, 'data/postmaster.pid'), 'utf8').split('\n')[0]);
}

interface Template {
  db: string;
  startMs: number;
}

const templates = new Map<string, Template>();

/**
 * The batch is started once per system and load, in a template database that no worker ever
 * touched; every throughput run works on a file copy of it (CREATE DATABASE ... TEMPLATE), so
 * 10 000 starts are paid once, not once per worker count.
 */
async function template(sys: Sys, load: { count: number; steps: number }): Promise<Template> {
  const key = `${sys.key}_tpl_${load.steps}s`;
  let t = templates.get(key);
  if (!t) {
    await sys.prepare(key);
    const t0 = Date.now();
    await sys.startBatch(key, load.count, load.steps);
    t = { db: key, startMs: Date.now() - t0 };
    await sys.release(key);
    templates.set(key, t);
  }
  return t;
}

async function cloneDatabase(admin: pg.Client, tpl: string, db: string): Promise<void> {
  const owner = (await admin.query('SELECT pg_get_userbyid(datdba) AS o FROM pg_database WHERE datname = $1', [tpl])).rows[0].o as string;
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(db)} TEMPLATE ${pg.escapeIdentifier(tpl)} OWNER ${pg.escapeIdentifier(owner)} STRATEGY FILE_COPY`);
}

/**
 * The throughput rows measure the steady state, the last 60 % of a batch's steps: a fresh
 * worker process is slow at first while V8 compiles its hot paths and its connections fill their
 * caches. On this machine, one fresh pg_durable worker on 10 000 one-step instances did 703, 1 198,
 * 1 559 and 1 739 instances/s in the first four thousand and 1 695-1 917/s after, its CPU per
 * instance 1.06, 0.63, 0.40, 0.32 ms, then 0.27-0.31 ms; ten-step chains settled after 30 % of
 * their steps the same way (docs/PERFORMANCE.md, "Warm-up"). Every system is measured over the
 * same window of its own steps; the whole batch, warm-up included, is kept too (`whole`).
 */
const WARM_UP = 0.4;

/** CPU and time at one moment of a run. */
function sample(procs: Proc[], pm: number): { t: number; worker: number[]; server: number; client: NodeJS.CpuUsage; machine: ReturnType<typeof machineCpu> } {
  return { t: Date.now(), worker: procs.map((p) => cpuMs(p.pid)), server: serverCpuMs(pm), client: process.cpuUsage(), machine: machineCpu() };
}

/** CPU spent between two samples. */
function cpuBetween(a: ReturnType<typeof sample>, b: ReturnType<typeof sample>): ThroughputRun['cpu'] {
  return {
    workerMs: b.worker.reduce((s, w, i) => s + w - a.worker[i], 0),
    serverMs: b.server - a.server,
    clientMs: (b.client.user - a.client.user + b.client.system - a.client.system) / 1000,
    machineBusyPct: (100 * (b.machine.busy - a.machine.busy)) / Math.max(1, b.machine.total - a.machine.total),
  };
}

async function throughput(sys: Sys, admin: pg.Client, workers: number, concurrency: number, load: { count: number; steps: number }, run: number): Promise<ThroughputRun> {
  const db = `${sys.key}_tp_${workers}w_${concurrency}c_${load.steps}s_${run}`;
  const pm = postmasterPid();
  // The floors connect first and are then told to go.
  const floor = sys.key === 'floor' || sys.key === 'pgbench';
  let startMs = 0;
  if (floor) await sys.prepare(db);
  else {
    const tpl = await template(sys, load);
    startMs = tpl.startMs;
    await cloneDatabase(admin, tpl.db, db);
  }
  try {
    // The floor's processes connect first and are then told to go; the others start on a copy
    // of the committed batch and are timed from their first pickup.
    let procs: Proc[] = floor ? await sys.startWorkers(db, workers, { concurrency }) : [];
    let first = sample(procs, pm);
    const tGo = Date.now();
    if (floor) await sys.startBatch(db, load.count, load.steps);
    else {
      procs = await sys.startWorkers(db, workers, { concurrency });
      first = { ...first, worker: procs.map((p) => cpuMs(p.pid)) }; // process start-up excluded (ready = connected / listening)
    }
    const total = load.count * load.steps;
    let cutAtMs: number | undefined;
    let mark: { at: ReturnType<typeof sample>; steps: number } | null = null;
    const capMs = 1000 * Math.max(10, Math.min(MAX_RUN_S, FINAL_S - elapsedS()));
    try {
      // Until WARM_UP of the steps are done, each poll counts them; then only "all done?".
      await until(async () => {
        if (!mark) {
          const n = await sys.stepsDone(db);
          if (n >= WARM_UP * total) mark = { at: sample(procs, pm), steps: n };
          return false;
        }
        return sys.batchDone(db);
      }, capMs, `${sys.label}: ${load.count} × ${load.steps}-step batch`, 20);
    } catch (err) {
      if (!/timed out/.test((err as Error).message)) throw err;
      cutAtMs = capMs;
    }
    const end = sample(procs, pm);
    const tEnd = end.t;
    const rssMiB = procs.map((p) => peakRssMiB(p.pid));
    const t0 = floor ? tGo : ((await sys.firstPickup(db)) ?? tGo);
    // pgbench times itself without its connection set-up; the others from the go (or first pickup).
    const elapsedMs = (sys instanceof Pgbench ? sys.measuredElapsedMs(load.count, load.steps) : null) ?? tEnd - t0;
    const counts = await sys.batchCounts(db, load.count, load.steps);
    const done = cutAtMs ? counts.completed : load.count;
    const failures = cutAtMs ? counts.failed : load.count - counts.completed;
    const sizeBytes = await sys.sizeBytes(db);
    const whole = {
      elapsedMs,
      instPerSec: (done * 1000) / elapsedMs,
      stepsPerSec: (done * load.steps * 1000) / elapsedMs,
      cpu: cpuBetween(first, end),
    };
    let steady: ThroughputRun['steady'];
    const m = mark as { at: ReturnType<typeof sample>; steps: number } | null;
    if (m && !cutAtMs) {
      // pgbench's own log dates each transaction; the others end when the bench sees the batch done.
      const window = (sys instanceof Pgbench ? sys.window(m.at.t) : null) ?? { steps: total - m.steps, elapsedMs: tEnd - m.at.t };
      steady = {
        fromStep: m.steps,
        steps: window.steps,
        elapsedMs: window.elapsedMs,
        stepsPerSec: (window.steps * 1000) / window.elapsedMs,
        instPerSec: (window.steps * 1000) / window.elapsedMs / load.steps,
        cpu: cpuBetween(m.at, end),
      };
    }
    // The rows read the steady window where there is one (a run cut at the cap has none).
    const shown = steady ?? whole;
    return {
      sys: sys.key, workers, concurrency, count: load.count, steps: load.steps,
      elapsedMs: shown.elapsedMs, instPerSec: shown.instPerSec, stepsPerSec: shown.stepsPerSec,
      startMs, failures, cutAtMs, rssMiB, sizeBytes,
      cpu: shown.cpu,
      cpuSteps: steady ? steady.steps : done * load.steps,
      steady, whole,
    };
  } finally {
    await sys.stopWorkers();
    await dropDb(sys, db);
  }
}

// ---- profile ----------------------------------------------------------------------------------

async function profile(ours: Ours, admin: pg.Client): Promise<unknown> {
  const out: Record<string, unknown>[] = [];
  for (const load of PROFILE_LOADS) {
    const db = `ours_profile_${load.steps}s`;
    const dir = join(OUT, `profile-${load.steps}step`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    await ours.prepare(db);
    try {
      // Statements inside functions too (df._commit's), and how often each was planned.
      await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} SET pg_stat_statements.track = 'all'`);
      await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} SET pg_stat_statements.track_planning = on`);
      // A warm-up batch, then the measured one, both committed before the worker starts (a fresh
      // worker's first thousands of instances are its warm-up: docs/PERFORMANCE.md, "Warm-up").
      // Statement times, worker CPU and the CPU profile's samples cover the measured batch, from the
      // moment the warm-up's steps are done. Transactions, WAL fsyncs and WAL per step are counted
      // over both batches: PostgreSQL 15's backends report those at most once a second, so a
      // reading taken while the worker runs would lag by up to a second of its work.
      const warm = PROFILE_WARM_UP * load.count;
      await ours.startBatch(db, warm, load.steps);
      const t0 = Date.now();
      await ours.startBatch(db, load.count, load.steps);
      const startMs = Date.now() - t0;
      await sleep(1100); // the starting session flushes its statistics
      const k0 = await serverCounters(admin, db);
      const [proc] = await ours.startWorkers(db, 1, { cpuProfDir: dir });
      let warmPolls = 0; // the bench's own transactions in this database before the reset
      await until(async () => {
        warmPolls++;
        return (await ours.stepsDone(db)) >= warm * load.steps;
      }, 120_000, 'profile warm-up', 20);
      await admin.query('SELECT pg_stat_statements_reset()');
      const fromUs = Number(process.hrtime.bigint() / 1000n);
      const w0 = cpuMs(proc.pid);
      const tStart = Date.now();
      await until(() => ours.batchDone(db), 120_000, 'profile batch', 200);
      const wallMs = Date.now() - tStart;
      const workerCpuMs = cpuMs(proc.pid) - w0;
      await ours.stopWorkers(); // backends flush their statistics when they exit; the profile is written
      await sleep(800);
      const k1 = await serverCounters(admin, db);
      const steps = load.count * load.steps;
      const rows = await statements(admin, db, steps, load.count);
      const isClient = (q: string) => /NOT EXISTS \(SELECT 1 FROM df\._work\)|pg_stat_activity|bench:client/.test(q);
      const clientCalls = rows.filter((r) => r.toplevel && isClient(r.query)).reduce((a, r) => a + r.calls, 0);
      /** Both batches' steps: the denominator of the counters read before and after the whole run. */
      const allSteps = (warm + load.count) * load.steps;
      const top = rows.filter((r) => r.toplevel && !isClient(r.query));
      const nested = rows.filter((r) => !r.toplevel);
      // Statements that ride in the same flight as another (src/worker/pipeline.ts): BEGIN and the
      // step settings (a connection's first step) with the step's statement; COMMIT and the session
      // reset with the checkpoint.
      const sameTrip = top
        .filter((r) => /^(BEGIN|COMMIT|SELECT df\._reset_session\(\))$|^SELECT pg_catalog\.set_config\(\$1, \$2, \$3\)|^WITH reset AS MATERIALIZED \(SELECT df\._reset_session\(\)\)/.test(r.query.trim()))
        .reduce((a, r) => a + r.calls, 0);
      // And a checkpoint that is not its instance's last rides in the flight of the instance's next
      // step (src/worker/steps.ts, Parked): in these linear chains, all but one per instance.
      const checkpoints = top.filter((r) => /^SELECT df\._commit\(/.test(r.query.trim())).reduce((a, r) => a + r.calls, 0);
      const chained = Math.max(0, checkpoints - load.count);
      const topCalls = top.reduce((a, r) => a + r.calls, 0);
      const cpu = summariseCpuProfile(dir, fromUs);
      out.push({
        load,
        startMs,
        wallMs,
        workerCpuMs,
        workerCpuPct: (100 * workerCpuMs) / wallMs,
        perStep: {
          statements: topCalls / steps,
          roundTrips: (topCalls - sameTrip - chained) / steps,
          commits: (k1.xactCommit - k0.xactCommit - clientCalls - warmPolls) / allSteps,
          walSyncs: (k1.walSync - k0.walSync) / allSteps,
          walBytes: (k1.walBytes - k0.walBytes) / allSteps,
          walRecords: (k1.walRecords - k0.walRecords) / allSteps,
          workerCpuMs: workerCpuMs / steps,
          serverExecMs: top.reduce((a, r) => a + r.totalMs, 0) / steps,
        },
        statements: top.slice(0, 25),
        nested: nested.slice(0, 25),
        cpuProfile: cpu,
      });
    } finally {
      await ours.stopWorkers();
      await dropDb(ours, db);
    }
  }
  return out;
}

function profileMarkdown(p: unknown, conc: number): string {
  type Row = { query: string; role: string; calls: number; plans: number; perStep: number; perInstance: number; meanMs: number; totalMs: number };
  const runs = p as {
    load: { count: number; steps: number };
    wallMs: number;
    workerCpuPct: number;
    perStep: Record<string, number>;
    statements: Row[];
    nested: Row[];
    cpuProfile: { wallMs: number; buckets: { bucket: string; ms: number; pct: number }[]; top: { fn: string; where: string; ms: number; pct: number }[] } | null;
  }[];
  const lines: string[] = [];
  const q = (s: string) => `\`${s.replace(/\|/g, '\\|')}\``;
  for (const r of runs) {
    const s = r.perStep;
    lines.push(`**${r.load.count} × ${r.load.steps}-step, 1 worker × ${conc}** — ${(r.wallMs / 1000).toFixed(1)} s; worker CPU ${r.workerCpuPct.toFixed(0)}% of one core. Per step: ${s.statements.toFixed(2)} top-level statements in ${s.roundTrips.toFixed(2)} round trips, ${s.commits.toFixed(2)} transactions, ${s.walSyncs.toFixed(2)} WAL fsyncs, ${s.walRecords.toFixed(1)} WAL records (${(s.walBytes / 1024).toFixed(1)} KiB), ${s.serverExecMs.toFixed(2)} ms statement execution in the server, ${s.workerCpuMs.toFixed(2)} ms worker CPU (with the profiler on).`);
    lines.push('');
    lines.push('| top-level statement from the worker | role | calls | per step | per instance | planned | mean ms | total ms |');
    lines.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const x of r.statements.slice(0, 14)) lines.push(`| ${q(x.query)} | ${x.role} | ${x.calls} | ${x.perStep.toFixed(2)} | ${x.perInstance.toFixed(2)} | ${x.plans} | ${x.meanMs.toFixed(3)} | ${x.totalMs.toFixed(0)} |`);
    lines.push('');
    lines.push('| statement inside a function (df._commit) | calls | per step | planned | mean ms | total ms |');
    lines.push('| --- | --- | --- | --- | --- | --- |');
    for (const x of r.nested.slice(0, 8)) lines.push(`| ${q(x.query)} | ${x.calls} | ${x.perStep.toFixed(2)} | ${x.plans} | ${x.meanMs.toFixed(3)} | ${x.totalMs.toFixed(0)} |`);
    lines.push('');
    if (r.cpuProfile) {
      lines.push(`Worker CPU profile (${(r.cpuProfile.wallMs / 1000).toFixed(1)} s sampled after the warm-up), self time by bucket: ${r.cpuProfile.buckets.map((b) => `${b.bucket} ${b.pct.toFixed(1)}%`).join(', ')}.`);
      lines.push('');
      lines.push(`Heaviest functions (self time): ${r.cpuProfile.top.slice(0, 10).map((t) => `\`${t.fn}\`${t.where ? ` (${t.where})` : ''} ${t.pct.toFixed(1)}%`).join(', ')}.`);
      lines.push('');
    }
  }
  return lines.join('\n');
}

// ---- docs -------------------------------------------------------------------------------------

function replaceBetween(text: string, tag: string, body: string): string {
  const start = `<!-- bench:${tag}:start -->`;
  const end = `<!-- bench:${tag}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) return `${text.trimEnd()}\n\n${start}\n${body}\n${end}\n`;
  return `${text.slice(0, i + start.length)}\n${body}\n${text.slice(j)}`;
}

// ---- main -------------------------------------------------------------------------------------

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  log(`starting PostgreSQL (synchronous_commit = on, fsync = on)${quick ? ' — quick mode' : ''}`);
  cluster = await startCluster({
    settings: {
      synchronous_commit: 'on',
      fsync: 'on',
      full_page_writes: 'on',
      shared_preload_libraries: "'pg_stat_statements'",
      'pg_stat_statements.track': 'top',
      max_connections: 300,
    },
  });
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  await admin.query(`CREATE ROLE ${TENANT} LOGIN`);
  const pgVersion = (await admin.query('SHOW server_version')).rows[0].server_version as string;
  const settings = (await admin.query("SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit','fsync','full_page_writes','shared_buffers','wal_sync_method')")).rows;

  const env: Env = { cluster, root: ROOT, tenant: TENANT, concurrency: CONC, pollMs: POLL_MS };
  const wanted = new Set(opts.systems!.split(',').map((s) => s.trim()));
  const all: Sys[] = [new Ours(env), new Floor(env), new Pgbench(env), new Dbos(env), new Graphile(env)].filter((s) => wanted.has(s.key));
  const dbos = all.find((s) => s.key === 'dbos');
  if (dbos) await checkPeer(dbos, ['@dbos-inc/dbos-sdk', '@dbos-inc/postgres-datasource']);
  const graphile = all.find((s) => s.key === 'graphile');
  if (graphile) await checkPeer(graphile, ['graphile-worker']);
  const versions: Record<SysKey, string> = {
    ours: `pg-durable ${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}`,
    floor: `pg ${pkgVersion('pg')}`,
    pgbench: sh(join(cluster.bindir, 'pgbench'), ['--version']),
    dbos: `@dbos-inc/dbos-sdk ${pkgVersion('@dbos-inc/dbos-sdk')} + postgres-datasource ${pkgVersion('@dbos-inc/postgres-datasource')}`,
    graphile: `graphile-worker ${pkgVersion('graphile-worker')}`,
  };
  const systems: SysInfo[] = all.map((s) => ({ key: s.key, label: s.label, version: versions[s.key], unavailable: s.unavailable }));
  const runnable = all.filter((s) => !s.unavailable);
  for (const s of all) if (s.unavailable) log(`${s.label}: cannot run here: ${s.unavailable}`);

  const res: Results = {
    when: new Date().toISOString(),
    machine: {
      nproc: String(cpus().length),
      cpu: cpus()[0]?.model ?? '',
      memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
      postgres: pgVersion,
      pgFlavor: cluster.flavor,
      node: process.version,
      kernel: sh('uname', ['-sr']),
      settings: settings.map((r) => `${r.name}=${r.setting}`).join(', '),
    },
    config: {
      quick, runs: RUNS, concurrency: CONC, extraConcurrency: EXTRA_CONC || undefined, pollIntervalMs: POLL_MS, dbosQueuePollMs: (dbos as Dbos | undefined)?.queuePollMs,
      workers: WORKERS, loads: LOADS, reps: REPS, chainSteps: CHAIN, fanoutBranches: FANOUT,
      stepSql: 'SELECT <i> + 1 AS v (pg_durable: literal per node; peers: $1 parameter)', tenant: TENANT,
    },
    systems,
    latency: {},
    throughput: [],
  };

  // 1. Latency, one worker process each.
  for (const s of runnable) {
    log(`latency: ${s.label}`);
    try {
      res.latency[s.key] = await latency(s);
      const l = res.latency[s.key] as LatencyResult;
      log(`  1-step ${l.one.median.toFixed(1)} ms, ${CHAIN}-step ${l.chain.median.toFixed(1)} ms (${l.perStep.median.toFixed(2)} ms/step; CPU/step worker ${l.chainCpu.workerMsPerStep.toFixed(2)} ms, server ${l.chainCpu.serverMsPerStep.toFixed(2)} ms), fan-out ${l.fanout.median.toFixed(1)} ms`);
    } catch (err) {
      res.latency[s.key] = { error: (err as Error).message.slice(0, 200) };
      log(`  ${s.label} latency failed: ${(err as Error).message}`);
    }
  }

  // 1b. The first call in a new session (ours, plv8 alone, the floor's first write).
  if (all.some((s) => s.key === 'ours')) {
    log('first call in a new session');
    try {
      await cluster.createDatabase('first_call');
      await admin.query(`GRANT CREATE ON DATABASE first_call TO ${TENANT}`);
      const a = new pg.Client({ connectionString: cluster.url('first_call') });
      await a.connect();
      await a.query('SELECT df.grant_usage($1)', [TENANT]);
      await a.end();
      const fc = await firstCall(cluster.url('first_call'), cluster.url('first_call', TENANT), TENANT, cluster.flavor === 'plv8', quick ? 7 : 15);
      res.firstCall = fc;
      log(`  df.start first ${fc.ours.first.median.toFixed(1)} ms, second ${fc.ours.second.median.toFixed(1)} ms; floor extra ${fc.floor.extra.median.toFixed(1)} ms` +
        (fc.plv8 ? `; plv8 alone first ${fc.plv8.first.median.toFixed(1)} ms; df.start after plv8 started: extra ${fc.oursAfterPlv8!.extra.median.toFixed(1)} ms` : ''));
    } catch (err) {
      res.firstCall = { error: (err as Error).message };
      log(`  first call failed: ${(err as Error).message}`);
    }
  }

  // 2. Throughput: every load, 1/2/4 worker processes, each system side by side; the profile
  // after the 1-worker pass; pg_durable at a second concurrency last (dropped first when short).
  type Item = { sys: Sys; workers: number; concurrency: number; load: { count: number; steps: number }; run: number };
  const ours = runnable.find((s) => s.key === 'ours') as Ours | undefined;
  const pass = (workers: number, run: number): Item[] => LOADS.flatMap((load) => runnable.map((sys) => ({ sys, workers, concurrency: CONC, load, run })));
  const tpRuns = async (items: Item[]) => {
    for (const p of items) {
      const tag = `${p.sys.label}: ${p.load.count} × ${p.load.steps}-step, ${p.workers} worker(s) × ${p.concurrency}`;
      const entry = { sys: p.sys.key, workers: p.workers, concurrency: p.concurrency, count: p.load.count, steps: p.load.steps };
      // Skip what would not fit: estimate from an earlier run of the same system and load.
      const prev = res.throughput.filter((r): r is ThroughputRun => !('error' in r) && r.sys === p.sys.key && r.steps === p.load.steps);
      const estimate = prev.length ? Math.min(MAX_RUN_S, Math.max(...prev.map((r) => (r.whole ?? r).elapsedMs)) / 1000) + 6 : 15;
      if (elapsedS() + estimate > BUDGET_S) {
        res.throughput.push({ ...entry, error: 'skipped: time budget' });
        log(`skip ${tag}: time budget (needs ~${estimate.toFixed(0)} s, ${budgetLeft().toFixed(0)} s left)`);
        continue;
      }
      log(`throughput: ${tag}`);
      try {
        const r = await throughput(p.sys, admin, p.workers, p.concurrency, p.load, p.run);
        res.throughput.push(r);
        const cores = (r.cpu.workerMs + r.cpu.serverMs + r.cpu.clientMs) / r.elapsedMs;
        const per = (ms: number, steps: number) => (ms / steps).toFixed(3);
        const w = r.whole;
        log(`  ${r.cutAtMs ? 'CUT at the per-run cap: ' : ''}${r.steady ? 'steady (last ' + r.steady.steps + ' steps): ' : 'whole batch: '}${r.instPerSec.toFixed(0)} inst/s, ${r.stepsPerSec.toFixed(0)} steps/s in ${(r.elapsedMs / 1000).toFixed(1)} s; CPU per step worker ${per(r.cpu.workerMs, r.cpuSteps!)} ms, server ${per(r.cpu.serverMs, r.cpuSteps!)} ms, machine busy ${r.cpu.machineBusyPct.toFixed(0)}% (not ours ${Math.max(0, (2 * r.cpu.machineBusyPct) / 100 - cores).toFixed(2)} cores)` +
          (w && r.steady ? `; whole batch ${w.stepsPerSec.toFixed(0)} steps/s in ${(w.elapsedMs / 1000).toFixed(1)} s, CPU per step worker ${per(w.cpu.workerMs, r.count * r.steps)} ms, server ${per(w.cpu.serverMs, r.count * r.steps)} ms` : '') +
          ` (batch start ${(r.startMs / 1000).toFixed(1)} s); failures ${r.failures}; RSS ${r.rssMiB.map((x) => x.toFixed(0)).join('/')} MiB`);
      } catch (err) {
        res.throughput.push({ ...entry, error: (err as Error).message.slice(0, 200) });
        log(`  failed: ${(err as Error).message}`);
      }
    }
  };
  const isCore = (s: Sys) => s.key === 'ours' || s.key === 'floor' || s.key === 'pgbench';
  for (let run = 0; run < RUNS; run++) await tpRuns(pass(1, run));

  // 3. Profile of our worker (CPU profile + statements per step).
  if (ours && !opts['no-profile']) {
    if (budgetLeft() < (quick ? 10 : 45)) log('skip profile: time budget');
    else {
      log('profile: pg_durable worker with --cpu-prof and pg_stat_statements');
      try {
        res.profile = await profile(ours, admin);
      } catch (err) {
        res.profile = { error: (err as Error).message };
        log(`  profile failed: ${(err as Error).message}`);
      }
    }
  }

  // 4. Scaling of pg_durable and the floor, then pg_durable at more step slots, then the peers'
  // scaling (what the time budget drops first).
  for (let run = 0; run < RUNS; run++) for (const w of WORKERS.filter((x) => x > 1)) await tpRuns(pass(w, run).filter((p) => isCore(p.sys)));
  if (ours && EXTRA_CONC && EXTRA_CONC !== CONC) await tpRuns([{ sys: ours, workers: 1, concurrency: EXTRA_CONC, load: LOADS[0], run: 0 }]);
  for (let run = 0; run < RUNS; run++) for (const w of WORKERS.filter((x) => x > 1)) await tpRuns(pass(w, run).filter((p) => !isCore(p.sys)));
  if (ours && EXTRA_CONC && EXTRA_CONC !== CONC) await tpRuns([{ sys: ours, workers: 1, concurrency: EXTRA_CONC, load: LOADS[1], run: 0 }]);
  for (const t of templates.values()) {
    const sys = all.find((s) => t.db.startsWith(`${s.key}_tpl_`));
    if (sys) await dropDb(sys, t.db);
  }

  for (const s of all) await s.close();
  await admin.end();
  cluster.stop();
  cluster = null;

  res.totalSeconds = elapsedS();
  writeFileSync(join(OUT, quick ? 'quick.json' : 'latest.json'), `${JSON.stringify(res, null, 2)}\n`);
  render(res, quick ? 'quick' : 'latest');
}

/** Prints the table and writes the chart and (full runs) the docs section. */
function render(res: Results, name: string): void {
  const isQuick = res.config.quick === true;
  const conc = Number(res.config.concurrency);
  const table = markdownTable(res);
  const profileMd = res.profile && Array.isArray(res.profile) ? profileMarkdown(res.profile, conc) : '';
  const fc = res.firstCall && typeof res.firstCall === 'object' && !('error' in res.firstCall) ? firstCallMarkdown(res.firstCall as FirstCallResult, String(res.machine.pgFlavor)) : '';
  writeFileSync(join(OUT, `${name}.svg`), svgChart(res));
  const m = res.machine;
  const sysList = res.systems.map((s) => `${s.label} ${s.version}${s.unavailable ? ` (n/a: ${s.unavailable})` : ''}`).join('; ');
  const header = [
    `Run ${res.when}${isQuick ? ' (--quick)' : ''}: ${m.nproc} cores (${m.cpu}), ${m.memory}, PostgreSQL ${m.postgres} (${m.pgFlavor}), Node ${m.node}, ${m.kernel}.`,
    `Server: ${m.settings}. Workers: ${conc} step slots each, poll ${res.config.pollIntervalMs} ms; DBOS queue poll ${res.config.dbosQueuePollMs} ms. Versions: ${sysList}.`,
    `Throughput runs per configuration: ${res.config.runs}${Number(res.config.runs) > 1 ? ' (median, then min–max)' : ''}. Ratios are ours ÷ peer of the medians (times: lower is better for us; throughput: higher is better). Total bench time ${(res.totalSeconds ?? 0).toFixed(0)} s.`,
  ].join('\n');
  console.log(`\n${header}\n\n${table}\n`);
  if (fc) console.log(`${fc}\n`);
  if (profileMd) console.log(profileMd);
  if (!opts['no-docs'] && !isQuick) {
    const doc = join(ROOT, 'docs/PERFORMANCE.md');
    let text = existsSync(doc) ? readFileSync(doc, 'utf8') : '# Performance\n';
    text = replaceBetween(text, 'table', `${header}\n\n${table}`);
    if (profileMd) text = replaceBetween(text, 'profile', profileMd);
    if (fc) text = replaceBetween(text, 'first-call', fc);
    writeFileSync(doc, text);
    log('wrote docs/PERFORMANCE.md');
  }
  log(`wrote ${join(OUT, `${name}.svg`)}; total ${(res.totalSeconds ?? 0).toFixed(0)} s`);
}

if (opts.render) {
  const res = JSON.parse(readFileSync(opts.render, 'utf8')) as Results;
  render(res, (opts.render.split('/').pop() ?? 'latest.json').replace(/\.json$/, ''));
  process.exit(0);
}

main().then(
  () => {
    clearTimeout(hardTimer);
    process.exit(0);
  },
  (err) => hardStop(`failed: ${(err as Error).stack}`),
);
