import v8 from 'node:v8';
import vm from 'node:vm';

/** Which collection GarbageBound runs: the young generation's (about a millisecond), or a full one. */
export type GarbageKind = 'young' | 'full';

/**
 * Bounds the garbage of a loop that makes it faster than V8 collects it.
 * An API that returns a new Buffer per call (crypto's Cipher.update has no
 * form that writes into a buffer of ours) leaves dead Buffers that V8
 * frees only when its heap fills or their bytes reach its external limit
 * (about 64 MiB): tens of MiB resident. Rows fetched in batches larger than
 * the young generation (kept small by src/cli/heap.ts) are promoted and
 * pile up in the old generation, some 35 MiB between full collections.
 * Told how much was made (bytes, rows: the caller's unit), this runs a
 * collection of `kind` each `every` units.
 */
export class GarbageBound {
  private readonly collect: () => void;
  private made = 0;

  constructor(private readonly every: number, kind: GarbageKind) {
    // The flag takes effect for contexts made after it: a new one hands out its gc().
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as (opts?: { type: 'minor' }) => void;
    this.collect = kind === 'young' ? () => gc({ type: 'minor' }) : () => gc();
  }

  /** `units` more were made. */
  note(units: number): void {
    this.made += units;
    if (this.made < this.every) return;
    this.made = 0;
    this.collect();
  }
}
