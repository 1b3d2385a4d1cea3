/**
 * `pg-durable explain <id|dsl-or-json> [--format text|mermaid|dot]`. Text is df.explain's own
 * output; Mermaid and Graphviz render the same tree locally (src/core/explain.ts), with the
 * inferred status of every node (from df.instance_nodes) for an instance.
 */
import type pg from 'pg';
import { parseNodeLenient } from '../core/ensure';
import { DfError } from '../core/errors';
import { CANNOT_EXPLAIN_MESSAGE, classifyExplainInput, displayTree, renderDot, renderMermaid, type StatusMarker } from '../core/explain';
import { buildTree, type NodeRow } from '../core/flatten';
import type { InferredStatus, TreeNode } from '../core/node';
import { validateGraph } from '../core/validate';
import { CONNECTION_HELP, UsageError, command, connect } from './monitor-util';

const HELP = `usage: pg-durable explain <instance-id | DSL expression | Durofut JSON | SQL> [--format text|mermaid|dot] [--database-url URL]

Explains a workflow.
  text     (default) df.explain's tree; for an instance id, with the live status of every node
  mermaid  a Mermaid flowchart (paste into a \`\`\`mermaid block on GitHub)
  dot      a Graphviz digraph (pipe into \`dot -Tsvg\`)
A DSL expression (e.g. "'SELECT 1' ~> 'SELECT 2'") is evaluated by the database as you.
A Durofut JSON or a plain SQL statement needs no database for mermaid/dot.

${CONNECTION_HELP}`;

const FORMATS = ['text', 'mermaid', 'dot'] as const;
type Format = (typeof FORMATS)[number];

export interface Diagram {
  tree: TreeNode;
  marker?: StatusMarker;
}

/** Validation problems become a DfError carrying df.explain's text. */
function graphTree(value: unknown): TreeNode {
  const root = parseNodeLenient(value);
  validateGraph(root);
  return displayTree(root);
}

/** The tree and inferred statuses of an instance the CLI user can see. */
export async function instanceDiagram(client: pg.Client, id: string): Promise<Diagram> {
  const inst = await client.query('SELECT root_node FROM df.instances WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.text', [id]);
  if (inst.rows.length === 0) throw new DfError(`Instance '${id}' not found`);
  const r = await client.query(
    `SELECT node_id AS id, node_type, query, result_name, left_node, right_node, inferred_status
       FROM df.instance_nodes($1::pg_catalog.text)`,
    [id],
  );
  if (r.rows.length === 0) throw new DfError(`No nodes found for instance '${id}'`);
  const statuses = new Map<string, InferredStatus>(r.rows.map((row) => [row.id as string, row.inferred_status as InferredStatus]));
  return { tree: buildTree(r.rows as NodeRow[], inst.rows[0].root_node as string), marker: (nodeId) => statuses.get(nodeId) };
}

async function diagramOf(input: string, client: () => Promise<pg.Client>): Promise<Diagram> {
  const c = classifyExplainInput(input);
  switch (c.kind) {
    case 'instance':
      return instanceDiagram(await client(), c.id);
    case 'graph':
      return { tree: graphTree(JSON.parse(c.json)) };
    case 'sql':
      return { tree: displayTree({ node_type: 'SQL', query: c.sql }) };
    case 'dsl': {
      // A bind parameter keeps this to one statement (extended protocol), as df.explain does.
      const r = await (await client()).query(`SELECT (\n${c.expr}\n)::pg_catalog.text AS v FROM (SELECT $1::pg_catalog.int4 AS one) AS _p`, [1]);
      const v = r.rows[0]?.v as string | null | undefined;
      if (v === null || v === undefined) throw new DfError('Expression returned NULL');
      let parsed: unknown;
      try {
        parsed = JSON.parse(v);
      } catch (err) {
        throw new DfError(`Failed to parse Durofut JSON: ${(err as Error).message}`);
      }
      return { tree: graphTree(parsed) };
    }
    default:
      throw new DfError(CANNOT_EXPLAIN_MESSAGE);
  }
}

export function run(args: string[]): Promise<number> {
  return command('explain', HELP, args, { values: ['format'] }, async ({ positional, options }) => {
    if (positional.length !== 1) throw new UsageError('expected exactly one argument: an instance id, a DSL expression, a Durofut JSON or SQL');
    const format = (options.format ?? 'text') as Format;
    if (!FORMATS.includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}, got '${options.format}'`);
    let conn: pg.Client | null = null;
    const client = async (): Promise<pg.Client> => (conn ??= await connect(options));
    try {
      if (format === 'text') {
        const r = await (await client()).query('SELECT df.explain($1::pg_catalog.text) AS e', [positional[0]]);
        console.log(r.rows[0].e);
        return 0;
      }
      let diagram: Diagram;
      try {
        diagram = await diagramOf(positional[0], client);
      } catch (err) {
        if (!(err instanceof DfError)) throw err;
        console.error(err.message);
        return 1;
      }
      console.log(format === 'mermaid' ? renderMermaid(diagram.tree, diagram.marker) : renderDot(diagram.tree, diagram.marker));
      return 0;
    } finally {
      if (conn !== null) await (conn as pg.Client).end().catch(() => undefined);
    }
  });
}
