/**
 * The hostile and malformed input table of test/integration/security-input.test.ts. Each case is
 * run by a tenant (granted include_http); it must fail with `error` in the message and leave the
 * row counts of every pg_durable table unchanged. docs/SECURITY.md lists these cases; the suite
 * checks the list is in sync (UPDATE_SECURITY_DOC=1 rewrites it).
 *
 * `:P` in sql is replaced by the id of the tenant's pending instance (waiting on a signal), `:C`
 * by a cancelled one. `params` builds large arguments lazily.
 */

export interface BadInput {
  /** The df.* function or table under attack. */
  target: string;
  /** What is wrong with the input (shown in docs/SECURITY.md). */
  input: string;
  sql: string;
  params?: () => unknown[];
  /** Run first on the same session (reset afterwards). */
  before?: string;
  /** Expected substring of the error message. */
  error: string;
}

const MB = 1024 * 1024;
const big = (n: number, ch = 'x') => ch.repeat(n);
const json = (v: unknown) => JSON.stringify(v);
const sql = (query: string) => ({ node_type: 'SQL', query });
const then = (l: unknown, r: unknown) => ({ node_type: 'THEN', left_node: l, right_node: r });
const deepThen = (n: number) => {
  let node = '{"node_type":"SQL","query":"SELECT 1"}';
  for (let i = 0; i < n; i++) node = `{"node_type":"THEN","left_node":${node},"right_node":{"node_type":"SQL","query":"SELECT 2"}}`;
  return node;
};
const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);
const ifWith = (extra: Record<string, unknown>) => ({ node_type: 'IF', left_node: sql('SELECT 1'), right_node: sql('SELECT 2'), ...extra });
const join = (extra: Record<string, unknown>) => ({ node_type: 'JOIN', left_node: sql('SELECT 1'), right_node: sql('SELECT 2'), ...extra });
const leaf = (node_type: string, query: string) => ({ node_type, query });
const graph = (v: unknown) => () => [json(v)];
const IN_WORKFLOW = "SET df.in_workflow = 'true'";
const GRAPH = 'Invalid durable function graph: root';
const INJECT = "x'; DROP TABLE df.instances; --";

export const BAD_INPUTS: BadInput[] = [
  // ---- df.start: the argument itself -------------------------------------------------------------
  { target: 'df.start', input: 'NULL workflow', sql: 'SELECT df.start(NULL)', error: 'df.start: fut cannot be NULL' },
  { target: 'df.start', input: 'empty string', sql: "SELECT df.start('')", error: 'df.start: fut cannot be empty' },
  { target: 'df.start', input: 'whitespace only', sql: 'SELECT df.start($1)', params: () => [' \n\t '], error: 'df.start: fut cannot be empty' },
  { target: 'df.start', input: '10 MB of SQL text', sql: 'SELECT df.start($1)', params: () => ['SELECT ' + big(10 * MB - 7)], error: 'Invalid durable function: the workflow definition is too large (10485760 bytes; the limit is 8388608 bytes)' },
  { target: 'df.start', input: 'under 8 Mi characters but over 8 MiB of UTF-8 (the limit counts bytes)', sql: 'SELECT df.start($1)', params: () => ['SELECT ' + big(8 * MB - 207) + big(150, 'é')], error: 'the workflow definition is too large (8388708 bytes; the limit is 8388608 bytes)' },
  { target: 'df.start', input: '10 MB SQL inside a builder', sql: 'SELECT df.start(df.sql($1) ~> $2)', params: () => [big(10 * MB), 'SELECT 1'], error: 'the workflow definition is too large' },
  { target: 'df.start', input: '5 MB label', sql: "SELECT df.start('SELECT 1', $1)", params: () => [big(5 * MB)], error: 'df.start: label is too large (5242880 bytes; the limit is 1024 bytes)' },
  { target: 'df.start', input: '1025-byte label', sql: "SELECT df.start('SELECT 1', $1)", params: () => [big(1025)], error: 'df.start: label is too large (1025 bytes; the limit is 1024 bytes)' },
  { target: 'df.start', input: 'unknown transaction_mode', sql: "SELECT df.start('SELECT 1', NULL, NULL, 'sideways')", error: `invalid transaction_mode "sideways" for df.start(): expected 'caller' or 'new'` },
  { target: 'df.start', input: 'empty transaction_mode', sql: "SELECT df.start('SELECT 1', NULL, NULL, '')", error: `invalid transaction_mode "" for df.start()` },
  { target: 'df.start', input: "transaction_mode 'new' in a database without dblink", sql: "SELECT df.start('SELECT 1', transaction_mode => 'new')", error: "transaction_mode => 'new') needs the dblink extension" },
  { target: 'df.start', input: 'unknown database', sql: "SELECT df.start('SELECT 1', NULL, 'no_such_db')", error: 'database "no_such_db" does not exist' },
  { target: 'df.start', input: 'empty database name', sql: "SELECT df.start('SELECT 1', NULL, '')", error: 'database "" does not exist' },
  { target: 'df.start', input: 'database name with quotes', sql: 'SELECT df.start($1, NULL, $2)', params: () => ['SELECT 1', 'a"b\'c; DROP DATABASE postgres'], error: `database "a"b'c; DROP DATABASE postgres" does not exist` },
  { target: 'df.start', input: 'df.setvar used as the workflow', sql: "SELECT df.start(df.setvar('planted', 'x'))", error: 'df.setvar cannot be used as a workflow step. Call df.setvar before df.start().' },
  { target: 'df.start', input: 'df.clearvars used as the workflow', sql: 'SELECT df.start(df.clearvars())', error: 'df.clearvars cannot be used as a workflow step' },
  // ---- df.start: malformed graphs --------------------------------------------------------------
  { target: 'df.start', input: 'unknown node_type', sql: 'SELECT df.start($1)', params: graph({ node_type: 'NOT_A_NODE' }), error: "Invalid durable function: Unknown node_type 'NOT_A_NODE'" },
  { target: 'df.start', input: 'lower-case node_type', sql: 'SELECT df.start($1)', params: graph({ node_type: 'sql', query: 'SELECT 1' }), error: "Unknown node_type 'sql'" },
  { target: 'df.start', input: 'unknown node_type in a child', sql: 'SELECT df.start($1)', params: graph(then({ node_type: 'EVIL' }, sql('SELECT 1'))), error: `${GRAPH}.left: Unknown node_type 'EVIL'` },
  { target: 'df.start', input: 'non-string query', sql: 'SELECT df.start($1)', params: graph({ node_type: 'SQL', query: 42 }), error: "Malformed Durofut JSON with node_type 'SQL': query must be a JSON string" },
  { target: 'df.start', input: 'SQL node without query', sql: 'SELECT df.start($1)', params: graph({ node_type: 'SQL' }), error: `${GRAPH}: SQL node requires a query` },
  { target: 'df.start', input: 'SQL node with empty query', sql: 'SELECT df.start($1)', params: graph(sql('')), error: 'Invalid durable function graph: a SQL step cannot be empty' },
  { target: 'df.start', input: 'empty SQL step in a sequence', sql: "SELECT df.start('   ' ~> 'SELECT 1')", error: 'Invalid durable function graph: a SQL step cannot be empty' },
  { target: 'df.start', input: 'THEN with one child', sql: 'SELECT df.start($1)', params: graph({ node_type: 'THEN', left_node: sql('SELECT 1') }), error: `${GRAPH}: THEN node requires left_node and right_node` },
  { target: 'df.start', input: 'child given as a string', sql: 'SELECT df.start($1)', params: graph(then('SELECT 1', sql('SELECT 2'))), error: 'Durofut children must be JSON objects' },
  { target: 'df.start', input: 'child given as an array', sql: 'SELECT df.start($1)', params: graph(then(sql('SELECT 1'), [sql('SELECT 2')])), error: 'Durofut children must be JSON objects' },
  { target: 'df.start', input: 'condition_node as a node id (reference instead of object)', sql: 'SELECT df.start($1)', params: graph(ifWith({ condition_node: 'abcdef01' })), error: 'condition_node must be a Durofut JSON object' },
  { target: 'df.start', input: 'extra_nodes as node ids', sql: 'SELECT df.start($1)', params: graph(join({ extra_nodes: ['abcdef01'] })), error: 'extra_nodes entries must be Durofut JSON objects' },
  { target: 'df.start', input: 'condition_node id embedded in query', sql: 'SELECT df.start($1)', params: graph(ifWith({ condition_node: sql('SELECT true'), query: '{"condition_node":"abcdef01"}' })), error: 'condition_node in IF must be a first-class Durofut field, not embedded in query' },
  { target: 'df.start', input: 'extra_nodes ids embedded in query', sql: 'SELECT df.start($1)', params: graph(join({ query: '{"extra_nodes":["abcdef01"]}' })), error: 'extra_nodes in JOIN must be a first-class Durofut field, not embedded in query' },
  { target: 'df.start', input: 'condition_node on a SQL node', sql: 'SELECT df.start($1)', params: graph({ ...sql('SELECT 1'), condition_node: sql('SELECT 2') }), error: `${GRAPH}: condition_node is not valid for SQL nodes` },
  { target: 'df.start', input: 'extra_nodes on a THEN node', sql: 'SELECT df.start($1)', params: graph({ ...then(sql('SELECT 1'), sql('SELECT 2')), extra_nodes: [sql('SELECT 3')] }), error: `${GRAPH}: extra_nodes is not valid for THEN nodes` },
  { target: 'df.start', input: 'LOOP with a right_node', sql: 'SELECT df.start($1)', params: graph({ node_type: 'LOOP', left_node: sql('SELECT 1'), right_node: sql('SELECT 2') }), error: `${GRAPH}: LOOP node must not have right_node` },
  { target: 'df.start', input: 'LOOP without a body', sql: 'SELECT df.start($1)', params: graph({ node_type: 'LOOP' }), error: `${GRAPH}: LOOP node requires left_node` },
  { target: 'df.start', input: 'RACE with a query', sql: 'SELECT df.start($1)', params: graph({ node_type: 'RACE', left_node: sql('SELECT 1'), right_node: sql('SELECT 2'), query: 'x' }), error: `${GRAPH}: RACE node must not have a query` },
  { target: 'df.start', input: 'IF without condition or if_rows config', sql: 'SELECT df.start($1)', params: graph(ifWith({ query: '{}' })), error: 'IF without condition_node requires a query' },
  { target: 'df.start', input: 'SLEEP of text', sql: 'SELECT df.start($1)', params: graph(leaf('SLEEP', 'abc')), error: "SLEEP query must be a non-negative integer number of seconds, got 'abc'" },
  { target: 'df.start', input: 'negative SLEEP', sql: 'SELECT df.start($1)', params: graph(leaf('SLEEP', '-5')), error: "SLEEP query must be a non-negative integer number of seconds, got '-5'" },
  { target: 'df.start', input: 'WAIT_SCHEDULE config not JSON', sql: 'SELECT df.start($1)', params: graph(leaf('WAIT_SCHEDULE', 'every minute')), error: 'query in WAIT_SCHEDULE must be valid JSON config' },
  { target: 'df.start', input: 'WAIT_SCHEDULE config an array', sql: 'SELECT df.start($1)', params: graph(leaf('WAIT_SCHEDULE', '[1]')), error: 'query in WAIT_SCHEDULE must be a JSON config object' },
  { target: 'df.start', input: 'WAIT_SCHEDULE invalid cron', sql: 'SELECT df.start($1)', params: graph(leaf('WAIT_SCHEDULE', '{"cron_expr":"61 * * * *"}')), error: "Invalid cron expression '61 * * * *'" },
  { target: 'df.start', input: 'SIGNAL with empty name', sql: 'SELECT df.start($1)', params: graph(leaf('SIGNAL', '{"signal_name":""}')), error: 'SIGNAL config requires a non-empty string signal_name' },
  { target: 'df.start', input: 'SIGNAL with negative timeout', sql: 'SELECT df.start($1)', params: graph(leaf('SIGNAL', '{"signal_name":"x","timeout_seconds":-1}')), error: 'SIGNAL timeout_seconds must be null or a positive integer' },
  { target: 'df.start', input: 'BREAK value not a string', sql: 'SELECT df.start($1)', params: graph(leaf('BREAK', '{"break_value":42}')), error: 'BREAK break_value must be a string or null' },
  { target: 'df.start', input: 'HTTP url not a string', sql: 'SELECT df.start($1)', params: graph(leaf('HTTP', '{"url":1,"method":"GET"}')), error: 'HTTP config requires a string url' },
  { target: 'df.start', input: 'HTTP config JSON null', sql: 'SELECT df.start($1)', params: graph(leaf('HTTP', 'null')), error: 'query in HTTP must be a JSON config object' },
  { target: 'df.start', input: 'HTTP_MULTIPART without parts', sql: 'SELECT df.start($1)', params: graph(leaf('HTTP_MULTIPART', '{"url":"http://x","method":"POST"}')), error: 'HTTP_MULTIPART config requires a parts array' },
  { target: 'df.start', input: 'result_name with a space', sql: 'SELECT df.start($1)', params: graph({ ...sql('SELECT 1'), result_name: 'bad name' }), error: "result_name 'bad name' is not a valid identifier" },
  { target: 'df.start', input: 'result_name with SQL injection', sql: 'SELECT df.start($1)', params: graph({ ...sql('SELECT 1'), result_name: INJECT }), error: 'is not a valid identifier' },
  { target: 'df.start', input: 'empty result_name', sql: 'SELECT df.start($1)', params: graph({ ...sql('SELECT 1'), result_name: '' }), error: "result_name '' is not a valid identifier" },
  { target: 'df.start', input: '257 levels of nesting', sql: 'SELECT df.start($1)', params: () => [deepThen(257)], error: 'Graph exceeds maximum nesting depth of 256' },
  { target: 'df.start', input: '40 000 levels of nesting (4 MB)', sql: 'SELECT df.start($1)', params: () => [deepThen(40000)], error: 'Graph exceeds maximum nesting depth of 256' },
  { target: 'df.start', input: '10 001 nodes', sql: 'SELECT df.start($1)', params: graph(join({ extra_nodes: Array.from({ length: 9999 }, (_, i) => sql(`SELECT ${i}`)) })), error: 'Workflow exceeds maximum node count of 10000' },
  { target: 'df.start', input: '100 000-deep arrays inside a config merged into query', sql: 'SELECT df.start($1)', params: () => [json(ifWith({ condition_node: sql('SELECT true'), query: `{"deep":${deepArray(100000)}}` }))], error: 'Invalid durable function: the workflow is nested too deeply to process' },
  // ---- DSL builders and operators ---------------------------------------------------------------
  { target: 'df.seq', input: 'malformed Durofut step', sql: "SELECT df.seq($1, 'SELECT 1')", params: graph({ node_type: 'SQL', query: 1 }), error: 'Invalid Durofut JSON: failed to deserialize workflow step: query must be a JSON string' },
  { target: '~>', input: 'malformed Durofut operand', sql: `SELECT 'SELECT 1' ~> '{"node_type":"IF","left_node":1}'`, error: 'Invalid Durofut JSON: failed to deserialize workflow step: Durofut children must be JSON objects' },
  { target: 'df.seq', input: 'df.setvar used as a step', sql: "SELECT df.seq(df.setvar('planted', 'x'), 'SELECT 1')", error: 'df.setvar cannot be used as a workflow step. Call df.setvar before df.start().' },
  { target: 'df.join', input: 'df.unsetvar used as a step', sql: "SELECT df.join(df.unsetvar('x'), 'SELECT 1')", error: 'df.unsetvar cannot be used as a workflow step' },
  { target: 'df.loop', input: 'NULL body', sql: 'SELECT df.loop(NULL)', error: 'df.loop: body cannot be NULL' },
  { target: 'df.sleep', input: 'negative seconds', sql: 'SELECT df.sleep(-1)', error: 'Sleep duration must be non-negative' },
  { target: 'df.wait_for_signal', input: 'NULL name', sql: 'SELECT df.wait_for_signal(NULL)', error: 'df.wait_for_signal: name cannot be NULL' },
  { target: 'df.wait_for_signal', input: 'empty name', sql: "SELECT df.wait_for_signal('')", error: 'Signal name cannot be empty' },
  { target: 'df.wait_for_signal', input: 'zero timeout', sql: "SELECT df.wait_for_signal('x', 0)", error: 'Timeout must be positive' },
  { target: 'df.wait_for_signal', input: 'negative timeout', sql: "SELECT df.wait_for_signal('x', -1)", error: 'Timeout must be positive' },
  { target: 'df.wait_for_schedule', input: 'empty cron', sql: "SELECT df.wait_for_schedule('')", error: "Invalid cron expression '': expected 5 fields" },
  { target: 'df.wait_for_schedule', input: 'two fields', sql: "SELECT df.wait_for_schedule('bad cron')", error: "Invalid cron expression 'bad cron'" },
  { target: 'df.wait_for_schedule', input: 'six fields', sql: "SELECT df.wait_for_schedule('* * * * * *')", error: "Invalid cron expression '* * * * * *': expected 5 fields" },
  { target: 'df.wait_for_schedule', input: 'minute out of range', sql: "SELECT df.wait_for_schedule('61 * * * *')", error: "Invalid cron expression '61 * * * *'" },
  { target: 'df.wait_for_schedule', input: 'SQL injection', sql: 'SELECT df.wait_for_schedule($1)', params: () => [INJECT], error: `Invalid cron expression '${INJECT}'` },
  { target: 'df.as', input: 'name with a space', sql: "SELECT df.as('SELECT 1', 'a b')", error: "df.as: result name 'a b' is not a valid identifier" },
  { target: 'df.as', input: 'empty name', sql: "SELECT df.as('SELECT 1', '')", error: 'df.as: result name cannot be empty' },
  { target: 'df.as', input: 'name with a double quote', sql: `SELECT df.as('SELECT 1', 'x"y')`, error: 'is not a valid identifier' },
  { target: '|=>', input: 'name starting with a digit', sql: "SELECT 'SELECT 1' |=> '1abc'", error: "result name '1abc' is not a valid identifier" },
  { target: 'df.http', input: 'ftp URL', sql: "SELECT df.http('ftp://example.com/x', 'GET')", error: "Blocked: unsupported URL scheme 'ftp'. Only http and https are allowed." },
  { target: 'df.http', input: 'file URL', sql: "SELECT df.http('file:///etc/passwd')", error: "Blocked: unsupported URL scheme 'file'" },
  { target: 'df.http', input: 'javascript: URL', sql: "SELECT df.http('javascript:alert(1)')", error: "Blocked: unsupported URL scheme 'javascript:alert(1)'" },
  { target: 'df.http', input: 'unknown method', sql: "SELECT df.http('http://example.com/', 'TRACE')", error: 'Invalid HTTP method: TRACE. Must be GET, POST, PUT, DELETE, or PATCH' },
  { target: 'df.http', input: 'empty method', sql: "SELECT df.http('http://example.com/', '')", error: 'Invalid HTTP method: . Must be' },
  { target: 'df.http', input: 'zero timeout', sql: "SELECT df.http('http://example.com/', 'GET', NULL, NULL, 0)", error: 'Timeout must be positive' },
  { target: 'df.http_multipart', input: 'NULL parts', sql: "SELECT df.http_multipart('http://example.com/', 'POST', NULL)", error: 'parts is required and cannot be NULL' },
  { target: 'df.http_multipart', input: 'parts an object', sql: "SELECT df.http_multipart('http://example.com/', 'POST', '{}')", error: 'parts must be a JSON array of part objects' },
  { target: 'df.http_multipart', input: 'no parts', sql: "SELECT df.http_multipart('http://example.com/', 'POST', '[]')", error: 'parts must contain at least one part' },
  { target: 'df.http_multipart', input: 'GET method', sql: `SELECT df.http_multipart('http://example.com/', 'GET', '[{"name":"f","data_b64":"eA=="}]')`, error: 'Invalid HTTP method for multipart: GET. Must be POST, PUT, or PATCH' },
  // ---- control functions -------------------------------------------------------------------------
  { target: 'df.signal', input: 'empty instance id', sql: "SELECT df.signal('', 'go')", error: 'Instance ID cannot be empty' },
  { target: 'df.signal', input: 'empty signal name', sql: "SELECT df.signal(':P', '')", error: 'Signal name cannot be empty' },
  { target: 'df.signal', input: 'unknown instance', sql: "SELECT df.signal('0badc0de', 'go')", error: 'Instance not found or access denied: 0badc0de' },
  { target: 'df.signal', input: 'SQL injection as instance id', sql: "SELECT df.signal($1, 'go')", params: () => [INJECT], error: `Instance not found or access denied: ${INJECT}` },
  { target: 'df.signal', input: '2000-byte signal name', sql: "SELECT df.signal(':P', $1)", params: () => [big(2000)], error: 'Failed to send signal: signal_name is too large (2000 bytes; the limit is 1024 bytes)' },
  { target: 'df.signal', input: '2 MB payload', sql: "SELECT df.signal(':P', 'go', $1)", params: () => [json({ blob: big(2 * MB) })], error: 'Failed to send signal: signal_data is too large (' },
  { target: 'df.signal', input: '5 MB non-JSON payload', sql: "SELECT df.signal(':P', 'go', $1)", params: () => [big(5 * MB)], error: 'Failed to send signal: signal_data is too large' },
  { target: 'df.signal', input: 'cancelled instance', sql: "SELECT df.signal(':C', 'go')", error: 'Instance :C is already cancelled' },
  { target: 'df.cancel', input: 'empty instance id', sql: "SELECT df.cancel('')", error: 'Instance not found or access denied: ' },
  { target: 'df.cancel', input: 'unknown instance', sql: "SELECT df.cancel('0badc0de')", error: 'Instance not found or access denied: 0badc0de' },
  { target: 'df.cancel', input: 'SQL injection as instance id', sql: 'SELECT df.cancel($1)', params: () => [INJECT], error: `Instance not found or access denied: ${INJECT}` },
  { target: 'df.await_instance', input: 'unknown instance', sql: "SELECT df.await_instance('0badc0de', 1)", error: 'Instance not found: 0badc0de' },
  { target: 'df.await_instance', input: 'zero timeout', sql: "SELECT df.await_instance(':P', 0)", error: 'Timeout must be positive' },
  { target: 'df.await_instance', input: 'negative timeout', sql: "SELECT df.await_instance(':P', -5)", error: 'Timeout must be positive' },
  { target: 'df.await_instance', input: 'called inside a workflow', before: IN_WORKFLOW, sql: "SELECT df.await_instance(':P')", error: 'df.await_instance() cannot be called inside a workflow' },
  { target: 'df.wait_for_completion', input: 'unknown instance', sql: "SELECT df.wait_for_completion('0badc0de', 1)", error: 'Instance not found: 0badc0de' },
  // ---- variables ---------------------------------------------------------------------------------
  { target: 'df.setvar', input: 'empty name', sql: "SELECT df.setvar('', 'x')", error: 'df.setvar: variable name cannot be empty' },
  { target: 'df.setvar', input: '2000-byte name', sql: 'SELECT df.setvar($1, $2)', params: () => [big(2000), 'x'], error: 'df.setvar: variable name is too large (2000 bytes; the limit is 1024 bytes)' },
  { target: 'df.setvar', input: '2 MB value', sql: "SELECT df.setvar('v', $1)", params: () => [big(2 * MB)], error: 'df.setvar: value is too large (2097152 bytes; the limit is 1048576 bytes)' },
  { target: 'df.setvar', input: '5 MB value', sql: "SELECT df.setvar('v', $1)", params: () => [big(5 * MB)], error: 'df.setvar: value is too large (5242880 bytes' },
  { target: 'df.setvar', input: 'called inside a workflow', before: IN_WORKFLOW, sql: "SELECT df.setvar('a', 'b')", error: 'df.setvar() cannot be called inside a workflow' },
  { target: 'df.unsetvar', input: 'empty name', sql: "SELECT df.unsetvar('')", error: 'df.unsetvar: variable name cannot be empty' },
  { target: 'df.unsetvar', input: 'called inside a workflow', before: IN_WORKFLOW, sql: "SELECT df.unsetvar('a')", error: 'df.unsetvar() cannot be called inside a workflow' },
  { target: 'df.clearvars', input: 'called inside a workflow', before: IN_WORKFLOW, sql: 'SELECT df.clearvars()', error: 'df.clearvars() cannot be called inside a workflow' },
  // ---- monitoring ---------------------------------------------------------------------------------
  { target: 'df.list_instances', input: 'zero limit', sql: 'SELECT * FROM df.list_instances(NULL, 0)', error: 'limit_count must be at least 1' },
  { target: 'df.list_instances', input: 'negative limit', sql: 'SELECT * FROM df.list_instances(NULL, -1)', error: 'limit_count must be at least 1' },
  { target: 'df.list_instances', input: 'NULL limit', sql: 'SELECT * FROM df.list_instances(NULL, NULL)', error: 'df.list_instances: limit_count cannot be NULL' },
  { target: 'df.list_instances', input: 'limit above the cap', sql: 'SELECT * FROM df.list_instances(NULL, 1000001)', error: 'exceeds pg_durable.list_instances_max_limit (1000)' },
  { target: 'df.list_instances', input: 'garbage cursor', sql: "SELECT * FROM df.list_instances(NULL, 10, NULL, 'garbage')", error: 'df.list_instances: invalid after_cursor' },
  { target: 'df.list_instances', input: 'SQL injection as cursor', sql: 'SELECT * FROM df.list_instances(NULL, 10, NULL, $1)', params: () => [INJECT], error: 'df.list_instances: invalid after_cursor' },
  { target: 'df.list_instances', input: '5 MB cursor', sql: 'SELECT * FROM df.list_instances(NULL, 10, NULL, $1)', params: () => [big(5 * MB, 'A')], error: 'df.list_instances: invalid after_cursor' },
  { target: 'df.instance_executions', input: 'zero limit', sql: "SELECT * FROM df.instance_executions(':P', 0)", error: 'limit_count must be at least 1' },
  { target: 'df.instance_nodes', input: 'zero executions', sql: "SELECT * FROM df.instance_nodes(':P', 0)", error: '_last_n_executions must be at least 1' },
  { target: 'df.prune_executions', input: 'NULL instance', sql: 'SELECT * FROM df.prune_executions(NULL, now())', error: 'df.prune_executions: instance_id cannot be NULL' },
  { target: 'df.prune_executions', input: 'NULL cut-off', sql: "SELECT * FROM df.prune_executions(':P', NULL)", error: 'df.prune_executions: completed_before cannot be NULL' },
  { target: 'df.metrics', input: 'called by a plain tenant', sql: 'SELECT * FROM df.metrics()', error: 'permission denied for function metrics' },
  { target: 'df.grant_usage', input: 'called by a plain tenant', sql: "SELECT df.grant_usage('postgres')", error: 'permission denied for function grant_usage' },
  { target: 'df.revoke_usage', input: 'called by a plain tenant', sql: "SELECT df.revoke_usage('postgres')", error: 'permission denied for function revoke_usage' },
  { target: 'df._commit', input: 'forged lease token', sql: "SELECT df._commit(':P', gen_random_uuid(), '[]'::jsonb, 'completed', 'forged')", error: 'pg_durable: lease lost for instance :P' },
  { target: 'df._take_signal', input: 'called by a tenant', sql: "SELECT df._take_signal(':P', gen_random_uuid(), 'go', 'n', 's')", error: 'permission denied for function _take_signal' },
  // ---- direct table writes ------------------------------------------------------------------------
  { target: 'df.instances', input: 'id not 8 hex digits', sql: "INSERT INTO df.instances (id, root_node, submitted_by) VALUES ('XYZ', '00000001', CURRENT_USER::regrole)", error: 'violates check constraint "instances_id_format_chk"' },
  { target: 'df.instances', input: '5 MB label', sql: "INSERT INTO df.instances (id, label, root_node, submitted_by) VALUES ('0000aaa1', $1, '0000aaa2', CURRENT_USER::regrole)", params: () => [big(5 * MB)], error: 'violates check constraint "instances_label_size_chk"' },
  { target: 'df.instances', input: 'status set by hand', sql: "UPDATE df.instances SET status = 'completed' WHERE id = ':P'", error: 'the status of instance :P cannot be changed from pending to completed by hand' },
  { target: 'df.nodes', input: 'unknown node_type', sql: "INSERT INTO df.nodes (id, instance_id, node_type, query, submitted_by) VALUES ('0000aaa3', ':P', 'EVIL', 'x', CURRENT_USER::regrole)", error: 'violates check constraint "nodes_node_type_chk"' },
  { target: 'df.nodes', input: 'id not 8 hex digits', sql: "INSERT INTO df.nodes (id, instance_id, node_type, query, submitted_by) VALUES ('zz', ':P', 'SQL', 'x', CURRENT_USER::regrole)", error: 'violates check constraint "nodes_id_format_chk"' },
  { target: 'df.nodes', input: 'result_name not an identifier', sql: "INSERT INTO df.nodes (id, instance_id, node_type, query, result_name, submitted_by) VALUES ('0000aaa5', ':P', 'SQL', 'x', 'a b', CURRENT_USER::regrole)", error: 'violates check constraint "nodes_result_name_chk"' },
  { target: 'df.nodes', input: 'a SQL node without its query', sql: "INSERT INTO df.nodes (id, instance_id, node_type, submitted_by) VALUES ('0000aaa6', ':P', 'SQL', CURRENT_USER::regrole)", error: 'violates check constraint "nodes_structure_chk"' },
  { target: 'df.nodes', input: 'child id pointing nowhere', sql: "INSERT INTO df.nodes (id, instance_id, node_type, left_node, right_node, submitted_by) VALUES ('0000aaa4', ':P', 'THEN', '0000dead', '0000beef', CURRENT_USER::regrole)", error: 'violates foreign key constraint "nodes_' },
  { target: 'df.vars', input: '2 MB value', sql: "INSERT INTO df.vars (name, value) VALUES ('direct', $1)", params: () => [big(2 * MB)], error: 'violates check constraint "vars_value_size_chk"' },
  { target: 'df.vars', input: '2000-byte name', sql: "INSERT INTO df.vars (name, value) VALUES ($1, 'x')", params: () => [big(2000)], error: 'violates check constraint "vars_name_size_chk"' },
  { target: 'df._signals', input: '2 MB payload', sql: "INSERT INTO df._signals (instance_id, signal_name, payload) VALUES (':P', 'go', $1)", params: () => [big(2 * MB)], error: 'violates check constraint "signals_payload_size_chk"' },
  { target: 'df._signals', input: '2000-byte name', sql: "INSERT INTO df._signals (instance_id, signal_name, payload) VALUES (':P', $1, '{}')", params: () => [big(2000)], error: 'violates check constraint "signals_name_size_chk"' },
];

/** The Markdown list in docs/SECURITY.md, between the bad-input markers. */
export function renderBadInputList(): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = [
    `${BAD_INPUTS.length} cases (test/integration/security-input.cases.ts), each run as a tenant: the call fails with the`,
    'error shown (a substring of the message) and the row counts of df.instances, df.nodes, df._work,',
    'df._executions, df._node_runs, df._signals and df.vars are unchanged. `:P` and `:C` stand for the',
    "ids of the tenant's own pending and cancelled instances.",
    '',
    '| # | Target | Input | Error |',
    '|---|---|---|---|',
    ...BAD_INPUTS.map((c, i) => `| ${i + 1} | \`${c.target}\` | ${esc(c.input)} | ${esc(c.error.length > 110 ? `${c.error.slice(0, 107)}...` : c.error)} |`),
  ];
  return lines.join('\n');
}
