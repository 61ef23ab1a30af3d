import fs from 'node:fs';
import { ioError } from '../src/codec/index.js';
import { readSystemMap } from '../src/dump/index.js';

/** A System.map, for names by address (symbolize) and addresses by name. */
export class SymbolTable {
  private readonly sorted: Array<[bigint, string]>;
  constructor(readonly byName: ReadonlyMap<string, bigint>) {
    this.sorted = [...byName].map(([n, a]) => [a, n] as [bigint, string]).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  }

  static load(file: string): SymbolTable {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw ioError('reading System.map', e as NodeJS.ErrnoException);
    }
    return new SymbolTable(readSystemMap(text));
  }

  /** "name+0xoff" for an address inside the kernel, as crash and the oops printer show it. */
  symbolize(addr: bigint): string {
    let lo = 0;
    let hi = this.sorted.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid][0] <= addr) { best = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (best < 0) return `0x${addr.toString(16)}`;
    const [base, name] = this.sorted[best];
    return addr === base ? name : `${name}+0x${(addr - base).toString(16)}`;
  }
}
