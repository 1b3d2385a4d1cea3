/**
 * One claimed instance: load it, check the identity it will run as and the graph it will run, and
 * drive the interpreter. Failures of the graph become failed instances; infrastructure trouble
 * (lease lost, cancel, shutdown, a database that stays away) leaves the instance to be resumed,
 * never half-written.
 *
 * Tenants can write df.nodes rows by hand (column grants), so the graph is untrusted input: it is
 * size-checked before loading and validated with df.start's rules before anything runs, and an
 * error that would recur on every retry (a JS TypeError/RangeError, a permission or data error
 * from PostgreSQL) fails the instance instead of crashing the run over and over.
 */
import { DfError } from '../core/errors';
import { buildTree } from '../core/flatten';
import type { Node, TreeNode } from '../core/node';
import { validateGraph } from '../core/validate';
import { Aborted } from './clock';
import { Interpreter, type Deps, type InstanceState } from './interpreter';
import { failingPath } from './outcome';
import { LeaseLost, StepIdentityError } from './steps';
import { MAX_LOADED_GRAPH_BYTES, MAX_LOADED_NODES, type Claim } from './store';

export interface InstanceRunOptions {
  defaultDatabase: string;
  superuserAllowed: () => Promise<boolean>;
  /** The run reached its first leaf (InstanceState.firstLeaf). */
  firstLeaf?: () => void;
  /** The run starts compensating: its claim read a compensating cancel request. */
  compensating?: () => void;
}

export async function runInstance(deps: Deps, claim: Claim, signal: AbortSignal, opts: InstanceRunOptions, state?: (s: InstanceState) => void): Promise<void> {
  const { store, log } = deps;
  const { instance, nodes, history, cancelRequest } = claim.loaded ?? (await store.loadInstance(claim.instanceId, claim.executionId));
  if (!instance) return; // rolled back or deleted meanwhile: its queue row went with it
  if (cancelRequest !== null) opts.compensating?.();
  // Fails the instance before anything runs. If an earlier worker had started it, the root and
  // every run it left `running` (the path it was on) are stamped failed and finished runs keep
  // their outcome; an instance that never ran keeps its nodes `pending` (nothing ran).
  const failInstance = async (message: string) => {
    const events = history.length === 0 ? [] : failingPath(history, instance.rootNode, `${instance.id}::${claim.executionId}`, message);
    await store.commit(claim.instanceId, claim.token, events, 'failed', message);
    log.info({ instance: claim.instanceId, status: 'failed', error: message }, 'instance failed');
  };
  if (instance.role === null) {
    return failInstance(`Instance ${instance.id}: the role that started it (oid ${instance.roleOid}) no longer exists; its steps ran as that role`);
  }
  if (instance.superuser && !(await opts.superuserAllowed())) {
    return failInstance(`pg_durable blocked instance ${instance.id}: submitted_by role "${instance.role}" is a superuser, but pg_durable.enable_superuser_instances is off`);
  }
  if (!instance.canLogin) {
    return failInstance(`Instance ${instance.id}: submitted_by role "${instance.role}" does not have LOGIN privilege any more; steps run as that role. Grant LOGIN to it again or start the workflow as another role.`);
  }
  if (!instance.canUse) return failInstance(`Instance ${instance.id}: ${lostPrivileges(instance.role)}`);
  if (instance.nodeCount > MAX_LOADED_NODES) {
    return failInstance(`Instance ${instance.id}: invalid graph: ${instance.nodeCount} nodes exceed the maximum node count of ${MAX_LOADED_NODES}`);
  }
  if (instance.graphBytes > MAX_LOADED_GRAPH_BYTES) {
    return failInstance(`Instance ${instance.id}: invalid graph: its nodes hold ${instance.graphBytes} bytes, more than the ${MAX_LOADED_GRAPH_BYTES} a worker loads`);
  }
  let root: TreeNode;
  try {
    root = buildTree(nodes, instance.rootNode);
    validateGraph(envelope(root));
  } catch (err) {
    if (err instanceof DfError || err instanceof RangeError) return failInstance(`Instance ${instance.id}: invalid graph: ${err.message}`);
    throw err;
  }
  const inst: InstanceState = {
    id: instance.id,
    label: instance.label,
    role: instance.role,
    roleOid: instance.roleOid,
    database: instance.database ?? opts.defaultDatabase,
    vars: claim.vars,
    token: claim.token,
    executionId: claim.executionId,
    started: instance.status !== 'pending',
    firstLeaf: opts.firstLeaf,
  };
  state?.(inst);
  // A step in another database may have left a prepared transaction behind (a crash between
  // PREPARE and COMMIT PREPARED): settle it by its checkpoint before anything replays.
  await deps.steps.recoverInstance(inst.id, inst.database);
  // df.cancel(..., compensate => true) (cancelRequest): replay what is recorded, fail the frontier, undo, end cancelled.
  const interpreter = new Interpreter(deps, inst, root, history, signal, cancelRequest);
  try {
    if (history.length === 0 && claim.executionId === 1) {
      log.info({ instance: inst.id, status: 'running', label: inst.label, role: inst.role }, 'instance started');
    } else {
      log.info({ instance: inst.id, execution: inst.executionId, replayed: history.length }, 'instance resumed');
    }
    const outcome = await interpreter.run();
    if (outcome.kind === 'ok') log.info({ instance: inst.id, status: 'completed' }, 'instance completed');
    else if (outcome.kind === 'fail') log.info({ instance: inst.id, status: 'failed', error: outcome.error }, 'instance failed');
  } catch (err) {
    if (err instanceof Aborted && signal.reason === 'compensate' && cancelRequest === null) {
      // A compensating cancel arrived mid-run: start over from the durable history in compensating
      // mode (its own signal: the old one is spent; a plain df.cancel still ends it, the lease goes).
      log.info({ instance: inst.id }, 'compensating cancel: undoing the completed steps');
      const again = await store.loadInstance(inst.id, inst.executionId);
      await new Interpreter(deps, inst, root, again.history, new AbortController().signal, again.cancelRequest ?? 'Cancelled by user').run();
      log.info({ instance: inst.id, status: 'cancelled' }, 'instance cancelled after compensation');
    } else if (err instanceof Aborted) {
      log.info({ instance: inst.id, reason: signal.reason ?? 'aborted' }, 'instance stopped');
    } else if (err instanceof LeaseLost || (err as { code?: string }).code === 'PD001') {
      log.warn({ instance: inst.id }, 'lease lost (cancelled, finished or taken over); stopping this run');
    } else if (recurring(err) || err instanceof StepIdentityError) {
      // Retrying would fail the same way at every lease expiry: end the instance with the reason,
      // naming what happened to the role when that is the cause, and stamp the failing path.
      const standing = await store.roleStanding(inst.roleOid);
      const cause = (err as Error).message;
      let message: string;
      if (!standing.exists) message = `Instance ${inst.id}: role "${inst.role}" no longer exists (dropped while the instance ran); its steps ran as that role (${cause})`;
      else if (!standing.canUse) message = `Instance ${inst.id}: ${lostPrivileges(inst.role)} (${cause})`;
      else if (!standing.canLogin) message = `Instance ${inst.id}: role "${inst.role}" lost its LOGIN privilege; steps run as that role (${cause})`;
      else message = `Instance ${inst.id}: ${cause}`;
      await interpreter.abandon(message);
      log.error({ instance: inst.id, status: 'failed', error: message }, 'instance failed on an error that would recur');
    } else {
      throw err;
    }
  }
}

const lostPrivileges = (role: string) =>
  `role "${role}" lost its pg_durable privileges (df.revoke_usage, or USAGE on schema df / EXECUTE on df._commit revoked): its steps cannot checkpoint. Run df.grant_usage('${role}') and start the workflow again`;

/**
 * Errors that do not go away by retrying: JS type/range/syntax errors (a malformed hand-written
 * node config, JSON nested beyond the stack, a string beyond V8's limit) and PostgreSQL data (22),
 * integrity (23), privilege/syntax (42) and program-limit (54) errors, e.g. a step role whose
 * EXECUTE on df._commit was revoked mid-run.
 */
function recurring(err: unknown): boolean {
  if (err instanceof RangeError || err instanceof TypeError || err instanceof SyntaxError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|42|54)[0-9A-Z]{3}$/.test(code);
}

/** The tree in the envelope form df.start validates (children nested, no ids). */
function envelope(root: TreeNode): Node {
  const make = (t: TreeNode): Node => {
    const n: Node = { node_type: t.node_type };
    if (t.query !== null) n.query = t.query;
    if (t.result_name !== null) n.result_name = t.result_name;
    return n;
  };
  const out = make(root);
  const stack: Array<[TreeNode, Node]> = [[root, out]];
  while (stack.length > 0) {
    const [t, n] = stack.pop() as [TreeNode, Node];
    const child = (c: TreeNode): Node => {
      const m = make(c);
      stack.push([c, m]);
      return m;
    };
    if (t.left) n.left_node = child(t.left);
    if (t.right) n.right_node = child(t.right);
    if (t.condition) n.condition_node = child(t.condition);
    if (t.extras) n.extra_nodes = t.extras.map(child);
  }
  return out;
}
