-- The DSL: every builder's JSON, operators on bare literals, PostgreSQL's precedence.
\set VERBOSITY terse
SELECT df.sql('SELECT 1');
SELECT df.seq('SELECT 1', 'SELECT 2');
SELECT df.as('SELECT 1', 'x');
SELECT df.sleep(60);
SELECT df.wait_for_schedule('*/5 * * * *');
SELECT df.loop('SELECT 1');
SELECT df.loop('SELECT 1', 'SELECT true');
SELECT df.break();
SELECT df.break('{"a":1}');
SELECT df.if('SELECT true', 'SELECT 1', 'SELECT 2');
SELECT df.if_rows('data', 'SELECT 1', 'SELECT 2');
SELECT df.join('SELECT 1', 'SELECT 2');
SELECT df.join3('SELECT 1', 'SELECT 2', 'SELECT 3');
SELECT df.race('SELECT 1', 'SELECT 2');
SELECT df.wait_for_signal('approval', 3600);
SELECT df.wait_for_signal('go');
SELECT df.http('https://api.example.com/x', 'get');
SELECT df.http('https://api.example.com/x', 'POST', '{"k":1}', '{"b":"2","a":"1"}', 5);
-- Operators: ~> |=> & | ?> !> and prefix @>
SELECT 'SELECT 1' ~> 'SELECT 2';
SELECT 'SELECT 1' |=> 'x';
SELECT 'SELECT 1' & 'SELECT 2';
SELECT 'SELECT 1' | 'SELECT 2';
SELECT 'SELECT true' ?> 'SELECT 1';
SELECT 'SELECT true' ?> 'SELECT 1' !> 'SELECT 2';
SELECT @> 'SELECT 1';
-- Precedence: one level, left-associative (API §4.2)
SELECT ('a' ~> 'b' |=> 'n') = df.as(df.seq('a', 'b'), 'n') AS name_attaches_to_then;
SELECT ('a' |=> 'n' ~> 'b') = df.seq(df.as('a', 'n'), 'b') AS name_then_seq;
SELECT (@> 'a' ~> 'b') = df.seq(df.loop('a'), 'b') AS prefix_binds_one_operand;
SELECT ('x' ~> 'c' ?> 't' !> 'e') = df.if(df.seq('x', 'c'), 't', 'e') AS sequence_becomes_condition;
SELECT ('a' & 'b' | 'c') = df.race(df.join('a', 'b'), 'c') AS join_then_race;
SELECT ('a' | 'b' & 'c') = df.join(df.race('a', 'b'), 'c') AS race_then_join;
SELECT ('SELECT ' || 'x' ~> 'y') = df.seq('SELECT x', 'y') AS concat_same_level;
-- Built-in operators keep their meaning
SELECT 12 & 10 AS band, 12 | 3 AS bor, 'ab' || 'cd' AS cat;
-- Identical DSL gives identical text
SELECT ('SELECT 1' ~> 'SELECT 2') = ('SELECT 1' ~> 'SELECT 2') AS deterministic;
-- explain of a graph (dry run)
SELECT df.explain('SELECT 0' ~> df.join3('SELECT 1', 'SELECT 2' ~> 'SELECT 2b', df.race('SELECT 3', df.sleep(1))));
SELECT df.explain($$ 'SELECT 1' ~> 'SELECT 2' $$);
