/**
 * `pg-durable watch <id> [--interval s]`: redraws df.explain's live tree until the instance ends.
 * On a terminal each frame replaces the previous one; otherwise a frame is printed only when it
 * changes (log-friendly, no escape codes). Exit status: 0 completed, 1 failed/cancelled/not found.
 */
import { CONNECTION_HELP, UsageError, command, positiveNumber, withClient } from './monitor-util';

const HELP = `usage: pg-durable watch <instance-id> [--interval SECONDS] [--database-url URL]

Redraws the instance's explain tree (df.explain) every --interval seconds (default 1) until the
instance is completed, failed or cancelled.
Exit status: 0 when it completed, 1 when it failed, was cancelled or is not visible.

${CONNECTION_HELP}`;

const CLEAR = '\x1b[H\x1b[2J';
const TERMINAL: Record<string, number> = { completed: 0, failed: 1, cancelled: 1 };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function run(args: string[]): Promise<number> {
  return command('watch', HELP, args, { values: ['interval'] }, async ({ positional, options }) => {
    if (positional.length !== 1) throw new UsageError('expected exactly one instance id');
    const id = positional[0];
    const intervalMs = (positiveNumber('interval', options.interval, false) ?? 1) * 1000;
    const tty = process.stdout.isTTY === true;
    return withClient(options, async (client) => {
      let previous: string | null = null;
      for (;;) {
        // The status decides when to stop; the tree is df.explain's instance mode.
        const r = await client.query(
          `SELECT i.status, df.explain(i.id::pg_catalog.text) AS tree
             FROM df.instances i WHERE i.id OPERATOR(pg_catalog.=) $1::pg_catalog.text`,
          [id],
        );
        if (r.rows.length === 0) {
          console.error(`Instance '${id}' not found`);
          return 1;
        }
        const status = r.rows[0].status as string;
        const frame = r.rows[0].tree as string;
        const done = status in TERMINAL;
        if (tty) {
          const footer = done ? '' : `\n\n(refreshing every ${intervalMs / 1000}s; Ctrl-C to stop)`;
          process.stdout.write(`${CLEAR}${frame}${footer}\n`);
        } else if (frame !== previous) {
          process.stdout.write(`${previous === null ? '' : '\n'}${frame}\n`);
        }
        previous = frame;
        if (done) return TERMINAL[status];
        await sleep(intervalMs);
      }
    });
  });
}
