/**
 * Administrators' settings stay theirs (API deviation 15): pg_durable.list_instances_max_limit and
 * pg_durable.enable_superuser_instances count as set by an administrator (role and database
 * defaults, postgresql.conf) or a superuser's session; a non-superuser's own SET, set_config or
 * connection option is refused with 42501 and never widens what the role may do.
 */
import pg from 'pg';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { asRole, createTenant, errorOf, freshDatabase, scalar, url, withPg } from '../support/db';

let db: string;
let alice: string;
beforeAll(async () => {
  db = await freshDatabase('settings');
  alice = await createTenant(db, 'alice');
});

afterEach(async () => {
  await withPg(db, async (c) => {
    await c.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} RESET pg_durable.list_instances_max_limit`);
    await c.query(`ALTER ROLE ${pg.escapeIdentifier(alice)} RESET pg_durable.list_instances_max_limit`);
  });
});

const LIMIT = 'pg_durable.list_instances_max_limit';

describe('pg_durable.list_instances_max_limit', () => {
  it("a tenant's SET cannot raise it: 42501, saying who may change it", async () => {
    await asRole(db, alice, async (c) => {
      await c.query(`SET ${LIMIT} = 1000000`);
      const err = await errorOf(c, 'SELECT * FROM df.list_instances(NULL, 5000)');
      expect(err.code).toBe('42501');
      expect(err.message).toBe(
        `pg_durable: ${LIMIT} can only be set by a superuser; the value '1000000' set in this session by role "${alice}" does not count. ` +
          `RESET ${LIMIT}, or ask an administrator to set it with ALTER DATABASE ... SET, ALTER ROLE ... SET or postgresql.conf.`,
      );
      await c.query(`RESET ${LIMIT}`);
      expect((await errorOf(c, 'SELECT * FROM df.list_instances(NULL, 5000)')).message).toContain('exceeds pg_durable.list_instances_max_limit (1000)');
    });
  });

  it('neither can set_config nor a connection option', async () => {
    await asRole(db, alice, async (c) => {
      await c.query(`SELECT set_config('${LIMIT}', '1000000', false)`);
      expect((await errorOf(c, 'SELECT * FROM df.list_instances(NULL, 10)')).code).toBe('42501');
    });
    const c = new pg.Client({ connectionString: url(db, alice), options: `-c ${LIMIT}=1000000` });
    await c.connect();
    try {
      expect((await errorOf(c, 'SELECT * FROM df.list_instances(NULL, 10)')).code).toBe('42501');
    } finally {
      await c.end();
    }
  });

  it("an administrator's database and role defaults count, the role's over the database's", async () => {
    await withPg(db, (c) => c.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} SET ${LIMIT} = 3`));
    await asRole(db, alice, async (c) => {
      expect((await errorOf(c, 'SELECT * FROM df.list_instances(NULL, 4)')).message).toContain('limit_count (4) exceeds pg_durable.list_instances_max_limit (3)');
    });
    await withPg(db, (c) => c.query(`ALTER ROLE ${pg.escapeIdentifier(alice)} SET ${LIMIT} = 5000`));
    await asRole(db, alice, async (c) => {
      expect((await c.query('SELECT * FROM df.list_instances(NULL, 4000)')).rowCount).toBe(0);
      // Repeating the administrator's value in the session changes nothing and is no error.
      await c.query(`SET ${LIMIT} = 5000`);
      expect((await c.query('SELECT * FROM df.list_instances(NULL, 4000)')).rowCount).toBe(0);
    });
  });

  it('a tenant cannot put it into its own role or database defaults (PostgreSQL refuses)', async () => {
    await asRole(db, alice, async (c) => {
      expect((await errorOf(c, `ALTER ROLE ${pg.escapeIdentifier(alice)} SET ${LIMIT} = 1000000`)).message).toContain('permission denied to set parameter');
    });
  });

  it("a superuser's session SET counts, also after SET ROLE", async () => {
    await withPg(db, async (c) => {
      await c.query(`SET ${LIMIT} = 2`);
      await c.query(`SET ROLE ${pg.escapeIdentifier(alice)}`);
      expect((await errorOf(c, 'SELECT * FROM df.list_instances(NULL, 3)')).message).toContain('limit_count (3) exceeds pg_durable.list_instances_max_limit (2)');
    });
  });
});

describe('pg_durable.enable_superuser_instances', () => {
  it("a tenant's session value does not count even where current_user is a superuser", async () => {
    // A SECURITY DEFINER function owned by the superuser starts as the superuser; the tenant calls it.
    await withPg(db, async (c) => {
      await c.query("CREATE FUNCTION public.start_as_owner() RETURNS text LANGUAGE sql SECURITY DEFINER AS $$ SELECT df.start('SELECT 1') $$");
      await c.query(`GRANT EXECUTE ON FUNCTION public.start_as_owner() TO ${pg.escapeIdentifier(alice)}`);
    });
    await asRole(db, alice, async (c) => {
      expect((await errorOf(c, 'SELECT public.start_as_owner()')).message).toContain('pg_durable.enable_superuser_instances is off');
      await c.query('SET pg_durable.enable_superuser_instances = on');
      const err = await errorOf(c, 'SELECT public.start_as_owner()');
      expect(err.code).toBe('42501');
      expect(err.message).toContain('pg_durable.enable_superuser_instances can only be set by a superuser');
    });
    const count = await withPg(db, (c) => scalar<number>(c, "SELECT count(*)::int FROM df.instances WHERE submitted_by = 'postgres'::regrole"));
    expect(count).toBe(0);
  });
});
