/**
 * One claimed instance: load it, check the identity it will run as, and drive the interpreter.
 * Failures of the graph become failed instances; infrastructure trouble (lease lost, cancel,
 * shutdown, a database that stays away) leaves the instance to be resumed, never half-written.
 */
import { buildTree } from '../core/flatten';
import { Aborted } from './clock';
import { Interpreter, type Deps, type InstanceState } from './interpreter';
import { LeaseLost } from './steps';
import type { Claim } from './store';

export interface InstanceRunOptions {
  defaultDatabase: string;
  superuserAllowed: () => Promise<boolean>;
}

export async function runInstance(deps: Deps, claim: Claim, signal: AbortSignal, opts: InstanceRunOptions, state?: (s: InstanceState) => void): Promise<void> {
  const { store, log } = deps;
  const { instance, nodes, history } = await store.loadInstance(claim.instanceId, claim.executionId);
  if (!instance) return; // rolled back or deleted meanwhile: its queue row went with it
  const failInstance = async (message: string) => {
    await store.commit(claim.instanceId, claim.token, [], 'failed', message);
    log.info({ instance: claim.instanceId, status: 'failed', error: message }, 'instance failed');
  };
  if (instance.role === null) return failInstance(`Instance ${instance.id}: submitted_by role no longer exists in pg_roles`);
  if (instance.superuser && !(await opts.superuserAllowed())) {
    return failInstance(`pg_durable blocked instance ${instance.id}: submitted_by role "${instance.role}" is a superuser, but pg_durable.enable_superuser_instances is off`);
  }
  if (!instance.canLogin) {
    return failInstance(`Instance ${instance.id}: submitted_by role "${instance.role}" does not have LOGIN privilege any more; steps run as that role. Grant LOGIN to it again or start the workflow as another role.`);
  }
  let root;
  try {
    root = buildTree(nodes, instance.rootNode);
  } catch (err) {
    return failInstance(`Instance ${instance.id}: invalid graph: ${(err as Error).message}`);
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
  };
  state?.(inst);
  const interpreter = new Interpreter(deps, inst, root, history, signal);
  try {
    if (instance.status === 'pending') {
      await interpreter.write([], 'running');
      log.info({ instance: inst.id, status: 'running', label: inst.label, role: inst.role }, 'instance started');
    } else {
      log.info({ instance: inst.id, execution: inst.executionId, replayed: history.length }, 'instance resumed');
    }
    const outcome = await interpreter.run();
    if (outcome.kind === 'ok') log.info({ instance: inst.id, status: 'completed' }, 'instance completed');
    else if (outcome.kind === 'fail') log.info({ instance: inst.id, status: 'failed', error: outcome.error }, 'instance failed');
  } catch (err) {
    if (err instanceof Aborted) {
      log.info({ instance: inst.id, reason: signal.reason ?? 'aborted' }, 'instance stopped');
    } else if (err instanceof LeaseLost || (err as { code?: string }).code === 'PD001') {
      log.warn({ instance: inst.id }, 'lease lost (cancelled, finished or taken over); stopping this run');
    } else {
      throw err;
    }
  }
}
