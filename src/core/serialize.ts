/**
 * Wire serialisation of DSL nodes (API §3.15, §5.1): compact JSON, fixed key order
 * `node_type, left_node, right_node, condition_node, extra_nodes, query, result_name`,
 * absent fields (and an empty `extra_nodes`) omitted. Strings are escaped with JSON.stringify,
 * which matches serde_json for every string a PostgreSQL text value can hold.
 *
 * The walk is iterative so that arbitrarily deep (hand-written) graphs serialise without
 * exhausting the stack; validation, not serialisation, is where depth is limited.
 */
import type { Node } from './node';
import { rawOfMalformed } from './ensure';

type Item = string | Node;

export function serializeNode(node: Node): string {
  let out = '';
  const stack: Item[] = [node];
  while (stack.length > 0) {
    const item = stack.pop() as Item;
    if (typeof item === 'string') {
      out += item;
      continue;
    }
    // A child that failed to deserialise during ensure is kept verbatim so that validation can
    // still report it (with its path) after it has passed through further builders.
    const raw = rawOfMalformed(item);
    if (raw !== undefined) {
      out += JSON.stringify(raw);
      continue;
    }
    const parts: Item[] = ['{"node_type":' + JSON.stringify(item.node_type)];
    if (item.left_node !== undefined) parts.push(',"left_node":', item.left_node);
    if (item.right_node !== undefined) parts.push(',"right_node":', item.right_node);
    if (item.condition_node !== undefined) parts.push(',"condition_node":', item.condition_node);
    if (item.extra_nodes !== undefined && item.extra_nodes.length > 0) {
      parts.push(',"extra_nodes":[');
      item.extra_nodes.forEach((extra, i) => {
        if (i > 0) parts.push(',');
        parts.push(extra);
      });
      parts.push(']');
    }
    let tail = '';
    if (item.query !== undefined) tail += ',"query":' + JSON.stringify(item.query);
    if (item.result_name !== undefined) tail += ',"result_name":' + JSON.stringify(item.result_name);
    parts.push(tail + '}');
    for (let i = parts.length - 1; i >= 0; i--) stack.push(parts[i]);
  }
  return out;
}
