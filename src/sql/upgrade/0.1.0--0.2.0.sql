-- Schema changes from 0.1.0 (the first release) to 0.2.0. The generated upgrade script appends
-- CREATE OR REPLACE of the loader and of every plv8 function, so only changes to src/sql objects
-- (tables, types, operators, SQL/plpgsql functions, grants) belong here. The upgrade test fails
-- if "install 0.1.0 + ALTER EXTENSION UPDATE" differs from a fresh 0.2.0 install.

-- Multi-tenant hardening (docs/SECURITY.md). Function bodies are copied verbatim from src/sql so the
-- catalog matches a fresh install.
ALTER TABLE df._worker_epoch ENABLE ROW LEVEL SECURITY;

CREATE OR REPLACE FUNCTION df._on_instance_insert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_vars pg_catalog.jsonb;
BEGIN
    SELECT COALESCE(pg_catalog.jsonb_object_agg(v.name, v.value), '{}'::pg_catalog.jsonb) INTO v_vars
      FROM df.vars v
     WHERE v.owner OPERATOR(pg_catalog.=) NEW.submitted_by AND v.value IS NOT NULL;
    IF pg_catalog.octet_length(v_vars::pg_catalog.text) OPERATOR(pg_catalog.>) 4194304 THEN
        RAISE EXCEPTION 'pg_durable: the variables of role % total % bytes; df.start captures at most 4194304 bytes of variables (remove some with df.unsetvar or df.clearvars)',
            NEW.submitted_by, pg_catalog.octet_length(v_vars::pg_catalog.text)
            USING ERRCODE = '54000';
    END IF;
    INSERT INTO df._work (instance_id, vars, submitted_by) VALUES (NEW.id, v_vars, NEW.submitted_by);
    INSERT INTO df._executions (instance_id, execution_id, submitted_by)
    VALUES (NEW.id, 1, NEW.submitted_by);
    PERFORM pg_catalog.pg_notify('pg_durable', 'start:' OPERATOR(pg_catalog.||) NEW.id);
    RETURN NULL;
END
$$;

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

CREATE OR REPLACE FUNCTION df.grant_usage(p_role pg_catalog.text, include_http pg_catalog.bool DEFAULT false, with_grant pg_catalog.bool DEFAULT false)
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
    EXECUTE format('GRANT SELECT ON df._executions, df._node_runs, df._runs TO %I%s', p_role, opt);
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

CREATE OR REPLACE FUNCTION df.revoke_usage(p_role pg_catalog.text)
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
    EXECUTE format('REVOKE ALL ON df._signals, df._node_runs, df._runs, df._executions FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE INSERT (nonce) ON df._launch_tickets FROM %I CASCADE', p_role);
    EXECUTE format('REVOKE USAGE ON SCHEMA df FROM %I CASCADE', p_role);
    RAISE NOTICE 'pg_durable: revoked df usage privileges granted by "%" from "%"', current_user, p_role;
END
$$;

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
CREATE OR REPLACE FUNCTION df._commit(p_instance pg_catalog.text, p_token pg_catalog.uuid, p_events pg_catalog.jsonb,
                           p_instance_status pg_catalog.text DEFAULT NULL, p_output pg_catalog.text DEFAULT NULL)
    RETURNS pg_catalog.int4
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_exec int4;
    v_who regrole;
    v_ev jsonb;
    v_node text;
    v_stamp text;
    v_status text;
    v_result text;
    v_detail jsonb;
    v_ends bool := COALESCE(p_instance_status IN ('completed', 'failed', 'cancelled'), false);
BEGIN
    IF p_instance_status IN ('completed', 'failed') THEN
        -- The run ends: checking the lease and dropping the queue row is one statement (the
        -- DELETE locks the row as FOR SHARE would, until this transaction ends).
        DELETE FROM df._work w
         WHERE w.instance_id = p_instance AND w.lease_token = p_token AND w.lease_until > clock_timestamp()
        RETURNING w.execution_id, w.submitted_by INTO v_exec, v_who;
    ELSE
        SELECT w.execution_id, w.submitted_by INTO v_exec, v_who FROM df._work w
         WHERE w.instance_id = p_instance AND w.lease_token = p_token AND w.lease_until > clock_timestamp()
           FOR SHARE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_durable: lease lost for instance % (cancelled, finished or taken over by another worker)', p_instance
            USING ERRCODE = 'PD001';
    END IF;

    -- One event at a time, as plain statements on scalars: a commit carries one to three events
    -- (a step, its parents' transitions; 2.2 on average in a 10-step chain), and the two statements
    -- joined to jsonb_to_recordset cost a one-event completion 8 % more backend CPU, the same at
    -- five events (docs/PERFORMANCE.md). In order, so the node row shows a node's last event.
    FOR i IN 0 .. COALESCE(jsonb_array_length(p_events), 0) - 1 LOOP
        v_ev := p_events -> i;
        v_node := v_ev ->> 'node';
        v_stamp := v_ev ->> 'stamp';
        v_status := v_ev ->> 'status';
        v_result := v_ev ->> 'result';
        v_detail := v_ev -> 'detail';
        IF jsonb_typeof(v_detail) = 'null' THEN
            v_detail := NULL;
        END IF;
        -- A "final" event of a commit that ends the instance has no run row: the node's row below
        -- keeps it (df._runs, src/sql/00_schema.sql).
        IF NOT (v_ends AND v_status <> 'running' AND (v_ev ->> 'final')::bool IS TRUE) THEN
            INSERT INTO df._node_runs AS r (instance_id, stamp, node_id, execution_id, status, result, detail, finished_at, submitted_by)
            VALUES (p_instance, v_stamp, v_node, v_exec, v_status, v_result, v_detail,
                    CASE WHEN v_status <> 'running' THEN clock_timestamp() END, v_who)
            ON CONFLICT (instance_id, stamp, node_id) DO UPDATE
               SET status = EXCLUDED.status, result = EXCLUDED.result,
                   detail = COALESCE(r.detail, '{}'::jsonb) || COALESCE(EXCLUDED.detail, '{}'::jsonb),
                   finished_at = EXCLUDED.finished_at
             -- A late 'running' stamp (written concurrently with a slow step) never undoes its outcome.
             WHERE NOT (EXCLUDED.status = 'running' AND r.status <> 'running');
        END IF;

        UPDATE df.nodes n
           SET status = v_status,
               result = CASE WHEN v_status = 'running' THEN NULL
                             WHEN (v_ev ->> 'json')::bool THEN v_result::jsonb
                             ELSE to_jsonb(v_result) END,
               status_details = jsonb_build_object('execution_id', v_stamp)
                                || COALESCE(v_detail - 'wake_at' - 'race_winner', '{}'::jsonb),
               updated_at = clock_timestamp()
         WHERE n.instance_id = p_instance AND n.id = v_node
           AND NOT (v_status = 'running' AND n.status IN ('completed', 'failed')
                    AND n.status_details ->> 'execution_id' = v_stamp);
    END LOOP;

    IF p_instance_status = 'running' THEN
        UPDATE df.instances SET status = 'running', updated_at = now()
         WHERE id = p_instance AND status = 'pending';
    ELSIF p_instance_status = 'completed' THEN
        UPDATE df.instances SET status = 'completed', updated_at = now(), completed_at = now()
         WHERE id = p_instance AND status IN ('pending', 'running');
        UPDATE df._executions SET status = 'Completed', completed_at = clock_timestamp(), output = p_output
         WHERE instance_id = p_instance AND execution_id = v_exec;
    ELSIF p_instance_status = 'failed' THEN
        UPDATE df.instances SET status = 'failed', updated_at = now()
         WHERE id = p_instance AND status IN ('pending', 'running');
        UPDATE df._executions SET status = 'Failed', completed_at = clock_timestamp(), output = p_output
         WHERE instance_id = p_instance AND execution_id = v_exec;
    ELSIF p_instance_status = 'cancelled' THEN
        -- df.cancel(..., compensate => true): the undos ran; the cancel trigger drops the queue row.
        UPDATE df._executions SET status = 'Failed', completed_at = clock_timestamp(), output = p_output
         WHERE instance_id = p_instance AND execution_id = v_exec;
        UPDATE df.instances SET status = 'cancelled', updated_at = now()
         WHERE id = p_instance AND status IN ('pending', 'running');
    ELSIF p_instance_status LIKE 'continue:%' THEN
        UPDATE df.instances SET status = 'running', updated_at = now()
         WHERE id = p_instance AND status = 'pending';
        IF v_exec = split_part(p_instance_status, ':', 2)::int4 THEN
            UPDATE df._executions SET status = 'ContinuedAsNew', completed_at = clock_timestamp(), output = p_output
             WHERE instance_id = p_instance AND execution_id = v_exec;
            v_exec := v_exec + 1;
            INSERT INTO df._executions (instance_id, execution_id, submitted_by) VALUES (p_instance, v_exec, v_who);
            UPDATE df._work SET execution_id = v_exec WHERE instance_id = p_instance;
        ELSIF v_exec <> split_part(p_instance_status, ':', 2)::int4 + 1 THEN
            RAISE EXCEPTION 'pg_durable: instance % is at execution %, cannot continue execution %',
                p_instance, v_exec, split_part(p_instance_status, ':', 2);
        END IF;
    ELSIF p_instance_status IS NOT NULL THEN
        RAISE EXCEPTION 'pg_durable: unknown instance transition %', p_instance_status;
    END IF;
    RETURN v_exec;
END
$$;

-- df._take_signal: idempotent, returns the SIGNAL node's result.
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
    -- Idempotent: a call retried after an ambiguous commit gets the node's recorded result back
    -- instead of consuming a second signal.
    SELECT r.result INTO v_result FROM df._node_runs r
     WHERE r.instance_id = p_instance AND r.stamp = p_stamp AND r.node_id = p_node AND r.status = 'completed';
    IF FOUND THEN
        RETURN v_result;
    END IF;
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
    RETURN v_result;
END
$$;

-- Session facts (src/sql/55_session.sql): administrators' settings (API deviation 15) and
-- uncommitted starts and signals (deviation 14).
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

-- Independent starts (src/sql/57_new_start.sql).
CREATE TABLE df._launch_tickets (
    nonce pg_catalog.uuid PRIMARY KEY,
    role pg_catalog.regrole NOT NULL,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
ALTER TABLE df._launch_tickets ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION df._launch_ticket_stamp() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    -- SECURITY INVOKER: CURRENT_USER is the role whose statement inserts the ticket.
    NEW.role := pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole;
    NEW.created_at := pg_catalog.now();
    RETURN NEW;
END
$$;

CREATE TRIGGER launch_ticket_stamp BEFORE INSERT ON df._launch_tickets
    FOR EACH ROW EXECUTE FUNCTION df._launch_ticket_stamp();
-- Tenants may insert (df.grant_usage grants INSERT (nonce)) but never read: RLS shows no rows.
CREATE POLICY launch_tickets_insert ON df._launch_tickets FOR INSERT WITH CHECK (true);

-- A libpq connection-string value, quoted.
CREATE FUNCTION df._conninfo_value(p pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$
SELECT '''' OPERATOR(pg_catalog.||) pg_catalog.replace(pg_catalog.replace(p, E'\\', E'\\\\'), '''', E'\\''') OPERATOR(pg_catalog.||) ''''
$$;

CREATE FUNCTION df._start_new(p_nonce pg_catalog.uuid, p_fut pg_catalog.text, p_label pg_catalog.text, p_database pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_role pg_catalog.oid;
    v_name pg_catalog.text;
    v_dblink pg_catalog.text;
    v_base pg_catalog.text;
    v_conn pg_catalog.text := 'pg_durable_new_' OPERATOR(pg_catalog.||) pg_catalog.pg_backend_pid() OPERATOR(pg_catalog.||) '_'
                              OPERATOR(pg_catalog.||) pg_catalog.md5(pg_catalog.random()::pg_catalog.text);
    v_id pg_catalog.text;
    v_msg pg_catalog.text;
    v_detail pg_catalog.text;
    v_state pg_catalog.text;
BEGIN
    DELETE FROM df._launch_tickets t
     WHERE t.nonce OPERATOR(pg_catalog.=) p_nonce AND df._written_by_current_transaction(t.xmin)
    RETURNING t.role::pg_catalog.oid INTO v_role;
    SELECT r.rolname INTO v_name FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) v_role;
    IF v_name IS NULL THEN
        RAISE EXCEPTION 'pg_durable: no launch ticket % in this transaction: df._start_new() is internal, call df.start(..., transaction_mode => ''new'')', p_nonce
            USING ERRCODE = '42501';
    END IF;

    SELECT n.nspname INTO v_dblink
      FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
     WHERE e.extname OPERATOR(pg_catalog.=) 'dblink';
    IF v_dblink IS NULL THEN
        RAISE EXCEPTION 'df.start(..., transaction_mode => ''new'') needs the dblink extension in database "%"', pg_catalog.current_database()
            USING ERRCODE = '55000',
                  HINT = 'A superuser runs CREATE EXTENSION dblink in this database (dblink ships with PostgreSQL, in the contrib package of your distribution).';
    END IF;

    -- How the loopback authenticates is the administrator's choice: pg_durable.new_transaction_connstr
    -- (a libpq connection string; dbname, user and application_name are ours), else this server's
    -- first Unix socket, where trust or peer authentication applies as for the worker's steps.
    v_base := COALESCE(df._admin_setting('pg_durable.new_transaction_connstr'),
        CASE WHEN pg_catalog.current_setting('unix_socket_directories') OPERATOR(pg_catalog.=) '' THEN 'host=localhost'
             ELSE 'host=' OPERATOR(pg_catalog.||) df._conninfo_value(pg_catalog.btrim(pg_catalog.split_part(pg_catalog.current_setting('unix_socket_directories'), ',', 1)))
        END OPERATOR(pg_catalog.||) ' port=' OPERATOR(pg_catalog.||) pg_catalog.current_setting('port'));
    BEGIN
        EXECUTE pg_catalog.format('SELECT %I.dblink_connect_u($1, $2)', v_dblink) USING v_conn,
            v_base OPERATOR(pg_catalog.||) ' dbname=' OPERATOR(pg_catalog.||) df._conninfo_value(df.target_database())
                   OPERATOR(pg_catalog.||) ' user=' OPERATOR(pg_catalog.||) df._conninfo_value(v_name)
                   OPERATOR(pg_catalog.||) ' application_name=''pg_durable:backend:new-transaction''';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
        RAISE EXCEPTION 'df.start(..., transaction_mode => ''new''): could not open the loopback session as role "%": %', v_name,
                pg_catalog.btrim(COALESCE(NULLIF(v_detail, ''), v_msg))
            USING ERRCODE = '08001',
                  HINT = 'The loopback connects back to this server as the calling role, without a password by default: allow that in pg_hba.conf (local ... trust or peer), or have an administrator set pg_durable.new_transaction_connstr to a connection string that authenticates the role (for example with client certificates).';
    END;

    BEGIN
        EXECUTE pg_catalog.format('SELECT %I.dblink_exec($1, $2)', v_dblink) USING v_conn,
            'SET df.in_workflow = ''false''; SET lock_timeout = 30000; SET statement_timeout = 30000';
        EXECUTE pg_catalog.format('SELECT t.id FROM %I.dblink($1, $2) AS t(id pg_catalog.text)', v_dblink) INTO v_id USING v_conn,
            pg_catalog.format('SELECT df.start(%L, %L, %L)', p_fut, p_label, p_database);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        BEGIN
            EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect($1)', v_dblink) USING v_conn;
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
        IF v_state OPERATOR(pg_catalog.=) '55P03' THEN
            RAISE EXCEPTION 'pg_durable: transaction_mode => ''new'' launch hit lock_timeout after 30000ms while waiting on a lock in the loopback session: %', v_msg
                USING ERRCODE = v_state;
        ELSIF v_state OPERATOR(pg_catalog.=) '57014' AND v_msg OPERATOR(pg_catalog.~~) '%statement timeout%' THEN
            RAISE EXCEPTION 'pg_durable: transaction_mode => ''new'' launch hit statement_timeout after 30000ms while running df.start() in the loopback session: %', v_msg
                USING ERRCODE = v_state;
        ELSIF v_state OPERATOR(pg_catalog.=) '57014' THEN
            RAISE EXCEPTION '%', v_msg USING ERRCODE = v_state; -- our own statement was cancelled
        END IF;
        RAISE EXCEPTION 'df.start() on new transaction failed: %', v_msg USING ERRCODE = v_state;
    END;
    EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect($1)', v_dblink) USING v_conn;
    RETURN v_id;
END
$$;
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
CREATE OR REPLACE FUNCTION df._on_signal_insert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    UPDATE df._work SET due_at = pg_catalog.now()
     WHERE instance_id OPERATOR(pg_catalog.=) NEW.instance_id AND due_at OPERATOR(pg_catalog.>) pg_catalog.now();
    -- df.cancel(..., compensate => true) files its request as this reserved signal.
    PERFORM pg_catalog.pg_notify('pg_durable',
        CASE WHEN NEW.signal_name OPERATOR(pg_catalog.=) 'pg_durable:compensate' THEN 'compensate:' ELSE 'signal:' END
        OPERATOR(pg_catalog.||) NEW.instance_id);
    RETURN NULL;
END
$$;
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
CREATE FUNCTION df._on_instances_deleted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    DELETE FROM df._node_runs r USING gone g WHERE r.instance_id OPERATOR(pg_catalog.=) g.id;
    DELETE FROM df._executions e USING gone g WHERE e.instance_id OPERATOR(pg_catalog.=) g.id;
    DELETE FROM df._work w USING gone g WHERE w.instance_id OPERATOR(pg_catalog.=) g.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER instances_delete_runs AFTER DELETE ON df.instances
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION df._on_instances_deleted();

-- CHECK constraints leave df.instances, df.nodes, df._node_runs and df._executions: the rows'
-- rules are checked when they are inserted, under the same names (src/sql/00_schema.sql); the
-- node rules also know the node types added since 0.1.0 (RETRY, TIMEOUT, UNDO).
CREATE FUNCTION df._check_node_row() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_rule pg_catalog.text;
BEGIN
    IF NOT (NEW.id OPERATOR(pg_catalog.~) '^[0-9a-f]{8}$') THEN
        v_rule := 'nodes_id_format_chk';
    ELSIF NOT (NEW.instance_id OPERATOR(pg_catalog.~) '^[0-9a-f]{8}$') THEN
        v_rule := 'nodes_instance_id_format_chk';
    ELSIF NOT (NEW.left_node IS NULL OR NEW.left_node OPERATOR(pg_catalog.~) '^[0-9a-f]{8}$') THEN
        v_rule := 'nodes_left_node_format_chk';
    ELSIF NOT (NEW.node_type OPERATOR(pg_catalog.=) ANY (ARRAY['SQL','THEN','IF','JOIN','LOOP','BREAK','RACE','SLEEP','WAIT_SCHEDULE','HTTP','HTTP_MULTIPART','SIGNAL','RETRY','TIMEOUT','UNDO']::pg_catalog.text[])) THEN
        v_rule := 'nodes_node_type_chk';
    ELSIF NOT (NEW.result_name IS NULL OR NEW.result_name OPERATOR(pg_catalog.~) '^[A-Za-z_][A-Za-z0-9_]*$') THEN
        v_rule := 'nodes_result_name_chk';
    ELSIF NOT (NEW.right_node IS NULL OR NEW.right_node OPERATOR(pg_catalog.~) '^[0-9a-f]{8}$') THEN
        v_rule := 'nodes_right_node_format_chk';
    ELSIF NOT (CASE
        WHEN NEW.node_type OPERATOR(pg_catalog.=) ANY (ARRAY['SQL','SLEEP','WAIT_SCHEDULE','BREAK','HTTP','HTTP_MULTIPART','SIGNAL']::pg_catalog.text[])
            THEN NEW.left_node IS NULL AND NEW.right_node IS NULL AND NEW.query IS NOT NULL
        WHEN NEW.node_type OPERATOR(pg_catalog.=) ANY (ARRAY['THEN','UNDO']::pg_catalog.text[]) THEN NEW.left_node IS NOT NULL AND NEW.right_node IS NOT NULL AND NEW.query IS NULL
        WHEN NEW.node_type OPERATOR(pg_catalog.=) 'IF' THEN NEW.left_node IS NOT NULL AND NEW.right_node IS NOT NULL AND NEW.query IS NOT NULL
        WHEN NEW.node_type OPERATOR(pg_catalog.=) 'LOOP' THEN NEW.left_node IS NOT NULL AND NEW.right_node IS NULL
        WHEN NEW.node_type OPERATOR(pg_catalog.=) 'JOIN' THEN NEW.left_node IS NOT NULL AND NEW.right_node IS NOT NULL
        WHEN NEW.node_type OPERATOR(pg_catalog.=) 'RACE' THEN NEW.left_node IS NOT NULL AND NEW.right_node IS NOT NULL AND NEW.query IS NULL
        WHEN NEW.node_type OPERATOR(pg_catalog.=) ANY (ARRAY['RETRY','TIMEOUT']::pg_catalog.text[]) THEN NEW.left_node IS NOT NULL AND NEW.right_node IS NULL AND NEW.query IS NOT NULL
        ELSE false END) THEN
        v_rule := 'nodes_structure_chk';
    ELSIF NEW.submitted_by IS NULL THEN
        v_rule := 'nodes_submitted_by_present_chk';
    ELSE
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'new row for relation "nodes" violates check constraint "%"', v_rule
        USING ERRCODE = '23514', CONSTRAINT = v_rule, SCHEMA = 'df', TABLE = 'nodes';
END
$$;
ALTER TABLE df.nodes DROP CONSTRAINT nodes_id_format_chk, DROP CONSTRAINT nodes_instance_id_format_chk,
    DROP CONSTRAINT nodes_left_node_format_chk, DROP CONSTRAINT nodes_right_node_format_chk,
    DROP CONSTRAINT nodes_node_type_chk, DROP CONSTRAINT nodes_result_name_chk, DROP CONSTRAINT nodes_structure_chk,
    DROP CONSTRAINT nodes_submitted_by_present_chk, DROP CONSTRAINT nodes_status_chk, DROP CONSTRAINT nodes_result_status_chk;
CREATE TRIGGER nodes_row_check BEFORE INSERT ON df.nodes
    FOR EACH ROW EXECUTE FUNCTION df._check_node_row();
CREATE FUNCTION df._check_instance_row() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_rule pg_catalog.text;
BEGIN
    IF NOT (NEW.id OPERATOR(pg_catalog.~) '^[0-9a-f]{8}$') THEN
        v_rule := 'instances_id_format_chk';
    ELSIF NOT (pg_catalog.octet_length(NEW.label) OPERATOR(pg_catalog.<=) 1024) THEN
        v_rule := 'instances_label_size_chk';
    ELSIF NOT (NEW.root_node OPERATOR(pg_catalog.~) '^[0-9a-f]{8}$') THEN
        v_rule := 'instances_root_node_format_chk';
    ELSIF NOT (NEW.status OPERATOR(pg_catalog.=) ANY (ARRAY['pending','running','completed','failed','cancelled']::pg_catalog.text[])) THEN
        v_rule := 'instances_status_chk';
    ELSE
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'new row for relation "instances" violates check constraint "%"', v_rule
        USING ERRCODE = '23514', CONSTRAINT = v_rule, SCHEMA = 'df', TABLE = 'instances';
END
$$;
CREATE TRIGGER instances_row_check BEFORE INSERT ON df.instances
    FOR EACH ROW EXECUTE FUNCTION df._check_instance_row();
ALTER TABLE df.instances DROP CONSTRAINT instances_id_format_chk, DROP CONSTRAINT instances_root_node_format_chk,
    DROP CONSTRAINT instances_status_chk;
ALTER TABLE df._node_runs DROP CONSTRAINT node_runs_status_chk;
ALTER TABLE df._executions DROP CONSTRAINT executions_status_chk;

-- One call resets a step connection (src/sql/55_session.sql).
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

-- The run log as readers see it: df._node_runs, plus the runs only a node row holds. A commit
-- that ends its instance (completed, failed, cancelled) writes no node run for an event marked
-- "final" (the node's last event of the commit, of a run the worker never wrote before): the
-- node's row, updated by the same commit and never written again once the instance has ended,
-- is that run. It spares a one-step instance one of its completion's five writes and a quarter
-- of its bytes (docs/PERFORMANCE.md, "Runs kept by node rows"). Such a run's result is the node
-- row's JSON text (what df._jsonb_text shows for either form), its detail the node's
-- status_details without the stamp, its finish the node's updated_at and its start the instance's
-- updated_at: now() of that commit's transaction, as a run row's default was. Security invoker:
-- each reader's row-level security on the tables decides what it sees.
CREATE VIEW df._runs WITH (security_invoker = true) AS
SELECT r.instance_id, r.stamp, r.node_id, r.execution_id, r.status, r.result, r.detail,
       r.started_at, r.finished_at, r.submitted_by
  FROM df._node_runs r
UNION ALL
SELECT n.instance_id, n.status_details OPERATOR(pg_catalog.->>) 'execution_id', n.id,
       pg_catalog.split_part(n.status_details OPERATOR(pg_catalog.->>) 'execution_id', '::', 2)::pg_catalog.int4,
       n.status, n.result::pg_catalog.text,
       CASE WHEN n.status_details OPERATOR(pg_catalog.-) 'execution_id'::pg_catalog.text OPERATOR(pg_catalog.<>) '{}'::pg_catalog.jsonb
            THEN n.status_details OPERATOR(pg_catalog.-) 'execution_id'::pg_catalog.text END,
       LEAST(i.updated_at, n.updated_at), n.updated_at, n.submitted_by
  FROM df.nodes n
  JOIN df.instances i ON i.id OPERATOR(pg_catalog.=) n.instance_id
 WHERE n.status OPERATOR(pg_catalog.=) ANY (ARRAY['completed', 'failed']::pg_catalog.text[])
   AND n.status_details OPERATOR(pg_catalog.?) 'execution_id'
   AND NOT EXISTS (SELECT 1 FROM df._node_runs x
                    WHERE x.instance_id OPERATOR(pg_catalog.=) n.instance_id
                      AND x.stamp OPERATOR(pg_catalog.=) (n.status_details OPERATOR(pg_catalog.->>) 'execution_id')
                      AND x.node_id OPERATOR(pg_catalog.=) n.id);
REVOKE ALL ON df._runs FROM PUBLIC;

-- The event counts read df._runs (src/sql/60_monitoring.sql).
CREATE OR REPLACE FUNCTION df.metrics()
    RETURNS TABLE (total_instances pg_catalog.int8, running_instances pg_catalog.int8, completed_instances pg_catalog.int8,
                   failed_instances pg_catalog.int8, total_executions pg_catalog.int8, total_events pg_catalog.int8)
    LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
SELECT i.total, i.running, i.completed, i.failed, e.total, r.events
  FROM (SELECT pg_catalog.count(*) AS total,
               pg_catalog.count(*) FILTER (WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['pending','running']::pg_catalog.text[])) AS running,
               pg_catalog.count(*) FILTER (WHERE status OPERATOR(pg_catalog.=) 'completed') AS completed,
               pg_catalog.count(*) FILTER (WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['failed','cancelled']::pg_catalog.text[])) AS failed
          FROM df.instances) i,
       (SELECT pg_catalog.count(*) AS total FROM df._executions) e,
       (SELECT pg_catalog.count(*) OPERATOR(pg_catalog.+) pg_catalog.count(finished_at) AS events FROM df._runs) r
$$;

CREATE OR REPLACE FUNCTION df._prune_executions(p_instances pg_catalog.text[], p_before pg_catalog.timestamptz,
                                     OUT instances_processed pg_catalog.int8, OUT executions_deleted pg_catalog.int8,
                                     OUT events_deleted pg_catalog.int8)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_super bool := COALESCE((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = session_user), false);
    v_inst record;
    v_current int4;
    v_execs int8;
    v_events int8;
BEGIN
    instances_processed := 0;
    executions_deleted := 0;
    events_deleted := 0;
    IF p_instances IS NULL OR p_before IS NULL THEN
        RETURN;
    END IF;
    FOR v_inst IN
        SELECT i.id, i.status, i.submitted_by, COALESCE(i.completed_at, i.updated_at) AS last_active
          FROM df.instances i
         WHERE i.id = ANY (p_instances)
         ORDER BY i.id
    LOOP
        IF NOT (v_super OR pg_has_role(session_user, v_inst.submitted_by::oid, 'MEMBER')) THEN
            RAISE EXCEPTION 'df.prune_executions: permission denied for instance %', v_inst.id
                USING ERRCODE = '42501';
        END IF;
        instances_processed := instances_processed + 1;
        IF v_inst.status IN ('completed', 'failed', 'cancelled') AND v_inst.last_active < p_before THEN
            SELECT count(*) INTO v_execs FROM df._executions e WHERE e.instance_id = v_inst.id;
            SELECT count(*) + count(r.finished_at) INTO v_events FROM df._runs r WHERE r.instance_id = v_inst.id;
            DELETE FROM df.instances WHERE id = v_inst.id;
        ELSE
            SELECT max(e.execution_id) INTO v_current FROM df._executions e WHERE e.instance_id = v_inst.id;
            WITH gone AS (
                DELETE FROM df._executions e
                 WHERE e.instance_id = v_inst.id
                   AND e.execution_id < v_current
                   AND e.status <> 'Running'
                   AND e.completed_at < p_before
                RETURNING e.execution_id
            ), runs AS (
                DELETE FROM df._node_runs r
                 USING gone
                 WHERE r.instance_id = v_inst.id AND r.execution_id = gone.execution_id
                RETURNING r.finished_at
            )
            SELECT (SELECT count(*) FROM gone), (SELECT count(*) + count(runs.finished_at) FROM runs)
              INTO v_execs, v_events;
        END IF;
        executions_deleted := executions_deleted + v_execs;
        events_deleted := events_deleted + v_events;
    END LOOP;
END
$$;

-- Roles that may read df._node_runs (df.grant_usage under 0.1.0) may read df._runs, with the grant
-- option where they hold it on df._node_runs.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT a.grantee::regrole::text AS role, bool_or(a.is_grantable) AS grantable
               FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
              WHERE c.oid = 'df._node_runs'::pg_catalog.regclass AND a.privilege_type = 'SELECT'
                AND a.grantee <> 0 AND a.grantee <> c.relowner
              GROUP BY a.grantee LOOP
        EXECUTE format('GRANT SELECT ON df._runs TO %s%s', r.role, CASE WHEN r.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;
