import { CorruptDumpError, InternalError, viewOf } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type PhysicalRam } from '../../machine/index.js';
import { DUMP_IND_MAP_SZ, DUMP_MAP_SZ, type DumpMemdev } from './dump_config_block.js';
import type { DumpSource } from '../formats/types.js';

const PAGE = PAGE_SIZE;
const ZERO_PAGE = new Uint8Array(PAGE);

/**
 * The memory dump device (LKCD's dump_memdev.c): a logical, append-only
 * byte space whose pages are scattered frames. A chain of indirect pages
 * holds the PFNs of map pages; each map page holds DUMP_MAP_SZ PFNs of data
 * pages. Logical page `loc` is map `loc / DUMP_MAP_SZ`, entry `loc %
 * DUMP_MAP_SZ`. All state is in RAM; `handle` mirrors struct dump_memdev.
 */
export class Memdev {
  /** PFNs of the indirect pages, in chain order (small: 17 for 16 GiB). */
  private indirect: bigint[] = [];
  /** The current map page's frame and handle.nr_data_pages, as numbers. */
  private curMapFrame = 0;
  private dataPages = 0;
  /** Map-entry reads of writePages, reused. */
  private entries = Buffer.alloc(PAGE);

  constructor(readonly ram: PhysicalRam, readonly handle: DumpMemdev) {
    this.dataPages = Number(handle.nr_data_pages);
  }

  /** Opens an existing memdev, following its indirect chain (checked against RAM size). */
  static open(ram: PhysicalRam, handle: DumpMemdev): Memdev {
    const m = new Memdev(ram, handle);
    m.loadIndirect();
    if (handle.nr_map_pages > 0) m.curMapFrame = Number(m.mapPfn(handle.nr_map_pages - 1));
    return m;
  }

  private maxPfn(): bigint {
    return this.ram.size / PAGE_SIZE_N;
  }

  private checkPfn(pfn: bigint, what: string): bigint {
    if (pfn === 0n || pfn >= this.maxPfn()) {
      throw new CorruptDumpError(`memdev ${what} pfn 0x${pfn.toString(16)} is outside RAM`, { struct: 'dump_memdev', address: pfn * PAGE_SIZE_N, space: 'phys' });
    }
    return pfn;
  }

  /**
   * Follows the indirect chain for nr_indirect pages, after checking the
   * handle's counts against what RAM can need: the walk is bounded by the
   * structure, and a cycle or a count that cannot be is named.
   */
  private loadIndirect(): void {
    this.indirect = [];
    const h = this.handle;
    const where = (field: string): { struct: string; field: string } => ({ struct: 'dump_memdev', field });
    // Maps covering every frame of RAM, plus one (arming allocates that many), and the indirect pages holding them.
    const mapsForRam = this.maxPfn() / BigInt(DUMP_MAP_SZ) + 2n;
    const indirectForRam = mapsForRam / BigInt(DUMP_IND_MAP_SZ) + 1n;
    if (BigInt(h.nr_indirect) > indirectForRam) {
      throw new CorruptDumpError(`memdev nr_indirect ${h.nr_indirect} exceeds the ${indirectForRam} indirect pages this RAM can need`, where('nr_indirect'));
    }
    if (h.nr_map_pages > h.nr_indirect * DUMP_IND_MAP_SZ) {
      throw new CorruptDumpError(`memdev nr_map_pages ${h.nr_map_pages} exceeds what ${h.nr_indirect} indirect pages hold`, where('nr_map_pages'));
    }
    if (h.nr_data_pages > BigInt(h.nr_map_pages) * BigInt(DUMP_MAP_SZ)) {
      throw new CorruptDumpError(`memdev nr_data_pages ${h.nr_data_pages} exceeds what ${h.nr_map_pages} map pages hold`, where('nr_data_pages'));
    }
    const seen = new Set<bigint>();
    let pfn = h.indirect_map_root;
    for (let i = 0; i < h.nr_indirect; i++) {
      this.indirect.push(this.checkPfn(pfn, 'indirect map'));
      if (seen.has(pfn)) throw new CorruptDumpError(`memdev indirect map chain loops back to pfn 0x${pfn.toString(16)} after ${i} pages`, where('indirect_map_root'));
      seen.add(pfn);
      pfn = this.ram.readU64(pfn * PAGE_SIZE_N + BigInt(DUMP_IND_MAP_SZ * 8));
    }
  }

  /** Lays out a new, empty memdev over already-allocated indirect pages. */
  static format(ram: PhysicalRam, indirectPfns: bigint[]): Memdev {
    const zero = Buffer.alloc(PAGE);
    indirectPfns.forEach((pfn, i) => {
      const page = Buffer.from(zero);
      if (i + 1 < indirectPfns.length) page.writeBigUInt64LE(indirectPfns[i + 1], DUMP_IND_MAP_SZ * 8);
      ram.write(pfn * PAGE_SIZE_N, page);
    });
    const m = new Memdev(ram, {
      indirect_map_root: indirectPfns[0] ?? 0n, nr_indirect: indirectPfns.length,
      nr_maps_max: indirectPfns.length * DUMP_IND_MAP_SZ, nr_map_pages: 0, nr_free: 0,
      nr_data_pages: 0n, last_offset: 0n, last_used_offset: 0n, last_bs_offset: 0n,
    });
    m.indirect = [...indirectPfns];
    return m;
  }

  /** PFN of map page `i`, read from its indirect page. */
  mapPfn(i: number): bigint {
    const ind = this.indirect[Math.floor(i / DUMP_IND_MAP_SZ)];
    if (ind === undefined) throw new CorruptDumpError(`memdev map ${i} is beyond the indirect chain`, { struct: 'dump_memdev', field: 'nr_map_pages' });
    return this.ram.readU64(ind * PAGE_SIZE_N + BigInt((i % DUMP_IND_MAP_SZ) * 8));
  }

  /** PFN of the data page backing logical page `loc` (dump_mem_lookup). */
  lookup(loc: bigint): bigint {
    if (loc >= this.handle.nr_data_pages) {
      throw new CorruptDumpError(`memdev logical page ${loc} is beyond the ${this.handle.nr_data_pages} backed pages`, { struct: 'dump_memdev', field: 'nr_data_pages' });
    }
    const map = this.mapPfn(Number(loc / BigInt(DUMP_MAP_SZ)));
    return this.checkPfn(this.ram.readU64(map * PAGE_SIZE_N + (loc % BigInt(DUMP_MAP_SZ)) * 8n), 'data page');
  }

  /** True when the next added frame must become a map page. */
  needsMapPage(): boolean {
    return this.handle.nr_data_pages === BigInt(this.handle.nr_map_pages) * BigInt(DUMP_MAP_SZ);
  }

  /**
   * Adds a free frame as space (dump_mem_add_space): it becomes a map page
   * when the current one is full, else the next data page.
   */
  addSpace(pfn: bigint): void {
    this.addFrame(Number(pfn));
  }

  /** addSpace of a frame number held as a number (stage 1's loop); returns whether it became a data page. */
  addFrame(frame: number): boolean {
    if (this.needsMapPage()) {
      if (this.handle.nr_map_pages >= this.handle.nr_maps_max) throw new InternalError('memdev indirect maps exhausted');
      const i = this.handle.nr_map_pages;
      this.ram.writeAt(frame * PAGE, ZERO_PAGE);
      this.ram.writeU64At(Number(this.indirect[Math.floor(i / DUMP_IND_MAP_SZ)]) * PAGE + (i % DUMP_IND_MAP_SZ) * 8, frame);
      this.handle.nr_map_pages++;
      this.curMapFrame = frame;
      return false;
    }
    const entry = this.dataPages % DUMP_MAP_SZ;
    this.ram.writeU64At(this.curMapFrame * PAGE + entry * 8, frame);
    this.dataPages++;
    this.handle.nr_data_pages++;
    this.handle.last_offset += PAGE_SIZE_N;
    return true;
  }

  /**
   * Writes whole pages at a page-aligned logical offset inside the backed
   * space (dump_mem_write). The data pages' frames are read from each map
   * page once per call, not once per page.
   */
  writePages(offset: bigint, data: Uint8Array): void {
    if (offset % PAGE_SIZE_N !== 0n || data.length % PAGE !== 0) throw new InternalError('memdev writes must be page-aligned');
    if (offset + BigInt(data.length) > this.handle.last_offset) throw new InternalError('memdev write beyond backed space');
    const maxPfn = Number(this.maxPfn());
    let loc = Number(offset / PAGE_SIZE_N);
    for (let i = 0; i < data.length;) {
      const entry = loc % DUMP_MAP_SZ;
      const n = Math.min(DUMP_MAP_SZ - entry, (data.length - i) / PAGE);
      const map = this.mapPfn(Math.floor(loc / DUMP_MAP_SZ));
      const entries = this.entries.subarray(0, n * 8);
      this.ram.readInto(map * PAGE_SIZE_N + BigInt(entry * 8), entries);
      for (let k = 0; k < n; k++, i += PAGE, loc++) {
        const lo = entries.readUInt32LE(k * 8);
        const hi = entries.readUInt32LE(k * 8 + 4);
        if (hi !== 0 || lo === 0 || lo >= maxPfn) this.checkPfn((BigInt(hi) << 32n) | BigInt(lo), 'data page');
        this.ram.writeAt(lo * PAGE, data.subarray(i, i + PAGE));
      }
    }
    const end = offset + BigInt(data.length);
    if (end > this.handle.last_used_offset) this.handle.last_used_offset = end;
  }

  /** Reads `length` bytes of the logical space (any alignment). */
  read(offset: bigint, length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    this.readInto(offset, out);
    return out;
  }

  /**
   * Reads `out.length` bytes of the logical space at `offset` (any
   * alignment) into `out`: the data pages' frames are read from each map
   * page once per call, and each frame is checked as lookup() checks it.
   */
  readInto(offset: bigint, out: Uint8Array): void {
    const length = out.length;
    if (length === 0) return;
    const startLoc = offset / PAGE_SIZE_N;
    const endLoc = (offset + BigInt(length) - 1n) / PAGE_SIZE_N;
    // A page beyond the backed ones: lookup() throws, naming the first.
    if (endLoc >= this.handle.nr_data_pages) this.lookup(startLoc > this.handle.nr_data_pages ? startLoc : this.handle.nr_data_pages);
    const maxPfn = Number(this.maxPfn());
    let loc = Number(startLoc);
    let within = Number(offset % PAGE_SIZE_N);
    let done = 0;
    while (done < length) {
      const entry = loc % DUMP_MAP_SZ;
      const pagesLeft = Math.ceil((length - done + within) / PAGE);
      const n = Math.min(DUMP_MAP_SZ - entry, pagesLeft);
      const map = this.mapPfn(Math.floor(loc / DUMP_MAP_SZ));
      const entries = this.entries.subarray(0, n * 8);
      this.ram.readInto(map * PAGE_SIZE_N + BigInt(entry * 8), entries);
      for (let k = 0; k < n; k++, loc++) {
        const lo = entries.readUInt32LE(k * 8);
        const hi = entries.readUInt32LE(k * 8 + 4);
        if (hi !== 0 || lo === 0 || lo >= maxPfn) this.checkPfn((BigInt(hi) << 32n) | BigInt(lo), 'data page');
        const take = Math.min(PAGE - within, length - done);
        this.ram.readAt(lo * PAGE + within, out.subarray(done, done + take));
        done += take;
        within = 0;
      }
    }
  }

  /**
   * The frames the memdev held when it was armed, before any page was
   * saved: the indirect pages, and the map and data pages of its bootstrap
   * space ([0, last_bs_offset) of the logical space).
   */
  *bootstrapFrames(): Generator<bigint> {
    yield* this.indirect;
    const dataPages = this.handle.last_bs_offset / PAGE_SIZE_N;
    if (dataPages > this.handle.nr_data_pages) {
      throw new CorruptDumpError(`memdev last_bs_offset ${this.handle.last_bs_offset} is beyond its ${this.handle.nr_data_pages} data pages`, { struct: 'dump_memdev', field: 'last_bs_offset' });
    }
    const maps = Number((dataPages + BigInt(DUMP_MAP_SZ) - 1n) / BigInt(DUMP_MAP_SZ));
    for (let i = 0; i < maps; i++) yield this.checkPfn(this.mapPfn(i), 'map page');
    for (let loc = 0n; loc < dataPages; loc++) yield this.lookup(loc);
  }

  /** Every frame the memdev uses: indirect pages, map pages, data pages. */
  *frames(): Generator<bigint> {
    yield* this.indirect;
    for (let i = 0; i < this.handle.nr_map_pages; i++) yield this.checkPfn(this.mapPfn(i), 'map page');
    const perMap = BigInt(DUMP_MAP_SZ);
    for (let m = 0; m < this.handle.nr_map_pages; m++) {
      const mapPfn = this.mapPfn(m);
      const first = BigInt(m) * perMap;
      const count = this.handle.nr_data_pages - first < perMap ? this.handle.nr_data_pages - first : perMap;
      if (count <= 0n) break;
      const raw = this.ram.read(mapPfn * PAGE_SIZE_N, Number(count) * 8);
      const view = viewOf(raw);
      for (let e = 0; e < Number(count); e++) yield this.checkPfn(view.getBigUint64(e * 8, true), 'data page');
    }
  }
}

/**
 * The memdev's logical space [0, size) as a DumpSource, so the one record
 * walker reads what stage 1 saved exactly as it reads a dump file.
 */
export function memdevSource(memdev: Memdev, size: bigint, name: string): DumpSource {
  return {
    path: name, size, base: 0n,
    readAt(out: Uint8Array, position: bigint): number {
      if (position < 0n || position >= size) return 0;
      const n = size - position < BigInt(out.length) ? Number(size - position) : out.length;
      memdev.readInto(position, out.subarray(0, n));
      return n;
    },
    close(): void { /* RAM stays the caller's */ },
  };
}
