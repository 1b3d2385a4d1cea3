/**
 * The installcheck suite (test/regress, what `make installcheck` runs with pg_regress against a
 * server with plv8 and a worker) run here the way pg_regress runs it: `psql -X -a -q < file`,
 * output compared with test/regress/expected byte for byte. Set UPDATE_EXPECTED=1 to rewrite the
 * expected files after an intended change (then review the diff).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, url } from '../support/db';
import { startWorker, type WorkerHandle } from '../support/worker';

const DIR = 'test/regress';
const PSQL = join(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim(), 'psql');
let db: string;
let worker: WorkerHandle;

beforeAll(async () => {
  db = await freshDatabase('regress');
  worker = startWorker(url(db));
});
afterAll(async () => worker?.stop());

function runPsql(file: string): string {
  const r = spawnSync('sh', ['-c', `"${PSQL}" -X -a -q -d "$PGD_URL" < "${file}" 2>&1`], {
    encoding: 'utf8',
    env: { ...process.env, PGD_URL: url(db), PGTZ: 'UTC', PGDATESTYLE: 'Postgres, MDY', LANG: 'C', LC_ALL: 'C' },
  });
  return r.stdout;
}

describe('installcheck suite (test/regress)', () => {
  for (const sql of readdirSync(join(DIR, 'sql')).sort()) {
    const name = sql.replace(/\.sql$/, '');
    it(name, () => {
      const out = runPsql(join(DIR, 'sql', sql));
      const expectedPath = join(DIR, 'expected', `${name}.out`);
      if (process.env.UPDATE_EXPECTED === '1' || !existsSync(expectedPath)) writeFileSync(expectedPath, out);
      expect(out).toBe(readFileSync(expectedPath, 'utf8'));
    });
  }
});
