-- Bad input gets the documented error and writes nothing.
\set VERBOSITY terse
SELECT df.as('SELECT 1', '');
SELECT df.as('SELECT 1', '1x');
SELECT df.sleep(-1);
SELECT df.wait_for_schedule('61 * * * *');
SELECT df.wait_for_schedule('* * * *');
SELECT df.wait_for_signal('');
SELECT df.wait_for_signal('x', 0);
SELECT df.http('ftp://example.com/x');
SELECT df.http('https://example.com/x', 'TRACE');
SELECT df.http('https://example.com/x', 'GET', NULL, NULL, 0);
SELECT '{"x":1}' !> 'SELECT 2';
SELECT df.seq(df.setvar('a', '1'), 'SELECT 1');
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'regress_pgd_user') THEN CREATE ROLE regress_pgd_user LOGIN; END IF;
END $$;
SET client_min_messages = warning;
SELECT df.grant_usage('regress_pgd_user');
RESET client_min_messages;
SET ROLE regress_pgd_user;
SELECT count(*) AS instances_before FROM df.instances \gset
SELECT df.start(NULL);
SELECT df.start('SELECT 1', NULL, NULL, 'sideways');
SELECT df.start('SELECT 1', database => 'regress_no_such_db');
SELECT df.start('{"node_type":"NOT_A_NODE"}');
SELECT df.start('{"node_type":"THEN","left_node":{"node_type":"NOPE"},"right_node":{"node_type":"SQL","query":"x"}}');
SELECT df.start('{"node_type":"SQL","query":"SELECT 1","condition_node":{"node_type":"SQL","query":"x"}}');
SELECT df.cancel('0badc0de');
SELECT df.signal('0badc0de', 'go');
SELECT df.signal('', 'go');
SELECT df.status('0badc0de') IS NULL AS unknown_status_is_null;
SELECT count(*) = :instances_before AS nothing_written FROM df.instances;
SELECT df.explain('{"node_type":"NOT_A_NODE"}');
SELECT df.explain('hello');
RESET ROLE;
