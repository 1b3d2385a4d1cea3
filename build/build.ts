/**
 * Builds everything generated from src/:
 *  - extension/pg_durable--<version>.sql (committed): hand-written src/sql/*.sql, the plv8 loader
 *    holding the esbuild bundle of src/extension, and one short plv8 prologue per manifest entry;
 *  - dist/host-ext/: the same install script for the plv8 host used where plv8 is not installed
 *    (each df.* function is a PL/Python shim that hands the call to a Node process running the
 *    very same loader and prologue bodies, see src/host);
 *  - dist/cli.js (worker + CLI) and dist/plv8-host.cjs.
 * `npm run build -- --check` fails if the committed extension files are stale.
 */
import { build, type Plugin } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FUNCTIONS, type FunctionSpec } from './manifest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const VERSION = pkg.version;
const check = process.argv.includes('--check');

/** Hand-written SQL files, in file-name order, split around the generated functions. */
function sqlSources(): { before: string; after: string } {
  const dir = join(root, 'src/sql');
  const files = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  const read = (f: string) => `-- ---- src/sql/${f}\n${readFileSync(join(dir, f), 'utf8').trim()}\n`;
  // Files numbered below 20 come before the generated functions (schema, type); the rest after,
  // because operators and grants refer to the functions.
  return {
    before: files.filter((f) => f < '20').map(read).join('\n'),
    after: files.filter((f) => f >= '20').map(read).join('\n'),
  };
}

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

interface Bundle {
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
function buildTime(): { time: string; explicit: boolean } {
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
function recordedBuildTime(script: string | null): string | null {
  const m = script === null ? null : /^-- pg_durable \S+ \(built ([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)\)$/m.exec(script);
  return m ? m[1] : null;
}

/** Fixes the build time into the bundle; the hash covers the final text. */
function finalizeBundle(raw: string, time: string): Bundle {
  const text = raw.split(TIME_PLACEHOLDER).join(time);
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  return { code: text.split(HASH_PLACEHOLDER).join(hash), hash, time };
}

/** The bundle text with the hash and build time still as placeholders. */
async function bundleExtension(): Promise<string> {
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

function argList(spec: FunctionSpec): string {
  return spec.args.map((a) => `${a.name} ${a.type}${a.default !== undefined ? ` DEFAULT ${a.default}` : ''}`).join(', ');
}

function returnsClause(spec: FunctionSpec): string {
  if (typeof spec.returns === 'string') return spec.returns;
  return `TABLE (${spec.returns.table.map((c) => `${c.name} ${c.type}`).join(', ')})`;
}

function attributes(spec: FunctionSpec): string {
  const parts: string[] = [spec.volatility ?? 'VOLATILE'];
  if (spec.strict) parts.push('STRICT');
  if (spec.parallelSafe) parts.push('PARALLEL SAFE');
  return parts.join(' ');
}

/** A dollar-quote tag that does not occur in the body. */
function dollarQuote(body: string, base: string): string {
  let tag = base;
  for (let i = 0; body.includes(`$${tag}$`); i++) tag = `${base}${i}`;
  return `$${tag}$\n${body}\n$${tag}$`;
}

/** The plv8 body of a df.* function: load the bundle once per context, then call the entry. */
function prologue(spec: FunctionSpec, hash: string): string {
  const args = spec.args.map((a) => a.name).join(', ');
  return [
    'var m = globalThis.__pg_durable;',
    `if (m === undefined || m.hash !== '${hash}') { plv8.find_function('df._pgd_load')(); m = globalThis.__pg_durable; }`,
    `return m.call('${spec.entry}', [${args}]);`,
  ].join('\n');
}

function revokes(): string {
  return FUNCTIONS.filter((f) => f.revokePublic)
    .map((f) => `REVOKE EXECUTE ON FUNCTION ${f.sql}(${f.args.map((a) => a.type).join(', ')}) FROM PUBLIC;`)
    .join('\n');
}

function header(kind: string, time: string): string {
  return [
    `-- GENERATED by build/build.ts (${kind}) from src/sql/*.sql, build/manifest.ts and the src/extension bundle. Do not edit.`,
    `-- pg_durable ${VERSION} (built ${time})`,
    '\\echo Use "CREATE EXTENSION pg_durable" to load this file. \\quit',
    '',
  ].join('\n');
}

function plv8Script(bundle: Bundle): string {
  const { before, after } = sqlSources();
  const fns = FUNCTIONS.map(
    (f) => `CREATE FUNCTION ${f.sql}(${argList(f)}) RETURNS ${returnsClause(f)} LANGUAGE plv8 ${attributes(f)} AS ${dollarQuote(prologue(f, bundle.hash), 'pgd')};`,
  ).join('\n\n');
  return [
    header('plv8', bundle.time),
    before,
    `-- ---- the bundle (build ${bundle.hash}), evaluated once per plv8 context`,
    `CREATE FUNCTION df._pgd_load() RETURNS void LANGUAGE plv8 AS ${dollarQuote(bundle.code, 'pgd_bundle')};`,
    '',
    '-- ---- df.* functions (build/manifest.ts)',
    fns,
    '',
    after,
    revokes(),
    '',
  ].join('\n');
}

/** The key the host serves a function under: overloads (df.list_instances, ...) need the signature. */
function hostKey(f: FunctionSpec): string {
  return `${f.sql}(${f.args.map((a) => a.type).join(',')})`;
}

/**
 * Same script for the plv8 host: each df.* function is a PL/Python shim (df._host_<name>) that
 * forwards the call to the Node process, wrapped in a plpgsql function with the real signature that
 * re-raises errors without PL/Python's "plpy.Error: " prefix, so messages match plv8's exactly.
 */
function hostScript(bundle: Bundle): string {
  const { before, after } = sqlSources();
  // @NODE@, @HOST_JS@ and @FUNCTIONS_JSON@ stay placeholders: src/embedded/cluster.ts fills in the
  // paths of the installation at hand when it installs this script.
  const bridge = readFileSync(join(root, 'src/host/bridge.py'), 'utf8');
  const fns = FUNCTIONS.map((f) => {
    const inner = `df._host_${f.sql.slice(3)}`;
    const names = f.args.map((a) => a.name);
    const shim = [
      "if 'pgd' not in GD:",
      "    plpy.execute('SELECT df._pgd_bridge_init()')",
      `return GD['pgd'].call('${hostKey(f)}', [${names.join(', ')}])`,
    ].join('\n');
    const innerArgs = f.args.map((a) => `${a.name} ${a.type}`).join(', ');
    const callArgs = names.map((n, i) => `$${i + 1}`).join(', ');
    const isTable = typeof f.returns !== 'string';
    const invoke = isTable
      ? `RETURN QUERY SELECT * FROM ${inner}(${callArgs});`
      : f.returns === 'void'
        ? `PERFORM ${inner}(${callArgs});`
        : `RETURN ${inner}(${callArgs});`;
    const wrapper = [
      'DECLARE m text; c text; d text; h text;',
      'BEGIN',
      `    ${invoke}`,
      'EXCEPTION WHEN OTHERS OR query_canceled OR assert_failure THEN',
      '    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, c = RETURNED_SQLSTATE, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;',
      "    RAISE EXCEPTION USING MESSAGE = pg_catalog.regexp_replace(m, '^plpy\\.Error: ', ''), ERRCODE = c,",
      "        DETAIL = COALESCE(d, ''), HINT = COALESCE(h, '');",
      'END',
    ].join('\n');
    const innerFn = `CREATE FUNCTION ${inner}(${innerArgs}) RETURNS ${returnsClause(f)} LANGUAGE plpython3u ${attributes(f)} AS ${dollarQuote(shim, 'pgd')};`;
    // PL/pgSQL puts parameters and output columns in one namespace, so an argument named like an
    // output column (df.instance_info(instance_id) RETURNS TABLE (instance_id ...), fine in plv8)
    // gets an unnamed PL/pgSQL middle function and a SQL function with the real signature.
    const outputs = typeof f.returns === 'string' ? [] : f.returns.table.map((c) => c.name);
    if (names.some((n) => outputs.includes(n))) {
      const middle = `df._hostw_${f.sql.slice(3)}`;
      return [
        innerFn,
        `CREATE FUNCTION ${middle}(${f.args.map((a) => a.type).join(', ')}) RETURNS ${returnsClause(f)} LANGUAGE plpgsql ${attributes(f)} AS ${dollarQuote(wrapper, 'pgd')};`,
        `CREATE FUNCTION ${f.sql}(${argList(f)}) RETURNS ${returnsClause(f)} LANGUAGE sql ${attributes(f)} AS ${dollarQuote(`SELECT * FROM ${middle}(${callArgs})`, 'pgd')};`,
      ].join('\n');
    }
    return [
      innerFn,
      `CREATE FUNCTION ${f.sql}(${argList(f)}) RETURNS ${returnsClause(f)} LANGUAGE plpgsql ${attributes(f)} AS ${dollarQuote(wrapper, 'pgd')};`,
    ].join('\n');
  }).join('\n\n');
  return [
    header('plv8 host', bundle.time),
    before,
    `CREATE FUNCTION df._pgd_bridge_init() RETURNS void LANGUAGE plpython3u AS ${dollarQuote(bridge, 'pgd_bridge')};`,
    '',
    fns,
    '',
    after,
    revokes(),
    '',
  ].join('\n');
}

function control(requires: string): string {
  return [
    "comment = 'Durable, crash-proof SQL workflows (plv8 functions + a companion worker)'",
    `default_version = '${VERSION}'`,
    `requires = '${requires}'`,
    'superuser = true',
    'relocatable = false',
    "schema = 'pg_catalog'",
    '',
  ].join('\n');
}

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
  const scriptPath = join(root, `extension/pg_durable--${VERSION}.sql`);
  const committed = existsSync(scriptPath) ? readFileSync(scriptPath, 'utf8') : null;
  const candidate = buildTime();
  let bundle = finalizeBundle(raw, candidate.time);
  // Without an explicit SOURCE_DATE_EPOCH, keep the build time recorded in the committed script
  // when it reproduces that script byte for byte: the time then stays the HEAD commit time of the
  // build that last changed the bundle, so committing the script never makes it stale.
  const recorded = recordedBuildTime(committed);
  if (!candidate.explicit && recorded !== null && recorded !== candidate.time) {
    const kept = finalizeBundle(raw, recorded);
    if (plv8Script(kept) === committed) bundle = kept;
  }
  const stale: string[] = [];
  writeIfChanged(scriptPath, plv8Script(bundle), stale);
  writeIfChanged(join(root, 'extension/pg_durable.control'), control('plv8'), stale);
  if (check) {
    if (stale.length > 0) {
      console.error(`Generated files are stale (run npm run build and commit): ${stale.join(', ')}`);
      process.exit(1);
    }
    return;
  }
  const hostDir = join(root, 'dist/host-ext');
  mkdirSync(hostDir, { recursive: true });
  writeFileSync(join(hostDir, 'pg_durable.control'), control('plpython3u'));
  writeFileSync(join(hostDir, `pg_durable--${VERSION}.sql`), hostScript(bundle));
  writeFileSync(
    join(hostDir, 'functions.json'),
    JSON.stringify({
      hash: bundle.hash,
      loader: bundle.code,
      functions: FUNCTIONS.map((f) => ({ sql: f.sql, key: hostKey(f), args: f.args, returns: f.returns, body: prologue(f, bundle.hash) })),
    }),
  );
  const nodeCommon = { bundle: true, platform: 'node' as const, target: 'node20', logLevel: 'error' as const, sourcemap: true };
  await build({ ...nodeCommon, entryPoints: [join(root, 'src/host/host.ts')], format: 'cjs', outfile: join(root, 'dist/plv8-host.cjs') });
  if (existsSync(join(root, 'src/cli/main.ts'))) {
    await build({
      ...nodeCommon,
      entryPoints: [join(root, 'src/cli/main.ts')],
      format: 'esm',
      outfile: join(root, 'dist/cli.js'),
      packages: 'external',
      banner: { js: '#!/usr/bin/env node' },
    });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
