import { describe, it, expect } from 'vitest';
import type { InferredStatus, Node, TreeNode } from '../../src/core/node';
import * as b from '../../src/core/builders';
import { inferStatuses, type PhysicalNode } from '../../src/core/infer';
import {
  CANNOT_EXPLAIN_MESSAGE,
  classifyExplainInput,
  displayTree,
  nodeLabel,
  renderDot,
  renderInstanceExplain,
  renderMermaid,
  renderTree,
  statusIcon,
  truncateUtf8,
  utf8Length,
  type StatusMarker,
} from '../../src/core/explain';

/** The contract writes padding spaces as `·`. */
const dots = (s: string): string => s.replace(/·/g, ' ');

// Small builders mirroring the DSL (API §3) so the fixtures read like the df.explain calls.
const sql = (query: string, result_name?: string): Node => ({ node_type: 'SQL', query, ...(result_name ? { result_name } : {}) });
const seq = (a: Node, b: Node, result_name?: string): Node => ({ node_type: 'THEN', left_node: a, right_node: b, ...(result_name ? { result_name } : {}) });
const sleep = (s: number): Node => ({ node_type: 'SLEEP', query: String(s) });
const ifNode = (c: Node, t: Node, e: Node): Node => ({ node_type: 'IF', left_node: t, right_node: e, condition_node: c });
const loop = (body: Node, cond?: Node): Node => ({ node_type: 'LOOP', left_node: body, ...(cond ? { condition_node: cond } : {}) });
const join3 = (a: Node, b: Node, c: Node): Node => ({ node_type: 'JOIN', left_node: a, right_node: b, extra_nodes: [c] });
const race = (a: Node, b: Node): Node => ({ node_type: 'RACE', left_node: a, right_node: b });
const leaf = (node_type: Node['node_type'], query: string, result_name?: string): Node => ({ node_type, query, ...(result_name ? { result_name } : {}) });

const explain = (root: Node): string => renderTree(displayTree(root));

describe('renderTree: the exact renderings of API §10.8', () => {
  it("'SELECT 1' ~> 'SELECT 2'", () => {
    expect(explain(seq(sql('SELECT 1'), sql('SELECT 2')))).toBe(dots(['SQL:·SELECT·1······', '→·SQL:·SELECT·2····'].join('\n')));
  });

  it("'SELECT ''winner''' | df.sleep(30)", () => {
    expect(explain(race(sql("SELECT 'winner'"), sleep(30)))).toBe(
      dots(
        [
          'RACE····························',
          '····║·branch·1:·················',
          "······├─SQL:·SELECT·'winner'····",
          '····║·branch·2:·················',
          '······└─SLEEP·30s···············',
        ].join('\n'),
      ),
    );
  });

  it('a named THEN is not displayed; IF shows condition/then/else blocks', () => {
    // 'SELECT 1' |=> 'a' ~> 'SELECT 2' |=> 'b' ~> df.if(...) parses left-associatively,
    // so 'b' names the inner THEN.
    const graph = seq(
      seq(sql('SELECT 1', 'a'), sql('SELECT 2'), 'b'),
      ifNode(sql('SELECT $a > 0'), sql("SELECT 'yes'"), sql("SELECT 'no'")),
    );
    expect(explain(graph)).toBe(
      dots(
        [
          "SQL:·SELECT·1·|=>·'a'·········",
          '→·SQL:·SELECT·2···············',
          '→·IF··························',
          '····?·condition:··············',
          '······└─SQL:·SELECT·$a·>·0····',
          '····✓·then:···················',
          "······└─SQL:·SELECT·'yes'·····",
          '····✗·else:···················',
          "······└─SQL:·SELECT·'no'······",
        ].join('\n'),
      ),
    );
  });

  it('a while-loop shows its body chain and its condition', () => {
    const graph = seq(sql('SELECT 1'), loop(seq(sql('SELECT 2'), sleep(1)), sql('SELECT false')));
    expect(explain(graph)).toBe(
      dots(
        [
          'SQL:·SELECT·1················',
          '→·LOOP·(while)···············',
          '····↻·body:··················',
          '······└─SQL:·SELECT·2········',
          '······→·SLEEP·1s·············',
          '····?·while:·················',
          '······└─SQL:·SELECT·false····',
        ].join('\n'),
      ),
    );
  });

  it('join3 with a chain branch and a nested race', () => {
    const graph = seq(sql('SELECT 0'), join3(sql('SELECT 1'), seq(sql('SELECT 2'), sql('SELECT 2b')), race(sql('SELECT 3'), sleep(1))));
    expect(explain(graph)).toBe(
      dots(
        [
          'SQL:·SELECT·0··················',
          '→·JOIN·(3)·····················',
          '····║·branch·1:················',
          '······├─SQL:·SELECT·1··········',
          '····║·branch·2:················',
          '······├─SQL:·SELECT·2··········',
          '······→·SQL:·SELECT·2b·········',
          '····║·branch·3:················',
          '······└─RACE···················',
          '··········║·branch·1:··········',
          '············├─SQL:·SELECT·3····',
          '··········║·branch·2:··········',
          '············└─SLEEP·1s·········',
        ].join('\n'),
      ),
    );
  });

  it('a live instance after failure marks the failed step and the skipped one', () => {
    const tree = displayTree(seq(sql('SELECT 1/0'), sql('SELECT 42')));
    const status: Record<string, InferredStatus> = { N1: 'failed', N2: 'failed', N3: 'skipped' };
    expect(renderTree(tree, (id) => status[id])).toBe(dots(['SQL:·SELECT·1/0·✗·····', '→·SQL:·SELECT·42·⊘····'].join('\n')));
  });

  it('every inferred status has its marker', () => {
    const tree = displayTree(join3(sql('A'), sql('B'), join3(sql('C'), sql('D'), sql('E'))));
    const status: Record<string, InferredStatus> = { N1: 'running', N2: 'completed', N3: 'failed', N4: 'running', N5: 'pending', N6: 'skipped' };
    const lines = renderTree(tree, (id) => status[id]).split('\n').map((l) => l.trimEnd());
    expect(lines).toEqual([
      'JOIN (3) ⏳',
      '    ║ branch 1:',
      '      ├─SQL: A ✓',
      '    ║ branch 2:',
      '      ├─SQL: B ✗',
      '    ║ branch 3:',
      '      └─JOIN (3) ⏳',
      '          ║ branch 1:',
      '            ├─SQL: C ○',
      '          ║ branch 2:',
      '            ├─SQL: D ⊘',
      '          ║ branch 3:',
      '            └─SQL: E',
    ]);
  });
});

describe('renderTree: layout rules', () => {
  it('a lone SQL node is one padded line', () => {
    expect(explain(sql('SELECT 1'))).toBe('SQL: SELECT 1    ');
  });

  it('pads every line to the longest line + 4 characters, counting symbols as one character', () => {
    const out = explain(seq(sql('SELECT 1'), race(sql('x'), sql('y'))));
    const lengths = out.split('\n').map((l) => Array.from(l).length);
    expect(new Set(lengths).size).toBe(1);
    expect(lengths[0]).toBe(Math.max(...out.split('\n').map((l) => Array.from(l.trimEnd()).length)) + 4);
  });

  it('embedded newlines in SQL become separate (padded) lines', () => {
    expect(explain(sql('SELECT 1\nFROM t'))).toBe(['SQL: SELECT 1    ', 'FROM t           '].join('\n'));
  });

  it('children of a non-last branch hang under a │ rail; chain items indent by 4 spaces', () => {
    const graph = race(ifNode(sql('c'), sql('t'), sql('e')), seq(sql('a'), loop(sql('b'))));
    expect(explain(graph).split('\n').map((l) => l.trimEnd())).toEqual([
      'RACE',
      '    ║ branch 1:',
      '      ├─IF',
      '      │   ? condition:',
      '      │     └─SQL: c',
      '      │   ✓ then:',
      '      │     └─SQL: t',
      '      │   ✗ else:',
      '      │     └─SQL: e',
      '    ║ branch 2:',
      '      └─SQL: a',
      '      → LOOP (infinite)',
      '          ↻ body:',
      '            └─SQL: b',
    ]);
  });

  it('if_rows has no condition block', () => {
    const graph: Node = {
      node_type: 'IF',
      left_node: sql('SELECT 1'),
      right_node: sql('SELECT 2'),
      query: '{"condition_type":"result_has_rows","result_name":"data"}',
    };
    expect(explain(graph).split('\n').map((l) => l.trimEnd())).toEqual(['IF', '    ✓ then:', '      └─SQL: SELECT 1', '    ✗ else:', '      └─SQL: SELECT 2']);
  });
});

describe('node labels', () => {
  const label = (n: Node): string => nodeLabel(displayTree(n));

  it('SQL over 50 bytes is cut to 47 bytes + ...', () => {
    const fifty = 'SELECT ' + 'x'.repeat(43);
    expect(utf8Length(fifty)).toBe(50);
    expect(label(sql(fifty))).toBe(`SQL: ${fifty}`);
    expect(label(sql(fifty + 'y'))).toBe(`SQL: ${fifty.slice(0, 47)}...`);
  });

  it('truncation counts UTF-8 bytes and never splits a character', () => {
    const q = 'SELECT ' + 'é'.repeat(30); // 7 + 60 bytes
    expect(label(sql(q))).toBe(`SQL: SELECT ${'é'.repeat(20)}...`); // 7 + 40 = 47 bytes
    expect(truncateUtf8('aé', 2)).toBe('a');
    expect(truncateUtf8('a😀b', 5)).toBe('a😀');
  });

  it('leaf labels', () => {
    expect(label(sleep(60))).toBe('SLEEP 60s');
    expect(label(leaf('WAIT_SCHEDULE', '{"cron_expr":"*/5 * * * *"}'))).toBe("WAIT '*/5 * * * *'");
    expect(label(leaf('SIGNAL', '{"signal_name":"approval","timeout_seconds":3600}'))).toBe("SIGNAL 'approval' (3600s)");
    expect(label(leaf('SIGNAL', '{"signal_name":"go","timeout_seconds":null}'))).toBe("SIGNAL 'go'");
    expect(label(leaf('BREAK', '{"break_value":null}'))).toBe('BREAK');
    expect(label(leaf('BREAK', '{"break_value":"done"}'))).toBe("BREAK 'done'");
    expect(label(leaf('BREAK', '{"break_value":"' + 'v'.repeat(20) + '"}'))).toBe(`BREAK '${'v'.repeat(20)}'`);
    expect(label(leaf('BREAK', '{"break_value":"' + 'v'.repeat(21) + '"}'))).toBe(`BREAK '${'v'.repeat(17)}...'`);
  });

  it('HTTP labels show method and url, url over 40 bytes cut to 37 + ...', () => {
    const cfg = (url: string, method = 'GET'): string => JSON.stringify({ url, method, body: null, headers: null, timeout_seconds: 30 });
    expect(label(leaf('HTTP', cfg('https://api.example.com/x')))).toBe('HTTP GET https://api.example.com/x');
    const long = 'https://api.example.com/' + 'p'.repeat(20);
    expect(label(leaf('HTTP', cfg(long)))).toBe(`HTTP GET ${long.slice(0, 37)}...`);
    expect(label(leaf('HTTP_MULTIPART', JSON.stringify({ url: 'https://u.example/up', method: 'POST', parts: [] })))).toBe(
      'HTTP_MULTIPART POST https://u.example/up',
    );
  });

  it('result names are shown on every label except RACE (THEN is never printed)', () => {
    expect(label({ ...sleep(1), result_name: 's' })).toBe("SLEEP 1s |=> 's'");
    expect(label({ ...ifNode(sql('c'), sql('t'), sql('e')), result_name: 'r' })).toBe("IF |=> 'r'");
    expect(label({ ...loop(sql('b')), result_name: 'l' })).toBe("LOOP (infinite) |=> 'l'");
    expect(label({ ...join3(sql('a'), sql('b'), sql('c')), result_name: 'j' })).toBe("JOIN (3) |=> 'j'");
    expect(label({ ...race(sql('a'), sql('b')), result_name: 'r' })).toBe('RACE');
    expect(label({ node_type: 'JOIN', left_node: sql('a'), right_node: sql('b') })).toBe('JOIN (2)');
  });
});

describe('instance mode (Appendix A)', () => {
  it('renders the worked example byte for byte', () => {
    const tree = displayTree(seq(sql('SELECT 1 AS a', 'x'), sql('SELECT $x + 1 AS b')));
    const text = renderInstanceExplain({
      id: 'c0ffee42',
      label: 'demo',
      status: 'Completed',
      output: '{"rows":[{"b":2}],"row_count":1}',
      tree: renderTree(tree, () => 'completed'),
    });
    expect(text).toBe(
      [
        'Instance: c0ffee42 (demo)',
        'Status:   ✓ Completed',
        'Output:   {"rows":[{"b":2}],"row_count":1}',
        '',
        dots("SQL:·SELECT·1·AS·a·|=>·'x'·✓····"),
        dots('→·SQL:·SELECT·$x·+·1·AS·b·✓·····'),
      ].join('\n'),
    );
  });

  it('omits the label and the Output line when absent', () => {
    expect(renderInstanceExplain({ id: 'abcdef01', label: null, status: 'running', output: null, tree: 'T' })).toBe(
      'Instance: abcdef01\nStatus:   ⏳ running\n\nT',
    );
  });

  it('truncates output longer than 60 bytes to 57 + ...', () => {
    const sixty = 'o'.repeat(60);
    const head = (output: string): string => renderInstanceExplain({ id: 'abcdef01', label: null, status: 'x', output, tree: '' }).split('\n')[2];
    expect(head(sixty)).toBe(`Output:   ${sixty}`);
    expect(head(sixty + 'o')).toBe(`Output:   ${'o'.repeat(57)}...`);
  });

  it('status icons by lower-cased status', () => {
    expect(['Completed', 'ContinuedAsNew', 'Failed', 'canceled', 'Cancelled', 'Running', 'pending', 'Terminated'].map(statusIcon)).toEqual([
      '✓', '✓', '✗', '✗', '✗', '⏳', '○', '○',
    ]);
  });
});

describe('classifyExplainInput', () => {
  it('8 hex digits are an instance id (lower-cased)', () => {
    expect(classifyExplainInput('  C0FFEE42 \n')).toEqual({ kind: 'instance', id: 'c0ffee42' });
    expect(classifyExplainInput('c0ffee4')).not.toEqual(expect.objectContaining({ kind: 'instance' }));
    expect(classifyExplainInput('c0ffee4g').kind).toBe('unknown');
  });

  it('a JSON object with a string node_type is a graph', () => {
    const json = '{"node_type":"SQL","query":"SELECT 1"}';
    expect(classifyExplainInput(` ${json} `)).toEqual({ kind: 'graph', json });
    expect(classifyExplainInput('{"node_type":"NOT_A_NODE"}').kind).toBe('graph');
    expect(classifyExplainInput('{"node_type":1}').kind).toBe('unknown');
  });

  it('plain SQL without DSL markers is a single SQL node', () => {
    expect(classifyExplainInput('  select * from t ')).toEqual({ kind: 'sql', sql: 'select * from t' });
    expect(classifyExplainInput('WITH\nx AS (SELECT 1) SELECT * FROM x').kind).toBe('sql');
    expect(classifyExplainInput('VACUUM t').kind).toBe('unknown');
    expect(classifyExplainInput('SELECT').kind).toBe('unknown');
  });

  it('anything with a DSL marker is a DSL expression', () => {
    expect(classifyExplainInput(" 'SELECT 1' ~> 'SELECT 2' ")).toEqual({ kind: 'dsl', expr: "'SELECT 1' ~> 'SELECT 2'" });
    expect(classifyExplainInput("df.sleep(1)").kind).toBe('dsl');
    expect(classifyExplainInput("SELECT df.sql('x')").kind).toBe('dsl');
    for (const m of ['|=>', '?>', '!>', '@>']) expect(classifyExplainInput(`'a' ${m} 'b'`).kind).toBe('dsl');
  });

  it('the refusal text is the two-line message of the contract', () => {
    expect(CANNOT_EXPLAIN_MESSAGE).toBe(
      'Cannot explain input: not a valid Durofut JSON, instance ID, SQL statement, or DSL expression.\nHint: DSL expressions use df.*() functions and operators like ~>, |=>, &, |.',
    );
  });
});

describe('displayTree', () => {
  it('numbers nodes N1.. in pre-order: left, right, condition, extras', () => {
    const t = displayTree(seq(ifNode(sql('c'), sql('t'), sql('e')), join3(sql('a'), sql('b'), sql('x'))));
    expect(t.id).toBe('N1');
    expect(t.left?.id).toBe('N2');
    expect(t.left?.left?.id).toBe('N3');
    expect(t.left?.right?.id).toBe('N4');
    expect(t.left?.condition?.id).toBe('N5');
    expect(t.right?.id).toBe('N6');
    expect(t.right?.extras?.map((n) => n.id)).toEqual(['N9']);
    expect(t.left?.query).toBeNull();
    expect(t.left?.left).toMatchObject({ node_type: 'SQL', query: 't', result_name: null });
  });
});

describe('Mermaid and DOT', () => {
  const workflow = seq(
    sql('SELECT "init"', 'seed'),
    join3(ifNode(sql('SELECT $seed > 0'), sql("SELECT 'yes'"), sql('SELECT 1 < 2')), loop(seq(sql('SELECT 2'), sleep(1)), sql('SELECT false')), sql('SELECT 3')),
  );

  it('renders a flowchart with labelled edges and chain edges', () => {
    expect(renderMermaid(displayTree(workflow))).toBe(
      [
        'flowchart TD',
        `    n_N2["SQL: SELECT #34;init#34; |=#62; 'seed'"]`,
        '    n_N3["JOIN (3)"]',
        '    n_N4["IF"]',
        '    n_N7["SQL: SELECT $seed #62; 0"]',
        `    n_N5["SQL: SELECT 'yes'"]`,
        '    n_N6["SQL: SELECT 1 #60; 2"]',
        '    n_N8["LOOP (while)"]',
        '    n_N10["SQL: SELECT 2"]',
        '    n_N11["SLEEP 1s"]',
        '    n_N12["SQL: SELECT false"]',
        '    n_N13["SQL: SELECT 3"]',
        '    n_N2 --> n_N3',
        '    n_N4 -->|condition| n_N7',
        '    n_N4 -->|then| n_N5',
        '    n_N4 -->|else| n_N6',
        '    n_N3 -->|branch 1| n_N4',
        '    n_N10 --> n_N11',
        '    n_N8 -->|body| n_N10',
        '    n_N8 -->|while| n_N12',
        '    n_N3 -->|branch 2| n_N8',
        '    n_N3 -->|branch 3| n_N13',
      ].join('\n'),
    );
  });

  it('adds status classes when a marker is given', () => {
    const out = renderMermaid(displayTree(seq(sql('a'), sql('b'))), (id) => (id === 'N2' ? 'completed' : 'skipped'));
    expect(out.split('\n')).toEqual([
      'flowchart TD',
      '    n_N2["SQL: a"]',
      '    n_N3["SQL: b"]',
      '    n_N2 --> n_N3',
      '    classDef completed fill:#d4edda,stroke:#28a745',
      '    classDef failed fill:#f8d7da,stroke:#dc3545',
      '    classDef running fill:#fff3cd,stroke:#ffc107',
      '    classDef pending fill:#e2e3e5,stroke:#6c757d',
      '    classDef skipped fill:#f8f9fa,stroke:#adb5bd',
      '    class n_N2 completed',
      '    class n_N3 skipped',
    ]);
  });

  it('renders the same shape as a Graphviz digraph', () => {
    const out = renderDot(displayTree(ifNode(sql('SELECT "c"'), sql('t'), sql('e'))), (id) => (id === 'N1' ? 'running' : undefined));
    expect(out).toBe(
      [
        'digraph workflow {',
        '    rankdir=TB;',
        '    node [shape=box, fontname="monospace"];',
        '    n_N1 [label="IF", class="running", style=filled, fillcolor="#fff3cd", color="#ffc107"];',
        '    n_N4 [label="SQL: SELECT \\"c\\""];',
        '    n_N2 [label="SQL: t"];',
        '    n_N3 [label="SQL: e"];',
        '    n_N1 -> n_N4 [label="condition"];',
        '    n_N1 -> n_N2 [label="then"];',
        '    n_N1 -> n_N3 [label="else"];',
        '}',
      ].join('\n'),
    );
  });
});

describe('sagas: UNDO in every renderer', () => {
  // The README example, built by the core builders as df.with_undo / ~> / |=> build it.
  const README_EXAMPLE = b.seq(
    b.seq(
      b.seq(
        b.withUndo(b.as("INSERT INTO orders(item) VALUES ('book') RETURNING id", 'order'), 'DELETE FROM orders WHERE id = $order.id'),
        b.withUndo("UPDATE stock SET n = n - 1 WHERE item = 'book'", "UPDATE stock SET n = n + 1 WHERE item = 'book'"),
      ),
      b.withUndo(b.as('INSERT INTO payments(order_id) VALUES ($order.id) RETURNING id', 'payment'), 'UPDATE payments SET refunded = true WHERE id = $payment.id'),
    ),
    'SELECT book_courier($order.id)',
  );
  // Display ids: N1-N3 the THENs, N4 UNDO(N5 order, N6 delete), N7 UNDO(N8 stock -1, N9 stock +1),
  // N10 UNDO(N11 payment, N12 refund), N13 the courier.
  const readme = (): TreeNode => displayTree(JSON.parse(README_EXAMPLE) as Node);
  /** The courier failed; the root compensated payment, stock and order (most recent first), each in `<stamp>::<UNDO id>::1`. */
  const courierFailedAndUndone = (): Map<string, PhysicalNode> =>
    new Map<string, PhysicalNode>([
      ['N1', { status: 'failed', stamp: 'c0ffee42::1' }],
      ...['N2', 'N3', 'N4', 'N5', 'N7', 'N8', 'N10', 'N11'].map((id): [string, PhysicalNode] => [id, { status: 'completed', stamp: 'c0ffee42::1' }]),
      ['N13', { status: 'failed', stamp: 'c0ffee42::1' }],
      ['N12', { status: 'completed', stamp: 'c0ffee42::1::N10::1' }],
      ['N9', { status: 'completed', stamp: 'c0ffee42::1::N7::1' }],
      ['N6', { status: 'completed', stamp: 'c0ffee42::1::N4::1' }],
    ]);
  const inferred = (tree: TreeNode, physical: Map<string, PhysicalNode>): StatusMarker => {
    const out = inferStatuses(tree, physical);
    return (id) => out.get(id)?.status;
  };
  const lines = (text: string): string[] => text.split('\n').map((l) => l.trimEnd());
  const undo = (forward: Node, undoNode: Node, result_name?: string): Node => ({
    node_type: 'UNDO',
    left_node: forward,
    right_node: undoNode,
    ...(result_name ? { result_name } : {}),
  });

  it('nodeLabel: WITH UNDO (with its result name)', () => {
    expect(nodeLabel(displayTree(undo(seq(sql('a'), sql('b')), sql('c'))))).toBe('WITH UNDO');
    expect(nodeLabel(displayTree(undo(sql('a'), sql('c'), 'u')))).toBe("WITH UNDO |=> 'u'");
  });

  it('the README example: each step shows its undo beneath it', () => {
    const text = renderTree(readme());
    expect(lines(text)).toEqual([
      "SQL: INSERT INTO orders(item) VALUES ('book') RETURN... |=> 'order'",
      '    ↶ undo:',
      '      └─SQL: DELETE FROM orders WHERE id = $order.id',
      "→ SQL: UPDATE stock SET n = n - 1 WHERE item = 'book'",
      '    ↶ undo:',
      "      └─SQL: UPDATE stock SET n = n + 1 WHERE item = 'book'",
      "→ SQL: INSERT INTO payments(order_id) VALUES ($order.i... |=> 'payment'",
      '    ↶ undo:',
      '      └─SQL: UPDATE payments SET refunded = true WHERE id = ...',
      '→ SQL: SELECT book_courier($order.id)',
    ]);
    const widths = text.split('\n').map((l) => Array.from(l).length);
    expect(new Set(widths).size).toBe(1);
    expect(widths[0]).toBe(Array.from("→ SQL: INSERT INTO payments(order_id) VALUES ($order.i... |=> 'payment'").length + 4);
  });

  it('the README example after the courier failed: payment, stock and order undone', () => {
    const tree = readme();
    expect(lines(renderTree(tree, inferred(tree, courierFailedAndUndone())))).toEqual([
      "SQL: INSERT INTO orders(item) VALUES ('book') RETURN... |=> 'order' ✓",
      '    ↶ undo:',
      '      └─SQL: DELETE FROM orders WHERE id = $order.id ✓',
      "→ SQL: UPDATE stock SET n = n - 1 WHERE item = 'book' ✓",
      '    ↶ undo:',
      "      └─SQL: UPDATE stock SET n = n + 1 WHERE item = 'book' ✓",
      "→ SQL: INSERT INTO payments(order_id) VALUES ($order.i... |=> 'payment' ✓",
      '    ↶ undo:',
      '      └─SQL: UPDATE payments SET refunded = true WHERE id = ... ✓',
      '→ SQL: SELECT book_courier($order.id) ✗',
    ]);
  });

  it('the README example while the courier runs: registered undos pending, the failed stock step undoes nothing', () => {
    const tree = readme();
    const running = new Map<string, PhysicalNode>([
      ['N1', { status: 'running', stamp: 'c0ffee42::1' }],
      ['N13', { status: 'running', stamp: 'c0ffee42::1' }],
      ...['N2', 'N3', 'N4', 'N5', 'N7', 'N8', 'N10', 'N11'].map((id): [string, PhysicalNode] => [id, { status: 'completed', stamp: 'c0ffee42::1' }]),
    ]);
    expect(lines(renderTree(tree, inferred(tree, running))).filter((l) => l.includes('undo') || l.startsWith('      └─'))).toEqual([
      '    ↶ undo:',
      '      └─SQL: DELETE FROM orders WHERE id = $order.id ○',
      '    ↶ undo:',
      "      └─SQL: UPDATE stock SET n = n + 1 WHERE item = 'book' ○",
      '    ↶ undo:',
      '      └─SQL: UPDATE payments SET refunded = true WHERE id = ... ○',
    ]);
    // The stock step failed: its undo was never registered; the order's undo ran.
    const stockFailed = new Map<string, PhysicalNode>([
      ['N1', { status: 'failed', stamp: 'c0ffee42::1' }],
      ['N2', { status: 'failed', stamp: 'c0ffee42::1' }],
      ['N3', { status: 'failed', stamp: 'c0ffee42::1' }],
      ['N4', { status: 'completed', stamp: 'c0ffee42::1' }],
      ['N5', { status: 'completed', stamp: 'c0ffee42::1' }],
      ['N7', { status: 'failed', stamp: 'c0ffee42::1' }],
      ['N8', { status: 'failed', stamp: 'c0ffee42::1' }],
      ['N6', { status: 'completed', stamp: 'c0ffee42::1::N4::1' }],
    ]);
    expect(lines(renderTree(tree, inferred(tree, stockFailed)))).toEqual([
      "SQL: INSERT INTO orders(item) VALUES ('book') RETURN... |=> 'order' ✓",
      '    ↶ undo:',
      '      └─SQL: DELETE FROM orders WHERE id = $order.id ✓',
      "→ SQL: UPDATE stock SET n = n - 1 WHERE item = 'book' ✗",
      '    ↶ undo:',
      "      └─SQL: UPDATE stock SET n = n + 1 WHERE item = 'book' ⊘",
      "→ SQL: INSERT INTO payments(order_id) VALUES ($order.i... |=> 'payment' ⊘",
      '    ↶ undo:',
      '      └─SQL: UPDATE payments SET refunded = true WHERE id = ... ⊘',
      '→ SQL: SELECT book_courier($order.id) ⊘',
    ]);
  });

  it('a chain forward is a WITH UNDO node with do and undo blocks; an undo can be a chain', () => {
    const tree = displayTree(seq(undo(seq(sql('a'), sql('b')), seq(sql('undo b'), sql('undo a'))), sql('c')));
    const status: Record<string, InferredStatus> = { N2: 'completed', N4: 'completed', N5: 'completed', N7: 'completed', N8: 'failed', N9: 'failed' };
    expect(lines(renderTree(tree, (id) => status[id]))).toEqual([
      'WITH UNDO ✓',
      '    ▸ do:',
      '      └─SQL: a ✓',
      '      → SQL: b ✓',
      '    ↶ undo:',
      '      └─SQL: undo b ✓',
      '      → SQL: undo a ✗',
      '→ SQL: c ✗',
    ]);
  });

  it('a named UNDO is drawn as itself; a composite single forward keeps its own blocks, under a │ rail in a branch', () => {
    const retry: Node = { node_type: 'RETRY', left_node: sql('charge'), query: '{"max_attempts":3,"backoff_seconds":1}' };
    expect(lines(explain(race(undo(retry, sql('refund')), undo(sql('x'), sql('undo x'), 'r'))))).toEqual([
      'RACE',
      '    ║ branch 1:',
      '      ├─RETRY (max 3 attempts, backoff 1s)',
      '      │   ↺ attempt:',
      '      │     └─SQL: charge',
      '      │   ↶ undo:',
      '      │     └─SQL: refund',
      '    ║ branch 2:',
      "      └─WITH UNDO |=> 'r'",
      '          ▸ do:',
      '            └─SQL: x',
      '          ↶ undo:',
      '            └─SQL: undo x',
    ]);
  });

  it('nested UNDOs collapse into the innermost forward, undos innermost first', () => {
    expect(lines(explain(undo(undo(sql('a'), sql('undo a 1')), sql('undo a 2'))))).toEqual([
      'SQL: a',
      '    ↶ undo:',
      '      └─SQL: undo a 1',
      '    ↶ undo:',
      '      └─SQL: undo a 2',
    ]);
  });

  it('Mermaid: the README example, each undo a dashed edge from its step, undo nodes coloured', () => {
    const tree = readme();
    const out = renderMermaid(tree, inferred(tree, courierFailedAndUndone())).split('\n');
    expect(out.filter((l) => !l.includes('classDef'))).toEqual([
      'flowchart TD',
      `    n_N5["SQL: INSERT INTO orders(item) VALUES ('book') RETURN... |=#62; 'order'"]`,
      '    n_N6["SQL: DELETE FROM orders WHERE id = $order.id"]',
      `    n_N8["SQL: UPDATE stock SET n = n - 1 WHERE item = 'book'"]`,
      `    n_N9["SQL: UPDATE stock SET n = n + 1 WHERE item = 'book'"]`,
      `    n_N11["SQL: INSERT INTO payments(order_id) VALUES ($order.i... |=#62; 'payment'"]`,
      '    n_N12["SQL: UPDATE payments SET refunded = true WHERE id = ..."]',
      '    n_N13["SQL: SELECT book_courier($order.id)"]',
      '    n_N5 -.->|undo| n_N6',
      '    n_N5 --> n_N8',
      '    n_N8 -.->|undo| n_N9',
      '    n_N8 --> n_N11',
      '    n_N11 -.->|undo| n_N12',
      '    n_N11 --> n_N13',
      '    class n_N5 completed',
      '    class n_N6 completed',
      '    class n_N8 completed',
      '    class n_N9 completed',
      '    class n_N11 completed',
      '    class n_N12 completed',
      '    class n_N13 failed',
    ]);
    expect(out.filter((l) => l.includes('classDef'))).toHaveLength(5);
  });

  it('Mermaid: a WITH UNDO box has a do edge and a dashed undo edge; chain edges reach it', () => {
    const tree = displayTree(seq(sql('first'), undo(seq(sql('a'), sql('b')), sql('undo'))));
    expect(renderMermaid(tree, (id) => (id === 'N6' ? 'pending' : 'completed')).split('\n').filter((l) => !l.includes('classDef'))).toEqual([
      'flowchart TD',
      '    n_N2["SQL: first"]',
      '    n_N3["WITH UNDO"]',
      '    n_N5["SQL: a"]',
      '    n_N6["SQL: b"]',
      '    n_N7["SQL: undo"]',
      '    n_N2 --> n_N3',
      '    n_N5 --> n_N6',
      '    n_N3 -->|do| n_N5',
      '    n_N3 -.->|undo| n_N7',
      '    class n_N2 completed',
      '    class n_N3 completed',
      '    class n_N5 completed',
      '    class n_N6 pending',
      '    class n_N7 completed',
    ]);
  });

  it('DOT: the README example, undo edges dashed, every node filled by status', () => {
    const tree = readme();
    expect(renderDot(tree, inferred(tree, courierFailedAndUndone()))).toBe(
      [
        'digraph workflow {',
        '    rankdir=TB;',
        '    node [shape=box, fontname="monospace"];',
        `    n_N5 [label="SQL: INSERT INTO orders(item) VALUES ('book') RETURN... |=> 'order'", class="completed", style=filled, fillcolor="#d4edda", color="#28a745"];`,
        '    n_N6 [label="SQL: DELETE FROM orders WHERE id = $order.id", class="completed", style=filled, fillcolor="#d4edda", color="#28a745"];',
        `    n_N8 [label="SQL: UPDATE stock SET n = n - 1 WHERE item = 'book'", class="completed", style=filled, fillcolor="#d4edda", color="#28a745"];`,
        `    n_N9 [label="SQL: UPDATE stock SET n = n + 1 WHERE item = 'book'", class="completed", style=filled, fillcolor="#d4edda", color="#28a745"];`,
        `    n_N11 [label="SQL: INSERT INTO payments(order_id) VALUES ($order.i... |=> 'payment'", class="completed", style=filled, fillcolor="#d4edda", color="#28a745"];`,
        '    n_N12 [label="SQL: UPDATE payments SET refunded = true WHERE id = ...", class="completed", style=filled, fillcolor="#d4edda", color="#28a745"];',
        '    n_N13 [label="SQL: SELECT book_courier($order.id)", class="failed", style=filled, fillcolor="#f8d7da", color="#dc3545"];',
        '    n_N5 -> n_N6 [label="undo", style=dashed];',
        '    n_N5 -> n_N8;',
        '    n_N8 -> n_N9 [label="undo", style=dashed];',
        '    n_N8 -> n_N11;',
        '    n_N11 -> n_N12 [label="undo", style=dashed];',
        '    n_N11 -> n_N13;',
        '}',
      ].join('\n'),
    );
  });

  it('DOT: a WITH UNDO box', () => {
    expect(renderDot(displayTree(undo(seq(sql('a'), sql('b')), sql('c'))))).toBe(
      [
        'digraph workflow {',
        '    rankdir=TB;',
        '    node [shape=box, fontname="monospace"];',
        '    n_N1 [label="WITH UNDO"];',
        '    n_N3 [label="SQL: a"];',
        '    n_N4 [label="SQL: b"];',
        '    n_N5 [label="SQL: c"];',
        '    n_N3 -> n_N4;',
        '    n_N1 -> n_N3 [label="do"];',
        '    n_N1 -> n_N5 [label="undo", style=dashed];',
        '}',
      ].join('\n'),
    );
  });
});
