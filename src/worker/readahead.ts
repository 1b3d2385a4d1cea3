/**
 * Claimed instances held until a step slot frees (the worker's read-ahead).
 *
 * A claim costs PostgreSQL a fixed part per statement, and a slot that frees while the worker has
 * nothing claimed stays idle for a claim's round trip. So a worker whose instances finish quickly
 * claims more than its free slots and holds the rest here, not started: a slot that frees takes
 * the oldest at once, and the next claim comes when a third are left, for many at a time. One-step
 * instances, one worker × 10 slots, alternating builds: 4.1 instances per claim before, 12.5 with
 * the read-ahead; the management connection's CPU per instance −35 to −41 % (docs/PERFORMANCE.md).
 *
 * Held instances have not started, so they wait for no step slot (no --acquire-timeout), write no
 * 'running' stamp and take no connection. How many are held follows how fast instances finish:
 * as many as finished in the last WINDOW_MS, at most `limit` (the worker passes twice its step
 * slots), so one waits here about WINDOW_MS; a worker whose instances run long holds none and
 * claims as before. One held longer than MAX_HOLD_MS (its slots stayed busy) is handed back, and
 * one whose instance is cancelled meanwhile is dropped (the worker's cancel notification), so no
 * run starts from what its claim read before the cancel.
 */
import type { Claim } from './store';

/**
 * Finishes counted for the read-ahead's size: 20 ms is ten claim round trips of a busy worker
 * here (1–2 ms each), and a tenth of the 200 ms after which a run writes its 'running' stamp.
 */
const WINDOW_MS = 20;
/**
 * Held longer than this, a claim goes back to the queue: half the shortest lease (--lease-seconds
 * 2), since heartbeats renew only the leases of started instances.
 */
export const MAX_HOLD_MS = 1000;

export class ReadAhead {
  private readonly held: { claim: Claim; at: number }[] = [];
  private readonly finishes: number[] = [];

  constructor(private readonly limit: number, private readonly now: () => number = () => performance.now()) {}

  get size(): number {
    return this.held.length;
  }

  /** An instance of this worker finished (its size follows the rate of these). */
  finished(): void {
    this.finishes.push(this.now());
    if (this.finishes.length > this.limit) this.finishes.shift();
  }

  /** How many to hold beyond the free slots now: the finishes of the last WINDOW_MS. */
  target(): number {
    const since = this.now() - WINDOW_MS;
    let n = 0;
    for (const t of this.finishes) if (t >= since) n++;
    return n;
  }

  hold(claim: Claim): void {
    this.held.push({ claim, at: this.now() });
  }

  /** The oldest held claim, or null. */
  take(): Claim | null {
    return this.held.shift()?.claim ?? null;
  }

  /** The instances held. */
  ids(): string[] {
    return this.held.map((h) => h.claim.instanceId);
  }

  /** Removes and returns the held claim of `instanceId`, or null when none is held. */
  drop(instanceId: string): Claim | null {
    const i = this.held.findIndex((h) => h.claim.instanceId === instanceId);
    return i < 0 ? null : this.held.splice(i, 1)[0].claim;
  }

  /** Removes and returns the claims held longer than MAX_HOLD_MS. */
  expired(): Claim[] {
    const cut = this.now() - MAX_HOLD_MS;
    let n = 0;
    while (n < this.held.length && this.held[n].at < cut) n++;
    return this.held.splice(0, n).map((h) => h.claim);
  }

  /** Forgets every held claim (the session ended: its leases are handed back or gone). */
  clear(): void {
    this.held.length = 0;
  }
}
