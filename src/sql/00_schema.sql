-- Schema df: the tables users see (API §12) and the engine's own tables (underscore prefix).
-- Every name is schema-qualified and every operator in a default or CHECK is qualified, so a
-- hostile search_path at CREATE EXTENSION time cannot redirect anything.

CREATE SCHEMA df;

CREATE TABLE df.instances (
    id            pg_catalog.varchar(8) PRIMARY KEY,
    label         pg_catalog.text,
    root_node     pg_catalog.varchar(8) NOT NULL,
    status        pg_catalog.text DEFAULT 'pending',
    submitted_by  pg_catalog.regrole NOT NULL,
    database      pg_catalog.text,
    created_at    pg_catalog.timestamptz DEFAULT pg_catalog.now(),
    updated_at    pg_catalog.timestamptz DEFAULT pg_catalog.now(),
    completed_at  pg_catalog.timestamptz,
    CONSTRAINT instances_identity_key UNIQUE (id, submitted_by)
) WITH (fillfactor = 85);
-- No index contains status, and pages keep 15 % free: an instance's transitions (pending ->
-- running -> completed) are HOT updates, so a completion writes no index entry. With the
-- (status, created_at, id) index of API §12.1 every completion was a non-HOT update inserting
-- into four indexes (0.32 ms of df._commit's 0.94 ms on real plv8); HOT, 0.11 ms. Fillfactor 85
-- made 3 000 of 3 000 completions HOT (100: 2 568) for 3 % more heap (docs/PERFORMANCE.md). The
-- cost: listing by a rare status walks idx_instances_created_at (8.7 ms instead of 1.4 ms for
-- 50 of 100 000 instances).
--
-- No CHECK constraints on df.instances and df.nodes: PostgreSQL re-reads, re-plans and evaluates
-- every CHECK of a table at every UPDATE, even of columns the CHECK does not read, and the engine
-- updates these rows at every step (all CHECKs of the hot tables: 0.11 ms of df._commit's 0.54,
-- docs/PERFORMANCE.md). Their rules hold where rows come from: a row is checked when it is
-- inserted (df._check_instance_row, df._check_node_row), under the original's constraint names
-- and SQLSTATE 23514, and the only UPDATEs a tenant may make are of an instance's status, which
-- df._guard_instance_status checks (src/sql/50_security.sql).

-- The rules of a new instance row (API §12.1's instances_id_format_chk, instances_label_size_chk,
-- instances_root_node_format_chk, instances_status_chk), checked when it is inserted, in that
-- order (by name), under their names and SQLSTATE 23514; NULL passes, as in a CHECK. A status
-- changed later is checked by df._guard_instance_status.
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
CREATE INDEX idx_instances_created_at ON df.instances (created_at DESC, id);
CREATE INDEX idx_instances_label ON df.instances (label, created_at DESC, id) WHERE label IS NOT NULL;

-- The rules of a new node row (API §12.2's nodes_id_format_chk, nodes_instance_id_format_chk,
-- nodes_left_node_format_chk, nodes_node_type_chk, nodes_result_name_chk,
-- nodes_right_node_format_chk, nodes_structure_chk and nodes_submitted_by_present_chk), checked
-- when a row is inserted (see df.instances above for why not as CHECKs). Only INSERT needs them: a
-- tenant may insert node rows (column grants) but not update them; the engine updates only a
-- node's status, result and details. A violation reports the rule's own name and SQLSTATE 23514,
-- as the constraints did, checked in their order (by name); NULL passes, as in a CHECK (NOT NULL
-- constraints come after BEFORE triggers). Operators are qualified: no search_path can redirect them.
-- nodes_status_chk and nodes_result_status_chk are not kept: a node's status and result are not
-- among the columns a tenant may insert, and only the engine writes them.
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

CREATE TABLE df.nodes (
    id              pg_catalog.varchar(8) NOT NULL,
    instance_id     pg_catalog.varchar(8) NOT NULL,
    node_type       pg_catalog.text NOT NULL,
    query           pg_catalog.text,
    result_name     pg_catalog.text,
    left_node       pg_catalog.varchar(8),
    right_node      pg_catalog.varchar(8),
    status          pg_catalog.text DEFAULT 'pending',
    result          pg_catalog.jsonb,
    error           pg_catalog.text,
    submitted_by    pg_catalog.regrole,
    database        pg_catalog.text,
    created_at      pg_catalog.timestamptz DEFAULT pg_catalog.now(),
    updated_at      pg_catalog.timestamptz DEFAULT pg_catalog.now(),
    status_details  pg_catalog.jsonb,
    CONSTRAINT nodes_pkey PRIMARY KEY (instance_id, id),
    CONSTRAINT nodes_instance_identity_fkey FOREIGN KEY (instance_id, submitted_by)
        REFERENCES df.instances (id, submitted_by) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT nodes_left_node_same_instance_fkey FOREIGN KEY (instance_id, left_node)
        REFERENCES df.nodes (instance_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT nodes_right_node_same_instance_fkey FOREIGN KEY (instance_id, right_node)
        REFERENCES df.nodes (instance_id, id) DEFERRABLE INITIALLY DEFERRED
);
-- No index on instance_id alone: nodes_pkey (instance_id, id) serves every lookup by instance, and
-- one index fewer is one insertion fewer on every update that cannot be HOT.
CREATE TRIGGER nodes_row_check BEFORE INSERT ON df.nodes
    FOR EACH ROW EXECUTE FUNCTION df._check_node_row();
COMMENT ON COLUMN df.nodes.submitted_by IS 'Role that submitted the instance; steps run as this role.';
COMMENT ON COLUMN df.nodes.status_details IS 'Worker-written: {"execution_id": "<stamp>"} of the last run of this node.';

ALTER TABLE df.instances ADD CONSTRAINT instances_root_node_same_instance_fkey
    FOREIGN KEY (id, root_node) REFERENCES df.nodes (instance_id, id) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE df.vars (
    name   pg_catalog.text NOT NULL,
    value  pg_catalog.text,
    owner  pg_catalog.regrole NOT NULL DEFAULT pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole,
    PRIMARY KEY (owner, name)
);

-- Worker heartbeats: one row per running worker process (healthy = last_seen_at within 15 s).
CREATE TABLE df._worker_epoch (
    epoch_id      pg_catalog.uuid PRIMARY KEY,
    started_at    pg_catalog.timestamptz DEFAULT pg_catalog.now(),
    last_seen_at  pg_catalog.timestamptz DEFAULT pg_catalog.now()
);

-- df._work and df._executions (below) have no foreign key to df.instances: only the engine's
-- triggers and df._commit write them, for an instance that exists, and the key checks cost every
-- df.start two lookups that lock the new instance row, plus two plans prepared in every new
-- session (the first-call cost, docs/PERFORMANCE.md). Deleting an instance deletes its rows
-- (trigger instances_delete_runs, src/sql/40_engine.sql).
-- The worker's queue: one row per instance that still has work. A worker claims due rows with
-- FOR UPDATE SKIP LOCKED and holds a lease; every durable write re-checks lease_token, so a worker
-- whose lease was taken over can no longer commit anything for that instance.
CREATE TABLE df._work (
    instance_id   pg_catalog.varchar(8) PRIMARY KEY,
    due_at        pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    lease_owner   pg_catalog.uuid,
    lease_token   pg_catalog.uuid,
    lease_until   pg_catalog.timestamptz,
    execution_id  pg_catalog.int4 NOT NULL DEFAULT 1,
    vars          pg_catalog.jsonb NOT NULL DEFAULT '{}',
    -- The instance's submitted_by, so that df._commit finds the identity it stamps on node runs
    -- in the lease row it locks anyway (one index lookup fewer per checkpoint).
    submitted_by  pg_catalog.regrole NOT NULL
);
CREATE INDEX idx_work_due ON df._work (due_at);

-- One row per execution (root-loop iteration) of an instance that df._execution_log (below)
-- cannot derive from the instance: instance_executions, list_instances and explain read that view.
CREATE TABLE df._executions (
    instance_id   pg_catalog.varchar(8) NOT NULL,
    execution_id  pg_catalog.int4 NOT NULL,
    status        pg_catalog.text NOT NULL DEFAULT 'Running',
    started_at    pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    completed_at  pg_catalog.timestamptz,
    output        pg_catalog.text,
    submitted_by  pg_catalog.regrole NOT NULL,
    PRIMARY KEY (instance_id, execution_id)
);

-- Every run of every node: the durable checkpoint the worker replays from, and the loop history
-- that df.instance_nodes(id, n) shows. Keyed by stamp, so each loop iteration has its own rows.
-- No foreign key to df.instances: its check would lock the instance row (FOR KEY SHARE: a WAL
-- record and a dirtied page) at every checkpoint of every step. df._commit only writes runs of an
-- instance whose lease row exists, and deleting an instance deletes its runs (trigger
-- instances_delete_runs, src/sql/40_engine.sql). Like df._executions it has no CHECK: only
-- df._commit writes it, at every step.
CREATE TABLE df._node_runs (
    instance_id   pg_catalog.varchar(8) NOT NULL,
    stamp         pg_catalog.text NOT NULL,
    node_id       pg_catalog.varchar(8) NOT NULL,
    execution_id  pg_catalog.int4 NOT NULL,
    status        pg_catalog.text NOT NULL,
    result        pg_catalog.text,
    detail        pg_catalog.jsonb,
    started_at    pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at   pg_catalog.timestamptz,
    submitted_by  pg_catalog.regrole NOT NULL,
    PRIMARY KEY (instance_id, stamp, node_id)
);
CREATE INDEX idx_node_runs_execution ON df._node_runs (instance_id, execution_id);

-- jsonb as compact JSON text (no spaces), keys in jsonb's order: how a completed execution's
-- output reads when df._execution_log derives it from its root node's result. The worker leaves
-- an output to it only where src/core/jsonb-text.ts predicts this text to equal the output.
-- jsonb prints ", " between items and ": " after keys and no other space outside strings, so the
-- separators lose their space and strings (matched whole, escapes included) stay as they are.
-- df.list_instances(NULL, 1000, NULL) over one-step instances took 484 ms with a recursive
-- rendering (jsonb_each, string_agg), 44 ms with this (31 ms when every execution had its row).
CREATE FUNCTION df._json_compact(p pg_catalog.jsonb) RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
SELECT pg_catalog.regexp_replace(p::pg_catalog.text, '("(?:[^"\\]|\\.)*")|([,:]) ', '\1\2', 'g')
$$;

-- The run log as readers see it: df._node_runs, plus the runs only a node row holds. df._commit
-- writes no node run for an event marked "final" (the node's last event of the commit, of a run
-- the worker never wrote before): the node's row, updated by the same commit, is that run. The
-- worker marks an event final where nothing will write that row for another run: in a commit that
-- ends the instance, and for a node of a sequence's spine (a SQL step or a THEN under THENs only,
-- which runs once per execution) whose event has no detail and whose result is JSON that
-- df._json_compact gives back as sent (src/worker/runlog.ts). It spares a one-step instance one
-- of its completion's writes, a chain step its node runs (docs/PERFORMANCE.md, "Runs kept by node
-- rows", "... in a sequence"). Such a run's result is the node row's compact JSON text, its
-- detail the node's status_details without the stamp, its finish the node's updated_at (none while
-- running), its start the instance's updated_at where the instance ended in the commit that
-- finished the run (now() of that transaction, as a run row's default was), else the node's
-- updated_at. The claim's replay reads it too. Security invoker: each reader's row-level
-- security on the tables decides what it sees.
CREATE VIEW df._runs WITH (security_invoker = true) AS
SELECT r.instance_id, r.stamp, r.node_id, r.execution_id, r.status, r.result, r.detail,
       r.started_at, r.finished_at, r.submitted_by
  FROM df._node_runs r
UNION ALL
SELECT n.instance_id, n.status_details OPERATOR(pg_catalog.->>) 'execution_id', n.id,
       pg_catalog.split_part(n.status_details OPERATOR(pg_catalog.->>) 'execution_id', '::', 2)::pg_catalog.int4,
       n.status, df._json_compact(n.result),
       CASE WHEN n.status_details OPERATOR(pg_catalog.-) 'execution_id'::pg_catalog.text OPERATOR(pg_catalog.<>) '{}'::pg_catalog.jsonb
            THEN n.status_details OPERATOR(pg_catalog.-) 'execution_id'::pg_catalog.text END,
       CASE WHEN i.status OPERATOR(pg_catalog.=) ANY (ARRAY['completed', 'failed', 'cancelled']::pg_catalog.text[])
                 AND i.updated_at OPERATOR(pg_catalog.<=) n.updated_at THEN i.updated_at ELSE n.updated_at END,
       CASE WHEN n.status OPERATOR(pg_catalog.<>) 'running' THEN n.updated_at END, n.submitted_by
  FROM df.nodes n
  JOIN df.instances i ON i.id OPERATOR(pg_catalog.=) n.instance_id
 WHERE n.status OPERATOR(pg_catalog.=) ANY (ARRAY['running', 'completed', 'failed']::pg_catalog.text[])
   AND n.status_details OPERATOR(pg_catalog.?) 'execution_id'
   AND NOT EXISTS (SELECT 1 FROM df._node_runs x
                    WHERE x.instance_id OPERATOR(pg_catalog.=) n.instance_id
                      AND x.stamp OPERATOR(pg_catalog.=) (n.status_details OPERATOR(pg_catalog.->>) 'execution_id')
                      AND x.node_id OPERATOR(pg_catalog.=) n.id);

-- The executions as readers see them: df._executions, plus the first execution of an instance
-- that has no execution row. df.start writes none, and a commit that completes the instance's
-- first execution writes none where its output is its root node's result in compact text (the
-- worker marks the root's event "output" then): it spares a one-step instance a write at its start, another at
-- its completion and a fifth of its bytes (docs/PERFORMANCE.md, "Executions kept by instance
-- rows"). Such an execution reads Running until its instance ends; its start is the instance's
-- created_at (now() of df.start's transaction, as the row's default was), its end the instance's
-- completed_at (updated_at when it failed). A failed, cancelled or continued first execution, and
-- every later one, has its row. Security invoker, like df._runs.
CREATE VIEW df._execution_log WITH (security_invoker = true) AS
SELECT e.instance_id, e.execution_id, e.status, e.started_at, e.completed_at, e.output, e.submitted_by
  FROM df._executions e
UNION ALL
SELECT i.id, 1,
       CASE WHEN i.status OPERATOR(pg_catalog.=) 'completed' THEN 'Completed'
            WHEN i.status OPERATOR(pg_catalog.=) ANY (ARRAY['failed', 'cancelled']::pg_catalog.text[]) THEN 'Failed'
            ELSE 'Running' END,
       i.created_at,
       CASE WHEN i.status OPERATOR(pg_catalog.=) 'completed' THEN i.completed_at
            WHEN i.status OPERATOR(pg_catalog.=) ANY (ARRAY['failed', 'cancelled']::pg_catalog.text[]) THEN i.updated_at END,
       CASE WHEN i.status OPERATOR(pg_catalog.=) 'completed' THEN
            (SELECT df._json_compact(n.result) FROM df.nodes n
              WHERE n.instance_id OPERATOR(pg_catalog.=) i.id AND n.id OPERATOR(pg_catalog.=) i.root_node) END,
       i.submitted_by
  FROM df.instances i
 WHERE NOT EXISTS (SELECT 1 FROM df._executions x WHERE x.instance_id OPERATOR(pg_catalog.=) i.id);

-- Signal inbox: a signal sent before the wait is reached is kept until a matching wait consumes it.
CREATE TABLE df._signals (
    id            pg_catalog.int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id   pg_catalog.varchar(8) NOT NULL REFERENCES df.instances (id) ON DELETE CASCADE,
    signal_name   pg_catalog.text NOT NULL,
    payload       pg_catalog.text NOT NULL,
    sent_at       pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    submitted_by  pg_catalog.regrole NOT NULL DEFAULT pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole,
    consumed_by   pg_catalog.text
);
CREATE INDEX idx_signals_pending ON df._signals (instance_id, signal_name, id) WHERE consumed_by IS NULL;
-- Every signal of an instance, consumed or not: what a claim reads (a compensate request, by name),
-- the monitoring UI, and the foreign key's cascade when an instance is deleted. Without it each of
-- them scanned the whole table: 10.4 ms per claimed instance with 100 000 consumed signals
-- (docs/PERFORMANCE.md). The pending index stays for SIGNAL nodes, which must not walk the
-- consumed signals of their name.
CREATE INDEX idx_signals_instance ON df._signals (instance_id, signal_name, id);
