import {
  Elf64_Ehdr, Elf64_Phdr, ELF_NOTE_ALIGN, encodeCoreEhdr, PT_NOTE, UsageError, viewOf,
} from '../../codec/index.js';
import { PAGE_SIZE_N } from '../../machine/index.js';
import type { Kernel } from '../kernel.js';
import { BuddyAllocator } from '../mm/buddy.js';
import type { MemMap } from '../mm/mem_map.js';
import { printk } from '../printk.js';
import { LOGLEVEL_ERR, LOGLEVEL_INFO } from '../constants.js';
import {
  DEVCD_MAX_DEVICES, DEVCD_MAX_REGIONS, DEVCD_REGION_BUFFER, DEVCD_REGION_REGISTERS, NT_VMCOREDD, VMCOREDD_MAX_NAME_BYTES,
  VMCOREDD_NOTE_NAME,
} from './constants.js';
import { wallClock } from './platform.js';
import { vmcoredd_header } from '../../codec/index.js';
import { devcdRoom, hasSymbol, kmsgHeader, ramoopsWriteDevcd } from './ramoops.js';
import {
  DEVCD_STATE_DISABLED, DEVCD_STATE_ENABLED, devcd_region, devcd_registry, devcd_state, type DevcdDevice, type DevcdRegion,
  type DevcdState,
} from './structs/devcd.js';

/**
 * The device-coredump frontend of the 2023 RFC ("RFC design of device
 * coredump collection on panic in Pstore"), which never merged; its API,
 * record and file name are ours. Drivers register, at init, lists of
 * buffers and registers; a panic notifier copies them into the
 * devcoredump zone of the ramoops region as one ELF core file per panic,
 * one NT_VMCOREDD note per device (the note /proc/vmcore uses for device
 * dumps, so `readelf -n` lists them). It logs an error and stops when the
 * zone is full.
 *
 * A note's desc is dump_name[44] then, per region, a devcd_region header
 * (name, type, size, address) and the region's bytes, padded to 8.
 */
export const DEVCD_STATE_SYMBOL = 'devcd_state';

/** What a driver registers: its dump name and its regions. */
export interface DevcdRegistration {
  /** "<driver>_<bus id>", at most 43 characters (a vmcoredd dump_name). */
  dumpName: string;
  regions: ReadonlyArray<{ name: string; type: 'buffer' | 'registers'; addr: bigint; size: number }>;
}

/** Reads a device's registers at the panic (its MMIO), given the region's bus address and count. */
export type RegisterReader = (kernel: Kernel, dumpName: string, addr: bigint, count: number) => Uint32Array;

export function readDevcdState(kernel: Kernel): DevcdState | null {
  if (!hasSymbol(kernel, DEVCD_STATE_SYMBOL)) return null;
  return kernel.readStruct(devcd_state, DEVCD_STATE_SYMBOL);
}

function writeDevcdState(kernel: Kernel, s: DevcdState): void {
  kernel.writeStruct(devcd_state, DEVCD_STATE_SYMBOL, s);
}

/** Turns the frontend on at boot: its registry page comes from the page allocator. */
export function devcdInit(kernel: Kernel, memmap: MemMap): boolean {
  const s = readDevcdState(kernel);
  if (!s) return false;
  const pfn = new BuddyAllocator(kernel, memmap).alloc(0);
  if (pfn === null) {
    printk(kernel, 'devcoredump: out of memory for the device registry', LOGLEVEL_ERR);
    return false;
  }
  kernel.ram.write(pfn * PAGE_SIZE_N, devcd_registry.toBytes(devcd_registry.zero()));
  writeDevcdState(kernel, { ...s, flags: DEVCD_STATE_ENABLED, registry_pfn: pfn });
  return true;
}

function readRegistry(kernel: Kernel, s: DevcdState): { nr: number; devices: DevcdDevice[] } {
  const reg = kernel.readPhysStruct(devcd_registry, s.registry_pfn * PAGE_SIZE_N);
  const nr = Math.min(reg.nr_devices, DEVCD_MAX_DEVICES);
  return { nr, devices: reg.devices };
}

/** The devices registered with the frontend, in registration order. */
export function devcdDevices(kernel: Kernel): DevcdDevice[] {
  const s = readDevcdState(kernel);
  if (!s || !(s.flags & DEVCD_STATE_ENABLED) || s.registry_pfn === 0n) return [];
  const { nr, devices } = readRegistry(kernel, s);
  return devices.slice(0, nr).map((d) => ({ ...d, nr_regions: Math.min(d.nr_regions, DEVCD_MAX_REGIONS) }));
}

/**
 * Registers a device's buffers and registers for the panic-time dump
 * (the RFC's registration call). Returns false when the frontend is off.
 */
export function devcdRegister(kernel: Kernel, r: DevcdRegistration): boolean {
  const s = readDevcdState(kernel);
  if (!s || !(s.flags & DEVCD_STATE_ENABLED)) return false;
  if (r.dumpName === '' || Buffer.byteLength(r.dumpName, 'latin1') >= VMCOREDD_MAX_NAME_BYTES) {
    throw new UsageError(`devcoredump: dump name '${r.dumpName}' must have 1 to ${VMCOREDD_MAX_NAME_BYTES - 1} characters`);
  }
  if (r.regions.length === 0 || r.regions.length > DEVCD_MAX_REGIONS) throw new UsageError(`devcoredump: ${r.dumpName}: 1 to ${DEVCD_MAX_REGIONS} regions, not ${r.regions.length}`);
  const { nr, devices } = readRegistry(kernel, s);
  if (nr >= DEVCD_MAX_DEVICES) {
    printk(kernel, `devcoredump: registry full, ${r.dumpName} not registered`, LOGLEVEL_ERR);
    return false;
  }
  const blank = devcd_region.zero();
  const regions: DevcdRegion[] = r.regions.map((x) => {
    if (x.size <= 0 || (x.type === 'registers' && x.size % 4 !== 0)) throw new UsageError(`devcoredump: ${r.dumpName}: region ${x.name} has a bad size ${x.size}`);
    return { name: x.name, type: x.type === 'buffer' ? DEVCD_REGION_BUFFER : DEVCD_REGION_REGISTERS, size: x.size, addr: x.addr };
  });
  devices[nr] = { dump_name: r.dumpName, nr_regions: regions.length, regions: [...regions, ...Array.from({ length: DEVCD_MAX_REGIONS - regions.length }, () => blank)] };
  kernel.writePhysStruct(devcd_registry, s.registry_pfn * PAGE_SIZE_N, { nr_devices: nr + 1, _pad: 0, devices });
  printk(kernel, `devcoredump: ${r.dumpName} registered ${regions.length} region${regions.length === 1 ? '' : 's'} for panic dumps`, LOGLEVEL_INFO);
  return true;
}

/** /sys/class/devcoredump/disabled: once 1, no device dump is taken until the next boot. */
export function devcdDisabled(kernel: Kernel): boolean {
  const s = readDevcdState(kernel);
  return !!s && (s.flags & DEVCD_STATE_DISABLED) !== 0;
}

export function devcdDisable(kernel: Kernel): void {
  const s = readDevcdState(kernel);
  if (s) writeDevcdState(kernel, { ...s, flags: s.flags | DEVCD_STATE_DISABLED });
}

const pad = (n: number, a: number): number => (n + a - 1) & ~(a - 1);

/**
 * One device's note: a vmcoredd_header (Nhdr, "LINUX\0\0\0", dump_name[44]),
 * then each region's devcd_region header and bytes, padded to 8.
 */
function deviceNote(dev: DevcdDevice, contents: Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  dev.regions.slice(0, dev.nr_regions).forEach((r, i) => {
    parts.push(Buffer.from(devcd_region.toBytes(r)));
    const data = Buffer.alloc(pad(r.size, 8));
    data.set(contents[i].subarray(0, r.size));
    parts.push(data);
  });
  const regions = Buffer.concat(parts);
  const name = Buffer.alloc(8);
  name.write(VMCOREDD_NOTE_NAME, 'latin1');
  // n_descsz counts dump_name and the data after it; the header's first 20 bytes are the Nhdr and the name.
  const nameBytes = vmcoredd_header.size - VMCOREDD_MAX_NAME_BYTES;
  const header = vmcoredd_header.toBytes({ n_namesz: name.length, n_descsz: VMCOREDD_MAX_NAME_BYTES + regions.length, n_type: NT_VMCOREDD, name, dump_name: dev.dump_name });
  const note = Buffer.alloc(pad(nameBytes + VMCOREDD_MAX_NAME_BYTES + regions.length, ELF_NOTE_ALIGN));
  note.set(header, 0);
  regions.copy(note, vmcoredd_header.size);
  return note;
}

/** An ELF64 ET_CORE file with one PT_NOTE holding `notes`. */
function elfCore(notes: Buffer): Buffer {
  const phoff = Elf64_Ehdr.size;
  const noteOff = phoff + Elf64_Phdr.size;
  const out = Buffer.alloc(noteOff + notes.length);
  const view = viewOf(out);
  encodeCoreEhdr(view, 1);
  Elf64_Phdr.encode({
    p_type: PT_NOTE, p_flags: 0, p_offset: BigInt(noteOff), p_vaddr: 0n, p_paddr: 0n,
    p_filesz: BigInt(notes.length), p_memsz: BigInt(notes.length), p_align: BigInt(ELF_NOTE_ALIGN),
  }, view, phoff);
  notes.copy(out, noteOff);
  return out;
}

/** Bytes of an ELF core with no note: what the zone must hold besides the notes. */
export const DEVCD_ELF_OVERHEAD = Elf64_Ehdr.size + Elf64_Phdr.size;

/**
 * The frontend's panic notifier: walks the registered devices in order,
 * copying each buffer from RAM and reading each register block, and writes
 * one ELF core file with a note per device into the devcoredump zone. A
 * device whose note does not fit in what is left of the zone is not
 * copied: the error is logged and the walk stops there. Returns the
 * devices dumped, or null when the frontend is off or disabled.
 */
export function devcdPanicNotifier(kernel: Kernel, readRegisters: RegisterReader): { dumped: string[]; skipped: string[] } | null {
  const s = readDevcdState(kernel);
  if (!s || !(s.flags & DEVCD_STATE_ENABLED)) return null;
  // /sys/class/devcoredump/disabled: as if the frontend were off.
  if (s.flags & DEVCD_STATE_DISABLED) return null;
  const devices = devcdDevices(kernel);
  if (!devices.length) return { dumped: [], skipped: [] };
  const time = wallClock(kernel);
  const room = devcdRoom(kernel, kmsgHeader(time.sec, time.nsec, false).length) - DEVCD_ELF_OVERHEAD;
  const notes: Buffer[] = [];
  let used = 0;
  const dumped: string[] = [];
  const skipped: string[] = [];
  for (const [i, dev] of devices.entries()) {
    const contents = dev.regions.slice(0, dev.nr_regions).map((r) => {
      if (r.type === DEVCD_REGION_BUFFER) {
        // A buffer registered outside RAM reads as nothing rather than faulting in the panic path.
        return r.addr + BigInt(r.size) <= kernel.ram.size ? kernel.ram.read(r.addr, r.size) : new Uint8Array(r.size);
      }
      const regs = readRegisters(kernel, dev.dump_name, r.addr, r.size / 4);
      const bytes = Buffer.alloc(r.size);
      regs.forEach((v, k) => bytes.writeUInt32LE(v >>> 0, k * 4));
      return bytes;
    });
    const note = deviceNote(dev, contents);
    if (used + note.length > room) {
      skipped.push(...devices.slice(i).map((d) => d.dump_name));
      printk(kernel, `devcoredump: no room for ${dev.dump_name} (${note.length} bytes, ${Math.max(0, room - used)} left in the devcoredump zone): dump stopped, ${devices.length - i} device${devices.length - i === 1 ? '' : 's'} not dumped`, LOGLEVEL_ERR);
      break;
    }
    notes.push(note);
    used += note.length;
    dumped.push(dev.dump_name);
  }
  if (notes.length) ramoopsWriteDevcd(kernel, { timeSec: time.sec, timeNsec: time.nsec, data: elfCore(Buffer.concat(notes)) });
  return { dumped, skipped };
}
