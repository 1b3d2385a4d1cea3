-- Privileges and row-level security (API §11). Nothing is granted to PUBLIC: df.grant_usage()
-- is the one way a role gets access, and RLS confines every role to its own rows.

REVOKE ALL ON SCHEMA df FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA df FROM PUBLIC;

ALTER TABLE df.instances ENABLE ROW LEVEL SECURITY;
ALTER TABLE df.nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE df.vars ENABLE ROW LEVEL SECURITY;
ALTER TABLE df._executions ENABLE ROW LEVEL SECURITY;
ALTER TABLE df._node_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE df._signals ENABLE ROW LEVEL SECURITY;
ALTER TABLE df._work ENABLE ROW LEVEL SECURITY;
ALTER TABLE df._worker_epoch ENABLE ROW LEVEL SECURITY;

-- quote_ident() makes role names with capitals, spaces or quotes resolve to the right role.
CREATE POLICY instances_user_isolation ON df.instances FOR ALL
    USING (submitted_by OPERATOR(pg_catalog.=) pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole)
    WITH CHECK (submitted_by OPERATOR(pg_catalog.=) pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole);
CREATE POLICY nodes_user_isolation ON df.nodes FOR ALL
    USING (submitted_by OPERATOR(pg_catalog.=) pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole)
    WITH CHECK (submitted_by OPERATOR(pg_catalog.=) pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole);
CREATE POLICY vars_user_isolation ON df.vars FOR ALL
    USING (owner OPERATOR(pg_catalog.=) pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole)
    WITH CHECK (owner OPERATOR(pg_catalog.=) pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole);
CREATE POLICY executions_user_isolation ON df._executions FOR SELECT
    USING (submitted_by OPERATOR(pg_catalog.=) pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole);
CREATE POLICY node_runs_user_isolation ON df._node_runs FOR SELECT
    USING (submitted_by OPERATOR(pg_catalog.=) pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole);
-- A signal may only be sent to an instance the sender owns (the subquery runs under the sender's RLS).
CREATE POLICY signals_user_isolation ON df._signals FOR ALL
    USING (submitted_by OPERATOR(pg_catalog.=) pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole)
    WITH CHECK (submitted_by OPERATOR(pg_catalog.=) pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole
        AND EXISTS (SELECT 1 FROM df.instances i WHERE i.id OPERATOR(pg_catalog.=) instance_id));

CREATE FUNCTION df.grant_usage(p_role pg_catalog.text, include_http pg_catalog.bool DEFAULT false, with_grant pg_catalog.bool DEFAULT false)
    RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    opt text := CASE WHEN with_grant THEN ' WITH GRANT OPTION' ELSE '' END;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA df TO %I%s', p_role, opt);
    IF include_http THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION df.http(text, text, text, jsonb, integer) TO %I%s', p_role, opt);
        EXECUTE format('GRANT EXECUTE ON FUNCTION df.http_multipart(text, text, jsonb, jsonb, integer) TO %I%s', p_role, opt);
    END IF;
    IF with_grant THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION df.grant_usage(text, boolean, boolean) TO %I%s', p_role, opt);
        EXECUTE format('GRANT EXECUTE ON FUNCTION df.revoke_usage(text) TO %I%s', p_role, opt);
        EXECUTE format('GRANT EXECUTE ON FUNCTION df.metrics() TO %I%s', p_role, opt);
    END IF;
    EXECUTE format('GRANT SELECT ON df.instances TO %I%s', p_role, opt);
    EXECUTE format('GRANT UPDATE (status, updated_at) ON df.instances TO %I%s', p_role, opt);
    EXECUTE format('GRANT SELECT ON df.nodes TO %I%s', p_role, opt);
    EXECUTE format('GRANT INSERT (id, label, root_node, submitted_by, database) ON df.instances TO %I%s', p_role, opt);
    EXECUTE format('GRANT INSERT (id, instance_id, node_type, query, result_name, left_node, right_node, submitted_by, database) ON df.nodes TO %I%s', p_role, opt);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON df.vars TO %I%s', p_role, opt);
    EXECUTE format('GRANT SELECT ON df._executions, df._execution_log, df._node_runs, df._runs TO %I%s', p_role, opt);
    EXECUTE format('GRANT SELECT, INSERT (instance_id, signal_name, payload) ON df._signals TO %I%s', p_role, opt);
    -- Step connections run as the role and checkpoint through the lease-fenced df._commit (with
    -- the grant option when delegating, so a delegated admin's grants work too).
    EXECUTE format('GRANT EXECUTE ON FUNCTION df._commit(text, uuid, jsonb, text, text) TO %I%s', p_role, opt);
    -- df.start(..., transaction_mode => 'new'): a launch ticket stamped with the caller's role.
    EXECUTE format('GRANT INSERT (nonce) ON df._launch_tickets TO %I%s', p_role, opt);
    EXECUTE format('GRANT EXECUTE ON FUNCTION df._start_new(uuid, text, text, text) TO %I%s', p_role, opt);
    RAISE NOTICE 'pg_durable: granted df usage privileges to "%"', p_role;
END
$$;

CREATE FUNCTION df.revoke_usage(p_role pg_catalog.text)
    RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY['df.http(text, text, text, jsonb, integer)', 'df.metrics()',
                              'df.http_multipart(text, text, jsonb, jsonb, integer)',
                              'df.grant_usage(text, boolean, boolean)', 'df.revoke_usage(text)',
                              'df._commit(text, uuid, jsonb, text, text)', 'df._start_new(uuid, text, text, text)'] LOOP
        BEGIN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %I CASCADE', fn, p_role);
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END;
    END LOOP;
    EXECUTE format('REVOKE ALL ON df.vars FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE INSERT (id, instance_id, node_type, query, result_name, left_node, right_node, submitted_by, database) ON df.nodes FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE SELECT ON df.nodes FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE INSERT (id, label, root_node, submitted_by, database) ON df.instances FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE UPDATE (status, updated_at) ON df.instances FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE SELECT ON df.instances FROM %I CASCADE', p_role);
    -- Beyond the original's set: what our grant_usage adds for monitoring and signals.
    EXECUTE format('REVOKE ALL ON df._signals, df._node_runs, df._runs, df._executions, df._execution_log FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE INSERT (nonce) ON df._launch_tickets FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE USAGE ON SCHEMA df FROM %I CASCADE', p_role);
    RAISE NOTICE 'pg_durable: revoked df usage privileges granted by "%" from "%"', current_user, p_role;
END
$$;

REVOKE EXECUTE ON FUNCTION df.grant_usage(pg_catalog.text, pg_catalog.bool, pg_catalog.bool) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION df.revoke_usage(pg_catalog.text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION df.http(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.int4) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION df.http_multipart(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.jsonb, pg_catalog.int4) FROM PUBLIC;

-- Guards against hand-written rows (docs/SECURITY.md). RLS and the column grants already confine a
-- tenant to its own rows; these close what they leave open.
--
-- 1. A tenant may UPDATE df.instances.status of its own rows (column grant, API §11.4), but the only
--    change it may make is pending/running -> cancelled, which the AFTER trigger instances_cancel
--    turns into a real cancel exactly as df.cancel does. Hand-setting completed/failed/running/
--    pending would only mislead monitoring and df.metrics, so it is refused. The engine (its
--    SECURITY DEFINER functions run as the table owner), the table owner and superusers are exempt.
CREATE FUNCTION df._guard_instance_status() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NEW.status = 'cancelled' AND OLD.status IN ('pending', 'running') THEN
        RETURN NEW;
    END IF;
    IF pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
        -- API §12.1's instances_status_chk (no CHECK constraint: src/sql/00_schema.sql).
        IF NOT (NEW.status = ANY (ARRAY['pending','running','completed','failed','cancelled'])) THEN
            RAISE EXCEPTION 'new row for relation "instances" violates check constraint "instances_status_chk"'
                USING ERRCODE = '23514', CONSTRAINT = 'instances_status_chk', SCHEMA = 'df', TABLE = 'instances';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'pg_durable: the status of instance % cannot be changed from % to % by hand; the only change allowed is cancelling an instance that has not ended (use df.cancel)',
        OLD.id, OLD.status, NEW.status
        USING ERRCODE = '42501';
END
$$;
-- The engine's own transitions (every completion) skip the call: the WHEN clause lets through only
-- writers who are not the tables' owner (nor a member of it: superusers, the engine's SECURITY
-- DEFINER functions), and owners writing a status outside the five. The owner's oid is written into
-- the clause when the extension is created, so the clause needs no catalog query. The call cost
-- every completion a PL/pgSQL call and an SPI query on pg_class; its saving is within this
-- machine's noise (docs/PERFORMANCE.md, "Where a completion's PostgreSQL time goes"), but it is
-- work the engine never needed. The tables' ownership is the installer's for good: a former
-- owner, after REASSIGN OWNED, would still be let through.
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
CREATE FUNCTION df._guard_identity() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_who regrole;
BEGIN
    IF TG_TABLE_NAME = 'vars' THEN
        v_who := NEW.owner;
    ELSE
        v_who := NEW.submitted_by;
    END IF;
    IF v_who IS DISTINCT FROM quote_ident(current_user::text)::regrole
       AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
        RAISE EXCEPTION 'pg_durable: a row of df.% must belong to the current user %, not to %', TG_TABLE_NAME, quote_ident(current_user::text), v_who
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
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
--    about 2.7 kB anyway. NOT VALID: enforced for new rows, as the original's CHECKs are. (A
--    label's size is checked with the other rules of a new instance: df._check_instance_row.)
ALTER TABLE df.vars ADD CONSTRAINT vars_name_size_chk
    CHECK (pg_catalog.octet_length(name) OPERATOR(pg_catalog.<=) 1024) NOT VALID;
ALTER TABLE df.vars ADD CONSTRAINT vars_value_size_chk
    CHECK (pg_catalog.octet_length(value) OPERATOR(pg_catalog.<=) 1048576) NOT VALID;
ALTER TABLE df._signals ADD CONSTRAINT signals_name_size_chk
    CHECK (pg_catalog.octet_length(signal_name) OPERATOR(pg_catalog.<=) 1024) NOT VALID;
ALTER TABLE df._signals ADD CONSTRAINT signals_payload_size_chk
    CHECK (pg_catalog.octet_length(payload) OPERATOR(pg_catalog.<=) 1048576) NOT VALID;
