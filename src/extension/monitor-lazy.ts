/** The plv8 bundle's stand-in for src/extension/monitor-entries.ts: forwards to the monitor chunk. */
import type { MONITOR_ENTRIES as Real } from './monitor-entries';
import { loadChunk } from './chunks';

declare const __MONITOR_CHUNK_HASH__: string;

type Entries = typeof Real;
const NAMES = [
  'list_instances', 'list_instances_paged', 'instance_info', 'instance_executions', 'instance_nodes', 'instance_nodes_history', 'explain', 'prune_executions',
] as const;
// Every entry of monitor-entries.ts must be listed above (a compile error otherwise).
const complete: Exclude<keyof Entries, (typeof NAMES)[number]> extends never ? true : never = true;
void complete;

const chunk = () => loadChunk<{ entries: Entries }>('df._pgd_load_monitor', '__pg_durable_monitor', __MONITOR_CHUNK_HASH__).entries;

export const MONITOR_ENTRIES = Object.fromEntries(
  NAMES.map((name) => [name, (...args: unknown[]) => (chunk()[name] as (...a: unknown[]) => unknown)(...args)]),
) as unknown as Entries;
