/**
 * df.prune_executions(instance_id, completed_before) (deviation 11): deletes loop-iteration
 * history and ended instances older than the cut-off, for the instances (by id or label) the
 * caller can see. Tenants hold no DELETE privilege, so the deletes run in the SECURITY DEFINER
 * df._prune_executions (src/sql/60_monitoring.sql), which re-checks ownership itself.
 */
import { one, query } from './db';
import { requireNonNull } from './session';
import { eq } from './sqltext';

export function pruneExecutions(instanceId: string | null, completedBefore: Date | string | null): Record<string, unknown>[] {
  const key = requireNonNull('df.prune_executions', 'instance_id', instanceId);
  const cutoff = requireNonNull('df.prune_executions', 'completed_before', completedBefore);
  const visible = query<{ id: string }>(
    `SELECT i.id FROM df.instances i
      WHERE ${eq('i.id', '$1::pg_catalog.text')} OR ${eq('i.label', '$1::pg_catalog.text')}
      ORDER BY i.id`,
    [key],
  ).map((r) => r.id);
  if (visible.length === 0) return [{ instances_processed: 0, executions_deleted: 0, events_deleted: 0 }];
  const row = one(
    `SELECT p.instances_processed, p.executions_deleted, p.events_deleted
       FROM df._prune_executions(
              ARRAY(SELECT pg_catalog.jsonb_array_elements_text($1::pg_catalog.text::pg_catalog.jsonb)),
              $2::pg_catalog.timestamptz) AS p`,
    [JSON.stringify(visible), cutoff],
  );
  return row ? [row] : [];
}
