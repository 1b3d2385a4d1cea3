/**
 * What a node's run comes to (an Outcome) and the events that record it: the pure helpers the
 * interpreter (src/worker/interpreter.ts) and the claim-time failure path (src/worker/instance.ts)
 * share.
 */
import { DfError } from '../core/errors';
import type { TreeNode } from '../core/node';
import { parseJsonOrdered, stringifyJson, tryParseJson } from '../core/substitute';
import type { NodeEvent, RunRecord } from './store';

export type Outcome = { kind: 'ok'; result: string } | { kind: 'fail'; error: string } | { kind: 'break'; value: string };

export const ok = (result: string): Outcome => ({ kind: 'ok', result });
export const fail = (error: string): Outcome => ({ kind: 'fail', error });

export function compactJson(text: string): string {
  return stringifyJson(parseJsonOrdered(text));
}

export function isJson(text: string): boolean {
  return tryParseJson(text) !== undefined;
}

/** A node's JSON config object, or a DfError naming the node type (hand-written rows are untrusted). */
export function config<T>(node: TreeNode): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(node.query ?? '');
  } catch (err) {
    throw new DfError(`${node.node_type} node ${node.id}: invalid JSON config: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new DfError(`${node.node_type} node ${node.id}: config must be a JSON object`);
  }
  return parsed as T;
}

/**
 * The events that fail an instance's path: every run still `running` becomes `failed` with
 * `message`, and the root is failed even if it had no run yet (its start waits for the next
 * durable write). Runs that finished are left alone.
 */
export function failingPath(history: Iterable<RunRecord>, rootId: string, rootStamp: string, message: string): NodeEvent[] {
  const events: NodeEvent[] = [];
  let root = false;
  for (const r of history) {
    if (r.status !== 'running') continue;
    events.push({ node: r.nodeId, stamp: r.stamp, status: 'failed', result: message, json: false });
    if (r.nodeId === rootId && r.stamp === rootStamp) root = true;
  }
  if (!root) events.push({ node: rootId, stamp: rootStamp, status: 'failed', result: message, json: false });
  return events;
}
