-- Schema changes from 0.1.0 (the first release) to 0.2.0. The generated upgrade script appends
-- CREATE OR REPLACE of the loader and of every plv8 function, so only changes to src/sql objects
-- (tables, types, operators, SQL/plpgsql functions, grants) belong here. The upgrade test fails
-- if "install 0.1.0 + ALTER EXTENSION UPDATE" differs from a fresh 0.2.0 install. A function or
-- view src/sql defines is named, not copied: `-- pgd-create-from-src: df.name` (or
-- `pgd-replace-from-src`, CREATE OR REPLACE) becomes its statement as src/sql has it
-- (build/sql-gen.ts).

-- Multi-tenant hardening (docs/SECURITY.md).
ALTER TABLE df._worker_epoch ENABLE ROW LEVEL SECURITY;

-- pgd-replace-from-src: df._on_instance_insert

CREATE OR REPLACE FUNCTION df._take_signal(p_instance pg_catalog.text, p_token pg_catalog.uuid, p_name pg_catalog.text,
                                p_node pg_catalog.text, p_stamp pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_id int8;
    v_payload text;
    v_result text;
BEGIN
    SELECT s.id, s.payload INTO v_id, v_payload FROM df._signals s
     WHERE s.instance_id = p_instance AND s.signal_name = p_name AND s.consumed_by IS NULL
     ORDER BY s.id LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE df._signals SET consumed_by = p_stamp || '/' || p_node WHERE id = v_id;
    -- df.signal stores JSON, but a row inserted directly may not be: deliver that as a JSON string.
    BEGIN
        PERFORM v_payload::jsonb;
    EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
        v_payload := to_jsonb(v_payload)::text;
    END;
    v_result := '{"signal_name":' || to_json(p_name)::text || ',"timed_out":false,"data":' || v_payload || '}';
    PERFORM df._commit(p_instance, p_token,
        jsonb_build_array(jsonb_build_object('node', p_node, 'stamp', p_stamp, 'status', 'completed', 'result', v_result, 'json', true)));
    RETURN v_payload;
END
$$;

-- pgd-replace-from-src: df.grant_usage

-- pgd-replace-from-src: df.revoke_usage

-- pgd-create-from-src: df._guard_instance_status
-- The engine's own transitions skip the status guard's call (src/sql/50_security.sql).
DO $guard$
BEGIN
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER instances_status_guard BEFORE UPDATE OF status ON df.instances FOR EACH ROW '
        'WHEN (OLD.status IS DISTINCT FROM NEW.status AND (NOT pg_catalog.pg_has_role(CURRENT_USER, %s::pg_catalog.oid, ''USAGE'') '
        'OR NEW.status OPERATOR(pg_catalog.<>) ALL (ARRAY[''pending'', ''running'', ''completed'', ''failed'', ''cancelled'']::pg_catalog.text[]))) '
        'EXECUTE FUNCTION df._guard_instance_status()',
        (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) 'df.instances'::pg_catalog.regclass));
END
$guard$;

-- 2. The identity a row carries must be the writer's own: RLS WITH CHECK says so already, but a
--    BYPASSRLS role skips RLS and could otherwise start work (df.instances.submitted_by) or plant
--    variables (df.vars.owner, captured into another role's instances) in another role's name.
--    df.nodes needs no guard: its (instance_id, submitted_by) foreign key ties it to the instance.
-- pgd-create-from-src: df._guard_identity
-- The WHEN clauses keep the common case (a row in the writer's own name: every df.start and
-- df.setvar) from calling the function at all: no PL/pgSQL call, nor its first-call set-up in a
-- new session, on the start path.
CREATE TRIGGER instances_identity_guard BEFORE INSERT ON df.instances
    FOR EACH ROW WHEN (NEW.submitted_by IS DISTINCT FROM pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole)
    EXECUTE FUNCTION df._guard_identity();
CREATE TRIGGER vars_identity_guard BEFORE INSERT OR UPDATE ON df.vars
    FOR EACH ROW WHEN (NEW.owner IS DISTINCT FROM pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole)
    EXECUTE FUNCTION df._guard_identity();

-- 3. Size limits on what tenants write directly (the df.* functions check them first with friendlier
--    messages). Labels, variable names and signal names are also btree keys, which cannot exceed
--    about 2.7 kB anyway. NOT VALID: enforced for new rows, as the original's CHECKs are.
ALTER TABLE df.vars ADD CONSTRAINT vars_name_size_chk
    CHECK (pg_catalog.octet_length(name) OPERATOR(pg_catalog.<=) 1024) NOT VALID;
ALTER TABLE df.vars ADD CONSTRAINT vars_value_size_chk
    CHECK (pg_catalog.octet_length(value) OPERATOR(pg_catalog.<=) 1048576) NOT VALID;
ALTER TABLE df._signals ADD CONSTRAINT signals_name_size_chk
    CHECK (pg_catalog.octet_length(signal_name) OPERATOR(pg_catalog.<=) 1024) NOT VALID;
ALTER TABLE df._signals ADD CONSTRAINT signals_payload_size_chk
    CHECK (pg_catalog.octet_length(payload) OPERATOR(pg_catalog.<=) 1048576) NOT VALID;
-- Every signal of an instance, consumed or not (src/sql/00_schema.sql).
CREATE INDEX idx_signals_instance ON df._signals (instance_id, signal_name, id);

-- df._commit: a late 'running' stamp never undoes an outcome; 'continue:<g>' is idempotent.
-- pgd-replace-from-src: df._commit

-- df._take_signal: idempotent, returns the SIGNAL node's result.
-- pgd-replace-from-src: df._take_signal

-- Session facts (src/sql/55_session.sql): administrators' settings (API deviation 15) and
-- uncommitted starts and signals (deviation 14).
-- pgd-create-from-src: df._admin_setting

-- pgd-create-from-src: df._written_by_current_transaction

-- Independent starts (src/sql/57_new_start.sql).
CREATE TABLE df._launch_tickets (
    nonce pg_catalog.uuid PRIMARY KEY,
    role pg_catalog.regrole NOT NULL,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
ALTER TABLE df._launch_tickets ENABLE ROW LEVEL SECURITY;

-- pgd-create-from-src: df._launch_ticket_stamp

CREATE TRIGGER launch_ticket_stamp BEFORE INSERT ON df._launch_tickets
    FOR EACH ROW EXECUTE FUNCTION df._launch_ticket_stamp();
-- Tenants may insert (df.grant_usage grants INSERT (nonce)) but never read: RLS shows no rows.
CREATE POLICY launch_tickets_insert ON df._launch_tickets FOR INSERT WITH CHECK (true);

-- A libpq connection-string value, quoted.
-- pgd-create-from-src: df._conninfo_value

-- pgd-create-from-src: df._start_new
REVOKE EXECUTE ON FUNCTION df._start_new(pg_catalog.uuid, pg_catalog.text, pg_catalog.text, pg_catalog.text) FROM PUBLIC;

-- Roles granted usage under 0.1.0 get what 0.2.0's df.grant_usage adds (with the grant option
-- where they held USAGE with it): checkpoints from their steps, and independent starts.
DO $$
DECLARE
    r record;
    opt text;
BEGIN
    FOR r IN SELECT a.grantee::regrole::text AS role, bool_or(a.is_grantable) AS grantable
               FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
              WHERE n.nspname = 'df' AND a.privilege_type = 'USAGE' AND a.grantee <> 0
                AND a.grantee <> n.nspowner
              GROUP BY a.grantee LOOP
        opt := CASE WHEN r.grantable THEN ' WITH GRANT OPTION' ELSE '' END;
        EXECUTE format('GRANT EXECUTE ON FUNCTION df._commit(text, uuid, jsonb, text, text) TO %s%s', r.role, opt);
        EXECUTE format('GRANT INSERT (nonce) ON df._launch_tickets TO %s%s', r.role, opt);
        EXECUTE format('GRANT EXECUTE ON FUNCTION df._start_new(uuid, text, text, text) TO %s%s', r.role, opt);
    END LOOP;
END
$$;

-- Sagas: df.with_undo and its operator (src/sql/30_operators.sql; the node type's constraints above).
CREATE FUNCTION df.op_undo(forward df.node, undo df.node) RETURNS df.node
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$ SELECT df.with_undo(forward::pg_catalog.text, undo::pg_catalog.text)::df.node $$;
CREATE OPERATOR pg_catalog.<~  (LEFTARG = df.node, RIGHTARG = df.node, FUNCTION = df.op_undo);

-- Sagas: a compensating cancel is a reserved signal with its own wake-up (src/sql/40_engine.sql);
-- df.cancel gained `compensate` (the generated script creates the three-argument function).
-- pgd-replace-from-src: df._on_signal_insert
DROP FUNCTION df.cancel(pg_catalog.text, pg_catalog.text);

-- The hot path (docs/PERFORMANCE.md): the lease row carries the submitter, df._node_runs has no
-- foreign key (runs go with their instance through a statement trigger), and the index on
-- df.nodes (instance_id) alone is gone (nodes_pkey serves it).
ALTER TABLE df._work ADD COLUMN submitted_by pg_catalog.regrole;
UPDATE df._work w SET submitted_by = i.submitted_by FROM df.instances i WHERE i.id OPERATOR(pg_catalog.=) w.instance_id;
ALTER TABLE df._work ALTER COLUMN submitted_by SET NOT NULL;
ALTER TABLE df._node_runs DROP CONSTRAINT _node_runs_instance_id_fkey;
ALTER TABLE df._work DROP CONSTRAINT _work_instance_id_fkey;
ALTER TABLE df._executions DROP CONSTRAINT _executions_instance_id_fkey;
DROP INDEX df.idx_nodes_instance;
-- HOT transitions of an instance: no index on status, 15 % of each page kept free.
DROP INDEX df.idx_instances_status;
ALTER TABLE df.instances SET (fillfactor = 85);
-- pgd-create-from-src: df._on_instances_deleted
CREATE TRIGGER instances_delete_runs AFTER DELETE ON df.instances
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION df._on_instances_deleted();

-- CHECK constraints leave df.instances, df.nodes, df._node_runs and df._executions: the rows'
-- rules are checked when they are inserted, under the same names (src/sql/00_schema.sql); the
-- node rules also know the node types added since 0.1.0 (RETRY, TIMEOUT, UNDO).
-- pgd-create-from-src: df._check_node_row
ALTER TABLE df.nodes DROP CONSTRAINT nodes_id_format_chk, DROP CONSTRAINT nodes_instance_id_format_chk,
    DROP CONSTRAINT nodes_left_node_format_chk, DROP CONSTRAINT nodes_right_node_format_chk,
    DROP CONSTRAINT nodes_node_type_chk, DROP CONSTRAINT nodes_result_name_chk, DROP CONSTRAINT nodes_structure_chk,
    DROP CONSTRAINT nodes_submitted_by_present_chk, DROP CONSTRAINT nodes_status_chk, DROP CONSTRAINT nodes_result_status_chk;
CREATE TRIGGER nodes_row_check BEFORE INSERT ON df.nodes
    FOR EACH ROW EXECUTE FUNCTION df._check_node_row();
-- pgd-create-from-src: df._check_instance_row
CREATE TRIGGER instances_row_check BEFORE INSERT ON df.instances
    FOR EACH ROW EXECUTE FUNCTION df._check_instance_row();
ALTER TABLE df.instances DROP CONSTRAINT instances_id_format_chk, DROP CONSTRAINT instances_root_node_format_chk,
    DROP CONSTRAINT instances_status_chk;
ALTER TABLE df._node_runs DROP CONSTRAINT node_runs_status_chk;
ALTER TABLE df._executions DROP CONSTRAINT executions_status_chk;

-- One call resets a step connection (src/sql/55_session.sql).
-- pgd-create-from-src: df._reset_session

-- Runs kept by node rows: the run log as readers see it (src/sql/00_schema.sql); a kept run's
-- result is its node row's compact JSON text.
-- pgd-create-from-src: df._json_compact
-- pgd-create-from-src: df._runs
REVOKE ALL ON df._runs FROM PUBLIC;

-- Executions kept by instance rows (src/sql/00_schema.sql): execution 1 has no row until it
-- ends, and none when it completes with its root node's result as output. The running first
-- executions' rows go; df._execution_log derives them from their instances.
-- pgd-create-from-src: df._execution_log
REVOKE ALL ON df._execution_log FROM PUBLIC;
-- pgd-create-from-src: df._close_execution
REVOKE EXECUTE ON FUNCTION df._close_execution(pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.text, pg_catalog.regrole) FROM PUBLIC;
-- pgd-replace-from-src: df._on_instance_cancel
DELETE FROM df._executions e WHERE e.execution_id = 1 AND e.status = 'Running';

-- The event counts read df._runs, the execution counts df._execution_log (src/sql/60_monitoring.sql).
-- pgd-replace-from-src: df.metrics
-- pgd-replace-from-src: df._prune_executions

-- Roles that may read df._node_runs or df._executions (df.grant_usage under 0.1.0) may read the
-- view over it (df._runs, df._execution_log), with the grant option where they hold it on the table.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT v.vw, a.grantee::regrole::text AS role, bool_or(a.is_grantable) AS grantable
               FROM (VALUES ('df._node_runs'::pg_catalog.regclass, 'df._runs'),
                            ('df._executions'::pg_catalog.regclass, 'df._execution_log')) v(tbl, vw),
                    pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
              WHERE c.oid = v.tbl AND a.privilege_type = 'SELECT'
                AND a.grantee <> 0 AND a.grantee <> c.relowner
              GROUP BY v.vw, a.grantee LOOP
        EXECUTE format('GRANT SELECT ON %s TO %s%s', r.vw, r.role, CASE WHEN r.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;
