/**
 * `npx tsx chaos/self-check.ts`: proves the checks can fail. A small chaos run, then, before the
 * checks, one violation of each data kind is planted (see plantViolations). Exit 0 when every
 * planted kind is reported. The CI test runs the same.
 */
import { formatReport, PLANTED, plantViolations, runChaos, SELF_CHECK } from './engine';

const rep = await runChaos({ ...SELF_CHECK, beforeVerify: plantViolations });
console.log(formatReport(rep).split('\n').filter((l) => l.startsWith('violations')).join('\n'));
const missed = PLANTED.filter((k) => !(rep.violations[k] > 0));
console.log(missed.length === 0 ? 'self-check: every planted violation was reported' : `self-check FAILED: not reported: ${missed.join(', ')}`);
process.exit(missed.length === 0 ? 0 : 1);
