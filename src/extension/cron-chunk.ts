/** Entry of the cron chunk (build/bundle.ts): installs the cron engine for src/extension/cron-lazy.ts. */
import { nextAfter, parseCron } from '../core/cron-engine';

declare const __CRON_CHUNK_HASH__: string;

(globalThis as unknown as { __pg_durable_cron: unknown }).__pg_durable_cron = { hash: __CRON_CHUNK_HASH__, parseCron, nextAfter };
