-- Monitoring and maintenance helpers written in SQL (API §10.7, §10.9, deviation 11). The
-- df.list_instances / instance_* / explain / prune_executions / version entry points are plv8
-- functions (build/manifest.ts); they read as the caller, and these are the pieces that cannot.

-- Engine-wide counts across all users, so it bypasses RLS as its owner (the extension owner).
-- Every instance is counted once: running_instances = not yet ended (pending or running);
-- failed_instances includes cancelled ones (the engine's vocabulary has no "cancelled": a
-- cancelled instance's execution reads Failed). total_events counts node transitions as
-- df.instance_executions.event_count does: one per run started, one per run finished.
CREATE FUNCTION df.metrics()
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
       (SELECT pg_catalog.count(*) AS total FROM df._execution_log) e,
       (SELECT pg_catalog.count(*) OPERATOR(pg_catalog.+) pg_catalog.count(finished_at) AS events FROM df._runs) r
$$;
REVOKE EXECUTE ON FUNCTION df.metrics() FROM PUBLIC;

-- The database the worker serves. §2 declares it IMMUTABLE PARALLEL SAFE, but it reads a setting
-- that ALTER DATABASE / ALTER SYSTEM can change, so an IMMUTABLE declaration would let the planner
-- fold a stale value into cached plans and indexes: it is STABLE. Unset: the current database.
CREATE FUNCTION df.target_database() RETURNS pg_catalog.text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$
SELECT COALESCE(NULLIF(pg_catalog.current_setting('pg_durable.database', true), ''), pg_catalog.current_database())
$$;

-- A run's raw result text as jsonb text: the JSON itself when it parses, else a JSON string
-- (how df.nodes stores results). Used by the legacy df.instance_nodes(id, n).
CREATE FUNCTION df._jsonb_text(p pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RETURN p::pg_catalog.jsonb::pg_catalog.text;
EXCEPTION WHEN data_exception THEN
    RETURN pg_catalog.to_jsonb(p)::pg_catalog.text;
END
$$;

-- The deleting half of df.prune_executions (deviation 11). Tenants cannot DELETE engine rows, so
-- this runs as its owner. current_user is then the owner, so ownership is re-checked against
-- session_user: it must be a member of the instance's submitting role, or a superuser (the plv8
-- wrapper only passes ids the caller can see; a workflow step's session_user is the submitter).
-- Per instance:
--  * ended (completed/failed/cancelled) and last active (completed_at, else updated_at) before the
--    cut-off: the whole instance goes (nodes, runs, executions, signals cascade from df.instances);
--  * otherwise: finished executions (status <> 'Running') completed before the cut-off, except the
--    current (highest) execution, go with their df._node_runs rows.
-- events_deleted counts node transitions (runs started + runs finished), like event_count.
CREATE FUNCTION df._prune_executions(p_instances pg_catalog.text[], p_before pg_catalog.timestamptz,
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
            SELECT count(*) INTO v_execs FROM df._execution_log e WHERE e.instance_id = v_inst.id;
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
