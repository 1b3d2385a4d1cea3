/** Bounded concurrency with a FIFO queue and an acquire timeout (step-connection slots). */
export class AcquireTimeout extends Error {}

export class Semaphore {
  private available: number;
  private readonly waiters: { resolve: () => void; timer: NodeJS.Timeout | null }[] = [];

  constructor(readonly size: number) {
    this.available = size;
  }

  get inUse(): number {
    return this.size - this.available;
  }

  /** Acquirers waiting for a slot. */
  get waiting(): number {
    return this.waiters.length;
  }

  acquire(timeoutMs: number, signal?: AbortSignal): Promise<() => void> {
    const release = () => this.release();
    if (this.available > 0) {
      this.available--;
      return Promise.resolve(once(release));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(once(release));
        },
        timer: null as NodeJS.Timeout | null,
      };
      const drop = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
      };
      const onAbort = () => {
        if (waiter.timer) clearTimeout(waiter.timer);
        drop();
        reject(signal?.reason ?? new Error('aborted'));
      };
      waiter.timer = setTimeout(() => {
        drop();
        signal?.removeEventListener('abort', onAbort);
        reject(new AcquireTimeout());
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next) {
      if (next.timer) clearTimeout(next.timer);
      next.resolve();
    } else {
      this.available++;
    }
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      fn();
    }
  };
}
