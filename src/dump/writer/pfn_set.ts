/** A set of page frame numbers as a bitmap: one bit per frame (512 KiB for 16 GiB of RAM). */
export class PfnBitmap {
  private readonly bits: Uint8Array;
  constructor(readonly maxPfn: bigint) {
    this.bits = new Uint8Array(Number((maxPfn + 7n) / 8n));
  }
  has(pfn: bigint): boolean {
    const i = Number(pfn);
    return (this.bits[i >>> 3] & (1 << (i & 7))) !== 0;
  }
  add(pfn: bigint): void {
    const i = Number(pfn);
    this.bits[i >>> 3] |= 1 << (i & 7);
  }
  delete(pfn: bigint): void {
    const i = Number(pfn);
    this.bits[i >>> 3] &= ~(1 << (i & 7));
  }
}

/**
 * A FIFO of frames kept as [start, end) runs: frames are released mostly in
 * ascending runs, so memory stays proportional to the number of runs.
 */
export class PfnRanges {
  private runs: Array<[bigint, bigint]> = [];
  private head = 0;
  private total = 0n;

  get size(): bigint { return this.total; }

  push(pfn: bigint): void {
    const last = this.runs[this.runs.length - 1];
    if (last && this.runs.length > this.head && last[1] === pfn) last[1] = pfn + 1n;
    else this.runs.push([pfn, pfn + 1n]);
    this.total++;
  }

  shift(): bigint | null {
    while (this.head < this.runs.length) {
      const run = this.runs[this.head];
      if (run[0] < run[1]) {
        const pfn = run[0]++;
        this.total--;
        return pfn;
      }
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.runs.length) {
        this.runs = this.runs.slice(this.head);
        this.head = 0;
      }
    }
    return null;
  }

  /** The runs still queued, oldest first. */
  ranges(): Array<[bigint, bigint]> {
    return this.runs.slice(this.head).filter(([s, e]) => e > s).map(([s, e]) => [s, e]);
  }
}
