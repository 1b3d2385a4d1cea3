/** A migration names the src/sql functions and views it (re-)creates; the build puts their statements there. */
import { describe, expect, it } from 'vitest';
import { expandMigration } from '../../build/sql-gen';

const SOURCES = `CREATE FUNCTION df.f(p int) RETURNS int
    LANGUAGE sql AS $$
SELECT p;
$$;
CREATE VIEW df.v AS SELECT 1 AS x;
`;

describe('a migration', () => {
  it('gets the statement src/sql has for a named function or view, as CREATE or CREATE OR REPLACE', () => {
    const out = expandMigration('-- before\n-- pgd-replace-from-src: df.f\n-- pgd-create-from-src: df.v\n-- after', SOURCES);
    expect(out).toBe(`-- before\nCREATE OR REPLACE FUNCTION df.f(p int) RETURNS int\n    LANGUAGE sql AS $$\nSELECT p;\n$$;\nCREATE VIEW df.v AS SELECT 1 AS x;\n-- after`);
  });

  it('refuses a name src/sql does not define', () => {
    expect(() => expandMigration('-- pgd-create-from-src: df.gone', SOURCES)).toThrow('df.gone is defined 0 times in src/sql');
  });
});
