-- Facts about the caller's session that the plv8 functions cannot read as the caller.

-- The administrator's value of a pg_durable.* setting (API deviation 15): what ALTER ROLE ...
-- IN DATABASE, ALTER ROLE, ALTER DATABASE (in that precedence, as PostgreSQL applies them at
-- login) or the configuration files set, ignoring any session-level SET. NULL: none was set.
-- A plv8 extension cannot register GUCs, so every pg_durable.* setting is a placeholder that any
-- role may SET in its session; on PostgreSQL 15 only superusers may put a placeholder into
-- pg_db_role_setting or the configuration files (ALTER SYSTEM refuses unregistered names), so
-- these sources are administrators' by construction. SECURITY DEFINER because pg_file_settings
-- is readable by superusers only; restricted to pg_durable.* names so it reveals nothing else.
CREATE FUNCTION df._admin_setting(p_name pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
SELECT CASE WHEN p_name OPERATOR(pg_catalog.~) '^pg_durable\.[a-z_]+$' THEN (
    SELECT v FROM (
        SELECT pg_catalog.substr(c, pg_catalog.length(p_name) OPERATOR(pg_catalog.+) 2) AS v,
               CASE WHEN s.setdatabase OPERATOR(pg_catalog.<>) 0 AND s.setrole OPERATOR(pg_catalog.<>) 0 THEN 1
                    WHEN s.setrole OPERATOR(pg_catalog.<>) 0 THEN 2 ELSE 3 END AS rank
          FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) AS c
         WHERE s.setdatabase OPERATOR(pg_catalog.=) ANY (ARRAY[0, (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())])
           AND s.setrole OPERATOR(pg_catalog.=) ANY (ARRAY[0, (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) SESSION_USER)])
           AND c OPERATOR(pg_catalog.^@) (p_name OPERATOR(pg_catalog.||) '=')
        UNION ALL
        SELECT f.setting, 4 FROM pg_catalog.pg_file_settings f
         WHERE f.name OPERATOR(pg_catalog.=) p_name AND f.applied AND f.error IS NULL
    ) AS sources ORDER BY rank LIMIT 1)
END
$$;

-- Whether a visible row's xmin is the current transaction or one of its subtransactions: a row
-- whose inserting transaction is still in progress is visible only to that transaction. Used by
-- df.await_instance to fail at once on a start or signal this transaction has not committed (API
-- deviation 14). The 32-bit xmin gets the epoch that puts it nearest our top-level id; ours
-- (the top-level id or a subtransaction's) are never older than it.
CREATE FUNCTION df._written_by_current_transaction(p_xmin pg_catalog.xid) RETURNS boolean
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
SELECT COALESCE((SELECT CASE WHEN f OPERATOR(pg_catalog.<) topn THEN false
            ELSE pg_catalog.pg_xact_status(f::pg_catalog.text::pg_catalog.xid8) OPERATOR(pg_catalog.=) 'in progress' END
  FROM (SELECT topn, CASE WHEN full8 OPERATOR(pg_catalog.-) topn OPERATOR(pg_catalog.>) 2147483648 THEN full8 OPERATOR(pg_catalog.-) 4294967296
                          WHEN topn OPERATOR(pg_catalog.-) full8 OPERATOR(pg_catalog.>) 2147483648 THEN full8 OPERATOR(pg_catalog.+) 4294967296
                          ELSE full8 END AS f
          FROM (SELECT topn, ((topn OPERATOR(pg_catalog.>>) 32) OPERATOR(pg_catalog.<<) 32)
                                 OPERATOR(pg_catalog.|) p_xmin::pg_catalog.text::pg_catalog.int8 AS full8
                  FROM (SELECT pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text::pg_catalog.int8 AS topn) t
                 WHERE topn IS NOT NULL) x) y), false)
$$;

-- The session reset of a step connection after every step (src/worker/steps.ts): what DISCARD ALL
-- does, minus DISCARD PLANS (df._commit's cached plans survive) and minus the worker's own
-- prepared statements, as one call. The worker keeps the checkpoint and this reset parsed on the
-- connection (protocol-level statements, not from_sql; src/worker/kept.ts): only the statements
-- a step PREPAREd go. Looking for them costs ~0.01 ms per step; parsing and planning the two kept
-- statements at every step cost 0.06 ms. DISCARD ALL itself cannot run in a function or after
-- COMMIT in the same batch, and the seven statements one by one cost PostgreSQL a parse, a plan
-- and a portal each at every step (docs/PERFORMANCE.md). RESET ROLE undoes a step's SET ROLE,
-- which RESET ALL leaves alone (DISCARD ALL's SET SESSION AUTHORIZATION DEFAULT does it there; a
-- step cannot change its session authorization). No SET clause: the function must change the
-- caller's session, and it names nothing a search_path could redirect. Executable by PUBLIC: it
-- only resets the caller's own session. src/worker/steps.ts keeps the same list as statements
-- (RESET_ANYWHERE, with DEALLOCATE ALL: no kept statements there) for steps in databases without
-- pg_durable.
CREATE FUNCTION df._reset_session() RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_name pg_catalog.text;
BEGIN
    EXECUTE 'CLOSE ALL';
    RESET ROLE;
    RESET ALL;
    -- Looked for before a loop opens a cursor over them: a step rarely PREPAREs, and the cursor
    -- was half of this scan's cost, which was three quarters of the reset's (docs/PERFORMANCE.md).
    IF EXISTS (SELECT FROM pg_catalog.pg_prepared_statements p WHERE p.from_sql) THEN
        FOR v_name IN SELECT p.name FROM pg_catalog.pg_prepared_statements p WHERE p.from_sql LOOP
            EXECUTE pg_catalog.format('DEALLOCATE %I', v_name);
        END LOOP;
    END IF;
    UNLISTEN *;
    PERFORM pg_catalog.pg_advisory_unlock_all();
    DISCARD TEMP;
    DISCARD SEQUENCES;
END
$$;
