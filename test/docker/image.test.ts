/**
 * Tier 3: the real thing. Builds the image from our Dockerfile (PostgreSQL 17 + plv8 from source +
 * pg_durable + the worker), and checks it the way a user meets it: healthy once the worker
 * heartbeats, the seeds' hello world over TCP, and the installcheck suite run by psql inside the
 * container against real plv8. Needs a Docker engine; without one it is skipped, loudly.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { GenericContainer, Wait, getContainerRuntimeClient, type StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

async function dockerEngine(): Promise<string | null> {
  try {
    await getContainerRuntimeClient();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

const why = await dockerEngine();
if (why !== null) {
  console.warn(
    '\n' +
      '*****************************************************************************************\n' +
      '* SKIPPED: tier-3 image tests (test/docker, npm run test:docker) did not run: no Docker  *\n' +
      '* engine answers here. They build the Dockerfile and run against real plv8.             *\n' +
      `* (${why.slice(0, 83).padEnd(83)}) *\n` +
      '*****************************************************************************************\n',
  );
}

describe.skipIf(why !== null)('the pg_durable image (PostgreSQL 17 + plv8 + worker)', () => {
  let container: StartedTestContainer;
  let admin: pg.Client;
  const PASSWORD = 'test-password';

  beforeAll(async () => {
    const image = await GenericContainer.fromDockerfile(process.cwd()).build('pg-durable:test', { deleteOnExit: false });
    container = await image
      .withEnvironment({ POSTGRES_PASSWORD: PASSWORD })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forHealthCheck())
      .withStartupTimeout(180_000)
      .start();
    admin = new pg.Client({ host: container.getHost(), port: container.getMappedPort(5432), user: 'postgres', password: PASSWORD, database: 'postgres' });
    await admin.connect();
  }, 3_600_000); // the first build compiles V8

  afterAll(async () => {
    await admin?.end();
    await container?.stop();
  });

  it('has plv8 and pg_durable installed, and a worker heartbeat', async () => {
    const ext = await admin.query("SELECT extname FROM pg_extension WHERE extname IN ('plv8', 'pg_durable') ORDER BY 1");
    expect(ext.rows.map((r) => r.extname)).toEqual(['pg_durable', 'plv8']);
    const beats = await admin.query("SELECT count(*)::int AS n FROM df._worker_epoch WHERE last_seen_at > now() - interval '15 seconds'");
    expect(beats.rows[0].n).toBeGreaterThan(0);
  });

  it("runs the seeds' hello world for a user connecting over TCP", async () => {
    await admin.query(`CREATE USER franck PASSWORD '${PASSWORD}'`);
    await admin.query("SELECT df.grant_usage('franck')");
    const user = new pg.Client({ host: container.getHost(), port: container.getMappedPort(5432), user: 'franck', password: PASSWORD, database: 'postgres' });
    await user.connect();
    try {
      const id = (await user.query("SELECT df.start($sql$ SELECT 'Hello, durable world!' AS message $sql$) AS id")).rows[0].id;
      expect((await user.query('SELECT df.await_instance($1, 60) AS s', [id])).rows[0].s).toBe('completed');
      expect((await user.query('SELECT df.result($1) AS r', [id])).rows[0].r).toBe('{"rows": [{"message": "Hello, durable world!"}], "row_count": 1}');
    } finally {
      await user.end();
    }
  });

  for (const file of readdirSync('test/regress/sql').sort()) {
    it(`installcheck ${file} against real plv8`, async () => {
      const sql = readFileSync(join('test/regress/sql', file), 'utf8');
      await container.copyContentToContainer([{ content: sql, target: `/tmp/${file}` }]);
      const r = await container.exec(['sh', '-c', `PGTZ=UTC PGDATESTYLE='Postgres, MDY' psql -X -a -q -h /var/run/postgresql -U postgres -d postgres < /tmp/${file} 2>&1`]);
      expect(r.output).toBe(readFileSync(join('test/regress/expected', file.replace(/\.sql$/, '.out')), 'utf8'));
    });
  }
});
