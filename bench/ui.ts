/**
 * `npm run bench:ui [-- --instances N] [-- --runs N] [-- --no-docs]`: the dashboard's first page
 * with 10 000 instances. A throwaway PostgreSQL, one tenant who starts N instances (pending: no
 * worker needed), the dashboard connected as that tenant, then:
 *  - server: GET /api/instances (the first page, 50 rows, plus the counts by status), median of runs;
 *  - browser: headless Chromium (/usr/bin/chromium via playwright-core) loads `/` until the table
 *    shows its 50 rows, median of runs (a fresh page each, static files cached as a browser would),
 *    and the very first (cold) load.
 * Prints a markdown section and writes it into docs/PERFORMANCE.md under "## Dashboard".
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { packageRoot, startCluster } from '../src/embedded/cluster';
import { startUiServer } from '../src/ui/server';

const { values: opts } = parseArgs({
  options: {
    instances: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '7' },
    'no-docs': { type: 'boolean', default: false },
  },
});
const N = Number(opts.instances);
const RUNS = Math.max(1, Number(opts.runs));
const CHROMIUM = process.env.PG_DURABLE_CHROMIUM ?? '/usr/bin/chromium';
const PAGE_ROWS = 50;

const log = (m: string) => process.stderr.write(`[bench:ui] ${m}\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (x: number) => `${x.toFixed(1)} ms`;

async function main(): Promise<void> {
  const cluster = await startCluster({ cleanup: 'signals' });
  try {
    log(`cluster up (${cluster.flavor}); starting ${N} instances as a tenant`);
    await cluster.createDatabase('ui_bench');
    const admin = new pg.Client({ connectionString: cluster.url('ui_bench') });
    await admin.connect();
    await admin.query('CREATE ROLE ui_bench_tenant LOGIN');
    await admin.query("SELECT df.grant_usage('ui_bench_tenant')");
    await admin.end();
    const tenant = new pg.Client({ connectionString: cluster.url('ui_bench', 'ui_bench_tenant') });
    await tenant.connect();
    const t0 = performance.now();
    for (let done = 0; done < N; done += 1000) {
      const n = Math.min(1000, N - done);
      await tenant.query(`SELECT df.start('SELECT ' || g || ' AS n', 'batch-' || (g % 10)) FROM generate_series($1::int, $2::int) g`, [done + 1, done + n]);
    }
    log(`${N} instances started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await tenant.query('ANALYZE df.instances');
    await tenant.end().catch(() => undefined);

    const ui = await startUiServer({ databaseUrl: cluster.url('ui_bench', 'ui_bench_tenant'), port: 0 });
    try {
      // Server: the JSON of the first page (what the page fetches), as the tenant.
      const api = `${ui.url}api/instances?limit=${PAGE_ROWS}`;
      for (let i = 0; i < 2; i++) await (await fetch(api)).json(); // warm-up (connections, plans)
      const serverTimes: number[] = [];
      let rows = 0;
      for (let i = 0; i < RUNS; i++) {
        const s = performance.now();
        const body = (await (await fetch(api)).json()) as { rows: unknown[]; counts: Record<string, number> };
        serverTimes.push(performance.now() - s);
        rows = body.rows.length;
      }
      if (rows !== PAGE_ROWS) throw new Error(`expected ${PAGE_ROWS} rows, got ${rows}`);
      log(`server: first page median ${ms(median(serverTimes))}`);

      let browserTimes: number[] = [];
      let cold: number | null = null;
      let browserNote = '';
      if (!existsSync(CHROMIUM)) {
        browserNote = `not measured: no Chromium at ${CHROMIUM}`;
        log(`browser ${browserNote}`);
      } else {
        const { chromium } = await import('playwright-core');
        const profile = mkdtempSync(join(tmpdir(), 'pg-durable-bench-chromium-'));
        const context = await chromium.launchPersistentContext(profile, {
          executablePath: CHROMIUM,
          headless: true,
          args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
          viewport: { width: 1280, height: 900 },
        });
        try {
          const load = async () => {
            const page = await context.newPage();
            const s = performance.now();
            await page.goto(ui.url);
            await page.locator(`#instances tbody tr:nth-child(${PAGE_ROWS})`).waitFor({ state: 'visible' });
            const t = performance.now() - s;
            await page.close();
            return t;
          };
          cold = await load();
          browserTimes = [];
          for (let i = 0; i < RUNS; i++) browserTimes.push(await load());
        } finally {
          await context.close();
          rmSync(profile, { recursive: true, force: true });
        }
        log(`browser: cold ${ms(cold)}, median ${ms(median(browserTimes))}`);
      }

      const section = [
        '## Dashboard',
        '',
        `\`npm run bench:ui\`: the first page of \`pg-durable ui\` (${PAGE_ROWS} rows, newest first, plus the counts by status)`,
        `with ${N.toLocaleString('en-US')} instances of one tenant, read as that tenant (row-level security on), on a`,
        `throwaway PostgreSQL (${cluster.flavor === 'plv8' ? 'plv8' : 'plv8 host'}) on this machine (${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}).`,
        `Median of ${RUNS} runs ${new Date().toISOString().slice(0, 10)}.`,
        '',
        '| measure | time |',
        '|---|---|',
        `| server: \`GET /api/instances\` (df.list_instances page + counts) | ${ms(median(serverTimes))} |`,
        cold === null ? `| browser | ${browserNote} |` : `| browser: headless Chromium, navigation to ${PAGE_ROWS} visible rows | ${ms(median(browserTimes))} (first, cold load: ${ms(cold)}) |`,
        '',
        'The goal was under one second for the first page. The instance page loads Mermaid (5.5 MB,',
        '1.5 MB gzipped) on first use only; the list does not.',
        '',
      ].join('\n');
      console.log(`\n${section}`);
      if (!opts['no-docs']) writeSection(section);
    } finally {
      await ui.close();
    }
  } finally {
    cluster.stop();
  }
}

/** Replaces the "## Dashboard" section of docs/PERFORMANCE.md (appended at the end the first time). */
function writeSection(section: string): void {
  const path = join(packageRoot(), 'docs/PERFORMANCE.md');
  const text = readFileSync(path, 'utf8');
  const start = text.indexOf('\n## Dashboard\n');
  let out: string;
  if (start < 0) out = `${text.replace(/\n*$/, '\n')}\n${section}`;
  else {
    const next = text.indexOf('\n## ', start + 1);
    out = `${text.slice(0, start + 1)}${section}${next < 0 ? '' : `\n${text.slice(next + 1)}`}`;
  }
  writeFileSync(path, out);
  log('wrote the "## Dashboard" section of docs/PERFORMANCE.md');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
