-- The one durable write path of the worker. It runs on the worker's own connection and, for SQL
-- steps, inside the submitting role's step transaction right after the step's statement, so the
-- statement and its checkpoint commit or roll back together (exactly-once where Postgres allows).
--
-- Fencing: every call must present the instance's current lease token while the lease is live.
-- The row is locked FOR SHARE, so a takeover (UPDATE ... SKIP LOCKED) cannot slip between the
-- check and the commit; a worker that lost its lease gets SQLSTATE PD001 and its step rolls back.
-- The token is a random UUID the user's SQL never sees (it is a bind parameter), so holding
-- EXECUTE on this function gives a role nothing.
--
-- p_events: [{node, stamp, status: running|completed|failed, result?, json?, detail?, final?}], at
-- most one event per (stamp, node) — the worker coalesces. final: the node's last event, of a
-- run no earlier write recorded, whose node row keeps the run (df._runs, src/sql/00_schema.sql);
-- it writes the node row only. p_instance_status: NULL (nodes only), 'running' (the worker sends it with its first
-- write for a pending instance: a claim no longer marks instances running, so a one-step instance
-- is written once, pending -> completed), 'completed', 'failed', 'cancelled' (a compensating
-- cancel, after its undos) or 'continue:<g>' (root loop: close execution g, open g+1; if g+1 is
-- already open, a retry after an ambiguous commit, nothing more happens). p_output: the ending
-- execution's output. output (an event key): in a commit that completes execution 1, the root's
-- event whose result is p_output as jsonb prints it compactly; no execution row is written then,
-- df._execution_log derives it (execution 1 has no row until it ends).
CREATE FUNCTION df._commit(p_instance pg_catalog.text, p_token pg_catalog.uuid, p_events pg_catalog.jsonb,
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
    v_output_kept bool := false;
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
        IF v_ends AND (v_ev ->> 'output')::bool IS TRUE THEN
            v_output_kept := true;
        END IF;
        -- A "final" event has no run row: the node's row below keeps it (df._runs).
        IF (v_ev ->> 'final')::bool IS NOT TRUE THEN
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
        IF NOT (v_exec = 1 AND v_output_kept) THEN
            PERFORM df._close_execution(p_instance, v_exec, 'Completed', p_output, v_who);
        END IF;
    ELSIF p_instance_status = 'failed' THEN
        UPDATE df.instances SET status = 'failed', updated_at = now()
         WHERE id = p_instance AND status IN ('pending', 'running');
        PERFORM df._close_execution(p_instance, v_exec, 'Failed', p_output, v_who);
    ELSIF p_instance_status = 'cancelled' THEN
        -- df.cancel(..., compensate => true): the undos ran; the cancel trigger drops the queue row.
        PERFORM df._close_execution(p_instance, v_exec, 'Failed', p_output, v_who);
        UPDATE df.instances SET status = 'cancelled', updated_at = now()
         WHERE id = p_instance AND status IN ('pending', 'running');
    ELSIF p_instance_status LIKE 'continue:%' THEN
        UPDATE df.instances SET status = 'running', updated_at = now()
         WHERE id = p_instance AND status = 'pending';
        IF v_exec = split_part(p_instance_status, ':', 2)::int4 THEN
            PERFORM df._close_execution(p_instance, v_exec, 'ContinuedAsNew', p_output, v_who);
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
REVOKE EXECUTE ON FUNCTION df._commit(pg_catalog.text, pg_catalog.uuid, pg_catalog.jsonb, pg_catalog.text, pg_catalog.text) FROM PUBLIC;

-- Closes an execution: the row of a later one exists (the continue that opened it wrote it);
-- execution 1 has none until now (df._execution_log), and starts when its instance was created.
CREATE FUNCTION df._close_execution(p_instance pg_catalog.text, p_exec pg_catalog.int4, p_status pg_catalog.text,
                                    p_output pg_catalog.text, p_who pg_catalog.regrole)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    UPDATE df._executions SET status = p_status, completed_at = clock_timestamp(), output = p_output
     WHERE instance_id = p_instance AND execution_id = p_exec;
    IF NOT FOUND AND p_exec = 1 THEN
        INSERT INTO df._executions (instance_id, execution_id, status, started_at, completed_at, output, submitted_by)
        SELECT p_instance, 1, p_status, i.created_at, clock_timestamp(), p_output, p_who
          FROM df.instances i WHERE i.id = p_instance;
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION df._close_execution(pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.text, pg_catalog.regrole) FROM PUBLIC;

-- Consume the oldest buffered signal of a name, atomically with the SIGNAL node's completion.
-- Returns the payload, or NULL when none is waiting. Worker connection only.
CREATE FUNCTION df._take_signal(p_instance pg_catalog.text, p_token pg_catalog.uuid, p_name pg_catalog.text,
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
REVOKE EXECUTE ON FUNCTION df._take_signal(pg_catalog.text, pg_catalog.uuid, pg_catalog.text, pg_catalog.text, pg_catalog.text) FROM PUBLIC;
