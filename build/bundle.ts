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

/** A part of the bundle evaluated on demand by its own loader function (`name`). */
export interface Chunk {
  name: string;
  code: string;
  hash: string;
}

export interface Bundle {
  code: string;
  hash: string;
  /** UTC build time shown by df.version(), YYYY-MM-DDTHH:MM:SSZ. */
  time: string;
  chunks: Chunk[];
}

export interface RawBundle {
  main: string;
  chunks: Chunk[];
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
const hashOf = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 16);

export function finalizeBundle(raw: RawBundle, time: string): Bundle {
  const text = raw.main.split(TIME_PLACEHOLDER).join(time);
  const hash = hashOf(text);
  return { code: text.split(HASH_PLACEHOLDER).join(hash), hash, time, chunks: raw.chunks };
}

const common = {
  bundle: true,
  write: false,
  format: 'iife' as const,
  // plv8 builds ship V8 10.2: ES2021 syntax and library only (no Array#at, structuredClone, ...).
  target: 'es2021',
  platform: 'neutral' as const,
  mainFields: ['module', 'main'],
  legalComments: 'none' as const,
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'error' as const,
};

/**
 * Parts of the bundle that load on first use, each its own plv8 function (src/extension/chunks.ts).
 * Measured on plv8 3.2 (docs/PERFORMANCE.md, "First call in a new session"): evaluating the whole
 * 218 KB bundle cost 13.4 ms on a session's first df.* call; the cron engine (cron-parser + luxon,
 * 163 KB) is needed only to build or validate a schedule, and monitoring (21 KB) only to look.
 * In every other build, `module` is replaced by `lazy`, which loads the chunk; `define` carries the
 * chunk's hash. Listed so that a chunk's dependencies come first.
 */
const PARTS = [
  { name: 'df._pgd_load_cron', entry: 'src/extension/cron-chunk.ts', module: /\/cron-engine$/, lazy: 'src/extension/cron-lazy.ts', define: '__CRON_CHUNK_HASH__' },
  { name: 'df._pgd_load_monitor', entry: 'src/extension/monitor-chunk.ts', module: /\/monitor-entries$/, lazy: 'src/extension/monitor-lazy.ts', define: '__MONITOR_CHUNK_HASH__' },
];

/** Swaps every part other than `self` for its lazy stand-in. */
function lazyParts(self: string | null): Plugin {
  return {
    name: 'lazy-parts',
    setup(b) {
      for (const p of PARTS) {
        if (p.name !== self) b.onResolve({ filter: p.module }, () => ({ path: join(root, p.lazy) }));
      }
    },
  };
}

/** The bundle text with the hash and build time still as placeholders, and its chunks. */
export async function bundleExtension(): Promise<RawBundle> {
  const chunks: Chunk[] = [];
  const defines: Record<string, string> = {};
  for (const p of PARTS) {
    const out = await build({
      ...common,
      entryPoints: [join(root, p.entry)],
      define: { ...defines, [p.define]: JSON.stringify(HASH_PLACEHOLDER) },
      plugins: [noNodeBuiltins, lazyParts(p.name)],
      // One luxon for everyone: cron-parser require()s luxon's CommonJS build while
      // src/core/cron-engine.ts imports the ESM build to pin its Settings; two copies would
      // leave cron-parser's unpinned.
      alias: { luxon: join(root, 'node_modules/luxon/build/es6/luxon.mjs') },
    });
    const text = out.outputFiles![0].text;
    const hash = hashOf(text);
    chunks.push({ name: p.name, code: text.split(HASH_PLACEHOLDER).join(hash), hash });
    defines[p.define] = JSON.stringify(hash);
  }
  const out = await build({
    ...common,
    entryPoints: [join(root, 'src/extension/glue.ts')],
    define: {
      ...defines,
      __BUILD_HASH__: JSON.stringify(HASH_PLACEHOLDER),
      __BUILD_TIME__: JSON.stringify(TIME_PLACEHOLDER),
      __PGD_VERSION__: JSON.stringify(VERSION),
    },
    plugins: [lazyParts(null)],
  });
  const main = out.outputFiles![0].text;
  if (main.includes('CronExpressionParser')) throw new Error('the cron engine leaked into the main plv8 bundle (import it through src/core/cron.ts only)');
  return { main, chunks };
}
