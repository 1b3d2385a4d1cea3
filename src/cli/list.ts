/** `pg-durable list`: the caller's instances, newest first, as a psql-like table. */
import { CONNECTION_HELP, UsageError, command, formatTable, positiveNumber, withClient } from './monitor-util';

const HELP = `usage: pg-durable list [--status STATUS] [--label LABEL] [--limit N] [--after CURSOR] [--database-url URL]

Lists instances newest first (the paginated df.list_instances).
  --status STATUS   only instances in this status (pending, running, completed, failed, cancelled)
  --label LABEL     only instances with this label
  --limit N         at most N rows (default 20; capped by pg_durable.list_instances_max_limit)
  --after CURSOR    continue after a previous page (the cursor printed below a full page)

${CONNECTION_HELP}`;

const COLUMNS = ['instance_id', 'label', 'status', 'execution_count', 'created_at', 'completed_at', 'output'];

export function run(args: string[]): Promise<number> {
  return command('list', HELP, args, { values: ['status', 'label', 'limit', 'after'] }, async ({ positional, options }) => {
    if (positional.length > 0) throw new UsageError(`unexpected argument '${positional[0]}'`);
    const limit = positiveNumber('limit', options.limit, true) ?? 20;
    return withClient(options, async (client) => {
      const r = await client.query(
        `SELECT instance_id, label, status, execution_count,
                pg_catalog.date_trunc('second', created_at)::pg_catalog.text AS created_at,
                pg_catalog.date_trunc('second', completed_at)::pg_catalog.text AS completed_at,
                output, next_cursor
           FROM df.list_instances($1::pg_catalog.text, $2::pg_catalog.int4, $3::pg_catalog.text, $4::pg_catalog.text)`,
        [options.status ?? null, limit, options.label ?? null, options.after ?? null],
      );
      console.log(formatTable(COLUMNS, r.rows, ['execution_count']));
      const next = r.rows.length > 0 ? (r.rows[0].next_cursor as string | null) : null;
      if (next) {
        // Filters are not part of the cursor: repeat them for the next page.
        const again = [['status', options.status], ['label', options.label], ['limit', options.limit]]
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => ` --${k} ${shellQuote(v as string)}`)
          .join('');
        console.log(`More instances: pg-durable list${again} --after ${next}`);
      }
      return 0;
    });
  });
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_.,:\/=+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
