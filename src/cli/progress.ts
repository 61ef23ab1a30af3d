/**
 * A progress reporter for long work: a single updating line on a terminal,
 * nothing at all when stderr is not one (CI logs, pipes, tests).
 */
export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): ((done: bigint, total: bigint) => void) & { end(): void } {
  const enabled = Boolean(stream.isTTY) && process.env.LKCD_NO_PROGRESS !== '1';
  let last = -1;
  const start = Date.now();
  const fn = ((done: bigint, total: bigint): void => {
    if (!enabled || total === 0n) return;
    const pct = Number((done * 100n) / total);
    if (pct === last) return;
    last = pct;
    const width = 30;
    const filled = Math.round((pct / 100) * width);
    const secs = ((Date.now() - start) / 1000).toFixed(1);
    stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}% ${secs}s`);
  }) as ((done: bigint, total: bigint) => void) & { end(): void };
  fn.end = (): void => {
    if (enabled && last >= 0) stream.write('\n');
  };
  return fn;
}
