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
    EXECUTE format('GRANT SELECT ON df._executions, df._node_runs TO %I%s', p_role, opt);
    EXECUTE format('GRANT SELECT, INSERT (instance_id, signal_name, payload) ON df._signals TO %I%s', p_role, opt);
    -- Step connections run as the role and checkpoint through the lease-fenced df._commit.
    EXECUTE format('GRANT EXECUTE ON FUNCTION df._commit(text, uuid, jsonb, text, text) TO %I', p_role);
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
                              'df.grant_usage(text, boolean, boolean)', 'df.revoke_usage(text)'] LOOP
        BEGIN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %I CASCADE', fn, p_role);
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END;
    END LOOP;
    EXECUTE format('REVOKE ALL ON df._signals, df._node_runs, df._executions FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE ALL ON df.vars FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE INSERT (id, instance_id, node_type, query, result_name, left_node, right_node, submitted_by, database) ON df.nodes FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE SELECT ON df.nodes FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE INSERT (id, label, root_node, submitted_by, database) ON df.instances FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE UPDATE (status, updated_at) ON df.instances FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE SELECT ON df.instances FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE USAGE ON SCHEMA df FROM %I CASCADE', p_role);
    RAISE NOTICE 'pg_durable: revoked df usage privileges granted by "%" from "%"', current_user, p_role;
END
$$;

REVOKE EXECUTE ON FUNCTION df.grant_usage(pg_catalog.text, pg_catalog.bool, pg_catalog.bool) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION df.revoke_usage(pg_catalog.text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION df.http(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.int4) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION df.http_multipart(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.jsonb, pg_catalog.int4) FROM PUBLIC;
