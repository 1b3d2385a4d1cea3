/**
 * `df.explain` rendering (API §10.8): the text tree, the instance header, input dispatch, the
 * display-id conversion used by graph mode, and Mermaid / Graphviz renderings of the same tree.
 */
import type { InferredStatus, Node, TreeNode } from './node';

/** Returns a node's (inferred) status for markers, or undefined for no marker. */
export type StatusMarker = (nodeId: string) => InferredStatus | undefined;

const MARKERS: Record<InferredStatus, string> = {
  completed: ' ✓',
  failed: ' ✗',
  running: ' ⏳',
  pending: ' ○',
  skipped: ' ⊘',
};

// ---------------------------------------------------------------------------------------------
// Text helpers (byte-based truncation as in the original; character-based padding)
// ---------------------------------------------------------------------------------------------

function utf8Width(codePoint: number): number {
  return codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
}

/** The UTF-8 byte length of `s`. */
export function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) n += utf8Width(ch.codePointAt(0) as number);
  return n;
}

/** The longest prefix of `s` that is at most `maxBytes` UTF-8 bytes, ending on a character boundary. */
export function truncateUtf8(s: string, maxBytes: number): string {
  let n = 0;
  let end = 0;
  for (const ch of s) {
    const w = utf8Width(ch.codePointAt(0) as number);
    if (n + w > maxBytes) break;
    n += w;
    end += ch.length;
  }
  return s.slice(0, end);
}

/** `s` if at most `limit` bytes, else its first `keep` bytes followed by `...`. */
function ellipsize(s: string, limit: number, keep: number): string {
  return utf8Length(s) > limit ? truncateUtf8(s, keep) + '...' : s;
}

/** Characters as the original counts them (Unicode scalar values = JS code points). */
function charCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Rust's `char::is_whitespace` set, for trim/trim_end compatibility. */
const WS = '\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const TRAILING_WS = new RegExp(`[${WS}]+$`);
const LEADING_WS = new RegExp(`^[${WS}]+`);
const rustTrimEnd = (s: string): string => s.replace(TRAILING_WS, '');
const rustTrim = (s: string): string => rustTrimEnd(s).replace(LEADING_WS, '');

// ---------------------------------------------------------------------------------------------
// Node labels
// ---------------------------------------------------------------------------------------------

/** The JSON config of a node's query: an object, `{}` for JSON that is not an object, undefined if not JSON. */
function configOf(query: string | null): Record<string, unknown> | undefined {
  if (query === null) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(query);
  } catch {
    return undefined;
  }
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function branchesOf(node: TreeNode): TreeNode[] {
  const out: TreeNode[] = [];
  if (node.left) out.push(node.left);
  if (node.right) out.push(node.right);
  if (node.extras) out.push(...node.extras);
  return out;
}

/** A node's label as shown by df.explain (without status marker). */
export function nodeLabel(node: TreeNode): string {
  const suffix = node.result_name !== null && node.result_name !== undefined ? ` |=> '${node.result_name}'` : '';
  switch (node.node_type) {
    case 'SQL':
      return `SQL: ${ellipsize(node.query ?? '?', 50, 47)}${suffix}`;
    case 'SLEEP':
      return `SLEEP ${node.query ?? '?'}s${suffix}`;
    case 'WAIT_SCHEDULE': {
      const cfg = configOf(node.query);
      return `WAIT '${(cfg && str(cfg.cron_expr)) ?? '?'}'${suffix}`;
    }
    case 'HTTP':
    case 'HTTP_MULTIPART': {
      const cfg = configOf(node.query);
      const method = cfg ? str(cfg.method) ?? 'POST' : '?';
      const url = cfg ? ellipsize(str(cfg.url) ?? '?', 40, 37) : '?';
      return `${node.node_type} ${method} ${url}${suffix}`;
    }
    case 'SIGNAL': {
      const cfg = configOf(node.query);
      const name = (cfg && str(cfg.signal_name)) ?? '?';
      const t = cfg ? cfg.timeout_seconds : undefined;
      const timeout = typeof t === 'number' && Number.isInteger(t) ? ` (${t}s)` : '';
      return `SIGNAL '${name}'${timeout}${suffix}`;
    }
    case 'LOOP':
      return `LOOP ${node.condition ? '(while)' : '(infinite)'}${suffix}`;
    case 'RETRY': {
      const cfg = configOf(node.query);
      const n = cfg && typeof cfg.max_attempts === 'number' ? cfg.max_attempts : '?';
      const b = cfg && typeof cfg.backoff_seconds === 'number' ? cfg.backoff_seconds : '?';
      return `RETRY (max ${n} attempts, backoff ${b}s)${suffix}`;
    }
    case 'TIMEOUT': {
      const cfg = configOf(node.query);
      return `TIMEOUT ${cfg && typeof cfg.seconds === 'number' ? cfg.seconds : '?'}s${suffix}`;
    }
    case 'BREAK': {
      const cfg = configOf(node.query);
      const value = cfg ? str(cfg.break_value) : undefined;
      return value === undefined ? `BREAK${suffix}` : `BREAK '${ellipsize(value, 20, 17)}'${suffix}`;
    }
    case 'IF':
      return `IF${suffix}`;
    case 'JOIN':
      return `JOIN (${branchesOf(node).length})${suffix}`;
    case 'RACE':
      return 'RACE';
    case 'THEN':
      return 'SEQUENCE'; // never printed: THEN chains are flattened
    case 'UNDO':
      return `WITH UNDO${suffix}`; // printed only when it does not collapse into its forward (shownAs)
    default:
      return String(node.node_type);
  }
}

/** The items of a THEN chain, flattened left to right through nested THENs. */
function sequenceOf(node: TreeNode, out: TreeNode[] = []): TreeNode[] {
  if (node.node_type === 'THEN') {
    if (node.left) sequenceOf(node.left, out);
    if (node.right) sequenceOf(node.right, out);
  } else {
    out.push(node);
  }
  return out;
}

/**
 * The node drawn for `node`. A saga step (UNDO) whose forward is a single node (not a THEN chain)
 * and that carries no result name of its own collapses into its forward: the forward's label and
 * status stand for both (an UNDO completes or fails with its forward), and the undo hangs under it
 * (text: a `↶ undo:` block; diagrams: a dashed `undo` edge). Any other UNDO is drawn as itself,
 * `WITH UNDO`, with `▸ do:` / `do` for the forward and `↶ undo:` / dashed `undo` for the undo.
 * Text tree and diagrams follow the same rule.
 */
function shownAs(node: TreeNode): TreeNode {
  let n = node;
  while (n.node_type === 'UNDO' && n.left !== undefined && n.left.node_type !== 'THEN' && (n.result_name === null || n.result_name === undefined)) {
    n = n.left;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Text tree
// ---------------------------------------------------------------------------------------------

/**
 * Renders the explain tree. With `marker`, each node label gets its status marker. The result is
 * trimmed, and every line is right-padded to the longest line's length + 4 characters.
 */
export function renderTree(root: TreeNode, marker?: StatusMarker): string {
  const out: string[] = [];
  const mark = (n: TreeNode): string => {
    if (!marker) return '';
    const s = marker(n.id);
    return s ? MARKERS[s] ?? '' : '';
  };

  const renderNode = (node: TreeNode, prefix: string, isLast: boolean): void => {
    const connector = prefix === '' ? '' : isLast ? '└─' : '├─';
    if (node.node_type === 'THEN') {
      sequenceOf(node).forEach((item, i) => {
        const shown = shownAs(item);
        out.push(`${prefix}${i === 0 ? connector : '→ '}${nodeLabel(shown)}${mark(shown)}`);
        renderChildren(item, `${prefix}    `);
      });
      return;
    }
    const shown = shownAs(node);
    out.push(`${prefix}${connector}${nodeLabel(shown)}${mark(shown)}`);
    renderChildren(node, prefix === '' ? '    ' : isLast ? `${prefix}    ` : `${prefix}│   `);
  };

  const renderChildren = (node: TreeNode, prefix: string): void => {
    const block = (title: string, child: TreeNode | undefined): void => {
      if (!child) return;
      out.push(`${prefix}${title}`);
      renderNode(child, `${prefix}  `, true);
    };
    switch (node.node_type) {
      case 'IF':
        block('? condition:', node.condition);
        block('✓ then:', node.left);
        block('✗ else:', node.right);
        break;
      case 'LOOP':
        block('↻ body:', node.left);
        block('? while:', node.condition);
        break;
      case 'RETRY':
        block('↺ attempt:', node.left);
        break;
      case 'TIMEOUT':
        block('⏱ within:', node.left);
        break;
      case 'UNDO':
        // Collapsed: the forward's own blocks, then the undo; else the forward as a `do` block.
        if (shownAs(node) === node) block('▸ do:', node.left);
        else renderChildren(node.left as TreeNode, prefix);
        block('↶ undo:', node.right);
        break;
      case 'JOIN':
      case 'RACE': {
        const branches = branchesOf(node);
        branches.forEach((b, i) => {
          out.push(`${prefix}║ branch ${i + 1}:`);
          renderNode(b, `${prefix}  `, i === branches.length - 1);
        });
        break;
      }
      default:
        break;
    }
  };

  renderNode(root, '', true);
  return padLines(out.join('\n'));
}

/** Trim the text's end, then pad every line to (longest line in characters + 4). */
function padLines(text: string): string {
  const trimmed = rustTrimEnd(text);
  if (trimmed === '') return '';
  const lines = trimmed.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  const width = Math.max(...lines.map(charCount)) + 4;
  return lines.map((l) => l + ' '.repeat(width - charCount(l))).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Instance header
// ---------------------------------------------------------------------------------------------

/** The header icon for an instance status (case-insensitive). */
export function statusIcon(status: string): string {
  switch (status.toLowerCase()) {
    case 'completed':
    case 'continuedasnew':
      return '✓';
    case 'failed':
    case 'canceled':
    case 'cancelled':
      return '✗';
    case 'running':
      return '⏳';
    default:
      return '○';
  }
}

/**
 * Instance-mode output: the unpadded header (`Instance:`, `Status:`, optional `Output:`), an
 * empty line, then `tree` (already rendered with markers by `renderTree`).
 */
export function renderInstanceExplain(args: {
  id: string;
  label: string | null;
  status: string;
  output: string | null;
  tree: string;
}): string {
  let text = args.label !== null ? `Instance: ${args.id} (${args.label})\n` : `Instance: ${args.id}\n`;
  text += `Status:   ${statusIcon(args.status)} ${args.status}\n`;
  if (args.output !== null) text += `Output:   ${ellipsize(args.output, 60, 57)}\n`;
  return text + '\n' + args.tree;
}

// ---------------------------------------------------------------------------------------------
// Input dispatch
// ---------------------------------------------------------------------------------------------

export const CANNOT_EXPLAIN_MESSAGE =
  'Cannot explain input: not a valid Durofut JSON, instance ID, SQL statement, or DSL expression.\n' +
  'Hint: DSL expressions use df.*() functions and operators like ~>, |=>, &, |.';

const DSL_MARKERS = ['~>', '|=>', '?>', '!>', '@>', 'df.'];
const SQL_PREFIXES = [
  'SELECT ', 'INSERT ', 'UPDATE ', 'DELETE ', 'WITH ', 'CREATE ', 'ALTER ', 'DROP ', 'CALL ', 'DO ',
  'TRUNCATE ', 'GRANT ', 'REVOKE ', 'EXPLAIN ', 'SELECT\n', 'INSERT\n', 'UPDATE\n', 'DELETE\n', 'WITH\n',
];

export type ExplainInput =
  | { kind: 'instance'; id: string }
  | { kind: 'graph'; json: string }
  | { kind: 'sql'; sql: string }
  | { kind: 'dsl'; expr: string }
  | { kind: 'unknown' };

/**
 * How df.explain treats its input (after trimming): an 8-hex instance id; a JSON object with a
 * string `node_type` (graph mode); plain SQL when no DSL marker is present and it starts with an
 * SQL keyword; `unknown` (→ CANNOT_EXPLAIN_MESSAGE) for other marker-free text; else a DSL
 * source expression to evaluate.
 */
export function classifyExplainInput(input: string): ExplainInput {
  const trimmed = rustTrim(input);
  if (/^[0-9a-fA-F]{8}$/.test(trimmed)) return { kind: 'instance', id: trimmed.toLowerCase() };
  try {
    const v: unknown = JSON.parse(trimmed);
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof (v as { node_type?: unknown }).node_type === 'string') {
      return { kind: 'graph', json: trimmed };
    }
  } catch {
    // not JSON
  }
  if (!DSL_MARKERS.some((m) => trimmed.includes(m))) {
    const upper = trimmed.toUpperCase();
    if (SQL_PREFIXES.some((p) => upper.startsWith(p))) return { kind: 'sql', sql: trimmed };
    return { kind: 'unknown' };
  }
  return { kind: 'dsl', expr: trimmed };
}

// ---------------------------------------------------------------------------------------------
// Graph mode display ids
// ---------------------------------------------------------------------------------------------

/**
 * Converts a nested graph to a TreeNode with display ids N1, N2, … assigned in pre-order
 * (a node, then its left, right, condition and extra children). No validation.
 */
export function displayTree(root: Node): TreeNode {
  let counter = 0;
  const convert = (n: Node): TreeNode => {
    counter += 1;
    const t: TreeNode = {
      id: `N${counter}`,
      node_type: n.node_type,
      query: n.query ?? null,
      result_name: n.result_name ?? null,
    };
    if (n.left_node) t.left = convert(n.left_node);
    if (n.right_node) t.right = convert(n.right_node);
    if (n.condition_node) t.condition = convert(n.condition_node);
    if (n.extra_nodes && n.extra_nodes.length > 0) t.extras = n.extra_nodes.map(convert);
    return t;
  };
  return convert(root);
}

// ---------------------------------------------------------------------------------------------
// Mermaid / Graphviz
// ---------------------------------------------------------------------------------------------

interface GraphShape {
  nodes: TreeNode[];
  /** `dashed`: the edge to a saga step's undo (runs only on compensation). */
  edges: { from: TreeNode; to: TreeNode; label: string | null; dashed?: boolean }[];
}

/**
 * The diagram shape shared by Mermaid and DOT: every non-THEN node once, in pre-order; THEN
 * chains become unlabelled edges between consecutive items; a composite's edge to a THEN child
 * points at the chain's first item. A saga step (UNDO) collapses into its forward when that is a
 * single node (see shownAs), with a dashed edge `undo` from the forward to the undo's entry;
 * otherwise it is a `WITH UNDO` box with a `do` edge and a dashed `undo` edge.
 */
function diagramShape(root: TreeNode): GraphShape {
  const shape: GraphShape = { nodes: [], edges: [] };
  /** Adds `node` (or the chain it heads) and returns the entry node. */
  const visit = (node: TreeNode): TreeNode | undefined => {
    const items = sequenceOf(node);
    items.forEach((item, i) => {
      shape.nodes.push(shownAs(item));
      if (i > 0) shape.edges.push({ from: shownAs(items[i - 1]), to: shownAs(item), label: null });
      addChildren(item);
    });
    return items.length > 0 ? shownAs(items[0]) : undefined;
  };
  /** The edges from `item`'s box (itself, or the forward it collapses into) to its children. */
  const addChildren = (item: TreeNode): void => {
    const box = shownAs(item);
    const child = (label: string, c: TreeNode | undefined, dashed = false): void => {
      if (!c) return;
      const entry = visit(c);
      if (entry) shape.edges.push({ from: box, to: entry, label, ...(dashed ? { dashed } : {}) });
    };
    switch (item.node_type) {
      case 'IF':
        child('condition', item.condition);
        child('then', item.left);
        child('else', item.right);
        break;
      case 'LOOP':
        child('body', item.left);
        child('while', item.condition);
        break;
      case 'RETRY':
        child('attempt', item.left);
        break;
      case 'TIMEOUT':
        child('within', item.left);
        break;
      case 'JOIN':
      case 'RACE':
        branchesOf(item).forEach((b, i2) => child(`branch ${i2 + 1}`, b));
        break;
      case 'UNDO':
        // Collapsed: the forward's own edges hang on the same box; else a `do` edge to the forward.
        if (box === item) child('do', item.left);
        else addChildren(item.left as TreeNode);
        child('undo', item.right, true);
        break;
      default:
        break;
    }
  };
  visit(root);
  return shape;
}

const diagramId = (n: TreeNode): string => 'n_' + n.id.replace(/[^A-Za-z0-9_]/g, '_');

const STATUS_STYLE: Record<InferredStatus, { fill: string; stroke: string }> = {
  completed: { fill: '#d4edda', stroke: '#28a745' },
  failed: { fill: '#f8d7da', stroke: '#dc3545' },
  running: { fill: '#fff3cd', stroke: '#ffc107' },
  pending: { fill: '#e2e3e5', stroke: '#6c757d' },
  skipped: { fill: '#f8f9fa', stroke: '#adb5bd' },
};
const STATUSES: InferredStatus[] = ['completed', 'failed', 'running', 'pending', 'skipped'];

function mermaidText(s: string): string {
  const codes: Record<string, string> = { '"': '#34;', '#': '#35;', '&': '#38;', '<': '#60;', '>': '#62;' };
  let out = '';
  for (const ch of s) out += ch === '\n' ? '<br/>' : ch === '\r' ? '' : codes[ch] ?? ch;
  return out;
}

/**
 * A Mermaid `flowchart TD` of the tree: one box per node with its explain label, edges labelled
 * then/else/condition/body/while/branch i, THEN chains as plain edges. With `marker`, each node
 * gets the CSS class of its status (classDef lines included).
 */
export function renderMermaid(root: TreeNode, marker?: StatusMarker): string {
  const { nodes, edges } = diagramShape(root);
  const lines = ['flowchart TD'];
  for (const n of nodes) lines.push(`    ${diagramId(n)}["${mermaidText(nodeLabel(n))}"]`);
  for (const e of edges) {
    lines.push(`    ${diagramId(e.from)} ${e.dashed ? '-.->' : '-->'}${e.label ? `|${e.label}|` : ''} ${diagramId(e.to)}`);
  }
  if (marker) {
    for (const s of STATUSES) {
      const st = STATUS_STYLE[s];
      lines.push(`    classDef ${s} fill:${st.fill},stroke:${st.stroke}`);
    }
    for (const n of nodes) {
      const s = marker(n.id);
      if (s) lines.push(`    class ${diagramId(n)} ${s}`);
    }
  }
  return lines.join('\n');
}

function dotText(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r/g, '').replace(/\n/g, '\\n');
}

/** A Graphviz `digraph` of the same shape as renderMermaid; statuses as class + fill colour. */
export function renderDot(root: TreeNode, marker?: StatusMarker): string {
  const { nodes, edges } = diagramShape(root);
  const lines = ['digraph workflow {', '    rankdir=TB;', '    node [shape=box, fontname="monospace"];'];
  for (const n of nodes) {
    const s = marker ? marker(n.id) : undefined;
    const style = s ? `, class="${s}", style=filled, fillcolor="${STATUS_STYLE[s].fill}", color="${STATUS_STYLE[s].stroke}"` : '';
    lines.push(`    ${diagramId(n)} [label="${dotText(nodeLabel(n))}"${style}];`);
  }
  for (const e of edges) {
    const attrs = [...(e.label ? [`label="${e.label}"`] : []), ...(e.dashed ? ['style=dashed'] : [])];
    lines.push(`    ${diagramId(e.from)} -> ${diagramId(e.to)}${attrs.length > 0 ? ` [${attrs.join(', ')}]` : ''};`);
  }
  lines.push('}');
  return lines.join('\n');
}
