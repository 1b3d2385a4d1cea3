-- Workflows run by a worker (one must be running against this database): results as the seeds show.
\set VERBOSITY terse
SET ROLE regress_pgd_user;
SELECT df.start($sql$ SELECT 'Hello, durable world!' AS message $sql$) AS id \gset
SELECT df.await_instance(:'id', 60);
SELECT df.result(:'id');
SELECT node_type, status, inferred_status FROM df.instance_nodes(:'id');
SELECT df.start('SELECT 42 as answer' |=> 'x' ~> 'SELECT $x * 2 as doubled' ~> 'SELECT $x + 10 as plus_ten', 'variable-test') AS id \gset
SELECT df.await_instance(:'id', 60);
SELECT df.result(:'id');
SELECT node_type, result_name, result FROM df.instance_nodes(:'id') WHERE node_type = 'SQL' ORDER BY result::text;
SELECT df.start('SELECT 42 = 6*7 as condition' |=> 'cond' ?> 'SELECT ''Branch A'' as result' !> 'SELECT ''Branch B'' as result') AS id \gset
SELECT df.await_instance(:'id', 60);
SELECT df.result(:'id');
SELECT node_type, inferred_status FROM df.instance_nodes(:'id') ORDER BY node_type, inferred_status;
SELECT df.start(('SELECT 1 AS a' |=> 'a') & ('SELECT 2 AS b' |=> 'b') ~> 'SELECT $a + $b AS sum') AS id \gset
SELECT df.await_instance(:'id', 60);
SELECT df.result(:'id');
SELECT df.start('SELECT ''fast'' AS winner' | 'SELECT pg_sleep(30)') AS id \gset
SELECT df.await_instance(:'id', 60);
SELECT df.result(:'id');
SELECT df.start(@> ('SELECT 1' ~> df.break('{"status": "done"}'))) AS id \gset
SELECT df.await_instance(:'id', 60);
SELECT df.result(:'id');
SELECT df.start('SELECT 1/0' ~> 'SELECT 42') AS id \gset
SELECT df.await_instance(:'id', 60);
SELECT df.result(:'id') IS NULL AS no_result_on_failure;
SELECT node_type, status, inferred_status, result FROM df.instance_nodes(:'id') ORDER BY node_type, status;
SELECT df.start(df.wait_for_signal('approval', 60) |=> 'sig' ~> 'SELECT $sig::jsonb->''data''->>''approved'' AS approved') AS id \gset
SELECT df.signal(:'id', 'approval', '{"approved": true}');
SELECT df.await_instance(:'id', 60);
SELECT df.result(:'id');
SELECT df.start(df.wait_for_signal('never', 1)) AS id \gset
SELECT df.await_instance(:'id', 60);
SELECT df.result(:'id');
RESET ROLE;
