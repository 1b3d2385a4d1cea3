/**
 * The monitoring entry points (API §10): in the plv8 build a chunk of their own, loaded on the
 * first monitoring call of a session (build/bundle.ts swaps in src/extension/monitor-lazy.ts).
 */
import { explain } from './explain';
import * as monitor from './monitor';
import { pruneExecutions } from './prune';

export const MONITOR_ENTRIES = {
  list_instances: monitor.listInstances,
  list_instances_paged: monitor.listInstancesPaged,
  instance_info: monitor.instanceInfo,
  instance_executions: monitor.instanceExecutions,
  instance_nodes: monitor.instanceNodes,
  instance_nodes_history: monitor.instanceNodesHistory,
  explain,
  prune_executions: pruneExecutions,
};
