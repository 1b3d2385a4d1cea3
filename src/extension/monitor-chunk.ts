/** Entry of the monitor chunk (build/bundle.ts): installs the monitoring entry points. */
import { MONITOR_ENTRIES } from './monitor-entries';

declare const __MONITOR_CHUNK_HASH__: string;

(globalThis as unknown as { __pg_durable_monitor: unknown }).__pg_durable_monitor = { hash: __MONITOR_CHUNK_HASH__, entries: MONITOR_ENTRIES };
