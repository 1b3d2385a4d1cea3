/** The results as a markdown table (stdout and docs/PERFORMANCE.md), JSON and a hand-written SVG chart. */
import type { Dist } from './util';
import type { SysKey } from './systems';

export interface LatencyResult {
  one: Dist;
  chain: Dist;
  perStep: Dist;
  /** (T_chain - T_one) / (steps - 1): the cost of one more step. */
  marginal: number;
  fanout: Dist;
  /** CPU per step during the sequential chains (server includes the client's 1 ms status polls). */
  chainCpu: { workerMsPerStep: number; serverMsPerStep: number };
  chainSteps: number;
  fanoutBranches: number;
}

/** Rates and CPU over a span of a throughput run. */
export interface ThroughputWindow {
  elapsedMs: number;
  instPerSec: number;
  stepsPerSec: number;
  cpu: { workerMs: number; serverMs: number; clientMs: number; machineBusyPct: number };
}

export interface ThroughputRun {
  sys: SysKey;
  workers: number;
  concurrency: number;
  count: number;
  steps: number;
  elapsedMs: number;
  instPerSec: number;
  stepsPerSec: number;
  startMs: number;
  failures: number;
  /** The run hit the per-run time cap: rates are completed ÷ cap (a lower bound). */
  cutAtMs?: number;
  rssMiB: number[];
  sizeBytes: number;
  /** What the rows show: the steady window where the run has one, else the whole batch. */
  cpu: ThroughputWindow['cpu'];
  /** Steps that `cpu` covers (results written before the steady window: count × steps). */
  cpuSteps?: number;
  /** The last (1 - WARM_UP) of the batch's steps, from `fromStep` steps done (bench/run.ts). */
  steady?: ThroughputWindow & { fromStep: number; steps: number };
  /** The whole batch from fresh worker processes, warm-up included. */
  whole?: ThroughputWindow;
}

export interface SysInfo {
  key: SysKey;
  label: string;
  version: string;
  unavailable: string | null;
}

export interface Results {
  when: string;
  machine: Record<string, string>;
  config: Record<string, unknown>;
  systems: SysInfo[];
  latency: Partial<Record<SysKey, LatencyResult | { error: string }>>;
  throughput: (ThroughputRun | { sys: SysKey; workers: number; concurrency: number; count: number; steps: number; error: string })[];
  profile?: unknown;
  /** bench/lib/first-call.ts */
  firstCall?: unknown;
  totalSeconds?: number;
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '–');

function isRun(r: Results['throughput'][number]): r is ThroughputRun {
  return !('error' in r);
}

/** Median over repeated runs of one configuration (runs = 1 shows the single value). */
function tp(res: Results, sys: SysKey, workers: number, steps: number, concurrency: number): { runs: ThroughputRun[]; error?: string } {
  const all = res.throughput.filter((r) => r.sys === sys && r.workers === workers && r.steps === steps && r.concurrency === concurrency);
  const err = all.find((r) => !isRun(r)) as { error: string } | undefined;
  return { runs: all.filter(isRun), error: err?.error };
}

function med(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

function cellDist(d: Dist | undefined, digits = 1): string {
  return d && d.n > 0 ? `${f(d.median, digits)} / ${f(d.p95, digits)}` : '–';
}

function cellRuns(runs: ThroughputRun[], pick: (r: ThroughputRun) => number, digits = 0): string {
  if (runs.length === 0) return '–';
  const v = runs.map(pick);
  const cut = runs.find((r) => r.cutAtMs);
  if (cut) return `≥ ${f(Math.min(...v), digits)} (cut at ${f(cut.cutAtMs! / 1000, 0)} s)`;
  if (v.length === 1) return f(v[0], digits);
  return `${f(med(v), digits)} (${f(Math.min(...v), digits)}–${f(Math.max(...v), digits)})`;
}

export function markdownTable(res: Results): string {
  const order: SysKey[] = ['ours', 'floor', 'pgbench', 'dbos', 'graphile'];
  const sysInfo = new Map(res.systems.map((s) => [s.key, s]));
  const present = order.filter((k) => sysInfo.has(k));
  // One ratio column for the floors: against the faster of the two in each row (the targets hold
  // against the fastest honest client); one per peer.
  const floors: SysKey[] = present.filter((k) => k === 'floor' || k === 'pgbench');
  const peers = present.filter((k) => k !== 'ours' && !floors.includes(k));
  const head = ['Measurement', ...present.map((k) => sysInfo.get(k)!.label), ...(floors.length ? [floors.length > 1 ? 'ours ÷ faster floor' : `ours ÷ ${floors[0]}`] : []), ...peers.map((k) => `ours ÷ ${k}`)];
  /** Ratio cells of a row: `get` reads a system's value; the floor's is the better of the two. */
  const ratios = (get: (k: SysKey) => number, higherBetter = false): string[] => {
    const ours = get('ours');
    const fv = floors.map(get).filter((v) => Number.isFinite(v));
    const best = fv.length === 0 ? NaN : higherBetter ? Math.max(...fv) : Math.min(...fv);
    return [...(floors.length ? [ratio(ours, best)] : []), ...peers.map((k) => ratio(ours, get(k)))];
  };
  const rows: string[][] = [];
  const lat = (k: SysKey) => {
    const l = res.latency[k];
    return l && !('error' in l) ? l : undefined;
  };
  const unavailable = (k: SysKey) => {
    const s = sysInfo.get(k)!;
    if (s.unavailable) return `n/a: ${s.unavailable}`;
    const l = res.latency[k];
    return l && 'error' in l ? `error: ${l.error.replace(/[\s|]+/g, ' ').slice(0, 80)}` : null;
  };
  const latRow = (name: string, pick: (l: LatencyResult) => Dist, digits = 1) => {
    const cells = present.map((k) => unavailable(k) ?? cellDist(lat(k) ? pick(lat(k)!) : undefined, digits));
    rows.push([name, ...cells, ...ratios((k) => (lat(k) ? pick(lat(k)!).median : NaN))]);
  };
  const chainSteps = (lat('ours') ?? lat('floor'))?.chainSteps ?? 20;
  const branches = (lat('ours') ?? lat('floor'))?.fanoutBranches ?? 50;
  latRow('Latency: 1-step start → completed seen by client, ms (median / p95)', (l) => l.one, 1);
  latRow(`Latency: ${chainSteps}-step sequential, per step, ms (median / p95)`, (l) => l.perStep, 2);
  latRow(`Latency: ${chainSteps}-step sequential, total, ms (median / p95)`, (l) => l.chain, 1);
  latRow(`Fan-out: JOIN of ${branches} branches, all done, ms (median / p95)`, (l) => l.fanout, 1);

  const conc = Number(res.config.concurrency);
  // Runs since the steady window say so in their rows' names (bench/run.ts, WARM_UP).
  const steady = res.throughput.some((r) => isRun(r) && r.steady) ? ', steady' : '';
  const workerCounts = (res.config.workers as number[]) ?? [1, 2, 4];
  const loads = (res.config.loads as { count: number; steps: number }[]) ?? [];
  for (const load of loads) {
    for (const w of workerCounts) {
      const unit = load.steps === 1 ? 'instances/s' : 'steps/s';
      const pick = (r: ThroughputRun) => (load.steps === 1 ? r.instPerSec : r.stepsPerSec);
      const cells = present.map((k) => {
        const u = sysInfo.get(k)!.unavailable;
        if (u) return `n/a`;
        const t = tp(res, k, w, load.steps, conc);
        if (t.error) return t.error.startsWith('skipped') ? t.error : `error: ${t.error.slice(0, 80)}`;
        return cellRuns(t.runs, pick);
      });
      rows.push([
        `Throughput${steady}: ${load.count} × ${load.steps}-step, ${w} worker${w > 1 ? 's' : ''} × ${conc}, ${unit}`,
        ...cells,
        ...ratios((k) => med(tp(res, k, w, load.steps, conc).runs.map(pick)), true),
      ]);
    }
  }
  const extra = res.config.extraConcurrency as number | undefined;
  if (extra) {
    for (const load of loads) {
      const pick = (r: ThroughputRun) => (load.steps === 1 ? r.instPerSec : r.stepsPerSec);
      const t = tp(res, 'ours', 1, load.steps, extra);
      if (t.runs.length === 0 && !t.error) continue;
      rows.push([
        `Throughput${steady}: ${load.count} × ${load.steps}-step, 1 worker × ${extra} (ours only), ${load.steps === 1 ? 'instances/s' : 'steps/s'}`,
        t.error ? (t.error.startsWith('skipped') ? t.error : `error: ${t.error.slice(0, 80)}`) : cellRuns(t.runs, pick),
        ...present.slice(1).map(() => ''),
        ...ratios(() => NaN).map(() => ''),
      ]);
    }
  }
  const big = loads[0];
  const small = loads[1];
  if (big) {
    // Like the throughput rows, the median over the configuration's runs (it was the first run's:
    // with --runs 3 the ninth run's PostgreSQL CPU row showed one run of three).
    const medOf = (k: SysKey, steps: number, value: (r: ThroughputRun) => number) => med(tp(res, k, 1, steps, conc).runs.map(value).filter((v) => !Number.isNaN(v)));
    const rss = (r: ThroughputRun) => (r.rssMiB.length ? Math.max(...r.rssMiB) : NaN);
    rows.push([`Memory: worker peak RSS (VmHWM) under the ${big.count}-instance load, 1 worker, MiB`, ...present.map((k) => f(medOf(k, big.steps, rss), 0)), ...ratios((k) => medOf(k, big.steps, rss))]);
    for (const load of [big, small].filter(Boolean)) {
      const size = (k: SysKey) => medOf(k, load.steps, (r) => r.sizeBytes / 1024 / (r.count / 1000));
      rows.push([`Database size per 1 000 completed ${load.steps}-step instances, KiB`, ...present.map((k) => f(size(k), 0)), ...ratios(size)]);
    }
    // pgbench runs as no worker process of ours: its client CPU is not measured.
    const cpu = (k: SysKey, which: 'workerMs' | 'serverMs') =>
      medOf(k, big.steps, (r) => (which === 'workerMs' && r.rssMiB.length === 0 ? NaN : r.cpu[which] / (r.cpuSteps ?? r.count * r.steps)));
    rows.push([`CPU per step${steady}, worker process(es), ms (${big.count} × ${big.steps}-step, 1 worker)`, ...present.map((k) => f(cpu(k, 'workerMs'), 3)), ...ratios((k) => cpu(k, 'workerMs'))]);
    rows.push([`CPU per step${steady}, PostgreSQL server, ms (${big.count} × ${big.steps}-step, 1 worker)`, ...present.map((k) => f(cpu(k, 'serverMs'), 3)), ...ratios((k) => cpu(k, 'serverMs'))]);
    // The same runs over the whole batch, the workers' warm-up included (older results: none).
    if (res.throughput.some((r) => isRun(r) && r.steady && r.whole)) {
      for (const load of [big, small].filter(Boolean)) {
        const pick = (r: ThroughputRun) => (r.whole ? (load.steps === 1 ? r.whole.instPerSec : r.whole.stepsPerSec) : NaN);
        rows.push([
          `Whole batch from fresh workers (warm-up included): ${load.count} × ${load.steps}-step, 1 worker × ${conc}, ${load.steps === 1 ? 'instances/s' : 'steps/s'}`,
          ...present.map((k) => cellRuns(tp(res, k, 1, load.steps, conc).runs.filter((r) => r.whole), pick)),
          ...ratios((k) => medOf(k, load.steps, pick), true),
        ]);
      }
      const wholeCpu = (k: SysKey, which: 'workerMs' | 'serverMs') =>
        medOf(k, big.steps, (r) => (!r.whole || (which === 'workerMs' && r.rssMiB.length === 0) ? NaN : r.whole.cpu[which] / (r.count * r.steps)));
      rows.push([`Whole batch: CPU per step, worker process(es), ms (${big.count} × ${big.steps}-step, 1 worker)`, ...present.map((k) => f(wholeCpu(k, 'workerMs'), 3)), ...ratios((k) => wholeCpu(k, 'workerMs'))]);
      rows.push([`Whole batch: CPU per step, PostgreSQL server, ms (${big.count} × ${big.steps}-step, 1 worker)`, ...present.map((k) => f(wholeCpu(k, 'serverMs'), 3)), ...ratios((k) => wholeCpu(k, 'serverMs'))]);
    }
  }
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

// ---- SVG --------------------------------------------------------------------------------------

const COLORS: Record<SysKey, string> = { ours: '#2b6cb0', floor: '#718096', pgbench: '#a0aec0', dbos: '#dd6b20', graphile: '#38a169' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Grouped horizontal bars: one group per category, one bar per system (scaled within the group). */
function panel(x0: number, y0: number, width: number, title: string, unit: string, groups: { name: string; bars: { key: SysKey; value: number }[] }[]): { svg: string; height: number } {
  const barH = 14;
  const gap = 10;
  const labelW = 150;
  const out: string[] = [`<text x="${x0}" y="${y0 + 14}" font-size="14" font-weight="bold">${esc(title)}</text>`];
  let y = y0 + 28;
  for (const g of groups) {
    // Each group has its own scale: the bars compare systems, not groups.
    const max = Math.max(1e-9, ...g.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
    out.push(`<text x="${x0}" y="${y + barH - 2}" font-size="12">${esc(g.name)}</text>`);
    for (const b of g.bars) {
      const w = Number.isFinite(b.value) ? ((width - labelW - 120) * b.value) / max : 0;
      out.push(`<rect x="${x0 + labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH - 2}" fill="${COLORS[b.key]}"/>`);
      out.push(`<text x="${(x0 + labelW + w + 4).toFixed(1)}" y="${y + barH - 3}" font-size="11">${Number.isFinite(b.value) ? `${b.value.toFixed(b.value < 10 ? 2 : 0)} ${esc(unit)}` : 'n/a'}</text>`);
      y += barH;
    }
    y += gap;
  }
  return { svg: out.join('\n'), height: y - y0 };
}

export function svgChart(res: Results): string {
  const keys = (['ours', 'floor', 'pgbench', 'dbos', 'graphile'] as SysKey[]).filter((k) => res.systems.some((s) => s.key === k));
  const label = new Map(res.systems.map((s) => [s.key, s.label]));
  const lat = (k: SysKey) => {
    const l = res.latency[k];
    return l && !('error' in l) ? l : undefined;
  };
  const width = 760;
  const parts: string[] = [];
  let y = 10;
  const p1 = panel(10, y, width, 'Latency (median, lower is better)', 'ms', [
    { name: 'per step (chain)', bars: keys.map((k) => ({ key: k, value: lat(k)?.perStep.median ?? NaN })) },
    { name: '1-step start→done', bars: keys.map((k) => ({ key: k, value: lat(k)?.one.median ?? NaN })) },
  ]);
  parts.push(p1.svg);
  y += p1.height + 10;
  const conc = Number(res.config.concurrency);
  const loads = (res.config.loads as { count: number; steps: number }[]) ?? [];
  const workers = (res.config.workers as number[]) ?? [1];
  const groups = loads.flatMap((load) => workers.map((w) => ({
    name: `${load.count}×${load.steps}, ${w}w`,
    bars: keys.map((k) => {
      const r = res.throughput.find((t) => t.sys === k && t.workers === w && t.steps === load.steps && t.concurrency === conc && isRun(t)) as ThroughputRun | undefined;
      return { key: k, value: r ? r.stepsPerSec : NaN };
    }),
  })));
  const p2 = panel(10, y, width, 'Throughput (steps/s, higher is better)', 'steps/s', groups);
  parts.push(p2.svg);
  y += p2.height + 10;
  // legend
  let lx = 10;
  for (const k of keys) {
    parts.push(`<rect x="${lx}" y="${y}" width="12" height="12" fill="${COLORS[k]}"/><text x="${lx + 16}" y="${y + 11}" font-size="12">${esc(label.get(k) ?? k)}</text>`);
    lx += 190;
  }
  y += 24;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}
