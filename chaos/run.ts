/**
 * `npm run chaos [-- options]`: the full fault-tolerance run (see chaos/engine.ts for what is
 * injected and checked). Exits 1 on any violation. Needs `npm run build` (the script does it).
 *
 *   --workflows N        workflows started during the fault phase (600)
 *   --workers N          worker processes (3); kills take 2 or more of them at once
 *   --min-kills N        worker SIGKILLs before the fault phase may end (50)
 *   --min-pg-restarts N  PostgreSQL restarts, alternating fast and immediate (6)
 *   --min-terminations N worker backends terminated with pg_terminate_backend (10)
 *   --spread SEC         seconds over which workflows are started (200)
 *   --max-chaos SEC      cap on the fault phase (600); --drain SEC cap on the drain (240)
 *   --seed N             choices (kinds, values, victims) are reproducible per seed (1)
 *   --out DIR            report.json, workers.log and violations.json (default: a temp dir)
 *   --short              the CI-sized run (70 workflows, 8 kills, 2 restarts)
 */
import { parseArgs } from 'node:util';
import { FULL, SHORT, formatReport, runChaos, type ChaosOptions } from './engine';

const { values } = parseArgs({
  options: {
    workflows: { type: 'string' }, workers: { type: 'string' }, 'min-kills': { type: 'string' },
    'min-pg-restarts': { type: 'string' }, 'min-terminations': { type: 'string' }, spread: { type: 'string' },
    'max-chaos': { type: 'string' }, drain: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' },
    short: { type: 'boolean', default: false }, 'no-schedule': { type: 'boolean', default: false },
  },
});
const base = values.short ? SHORT : FULL;
const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
const opts: ChaosOptions = {
  ...base,
  workflows: num(values.workflows, base.workflows),
  workers: num(values.workers, base.workers),
  minKills: num(values['min-kills'], base.minKills),
  minPgRestarts: num(values['min-pg-restarts'], base.minPgRestarts),
  minTerminations: num(values['min-terminations'], base.minTerminations),
  startSpreadSeconds: num(values.spread, base.startSpreadSeconds),
  maxChaosSeconds: num(values['max-chaos'], base.maxChaosSeconds),
  drainSeconds: num(values.drain, base.drainSeconds),
  seed: num(values.seed, base.seed),
  allowSchedule: !values['no-schedule'],
  snapshotCli: true,
  outDir: values.out,
};

// A hard stop for the whole run, whatever happens (the engine always stops its cluster).
const hardLimit = setTimeout(() => {
  console.error('chaos: hard time limit reached');
  process.exit(2);
}, (opts.maxChaosSeconds + opts.drainSeconds + opts.startSpreadSeconds + 300) * 1000);
hardLimit.unref();

const report = await runChaos(opts);
console.log(`\n${formatReport(report)}\n\nreport: ${report.outDir}/report.json`);
const total = Object.values(report.violations).reduce((a, b) => a + b, 0);
const short = report.faults.kills < opts.minKills || report.faults.pgRestarts < opts.minPgRestarts || report.instances < opts.workflows;
if (short) console.error('chaos: the fault quotas or the workflow count were not reached');
process.exit(total > 0 || short ? 1 : 0);
