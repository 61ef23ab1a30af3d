/**
 * Sets and queues of page frame numbers for stage 1's per-page loops.
 * Frame numbers are plain numbers there (16 GiB of RAM is 2^22 frames; a
 * frame number is checked below 2^32 where it enters), with bigint
 * wrappers for the callers that hold bigint PFNs.
 */

/** Largest frame number these structures hold (exclusive): 2^32 frames is 16 TiB of RAM. */
export const FRAME_LIMIT = 2 ** 32;

/** A set of page frame numbers as a bitmap: one bit per frame (512 KiB for 16 GiB of RAM). */
export class PfnBitmap {
  private readonly bits: Uint8Array;
  constructor(readonly maxPfn: bigint) {
    this.bits = new Uint8Array(Number((maxPfn + 7n) / 8n));
  }
  has(pfn: bigint): boolean {
    return this.hasFrame(Number(pfn));
  }
  add(pfn: bigint): void {
    this.addFrame(Number(pfn));
  }
  delete(pfn: bigint): void {
    const i = Number(pfn);
    this.bits[i >>> 3] &= ~(1 << (i & 7));
  }
  hasFrame(i: number): boolean {
    return (this.bits[i >>> 3] & (1 << (i & 7))) !== 0;
  }
  addFrame(i: number): void {
    this.bits[i >>> 3] |= 1 << (i & 7);
  }
}

/**
 * A FIFO of frames kept as [start, end) runs in typed arrays: frames are
 * released mostly in ascending runs, so memory stays proportional to the
 * number of runs, and no object is made per frame.
 */
export class FrameQueue {
  private starts = new Uint32Array(64);
  private ends = new Uint32Array(64);
  private head = 0;
  private tail = 0;
  private total = 0;

  get size(): number { return this.total; }

  push(frame: number): void {
    const t = this.tail;
    if (t > this.head && this.ends[t - 1] === frame) {
      this.ends[t - 1] = frame + 1;
    } else {
      if (t === this.starts.length) this.grow();
      this.starts[this.tail] = frame;
      this.ends[this.tail] = frame + 1;
      this.tail++;
    }
    this.total++;
  }

  /** The oldest frame, or -1 when the queue is empty. */
  shift(): number {
    while (this.head < this.tail) {
      const s = this.starts[this.head];
      if (s < this.ends[this.head]) {
        this.starts[this.head] = s + 1;
        this.total--;
        return s;
      }
      this.head++;
    }
    return -1;
  }

  /** Drops every queued frame. */
  clear(): void {
    this.head = this.tail = this.total = 0;
  }

  /** Calls fn(start, end) for each run still queued, oldest first. */
  forEachRun(fn: (start: number, end: number) => void): void {
    for (let i = this.head; i < this.tail; i++) if (this.ends[i] > this.starts[i]) fn(this.starts[i], this.ends[i]);
  }

  /** The runs still queued, oldest first. */
  ranges(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    this.forEachRun((s, e) => out.push([s, e]));
    return out;
  }

  private grow(): void {
    // Compact first: runs before head are spent.
    const live = this.tail - this.head;
    const cap = live * 2 >= this.starts.length ? this.starts.length * 2 : this.starts.length;
    const s = new Uint32Array(cap);
    const e = new Uint32Array(cap);
    s.set(this.starts.subarray(this.head, this.tail));
    e.set(this.ends.subarray(this.head, this.tail));
    this.starts = s;
    this.ends = e;
    this.head = 0;
    this.tail = live;
  }
}

/** A FIFO of bigint PFNs kept as runs (the bigint face of FrameQueue, for callers that hold bigints). */
export class PfnRanges {
  private readonly q = new FrameQueue();

  get size(): bigint { return BigInt(this.q.size); }

  push(pfn: bigint): void {
    this.q.push(Number(pfn));
  }

  shift(): bigint | null {
    const f = this.q.shift();
    return f < 0 ? null : BigInt(f);
  }

  /** The runs still queued, oldest first. */
  ranges(): Array<[bigint, bigint]> {
    return this.q.ranges().map(([s, e]) => [BigInt(s), BigInt(e)]);
  }
}
