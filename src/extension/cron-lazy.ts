/**
 * The plv8 bundle's stand-in for src/core/cron-engine.ts (build/bundle.ts swaps it in): the same
 * functions, forwarded to the cron chunk that df._pgd_load_cron() installs on first use.
 */
import type * as Engine from '../core/cron-engine';
import { loadChunk } from './chunks';

declare const __CRON_CHUNK_HASH__: string;

const engine = () => loadChunk<typeof Engine>('df._pgd_load_cron', '__pg_durable_cron', __CRON_CHUNK_HASH__);

export const parseCron: typeof Engine.parseCron = (normalized) => engine().parseCron(normalized);
export const nextAfter: typeof Engine.nextAfter = (normalized, after) => engine().nextAfter(normalized, after);
