/**
 * Fault injection for the kill tests: with LKCD_KILL_AT=N set, the process
 * kills itself with SIGKILL at the N-th kill point it passes (counting from
 * 1), exactly as `kill -9` would at that moment. Kill points sit between
 * the steps whose order makes writeout and save crash-safe. With the
 * variable unset they cost one comparison.
 */
let passed = 0;
const target = ((): number => {
  const v = process.env.LKCD_KILL_AT;
  return v && /^\d+$/.test(v) ? Number(v) : 0;
})();

export function killPoint(_name: string): void {
  if (target === 0) return;
  passed++;
  if (passed === target) process.kill(process.pid, 'SIGKILL');
}
