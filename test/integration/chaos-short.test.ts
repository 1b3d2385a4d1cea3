/**
 * The CI-sized chaos run (the full one is `npm run chaos`, see docs/RELIABILITY.md): ~70 mixed
 * workflows while workers are SIGKILLed (two or more at once, the first time all of them), their
 * backends terminated, and PostgreSQL restarted with a fast and an immediate (crash-recovery)
 * shutdown, signals sent while no worker is alive and while the server is down. Fails on any
 * violation of the invariants checked in chaos/engine.ts. Runs on its own private cluster.
 */
import { describe, expect, it } from 'vitest';
import { formatReport, PLANTED, plantViolations, runChaos, SELF_CHECK, SHORT } from '../../chaos/engine';

describe('chaos (short)', () => {
  it('every fault kind, every workflow kind: zero violations', async () => {
    const rep = await runChaos({ ...SHORT });
    console.log(`\n${formatReport(rep)}\n`);
    expect(rep.violations).toEqual(Object.fromEntries(Object.keys(rep.violations).map((k) => [k, 0])));
    expect(rep.instances).toBe(SHORT.workflows);
    expect(rep.completed).toBe(SHORT.workflows);
    expect(rep.faults.kills).toBeGreaterThanOrEqual(SHORT.minKills);
    expect(rep.faults.allWorkersDeadEvents).toBeGreaterThanOrEqual(1);
    expect(rep.faults.backendsTerminated).toBeGreaterThanOrEqual(SHORT.minTerminations);
    expect(rep.faults.pgFast).toBeGreaterThanOrEqual(1);
    expect(rep.faults.pgImmediate).toBeGreaterThanOrEqual(1);
    expect(rep.signals.sent).toBeGreaterThan(0);
    expect(rep.signals.whileNoWorker + rep.signals.duringPgRestart).toBeGreaterThanOrEqual(1);
    expect(rep.timers.count).toBeGreaterThan(0);
    // Recovery really happened: instances were resumed from checkpoints by another process.
    expect(rep.workerLog['instance resumed']).toBeGreaterThan(0);
  }, 330_000);

  it('the checks can fail: violations planted after a small run are all reported', async () => {
    const rep = await runChaos({ ...SELF_CHECK, beforeVerify: plantViolations });
    for (const kind of PLANTED) expect(rep.violations[kind], kind).toBeGreaterThan(0);
  }, 180_000);
});
