-- pg_durable installs into schema df with its type, operators and functions.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_durable CASCADE;
RESET client_min_messages;
SELECT extname, extrelocatable FROM pg_extension WHERE extname = 'pg_durable';
SELECT nspname FROM pg_namespace WHERE nspname = 'df';
SELECT typname, typcategory FROM pg_type WHERE typnamespace = 'df'::regnamespace AND typname = 'node';
SELECT oprname, oprkind, format_type(oprleft, NULL) AS leftarg, format_type(oprright, NULL) AS rightarg
  FROM pg_operator WHERE oprcode::regproc::text LIKE 'df.op_%' ORDER BY oprname;
SELECT p.oid::regprocedure AS function
  FROM pg_proc p
 WHERE p.pronamespace = 'df'::regnamespace AND p.proname IN ('start', 'signal', 'cancel', 'status', 'result', 'await_instance', 'explain')
 ORDER BY 1::text;
SELECT has_function_privilege('public', 'df.http(text,text,text,jsonb,integer)', 'EXECUTE') AS public_http,
       has_schema_privilege('public', 'df', 'USAGE') AS public_usage;
