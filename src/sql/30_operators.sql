-- DSL operators (API §4). They live in pg_catalog so they resolve for every role whatever its
-- search_path; their functions live in df, so callers still need USAGE on schema df. All seven
-- share PostgreSQL's single "other operator" precedence level and associate to the left.

-- Compatibility helpers with the original's names and text signatures (API §2, §4.3).
CREATE FUNCTION df.as_op(fut pg_catalog.text, name pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, df, pg_temp
    AS $$ SELECT df.as(fut, name) $$;

CREATE FUNCTION df.if_then_op(condition pg_catalog.text, then_branch pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RETURN pg_catalog.jsonb_build_object('_partial_if', true, 'condition', condition, 'then_branch', then_branch)::pg_catalog.text;
END
$$;

CREATE FUNCTION df.if_else_op(partial_if pg_catalog.text, else_branch pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    p pg_catalog.jsonb := partial_if::pg_catalog.jsonb;
BEGIN
    IF pg_catalog.jsonb_typeof(p) OPERATOR(pg_catalog.<>) 'object' OR NOT (p OPERATOR(pg_catalog.?) '_partial_if') THEN
        RAISE EXCEPTION 'Invalid if-then-else: left side of !> must be a ?> expression';
    END IF;
    RETURN df.if(p OPERATOR(pg_catalog.->>) 'condition', p OPERATOR(pg_catalog.->>) 'then_branch', else_branch);
END
$$;

CREATE FUNCTION df.loop_prefix_op(body pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, df, pg_temp
    AS $$ SELECT df.loop(body) $$;

-- Operator functions on df.node (thin casts around the functions above and the plv8 builders).
CREATE FUNCTION df.op_seq(a df.node, b df.node) RETURNS df.node
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$ SELECT df.seq(a::pg_catalog.text, b::pg_catalog.text)::df.node $$;
CREATE FUNCTION df.op_as(fut df.node, name df.node) RETURNS df.node
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$ SELECT df.as_op(fut::pg_catalog.text, name::pg_catalog.text)::df.node $$;
CREATE FUNCTION df.op_join(a df.node, b df.node) RETURNS df.node
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$ SELECT df.join(a::pg_catalog.text, b::pg_catalog.text)::df.node $$;
CREATE FUNCTION df.op_race(a df.node, b df.node) RETURNS df.node
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$ SELECT df.race(a::pg_catalog.text, b::pg_catalog.text)::df.node $$;
CREATE FUNCTION df.op_if_then(condition df.node, then_branch df.node) RETURNS df.node
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$ SELECT df.if_then_op(condition::pg_catalog.text, then_branch::pg_catalog.text)::df.node $$;
CREATE FUNCTION df.op_if_else(partial_if df.node, else_branch df.node) RETURNS df.node
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$ SELECT df.if_else_op(partial_if::pg_catalog.text, else_branch::pg_catalog.text)::df.node $$;
CREATE FUNCTION df.op_undo(forward df.node, undo df.node) RETURNS df.node
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$ SELECT df.with_undo(forward::pg_catalog.text, undo::pg_catalog.text)::df.node $$;
CREATE FUNCTION df.op_loop(body df.node) RETURNS df.node
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$ SELECT df.loop_prefix_op(body::pg_catalog.text)::df.node $$;

CREATE OPERATOR pg_catalog.~>  (LEFTARG = df.node, RIGHTARG = df.node, FUNCTION = df.op_seq);
CREATE OPERATOR pg_catalog.|=> (LEFTARG = df.node, RIGHTARG = df.node, FUNCTION = df.op_as);
CREATE OPERATOR pg_catalog.&   (LEFTARG = df.node, RIGHTARG = df.node, FUNCTION = df.op_join);
CREATE OPERATOR pg_catalog.|   (LEFTARG = df.node, RIGHTARG = df.node, FUNCTION = df.op_race);
CREATE OPERATOR pg_catalog.?>  (LEFTARG = df.node, RIGHTARG = df.node, FUNCTION = df.op_if_then);
CREATE OPERATOR pg_catalog.!>  (LEFTARG = df.node, RIGHTARG = df.node, FUNCTION = df.op_if_else);
CREATE OPERATOR pg_catalog.@>  (RIGHTARG = df.node, FUNCTION = df.op_loop);
-- Ours: `forward <~ undo` (df.with_undo). Not the proposal's `<->`, which is pg_trgm's text
-- distance and tsquery's phrase operator: with two unknown literals it could resolve to either.
-- No operator named `<~` exists in PostgreSQL or its contrib modules.
CREATE OPERATOR pg_catalog.<~  (LEFTARG = df.node, RIGHTARG = df.node, FUNCTION = df.op_undo);
