/**
 * Starts one embedded PostgreSQL for the whole test run and prints which pg_durable flavor the
 * integration tests exercise: the real plv8 extension when the server has plv8, else the plv8 host.
 */
import type { TestProject } from 'vitest/node';
import { startCluster } from '../../src/embedded/cluster';

export default async function setup(project: TestProject): Promise<() => void> {
  const cluster = await startCluster();
  const banner =
    cluster.flavor === 'plv8'
      ? 'pg_durable tests: server has plv8 -> integration tests run against the real plv8 extension'
      : 'pg_durable tests: server has no plv8 -> integration tests run against the plv8 host (PL/Python bridge + Node vm, same bundle)';
  console.log(`\n${banner}\n  cluster: ${cluster.dir} (PostgreSQL ${cluster.bindir})\n`);
  project.provide('cluster', { dir: cluster.dir, socketDir: cluster.socketDir, port: cluster.port, flavor: cluster.flavor });
  return () => cluster.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: { dir: string; socketDir: string; port: number; flavor: string };
  }
}
