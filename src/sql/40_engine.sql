-- Engine hooks. Users write df.instances / df._signals as themselves (RLS applies); these
-- SECURITY DEFINER triggers turn those writes into queue work the user cannot forge, and wake the
-- worker with NOTIFY (delivered only when the user's transaction commits, so a rolled-back start
-- never runs).

-- A new instance: snapshot the submitter's variables (uncommitted setvar calls of the same
-- transaction included), enqueue it, wake a worker. The snapshot is capped at 4 MiB: the worker
-- holds it in memory for every claimed instance. Execution 1 has no row until it ends
-- (df._execution_log, src/sql/00_schema.sql).
CREATE FUNCTION df._on_instance_insert() RETURNS trigger
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
    -- No instance id: any role may LISTEN on any channel, so an id here would show every tenant
    -- every other tenant's instances as they start (the worker only needs to wake: its claim
    -- finds the work). And PostgreSQL delivers identical notifications of one transaction once: a
    -- batch of starts wakes the worker once instead of once per instance.
    PERFORM pg_catalog.pg_notify('pg_durable', 'start');
    RETURN NULL;
END
$$;
CREATE TRIGGER instances_enqueue AFTER INSERT ON df.instances
    FOR EACH ROW EXECUTE FUNCTION df._on_instance_insert();

-- df.cancel sets status = 'cancelled' as the caller: drop the queue row (any in-flight write of
-- the worker then fails its lease check and rolls back), close the execution (execution 1 gets
-- its row here), tell the worker.
CREATE FUNCTION df._on_instance_cancel() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    DELETE FROM df._work WHERE instance_id OPERATOR(pg_catalog.=) NEW.id;
    UPDATE df._executions SET status = 'Failed', completed_at = pg_catalog.now(),
           output = COALESCE(output, 'Cancelled')
     WHERE instance_id OPERATOR(pg_catalog.=) NEW.id AND status OPERATOR(pg_catalog.=) 'Running';
    IF NOT FOUND AND OLD.status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running']::pg_catalog.text[])
       AND NOT EXISTS (SELECT 1 FROM df._executions e WHERE e.instance_id OPERATOR(pg_catalog.=) NEW.id) THEN
        INSERT INTO df._executions (instance_id, execution_id, status, started_at, completed_at, output, submitted_by)
        VALUES (NEW.id, 1, 'Failed', NEW.created_at, pg_catalog.now(), 'Cancelled', NEW.submitted_by);
    END IF;
    -- No instance id, as for a start: the worker asks which of its runs were cancelled.
    PERFORM pg_catalog.pg_notify('pg_durable', 'cancel');
    RETURN NULL;
END
$$;
CREATE TRIGGER instances_cancel AFTER UPDATE OF status ON df.instances
    FOR EACH ROW WHEN (NEW.status = 'cancelled' AND OLD.status IS DISTINCT FROM 'cancelled')
    EXECUTE FUNCTION df._on_instance_cancel();

-- A buffered signal: make the instance due now so a waiting SIGNAL node sees it promptly.
CREATE FUNCTION df._on_signal_insert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    UPDATE df._work SET due_at = pg_catalog.now()
     WHERE instance_id OPERATOR(pg_catalog.=) NEW.instance_id AND due_at OPERATOR(pg_catalog.>) pg_catalog.now();
    -- df.cancel(..., compensate => true) files its request as this reserved signal. No instance
    -- id, as for a start: the worker asks which of its waiting or running instances it concerns.
    PERFORM pg_catalog.pg_notify('pg_durable',
        CASE WHEN NEW.signal_name OPERATOR(pg_catalog.=) 'pg_durable:compensate' THEN 'compensate' ELSE 'signal' END);
    RETURN NULL;
END
$$;
CREATE TRIGGER signals_wake AFTER INSERT ON df._signals
    FOR EACH ROW EXECUTE FUNCTION df._on_signal_insert();

-- Deleted instances (df.prune_executions, an administrator's DELETE) take their node runs, executions
-- and queue row with them: what the foreign keys' ON DELETE CASCADE did, once per statement
-- (these tables have no foreign key, see src/sql/00_schema.sql).
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
