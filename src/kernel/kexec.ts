import { CorruptDumpError, DumpError, hex, UsageError } from '../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../machine/index.js';
import { COMMAND_LINE_SIZE } from './constants.js';
import type { KernelImage } from './image.js';
import { Kernel } from './kernel.js';
import { blankPage, type BuddyAllocator } from './mm/buddy.js';
import type { MemMap } from './mm/mem_map.js';
import {
  IND_DESTINATION, IND_DONE, IND_FLAGS, IND_INDIRECTION, IND_SOURCE, KEXEC_SEGMENT_MAX, KIMAGE_MAGIC, kimage,
  type Kimage,
} from './structs/kimage.js';

const ENTRIES_PER_PAGE = PAGE_SIZE / 8;

export interface LoadedKexec {
  address: bigint;
  image: Kimage;
}

function readKimage(kernel: Kernel): LoadedKexec | null {
  const addr = kernel.readU64('kexec_image');
  if (addr === 0n) return null;
  const phys = Kernel.__pa(addr);
  if (phys < 0n || phys + PAGE_SIZE_N > kernel.ram.size) throw new CorruptDumpError(`kexec_image ${hex(addr)} points outside RAM`, { field: 'kexec_image' });
  const image = kernel.readPhysStruct(kimage, phys);
  if (image.magic !== KIMAGE_MAGIC) throw new CorruptDumpError(`kexec_image ${hex(addr)} does not point to a kimage`, { struct: 'kimage', field: 'magic' });
  if (image.nr_segments > KEXEC_SEGMENT_MAX) throw new CorruptDumpError(`kimage nr_segments ${image.nr_segments} exceeds ${KEXEC_SEGMENT_MAX}`, { struct: 'kimage', field: 'nr_segments' });
  return { address: addr, image };
}

/** The loaded kexec image, if any (what /sys/kernel/kexec_loaded reports). */
export function kexecLoaded(kernel: Kernel): LoadedKexec | null {
  return readKimage(kernel);
}

/**
 * Walks the indirection list: every entry, in order, with the page it lives
 * in. Bounded by what the list can hold: every list page and source page
 * page-aligned inside RAM, no list page twice (a cycle), no more source
 * pages than the segments' buffers fill, no more destinations than
 * segments. What is broken is named.
 */
export function* kexecEntries(kernel: Kernel, image: Kimage): Generator<{ entry: bigint; listPage: bigint }> {
  const bad = (why: string): never => { throw new CorruptDumpError(`kexec indirection list: ${why}`, { struct: 'kimage', field: 'head' }); };
  const checkPage = (addr: bigint, what: string): bigint => {
    if (addr % PAGE_SIZE_N !== 0n || addr < 0n || addr + PAGE_SIZE_N > kernel.ram.size) bad(`${what} ${hex(addr)} is not a page inside RAM`);
    return addr;
  };
  const segs = image.segment.slice(0, image.nr_segments);
  const maxSources = segs.reduce((a, sg) => a + (sg.bufsz + PAGE_SIZE_N - 1n) / PAGE_SIZE_N, 0n);
  const maxDestinations = BigInt(image.nr_segments);
  const seen = new Set<bigint>();
  let listPage = checkPage(image.head & ~IND_FLAGS, 'first list page');
  seen.add(listPage);
  let sources = 0n;
  let destinations = 0n;
  let i = 0;
  for (;;) {
    if (i >= ENTRIES_PER_PAGE) bad(`list page ${hex(listPage)} has no IND_INDIRECTION or IND_DONE in its ${ENTRIES_PER_PAGE} entries`);
    const entry = kernel.ram.readU64(listPage + BigInt(i * 8));
    yield { entry, listPage };
    if (entry & IND_DONE) return;
    if (entry & IND_INDIRECTION) {
      const next = checkPage(entry & ~IND_FLAGS, 'list page');
      if (seen.has(next)) bad(`list page ${hex(next)} comes back (a cycle)`);
      if (seen.size > Number(maxSources + maxDestinations) / (ENTRIES_PER_PAGE - 1) + 2) bad(`more list pages than ${image.nr_segments} segments need`);
      seen.add(next);
      listPage = next;
      i = 0;
      continue;
    }
    if (entry & IND_SOURCE) {
      checkPage(entry & ~IND_FLAGS, 'source page');
      if (++sources > maxSources) bad(`more source pages than the segments' ${maxSources} pages of data`);
    } else if (entry & IND_DESTINATION) {
      if (++destinations > maxDestinations) bad(`more destinations than the ${image.nr_segments} segments`);
    }
    i++;
  }
}

/** Every frame a loaded image occupies: the kimage page, indirection pages and source pages. */
export function kexecFrames(kernel: Kernel): bigint[] {
  const loaded = readKimage(kernel);
  if (!loaded) return [];
  const frames = [Kernel.__pa(loaded.address) / PAGE_SIZE_N, (loaded.image.head & ~IND_FLAGS) / PAGE_SIZE_N];
  for (const { entry } of kexecEntries(kernel, loaded.image)) {
    if (entry & IND_SOURCE) frames.push((entry & ~IND_FLAGS) / PAGE_SIZE_N);
    if (entry & IND_INDIRECTION) frames.push((entry & ~IND_FLAGS) / PAGE_SIZE_N);
  }
  return frames;
}

/**
 * kexec_load(): copies each segment into pages the running kernel owns,
 * recording them in an indirection list (IND_DESTINATION, IND_SOURCE...,
 * IND_INDIRECTION to chain list pages, IND_DONE), as kimage_load_segment
 * does. Source pages never fall inside a destination, so the copy at exec
 * time cannot overwrite a page it has yet to read.
 */
export function kexecLoad(kernel: Kernel, buddy: BuddyAllocator, memmap: MemMap, image: KernelImage, cmdline: string): LoadedKexec {
  if (Buffer.byteLength(cmdline, 'latin1') >= COMMAND_LINE_SIZE) throw new UsageError(`command line of ${cmdline.length} bytes is longer than COMMAND_LINE_SIZE-1 (${COMMAND_LINE_SIZE - 1})`);
  if (image.segments.length > KEXEC_SEGMENT_MAX) throw new UsageError(`image has ${image.segments.length} segments, kexec allows ${KEXEC_SEGMENT_MAX}`);
  for (const s of image.segments) {
    if (s.paddr % PAGE_SIZE_N !== 0n || s.paddr + s.memsz > kernel.ram.size) {
      throw new UsageError(`segment at ${hex(s.paddr)} (+${hex(s.memsz)}) does not fit this machine's RAM`);
    }
  }
  kexecUnload(kernel, buddy, memmap);
  const dests = image.segments.map((s) => [s.paddr, s.paddr + s.memsz] as const);
  const inDest = (pfn: bigint): boolean => dests.some(([a, b]) => pfn * PAGE_SIZE_N < b && (pfn + 1n) * PAGE_SIZE_N > a);
  const rejected: bigint[] = [];
  const allocPage = (what: string): bigint => {
    for (;;) {
      const pfn = buddy.alloc(0);
      if (pfn === null) {
        for (const r of rejected) buddy.free(r, 0);
        throw new DumpError('IO', `kexec: out of memory allocating ${what}`);
      }
      if (!inDest(pfn)) {
        memmap.set(pfn, { ...blankPage(), _refcount: 1 });
        return pfn;
      }
      rejected.push(pfn);
    }
  };
  const kimagePfn = allocPage('kimage');
  let listPfn = allocPage('indirection page');
  const head = listPfn * PAGE_SIZE_N | IND_INDIRECTION;
  let slot = 0;
  const put = (entry: bigint): void => {
    if (slot === ENTRIES_PER_PAGE - 1) {
      const next = allocPage('indirection page');
      kernel.ram.writeU64(listPfn * PAGE_SIZE_N + BigInt(slot * 8), next * PAGE_SIZE_N | IND_INDIRECTION);
      listPfn = next;
      slot = 0;
    }
    kernel.ram.writeU64(listPfn * PAGE_SIZE_N + BigInt(slot * 8), entry);
    slot++;
  };
  const segs = image.segments.map((s) => {
    put(s.paddr | IND_DESTINATION);
    for (let off = 0; off < s.bytes.length; off += PAGE_SIZE) {
      const src = allocPage('segment page');
      const page = Buffer.alloc(PAGE_SIZE);
      page.set(s.bytes.subarray(off, Math.min(off + PAGE_SIZE, s.bytes.length)));
      kernel.ram.write(src * PAGE_SIZE_N, page);
      put(src * PAGE_SIZE_N | IND_SOURCE);
    }
    return { buf: 0n, bufsz: BigInt(s.bytes.length), mem: s.paddr, memsz: s.memsz };
  });
  put(IND_DONE);
  for (const r of rejected) buddy.free(r, 0);
  const empty = { buf: 0n, bufsz: 0n, mem: 0n, memsz: 0n };
  const k: Kimage = {
    magic: KIMAGE_MAGIC, head, start: image.segments[0].paddr, nr_segments: segs.length, type: 0,
    segment: [...segs, ...Array.from({ length: KEXEC_SEGMENT_MAX - segs.length }, () => empty)],
    release: image.layout.config.release, _pad: '', cmdline_len: Buffer.byteLength(cmdline, 'latin1'), cmdline,
  };
  const kbytes = Buffer.alloc(PAGE_SIZE);
  kbytes.set(kimage.toBytes(k));
  kernel.ram.write(kimagePfn * PAGE_SIZE_N, kbytes);
  const address = Kernel.__va(kimagePfn * PAGE_SIZE_N);
  kernel.writeU64('kexec_image', address);
  return { address, image: k };
}

/** kexec -u: frees the loaded image's pages. */
export function kexecUnload(kernel: Kernel, buddy: BuddyAllocator, _memmap: MemMap): boolean {
  const loaded = readKimage(kernel);
  if (!loaded) return false;
  const frames = kexecFrames(kernel);
  kernel.writeU64('kexec_image', 0n);
  for (const pfn of new Set(frames)) buddy.free(pfn, 0);
  return true;
}

export interface KexecJump {
  entry: bigint;
  cmdline: string;
  release: string;
}

/**
 * machine_kexec() + relocate_kernel: copies every source page to its
 * destination, following the indirection list, and returns where to jump.
 * Writes only to the destinations.
 */
export function machineKexec(kernel: Kernel): KexecJump {
  const loaded = readKimage(kernel);
  if (!loaded) throw new DumpError('USAGE', 'kexec: no kernel image is loaded');
  let dest = 0n;
  for (const { entry } of kexecEntries(kernel, loaded.image)) {
    const addr = entry & ~IND_FLAGS;
    if (entry & IND_DESTINATION) dest = addr;
    else if (entry & IND_SOURCE) {
      kernel.ram.write(dest, kernel.ram.read(addr, PAGE_SIZE));
      dest += PAGE_SIZE_N;
    }
  }
  return { entry: loaded.image.start, cmdline: loaded.image.cmdline, release: loaded.image.release };
}
