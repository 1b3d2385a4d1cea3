/** Wake-ups delivered by NOTIFY: a waiting SIGNAL node sleeps until its instance is signalled. */
import { Aborted } from './clock';

export class SignalHub {
  private readonly waiters = new Map<string, Set<() => void>>();

  /** The instances with a SIGNAL node waiting. */
  waiting(): string[] {
    return [...this.waiters.keys()];
  }

  notify(instanceId: string): void {
    const set = this.waiters.get(instanceId);
    if (!set) return;
    this.waiters.delete(instanceId);
    for (const wake of set) wake();
  }

  /** Resolves on a notification for the instance or after `ms`; rejects with Aborted. */
  wait(instanceId: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new Aborted());
      let set = this.waiters.get(instanceId);
      if (!set) this.waiters.set(instanceId, (set = new Set()));
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        set!.delete(done);
        resolve();
      };
      const onAbort = () => {
        clearTimeout(timer);
        set!.delete(done);
        reject(new Aborted());
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal.addEventListener('abort', onAbort, { once: true });
      set.add(done);
    });
  }
}
