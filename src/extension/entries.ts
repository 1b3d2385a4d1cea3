/** Every bundle entry point, keyed as build/manifest.ts names them. */
import * as control from './control';
import { version } from './info';
import { MONITOR_ENTRIES } from './monitor-entries';
import { DSL_ENTRIES } from './dsl';
import * as vars from './vars';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const ENTRIES: Record<string, (...args: any[]) => unknown> = {
  ...DSL_ENTRIES,
  start: control.start,
  signal: control.signal,
  cancel: control.cancel,
  status: control.status,
  result: control.result,
  await_instance: control.awaitInstance,
  wait_for_completion: control.waitForCompletion,
  run: control.run,
  setvar: vars.setvar,
  getvar: vars.getvar,
  unsetvar: vars.unsetvar,
  clearvars: vars.clearvars,
  ...MONITOR_ENTRIES,
  version,
};
