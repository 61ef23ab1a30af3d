import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Bounds the garbage of an API that returns a new Buffer per call (crypto's
 * Cipher.update has no form that writes into a buffer of ours). V8 collects
 * such buffers only when its heap fills or their bytes reach its external
 * limit (about 64 MiB): a loop making them holds tens of MiB of dead
 * Buffers. Told how many bytes were made, this runs a young-generation
 * collection each `everyBytes`, which frees them (about a millisecond).
 */
export class GarbageBound {
  private readonly collect: (opts: { type: 'minor' }) => void;
  private made = 0;

  constructor(private readonly everyBytes: number) {
    // The flag takes effect for contexts made after it: a new one hands out its gc().
    v8.setFlagsFromString('--expose-gc');
    this.collect = vm.runInNewContext('gc') as (opts: { type: 'minor' }) => void;
  }

  /** `bytes` more of short-lived Buffers were made. */
  note(bytes: number): void {
    this.made += bytes;
    if (this.made < this.everyBytes) return;
    this.made = 0;
    this.collect({ type: 'minor' });
  }
}
