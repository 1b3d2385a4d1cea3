/**
 * Derives the plv8-host variant (tier-2 testing, see src/host) from a shipped plv8 script: the
 * loader becomes the PL/Python bridge, each df.* function a PL/Python shim behind a plpgsql wrapper
 * with the real signature (re-raising errors without PL/Python's "plpy.Error: " prefix, so
 * messages and SQLSTATEs match plv8's). The loader and prologue bodies go, unchanged, into the
 * functions-<version>.json the host's Node process evaluates. Working from the shipped text, not
 * from the sources, means frozen released versions get a faithful host variant too.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FunctionSpec } from './manifest';
import { ROOT } from './paths';
import { argList, attributes, dollarQuote, returnsClause } from './sql-gen';

const FUNCTION_BLOCK = /^-- pgd-function: (.*)\n(CREATE (?:OR REPLACE )?FUNCTION) .* AS \$(\w+)\$\n([\s\S]*?)\n\$\3\$;$/gm;
const LOADER_BLOCK = /^-- pgd-loader: ([0-9a-f]+)\n(CREATE (?:OR REPLACE )?FUNCTION) df\._pgd_load\(\) RETURNS void LANGUAGE plv8 AS \$(\w+)\$\n([\s\S]*?)\n\$\3\$;$/m;
const CHUNK_BLOCK = /^-- pgd-chunk: (\S+) ([0-9a-f]+)\n(CREATE (?:OR REPLACE )?FUNCTION) \S+\(\) RETURNS void LANGUAGE plv8 AS \$(\w+)\$\n([\s\S]*?)\n\$\4\$;$/gm;

/**
 * A function's source as PostgreSQL stores it (prosrc): everything between the dollar quotes,
 * including the newlines our generator puts after the opening and before the closing quote. plv8
 * numbers CONTEXT lines from it, so the host must compile exactly this text.
 */
const prosrc = (body: string): string => `\n${body}\n`;

/** The key the host serves a function under: overloads (df.list_instances, ...) need the signature. */
function hostKey(f: FunctionSpec): string {
  return `${f.sql}(${f.args.map((a) => a.type).join(',')})`;
}

function hostStatements(f: FunctionSpec, create: string): string {
  const inner = `df._host_${f.sql.slice(3)}`;
  const names = f.args.map((a) => a.name);
  const shim = [
    "if 'pgd' not in GD:",
    "    plpy.execute('SELECT df._pgd_bridge_init()')",
    `return GD['pgd'].call('${hostKey(f)}', [${names.join(', ')}])`,
  ].join('\n');
  const innerArgs = f.args.map((a) => `${a.name} ${a.type}`).join(', ');
  const callArgs = names.map((_, i) => `$${i + 1}`).join(', ');
  const invoke =
    typeof f.returns !== 'string'
      ? `RETURN QUERY SELECT * FROM ${inner}(${callArgs});`
      : f.returns === 'void'
        ? `PERFORM ${inner}(${callArgs});`
        : `RETURN ${inner}(${callArgs});`;
  // The bridge passes plv8's CONTEXT text in the constraint-name field (the only free field
  // plpy.error has); df._host_raise raises it as CONTEXT, dropping this wrapper's own frame.
  const wrapper = [
    'DECLARE m text; c text; d text; h text; x text; v text;',
    'BEGIN',
    `    ${invoke}`,
    'EXCEPTION WHEN OTHERS OR query_canceled OR assert_failure THEN',
    '    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, c = RETURNED_SQLSTATE, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT, x = CONSTRAINT_NAME;',
    "    v := df._host_raise(pg_catalog.regexp_replace(m, '^plpy\\.Error: ', ''), c, NULLIF(d, ''), NULLIF(h, ''), NULLIF(x, ''));",
    'END',
  ].join('\n');
  const innerFn = `${create} ${inner}(${innerArgs}) RETURNS ${returnsClause(f)} LANGUAGE plpython3u ${attributes(f)} AS ${dollarQuote(shim, 'pgd')};`;
  // PL/pgSQL puts parameters and output columns in one namespace, so an argument named like an
  // output column (df.instance_info(instance_id) RETURNS TABLE (instance_id ...), fine in plv8)
  // gets an unnamed PL/pgSQL middle function and a SQL function with the real signature.
  const outputs = typeof f.returns === 'string' ? [] : f.returns.table.map((c) => c.name);
  if (names.some((n) => outputs.includes(n))) {
    const middle = `df._hostw_${f.sql.slice(3)}`;
    return [
      innerFn,
      `${create} ${middle}(${f.args.map((a) => a.type).join(', ')}) RETURNS ${returnsClause(f)} LANGUAGE plpgsql ${attributes(f)} AS ${dollarQuote(wrapper, 'pgd')};`,
      `${create} ${f.sql}(${argList(f)}) RETURNS ${returnsClause(f)} LANGUAGE sql ${attributes(f)} AS ${dollarQuote(`SELECT * FROM ${middle}(${callArgs})`, 'pgd')};`,
    ].join('\n');
  }
  return [innerFn, `${create} ${f.sql}(${argList(f)}) RETURNS ${returnsClause(f)} LANGUAGE plpgsql ${attributes(f)} AS ${dollarQuote(wrapper, 'pgd')};`].join('\n');
}

/**
 * `targetVersion` names the functions JSON the bridge loads (the version the script installs or
 * upgrades to). Paths stay placeholders (@NODE@, @HOST_JS@, @HOST_EXT@) that
 * src/embedded/cluster.ts fills in for the installation at hand.
 */
export function toHost(script: string, targetVersion: string): { sql: string; functions: string | null } {
  const functions: { sql: string; key: string; args: FunctionSpec['args']; returns: FunctionSpec['returns']; body: string }[] = [];
  let sql = script.replace(FUNCTION_BLOCK, (_all, json: string, create: string, _tag: string, body: string) => {
    const f = JSON.parse(json) as FunctionSpec;
    functions.push({ sql: f.sql, key: hostKey(f), args: f.args, returns: f.returns, body: prosrc(body) });
    return hostStatements(f, create);
  });
  // A migration that drops a df.* function (a signature change) drops its host shims too.
  sql = sql.replace(/^DROP FUNCTION df\.(\w+)\(([^)]*)\);$/gm, (all, name: string, args: string) =>
    `${all}\nDROP FUNCTION IF EXISTS df._host_${name}(${args});\nDROP FUNCTION IF EXISTS df._hostw_${name}(${args});`);
  // Chunks are served by the host itself (plv8.find_function), like the loader's body.
  const chunks: Record<string, string> = {};
  sql = sql.replace(CHUNK_BLOCK, (_all, name: string, _hash: string, _create: string, _tag: string, body: string) => {
    chunks[name] = prosrc(body);
    return `-- ${name}: served by the plv8 host from functions-${targetVersion}.json`;
  });
  const loader = LOADER_BLOCK.exec(sql);
  if (!loader) return { sql, functions: null };
  const bridge = readFileSync(join(ROOT, 'src/host/bridge.py'), 'utf8').replace('@FUNCTIONS_JSON@', `@HOST_EXT@/functions-${targetVersion}.json`);
  sql = sql.replace(
    LOADER_BLOCK,
    `CREATE OR REPLACE FUNCTION df._pgd_bridge_init() RETURNS void LANGUAGE plpython3u AS ${dollarQuote(bridge, 'pgd_bridge')};\n` +
      "CREATE OR REPLACE FUNCTION df._host_raise(text, text, text, text, text) RETURNS text LANGUAGE c AS '@HOST_RAISE@', 'pgd_host_raise';",
  );
  return { sql, functions: JSON.stringify({ hash: loader[1], loader: prosrc(loader[4]), chunks, functions }) };
}
