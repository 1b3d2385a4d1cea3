/**
 * df.explain(input) (API §10.8): instance mode (live tree with inferred-status markers), graph
 * mode (a Durofut JSON), a bare SQL statement, and DSL source expressions evaluated as the caller.
 * Rendering lives in src/core/explain.ts; this module only fetches and dispatches.
 */
import { parseNodeLenient } from '../core/ensure';
import { DfError } from '../core/errors';
import { buildTree } from '../core/flatten';
import {
  CANNOT_EXPLAIN_MESSAGE,
  classifyExplainInput,
  displayTree,
  renderInstanceExplain,
  renderTree,
} from '../core/explain';
import type { Node } from '../core/node';
import { validateGraph } from '../core/validate';
import { one, query } from './db';
import { inferInstance, nodeRows, visibleInstance } from './monitor';
import { currentExecutionJoin, eq } from './sqltext';

export function explain(input: string): string {
  const c = classifyExplainInput(input);
  switch (c.kind) {
    case 'instance':
      return explainInstance(c.id);
    case 'graph':
      return explainGraph(JSON.parse(c.json));
    case 'sql':
      return renderTree(displayTree({ node_type: 'SQL', query: c.sql }));
    case 'dsl':
      return explainExpression(c.expr);
    default:
      return CANNOT_EXPLAIN_MESSAGE;
  }
}

/** Validates (problems are returned as text, not raised) and renders with display ids N1, N2, … */
function explainGraph(value: unknown): string {
  const root: Node = parseNodeLenient(value);
  try {
    validateGraph(root);
  } catch (err) {
    if (err instanceof DfError) return err.message;
    throw err;
  }
  return renderTree(displayTree(root));
}

/** Evaluates `SELECT <expr>` as the caller, then explains the resulting Durofut JSON. */
function explainExpression(expr: string): string {
  let value: unknown;
  try {
    // A bind parameter makes this a prepared statement, so the input cannot smuggle in a second
    // command; the newlines keep a trailing `-- comment` in the input from swallowing the cast.
    const row = one<{ v: unknown }>(`SELECT (\n${expr}\n)::pg_catalog.text AS v FROM (SELECT $1::pg_catalog.int4 AS one) AS _p`, [1]);
    value = row ? row.v : null;
  } catch (err) {
    return `Failed to evaluate expression: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (value === null || value === undefined) return 'Expression returned NULL';
  let parsed: unknown;
  try {
    parsed = JSON.parse(String(value));
  } catch (err) {
    return `Failed to parse Durofut JSON: ${err instanceof Error ? err.message : String(err)}`;
  }
  return explainGraph(parsed);
}

function explainInstance(id: string): string {
  const inst = visibleInstance(id);
  if (!inst) return `Instance '${id}' not found`;
  const rows = nodeRows(id);
  if (rows.length === 0) return `No nodes found for instance '${id}'`;
  const exec = query<{ cur_status: string | null; cur_output: string | null }>(
    `SELECT cur.cur_status, cur.cur_output FROM df.instances i ${currentExecutionJoin('i.id')} WHERE ${eq('i.id', '$1::pg_catalog.text')}`,
    [id],
  )[0];
  const { tree, inferred } = inferInstance(rows, inst.root_node);
  if (tree === null) {
    buildTree(rows, inst.root_node); // throws the DfError that describes the damage
    throw new DfError(`Invalid node graph for instance '${id}'`);
  }
  return renderInstanceExplain({
    id: inst.id,
    label: inst.label,
    // The engine status of the current execution (a cancelled instance's execution reads Failed).
    status: exec?.cur_status ?? inst.status,
    output: exec?.cur_output ?? null,
    tree: renderTree(tree, (nodeId) => inferred.get(nodeId)?.status),
  });
}
