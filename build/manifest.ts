/**
 * The explicit manifest of every df.* function implemented in the plv8 bundle: its SQL signature
 * and the bundle entry it calls. build.ts generates one small SQL function per entry (a plv8
 * prologue for the shipped extension, a PL/Python shim for the test host) from this list alone.
 */

export interface Arg {
  name: string;
  type: string;
  default?: string;
}

export interface FunctionSpec {
  /** Qualified SQL name, e.g. 'df.start'. */
  sql: string;
  /** Key in the bundle's entry table (src/extension/entries.ts). */
  entry: string;
  args: Arg[];
  /** SQL return type, or a TABLE (...) column list. */
  returns: string | { table: Arg[] };
  volatility?: 'VOLATILE' | 'STABLE' | 'IMMUTABLE';
  strict?: boolean;
  parallelSafe?: boolean;
  /** Revoke EXECUTE from PUBLIC (granted by df.grant_usage). */
  revokePublic?: boolean;
  comment?: string;
}

const t = (name: string, def?: string): Arg => (def === undefined ? { name, type: 'text' } : { name, type: 'text', default: def });

export const FUNCTIONS: FunctionSpec[] = [
  // DSL builders (API §3): pure, return the node's JSON text.
  { sql: 'df.sql', entry: 'sql', args: [t('query')], returns: 'text', strict: true },
  { sql: 'df.seq', entry: 'seq', args: [t('a'), t('b')], returns: 'text', strict: true },
  { sql: 'df.as', entry: 'as', args: [t('fut'), t('name')], returns: 'text', strict: true },
  { sql: 'df.sleep', entry: 'sleep', args: [{ name: 'seconds', type: 'bigint' }], returns: 'text', strict: true },
  { sql: 'df.wait_for_schedule', entry: 'wait_for_schedule', args: [t('cron_expr')], returns: 'text', strict: true },
  { sql: 'df.loop', entry: 'loop', args: [t('body'), t('condition', 'NULL')], returns: 'text' },
  { sql: 'df.break', entry: 'break', args: [t('value', 'NULL')], returns: 'text' },
  { sql: 'df.if', entry: 'if', args: [t('condition'), t('then_branch'), t('else_branch')], returns: 'text', strict: true },
  { sql: 'df.if_rows', entry: 'if_rows', args: [t('result_name'), t('then_branch'), t('else_branch')], returns: 'text', strict: true },
  { sql: 'df.join', entry: 'join', args: [t('a'), t('b')], returns: 'text', strict: true },
  { sql: 'df.join3', entry: 'join3', args: [t('a'), t('b'), t('c')], returns: 'text', strict: true },
  { sql: 'df.race', entry: 'race', args: [t('a'), t('b')], returns: 'text', strict: true },
  {
    sql: 'df.http', entry: 'http', returns: 'text', revokePublic: true,
    args: [t('url'), t('method', "'POST'"), t('body', 'NULL'), { name: 'headers', type: 'jsonb', default: 'NULL' }, { name: 'timeout_seconds', type: 'integer', default: '30' }],
  },
  {
    sql: 'df.http_multipart', entry: 'http_multipart', returns: 'text', revokePublic: true,
    args: [t('url'), t('method', "'POST'"), { name: 'parts', type: 'jsonb', default: 'NULL' }, { name: 'headers', type: 'jsonb', default: 'NULL' }, { name: 'timeout_seconds', type: 'integer', default: '30' }],
  },
  { sql: 'df.wait_for_signal', entry: 'wait_for_signal', args: [t('name'), { name: 'timeout_seconds', type: 'integer', default: 'NULL' }], returns: 'text' },

  // Control (API §6).
  { sql: 'df.start', entry: 'start', args: [t('fut'), t('label', 'NULL'), t('database', 'NULL'), t('transaction_mode', "'caller'")], returns: 'text' },
  { sql: 'df.signal', entry: 'signal', args: [t('instance_id'), t('signal_name'), t('signal_data', "'{}'")], returns: 'text', strict: true },
  { sql: 'df.cancel', entry: 'cancel', args: [t('instance_id'), t('reason', "'Cancelled by user'")], returns: 'text', strict: true },
  { sql: 'df.status', entry: 'status', args: [t('instance_id')], returns: 'text', strict: true },
  { sql: 'df.result', entry: 'result', args: [t('instance_id')], returns: 'text', strict: true },
  { sql: 'df.await_instance', entry: 'await_instance', args: [t('instance_id'), { name: 'timeout_seconds', type: 'integer', default: '30' }], returns: 'text', strict: true },
  { sql: 'df.wait_for_completion', entry: 'wait_for_completion', args: [t('instance_id'), { name: 'timeout_seconds', type: 'integer', default: '30' }], returns: 'text', strict: true },
  { sql: 'df.run', entry: 'run', args: [t('instance_id', 'NULL')], returns: 'text' },

  // Variables (API §7).
  { sql: 'df.setvar', entry: 'setvar', args: [t('name'), t('value')], returns: 'text', strict: true },
  { sql: 'df.getvar', entry: 'getvar', args: [t('name')], returns: 'text', strict: true },
  { sql: 'df.unsetvar', entry: 'unsetvar', args: [t('name')], returns: 'text', strict: true },
  { sql: 'df.clearvars', entry: 'clearvars', args: [], returns: 'text', strict: true },
];
