/** SQL fragments shared by the monitoring entries (all names and operators schema-qualified). */

/** Function name the original's engine reported for every instance (API §10.1, deviation 3). */
export const FUNCTION_NAME = 'pg_durable::orchestration::execute-function-graph';
/** The engine orchestration version of df.instance_info (API §10.3). */
export const FUNCTION_VERSION = '1.0.0';

/**
 * A timestamptz as exact UTC text (`2026-06-04T16:36:38.594906Z`). Timestamp columns are returned
 * as this text rather than as JS Dates, which carry milliseconds only: PostgreSQL's timestamptz
 * input reads it back exactly whatever the session's DateStyle and TimeZone.
 */
export function isoUtc(expr: string): string {
  return `pg_catalog.to_char(pg_catalog.timezone('UTC'::pg_catalog.text, ${expr}), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'::pg_catalog.text)`;
}

/** `a = b` with the pg_catalog operator. */
export const eq = (a: string, b: string): string => `${a} OPERATOR(pg_catalog.=) ${b}`;

/**
 * A lateral join to the instance's current (highest) execution: columns `cur_execution_id`,
 * `cur_status`, `cur_output`. `instanceCol` is the outer instance id expression.
 */
export function currentExecutionJoin(instanceCol: string, alias = 'cur'): string {
  return `LEFT JOIN LATERAL (
      SELECT x.execution_id AS cur_execution_id, x.status AS cur_status, x.output AS cur_output
        FROM df._execution_log x
       WHERE ${eq('x.instance_id', instanceCol)}
       ORDER BY x.execution_id DESC
       LIMIT 1) ${alias} ON true`;
}
