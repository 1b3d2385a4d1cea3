/**
 * `pg-durable install`: copy the extension files shipped in this package into a local
 * PostgreSQL's extension directory (`pg_config --sharedir`/extension), for people not using our
 * image. The server still needs plv8; then `CREATE EXTENSION pg_durable CASCADE`.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../embedded/cluster';

const HELP = `usage: pg-durable install [--pg-config PATH] [--sharedir DIR] [--dry-run]

Copies pg_durable.control and the pg_durable--*.sql scripts into <sharedir>/extension.
  --pg-config PATH   pg_config of the target server (default: pg_config on PATH)
  --sharedir DIR     install under DIR/extension instead of asking pg_config
  --dry-run          print what would be copied`;

export async function run(args: string[]): Promise<number> {
  let values: { 'pg-config'?: string; sharedir?: string; 'dry-run'?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({ args, options: { 'pg-config': { type: 'string' }, sharedir: { type: 'string' }, 'dry-run': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    console.error(`pg-durable install: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  let sharedir = values.sharedir;
  if (!sharedir) {
    const pgConfig = values['pg-config'] ?? 'pg_config';
    try {
      sharedir = execFileSync(pgConfig, ['--sharedir'], { encoding: 'utf8' }).trim();
    } catch (err) {
      console.error(`pg-durable install: cannot run ${pgConfig} --sharedir (${(err as Error).message}). Pass --pg-config or --sharedir.`);
      return 1;
    }
  }
  const source = join(packageRoot(), 'extension');
  const files = readdirSync(source).filter((f) => f === 'pg_durable.control' || /^pg_durable--.*\.sql$/.test(f)).sort();
  if (!files.includes('pg_durable.control')) {
    console.error(`pg-durable install: ${source} has no pg_durable.control (a broken package?)`);
    return 1;
  }
  const target = join(sharedir, 'extension');
  for (const f of files) {
    if (values['dry-run']) console.log(`would copy ${join(source, f)} -> ${join(target, f)}`);
    else {
      if (!existsSync(target)) mkdirSync(target, { recursive: true });
      copyFileSync(join(source, f), join(target, f));
      console.log(`installed ${join(target, f)}`);
    }
  }
  if (!values['dry-run']) console.log('Next: CREATE EXTENSION pg_durable CASCADE;  (the server needs plv8), then start `pg-durable worker`.');
  return 0;
}
