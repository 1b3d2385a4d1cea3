/** `pg-durable status <id>`: one instance's summary (df.instance_info plus its timestamps). */
import { CONNECTION_HELP, UsageError, command, formatRecord, withClient } from './monitor-util';

const HELP = `usage: pg-durable status <instance-id> [--database-url URL]

Shows an instance's label, status, current execution and output (df.instance_info).
Exit status: 0 when the instance is visible, 1 when it is not found.

${CONNECTION_HELP}`;

const COLUMNS = ['instance_id', 'label', 'status', 'current_execution_id', 'created_at', 'completed_at', 'output'];

export function run(args: string[]): Promise<number> {
  return command('status', HELP, args, { values: [] }, async ({ positional, options }) => {
    if (positional.length !== 1) throw new UsageError('expected exactly one instance id');
    const id = positional[0];
    return withClient(options, async (client) => {
      const r = await client.query(
        `SELECT i.instance_id, i.label, i.status, i.current_execution_id,
                pg_catalog.date_trunc('second', x.created_at)::pg_catalog.text AS created_at,
                pg_catalog.date_trunc('second', x.completed_at)::pg_catalog.text AS completed_at, i.output
           FROM df.instance_info($1::pg_catalog.text) i
           LEFT JOIN df.instances x ON x.id OPERATOR(pg_catalog.=) i.instance_id`,
        [id],
      );
      if (r.rows.length === 0) {
        console.error(`Instance '${id}' not found`);
        return 1;
      }
      console.log(formatRecord(COLUMNS, r.rows[0]));
      return 0;
    });
  });
}
