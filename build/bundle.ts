/**
 * The plv8 bundle: src/extension bundled by esbuild for plv8's V8 10.2, with a reproducible build
 * time and a hash over the final text (the loader marker that makes a stale plv8 context reload).
 */
import { build, type Plugin } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ROOT, VERSION } from './paths';

const root = ROOT;

/**
 * cron-parser's entry also exports CronFileParser, which requires fs; plv8 has no fs and we never
 * parse crontab files, so those modules become empty stubs in the plv8 bundle.
 */
const noNodeBuiltins: Plugin = {
  name: 'no-node-builtins',
  setup(b) {
    b.onResolve({ filter: /^(node:)?fs(\/promises)?$/ }, (a) => ({ path: a.path, namespace: 'stub' }));
    b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

const HASH_PLACEHOLDER = '__PGD_BUILD_HASH_PLACEHOLDER__';
const TIME_PLACEHOLDER = '__PGD_BUILD_TIME_PLACEHOLDER__';

export interface Bundle {
  code: string;
  hash: string;
  /** UTC build time shown by df.version(), YYYY-MM-DDTHH:MM:SSZ. */
  time: string;
}

const isoSeconds = (epochSeconds: number): string => new Date(epochSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * The build time, reproducible so the committed script can be checked for freshness:
 * SOURCE_DATE_EPOCH when set (explicit), else the commit time of HEAD, else the epoch.
 */
export function buildTime(): { time: string; explicit: boolean } {
  const sde = (process.env.SOURCE_DATE_EPOCH ?? '').trim();
  if (/^[0-9]+$/.test(sde)) return { time: isoSeconds(Number(sde)), explicit: true };
  try {
    const ct = execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    if (/^[0-9]+$/.test(ct)) return { time: isoSeconds(Number(ct)), explicit: false };
  } catch {
    // not a git checkout (e.g. an npm tarball)
  }
  return { time: '1970-01-01T00:00:00Z', explicit: false };
}

/** The build time recorded in the header of a generated script, if any. */
export function recordedBuildTime(script: string | null): string | null {
  const m = script === null ? null : /^-- pg_durable \S+ \(built ([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)\)$/m.exec(script);
  return m ? m[1] : null;
}

/** Fixes the build time into the bundle; the hash covers the final text. */
export function finalizeBundle(raw: string, time: string): Bundle {
  const text = raw.split(TIME_PLACEHOLDER).join(time);
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  return { code: text.split(HASH_PLACEHOLDER).join(hash), hash, time };
}

/** The bundle text with the hash and build time still as placeholders. */
export async function bundleExtension(): Promise<string> {
  const out = await build({
    entryPoints: [join(root, 'src/extension/glue.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    // plv8 builds ship V8 10.2: ES2021 syntax and library only (no Array#at, structuredClone, ...).
    target: 'es2021',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    legalComments: 'none',
    minifyWhitespace: true,
    minifySyntax: true,
    define: {
      __BUILD_HASH__: JSON.stringify(HASH_PLACEHOLDER),
      __BUILD_TIME__: JSON.stringify(TIME_PLACEHOLDER),
      __PGD_VERSION__: JSON.stringify(VERSION),
    },
    plugins: [noNodeBuiltins],
    // One luxon for everyone: cron-parser require()s luxon's CommonJS build while src/core/cron.ts
    // imports the ESM build to pin its Settings; two copies would leave cron-parser's unpinned.
    alias: { luxon: join(root, 'node_modules/luxon/build/es6/luxon.mjs') },
    logLevel: 'error',
  });
  return out.outputFiles[0].text;
}

