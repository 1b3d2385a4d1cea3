-- The df.node type: text storage, string category, implicit casts both ways. Operators take
-- (df.node, df.node) so bare literals ('SELECT 1' ~> 'SELECT 2') resolve to them, while the
-- built-in &, | and || on integers, bits and text keep their meaning.

CREATE TYPE df.node;
CREATE FUNCTION df.node_in(pg_catalog.cstring) RETURNS df.node
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'textin';
CREATE FUNCTION df.node_out(df.node) RETURNS pg_catalog.cstring
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'textout';
CREATE FUNCTION df.node_recv(pg_catalog.internal) RETURNS df.node
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'textrecv';
CREATE FUNCTION df.node_send(df.node) RETURNS pg_catalog.bytea
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'textsend';
CREATE TYPE df.node (
    INPUT = df.node_in, OUTPUT = df.node_out, RECEIVE = df.node_recv, SEND = df.node_send,
    LIKE = pg_catalog.text, CATEGORY = 'S'
);
COMMENT ON TYPE df.node IS 'A pg_durable workflow graph node (JSON text); built by the df.* DSL and its operators.';

CREATE CAST (pg_catalog.text AS df.node) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (df.node AS pg_catalog.text) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (pg_catalog.varchar AS df.node) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (df.node AS pg_catalog.jsonb) WITH INOUT;
CREATE CAST (df.node AS pg_catalog.json) WITH INOUT;
