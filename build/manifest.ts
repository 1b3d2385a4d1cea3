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

/** The six columns of the basic df.list_instances (API §10.1); the paginated overload adds three. */
const LIST_COLUMNS: Arg[] = [
  t('instance_id'), t('label'), t('function_name'), t('status'), { name: 'execution_count', type: 'bigint' }, t('output'),
];

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
  // Ours, beyond the original: retry and timeout policies around any node.
  {
    sql: 'df.retry', entry: 'retry', returns: 'text', strict: true,
    args: [t('node'), { name: 'max_attempts', type: 'integer', default: '3' }, { name: 'backoff_seconds', type: 'double precision', default: '1' }],
  },
  { sql: 'df.timeout', entry: 'timeout', returns: 'text', strict: true, args: [t('node'), { name: 'seconds', type: 'double precision' }] },
  // Ours: sagas (compensation); `forward <~ undo` is the operator form.
  { sql: 'df.with_undo', entry: 'with_undo', returns: 'text', strict: true, args: [t('forward'), t('undo')] },
  { sql: 'df.wait_for_signal', entry: 'wait_for_signal', args: [t('name'), { name: 'timeout_seconds', type: 'integer', default: 'NULL' }], returns: 'text' },

  // Control (API §6).
  { sql: 'df.start', entry: 'start', args: [t('fut'), t('label', 'NULL'), t('database', 'NULL'), t('transaction_mode', "'caller'")], returns: 'text' },
  { sql: 'df.signal', entry: 'signal', args: [t('instance_id'), t('signal_name'), t('signal_data', "'{}'")], returns: 'text', strict: true },
  // `compensate` is ours (sagas): the cancel runs the registered undos first.
  {
    sql: 'df.cancel', entry: 'cancel', returns: 'text', strict: true,
    args: [t('instance_id'), t('reason', "'Cancelled by user'"), { name: 'compensate', type: 'boolean', default: 'false' }],
  },
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

  // Monitoring (API §10, deviations 3, 11, 12). All SECURITY INVOKER: RLS decides visibility.
  // df.metrics and df.target_database are SQL functions (src/sql/60_monitoring.sql).
  {
    sql: 'df.list_instances', entry: 'list_instances', args: [t('status_filter', 'NULL'), { name: 'limit_count', type: 'integer', default: '100' }],
    returns: { table: LIST_COLUMNS },
  },
  {
    sql: 'df.list_instances', entry: 'list_instances_paged',
    args: [t('status_filter'), { name: 'limit_count', type: 'integer' }, t('label_filter'), t('after_cursor', 'NULL')],
    returns: { table: [...LIST_COLUMNS, { name: 'created_at', type: 'timestamptz' }, { name: 'completed_at', type: 'timestamptz' }, t('next_cursor')] },
  },
  {
    sql: 'df.instance_info', entry: 'instance_info', args: [t('instance_id')], strict: true,
    returns: { table: [t('instance_id'), t('label'), t('function_name'), t('function_version'), { name: 'current_execution_id', type: 'bigint' }, t('status'), t('output')] },
  },
  {
    sql: 'df.instance_executions', entry: 'instance_executions', args: [t('instance_id'), { name: 'limit_count', type: 'integer', default: '5' }], strict: true,
    returns: { table: [{ name: 'execution_id', type: 'bigint' }, t('status'), { name: 'event_count', type: 'bigint' }, { name: 'duration_ms', type: 'bigint' }, t('output')] },
  },
  {
    sql: 'df.instance_nodes', entry: 'instance_nodes', args: [t('instance_id_param')], strict: true,
    returns: {
      table: [
        t('node_id'), t('node_type'), t('query'), t('result_name'), t('left_node'), t('right_node'), t('status'), t('result'),
        t('status_details'), t('inferred_status'), t('inferred_status_from_ancestor_id'), { name: 'updated_at', type: 'timestamptz' },
      ],
    },
  },
  {
    sql: 'df.instance_nodes', entry: 'instance_nodes_history', args: [t('instance_id_param'), { name: '_last_n_executions', type: 'integer' }], strict: true,
    returns: {
      table: [
        { name: 'execution_id', type: 'bigint' }, t('node_id'), t('node_type'), t('query'), t('result_name'), t('left_node'), t('right_node'),
        t('status'), t('result'), { name: 'updated_at', type: 'timestamptz' },
      ],
    },
  },
  { sql: 'df.explain', entry: 'explain', args: [t('input')], returns: 'text', strict: true },
  {
    sql: 'df.prune_executions', entry: 'prune_executions', args: [t('instance_id'), { name: 'completed_before', type: 'timestamptz' }],
    returns: { table: [{ name: 'instances_processed', type: 'bigint' }, { name: 'executions_deleted', type: 'bigint' }, { name: 'events_deleted', type: 'bigint' }] },
  },
  { sql: 'df.version', entry: 'version', args: [], returns: 'text', strict: true },
];
