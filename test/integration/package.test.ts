/**
 * The npm package as users get it: `npm pack`, unpacked elsewhere, its `pg-durable` bin runs and
 * `pg-durable install` copies the extension files into a PostgreSQL share directory.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dir: string;
let pkg: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgd-pack-'));
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const tarball = (JSON.parse(out) as { filename: string }[])[0].filename;
  execFileSync('tar', ['xzf', join(dir, tarball), '-C', dir]);
  pkg = join(dir, 'package');
  // Runtime dependencies come from the registry for users; here, from this checkout.
  symlinkSync(resolve('node_modules'), join(pkg, 'node_modules'));
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = (...args: string[]) => spawnSync(process.execPath, [join(pkg, 'dist/cli.js'), ...args], { encoding: 'utf8' });

describe('the npm package', () => {
  it('ships the CLI, the extension scripts and the plv8 host, and no sources or tests', () => {
    const files = readdirSync(pkg);
    expect(files.sort()).toEqual(['README.md', 'dist', 'extension', 'node_modules', 'package.json']);
    expect(readdirSync(join(pkg, 'extension'))).toEqual(readdirSync('extension'));
  });

  it('its bin lists the commands', () => {
    const r = cli('--help');
    expect(r.status).toBe(0);
    for (const command of ['worker', 'demo', 'install', 'status', 'list', 'explain', 'watch']) expect(r.stdout).toContain(command);
  });

  it('pg-durable install copies every extension file into <sharedir>/extension', () => {
    const share = join(dir, 'share');
    const r = cli('install', '--sharedir', share);
    expect(r.status, r.stderr).toBe(0);
    const installed = readdirSync(join(share, 'extension')).sort();
    expect(installed).toEqual(readdirSync('extension').sort());
    for (const f of installed) expect(readFileSync(join(share, 'extension', f), 'utf8')).toBe(readFileSync(join('extension', f), 'utf8'));
  });

  it('pg-durable worker explains a missing connection instead of crashing', () => {
    const r = spawnSync(process.execPath, [join(pkg, 'dist/cli.js'), 'worker'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no database: pass --database-url or set PG_DURABLE_DATABASE_URL');
  });
});
