-- Independent starts: df.start(..., transaction_mode => 'new') (API §6.1, "new mode"). The start
-- runs in a loopback session opened with dblink, as the calling role, and commits there, so the
-- instance survives the caller's ROLLBACK. Threat model: docs/SECURITY.md, "Independent starts".
--
-- Who the loopback connects as is never an argument. df.start (SECURITY INVOKER) inserts a launch
-- ticket; the BEFORE INSERT trigger below runs as the inserting role and stamps the ticket with
-- its current_user, whatever the row said. df._start_new (SECURITY DEFINER, because only a
-- superuser may open a dblink session that authenticates without a password) consumes a ticket
-- written by the current transaction and connects as the role stamped on it. A caller can only
-- ever obtain tickets for its own current_user: the effective role after SET ROLE, or a SECURITY
-- DEFINER function's owner, as in caller mode.

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
