/**
 * Time as the interpreter sees it. Durable timers (SLEEP, WAIT_SCHEDULE, SIGNAL timeouts, the
 * 1-second loop floor) store absolute wake-up times in this clock's milliseconds. Tests can run
 * it faster (PG_DURABLE_TEST_CLOCK_SPEED) to sample minute-based schedules without waiting.
 */
export class Aborted extends Error {
  constructor(reason = 'aborted') {
    super(reason);
    this.name = 'Aborted';
  }
}

export interface Clock {
  now(): number;
  /** Resolves at `at` (clock ms); rejects with Aborted when the signal fires. */
  sleepUntil(at: number, signal?: AbortSignal): Promise<void>;
}

export function systemClock(speed = 1): Clock {
  const origin = Date.now();
  const now = () => (speed === 1 ? Date.now() : origin + (Date.now() - origin) * speed);
  return {
    now,
    sleepUntil(at, signal) {
      return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(new Aborted());
        const delay = Math.max(0, (at - now()) / speed);
        // setTimeout caps at 2^31-1 ms (~24.8 days): longer waits re-arm.
        const step = Math.min(delay, 2 ** 31 - 1);
        const timer = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          if (step < delay) this.sleepUntil(at, signal).then(resolve, reject);
          else resolve();
        }, step);
        const onAbort = () => {
          clearTimeout(timer);
          reject(new Aborted());
        };
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}
