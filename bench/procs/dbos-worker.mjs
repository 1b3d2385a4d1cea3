// DBOS Transact peer: a workflow of N steps, each a DBOS transaction step (postgres-datasource)
// running the step's SQL; DBOS records each step's output in the same transaction. Work arrives on
// a DBOS queue (enqueued by a DBOSClient, the way another process starts a DBOS workflow).
// argv[2] = JSON {sysUrl, app: {path, user, database}, concurrency, pollMs, executorId}.
import { DBOS } from '@dbos-inc/dbos-sdk';
import { PostgresDataSource } from '@dbos-inc/postgres-datasource';

const cfg = JSON.parse(process.argv[2]);
const ds = new PostgresDataSource('app', { ...cfg.app, max: cfg.concurrency, onnotice: () => undefined });

const stepTx = ds.registerTransaction(async function stepTx(i) {
  const r = await ds.client`SELECT ${i}::int + 1 AS v`;
  return r[0].v;
}, { name: 'stepTx' });

DBOS.registerWorkflow(async function chain(n) {
  let v = 0;
  for (let i = 0; i < n; i++) v = await stepTx(i);
  return v;
}, { name: 'chain' });

DBOS.registerWorkflow(async function fan(n) {
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => stepTx(i)));
  return rs.length;
}, { name: 'fan' });

DBOS.setConfig({
  name: 'bench',
  systemDatabaseUrl: cfg.sysUrl,
  logLevel: 'error',
  executorID: cfg.executorId,
  applicationVersion: 'bench-1',
});
await DBOS.launch();
await DBOS.registerQueue('bench', { workerConcurrency: cfg.concurrency, minPollingIntervalMs: cfg.pollMs, onConflict: 'always_update' });
process.on('SIGTERM', async () => {
  await DBOS.shutdown().catch(() => undefined);
  process.exit(0);
});
process.stdout.write('ready\n');
