/**
 * Builds everything generated from src/:
 *  - extension/pg_durable--<version>.sql and pg_durable--<from>--<version>.sql (committed; CI
 *    checks they are fresh), see build/sql-gen.ts. Other extension/*.sql files belong to released
 *    versions and are frozen: never rewritten;
 *  - dist/host-ext/: the plv8-host variant of every extension script, derived from the shipped
 *    text (build/host-gen.ts), plus the functions-<version>.json bodies the host evaluates;
 *  - dist/cli.js (worker + CLI) and dist/plv8-host.cjs.
 * `npm run build -- --check` fails if the committed extension files are stale.
 */
import { build } from 'esbuild';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bundleExtension, buildTime, finalizeBundle, recordedBuildTime } from './bundle';
import { toHost } from './host-gen';
import { copyUiAssets } from './ui-assets';
import { ROOT, VERSION } from './paths';
import { control, installScript, migrationsIntoCurrent, upgradeScript } from './sql-gen';

const check = process.argv.includes('--check');

function writeIfChanged(path: string, content: string, stale: string[]): void {
  const old = existsSync(path) ? readFileSync(path, 'utf8') : null;
  if (old === content) return;
  if (check) {
    stale.push(path);
    return;
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

async function main(): Promise<void> {
  const raw = await bundleExtension();
  const installPath = join(ROOT, `extension/pg_durable--${VERSION}.sql`);
  const committed = existsSync(installPath) ? readFileSync(installPath, 'utf8') : null;
  const candidate = buildTime();
  let bundle = finalizeBundle(raw, candidate.time);
  // Without an explicit SOURCE_DATE_EPOCH, keep the build time recorded in the committed script
  // when it reproduces that script byte for byte: the time then stays the HEAD commit time of the
  // build that last changed the bundle, so committing the script never makes it stale.
  const recorded = recordedBuildTime(committed);
  if (!candidate.explicit && recorded !== null && recorded !== candidate.time) {
    const kept = finalizeBundle(raw, recorded);
    if (installScript(kept) === committed) bundle = kept;
  }

  const stale: string[] = [];
  writeIfChanged(installPath, installScript(bundle), stale);
  for (const m of migrationsIntoCurrent()) {
    if (!existsSync(join(ROOT, `extension/pg_durable--${m.from}.sql`))) {
      throw new Error(`src/sql/upgrade/${m.from}--${VERSION}.sql upgrades from ${m.from}, but extension/pg_durable--${m.from}.sql does not exist`);
    }
    writeIfChanged(join(ROOT, `extension/pg_durable--${m.from}--${VERSION}.sql`), upgradeScript(bundle, m.from, m.sql), stale);
  }
  writeIfChanged(join(ROOT, 'extension/pg_durable.control'), control('plv8'), stale);
  if (check) {
    if (stale.length > 0) {
      console.error(`Generated files are stale (run npm run build and commit): ${stale.join(', ')}`);
      process.exit(1);
    }
    return;
  }

  const hostDir = join(ROOT, 'dist/host-ext');
  rmSync(hostDir, { recursive: true, force: true });
  mkdirSync(hostDir, { recursive: true });
  writeFileSync(join(hostDir, 'pg_durable.control'), control('plpython3u'));
  writeFileSync(join(hostDir, 'raise.c'), readFileSync(join(ROOT, 'src/host/raise.c'), 'utf8'));
  for (const name of readdirSync(join(ROOT, 'extension')).filter((f) => /^pg_durable--.*\.sql$/.test(f))) {
    // pg_durable--B.sql installs B, pg_durable--A--B.sql upgrades to B.
    const target = name.slice('pg_durable--'.length, -'.sql'.length).split('--').pop()!;
    const host = toHost(readFileSync(join(ROOT, 'extension', name), 'utf8'), target);
    writeFileSync(join(hostDir, name), host.sql);
    if (host.functions) writeFileSync(join(hostDir, `functions-${target}.json`), host.functions);
  }

  const nodeCommon = { bundle: true, platform: 'node' as const, target: 'node20', logLevel: 'error' as const, sourcemap: true };
  await build({ ...nodeCommon, entryPoints: [join(ROOT, 'src/host/host.ts')], format: 'cjs', outfile: join(ROOT, 'dist/plv8-host.cjs') });
  await build({
    ...nodeCommon,
    entryPoints: [join(ROOT, 'src/cli/main.ts')],
    format: 'esm',
    outfile: join(ROOT, 'dist/cli.js'),
    packages: 'external',
    banner: { js: '#!/usr/bin/env node' },
  });
  copyUiAssets(); // dist/ui: the dashboard's page and browser libraries
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
